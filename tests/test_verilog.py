"""The Verilog backend: lint, RTL simulation against the interpreter, synthesis, golden text.

Every design is emitted once per session (fixtures); the simulators run its self-checking
testbench, whose golden vectors are the interpreter's run (`golden`), and the tests read
the testbench's per-layer agreement. A missing tool fails the test in CI (`require_tool`).
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

import modelgen
import snncc
from conftest import EXAMPLE, require_tool
from snncc import ops as o
from snncc.app.cli import app
from snncc.backends import parallel as parallel_knob
from snncc.backends import verilog
from snncc.backends.common import default_inputs, golden
from snncc.backends.sim.engine import run_step
from snncc.backends.verilog import estimate
from snncc.intmath import Rounding
from snncc.ir import Graph, layer_names
from snncc.passes.insert_dif import InsertDif

GOLDEN = Path(__file__).parent / "golden" / "verilog"
EXAMPLE_MODEL = EXAMPLE / "digits_vit_qcdq.onnx"
TINY = ("cnn", "transformer", "transformer_spiking_input")
TINY_VECTORS = 3
EXAMPLE_VECTORS = 5
SNAPSHOT = ("rtl/snn_top.v", "tb/snn_tb.v", "Makefile", "synth/synth.ys", "synth/xilinx.ys",
            "synth/hierarchy.ys",
            "tb/places.hex")
SNAPSHOT_GLOBS = ("mem/*.hex",)  # weights, tables, the schedule: ~150 kB of text

pytestmark = pytest.mark.simulator


def _emit(model: Path, out: Path, x: np.ndarray | None = None) -> Path:
    compiled = snncc.compile(model, T=7)
    assert verilog.check(compiled.graph) == []
    verilog.emit(compiled.graph, out, vectors=TINY_VECTORS)
    if x is not None:
        verilog.write_vectors(compiled.graph, out, x)
    return out


def _example_inputs(n: int | None = None) -> np.ndarray:
    x = np.load(EXAMPLE / "digits_test.npz")["x"]
    return x if n is None else x[:n]


def _example_graph() -> Graph:
    """The bundled example's SNN, as the example designs are emitted from it."""
    return snncc.compile(EXAMPLE_MODEL, T=7).graph


def _need_example() -> None:
    if not EXAMPLE_MODEL.exists():
        pytest.skip("the bundled example is not built")


@pytest.fixture(scope="session")
def tiny_designs(tiny_models, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("verilog_tiny")
    return {name: _emit(tiny_models[name], root / name) for name in TINY}


@pytest.fixture(scope="session")
def example_design(tmp_path_factory) -> Path:
    _need_example()
    out = tmp_path_factory.mktemp("verilog_example") / "verilog"
    return _emit(EXAMPLE_MODEL, out, _example_inputs(EXAMPLE_VECTORS))


def _assert_bit_exact(result: dict, vectors: int, graph: Graph) -> None:
    """The testbench's summary: every spike count of every neuron layer and every logit
    of every vector equal to the interpreter's, layer by layer, and a cycle count each."""
    names = layer_names(graph)  # the LAYER lines name layers as snncc's tables do
    size = {names[n.name]: vectors * int(np.prod(n.shape)) for n in graph.ops(o.Neuron)}
    assert result["layers"] == {k: {"match": v, "total": v} for k, v in size.items()}
    (readout,) = graph.ops(o.Readout)
    logits = vectors * int(np.prod(readout.shape))
    assert result["logits"] == {"match": logits, "total": logits}
    assert (result["passed"], result["vectors"], result["vectors_ok"]) == (True, vectors,
                                                                          vectors)
    cycles = result["cycles"]
    assert len(cycles) == vectors and min(cycles) > 0
    assert (result["cycles_per_inference"]["min"], result["cycles_per_inference"]["max"]) == (
        min(cycles), max(cycles))


def _make(design: Path, target: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", target], cwd=design,
                          capture_output=True, text=True)


# ---------------------------------------------------------------- check


def _concat_graph() -> Graph:
    """Spiking input -> Concat -> dense synapse -> readout: Concat has no engine."""
    g = Graph("concat")
    g.add("x", o.Input(), shape=(4,), kind="float")
    g.inputs.append("x")
    g.add("codes", o.SpikeInput(np.array([0.1]), 0, 0, 7, Rounding.HALF_EVEN, False), ["x"])
    g.add("both", o.Concat(0), ["codes", "codes"], origin="/cat/Concat")
    g.add("current", o.Synapse(np.ones((8, 2), np.int64)), ["both"])
    g.add("logits", o.Readout(1.0, np.zeros(2)), ["current"])
    g.outputs.append("logits")
    return g


def _neuron(rng, shape, levels=7, t_fire=0, axis=None, negate=False) -> o.Neuron:
    """Random non-decreasing thresholds, per element of `axis` (or shared)."""
    th_shape = [1] * len(shape)
    if axis is not None:
        th_shape[axis] = shape[axis]
    start = rng.integers(-3, 4, th_shape + [1])
    thresholds = start + np.cumsum(rng.integers(1, 6, th_shape + [levels]), axis=-1)
    sign = np.ones(th_shape, np.int8)
    if negate:
        sign = np.where(rng.random(th_shape) < 0.3, -1, 1).astype(np.int8)
    return o.Neuron(sign, thresholds.astype(np.int64), levels, np.ones(1), t_fire)


def _weights(rng, *shape) -> np.ndarray:
    return rng.integers(-4, 5, shape).astype(np.int64)


def _spiking(g: Graph, shape: tuple[int, ...], hi: int = 5) -> None:
    g.add("x", o.Input(), shape=shape, kind="float")
    g.inputs.append("x")
    g.add("codes", o.SpikeInput(np.array([1 / hi]), 0, 0, hi, Rounding.HALF_EVEN, False),
          ["x"])


def _readout(g: Graph, last: str) -> Graph:
    shape = g.node(last).shape
    bias = np.arange(int(np.prod(shape))).reshape(shape) - 2
    g.add("logits", o.Readout(1.0, np.zeros(shape), bias), [last])
    g.outputs.append("logits")
    g.meta["T"] = 7
    return g


def _conv_graph(seed: int = 0) -> Graph:
    """Grouped strided conv with padding, mixed-sign per-channel neurons, an asymmetric
    TD max pool, a dilated conv with row-varying thresholds, a ReduceSum of spikes."""
    rng = np.random.default_rng(seed)
    g = Graph("convs")
    _spiking(g, (2, 6, 6))
    g.add("c1", o.Synapse(_weights(rng, 4, 1, 3, 3), kind="conv", strides=(2, 2),
                          pads=(1, 1, 1, 1), group=2), ["codes"])
    g.add("n1", _neuron(rng, (4, 3, 3), t_fire=5, axis=0, negate=True), ["c1"])
    g.add("p1", o.TDMaxPool((2, 2), (1, 1), (0, 0, 1, 1)), ["n1"])
    g.add("c2", o.Synapse(_weights(rng, 3, 4, 2, 2), kind="conv", pads=(1, 1, 0, 0),
                          dilations=(2, 2)), ["p1"])
    g.add("n2", _neuron(rng, g.node("c2").shape, t_fire=12, axis=1), ["c2"])
    g.add("sum", o.ReduceSum((1, 2)), ["n2"])
    g.add("n3", _neuron(rng, (3,), levels=4, t_fire=19), ["sum"])
    g.add("fc", o.Synapse(_weights(rng, 3, 5)), ["n3"])
    return _readout(g, "fc")


def _attention_graph(seed: int = 1) -> Graph:
    """A TD-MatMul without heads (q·kᵀ through a transpose), a gather with a repeated
    row, a residual add broadcasting one row, a reshape, negated neurons."""
    rng = np.random.default_rng(seed)
    g = Graph("attention")
    _spiking(g, (5, 6), hi=7)
    g.add("qc", o.Synapse(_weights(rng, 6, 4)), ["codes"])
    g.add("kc", o.Synapse(_weights(rng, 6, 4)), ["codes"])
    g.add("q", _neuron(rng, (5, 4), t_fire=6, axis=1), ["qc"])
    g.add("k", _neuron(rng, (5, 4), t_fire=6), ["kc"])
    g.add("kt", o.Transpose((1, 0)), ["k"])
    g.add("s", o.TDMatMul(), ["q", "kt"])
    g.add("a", _neuron(rng, (5, 5), levels=3, t_fire=13), ["s"])
    g.add("pick", o.Take(np.array([0, 2, 2, 4]), 0), ["a"])
    g.add("v", o.Synapse(_weights(rng, 5, 3)), ["pick"])
    g.add("side", o.Synapse(_weights(rng, 6, 3)), ["codes"])
    g.add("row", o.Take(np.array([1]), 0), ["side"])
    g.add("stream", o.AddCurrent(), ["v", "row"])
    g.add("n", _neuron(rng, (4, 3), t_fire=20, negate=True), ["stream"])
    g.add("flat", o.Reshape((12,)), ["n"])
    g.add("fc", o.Synapse(_weights(rng, 12, 4)), ["flat"])
    return _readout(g, "fc")


def _signed_analog_graph(seed: int = 5, conv: bool = False, channels: int = 3) -> Graph:
    """A signed 8-bit analog input (codes -128..127) into the multiplying first layer."""
    rng = np.random.default_rng(seed)
    g = Graph("signed")
    shape = (2, 4, 4) if conv else (3, 4)
    g.add("x", o.Input(), shape=shape, kind="float")
    g.inputs.append("x")
    g.add("codes", o.SpikeInput(np.array([0.01]), 0, -128, 127, Rounding.HALF_EVEN, True),
          ["x"])
    if conv:
        g.add("s", o.Synapse(_weights(rng, channels, 2, 3, 3), kind="conv", pads=(1, 1, 1, 1),
                             analog=True), ["codes"])
    else:
        g.add("s", o.Synapse(_weights(rng, 4, 5), analog=True), ["codes"])
    g.add("n", _neuron(rng, g.node("s").shape, t_fire=1, axis=0, negate=True), ["s"])
    size = int(np.prod(g.node("n").shape))
    g.add("flat", o.Reshape((size,)), ["n"])
    g.add("fc", o.Synapse(_weights(rng, size, 3)), ["flat"])
    return _readout(g, "fc")


def _signed_analog_conv_graph() -> Graph:
    return _signed_analog_graph(conv=True)


@pytest.mark.parametrize("build", [_conv_graph, _attention_graph, _signed_analog_graph,
                                   _signed_analog_conv_graph])
def test_icarus_matches_interpreter_synthetic(build, tmp_path):
    """Engine paths the model generator does not reach (see the graphs' docstrings)."""
    require_tool("iverilog")
    graph = build()
    assert verilog.check(graph) == []
    verilog.emit(graph, tmp_path / "verilog", vectors=4)
    gold = golden(graph, default_inputs(graph, 4))
    assert all(c.sum() > 0 for c in gold.counts.values()), "every layer should spike"
    result = verilog.run_simulation(tmp_path / "verilog", "icarus")
    _assert_bit_exact(result, 4, graph)


@pytest.mark.parametrize("delay", ["none", 2])
def test_icarus_matches_interpreter_other_delays(tiny_models, tmp_path, delay):
    """Neurons firing while their input still arrives (not exact mode)."""
    require_tool("iverilog")
    graph = snncc.compile(tiny_models["transformer_spiking_input"], T=7, delay=delay).graph
    verilog.emit(graph, tmp_path / "verilog", vectors=3)
    _assert_bit_exact(verilog.run_simulation(tmp_path / "verilog", "icarus"), 3, graph)


def test_check_refuses_an_op_without_engine():
    (problem,) = verilog.check(_concat_graph())
    assert problem.node == "/cat/Concat" and problem.op == "Concat"
    assert "no engine for Concat" in problem.message and problem.fix


def test_check_accepts_the_models(tiny_models):
    for name in TINY:
        assert verilog.check(snncc.compile(tiny_models[name], T=7).graph) == []


# ---------------------------------------------------------------- lint


def test_lint_clean_example(example_design):
    require_tool("verilator")
    done = _make(example_design, "lint")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "%Warning" not in done.stdout + done.stderr


@pytest.mark.parametrize("name", TINY)
def test_lint_clean_tiny(tiny_designs, name):
    require_tool("verilator")
    done = _make(tiny_designs[name], "lint")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "%Warning" not in done.stdout + done.stderr


# ---------------------------------------------------------------- simulation


@pytest.mark.parametrize("name", TINY)
def test_icarus_matches_interpreter_tiny(tiny_models, tiny_designs, name):
    require_tool("iverilog")
    require_tool("vvp")
    _assert_bit_exact(verilog.run_simulation(tiny_designs[name], "icarus"), TINY_VECTORS,
                      snncc.compile(tiny_models[name], T=7).graph)


@pytest.mark.parametrize("name", TINY)
def test_verilator_matches_interpreter_tiny(tiny_models, tiny_designs, name):
    require_tool("verilator")
    _assert_bit_exact(verilog.run_simulation(tiny_designs[name], "verilator"), TINY_VECTORS,
                      snncc.compile(tiny_models[name], T=7).graph)


def test_icarus_matches_interpreter_example(example_design):
    require_tool("iverilog")
    require_tool("vvp")
    _assert_bit_exact(verilog.run_simulation(example_design, "icarus"), EXAMPLE_VECTORS,
                      _example_graph())


def test_verilator_matches_interpreter_example(example_design):
    """Bit-exact, and the estimate of the cycles (from the design and the interpreter's
    spikes, no simulator) within 20% of the cycles the RTL takes on each input."""
    require_tool("verilator")
    result = verilog.run_simulation(example_design, "verilator")
    graph = _example_graph()
    _assert_bit_exact(result, EXAMPLE_VECTORS, graph)
    cycles = estimate.cycles(graph, x=_example_inputs(EXAMPLE_VECTORS))
    _assert_cycles_close(cycles["per_input"], result["cycles"])


def _assert_cycles_close(estimated: list[int], measured: list[int]) -> None:
    assert len(estimated) == len(measured)
    for e, m in zip(estimated, measured, strict=True):
        assert abs(e - m) <= 0.2 * m, (estimated, measured)


@pytest.mark.slow
def test_verilator_matches_interpreter_example_test_split(tmp_path):
    """Every input of the example's test split, bit for bit."""
    require_tool("verilator")
    _need_example()
    x = _example_inputs()
    out = _emit(EXAMPLE_MODEL, tmp_path / "verilog", x)
    result = verilog.run_simulation(out, "verilator",
                                    verilator_flags=verilog.VERILATOR_FAST_MODEL)
    _assert_bit_exact(result, len(x), _example_graph())


def test_testbench_reports_a_mismatch(tiny_designs, tmp_path):
    """A wrong golden count fails the run and names the layer and the neuron."""
    require_tool("iverilog")
    design = shutil.copytree(tiny_designs["cnn"], tmp_path / "cnn")
    counts = design / "tb" / "vectors" / "counts.hex"
    lines = counts.read_text().split()
    lines[4] = format((int(lines[4], 16) + 1) % 4, "x")
    counts.write_text("\n".join(lines) + "\n")
    done = _make(design, "sim-icarus")
    assert "MISMATCH vector 0 layer 0 neuron 4: count" in done.stdout
    assert "RESULT FAIL 2/3 vectors" in done.stdout


# ---------------------------------------------------------------- golden vectors, summary


def test_vectors_are_the_interpreter_golden(example_design):
    """The testbench's vectors hold golden(graph, x): every input code, every neuron's
    spike count (layer after layer, logical order), every logit."""
    compiled = snncc.compile(EXAMPLE_MODEL, T=7)
    gold = golden(compiled.graph, _example_inputs(EXAMPLE_VECTORS))
    folder = example_design / "tb" / "vectors"

    def read(name: str) -> list[str]:
        return (folder / name).read_text().split()

    assert int(read("count.txt")[0]) == EXAMPLE_VECTORS
    assert [int(c, 16) for c in read("codes.hex")] == gold.codes.ravel().tolist()
    neurons = compiled.graph.ops(o.Neuron)
    counts = [gold.counts[n.name][v].ravel() for v in range(EXAMPLE_VECTORS) for n in neurons]
    assert [int(c, 16) for c in read("counts.hex")] == np.concatenate(counts).tolist()
    assert len(read("logits.hex")) == gold.logits.size


def test_emit_summary(tiny_models, tmp_path):
    compiled = snncc.compile(tiny_models["transformer"], T=7)
    summary = verilog.emit(compiled.graph, tmp_path / "verilog", vectors=2)
    assert summary["steps"] == compiled.steps and summary["vectors"] == 2
    assert summary["probes"] == [n.name for n in compiled.graph.ops(o.Neuron)]
    assert {"Makefile", "rtl/snn_top.v", "tb/snn_tb.v", "mem/schedule.hex"} <= set(
        summary["files"])
    assert summary["analog_first_layer"] and summary["buffer_bits"] > 0
    assert all((tmp_path / "verilog" / f).is_file() for f in summary["files"])


# ---------------------------------------------------------------- synthesis


def _analog_engines(graph: Graph) -> list[str]:
    return [e.name for e in verilog.lower(graph).engines
            if isinstance(e.node.op, o.Synapse) and e.node.op.analog]


@pytest.mark.parametrize("name", TINY)
def test_only_the_analog_layer_multiplies_tiny(tiny_models, tiny_designs, name):
    """In the unflattened hierarchy, $mul cells sit only in the analog first layer's
    engine (none with a spiking input); every spike-driven engine only adds."""
    require_tool("yosys")
    analog = _analog_engines(snncc.compile(tiny_models[name], T=7).graph)
    assert len(analog) == (0 if name == "transformer_spiking_input" else 1)
    found = verilog.check_hierarchy(tiny_designs[name])
    assert found["multiplying_instances"] == analog
    assert set(found["mul_cells"]) <= {"snn_dense", "snn_conv", "snn_conv_rows"}


# After the emitted synth/hierarchy.ys (the hierarchy as elaborated: hierarchy.json,
# top.v), the coarse (word-level) stage of Yosys's generic `synth` on it, per module (not
# flattened), arithmetic kept as $add/$sub/$mul (no alumacc): a real synthesis of every
# engine in about 1.5 CPU minutes, where `make synth` takes tens of minutes on the example.
_COARSE_YS = """
select -clear
synth -top snn_top -run coarse:fine -noalumacc
tee -q -o build/synth/coarse.json stat -json
select snn_top
write_verilog -selected -noattr build/synth/coarse_top.v
"""


@pytest.mark.slow
def test_only_the_analog_layer_multiplies_example(example_design):
    """Yosys synthesizes the example's top (the coarse stage of `synth`, every engine
    kind); its cell report parses, and the only $mul cells are in the analog first
    layer's engine, as elaborated and after synthesis: the spike-driven layers only add."""
    require_tool("yosys")
    analog = _analog_engines(snncc.compile(EXAMPLE_MODEL, T=7).graph)
    assert len(analog) == 1
    folder = example_design / "build" / "synth"
    folder.mkdir(parents=True, exist_ok=True)
    script = (example_design / "synth" / "hierarchy.ys").read_text() + _COARSE_YS
    (folder / "coarse.ys").write_text(script)
    done = subprocess.run(["yosys", "-q", "-s", "build/synth/coarse.ys"], cwd=example_design,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert verilog.multiplying_instances(example_design) == analog
    assert verilog.multiplying_instances(example_design, "coarse.json",
                                         "coarse_top.v") == analog
    stat = _stat_json(folder / "coarse.json")
    kinds = {name.rsplit("\\", 1)[-1] for name in stat["modules"]}
    assert {"snn_top", "snn_conv_rows", "snn_dense", "snn_neuron", "snn_td_matmul_rows",
            "snn_td_maxpool", "snn_add", "snn_reduce", "snn_readout"} <= kinds
    cells = stat["design"]["num_cells_by_type"]
    assert stat["design"]["num_cells"] == sum(cells.values()) > 0
    assert cells["$add"] > 0 and "$alu" not in cells and "$macc" not in cells
    muls = {name.rsplit("\\", 1)[-1]: m["num_cells_by_type"]["$mul"]
            for name, m in stat["modules"].items()
            if "$mul" in m.get("num_cells_by_type", {})}
    assert list(muls) == ["snn_conv_rows"] and cells["$mul"] == sum(muls.values())


def _stat_json(path: Path) -> dict:
    """A Yosys `stat -json` file's "modules" and "design" objects, each decoded on its
    own (Yosys 0.23 prints the text hierarchy between them)."""
    text, decoder = path.read_text(), json.JSONDecoder()
    return {key: decoder.raw_decode(text, text.index("{", text.index(f'"{key}":')))[0]
            for key in ("modules", "design")}


def _cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


_CYCLES = re.compile(r"^CYCLES min (\d+) max (\d+) mean (\d+)$", re.M)
_VECTOR = re.compile(r"^VECTOR \d+ cycles (\d+) ok$", re.M)


@pytest.mark.slow
def test_report_json_gets_cycles_and_synthesis_figures(tmp_path):
    """On a tiny transformer (4 tokens x 4 channels, analog input): `snncc verify` puts the
    RTL cycles per inference in report.json as numbers, those the testbench prints, and
    `snncc report --synth` the Yosys figures (generic gates and iCE40), those of Yosys's
    stat -json; only the analog first layer multiplies."""
    require_tool("iverilog")
    require_tool("yosys")
    model, build = tmp_path / "tiny.onnx", tmp_path / "build"
    onnx.save(modelgen.tiny_transformer(tokens=4, dim=4), model)
    x = np.random.default_rng(3).uniform(0, 1, (3, 4, 4))
    np.save(tmp_path / "x.npy", x)
    res = _cli("compile", model, "-T", "7", "--target", "verilog", "-o", build)
    assert res.exit_code == 0, res.output
    res = _cli("verify", build, "--input", tmp_path / "x.npy", "--rtl-simulator", "icarus")
    assert res.exit_code == 0, res.output
    rungs = json.loads((build / "report.json").read_text())["verify"]["rungs"]
    (rung,) = [r for r in rungs if r["name"].startswith("interpreter ↔ RTL simulation")]
    cycles = rung["cycles_per_inference"]

    rtl = build / "verilog"  # what the testbench prints on the same inputs
    verilog.write_vectors(snncc.load(build / "model.snn").graph, rtl, x)
    printed = _make(rtl, "sim-icarus").stdout
    low, high, mean = map(int, _CYCLES.search(printed).groups())
    per_input = [int(c) for c in _VECTOR.findall(printed)]
    assert len(per_input) == len(x) and min(per_input) > 0
    assert (cycles["min"], cycles["max"], cycles["per_input"]) == (low, high, per_input)
    assert cycles["mean"] == pytest.approx(np.mean(per_input)) and int(cycles["mean"]) == mean
    assert all(isinstance(cycles[k], int) for k in ("min", "max"))

    res = _cli("report", build, "--input", tmp_path / "x.npy", "--synth")
    assert res.exit_code == 0, res.output
    report = json.loads((build / "report.json").read_text())
    assert report["verify"]["rungs"] == rungs  # kept
    synth = report["hardware"]["synthesis"]
    folder = rtl / "build" / "synth"
    memory, generic, ice40 = (_stat_json(folder / f"{k}.json")["design"]
                              for k in ("memory", "generic", "ice40"))
    assert synth["generic"] == {"cells": generic["num_cells"],
                                "memory_bits": memory["num_memory_bits"],
                                "memories": memory["num_memories"],
                                "cells_by_type": generic["num_cells_by_type"]}
    by_type = ice40["num_cells_by_type"]
    assert synth["ice40"] == {
        "cells": ice40["num_cells"], "luts": by_type["SB_LUT4"],
        "ffs": sum(n for k, n in by_type.items() if k.startswith("SB_DFF")),
        "carries": by_type.get("SB_CARRY", 0), "brams": by_type.get("SB_RAM40_4K", 0),
        "bram_bits": 4096 * by_type.get("SB_RAM40_4K", 0), "cells_by_type": by_type}
    assert synth["ice40"]["luts"] > 0 and synth["ice40"]["ffs"] > 0
    assert synth["generic"]["cells"] > 0 and synth["generic"]["memory_bits"] > 0
    hierarchy = _stat_json(folder / "hierarchy.json")["modules"]
    muls = sum(m.get("num_cells_by_type", {}).get("$mul", 0) for m in hierarchy.values())
    # the analog first layer: snn_dense, or snn_conv_rows's walk through an identity port
    assert muls > 0 and len(synth["mul_cells"]) == 1
    assert synth["mul_cells"].get("snn_dense", synth["mul_cells"].get("snn_conv_rows")) == muls
    assert "verilog synthesis (ice40): luts" in res.output


# ---------------------------------------------------------------- neuron kinds


# (model, --neuron, --delay): between them every engine takes signed spikes and numbers on
# weighted lines; with delay none or 1 signed neurons send negative spikes; "latency":
# --latency at the shortest budget, every firing window cut short (t_last)
KINDS = (
    ("transformer", "multi", "exact"),  # TD-MatMul, residual adds, analog first layer
    ("transformer", "signed", "none"),
    ("transformer", "signed", 1),
    ("transformer", "signed", "latency"),
    ("cnn", "multi", "exact"),  # convolutions, TD max pools
    ("cnn", "signed", "none"),
    ("cnn", "signed", 1),
    ("transformer_spiking_input", "multi", "exact"),  # the input's codes on weighted lines
    ("transformer_spiking_input", "signed", "none"),  # unit input spikes, signed neurons
)


def _kind_id(kind: tuple) -> str:
    return "-".join(map(str, kind))


def _compile_kind(model: Path, neuron: str, delay: str | int) -> Graph:
    if delay != "latency":
        return snncc.compile(model, T=7, neuron=neuron, delay=delay).graph
    shortest = snncc.compile(model, T=7, delay="none")  # a budget that cuts every window
    calib = np.random.default_rng(6).uniform(0, 1, (48,) + shortest.input_shape)
    graph = snncc.compile(model, T=7, neuron=neuron, latency=shortest.steps,
                          calibrate=calib).graph
    assert all(n.op.t_last >= 0 for n in graph.ops(o.Neuron))
    return graph


@pytest.fixture(scope="session")
def kind_designs(tiny_models, tmp_path_factory) -> dict[tuple, tuple[Path, Graph]]:
    """kind -> (its design, its graph), every design emitted once per session."""
    root = tmp_path_factory.mktemp("verilog_kinds")
    designs = {}
    for kind in KINDS:
        graph = _compile_kind(tiny_models[kind[0]], kind[1], kind[2])
        assert verilog.check(graph) == []
        designs[kind] = (root / _kind_id(kind), graph)
        verilog.emit(graph, designs[kind][0], vectors=TINY_VECTORS)
    return designs


def _negative_spikes(graph: Graph, x: np.ndarray) -> int:
    """How many -1 spikes the step engine's neurons send on inputs `x`."""
    trains = run_step(graph, x, trace=True).trains or {}
    return sum(int(np.count_nonzero(t < 0)) for t in trains.values())


def _of_kind(build, neuron: str, delay: str | int, late: tuple[str, ...] = ()) -> Graph:
    """The graph `build()` with neurons of kind `neuron` and firing steps by `delay`
    (insert-dif); the neurons in `late` fire one step later than that."""
    graph = build()
    InsertDif(delay=delay, neuron=neuron).run(graph)
    for name in late:
        op = graph.node(name).op
        graph.replace_op(name, o.Neuron(op.sign, op.thresholds, op.levels, op.scale,
                                        op.t_fire + 1, op.mode, op.t_last))
    return graph


def test_backend_offers_every_neuron_kind():
    assert set(verilog.NEURON_MODES) == {"if", "signed", "multi"}


@pytest.mark.parametrize("kind", KINDS, ids=_kind_id)
def test_icarus_matches_interpreter_neuron_kinds(kind_designs, kind):
    """Signed and multi neurons: every spike count and logit as the step engine's; with
    a short delay the signed neurons do take spikes back."""
    require_tool("iverilog")
    design, graph = kind_designs[kind]
    negative = _negative_spikes(graph, default_inputs(graph, TINY_VECTORS))
    assert (negative > 0) == (kind[1] == "signed" and kind[2] != "exact")
    _assert_bit_exact(verilog.run_simulation(design, "icarus"), TINY_VECTORS, graph)


@pytest.mark.parametrize("kind", [("transformer_spiking_input", "multi", "exact"),
                                  ("transformer", "signed", 1)], ids=_kind_id)
def test_verilator_matches_interpreter_neuron_kinds(kind_designs, kind):
    require_tool("verilator")
    design, graph = kind_designs[kind]
    _assert_bit_exact(verilog.run_simulation(design, "verilator"), TINY_VECTORS, graph)


@pytest.mark.parametrize("build, neuron, delay, late", [
    (_conv_graph, "signed", "none", ()),  # -1 spikes into a TD max pool and a convolution
    (_conv_graph, "multi", "exact", ()),
    (_attention_graph, "signed", 1, ()),
    (_attention_graph, "multi", "exact", ("k",)),  # B after A: the C_A(t-1).S_B(t) term
], ids=["conv-signed", "conv-multi", "attention-signed", "attention-multi-late-b"])
def test_icarus_matches_interpreter_neuron_kinds_synthetic(build, neuron, delay, late,
                                                           tmp_path):
    """Engine paths the tiny models do not reach with these kinds (see the parameters)."""
    require_tool("iverilog")
    graph = _of_kind(build, neuron, delay, late)
    assert verilog.check(graph) == []
    verilog.emit(graph, tmp_path / "verilog", vectors=4)
    x = default_inputs(graph, 4)
    gold = golden(graph, x)
    assert all(c.sum() > 0 for c in gold.counts.values()), "every layer should spike"
    assert (_negative_spikes(graph, x) > 0) == (neuron == "signed")
    _assert_bit_exact(verilog.run_simulation(tmp_path / "verilog", "icarus"), 4, graph)


@pytest.mark.parametrize("kind", KINDS, ids=_kind_id)
def test_lint_clean_neuron_kinds(kind_designs, kind):
    require_tool("verilator")
    done = _make(kind_designs[kind][0], "lint")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "%Warning" not in done.stdout + done.stderr


def test_multi_design_takes_fewer_cycles(tiny_designs, kind_designs):
    """The same model and inputs: multi neurons (one step a layer) need fewer cycles per
    inference than if neurons (up to L steps a layer)."""
    require_tool("iverilog")
    name = "transformer_spiking_input"
    unit = verilog.run_simulation(tiny_designs[name], "icarus")["cycles_per_inference"]
    multi = verilog.run_simulation(kind_designs[(name, "multi", "exact")][0], "icarus")[
        "cycles_per_inference"]
    assert multi["max"] < unit["min"]


@pytest.mark.parametrize("name", ["transformer", "transformer_spiking_input"])
def test_only_the_analog_layer_multiplies_multi(kind_designs, name):
    """Numbers on weighted lines are shifts and adds: in the unflattened hierarchy of a
    multi design, $mul cells sit only in the analog first layer's engine."""
    require_tool("yosys")
    design, graph = kind_designs[(name, "multi", "exact")]
    found = verilog.check_hierarchy(design)
    assert found["multiplying_instances"] == _analog_engines(graph)
    assert set(found["mul_cells"]) <= {"snn_dense", "snn_conv", "snn_conv_rows"}


def test_multi_design_synthesizes_without_multipliers(tmp_path):
    """The coarse (word-level) stage of Yosys's `synth` on a tiny multi transformer with a
    spiking input (4 tokens x 4 channels): every engine only adds, compares and shifts
    ($shl: a line's weight), no $mul cell anywhere."""
    require_tool("yosys")
    model = tmp_path / "tiny.onnx"
    onnx.save(modelgen.tiny_transformer(tokens=4, dim=4, spike_input=True), model)
    design = tmp_path / "verilog"
    verilog.emit(snncc.compile(model, T=7, neuron="multi").graph, design, vectors=1)
    folder = design / "build" / "synth"
    folder.mkdir(parents=True)
    (folder / "coarse.ys").write_text((design / "synth" / "hierarchy.ys").read_text()
                                      + _COARSE_YS)
    done = subprocess.run(["yosys", "-q", "-s", "build/synth/coarse.ys"], cwd=design,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    stat = _stat_json(folder / "coarse.json")
    kinds = {name.rsplit("\\", 1)[-1] for name in stat["modules"]}
    assert {"snn_dense", "snn_neuron", "snn_td_matmul", "snn_add"} <= kinds
    cells = stat["design"]["num_cells_by_type"]
    assert "$mul" not in cells and cells["$add"] > 0 and cells["$shl"] > 0


# ---------------------------------------------------------------- golden text


def test_golden_snapshot_example(tmp_path):
    """The emitted Verilog of the bundled example; SNNCC_UPDATE_GOLDEN=1 rewrites it."""
    _need_example()
    out = _emit(EXAMPLE_MODEL, tmp_path / "verilog")
    names = set(SNAPSHOT)
    for pattern in SNAPSHOT_GLOBS:  # a file that appears or disappears is a change too
        names |= {p.relative_to(root).as_posix() for root in (out, GOLDEN)
                  for p in root.glob(pattern)}
    current = {name: (out / name).read_text() if (out / name).exists() else ""
               for name in sorted(names)}
    if os.environ.get("SNNCC_UPDATE_GOLDEN"):
        for name, text in current.items():
            if not text:
                (GOLDEN / name).unlink(missing_ok=True)
                continue
            (GOLDEN / name).parent.mkdir(parents=True, exist_ok=True)
            (GOLDEN / name).write_text(text)
    diffs: list[str] = []
    changed: list[str] = []
    for name, text in current.items():
        path = GOLDEN / name
        old = path.read_text() if path.exists() else ""
        if old != text:
            changed.append(name)
            diffs += difflib.unified_diff(old.splitlines(True), text.splitlines(True),
                                          f"golden/{name}", f"emitted/{name}")
    assert not diffs, (f"the emitted Verilog changed in {', '.join(changed)} "
                       "(SNNCC_UPDATE_GOLDEN=1 accepts it):\n" + "".join(diffs[:300]))


# ---------------------------------------------------------------- the parallelism knob


def _knob_graph(name: str, tiny_models) -> Graph:
    builders = {"conv": _conv_graph, "attention": _attention_graph,
                "signed_conv": lambda: _signed_analog_graph(conv=True, channels=4)}
    if name in builders:
        return builders[name]()
    model, neuron = name.split(":") if ":" in name else (name, "if")
    return snncc.compile(tiny_models[model], T=7, neuron=neuron).graph


def _lanes(summary: dict) -> dict[str, int]:
    """Output lanes per cycle of every synapse engine, neurons per cycle of every neuron
    engine, as the emitted engines have them (and the report's "lanes"), and terms per
    cycle of every TD-MatMul engine (K of the row engine, 1 of the event engine)."""
    lanes = {}
    for e in summary["layers"]:
        p = e["params"]
        if e["module"] in ("snn_dense", "snn_conv", "snn_conv_rows", "snn_neuron"):
            lanes[e["origin"]] = p.get("P", p.get("NP", p.get("M", p.get("O", p.get("D")))))
            assert e["lanes"] == lanes[e["origin"]], e
        elif e["module"] in ("snn_td_matmul", "snn_td_matmul_rows"):
            lanes[e["origin"]] = p["K"] if e["module"] == "snn_td_matmul_rows" else 1
            assert e["lanes"] == lanes[e["origin"]], e
    return lanes


# (graph, knob): every synapse engine kind (dense, conv, analog, signed analog, spiking
# input, multi and signed spikes) folded to one lane and to a few
KNOBS = (
    ("cnn", 1), ("cnn", 2), ("transformer_spiking_input", 1), ("transformer", 4),
    ("transformer:multi", 1), ("cnn:signed", 2), ("conv", 1), ("attention", 2),
    ("signed_conv", 1),
)


@pytest.mark.parametrize("name,parallel", KNOBS, ids=[f"{k}-P{p}" for k, p in KNOBS])
def test_icarus_matches_interpreter_at_every_knob(tiny_models, tmp_path, name, parallel):
    """Folded engines (fewer output lanes per cycle, an accumulator RAM of a word per chunk,
    deeper weight ROMs, output buffers of a chunk a word read by ports of words in order)
    compute the same spike counts and logits as the interpreter, take more cycles
    than the unfolded design, and the lanes the report names are those of the engines."""
    require_tool("iverilog")
    graph = _knob_graph(name, tiny_models)
    hw = parallel_knob.config(graph, parallel)
    summary = verilog.emit(graph, tmp_path / "p", vectors=3, hw=hw)
    folded = verilog.run_simulation(tmp_path / "p", "icarus")
    _assert_bit_exact(folded, 3, graph)
    assert _lanes(summary) == summary["parallel"] == hw.record(graph)
    synapses = graph.ops(o.Synapse)
    for n in synapses:  # the largest legal value up to the knob, else the smallest
        legal = parallel_knob.legal_lanes(parallel_knob.outputs(n))
        assert hw.lanes(n) == max([p for p in legal if p <= parallel], default=legal[0])
    assert any(hw.lanes(n) < parallel_knob.outputs(n) for n in synapses)
    # a folded engine's output buffer is a chunk a word (narrow and deep), its accumulator
    # a RAM of a word per chunk (among the memories the estimate places)
    buffers = {b["node"]: b for b in summary["buffers"]}
    mems = {name: (depth, width) for name, _, depth, width in
            estimate.memories(verilog.lower(graph, hw))}
    for e in summary["layers"]:
        p = e["params"]
        if e["module"] in ("snn_dense", "snn_conv") and "P" in p:
            m = p.get("M", p.get("O"))
            size = int(np.prod(graph.node(e["node"]).shape))
            assert (buffers[e["node"]]["lanes"], buffers[e["node"]]["rows"]) == (
                p["P"], size // p["P"])
            assert mems[f"{e['engine']}.acc"] == (m // p["P"], p["P"] * p["WO"])
    # a neuron layer reading such an output as it is, at as many lanes a cycle, takes its
    # chunks as rows: the streamed engine over rows of those lanes (no kept input row)
    rows = parallel_knob.rows(graph)
    streamed = 0
    for e in summary["layers"]:
        n = graph.node(e["node"]) if e["module"] == "snn_neuron" else None
        src = graph.node(n.inputs[0]) if n is not None else None
        if src is not None and isinstance(src.op, o.Synapse):
            lanes = hw.neuron_lanes(n, rows[n.name])
            if lanes == hw.lanes(src) < rows[n.name]:
                p = e["params"]
                assert "NP" not in p and (p["R"], p["D"]) == (
                    int(np.prod(n.shape)) // lanes, lanes), e
                streamed += 1
    assert streamed, name
    unfolded = verilog.emit(graph, tmp_path / "w", vectors=3)
    whole = verilog.run_simulation(tmp_path / "w", "icarus")
    assert whole["cycles_per_inference"]["mean"] < folded["cycles_per_inference"]["mean"]
    # the estimates in report.json, made without a simulator, at both settings
    _assert_cycles_close(summary["estimate"]["cycles_per_inference"]["per_input"],
                         folded["cycles"])
    _assert_cycles_close(unfolded["estimate"]["cycles_per_inference"]["per_input"],
                         whole["cycles"])


def _cli_design(tmp_path: Path, model: Path, *knob) -> tuple[Path, Graph, dict]:
    build = tmp_path / "build"
    res = _cli("compile", model, "-T", "7", "--target", "verilog", "-o", build, *knob)
    assert res.exit_code == 0, res.output
    summary = json.loads((build / "report.json").read_text())["targets"]["verilog"]
    return build / "verilog", snncc.load(build / "model.snn").graph, summary


@pytest.mark.parametrize("model,overrides", [
    ("cnn", {}), ("transformer_spiking_input", {0: 1, -1: "all"})])
def test_verilator_matches_interpreter_at_knob(tiny_models, tmp_path, model, overrides):
    """`--parallel 2` and per-layer values in --hw-config (by ONNX node name) from the
    command line: the lanes the config names, lint-clean, bit-exact in Verilator."""
    require_tool("verilator")
    graph = snncc.compile(tiny_models[model], T=7).graph
    synapses = graph.ops(o.Synapse)
    layers = {}
    for index, value in overrides.items():
        n = synapses[index]
        layers[n.origin] = parallel_knob.outputs(n) if value == "all" else value
    (tmp_path / "hw.json").write_text(json.dumps({"layers": layers}))
    design, graph, summary = _cli_design(tmp_path, tiny_models[model], "--parallel", "2",
                                         "--hw-config", tmp_path / "hw.json")
    want = {n.origin: layers.get(n.origin, max(
        p for p in parallel_knob.legal_lanes(parallel_knob.outputs(n)) if p <= 2)
        if min(parallel_knob.legal_lanes(parallel_knob.outputs(n))) <= 2 else
        min(parallel_knob.legal_lanes(parallel_knob.outputs(n)))) for n in synapses}
    rows = parallel_knob.rows(graph)
    want |= {n.origin: max([p for p in parallel_knob.legal_lanes(rows[n.name]) if p <= 2],
                           default=min(parallel_knob.legal_lanes(rows[n.name])))
             for n in graph.ops(o.Neuron)}
    want |= {n.origin: k if unit and k <= 2 else 1
             for n in graph.ops(o.TDMatMul) for k, unit in [parallel_knob.td_sums(graph)[n.name]]}
    assert _lanes(summary) == summary["parallel"] == want
    lint = _make(design, "lint")
    assert lint.returncode == 0 and "%Warning" not in lint.stdout + lint.stderr, lint.stderr
    _assert_bit_exact(verilog.run_simulation(design, "verilator"), TINY_VECTORS + 2, graph)


@pytest.mark.parametrize("model", ["transformer", "cnn"])
def test_neuron_lanes_from_config(tiny_models, tmp_path, model):
    """Neuron layers named in --hw-config (by ONNX node and by layer name) take their own
    neurons per cycle (snn_neuron's NP) beside --parallel's for the others: lint-clean,
    bit-exact in Icarus, the estimate equal to the RTL's cycles, the report's lanes those
    of the engines."""
    require_tool("iverilog")
    require_tool("verilator")
    graph = snncc.compile(tiny_models[model], T=7).graph
    neurons, names = graph.ops(o.Neuron), layer_names(graph)
    rows = parallel_knob.rows(graph)
    # (layer, its name in the config, neurons per cycle): one a cycle, a whole row, and
    # (with more than two neuron layers) a value between, by layer name
    picks = [(neurons[0], neurons[0].origin, 1),
             (neurons[-1], neurons[-1].origin, rows[neurons[-1].name])]
    if len(neurons) > 2:
        mid = neurons[len(neurons) // 2]
        picks.append((mid, names[mid.name], parallel_knob.legal_lanes(rows[mid.name])[1]))
    layers = {key: value for _, key, value in picks}
    layers[graph.ops(o.Synapse)[0].origin] = 1
    (tmp_path / "hw.json").write_text(json.dumps({"layers": layers}))
    design, graph, summary = _cli_design(tmp_path, tiny_models[model], "--parallel", "4",
                                         "--hw-config", tmp_path / "hw.json")
    lanes = _lanes(summary)
    assert lanes == summary["parallel"]
    want = {n.origin: value for n, _, value in picks}
    assert {k: lanes[k] for k in want} == want
    for n in graph.ops(o.Neuron):  # the others: the largest legal value up to 4
        legal = parallel_knob.legal_lanes(rows[n.name])
        if n.origin not in want:
            assert lanes[n.origin] == max([p for p in legal if p <= 4], default=legal[0])
    assert len({lanes[n.origin] for n in graph.ops(o.Neuron)}) >= 2  # values mixed
    lint = _make(design, "lint")
    assert lint.returncode == 0 and "%Warning" not in lint.stdout + lint.stderr, lint.stderr
    result = verilog.run_simulation(design, "icarus")
    _assert_bit_exact(result, TINY_VECTORS + 2, graph)
    assert summary["estimate"]["cycles_per_inference"]["per_input"] == result["cycles"]


def _refused(run, tmp_path: Path, model: Path, *knob, config: str | None = None) -> str:
    """The message of a refused knob: exit 1, no traceback, nothing written."""
    args = [str(a) for a in knob]
    if config is not None:
        (tmp_path / "hw.json").write_text(config)
        args += ["--hw-config", str(tmp_path / "hw.json")]
    build = tmp_path / "build"
    code, err = run("compile", str(model), "-T", "7", "--target", "verilog", "-o", str(build),
                    *args)
    assert code == 1 and err.startswith("error: "), err
    assert "Traceback" not in err and not build.exists()
    return " ".join(err.split())


@pytest.fixture
def run_main(monkeypatch, capsys):
    """snncc.app.cli.main in this process: (exit code, stderr)."""
    def run(*argv: str) -> tuple[int, str]:
        monkeypatch.setattr("sys.argv", ["snncc", *argv])
        with pytest.raises(SystemExit) as exit_:
            snncc.app.cli.main()
        return exit_.value.code, capsys.readouterr().err
    return run


def test_knob_refuses_bad_values(tiny_models, tmp_path, run_main):
    """Bad knob values and configs: exit 1, a clear message with the legal values,
    nothing written."""
    model = tiny_models["cnn"]
    graph = snncc.compile(model, T=7).graph
    conv, fc = graph.ops(o.Synapse)[0], graph.ops(o.Synapse)[-1]
    legal = ", ".join(map(str, parallel_knob.legal_lanes(parallel_knob.outputs(conv))))
    for bad in ("0", "-3"):
        out = _refused(run_main, tmp_path, model, "--parallel", bad)
        assert f"--parallel {bad} is not a number of output lanes" in out
    out = _refused(run_main, tmp_path, model, config=json.dumps({"layers": {conv.origin: 3}}))
    assert (f"node '{conv.origin}': 3 output lanes per cycle is not a legal value for this "
            "layer") in out
    assert f"use one of {legal} " in out and str(tmp_path / "hw.json") in out
    out = _refused(run_main, tmp_path, model,
                   config=json.dumps({"layers": {"/nope/MatMul": 1, fc.origin: 0}}))
    assert "no layer with a parallelism knob is named '/nope/MatMul'" in out
    assert f"{conv.origin} ({legal})" in out and "0 output lanes per cycle is not" in out
    out = _refused(run_main, tmp_path, model, config='{"layers": {')
    assert "the hardware config is not JSON" in out and "line 1" in out
    out = _refused(run_main, tmp_path, model, config='{"lanes": 4}')
    assert "unknown keys ['lanes']" in out and "parallel, layers, inputs" in out
    out = _refused(run_main, tmp_path, model, config='{"inputs": [4]}')
    assert 'the hardware config\'s "inputs" is not an object of ONNX node names' in out
    out = _refused(run_main, tmp_path, model, config=json.dumps({"inputs": {conv.origin: 5}}))
    assert f"node '{conv.origin}': 5 input channels per cycle is not a legal value" in out
    out = _refused(run_main, tmp_path, model, config='{"parallel": 0.5}')
    assert '"parallel" 0.5 is not a number of output lanes' in out
    out = _refused(run_main, tmp_path, model, "--hw-config", tmp_path / "missing.json")
    assert "the hardware config does not exist" in out
    code, err = run_main("compile", str(model), "-o", str(tmp_path / "sim"), "--parallel", "2")
    assert code == 1 and "--target sim has none" in err and not (tmp_path / "sim").exists()


def test_knob_refuses_bad_neuron_values_and_names(tiny_models, tmp_path, run_main):
    """A neuron layer's value that is not legal lists the legal ones; in a model with many
    layers an unknown name lists the closest names (ONNX nodes and layer names) with
    their legal values, and the file."""
    model = tiny_models["transformer"]
    graph = snncc.compile(model, T=7).graph
    (n, *_), names = graph.ops(o.Neuron), layer_names(graph)
    d = parallel_knob.rows(graph)[n.name]
    legal = ", ".join(map(str, parallel_knob.legal_lanes(d)))
    out = _refused(run_main, tmp_path, model, config=json.dumps({"layers": {n.origin: 3}}))
    assert (f"node '{n.origin}': 3 neurons per cycle is not a legal value for this layer. "
            f"Fix: use one of {legal} (divisors of its {d} neurons a row by a power of "
            "two)") in out
    assert str(tmp_path / "hw.json") in out
    typo = names[n.name] + "x"
    out = _refused(run_main, tmp_path, model, config=json.dumps({"layers": {typo: 2}}))
    assert f"no layer with a parallelism knob is named '{typo}'" in out
    assert str(tmp_path / "hw.json") in out and "`snncc report` lists them" in out
    assert f"the closest (legal lanes): {names[n.name]} ({legal})" in out
    assert len(graph.ops(o.Neuron)) + len(graph.ops(o.Synapse)) > parallel_knob.LISTED


def test_example_100t_config_is_8x_faster_than_the_smallest_setting():
    """examples/digits_vit/hw_100t.json, issue 13's fastest setting that fits a 100T-class
    part (measured under Yosys synth_xilinx: docs/verilog.md): every layer it names is
    legal on the bundled example and gets the engine the file gives it (the four
    TD-MatMuls one event a cycle, every other layer 16 lanes, the head 10); its estimated
    cycles per inference on the testbench's vectors (equal to the RTL's: the tests above
    and test_verilog_rows) are at most an eighth of `--parallel 1`'s, and its estimated
    block RAMs within the part's 135 RAMB36."""
    _need_example()
    graph = _example_graph()
    path = EXAMPLE / "hw_100t.json"
    raw = parallel_knob.read_config(path)
    hw = parallel_knob.config(graph, raw.get("parallel"), raw, str(path))
    x = default_inputs(graph, estimate.ESTIMATE_VECTORS)
    run = run_step(graph, x, trace=True)
    design = verilog.lower(graph, hw)
    fast = estimate.cycles(graph, hw, x, design, run)
    slow = estimate.cycles(graph, parallel_knob.config(graph, 1), x, run=run)
    assert 8 * fast["mean"] <= slow["mean"], (fast["mean"], slow["mean"])
    names = {n.name: n.origin for n in graph.topo()}
    engines = {names[e.node.name]: e for e in design.engines}
    assert raw["layers"] and all(engines[k].module == "snn_td_matmul" and v == 1
                                 for k, v in raw["layers"].items())
    lanes = hw.record(graph)
    assert set(lanes.values()) == {1, 10, 16} and lanes["/head/Gemm"] == 10
    assert estimate.resources(design)["xc7"]["bram36"] <= 135


@pytest.mark.slow
@pytest.mark.parametrize("parallel", [None, 1, "pipeline"])
def test_resource_estimate_within_20_percent_of_yosys(tmp_path, parallel):
    """report.json's resource estimate (no tool run) against Yosys on a tiny transformer
    (4 tokens x 4 channels, analog input) at two knob settings and pipelined: LUTs and
    flip-flops within 20% for Xilinx 7-series (synth_xilinx, make synth-xilinx) and iCE40
    (synth_ice40), block RAMs and DSPs as Yosys maps them."""
    require_tool("yosys")
    model = tmp_path / "tiny.onnx"
    onnx.save(modelgen.tiny_transformer(tokens=4, dim=4, seed=7), model)
    knob = (() if parallel is None else ("--pipeline",) if parallel == "pipeline"
            else ("--parallel", parallel))
    design, _, summary = _cli_design(tmp_path, model, *knob)
    assert _make(design, "synth-xilinx").returncode == 0
    rtl = " ".join(re.search(r"^RTL := (.*)$", (design / "Makefile").read_text(), re.M)[1]
                   .split())
    ice40 = subprocess.run(["yosys", "-q", "-p", f"read_verilog -defer -DSYNTHESIS {rtl}; "
                            "synth_ice40 -top snn_top -run :check; "
                            "tee -q -o build/synth/ice40.json stat -json"],
                           cwd=design, capture_output=True, text=True)
    assert ice40.returncode == 0, ice40.stderr
    estimate_ = summary["estimate"]
    xc7 = verilog.xilinx_figures(design)
    cells = _stat_json(design / "build" / "synth" / "ice40.json")["design"]["num_cells_by_type"]
    measured = {"xc7": xc7, "ice40": {
        "lut": cells.get("SB_LUT4", 0), "bram": cells.get("SB_RAM40_4K", 0),
        "ff": sum(n for k, n in cells.items() if k.startswith("SB_DFF"))}}
    for family in ("xc7", "ice40"):
        for key in ("lut", "ff"):
            got, want = estimate_[family][key], measured[family][key]
            assert abs(got - want) <= 0.2 * want, (family, key, got, want)
    assert estimate_["xc7"]["dsp"] == xc7["dsp"] and estimate_["xc7"]["bram36"] == xc7["bram36"]
    assert abs(estimate_["ice40"]["bram"] - measured["ice40"]["bram"]) <= max(
        2, 0.2 * measured["ice40"]["bram"])


@pytest.mark.slow
def test_multi_spike_resource_estimate_within_20_percent_of_yosys(tmp_path):
    """A multi-spike design (the tiny CNN, `--neuron multi --parallel 1`: its synapse
    engines walk each input's weighted lines, every line an event slot of the priority
    encoder and a shift of the weights), held out from the fit: the xc7 LUT and FF
    estimates within 20% of Yosys synth_xilinx (the estimate without the line events and
    shifts was a third low on such designs), block RAMs and DSPs as Yosys maps them."""
    require_tool("yosys")
    model = tmp_path / "cnn.onnx"
    onnx.save(modelgen.tiny_cnn(), model)
    design, _, summary = _cli_design(tmp_path, model, "--neuron", "multi", "--parallel", "1")
    assert any(e["params"].get("SPIKE") == 2 for e in summary["layers"])  # lines walked
    assert _make(design, "synth-xilinx").returncode == 0
    xc7 = verilog.xilinx_figures(design)
    est = summary["estimate"]["xc7"]
    for key in ("lut", "ff"):
        assert abs(est[key] - xc7[key]) <= 0.2 * xc7[key], (key, est[key], xc7[key])
    assert est["dsp"] == xc7["dsp"] and est["bram36"] == xc7["bram36"]


# ---------------------------------------------------------------- layer pipelining


def _pipeline_graph(name: str, tiny_models) -> Graph:
    if name == "transformer:signed1":  # signed neurons that take spikes back
        return _compile_kind(tiny_models["transformer"], "signed", 1)
    return _knob_graph(name, tiny_models)


# (graph, knob): every engine kind (dense, conv, analog and signed analog inputs,
# spiking inputs, TD-MatMul, TD max pool, residual add, ReduceSum, readout) and every
# neuron kind, pipelined, unfolded and folded
PIPELINED = (
    ("conv", None), ("attention", 2), ("signed_conv", 1), ("cnn", None),
    ("transformer_spiking_input", 1), ("transformer:multi", None), ("cnn:signed", 2),
    ("transformer:signed1", None),
)


def _assert_streamed(result: dict, est: dict, vectors: int, graph: Graph,
                     in_flight: int | None = None) -> None:
    """Inferences in flight: the testbench streams every input again back to back;
    every logit is the interpreter's (also when out_ready stalls the logits), and the estimate's cycles from the first
    inference's last logit to the last one's are the RTL's, so its initiation interval
    (their mean spacing) is the RTL's, below the latency (the one-at-a-time run's); with
    one inference in flight above it (each one loads after the last is sent)."""
    (readout,) = graph.ops(o.Readout)
    logits = vectors * int(np.prod(readout.shape))
    stream = result["stream"]
    assert stream["logits"] == {"match": logits, "total": logits}
    # and again with the logits taken only when a pseudo-random out_ready allows: held
    assert stream["stalled_logits"] == {"match": logits, "total": logits}
    assert stream["inferences"] == vectors
    assert est["stream_cycles"] == stream["cycles"]
    assert est["initiation_interval"] == round(stream["cycles"] / (vectors - 1), 1)
    if in_flight == 1:
        assert est["initiation_interval"] > max(result["cycles"])
    else:
        assert est["initiation_interval"] < min(result["cycles"])
    assert est["inferences_per_second"] == round(
        est["clock_mhz"] * 1e6 / (stream["cycles"] / (vectors - 1)), 1)


@pytest.mark.parametrize("name,parallel", PIPELINED,
                         ids=[f"{k}-P{p}" for k, p in PIPELINED])
def test_icarus_matches_interpreter_pipelined(tiny_models, tmp_path, name, parallel):
    """--pipeline: engines of different layers run concurrently (a sequencer per engine,
    banked buffers). Every spike count and logit is the interpreter's, the cycle
    estimate is the RTL's count for every input, and it takes fewer cycles than the
    design that runs one engine at a time (whose estimate is the RTL's too). Streamed
    back to back (inferences in flight) the logits are the interpreter's and the
    estimate's initiation interval is the RTL's; the design is lint-clean."""
    _check_pipelined(tiny_models, tmp_path, name, parallel, None)


# (graph, knob, inferences in flight): one at a time (a bank a copy) and more in flight
# than the default (more banks, wider inference and step counters)
IN_FLIGHT = (("cnn", None, 1), ("transformer:multi", None, 7), ("attention", 2, 12))


@pytest.mark.parametrize("name,parallel,in_flight", IN_FLIGHT,
                         ids=[f"{k}-P{p}-F{f}" for k, p, f in IN_FLIGHT])
def test_icarus_matches_interpreter_in_flight(tiny_models, tmp_path, name, parallel,
                                              in_flight):
    """--pipeline at other numbers of inferences in flight (the banks follow): as above,
    bit-exact, the estimate's cycles and stream cycles the RTL's, lint-clean."""
    summary = _check_pipelined(tiny_models, tmp_path, name, parallel, in_flight)
    assert summary["pipeline"]["in_flight"] == in_flight


def _serial_cycles(graph: Graph, hw: parallel_knob.HwConfig, x: np.ndarray) -> np.ndarray:
    """Per input, the cycles of the engines of the design without --pipeline run one after
    another (a step: its engines' runs and a cycle, snn_ctrl's): that design without
    its neuron layers and streamed rows running beside the others."""
    design = verilog.lower(graph, hw)
    runs = estimate._Cycles(design, estimate._Trace(graph, x)).runs()
    total = np.zeros(len(x), np.int64)
    for t in range(design.steps):
        due = [runs[(e.index, t)] for e in design.engines if (e.index, t) in runs]
        total += 1 + np.sum(due, axis=0) if due else 1
    return total


def _check_pipelined(tiny_models, tmp_path, name, parallel, in_flight) -> dict:
    require_tool("iverilog")
    graph = _pipeline_graph(name, tiny_models)
    hw = parallel_knob.config(graph, parallel, pipeline=True, in_flight=in_flight)
    summary = verilog.emit(graph, tmp_path / "p", vectors=3, hw=hw)
    result = verilog.run_simulation(tmp_path / "p", "icarus")
    _assert_bit_exact(result, 3, graph)
    est = summary["estimate"]
    assert est["cycles_per_inference"]["per_input"] == result["cycles"]
    _assert_streamed(result, est, 3, graph, in_flight)
    require_tool("verilator")  # the sequencers' conditions and counters lint-clean
    lint = _make(tmp_path / "p", "lint")
    assert lint.returncode == 0 and "%Warning" not in lint.stdout + lint.stderr, lint.stderr
    one_after_another = _serial_cycles(graph, parallel_knob.config(graph, parallel),
                                       default_inputs(graph, 3))
    assert max(result["cycles"]) < min(one_after_another)
    assert summary["pipeline"]["levels"] > 1
    engines = len(graph.ops(o.Neuron, o.Synapse, o.TDMatMul, o.TDMaxPool, o.AddCurrent,
                            o.ReduceSum, o.Readout))
    for k in range(engines):  # a schedule per engine: a word per step and an end word
        words = (tmp_path / "p" / "mem" / f"flow{k}.hex").read_text().split()
        assert len(words) == summary["steps"] + 1 and int(words[-1], 16) == 0
    assert not (tmp_path / "p" / "mem" / "schedule.hex").exists()
    return summary


@pytest.mark.parametrize("in_flight", [1, 4, 6])
def test_wavefront_levels_and_banks(in_flight):
    """Every engine runs after the engines whose values it reads (a higher level); every
    reader has a copy of the value with banks for its producer's writes (counted by the
    steps the value is active at): one more than its share, the levels between them out
    of all the levels, of in_flight - 1 inferences' writes; the input codes two (by
    inference: the next one loads while this one runs). At each step it writes, the
    producer waits for the reader to have got past the step of the write `banks` writes
    earlier (the hold's distance back, across inferences), and at no other step."""
    from snncc.backends.verilog.layout import resolve
    from snncc.backends.verilog.lower import lower, wavefront
    from snncc.schedule import activity

    graph = _attention_graph()
    levels = wavefront(graph)
    design = lower(graph, parallel_knob.HwConfig(pipeline=True, in_flight=in_flight))
    assert design.levels == [levels[e.node.name] for e in design.engines]
    assert design.in_flight == in_flight
    for name, level in levels.items():
        for i in graph.node(name).inputs:
            src = resolve(graph, i)[0]
            assert level > levels.get(src, -1), (name, src)
    assert levels["stream"] == 1 + max(levels["v"], levels["side"]) and levels["qc"] == 0
    act = activity(graph, design.steps)
    depth = max(levels.values()) + 1
    flows = {f.engine: f for f in design.flows}
    for b in design.buffers:
        readers = [n.name for n in graph.topo() if n.name in levels
                   for i in n.inputs if resolve(graph, i)[0] == b.node.name]
        assert sorted(c.level for c in b.copies) == sorted(levels[r] for r in readers)
        if b.node.name == "codes":
            assert [c.banks for c in b.copies] == [2] * len(b.copies)
            continue
        on = [t for t in range(design.steps) if act.active[b.node.name][t]]
        # every write of every inference, as absolute steps (inference x steps + step)
        writes = [n * design.steps + t for n in range(in_flight + 2) for t in on]
        holds = flows[b.writer_engine].holds
        assert [h.reader for h in holds] == [c.reader for c in b.copies]
        for c, h in zip(b.copies, holds, strict=True):
            share = (in_flight - 1) * (c.level - levels[b.node.name]) * len(on)
            assert c.banks == h.banks == 1 + math.ceil(share / depth)
            for i, g in enumerate(writes):  # the write c.banks earlier, if any
                t = g % design.steps
                back = g - writes[i - c.banks] if i >= c.banks else None
                assert back is None or h.dist[t] == back, (b.name, i)
                assert h.dist[t] > g or i >= c.banks
            assert all(h.dist[t] == 0 for t in range(design.steps) if t not in on)
    if in_flight == 1:  # no inference overlaps another: one bank, nothing in flight
        assert all(c.banks == 1 for b in design.buffers if b.node.name != "codes"
                   for c in b.copies)


@pytest.mark.parametrize("model,options", [
    ("transformer", ("--parallel", "2")),
    ("cnn", ("--neuron", "signed", "--delay", "1"))], ids=["transformer-P2", "cnn-signed1"])
def test_verilator_matches_interpreter_pipelined_cli(tiny_models, tmp_path, model, options):
    """`--pipeline` from the command line (folded; signed neurons taking spikes back):
    lint-clean, bit-exact in Verilator, the estimate equal to the RTL's cycles."""
    require_tool("verilator")
    design, graph, summary = _cli_design(tmp_path, tiny_models[model], "--pipeline",
                                         *options)
    assert summary["pipeline"]["levels"] > 1
    lint = _make(design, "lint")
    assert lint.returncode == 0 and "%Warning" not in lint.stdout + lint.stderr, lint.stderr
    result = verilog.run_simulation(design, "verilator")
    _assert_bit_exact(result, TINY_VECTORS + 2, graph)
    assert summary["estimate"]["cycles_per_inference"]["per_input"] == result["cycles"]
    _assert_streamed(result, summary["estimate"], TINY_VECTORS + 2, graph)
    from snncc.app.report_view import _estimate_rows  # as `snncc report` prints it

    rows = dict(_estimate_rows(summary["estimate"], {}))
    ii = summary["estimate"]["initiation_interval"]
    assert rows["verilog estimate: initiation interval"].startswith(
        f"{ii:,.1f} cycles (pipelined, inputs streamed back to back")


def test_pipeline_refused_without_verilog(tiny_models, tmp_path, run_main):
    model = tiny_models["cnn"]
    for target in ("sim", "hls"):
        out = tmp_path / target
        code, err = run_main("compile", str(model), "-o", str(out), "--target", target,
                             "--pipeline")
        assert code == 1 and f"--target {target} has none" in err and "Traceback" not in err
        assert not out.exists()


@pytest.mark.slow
def test_mlp_weights_and_state_in_block_ram(tmp_path):
    """A small MLP (64-128-64-32-10, 150 kbit of weights: the shape of issue 13's) at
    `--parallel 4` under Yosys synth_xilinx: its large weight ROMs in block RAM as the
    estimate places them (without the knob they are logic), the neuron layers folded to 4
    lanes (their state in narrow RAMs), at most 8,000 LUTs; the estimate within 20%."""
    require_tool("yosys")
    model = tmp_path / "mlp.onnx"
    onnx.save(modelgen.tiny_mlp(), model)
    design, _, summary = _cli_design(tmp_path, model, "--parallel", "4")
    assert _make(design, "synth-xilinx").returncode == 0
    xc7 = verilog.xilinx_figures(design)
    cells = xc7["cells_by_type"]
    est = summary["estimate"]["xc7"]
    assert cells.get("RAMB36E1", 0) >= 4  # the two 2,048 x 32-bit ROMs, two each
    assert xc7["bram36"] == est["bram36"] and xc7["dsp"] == est["dsp"] == 4
    assert xc7["lut"] <= 8000, xc7
    for key in ("lut", "ff"):
        assert abs(est[key] - xc7[key]) <= 0.2 * xc7[key], (key, est[key], xc7[key])
    neurons = [e for e in summary["layers"] if e["module"] == "snn_neuron"]
    # 4 neurons a cycle: folded (NP), or a folded layer's chunks streamed as rows (D)
    assert neurons and all(e["params"].get("NP", e["params"]["D"]) == 4 for e in neurons)
