"""One name per layer (issue 19 item 5): the same short name in the tables, the keys of
`result.counts`, the --trace file, report.json and `snncc report --layer`; unique and
deterministic; whole in 80 columns. The HLS and Verilog testbenches' layer lines are held
to the same names by tests/test_hls.py and tests/test_verilog.py (g++, Icarus)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

import snncc
from snncc import ops as o
from snncc.errors import SnnccError
from snncc.ir import layer_names, short_name
from snncc.reference import evaluate

ROOT = Path(__file__).resolve().parents[1]


def run(*args, cwd: Path, columns: int = 200) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snncc", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": str(columns)})


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


@pytest.fixture(scope="module")
def built(tiny_models, tmp_path_factory):
    """The tiny transformer compiled and simulated with --trace, through the command."""
    d = tmp_path_factory.mktemp("names")
    assert run("compile", tiny_models["transformer"], "-o", "build", cwd=d).returncode == 0
    model = snncc.load(d / "build" / "model.snn")
    x = np.random.default_rng(4).uniform(0, 1, (6,) + model.input_shape).astype(np.float32)
    np.save(d / "x.npy", x)
    sim = run("simulate", "build/model.snn", "--input", "x.npy", "--trace", "t.npz", cwd=d)
    assert sim.returncode == 0, sim.stderr
    return d, model, x, sim


def test_short_names_drop_exporter_plumbing():
    assert short_name("/blocks/blocks.0/attn/q_act/act_quant/export_handler/"
                      "DequantizeLinear") == "/blocks.0/attn/q_act"
    assert short_name("/head_act/act_quant/export_handler/DequantizeLinear") == "/head_act"
    assert short_name("/input_quant/act_quant/export_handler/DequantizeLinear") == (
        "/input_quant")  # all plumbing: the first part stays
    assert short_name("node_relu_3") == "node_relu_3"
    assert short_name("/blocks.0/fc1/MatMul") == "/blocks.0/fc1/MatMul"


def test_one_name_in_counts_trace_and_report(built):
    d, model, x, sim = built
    g = model.graph
    neurons = g.ops(o.Neuron)
    names = layer_names(g)
    layers = [names[n.name] for n in neurons]
    assert len(set(names.values())) == len(names)
    result = model.simulate(x)
    assert list(result.counts) == layers
    ref = evaluate(g, {g.inputs[0]: x.astype(np.float64)})  # the integer reference
    trace = np.load(d / "t.npz")
    assert sorted(trace.files) == sorted(layers)
    for n, name in zip(neurons, layers, strict=True):
        counts = result.counts[name]
        assert np.array_equal(counts, ref[n.name])
        # the IR value (the ONNX tensor the quantizer wrote) and the ONNX node: same array
        assert result.counts[n.name] is counts and result.counts[n.origin] is counts
        assert n.name in result.counts and name in result.counts
        # the trace: time first, then the input, then the layer's shape; summed = counts
        train = trace[name]
        assert train.shape == (model.steps, len(x), *n.shape) and train.dtype == np.uint8
        assert np.array_equal(train.sum(axis=0, dtype=np.int64), counts)
    assert list(model.reference(x)) == layers + [names[g.ops(o.Readout)[0].name]]
    report = json.loads((d / "build" / "report.json").read_text())
    rows = [r for r in report["layers"] if r["kind"] == "dif-neuron"]
    assert [r["name"] for r in rows] == layers
    assert [(r["node"], r["source"]) for r in rows] == [(n.name, n.origin) for n in neurons]
    assert report["names"] == {names[k]: g.node(k).origin for k in names}
    assert set(report["simulation"]["firing_rates"]) == set(layers)
    assert set(report["simulation"]["rasters"]) == set(layers)
    for name in layers:  # the firing table shows the same names
        assert re.search(rf"│ {re.escape(name)} +│", sim.stdout), name


def test_a_missing_layer_names_the_layers(built):
    _, model, x, _ = built
    counts = model.simulate(x[:1]).counts
    with pytest.raises(KeyError) as e:
        counts["/nothere"]
    first = ", ".join(list(counts)[:4])
    assert e.value.args[0] == (f"no layer '/nothere' (layers are named as the tables show "
                               f"them: {first}, ...)")


def test_layer_names_follow_a_changed_graph(tiny_models):
    """`simulate`'s keys are cached per graph (``engine._names``), and recomputed once a
    node's origin changes: always ``layer_names`` of the graph as it is."""
    model = snncc.compile(tiny_models["transformer"], T=7)
    x = np.random.default_rng(5).uniform(0, 1, (2,) + model.input_shape)
    g = model.graph
    first = g.ops(o.Neuron)[0]
    assert list(model.simulate(x).counts)[0] == layer_names(g)[first.name]
    g.replace_op(first.name, first.op, origin="/renamed/act_quant")  # the same op
    assert layer_names(g)[first.name] == "/renamed"
    counts = model.simulate(x).counts
    assert list(counts)[0] == "/renamed"
    assert counts["/renamed/act_quant"] is counts["/renamed"]


def test_report_reuses_the_last_simulation_and_names_its_input(built, tmp_path):
    d, model, x, _ = built
    neurons = model.graph.ops(o.Neuron)
    name = layer_names(model.graph)[neurons[1].name]
    for chosen in (name, neurons[1].name):  # by layer name, or by its IR value
        proc = run("report", "build", "--html", tmp_path / "r.html", "--layer", chosen, cwd=d)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == (f"reusing the last simulation in build/report.json: 6 inputs "
                               f"from {d / 'x.npy'} (pass --input to simulate other "
                               "inputs)\n")
        page = (tmp_path / "r.html").read_text()
        assert page.count("<img") == 1 and name in page
    assert re.search(rf"│ inputs simulated +│ 6 inputs from {re.escape(str(d / 'x.npy'))}",
                     proc.stdout.replace("\n", ""))


def rename(model: onnx.ModelProto, names: dict[str, str]) -> onnx.ModelProto:
    for node in model.graph.node:
        node.name = names.get(node.name, node.name)
    return model


def test_colliding_names_are_told_apart_deterministically(tiny_models, tmp_path):
    """Two quantizers whose names differ only in exporter plumbing: the first neuron keeps
    the short name, the second gets its op added; the same on every compile."""
    plain = snncc.compile(tiny_models["transformer"])
    a, b = [n.origin for n in plain.graph.ops(o.Neuron)[:2]]
    model = rename(onnx.load(tiny_models["transformer"]),
                   {a: "/blk/act/DequantizeLinear", b: "/blk/act/act_quant/DequantizeLinear"})
    onnx.save(model, tmp_path / "m.onnx")
    reports = []
    for out in ("b1", "b2"):
        assert run("compile", "m.onnx", "-o", out, cwd=tmp_path).returncode == 0
        reports.append(json.loads((tmp_path / out / "report.json").read_text()))
    assert reports[0]["layers"] == reports[1]["layers"]
    names = [r["name"] for r in reports[0]["layers"]]
    assert len(set(names)) == len(names)
    neurons = [r for r in reports[0]["layers"] if r["kind"] == "dif-neuron"]
    assert [(r["name"], r["source"]) for r in neurons[:2]] == [
        ("/blk/act", "/blk/act/DequantizeLinear"),
        ("/blk/act:neuron", "/blk/act/act_quant/DequantizeLinear")]


def test_tables_show_long_names_whole_in_80_columns(tiny_models, tmp_path):
    """PyTorch-exporter names (node__symbolic...) are folded, never cut to 'node__symbo…'."""
    model = onnx.load(tiny_models["transformer"])
    rename(model, {n.name: f"node__symbolic_shape_inference_{n.op_type}_{k}"
                   for k, n in enumerate(model.graph.node)})
    onnx.save(model, tmp_path / "long.onnx")
    assert run("compile", "long.onnx", "-o", "build", cwd=tmp_path).returncode == 0
    compiled = snncc.load(tmp_path / "build" / "model.snn")
    np.save(tmp_path / "x.npy", np.random.default_rng(1).uniform(
        0, 1, (2,) + compiled.input_shape).astype(np.float32))
    names = layer_names(compiled.graph)
    for argv in (("simulate", "build/model.snn", "--input", "x.npy"), ("report", "build")):
        proc = run(*argv, cwd=tmp_path, columns=80)
        assert proc.returncode == 0, proc.stderr
        assert "…" not in proc.stdout
        assert max(len(line) for line in proc.stdout.splitlines() if line[:1] in "┏┃│└") <= 80
        body = [line.split("│")[1].strip() for line in proc.stdout.splitlines()
                if line.startswith("│")]
        if argv[0] == "simulate":  # the firing table: the neuron layers
            shown = [names[n.name] for n in compiled.graph.ops(o.Neuron)]
        else:  # the layer tables (two in 80 columns, each led by the names): every layer
            rows = json.loads((tmp_path / "build" / "report.json").read_text())["layers"]
            shown = [r["name"] for r in rows] * 2
        assert "".join(body).startswith("".join(shown)), (body, shown)


def test_the_api_takes_the_paths_the_command_takes(built, tmp_path):
    d, model, x, _ = built
    by_path = model.simulate(d / "x.npy")
    by_array = model.simulate(x)
    assert np.array_equal(by_path.logits_int, by_array.logits_int)
    assert all(np.array_equal(by_path.counts[k], by_array.counts[k]) for k in by_array.counts)
    first = list(by_array.counts)[0]
    assert np.array_equal(model.reference(str(d / "x.npy"))[first], by_array.counts[first])
    with pytest.raises(SnnccError) as e:
        model.simulate(tmp_path / "missing.npy")
    assert str(e.value) == f"input {tmp_path / 'missing.npy'}: file not found. Fix: check the path"


def test_the_readme_python_block_runs_as_written(tmp_path):
    """In a fresh folder holding the bundled example's two files (no build/ yet)."""
    block = re.search(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)[1]
    folder = tmp_path / "examples" / "digits_vit"
    folder.mkdir(parents=True)
    for name in ("digits_vit_qcdq.onnx", "digits_test.npz"):
        (folder / name).write_bytes((ROOT / "examples" / "digits_vit" / name).read_bytes())
    (tmp_path / "snippet.py").write_text(block)
    proc = subprocess.run([sys.executable, "snippet.py"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert snncc.load(tmp_path / "build" / "model.snn").T == 7
