"""Reports (issue 7): operation and energy counts against hand counts, the ANN's MACs from
the ONNX graph, report.json, the HTML page in a real browser, and `snncc verify`."""

import json
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

import snncc
from conftest import require_tool
from snncc import ops as o
from snncc.app.cli import app
from snncc.app.report_view import layer_label
from snncc.backends.sim import artifact, plan
from snncc.backends.sim.engine import run_step
from snncc.intmath import Rounding
from snncc.ir import Graph, layer_names
from snncc.metrics.activity import replay
from snncc.metrics.energy import (
    EnergyModel,
    LayerOps,
    OpCounts,
    add_current_adds,
    count_ops,
    dense_macs,
    energy_summary,
    maxpool_comparisons,
    node_dense_macs,
    reduce_sum_adds,
    sum_pool_adds,
    synapse_sops,
    td_matmul_sops,
)
from snncc.metrics.macs import ann_macs
from snncc.reference import evaluate
from snncc.verify import hardware as hwrungs
from snncc.verify import ladder as verify
from snncc.verify import rungs

runner = CliRunner()


def cli(*args):
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


# ---------------------------------------------------------------- hand counts, per layer kind


def conv(w_shape, strides=(1, 1), pads=(0, 0, 0, 0), group=1, analog=False):
    return o.Synapse(np.ones(w_shape, np.int64), "conv", strides, pads, group=group,
                     analog=analog)


def test_spike_dense_sops_are_spikes_times_fan_out():
    w = np.array([[1, 2, 3], [4, 0, 6], [7, 8, 9], [0, 0, 1]], np.int64)
    counts = np.array([[3, 1, 0, 2]])  # 6 spikes, 3 outputs each
    sops, eff = synapse_sops(o.Synapse(w), counts)
    assert sops == 6 * 3
    assert eff == 3 * 3 + 1 * 2 + 2 * 1  # zero weights skipped (NeuroBench Eff_ACs)


def test_conv_fan_out_honours_padding_and_stride():
    counts = np.zeros((1, 1, 3, 3), np.int64)
    counts[0, 0, 0, 0] = 1  # a corner
    counts[0, 0, 1, 1] = 2  # the centre
    # 3x3 kernel, pad 1, stride 1, 2 output channels: the corner is in 4 receptive fields,
    # the centre in all 9.
    assert synapse_sops(conv((2, 1, 3, 3), pads=(1, 1, 1, 1)), counts)[0] == 2 * (4 + 2 * 9)
    # stride 2: outputs at rows/cols {-1..1, 1..3}: the corner is in 1 field, the centre in 4
    assert synapse_sops(conv((2, 1, 3, 3), (2, 2), (1, 1, 1, 1)), counts)[0] == 2 * (1 + 2 * 4)
    # no padding: one output, every input reaches it once
    assert synapse_sops(conv((2, 1, 3, 3)), counts)[0] == 2 * 3


def test_grouped_conv_reaches_only_its_group():
    counts = np.zeros((1, 4, 1, 1), np.int64)
    counts[0, 1] = 1  # one spike in group 0 (channels 0-1)
    op = conv((6, 2, 1, 1), group=2)  # 3 output channels per group
    assert synapse_sops(op, counts) == (3, 3)


def test_analog_layer_counts_dense_macs():
    op = conv((4, 1, 3, 3), pads=(1, 1, 1, 1), analog=True)
    assert dense_macs(op, [(1, 8, 8)], (4, 8, 8)) == 4 * 8 * 8 * 9
    dense = o.Synapse(np.ones((16, 10), np.int64), analog=True)
    assert dense_macs(dense, [(5, 16)], (5, 10)) == 5 * 16 * 10


def test_td_matmul_adds_a_row_per_a_spike_and_a_column_per_b_spike():
    # A: N=2 x d=3, B: d=3 x M=4, two steps
    sa = np.zeros((2, 1, 2, 3), np.int64)
    sb = np.zeros((2, 1, 3, 4), np.int64)
    sa[0, 0, 0, 0] = sa[1, 0, 1, 0] = 1
    sb[0, 0, 0, 1] = sb[1, 0, 0, 2] = 1
    sops, eff = td_matmul_sops(sa, sb)
    assert sops == 2 * 4 + 2 * 2  # 2 A-spikes x M + 2 B-spikes x N
    # effective: t0 S_A·C_B(0) -> 1 non-zero; t1 S_A·C_B(1) -> 2, C_A(0)·S_B(1) -> 1
    assert eff == 1 + 2 + 1


def test_td_matmul_broadcast_heads():
    sa = np.ones((1, 1, 1, 2, 3), np.int64)  # [1 head, N=2, d=3], 6 spikes
    sb = np.zeros((1, 1, 4, 3, 5), np.int64)  # [4 heads, d=3, M=5]
    sb[0, 0, 2, 1, 1] = 1
    assert td_matmul_sops(sa, sb)[0] == 4 * 5 * 6 + 1 * 2 * 1


def test_td_maxpool_compares_once_per_window_per_spike():
    counts = np.array([[[[1, 0], [2, 3]]]])  # 6 spikes
    assert maxpool_comparisons(o.TDMaxPool((2, 2), (1, 1)), counts) == 6
    assert maxpool_comparisons(o.TDMaxPool((2, 2), (1, 1), (1, 1, 1, 1)), counts) == 6 * 4


def test_residual_add_counts_steps_where_both_currents_are_non_zero():
    a = np.array([[[1, 0, 2]], [[1, 1, 0]]])  # [T=2, B=1, 3]
    b = np.array([[[0, 0, 3]], [[2, 2, 0]]])
    assert add_current_adds(a, b) == 1 + 2


def test_sums_need_one_add_less_than_their_non_zero_terms():
    x = np.array([[[[1, 0], [2, 0], [3, 5]]]])  # [T=1, B=1, tokens=3, 2]
    assert reduce_sum_adds(o.ReduceSum((0,)), x) == 2 + 0
    pool = np.array([[[[[1, 1], [1, 0]]]]])  # [T=1, B=1, C=1, 2, 2]
    assert sum_pool_adds(o.SumPool((2, 2), (1, 1)), pool) == 2


@pytest.mark.parametrize("axes", [(0,), (1,), (-1,), (0, 2), (-3, -1)])
def test_sum_adds_equal_the_rule_element_by_element(axes):
    """reduce_sum_adds against its rule spelled out: per step, input and output element,
    one add fewer than the non-zero terms summed into it."""
    x = np.random.default_rng(len(axes) + axes[0] % 3).integers(-1, 2, (2, 3, 4, 5, 3))
    sample = x.shape[2:]  # [T, B, *sample]
    reduced = {a % len(sample) for a in axes}
    expected = 0
    for t, b in np.ndindex(x.shape[:2]):
        groups: dict[tuple, int] = {}
        for idx in np.ndindex(sample):
            key = tuple(i for k, i in enumerate(idx) if k not in reduced)
            groups[key] = groups.get(key, 0) + int(x[(t, b, *idx)] != 0)
        expected += sum(max(n - 1, 0) for n in groups.values())
    assert reduce_sum_adds(o.ReduceSum(axes), x) == expected


def test_energy_model():
    counts = OpCounts(2, {"a": LayerOps(macs=200, sops=1000, adds=20, comparisons=50)})
    e = energy_summary(counts, ann_macs=1000, model=EnergyModel())
    snn = 4.6 * 100 + 0.9 * (500 + 10)  # per inference; comparisons are not charged
    assert e["snn"]["pj"] == pytest.approx(snn)
    assert e["ann"]["pj"] == pytest.approx(4600)
    assert e["ann_over_snn"] == pytest.approx(4600 / snn)
    custom = energy_summary(counts, 1000, EnergyModel(pj_ac=0.03, pj_mac=0.2))
    assert custom["snn"]["pj"] == pytest.approx(0.2 * 100 + 0.03 * 510)


def spiking_dense_graph() -> Graph:
    """x[4] -> 3-level spikes -> dense [4, 2] -> neuron -> dense [2, 3] -> readout."""
    g = Graph("hand")
    g.add("x", o.Input(), shape=(4,), kind=o.FLOAT)
    g.inputs, g.meta = ["x"], {"T": 3, "delay": "exact"}
    g.add("enc", o.SpikeInput(np.array(1.0), 0, 0, 3, Rounding.HALF_EVEN, False), ["x"])
    g.add("fc1", o.Synapse(np.array([[1, 1], [1, 0], [2, 1], [1, 1]], np.int64)), ["enc"])
    th = np.array([1, 3, 5], np.int64)
    g.add("n1", o.Neuron(np.array(1, np.int8), th, 3, np.array(1.0), t_fire=3), ["fc1"])
    g.add("fc2", o.Synapse(np.ones((2, 3), np.int64)), ["n1"])
    g.add("out", o.Readout(1.0, np.zeros(3)), ["fc2"])
    g.outputs = ["out"]
    return g


def test_count_ops_on_a_hand_built_network():
    g = spiking_dense_graph()
    x = np.array([[3.0, 0.0, 1.0, 2.0]])  # 6 input spikes
    r = run_step(g, x, trace=True)
    ops = count_ops(g, x, r.trains)
    # fc1: 6 spikes x 2 outputs; effective: input 1 has no spikes, its zero weight is moot
    assert ops.layers["fc1"] == LayerOps(sops=12, sops_effective=12)
    # currents: [3+1+2*2+2, 3+0+1+2] = [9, 6] -> codes [3, 3] (thresholds 1, 3, 5)
    assert ops.layers["n1"].spikes == 6 and r.counts["n1"].tolist() == [[3, 3]]
    assert ops.layers["fc2"].sops == 6 * 3
    assert ops.layers["enc"].spikes == 6


def test_replay_reproduces_the_readout_current(tiny_models):
    model = snncc.compile(tiny_models["transformer"], T=7)
    x = np.random.default_rng(1).uniform(0, 1, (5,) + model.input_shape)
    r = run_step(model.graph, x, trace=True)
    (readout,) = model.graph.ops(o.Readout)
    seen = {}

    def visit(n, ins, out):
        if n.name == readout.name:
            seen["current"] = ins[0].sum(axis=0)

    replay(model.graph, x, r.trains, visit)
    assert np.array_equal(seen["current"] + readout.op.bias, r.logits_int)


def brute_force_conv_sops(op: o.Synapse, counts: np.ndarray) -> int:
    """Σ over outputs and kernel taps of the input count under the tap (loops)."""
    _, c, h, w = counts.shape
    oc, cg, kh, kw = op.weight.shape
    (sh, sw), (pt, pl, pb, pr) = op.strides, op.pads
    oh, ow = (h + pt + pb - kh) // sh + 1, (w + pl + pr - kw) // sw + 1
    total = 0
    for oy in range(oh):
        for ox in range(ow):
            for ky in range(kh):
                for kx in range(kw):
                    iy, ix = oy * sh - pt + ky, ox * sw - pl + kx
                    if 0 <= iy < h and 0 <= ix < w:
                        total += int(counts[:, :, iy, ix].sum())
    return total * oc


def test_cnn_counts_match_loops_and_onnx_macs(tiny_models):
    model = snncc.compile(tiny_models["cnn"], T=7)
    g = model.graph
    x = np.random.default_rng(0).uniform(0, 1, (6,) + model.input_shape)
    r = model.simulate(x, trace=True)
    ops = count_ops(g, x, r.trains)
    values = evaluate(g, {g.inputs[0]: x})
    spiking = [n for n in g.ops(o.Synapse) if n.op.kind == "conv" and not n.op.analog]
    for n in spiking:
        assert ops.layers[n.name].sops == brute_force_conv_sops(n.op, values[n.inputs[0]])
    # the ANN's MACs, from the ONNX graph alone: conv 1->4 3x3 on 8x8, conv 4->6 3x3 on
    # 4x4, Gemm 96->10
    onnx_count = ann_macs(tiny_models["cnn"])
    assert onnx_count.total == 4 * 64 * 9 + 6 * 16 * 36 + 96 * 10
    assert [layer["op"] for layer in onnx_count.layers] == ["Conv", "Conv", "Gemm"]
    # and from the SNN IR, independently: the same
    assert sum(node_dense_macs(g, n) for n in g.topo()) == onnx_count.total
    (analog,) = [n for n in g.ops(o.Synapse) if n.op.analog]
    assert ops.layers[analog.name].macs == 6 * 4 * 64 * 9


def test_transformer_ann_macs_by_hand(tiny_models):
    # 8 tokens, dim 8, 2 heads of 4: embed + q,k,v + proj (5 x 8·8·8), QKᵀ and AV
    # (2 heads x 8·8·4 each), MLP 8->16->8 (2 x 8·8·16), head on the pooled token 8·10
    hand = 5 * 512 + 2 * (2 * 8 * 8 * 4) + 2 * (8 * 8 * 16) + 8 * 10
    assert ann_macs(tiny_models["transformer"]).total == hand


def test_onnx_macs_of_grouped_strided_conv_and_gemm(tmp_path):
    w = numpy_helper.from_array(np.ones((4, 2, 3, 3), np.float32), "w")
    g_w = numpy_helper.from_array(np.ones((5, 64), np.float32), "gw")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], group=2, strides=[2, 2],
                              pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Flatten", ["c"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "gw"], ["y"], transB=1, name="gemm")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, ["N", 4, 8, 8])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, ["N", 5])], [w, g_w])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    counted = ann_macs(path)
    assert [layer["macs"] for layer in counted.layers] == [4 * 4 * 4 * (2 * 9), 64 * 5]


# ---------------------------------------------------------------- report.json


@pytest.fixture(scope="module")
def transformer_build(tmp_path_factory, tiny_models):
    folder = tmp_path_factory.mktemp("build")
    x = np.random.default_rng(3).uniform(0, 1, (24, 8, 8)).astype(np.float32)
    np.save(folder / "x.npy", x)
    np.save(folder / "y.npy", np.arange(24) % 10)
    build = folder / "build"
    assert cli("compile", tiny_models["transformer"], "-o", build).exit_code == 0
    (folder / "compile-report.json").write_text((build / "report.json").read_text())
    res = cli("simulate", build / "model.snn", "--input", folder / "x.npy",
              "--labels", folder / "y.npy")
    assert res.exit_code == 0, res.output
    return build


def test_compile_and_simulate_reports(transformer_build, tiny_models):
    build = transformer_build
    static = json.loads((build.parent / "compile-report.json").read_text())
    assert static["ann_macs"]["total"] == ann_macs(tiny_models["transformer"]).total
    assert static["pipeline_interval"] <= static["steps"]
    neuron = next(r for r in static["layers"] if r["kind"] == "dif-neuron")
    assert {"neurons", "threshold", "t_fire", "delay", "weight_bits", "state_bits"} <= set(neuron)
    assert "simulation" not in static
    report = json.loads((build / "report.json").read_text())
    sim = report["simulation"]
    assert sim["inputs"] == 24 and 0 <= sim["accuracy"] <= 1
    e = sim["energy"]
    assert e["snn"]["macs"] == 512  # the analog embedding, 8 tokens x 8 x 8
    assert e["ann"]["macs"] == static["ann_macs"]["total"]
    assert e["ann_over_snn"] == pytest.approx(e["ann"]["pj"] / e["snn"]["pj"])
    rows = {r["name"]: r for r in report["layers"]}
    assert sum(r.get("sops", 0) for r in rows.values()) == pytest.approx(e["snn"]["sops"])
    assert all(0 <= r["firing_rate"] <= 1 for r in rows.values() if r["kind"] == "dif-neuron")
    assert set(sim["rasters"]) == {r["name"] for r in rows.values() if r["kind"] == "dif-neuron"}


def test_firing_rate_is_spikes_per_neuron_over_levels(transformer_build):
    report = json.loads((transformer_build / "report.json").read_text())
    model = snncc.load(transformer_build / "model.snn")
    counts = model.simulate(np.load(transformer_build.parent / "x.npy")).counts
    neurons = [r for r in report["layers"] if r["kind"] == "dif-neuron"]
    assert len(neurons) == len(model.graph.ops(o.Neuron))
    for row in neurons:
        mean = float(counts[row["name"]].mean())  # spikes per neuron per inference
        assert row["spikes_per_neuron"] == pytest.approx(mean)
        assert row["firing_rate"] == pytest.approx(mean / row["levels"])
        assert row["spikes_per_neuron"] == pytest.approx(row["firing_rate"] * row["levels"])
    assert any(row["spikes_per_neuron"] > 1 for row in neurons)  # the two differ: L > 1


def test_report_command_table_and_energy_model(transformer_build):
    res = cli("report", transformer_build, "--pj-ac", "0.45")
    assert res.exit_code == 0, res.output
    assert "layers (per inference)" in res.output and "energy" in res.output
    e = json.loads((transformer_build / "report.json").read_text())["simulation"]["energy"]
    assert e["pj_per_ac"] == 0.45
    assert e["snn"]["pj"] == pytest.approx(4.6 * e["snn"]["macs"]
                                           + 0.45 * (e["snn"]["sops"] + e["snn"]["adds"]))


def test_report_without_a_simulation_shows_the_compiled_figures(tmp_path, tiny_models):
    assert cli("compile", tiny_models["cnn"], "-o", tmp_path / "b").exit_code == 0
    res = cli("report", tmp_path / "b")
    assert res.exit_code == 0, res.output
    assert (f"no simulation results in {tmp_path / 'b' / 'report.json'}: the compiled figures "
            "only") in res.output
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert "simulation" not in report
    for layer in report["layers"]:  # the layer table, its spike columns blank
        assert layer_label(layer) in res.output
    assert "verilog engines" not in res.output  # no hardware target
    res = cli("report", tmp_path / "b", "--html", tmp_path / "r.html")
    assert res.exit_code == 1 and "no simulation results" in str(res.exception)
    assert not (tmp_path / "r.html").exists()


def engine_table(output: str) -> list[list[str]]:
    """The cells of `snncc report`'s engine table, a row per engine."""
    rows: list[list[str]] = []
    for line in output.split("verilog engines")[1].split("└")[0].split("\n"):
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if cells and rows and not any(cells[1:]):  # a long name wrapped onto a second line
            rows[-1][0] += cells[0]
        elif cells:
            rows.append(cells)
    return rows


def test_report_shows_the_events_a_walk_takes_a_cycle(tmp_path, tiny_models):
    """At the default, the walking engines take several events a cycle (`V`): the engine
    table says so beside their lanes, and only for them."""
    build = tmp_path / "b"
    assert cli("compile", tiny_models["transformer"], "--target", "verilog",
               "-o", build).exit_code == 0
    res = cli("report", build)
    assert res.exit_code == 0, res.output
    verilog = json.loads((build / "report.json").read_text())["targets"]["verilog"]
    params = {e["engine"]: e["params"] for e in verilog["layers"]}
    rows = engine_table(res.output)
    walks = 0
    for row, engine in zip(rows, verilog["estimate"]["cycles_by_engine"], strict=True):
        v = int(params[engine].get("V", 1))
        if v > 1:
            walks += 1
            assert row[2].endswith(f", {v} events"), (engine, row)
        else:
            assert "events" not in row[2], (engine, row)
    assert walks > 0


def test_report_lists_the_engines_with_their_lanes_and_cycles(tmp_path, tiny_models):
    """`snncc report` on a Verilog build, before any simulation: an engine per row, with the
    lanes the knob and the config gave it and the estimate's cycles."""
    first = tmp_path / "first"
    assert cli("compile", tiny_models["transformer"], "--target", "verilog", "--parallel", "2",
               "-o", first).exit_code == 0
    lanes = json.loads((first / "report.json").read_text())["targets"]["verilog"]["parallel"]
    node = next(k for k, v in lanes.items() if v == 2)
    (tmp_path / "hw.json").write_text(json.dumps({"parallel": 2, "layers": {node: 1}}))
    build = tmp_path / "b"
    assert cli("compile", tiny_models["transformer"], "--target", "verilog", "--hw-config",
               tmp_path / "hw.json", "-o", build).exit_code == 0
    res = cli("report", build)
    assert res.exit_code == 0, res.output
    report = json.loads((build / "report.json").read_text())
    verilog = report["targets"]["verilog"]
    cycles = verilog["estimate"]["cycles_by_engine"]
    rows = engine_table(res.output)
    assert len(rows) == len(cycles) == verilog["engines"]
    by_name = {layer_label(r): r for r in report["layers"]}
    for row, c in zip(rows, cycles.values(), strict=True):
        layer = by_name[row[0]]  # every engine named by its layer
        assert row[1] == layer["kind"]
        want = verilog["parallel"].get(layer["source"])
        assert row[2] == ("" if want is None else str(want))
        assert row[3] == f"{c:,.0f}"
    assert [r[2] for r in rows if by_name[r[0]]["source"] == node] == ["1"]
    assert sum(r[2] == "2" for r in rows) > 0


# ---------------------------------------------------------------- the HTML page


def decode_png(data: bytes) -> np.ndarray:
    """[H, W, channels] of an 8-bit RGB(A) PNG (all five row filters)."""
    pos, idat = 8, b""
    while pos < len(data):
        (n,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color in (2, 6)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    bpp = 3 if color == 2 else 4
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, w * bpp + 1)
    out = np.zeros((h, w * bpp), np.int64)
    prev = np.zeros(w * bpp, np.int64)
    for y in range(h):
        f, line = raw[y, 0], raw[y, 1:].astype(np.int64)
        if f in (0, 2):
            row = (line + (prev if f == 2 else 0)) % 256
        elif f == 1:
            row = np.cumsum(line.reshape(w, bpp), axis=0).reshape(-1) % 256
        else:
            row = line.copy()
            for i in range(len(row)):
                a = row[i - bpp] if i >= bpp else 0
                b, c = prev[i], prev[i - bpp] if i >= bpp else 0
                if f == 3:
                    row[i] = (row[i] + (a + b) // 2) % 256
                else:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                    row[i] = (row[i] + pred) % 256
        out[y], prev = row, row
    return out.reshape(h, w, bpp)


def test_html_report_renders_in_chromium(transformer_build, tmp_path):
    chromium = require_tool("chromium")
    page = tmp_path / "report.html"
    res = cli("report", transformer_build, "--html", page)
    assert res.exit_code == 0, res.output
    text = page.read_text()
    assert "<svg" in text and "data:image/png;base64," in text and "src=\"http" not in text
    shot = tmp_path / "shot.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'prof'}",
                    f"--screenshot={shot}", "--window-size=1000,1300", page.as_uri()],
                   capture_output=True, timeout=120, check=False)
    pixels = decode_png(shot.read_bytes())[..., :3]
    non_white = np.any(pixels < 240, axis=-1).mean()
    assert non_white > 0.03, f"only {non_white:.2%} of the page is drawn"
    blue = np.all(np.abs(pixels - [0x3B, 0x6F, 0xB6]) < 12, axis=-1).sum()
    assert blue > 500, "the firing-rate and operation charts did not render"


# ---------------------------------------------------------------- verify


def test_verify_passes_on_an_intact_build(transformer_build, tiny_models):
    res = cli("verify", transformer_build, "--input", transformer_build.parent / "x.npy",
              "--onnx", tiny_models["transformer"])
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[-1] == (
        "verify: 2 of 4 rungs ran and agree; skipped: HLS C simulation (not built: compile "
        "with --target hls or all), RTL simulation (not built: compile with --target "
        "verilog or all)")
    assert "onnxruntime agreement: pass (every differing code explained)" in res.output
    rungs = json.loads((transformer_build / "report.json").read_text())["verify"]["rungs"]
    assert [r["status"] for r in rungs] == ["pass", "pass", "skipped", "skipped"]
    assert [r["agreement"] for r in rungs[:2]] == [1.0, 1.0]


def test_verify_names_a_planted_threshold_change(tmp_path, tiny_models):
    build = tmp_path / "b"
    x = np.random.default_rng(5).uniform(0, 1, (16, 8, 8))
    np.save(tmp_path / "x.npy", x)
    assert cli("compile", tiny_models["transformer"], "-o", build).exit_code == 0
    before = snncc.load(build / "model.snn")
    g = snncc.load(build / "model.snn").graph
    target = g.ops(o.Neuron)[2]  # a hidden layer, after the first attention inputs
    op = target.op
    g.replace_op(target.name, o.Neuron(op.sign, op.thresholds * 2, op.levels, op.scale,
                                       op.t_fire))
    artifact.save(g, build / "model.snn")
    after = snncc.load(build / "model.snn")
    # where verify must point, from the integer reference codes before and after the change:
    # the first (sample, element) in C order whose codes differ, and the step at which the
    # two spike trains part (spike j fires at step t_fire + j)
    c_before = before.reference(x)[target.name]
    c_after = after.reference(x)[target.name]
    for n in before.graph.ops(o.Neuron)[:2]:  # the layers before the change are untouched
        assert np.array_equal(before.reference(x)[n.name], after.reference(x)[n.name])
    first = tuple(int(i) for i in np.argwhere(c_before != c_after)[0])
    a, b = int(c_before[first]), int(c_after[first])
    step = op.t_fire + min(a, b)
    res = cli("verify", build, "--input", tmp_path / "x.npy", "--onnx",
              tiny_models["transformer"])
    assert res.exit_code == 1, res.output
    line = next(s for s in res.output.splitlines() if "first divergence" in s)
    name = layer_names(after.graph)[target.name]  # the layer name, then its ONNX node
    assert line == (f"onnxruntime ↔ integer reference: first divergence at {name} "
                    f"({target.origin}) sample {first[0]} element {list(first[1:])} at step "
                    f"{step}: code onnxruntime {a}, reference {b}")


def _doubled_synapses(model):
    """The integer reference of `model` with every synapse's weights doubled: what an
    interpreter whose synapse current is doubled computes."""
    import dataclasses

    g = model.graph.copy()
    for n in g.ops(o.Synapse):
        g.replace_op(n.name, dataclasses.replace(n.op, weight=n.op.weight * 2))
    return g


def _first_spike_apart(graph, want: dict, got: dict):
    """Where the trains of two sets of codes first part: the first neuron layer (topo
    order) that differs, its earliest step t_fire + min(a, b), the first (sample, element)
    parting there, and the two trains' values at that step."""
    for n in graph.ops(o.Neuron):
        a, b = want[n.name].astype(np.int64), got[n.name].astype(np.int64)
        if np.array_equal(a, b):
            continue
        step = np.where(a != b, n.op.t_fire + np.minimum(a, b), np.iinfo(np.int64).max)
        first = tuple(int(i) for i in np.argwhere(step == step.min())[0])
        return n, first, int(step.min()), int(a[first] > b[first]), int(b[first] > a[first])
    raise AssertionError("the two sets of codes are equal")


def test_verify_catches_a_bug_planted_in_the_shared_plan_code(tmp_path, tiny_models,
                                                                 monkeypatch):
    """A doubled synapse current in backends/sim/plan.py (both engines run on it): the
    interpreter rung, and `snncc verify`, fail and name the step engine's first spike off
    the integer reference's trains."""
    build, x = tmp_path / "b", np.random.default_rng(5).uniform(0, 1, (16, 8, 8))
    np.save(tmp_path / "x.npy", x)
    assert cli("compile", tiny_models["transformer"], "-o", build).exit_code == 0
    model = snncc.load(build / "model.snn")
    want = model.reference(x)
    got = evaluate(_doubled_synapses(model), {model.graph.inputs[0]: x})
    n, first, step, a, b = _first_spike_apart(model.graph, want, got)
    original = plan._synapse
    monkeypatch.setenv("SNNCC_ORT_GRAPH", "0")  # the numpy path, where the bug is planted
    monkeypatch.setattr(plan, "_synapse", lambda p, node, v: 2 * original(p, node, v))
    rung, _ = verify.interpreter_rung(model, x)
    assert rung.status == verify.FAIL
    d = rung.divergence
    assert (d.layer, d.element, d.step, d.expected, d.got, d.what, d.sides) == (
        n.name, first, step, a, b, "spike", ("reference", "step engine"))
    res = cli("verify", build, "--input", tmp_path / "x.npy")
    assert res.exit_code == 1, res.output
    line = next(s for s in res.output.splitlines() if "↔ interpreter: first" in s)
    name = layer_names(model.graph)[n.name]
    assert line == (f"integer reference ↔ interpreter: first divergence at {name} "
                    f"({n.origin}) sample {first[0]} element {list(first[1:])} at step {step}: "
                    f"spike reference {a}, step engine {b}")
    assert res.output.splitlines()[-1] == (
        "verify: FAILED (integer reference ↔ interpreter); 2 of 4 rungs ran; skipped: "
        "HLS C simulation (not built: compile with --target hls or all), RTL simulation "
        "(not built: compile with --target verilog or all)")


def test_interpreter_rung_holds_the_fast_engine_to_the_reference(tiny_models, monkeypatch):
    """A bug in the fast engine's closed form alone (every code of one layer one too high)
    is named with the fast engine's code and the step where its train would part."""
    model = snncc.compile(tiny_models["cnn"], T=7)
    x = np.random.default_rng(2).uniform(0, 1, (4,) + model.input_shape)
    target = model.graph.ops(o.Neuron)[1]
    want = model.reference(x)[target.name]
    original = plan._codes
    monkeypatch.setenv("SNNCC_ORT_GRAPH", "0")  # the numpy path, where the bug is planted
    monkeypatch.setattr(plan, "_codes", lambda p, n, v: original(p, n, v) + (
        n.name == target.name))
    rung, golden = verify.interpreter_rung(model, x)
    d = rung.divergence
    assert rung.status == verify.FAIL
    assert (d.layer, d.element, d.step, d.expected, d.got, d.what, d.sides) == (
        target.name, (0, 0, 0, 0), target.op.t_fire + int(want[0, 0, 0, 0]),
        int(want[0, 0, 0, 0]), int(want[0, 0, 0, 0]) + 1, "code",
        ("reference", "fast engine"))
    assert np.array_equal(golden["counts"][target.name], want)  # the step engine's


def test_interpreter_rung_checks_the_step_engines_counts_apart_from_its_trains(
        tiny_models, monkeypatch):
    """Trains right, counts wrong (one layer's counts one too high): named as a code."""
    model = snncc.compile(tiny_models["cnn"], T=7)
    x = np.random.default_rng(2).uniform(0, 1, (4,) + model.input_shape)
    target = model.graph.ops(o.Neuron)[1]
    want = model.reference(x)[target.name]
    original = plan._neuron_steps

    def planted(p, n, current, batch, steps):
        train, count = original(p, n, current, batch, steps)
        return train, count + (n.name == target.name)

    monkeypatch.setattr(plan, "_neuron_steps", planted)
    rung, _ = verify.interpreter_rung(model, x)
    d = rung.divergence
    assert rung.status == verify.FAIL
    assert (d.layer, d.element, d.step, d.expected, d.got, d.what, d.sides) == (
        target.name, (0, 0, 0, 0), None, int(want[0, 0, 0, 0]), int(want[0, 0, 0, 0]) + 1,
        "code", ("reference", "step engine"))


@pytest.mark.parametrize("mode", ["if", "signed", "multi"])
def test_interpreter_rung_knows_each_neuron_kinds_trains(tiny_models, monkeypatch, mode):
    """Exact mode: `if` and `signed` send code c as spikes at t_fire .. t_fire+c-1, `multi`
    sends c at once at t_fire; the rung passes on each, and a planted fast-engine code is
    placed at the step where the two trains part."""
    model = snncc.compile(tiny_models["transformer"], T=7, neuron=mode)
    x = np.random.default_rng(4).uniform(0, 1, (3,) + model.input_shape)
    rung, _ = verify.interpreter_rung(model, x)
    assert (rung.status, rung.agreement, rung.divergence) == (verify.PASS, 1.0, None)
    target = model.graph.ops(o.Neuron)[0]
    code = int(model.reference(x)[target.name][0, 0, 0])
    original = plan._codes
    monkeypatch.setenv("SNNCC_ORT_GRAPH", "0")  # the numpy path, where the bug is planted
    monkeypatch.setattr(plan, "_codes", lambda p, n, v: original(p, n, v) + (
        n.name == target.name))
    d = verify.interpreter_rung(model, x)[0].divergence
    assert (d.layer, d.element, d.step, d.expected, d.got) == (
        target.name, (0, 0, 0), target.op.t_fire + (0 if mode == "multi" else code), code,
        code + 1)


def test_verify_names_skipped_rungs_and_require_fails_on_them(tmp_path, tiny_models,
                                                               monkeypatch):
    """With no tools on PATH a --target all build runs 2 of its 4 rungs: the summary says
    which were skipped and why, never that all rungs agree; --require turns that into
    exit 1."""
    build = tmp_path / "b"
    np.save(tmp_path / "x.npy", np.random.default_rng(6).uniform(0, 1, (4, 8, 8)))
    assert cli("compile", tiny_models["transformer"], "--target", "all", "-o", build
               ).exit_code == 0
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    ran = ("2 of 4 rungs ran; skipped: HLS C simulation (g++ and make not installed), "
           "RTL simulation (no simulator: neither iverilog and vvp nor verilator on PATH)")
    res = cli("verify", build, "--input", tmp_path / "x.npy")
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[-1] == "verify: " + ran.replace("ran;", "ran and agree;")
    assert "all rungs agree" not in res.output
    report = json.loads((build / "report.json").read_text())["verify"]
    assert [r["status"] for r in report["rungs"]] == ["pass", "pass", "skipped", "skipped"]
    assert report["ran"] == 2
    for require, missing in (("all", "HLS C simulation, RTL simulation"),
                             ("hls", "HLS C simulation"), ("rtl", "RTL simulation")):
        res = cli("verify", build, "--input", tmp_path / "x.npy", "--require", require)
        assert res.exit_code == 1, res.output
        assert res.output.splitlines()[-1] == (
            f"verify: FAILED (--require {require}: {missing} did not run); {ran}")
    res = cli("verify", build, "--input", tmp_path / "x.npy", "--require", "onnx")
    assert res.exit_code == 0, res.output
    res = cli("verify", build, "--input", tmp_path / "x.npy", "--require", "cpu")
    assert str(res.exception) == "--require cpu: unknown rung. Fix: use one of all, onnx, hls, rtl"


def test_verify_leaves_the_build_folder_as_it_is(tmp_path, tiny_models):
    """verify's scratch files (binaries, tb_data, vectors) go to a temporary folder."""
    require_tool("g++")
    require_tool("make")
    require_tool("iverilog")
    build = tmp_path / "b"
    np.save(tmp_path / "x.npy", np.random.default_rng(7).uniform(0, 1, (2, 8, 8)))
    assert cli("compile", tiny_models["transformer"], "--target", "all", "-o", build
               ).exit_code == 0

    def files() -> dict[str, bytes]:
        return {str(p.relative_to(build)): p.read_bytes() for p in sorted(build.rglob("*"))
                if p.is_file() and p.name != "report.json"}

    before = files()
    res = cli("verify", build, "--input", tmp_path / "x.npy", "--rtl-simulator", "icarus")
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[-1] == "verify: all rungs agree"
    assert files() == before


def float_mlp() -> onnx.ModelProto:
    """A float MLP with no quantizer but one 8-bit one: calibration quantizes its input
    and first ReLU, and requantizes the 8-bit quantizer to T levels."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(0, 1, s).astype(np.float32), n)
             for n, s in (("w1", (4, 6)), ("w2", (6, 5)), ("w3", (5, 3)))]
    inits += [numpy_helper.from_array(np.float32(0.02), "s"),
              numpy_helper.from_array(np.uint8(0), "zp")]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h1"]),
             helper.make_node("Relu", ["h1"], ["r1"]),
             helper.make_node("MatMul", ["r1", "w2"], ["h2"]),
             helper.make_node("Relu", ["h2"], ["r2"]),
             helper.make_node("QuantizeLinear", ["r2", "s", "zp"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["d"]),
             helper.make_node("MatMul", ["d", "w3"], ["y"])]
    graph = helper.make_graph(
        nodes, "float_mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_calibrated_float_build_compares_and_verifies(tmp_path):
    """compile --calibrate: simulate --compare-onnx and verify compare with the float
    source (its activations quantized by the calibrated quantizers), and find a planted
    threshold change in a calibrated layer."""
    onnx.save(float_mlp(), tmp_path / "float.onnx")
    rng = np.random.default_rng(1)
    np.save(tmp_path / "calib.npy", rng.uniform(0, 1, (64, 4)))
    x = rng.uniform(0, 1, (40, 4))
    np.save(tmp_path / "x.npy", x)
    build = tmp_path / "b"
    assert cli("compile", tmp_path / "float.onnx", "--calibrate", tmp_path / "calib.npy",
               "-o", build).exit_code == 0
    res = cli("simulate", build / "model.snn", "--input", tmp_path / "x.npy",
              "--compare-onnx", tmp_path / "float.onnx")
    assert res.exit_code == 0, res.output
    assert "onnxruntime agreement: pass (every differing code explained)" in res.output
    onnx_json = json.loads((build / "report.json").read_text())["simulation"]["onnx"]
    names = layer_names(snncc.load(build / "model.snn").graph)
    assert [(la["node"], la["total"], la["differing"]) for la in onnx_json["layers"]] == [
        ("r1/Relu/calib_quant", 240, 0), ("d", 200, 0)]
    assert [la["name"] for la in onnx_json["layers"]] == [names[la["node"]]
                                                          for la in onnx_json["layers"]]
    assert (onnx_json["code_agreement"], onnx_json["decision_agreement"]) == (1.0, 1.0)
    res = cli("verify", build, "--input", tmp_path / "x.npy")
    assert res.exit_code == 0, res.output
    rungs = json.loads((build / "report.json").read_text())["verify"]["rungs"]
    assert [(r["status"], r["agreement"]) for r in rungs[:2]] == [("pass", 1.0), ("pass", 1.0)]
    # planted: the requantized layer's thresholds doubled
    before = snncc.load(build / "model.snn")
    g = before.graph.copy()
    op = g.node("d").op
    g.replace_op("d", o.Neuron(op.sign, op.thresholds * 2, op.levels, op.scale, op.t_fire))
    artifact.save(g, build / "model.snn")
    c_before, c_after = before.reference(x)["d"], snncc.load(build / "model.snn").reference(x)["d"]
    first = tuple(int(i) for i in np.argwhere(c_before != c_after)[0])
    a, b = int(c_before[first]), int(c_after[first])
    res = cli("verify", build, "--input", tmp_path / "x.npy")
    assert res.exit_code == 1, res.output
    line = next(s for s in res.output.splitlines() if "first divergence" in s)
    assert line == (f"onnxruntime ↔ integer reference: first divergence at DequantizeLinear_5 "
                    f"sample {first[0]} element {list(first[1:])} at step "
                    f"{op.t_fire + min(a, b)}: code onnxruntime {a}, reference {b}")
    res = cli("simulate", build / "model.snn", "--input", tmp_path / "x.npy",
              "--compare-onnx", tmp_path / "float.onnx")
    assert res.exit_code == 1, res.output
    unexplained = json.loads((build / "report.json").read_text())["simulation"]["onnx"][
        "unexplained"]
    assert unexplained == int(np.sum(c_before != c_after)) > 0
    assert f"onnxruntime agreement: FAIL ({unexplained} unexplained codes)" in res.output


def test_onnx_rung_fails_on_an_unexplained_code_only(tiny_models, monkeypatch):
    """The verdict of `simulate --compare-onnx`: a batch with fewer than 99.9 % identical
    codes passes when every difference is explained; one unexplained code fails, named."""
    from snncc.metrics import compare

    model = snncc.compile(tiny_models["cnn"], T=7)
    layers = [n.name for n in model.graph.ops(o.Neuron)]
    explained = compare.Agreement([
        compare.LayerAgreement(layers[0], 1000, 10, (0, 1, 2, 3), 2, 3, at_boundary=10),
        compare.LayerAgreement(layers[1], 1000, 20, (0, 0, 0, 0), 1, 0, downstream=20)],
        decisions=4)
    monkeypatch.setattr(compare, "compare_onnx", lambda *a, **k: explained)
    rung = verify.onnx_rung(model, Path("m.onnx"), np.zeros((4,) + model.input_shape))
    assert (rung.status, rung.agreement, rung.divergence) == (verify.PASS, 0.985, None)
    assert rung.detail == ("codes 98.5000% identical (target >= 99.9%), argmax 4/4; 30 "
                           "differing: 10 at a rounding boundary, 20 downstream, 0 unexplained")
    explained.layers[1].downstream = 19
    explained.layers[1].first_unexplained, explained.layers[1].unexplained_codes = (
        (2, 5, 0, 3), (4, 1))
    rung = verify.onnx_rung(model, Path("m.onnx"), np.zeros((4,) + model.input_shape))
    n = model.graph.node(layers[1])
    assert rung.status == verify.FAIL
    assert rung.divergence.describe() == (
        f"{layer_names(model.graph)[n.name]} ({n.origin}) sample 2 element [5, 0, 3] at step "
        f"{n.op.t_fire + 1}: code "
        "onnxruntime 4, reference 1")


def test_an_older_calibrated_build_fails_the_onnx_rung_and_the_others_run(tmp_path):
    """A calibrated build without the record of its quantizers' sites (an older snncc):
    the onnxruntime rung fails saying so, and the rest of the ladder still runs."""
    onnx.save(float_mlp(), tmp_path / "float.onnx")
    rng = np.random.default_rng(1)
    np.save(tmp_path / "calib.npy", rng.uniform(0, 1, (64, 4)))
    np.save(tmp_path / "x.npy", rng.uniform(0, 1, (8, 4)))
    build = tmp_path / "b"
    assert cli("compile", tmp_path / "float.onnx", "--calibrate", tmp_path / "calib.npy",
               "-o", build).exit_code == 0
    g = snncc.load(build / "model.snn").graph
    del g.meta["calibration"]["sites"]
    artifact.save(g, build / "model.snn")
    res = cli("verify", build, "--input", tmp_path / "x.npy")
    assert res.exit_code == 1, res.output
    rungs = json.loads((build / "report.json").read_text())["verify"]["rungs"]
    assert [r["status"] for r in rungs] == ["FAIL", "pass", "skipped", "skipped"]
    assert rungs[0]["detail"] == (
        f"{tmp_path / 'float.onnx'}: this build was calibrated by an older snncc, which did "
        "not record where its quantizers sit in the source model. Fix: compile it again "
        "with --calibrate")


def test_interpreter_rung_locates_a_flipped_spike(tiny_models):
    model = snncc.compile(tiny_models["cnn"], T=7)
    g = model.graph
    x = np.random.default_rng(2).uniform(0, 1, (4,) + model.input_shape)
    ref = model.run(x, engine="fast", trace=True).trains  # by IR node
    got = {k: v.copy() for k, v in ref.items()}
    layer = g.ops(o.Neuron)[1]
    got[layer.name][10, 3, 2, 1, 1] ^= 1  # step 10, sample 3, element (2, 1, 1)
    got[layer.name][12, 0, 0, 0, 0] ^= 1  # a later step of the same layer
    div = rungs.train_divergence(g, ref, got)
    assert (div.layer, div.step, div.element) == (layer.name, 10, (3, 2, 1, 1))
    assert "at step 10" in div.describe() and layer.origin in div.describe()


def test_hardware_rung_compares_counts_and_logits(tiny_models):
    model = snncc.compile(tiny_models["cnn"], T=7)
    g = model.graph
    x = np.random.default_rng(2).uniform(0, 1, (3,) + model.input_shape)
    r = run_step(g, x)
    golden = {"counts": r.counts, "logits": r.logits_int}
    same = rungs.hardware_rung("hw", "HLS", g, golden,
                                {"counts": dict(r.counts), "logits": r.logits_int})
    assert same.status == verify.PASS and same.agreement == 1.0
    layer = g.ops(o.Neuron)[1]
    bad = {k: v.copy() for k, v in r.counts.items()}
    bad[layer.name][2, 5, 0, 3] += 1
    rung = rungs.hardware_rung("hw", "HLS", g, golden, {"counts": bad, "logits": r.logits_int})
    assert rung.status == verify.FAIL
    assert (rung.divergence.layer, rung.divergence.element) == (layer.name, (2, 5, 0, 3))
    assert rung.divergence.step is None
    assert rung.divergence.describe().endswith(
        "(no time step: this rung compares spike counts over the whole run)")


def corrupt_first_row(header: Path) -> None:
    """Negate the largest-magnitude weight of the first row of a weights header."""
    text = header.read_text()
    start = text.index("= {") + 3
    row_start = text.index("{", start) + 1
    row_end = text.index("}", row_start)
    values = [int(v) for v in text[row_start:row_end].split(",")]
    k = int(np.argmax(np.abs(values)))
    values[k] = -values[k] if values[k] != -128 else 127
    header.write_text(text[:row_start] + ", ".join(map(str, values)) + text[row_end:])


@pytest.mark.simulator
def test_verify_runs_the_hls_rung_and_finds_a_corrupted_weight(tmp_path, tiny_models):
    require_tool("g++")
    require_tool("make")
    build = tmp_path / "b"
    np.save(tmp_path / "x.npy", np.random.default_rng(6).uniform(0, 1, (16, 8, 8)))
    assert cli("compile", tiny_models["transformer"], "--target", "hls", "-o", build
               ).exit_code == 0
    res = cli("verify", build, "--input", tmp_path / "x.npy")
    assert res.exit_code == 0, res.output
    rungs = json.loads((build / "report.json").read_text())["verify"]["rungs"]
    assert [(r["name"], r["status"]) for r in rungs][2] == ("interpreter ↔ HLS C simulation",
                                                          "pass")
    g = snncc.load(build / "model.snn").graph
    syn = next(n for n in g.ops(o.Synapse) if not n.op.analog)
    (consumer,) = [u for u in g.users(syn.name) if isinstance(u.op, o.Neuron)]
    headers = (build / "hls" / "firmware" / "weights").glob("*.h")
    (header,) = [h for h in headers if f"<- ONNX {syn.origin} " in h.read_text()]
    corrupt_first_row(header)
    res = cli("verify", build, "--input", tmp_path / "x.npy")
    assert res.exit_code == 1, res.output
    line = next(s for s in res.output.splitlines()
                if s.startswith("interpreter ↔ HLS C simulation: first divergence"))
    assert f" at {layer_names(g)[consumer.name]} ({consumer.origin}) sample " in line
    rungs = json.loads((build / "report.json").read_text())["verify"]["rungs"]
    assert [r["status"] for r in rungs] == ["pass", "pass", "FAIL", "skipped"]


def negate_largest_word(path: Path, count: int) -> None:
    """Negate (two's complement) the largest-magnitude of the first `count` hex words."""
    lines = path.read_text().split()
    bits = 4 * len(lines[0])

    def signed(w: str) -> int:
        v = int(w, 16)
        return v - (1 << bits) if v >> (bits - 1) else v

    values = [signed(w) for w in lines[:count]]
    k = int(np.argmax(np.abs(values)))
    new = max(-values[k], -(1 << (bits - 1)))
    lines[k] = format(new & ((1 << bits) - 1), f"0{len(lines[0])}x")
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.simulator
def test_verify_runs_the_rtl_rung_and_finds_a_corrupted_weight(tmp_path, tiny_models):
    require_tool("iverilog")
    build = tmp_path / "b"
    np.save(tmp_path / "x.npy", np.random.default_rng(7).uniform(0, 1, (2, 8, 8)))
    assert cli("compile", tiny_models["transformer"], "--target", "verilog", "-o", build
               ).exit_code == 0
    vectors = (build / "verilog" / "tb" / "vectors" / "codes.hex").read_text()
    res = cli("verify", build, "--input", tmp_path / "x.npy", "--rtl-simulator", "icarus")
    assert res.exit_code == 0, res.output
    assert "cycles per inference" in res.output
    assert (build / "verilog" / "tb" / "vectors" / "codes.hex").read_text() == vectors
    g = snncc.load(build / "model.snn").graph
    syn = next(n for n in g.ops(o.Synapse) if not n.op.analog)
    (consumer,) = [u for u in g.users(syn.name) if isinstance(u.op, o.Neuron)]
    engines = json.loads((build / "report.json").read_text())["targets"]["verilog"]["layers"]
    k = next(i for i, e in enumerate(engines) if e["node"] == syn.name)
    negate_largest_word(build / "verilog" / "mem" / f"e{k}_weights.hex", syn.op.weight.shape[1])
    res = cli("verify", build, "--input", tmp_path / "x.npy", "--rtl-simulator", "icarus")
    assert res.exit_code == 1, res.output
    line = next(s for s in res.output.splitlines() if "RTL simulation (icarus): first" in s)
    assert f" at {layer_names(g)[consumer.name]} ({consumer.origin}) sample " in line


def test_rtl_log_parsing_names_layer_and_element(tiny_models):
    g = snncc.compile(tiny_models["cnn"], T=7).graph
    probes = [n.name for n in g.ops(o.Neuron)]
    log = ("VECTOR 0 cycles 900 ok\nMISMATCH vector 1 layer 1 neuron 21: count 3, expected 2\n"
           "LAYER 0 a match 512/512\nLAYER 1 b match 191/192\nLOGITS match 20/20\n"
           "CYCLES min 900 max 950 mean 925\nRESULT FAIL 1/2 vectors\n")
    div, agreement, figures = hwrungs.parse_rtl(log, g, probes)
    second = g.ops(o.Neuron)[1]  # [6, 4, 4]: flat 21 = (1, 1, 1)
    assert (div.layer, div.element, div.expected, div.got) == (second.name, (1, 1, 1, 1), 2, 3)
    assert agreement == pytest.approx((512 + 191 + 20) / (512 + 192 + 20))
    assert figures == {"cycles per inference (min/mean/max)": "900 / 925 / 950"}


def test_rtl_progress_advances_per_testbench_vector(tmp_path, monkeypatch):
    done = []
    script = "printf 'building\\nVECTOR 0 cycles 9 ok\\n' ; echo oops >&2 ; echo 'VECTOR 1 cycles 9 FAIL'"
    ran = hwrungs._run(["sh", "-c", script], tmp_path, hwrungs.count_vectors(done.append))
    assert ran.returncode == 0 and done == [1, 1]
    assert ran.stdout == "building\nVECTOR 0 cycles 9 ok\noops\nVECTOR 1 cycles 9 FAIL\n"
    monkeypatch.setattr(hwrungs, "TIMEOUT", 0.5)
    with pytest.raises(subprocess.TimeoutExpired):
        hwrungs._run(["sh", "-c", "echo VECTOR 0; sleep 30"], tmp_path, lambda line: None)


def test_non_exact_delay_reports_conversion_error(tmp_path, tiny_models):
    build = tmp_path / "b"
    np.save(tmp_path / "x.npy", np.random.default_rng(8).uniform(0, 1, (12, 1, 8, 8)))
    assert cli("compile", tiny_models["cnn"], "--delay", "2", "-o", build).exit_code == 0
    res = cli("report", build, "--input", tmp_path / "x.npy", "--html", tmp_path / "r.html")
    assert res.exit_code == 0, res.output
    errors = json.loads((build / "report.json").read_text())["simulation"]["conversion_error"]
    graph = snncc.load(build / "model.snn").graph
    names = layer_names(graph)  # report.json keys layers by layer name
    assert set(errors) == {names[n.name] for n in graph.ops(o.Neuron)}
    assert "Conversion error" in (tmp_path / "r.html").read_text()
    res = cli("verify", build, "--input", tmp_path / "x.npy")
    assert res.exit_code == 0, res.output
    rungs = json.loads((build / "report.json").read_text())["verify"]["rungs"]
    assert rungs[1]["status"] == "reported"
    sizes = {names[n.name]: 12 * int(np.prod(n.shape)) for n in graph.ops(o.Neuron)}
    differing = sum(round(errors[k] * sizes[k]) for k in errors)
    assert differing > 0  # delay 2 is not exact on this model
    total = sum(sizes.values())
    assert rungs[1]["agreement"] == (total - differing) / total
