"""The HLS backend: emitted C++ built with g++ and run; bit-exact with the interpreter.

Each model is emitted and built once per session (``make csim``: g++ -Wall -Wextra
-Werror); the tests then compare what the C simulation wrote with the interpreter's
step engine, layer by layer, and read the emitted code.
"""

from __future__ import annotations

import difflib
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import snncc
from conftest import EXAMPLE, ROOT, require_tool
from snncc import ops as o
from snncc.backends import hls, registry
from snncc.backends import parallel as parallel_knob
from snncc.backends.common import default_inputs, golden
from snncc.backends.hls.lower import CODED_HEADER, CODED_KERNELS
from snncc.backends.sim import plan
from snncc.frontend.importer import import_onnx
from snncc.intmath import Rounding
from snncc.ir import Graph, layer_names, verify
from snncc.passes.insert_dif import InsertDif
from snncc.reference import evaluate

pytestmark = pytest.mark.simulator

EXAMPLE_MODEL = EXAMPLE / "digits_vit_qcdq.onnx"
GOLDEN = ROOT / "tests" / "golden" / "hls"
UPDATE = os.environ.get("SNNCC_UPDATE_GOLDEN", "") not in ("", "0")


@dataclass
class Built:
    """One emitted project after `make csim`."""

    graph: Graph
    folder: Path
    summary: dict
    x: np.ndarray
    run: subprocess.CompletedProcess

    def read(self, name: str) -> np.ndarray:
        rows = (self.folder / "tb_data" / name).read_text().split("\n")
        return np.array([[int(v) for v in r.split()] for r in rows if r], np.int64)


def _make_csim(graph: Graph, folder: Path, summary: dict, x: np.ndarray) -> Built:
    run = subprocess.run(["make", "--no-print-directory", "-C", str(folder), "csim"],
                         capture_output=True, text=True, timeout=600)
    return Built(graph, folder, summary, x, run)


def _emit(graph: Graph, folder: Path, x: np.ndarray | None = None) -> Built:
    x = default_inputs(graph, hls.N_TEST_INPUTS) if x is None else x
    return _make_csim(graph, folder, hls.emit(graph, folder, x), x)


def _via_cli(model: Path, out: Path) -> Built:
    """`snncc compile model.onnx -T 7 --target hls -o out`: the path users take."""
    subprocess.run([sys.executable, "-c", "from snncc.app.cli import main; main()", "compile",
                    str(model), "-T", "7", "--target", "hls", "-o", str(out)], check=True,
                   capture_output=True, text=True)
    import json

    summary = json.loads((out / "report.json").read_text())["targets"]["hls"]
    graph = snncc.load(out / "model.snn").graph
    return _make_csim(graph, out / "hls", summary, default_inputs(graph, hls.N_TEST_INPUTS))


def _with_negative_signs(graph: Graph) -> Graph:
    """The same network with every other neuron of one dense layer comparing -v: the
    synapse's columns and the neurons' signs both flip, so the codes do not change."""
    g = graph.copy()
    for n in g.ops(o.Neuron):
        syn = g.node(n.inputs[0])
        if (isinstance(syn.op, o.Synapse) and syn.op.kind == "dense" and not syn.op.analog
                and len(g.users(syn.name)) == 1 and syn.shape[-1] > 1):
            flip = np.where(np.arange(syn.shape[-1]) % 2 == 1, -1, 1)
            w = syn.op.weight * flip
            g.replace_op(syn.name, o.Synapse(w, "dense"))
            sign = np.broadcast_to(n.op.sign, (1,) * (len(n.shape) - 1) + (syn.shape[-1],))
            g.replace_op(n.name, o.Neuron((sign * flip).astype(np.int8), n.op.thresholds,
                                          n.op.levels, n.op.scale, n.op.t_fire, n.op.mode,
                                          n.op.t_last))
            return g
    raise AssertionError("no dense neuron layer to flip")


def _exotic_snn(seed: int = 0, levels: int = 3, delay: str = "exact", kind: str = "if"
                ) -> Graph:
    """An SNN graph with every op and layout the bundled models lack: a grouped, strided,
    dilated conv with uneven pads, thresholds and signs varying on non-adjacent axes, a
    padded TD max pool, Take, Concat, SumPool, a TD matmul broadcast over its batch, a
    sum over two separate runs of axes, and a broadcasting residual add. Thresholds sit
    at quantiles of each layer's currents, so every level is used."""
    rng = np.random.default_rng(seed)
    g = Graph("exotic")
    g.add("x", o.Input(), shape=(4, 6, 6), kind=o.FLOAT)
    g.inputs = ["x"]
    x = rng.integers(0, levels + 1, (32, 4, 6, 6)).astype(np.float64)

    def w(*shape):
        return rng.integers(-9, 10, shape).astype(np.int64)

    def neuron(name, src, varying, negative=False):
        cur = evaluate(g, {"x": x})[src]
        shape = g.node(src).shape
        comp = tuple(d if a in varying else 1 for a, d in enumerate(shape))
        sign = np.where(rng.random(comp) < 0.3, -1, 1) if negative else np.ones(comp)
        q = np.linspace(0.3, 0.95, levels)
        pos = np.ceil(np.quantile(cur, q)).astype(np.int64)
        neg = np.ceil(np.quantile(-cur, q)).astype(np.int64)
        th = np.where(sign[..., None] < 0, neg, pos) + rng.integers(-2, 3, comp)[..., None]
        return g.add(name, o.Neuron(sign.astype(np.int8), th, levels, np.ones(1)), [src])

    enc = g.add("enc", o.SpikeInput(np.ones(1), 0, 0, levels, Rounding.HALF_EVEN, False), ["x"])
    conv = g.add("conv", o.Synapse(w(6, 2, 3, 3), "conv", strides=(2, 1), pads=(1, 2, 0, 1),
                                   dilations=(1, 2), group=2), [enc])  # [6, 3, 5]
    n1 = neuron("n1", conv, varying=(0, 2), negative=True)
    pool = g.add("pool", o.TDMaxPool((2, 2), (1, 2), (1, 0, 0, 1)), [n1])  # [6, 3, 3]
    take = g.add("take", o.Take(np.array([0, 2, 4]), 2), [n1])  # [6, 3, 3]
    cat = g.add("cat", o.Concat(0), [pool, take])  # [12, 3, 3]
    spool = g.add("spool", o.SumPool((2, 2), (1, 1), (0, 0, 1, 1)), [cat])  # [12, 3, 3]
    n2 = neuron("n2", spool, varying=(1,))
    flat = g.add("flat", o.Reshape((12, 9)), [n2])
    d1 = g.add("d1", o.Synapse(w(9, 4)), [flat])  # [12, 4]
    n3 = neuron("n3", d1, varying=(1,), negative=True)
    a = g.add("a", o.Reshape((3, 4, 9)), [n2])
    b = g.add("b", o.Take(np.arange(9), 0), [n3])  # [9, 4]
    b1 = g.add("b1", o.Reshape((1, 9, 4)), [b])
    mm = g.add("mm", o.TDMatMul(), [a, b1])  # [3, 4, 4]: B broadcast over the batch
    n4 = neuron("n4", mm, varying=())
    r1 = g.add("r1", o.ReduceSum((0, 2), keepdims=True), [n4])  # [1, 4, 1]: two runs of axes
    r1 = g.add("r1_row", o.Reshape((1, 4)), [r1])
    d2 = g.add("d2", o.Synapse(w(4, 4)), [n3])  # [12, 4]
    add = g.add("add", o.AddCurrent(), [d2, r1])  # broadcast [1, 4] -> [12, 4]
    n5 = neuron("n5", add, varying=(0,))
    d3 = g.add("d3", o.Synapse(w(4, 5)), [n5])  # [12, 5]
    r2 = g.add("r2", o.ReduceSum((0,)), [d3])
    out = g.add("out", o.Readout(1.0, np.zeros(5), w(5)), [r2])
    g.outputs = [out]
    g.meta.update(T=levels)
    g = InsertDif(delay, kind).run(g).graph
    verify(g)
    return g


def _compile_kind(path: Path, neuron: str, delay: str | int) -> Graph:
    if delay != "latency":
        return snncc.compile(path, T=7, neuron=neuron, delay=delay).graph
    shortest = snncc.compile(path, T=7, delay="none")  # the budget that cuts every window
    calib = np.random.default_rng(6).uniform(0, 1, (48,) + shortest.input_shape)
    return snncc.compile(path, T=7, neuron=neuron, latency=shortest.steps,
                         calibrate=calib).graph


@pytest.fixture(scope="session")
def build(tiny_models, tmp_path_factory):
    """Build a model's project on first request: name -> Built (cached for the session)."""
    require_tool("g++")
    require_tool("make")
    cache: dict[str, Built] = {}

    def get(name: str) -> Built:
        if name in cache:
            return cache[name]
        folder = tmp_path_factory.mktemp(name)
        if name == "cnn":
            cache[name] = _via_cli(tiny_models["cnn"], folder / "build")
        elif name == "example":
            if not EXAMPLE_MODEL.exists():
                pytest.skip("the bundled example is not trained yet")
            x = np.load(EXAMPLE / "digits_test.npz")["x"][:24]
            cache[name] = _emit(snncc.compile(EXAMPLE_MODEL, T=7).graph, folder, x)
        elif name == "transformer_signed":
            graph = _with_negative_signs(snncc.compile(tiny_models["transformer"], T=7).graph)
            cache[name] = _emit(graph, folder)
        elif name in KINDS:
            model, neuron, delay = KINDS[name]
            graph = (_exotic_snn(delay=delay, kind=neuron) if model == "exotic" else
                     _compile_kind(tiny_models[model], neuron, delay))
            cache[name] = _emit(graph, folder)
        elif name.startswith("exotic"):
            cache[name] = _emit(_exotic_snn(delay=name.partition("_")[2] or "exact"),
                                folder)
        elif name == "transformer_delay2":
            cache[name] = _emit(snncc.compile(tiny_models["transformer"], T=7, delay=2).graph,
                                folder)
        else:
            cache[name] = _emit(snncc.compile(tiny_models[name], T=7).graph, folder)
        return cache[name]

    return get


# --neuron signed and multi: name -> (model, neuron kind, delay). Signed neurons with
# delays "none" and 1 fire before their input is complete, so they take spikes back;
# "latency": --latency at the shortest budget, every firing window cut short (t_last).
KINDS = {
    "transformer_multi": ("transformer", "multi", "exact"),
    "transformer_signed_none": ("transformer", "signed", "none"),
    "transformer_signed_1": ("transformer", "signed", 1),
    "transformer_signed_latency": ("transformer", "signed", "latency"),
    "cnn_multi": ("cnn", "multi", "exact"),
    "cnn_signed_none": ("cnn", "signed", "none"),
    "transformer_spiking_input_multi": ("transformer_spiking_input", "multi", "exact"),
    "transformer_spiking_input_signed_1": ("transformer_spiking_input", "signed", 1),
    "exotic_multi": ("exotic", "multi", "exact"),
    "exotic_signed_none": ("exotic", "signed", "none"),
}
SIGNED = [k for k, v in KINDS.items() if v[1] == "signed"]
MULTI = [k for k, v in KINDS.items() if v[1] == "multi"]
MODELS = ["cnn", "transformer", "transformer_spiking_input", "transformer_signed",
          "transformer_delay2", "exotic", "exotic_none", "example", *KINDS]


# ---------------------------------------------------------------- bit-exact C simulation


@pytest.mark.parametrize("name", MODELS)
def test_csim_equals_interpreter(build, name):
    b = build(name)
    assert b.run.returncode == 0, b.run.stdout + b.run.stderr
    assert b.run.stdout.rstrip().endswith("PASS")
    expected = golden(b.graph, b.x)
    n = len(b.x)
    assert n >= 20
    counts = b.read("csim_spike_counts.dat")
    layout = b.summary["spike_counts_layout"]
    assert [e["name"] for e in layout] == [m.name for m in b.graph.ops(o.Neuron)]
    names = layer_names(b.graph)
    assert [e["layer"] for e in layout] == [names[m.name] for m in b.graph.ops(o.Neuron)]
    for entry in layout:
        got = counts[:, entry["offset"]:entry["offset"] + entry["size"]]
        want = expected.counts[entry["name"]].reshape(n, -1)
        assert np.array_equal(got, want), f"{name}: layer {entry['name']} differs"
        # the layer as snncc's tables, counts and report.json name it, then its ONNX node
        assert re.search(rf"layer {re.escape(entry['layer'])} +(\d+)/\1 +spike counts equal"
                         rf" +\({re.escape(entry['origin'])}\)", b.run.stdout)
    logits = b.read("csim_logits.dat")
    assert np.array_equal(logits, expected.logits.reshape(n, -1))


def test_csim_exercises_every_layer(build):
    """The golden vectors are not trivial: spike counts span the levels, logits differ."""
    b = build("transformer")
    counts = b.read("csim_spike_counts.dat")
    assert set(np.unique(counts)) == set(range(8))
    assert len({tuple(r) for r in b.read("csim_logits.dat")}) == len(b.x)


def test_testbench_reports_a_difference(build):
    """Change one golden spike count: the testbench names it and fails."""
    b = build("transformer")
    data = b.folder / "tb_data"
    broken = b.folder / "tb_broken"
    broken.mkdir(exist_ok=True)
    for f in data.glob("tb_*.dat"):
        (broken / f.name).write_text(f.read_text())
    rows = (broken / "tb_spike_counts.dat").read_text().split("\n")
    first = rows[2].split()
    first[70] = str((int(first[70]) + 1) % 8)
    rows[2] = " ".join(first)
    (broken / "tb_spike_counts.dat").write_text("\n".join(rows))
    run = subprocess.run([str(b.folder / f"{b.summary['top']}_csim"), str(broken)],
                         capture_output=True, text=True)
    assert run.returncode == 1
    assert run.stdout.rstrip().endswith("FAIL")
    layer = b.summary["spike_counts_layout"][1]["layer"]
    assert f"first difference: input 2, layer {layer}, neuron 6:" in run.stdout


# ---------------------------------------------------------------- the emitted code


def _functions(source: str) -> dict[str, str]:
    """name -> body of every function template in snn_kernels.h."""
    bodies = {}
    for m in re.finditer(r"\n(?:inline )?\w+ (\w+)\(([^)]*)\) \{\n", source):
        depth, i = 1, m.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(source[i], 0)
            i += 1
        bodies[m.group(1)] = m.group(2) + source[m.end():i]
    return bodies


def _code(text: str) -> str:
    """C++ without comments and pragmas."""
    text = re.sub(r"//[^\n]*", "", text)
    return "\n".join(line for line in text.split("\n") if not line.strip().startswith("#"))


def _multiplications(code: str) -> list[str]:
    """Every `a * b` whose operands are not both UPPER_CASE compile-time constants."""
    found = []
    for m in re.finditer(r"([\w\]\)]+)\s*\*\s*([\w\(]+)", code):
        if not all(re.fullmatch(r"[A-Z][A-Z0-9_]*", g) for g in m.groups()):
            found.append(m.group(0))
    return found


def test_spike_driven_kernels_do_not_multiply(build):
    b = build("cnn")
    kernels = _functions((b.folder / "firmware" / "snn_kernels.h").read_text())
    assert {"dense_spikes", "conv_spikes", "dif", "dif_signed", "td_matmul",
            "td_maxpool"} <= set(kernels)
    for name, body in kernels.items():
        products = _multiplications(_code(body))
        if name.endswith("_analog"):
            assert products, f"{name} is the MAC kernel"
        else:
            assert not products, f"{name} multiplies: {products}"


@pytest.mark.parametrize("name", ["cnn", "transformer", "transformer_spiking_input",
                                  "transformer_signed", "exotic", *MULTI,
                                  "transformer_signed_none"])
def test_only_the_analog_layer_multiplies(build, name):
    b = build(name)
    top = (b.folder / "firmware" / f"{b.summary['top']}.cpp").read_text()
    assert not _multiplications(_code(top))
    analog_calls = re.findall(r"snn::(\w+_analog)<", top)
    analog = [n for n in b.graph.ops(o.Synapse) if n.op.analog]
    assert len(analog_calls) == len(analog) == len(b.summary["mac_layers"])
    if name in ("transformer_signed", "exotic"):
        assert "snn::dif_signed<" in top


# ---------------------------------------------------------------- signed and multi neurons


def _engine_trains(graph: Graph, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every neuron's spikes over its window, from the interpreter's step engine (signed
    neurons: -1, 0, +1; multi: the number sent at each step)."""
    p = plan.build(graph)
    trains, _, _ = plan.run_steps(p, x, p.steps)
    return {name: s.data.astype(np.int64) for name, s in trains.items()}


def _calls(top: str) -> list[str]:
    return re.findall(r"snn::(\w+)<", top)


@pytest.mark.parametrize("name", SIGNED)
def test_signed_neurons_take_spikes_back(build, name):
    """Signed neurons that fire early send -1 spikes (which the C simulation, equal to the
    interpreter, reproduces); every kernel on their spikes adds or subtracts."""
    b = build(name)
    assert b.run.returncode == 0, b.run.stdout + b.run.stderr
    trains = _engine_trains(b.graph, b.x)
    assert any((t < 0).any() for t in trains.values()), "no spike was taken back"
    assert all(t.min() >= -1 and t.max() <= 1 for t in trains.values())
    calls = _calls((b.folder / "firmware" / f"{b.summary['top']}.cpp").read_text())
    assert calls.count("dif_ternary") == len(b.graph.ops(o.Neuron))
    assert {"dif", "dif_signed", "td_matmul", "td_maxpool"}.isdisjoint(calls)
    assert {"dense_ternary"} <= set(calls)
    if name.endswith("_latency"):
        assert all(n.op.t_last >= 0 for n in b.graph.ops(o.Neuron))


@pytest.mark.parametrize("name", MULTI)
def test_multi_neurons_send_numbers_on_lines(build, name):
    """Multi neurons send their code at once, as a number that needs several lines; every
    kernel on spikes takes weighted lines."""
    b = build(name)
    assert b.run.returncode == 0, b.run.stdout + b.run.stderr
    trains = _engine_trains(b.graph, b.x)
    assert max(int(t.max()) for t in trains.values()) >= 2
    assert all(len(t) == 1 for t in trains.values())  # one step each
    calls = _calls((b.folder / "firmware" / f"{b.summary['top']}.cpp").read_text())
    assert calls.count("dif_multi") == len(b.graph.ops(o.Neuron))
    spike_kernels = {c for c in calls if c.startswith(("dense_", "conv_", "td_"))}
    assert spike_kernels <= {"dense_lines", "conv_lines", "td_matmul_lines",
                             "td_maxpool_codes", "dense_analog", "conv_analog"}, spike_kernels
    (enc,) = b.graph.ops(o.SpikeInput)
    assert ("encode_weighted" in calls) == (not enc.op.analog)


def test_spike_code_kernels_shift_and_add(build):
    """snn_spike_codes.h: no kernel multiplies; weighted lines are shifts of the rows."""
    b = build("transformer_multi")
    kernels = _functions((b.folder / "firmware" / CODED_HEADER).read_text())
    assert set(kernels) == CODED_KERNELS | {"shl", "line"}
    for name, body in kernels.items():
        assert not _multiplications(_code(body)), f"{name} multiplies"
    for name in ("dense_lines", "conv_lines", "td_matmul_lines"):
        assert "shl<cur_t>(" in kernels[name] and "line(" in kernels[name], name
    assert "<< b" in kernels["shl"] and ">> b" in kernels["line"]


@pytest.mark.parametrize("name", ["cnn", "cnn_multi", "cnn_signed_none"])
def test_spike_code_kernels_only_when_used(build, name):
    """The "if" projects stay as they were: snn_spike_codes.h is written and included only
    for signed and multi neurons."""
    b = build(name)
    used = name != "cnn"
    top = (b.folder / "firmware" / f"{b.summary['top']}.cpp").read_text()
    assert (f"firmware/{CODED_HEADER}" in b.summary["files"]) == used
    assert (b.folder / "firmware" / CODED_HEADER).is_file() == used
    assert (f'#include "{CODED_HEADER}"' in top) == used


def test_every_kernel_call_names_its_onnx_node(build):
    b = build("transformer")
    top = (b.folder / "firmware" / f"{b.summary['top']}.cpp").read_text()
    lines = top.split("\n")
    named = {}  # C name of each kernel call's node -> the ONNX node its comment names
    for i, line in enumerate(lines):
        if re.search(r"^\s+(if \(.*\) )?snn::\w+<", line) and "clear<" not in line:
            back = next(lines[j] for j in range(i, 0, -1) if " <- ONNX " in lines[j])
            node, origin = back.strip().removeprefix("// ").split(" <- ONNX ")
            named[node] = origin
    # every node but the input and the reshapes (views, no code) has a kernel call
    assert named == {re.sub(r"\W", "_", n.name): n.origin for n in b.graph.topo()
                     if not isinstance(n.op, o.Input | o.SpikeInput | o.Reshape)}


def test_weights_use_the_narrowest_type(build):
    b = build("cnn")
    text = (b.folder / "firmware" / "weights" / "conv_29_Conv.h").read_text()
    assert "static const int8_t w_conv_29_Conv[4][3][3][6]" in text
    header = (b.folder / "firmware" / "cnn.h").read_text()
    assert "typedef int16_t input_t;" in header  # 8-bit unsigned codes 0..255
    assert "typedef int8_t count_t;" in header


def test_project_layout(build):
    b = build("cnn")
    top = b.summary["top"]
    for rel in (f"firmware/{top}.cpp", f"firmware/{top}.h", "firmware/snn_kernels.h",
                f"{top}_test.cpp", "build_prj.tcl", "Makefile", "tb_data/tb_input_codes.dat",
                "tb_data/tb_spike_counts.dat", "tb_data/tb_output_logits.dat"):
        assert (b.folder / rel).is_file(), rel
    tcl = (b.folder / "build_prj.tcl").read_text()
    for step in ("csim_design", "csynth_design", "cosim_design", "export_design",
                 "set part ", "set clock_period "):
        assert step in tcl
    make = (b.folder / "Makefile").read_text()
    assert "-std=c++17 -O2 -Wall -Wextra -Werror -Wno-unknown-pragmas" in make
    assert "ROOT" not in make and str(ROOT) not in tcl


_VITIS_STUBS = r"""
set ::log {}
foreach cmd {open_project set_top add_files open_solution set_part create_clock
             csim_design csynth_design cosim_design export_design} {
  proc $cmd {args} "lappend ::log \[list $cmd {*}\$args\]"
}
proc exit {args} {}
set argv {cosim=1 part=xc7z020clg400-1 clock_period=10 unknown=1}
source build_prj.tcl
puts [join $::log \n]
"""


def test_build_script_runs_the_flow(build):
    """build_prj.tcl under tclsh with the Vitis commands stubbed: the steps it runs and
    the options -tclargs overrides."""
    tclsh = require_tool("tclsh")
    b = build("cnn")
    run = subprocess.run([tclsh], input=_VITIS_STUBS, cwd=b.folder, capture_output=True,
                         text=True, check=True)
    calls = run.stdout.splitlines()
    assert "set_top cnn" in calls
    assert "set_part xc7z020clg400-1" in calls
    assert "create_clock -period 10 -name default" in calls
    assert [c.split()[0] for c in calls if c.endswith("_design")] == [
        "csim_design", "csynth_design", "cosim_design"]


@pytest.mark.parametrize("name", ["transformer_signed", "exotic_multi", "exotic_signed_none"])
def test_code_is_also_cxx14(build, name):
    """Vitis HLS compiles C++14: the emitted code must not need more."""
    b = build(name)
    top = b.summary["top"]
    subprocess.run(["g++", "-std=c++14", "-fsyntax-only", "-Wall", "-Wextra", "-Werror",
                    "-Wno-unknown-pragmas", f"{top}_test.cpp", f"firmware/{top}.cpp"],
                   cwd=b.folder, check=True)


# ---------------------------------------------------------------- check()


@pytest.mark.parametrize("neuron", ["if", "signed", "multi"])
def test_check_accepts_compiled_models(tiny_models, neuron):
    graph = snncc.compile(tiny_models["transformer"], T=7, neuron=neuron).graph
    assert hls.check(graph) == []
    registry.check("hls", graph)


def test_check_refuses_ops_without_a_kernel(tiny_models):
    graph = import_onnx(tiny_models["cnn"])  # canonical float ops, not yet an SNN
    problems = [p for p in hls.check(graph) if "no kernel" in p.message]
    assert {p.op for p in problems} >= {"Conv", "QuantAct", "MaxPool"}
    assert all(p.node.startswith("/") for p in problems)  # the ONNX node names


def test_check_refuses_signed_spikes_meeting_lines():
    """No kernel takes signed spikes and numbers on lines at once (mixed neuron kinds)."""
    g = _exotic_snn(kind="signed")
    op = g.node("n3").op
    g.replace_op("n3", o.Neuron(op.sign, op.thresholds, op.levels, op.scale, op.t_fire,
                                "multi"))
    problems = hls.check(g)
    assert [(p.node, p.op) for p in problems] == [("mm", "TDMatMul")]
    assert "signed spikes and numbers on weighted lines" in problems[0].message


# ---------------------------------------------------------------- golden snapshot


def test_golden_snapshot(build):
    """The emitted project of the bundled example (sources and weights; not tb_data) is
    reviewed as a diff. SNNCC_UPDATE_GOLDEN=1 rewrites the snapshot."""
    b = build("example")
    folder = GOLDEN / "example"
    emitted = {rel: (b.folder / rel).read_text() for rel in b.summary["files"]}
    if UPDATE:
        for old in folder.rglob("*") if folder.exists() else []:
            if old.is_file():
                old.unlink()
        for rel, text in emitted.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_text(text)
        pytest.skip(f"rewrote {folder.relative_to(ROOT)}")
    assert folder.is_dir(), f"no snapshot; run with SNNCC_UPDATE_GOLDEN=1 to write {folder}"
    stored = {str(p.relative_to(folder)): p.read_text() for p in folder.rglob("*")
              if p.is_file()}
    diffs = []
    for rel in sorted(set(stored) | set(emitted)):
        diffs += difflib.unified_diff(stored.get(rel, "").splitlines(),
                                      emitted.get(rel, "").splitlines(),
                                      f"golden/{rel}", f"emitted/{rel}", lineterm="", n=2)
    assert not diffs, ("the emitted project changed (SNNCC_UPDATE_GOLDEN=1 accepts it):\n"
                       + "\n".join(diffs[:200]))


# ---------------------------------------------------------------- the parallelism knob


@pytest.mark.parametrize("model,parallel", [("cnn", 1), ("transformer", 2)])
def test_parallelism_knob_sets_the_unroll_factors(tiny_models, tmp_path, model, parallel):
    """--parallel (and a per-layer value) sets each synapse's unroll and weight partition
    factors to the Verilog engine's lanes (the largest divisor of the kernel's output loop
    up to them); the C simulation stays bit-exact."""
    graph = snncc.compile(tiny_models[model], T=7).graph
    first = graph.ops(o.Synapse)[1]
    full = parallel_knob.outputs(first)
    hw = parallel_knob.config(graph, parallel, {"layers": {first.origin: full}})
    x = default_inputs(graph, hls.N_TEST_INPUTS)
    b = _make_csim(graph, tmp_path, hls.emit(graph, tmp_path, x, hw=hw), x)
    assert b.run.returncode == 0 and b.run.stdout.rstrip().endswith("PASS"), b.run.stdout
    expected = golden(graph, x)
    assert np.array_equal(b.read("csim_logits.dat"), expected.logits.reshape(len(x), -1))
    top = (tmp_path / "firmware" / f"{b.summary['top']}.cpp").read_text()
    calls = re.findall(r"snn::(dense|conv)_\w+<([\d, ]+)>\(\w+, (w_\w+),", top)
    assert len(calls) == len(graph.ops(o.Synapse))
    for n, (kind, args, weights) in zip(graph.ops(o.Synapse), calls, strict=True):
        loop = parallel_knob.outputs(n) // (n.op.group if kind == "conv" else 1)
        lanes = hw.lanes(n)
        want = max(d for d in range(1, min(loop, lanes) + 1) if loop % d == 0)
        assert int(args.split(",")[-1]) == want, (n.origin, args)
        dim = 2 if kind == "dense" else 4
        clause = f"variable={weights} cyclic factor={want} dim={dim}"
        assert (clause in top) == (want > 1), (n.origin, clause)
    assert hw.lanes(first) == full and parallel < full


def _mixed(graph: Graph) -> dict:
    """A config mixing neuron layers' values: one neuron a cycle, a whole row (by layer
    name), the global value for the rest; and a synapse at one lane."""
    neurons, names = graph.ops(o.Neuron), layer_names(graph)
    rows = parallel_knob.rows(graph)
    return {"parallel": 2, "layers": {neurons[0].origin: 1,
                                      names[neurons[-1].name]: rows[neurons[-1].name],
                                      graph.ops(o.Synapse)[0].origin: 1}}


# (model, neuron kind, knob): lanes that span several threshold rows (the transformer's
# [tokens][features] tables, one neuron each), runs of one table (the CNN's planes), the
# sign tables (negative signs; the signed and multi kernels), configs mixing values
NEURON_KNOBS = [("transformer", "if", 1), ("transformer", "if", 4),
                ("transformer", "if", "mixed"), ("transformer_signed", "if", 2),
                ("cnn", "if", 2), ("cnn", "multi", "mixed"), ("transformer", "signed", 8)]


@pytest.mark.parametrize("model,neuron,knob", NEURON_KNOBS,
                         ids=[f"{m}-{n}-{k}" for m, n, k in NEURON_KNOBS])
def test_neuron_loops_take_the_knob(tiny_models, tmp_path, model, neuron, knob):
    """Each neuron layer's loop is unrolled by its neurons per cycle (the knob's value for
    the layer, the Verilog engine's NP) and its state banked to match; the C simulation
    stays bit-exact at every setting, and report.json gives both targets the same lanes."""
    from snncc.backends import verilog

    if model == "transformer_signed":
        graph = _with_negative_signs(snncc.compile(tiny_models["transformer"], T=7).graph)
    else:
        graph = _compile_kind(tiny_models[model], neuron, "none" if neuron == "signed"
                              else "exact")
    hw = (parallel_knob.config(graph, None, _mixed(graph)) if knob == "mixed" else
          parallel_knob.config(graph, knob))
    x = default_inputs(graph, hls.N_TEST_INPUTS)
    b = _make_csim(graph, tmp_path, hls.emit(graph, tmp_path, x, hw=hw), x)
    assert b.run.returncode == 0 and b.run.stdout.rstrip().endswith("PASS"), b.run.stdout
    expected = golden(graph, x)
    counts = b.read("csim_spike_counts.dat")
    for entry in b.summary["spike_counts_layout"]:
        got = counts[:, entry["offset"]:entry["offset"] + entry["size"]]
        assert np.array_equal(got, expected.counts[entry["name"]].reshape(len(x), -1))
    assert np.array_equal(b.read("csim_logits.dat"), expected.logits.reshape(len(x), -1))
    # the unroll factors the project holds: the Verilog engines' neurons per cycle
    design = verilog.lower(graph, hw)
    np_of = {e.node.name: dict(e.params).get("NP", dict(e.params)["D"])
             for e in design.engines if e.module == "snn_neuron"}
    top = (tmp_path / "firmware" / f"{b.summary['top']}.cpp").read_text()
    calls = re.findall(r"snn::(dif\w*)<(\d+), (\d+), (\d+), (\d+), (\d+)>"
                       r"\(\w+, (mem_\w+), (cnt_\w+),", top)
    neurons = graph.ops(o.Neuron)
    assert len(calls) == len(neurons)
    rows = parallel_knob.rows(graph)
    for n, (_, outer, mid, inner, _, unroll, mem, cnt) in zip(neurons, calls, strict=True):
        assert int(unroll) == hw.neuron_lanes(n, rows[n.name]) == np_of[n.name], n.origin
        assert int(outer) * int(mid) * int(inner) % int(unroll) == 0
        for state in (mem, cnt):
            clause = f"variable={state} cyclic factor={unroll}\n"
            assert (clause in top) == (int(unroll) > 1), (n.origin, clause)
    assert list(b.summary["parallel"]) == [  # every synapse and neuron layer
        n.origin for n in graph.topo() if isinstance(n.op, o.Synapse | o.Neuron)]
    assert {n.origin: b.summary["parallel"][n.origin] for n in neurons} == {
        n.origin: np_of[n.name] for n in neurons}
    if knob == "mixed":  # the named layers took their values
        assert np_of[neurons[0].name] == 1 and np_of[neurons[-1].name] == rows[neurons[-1].name]
    else:
        assert all(hw.neuron_lanes(n, rows[n.name]) == max(
            p for p in parallel_knob.legal_lanes(rows[n.name]) if p <= knob)
            for n in neurons if min(parallel_knob.legal_lanes(rows[n.name])) <= knob)
