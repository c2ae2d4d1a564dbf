"""`snncc simulate`'s figures from spike counts (issue 14): the same numbers as counting
operations on the expanded spike trains (snncc.metrics.energy.count_ops, the replay), for every
batch split, and `simulate` under non-exact delays. Each closed form of snncc.metrics.run_rules
(sums of a synapse's current from masks of counts, conv and max-pool costs per input
element, TD-MatMul's runs) is also held to energy's rule on explicit trains."""

import json

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

import modelgen
import snncc
from conftest import EXAMPLE
from snncc import ops as o
from snncc.app.cli import app
from snncc.intmath import Rounding
from snncc.ir import Graph
from snncc.kernels import conv2d, sumpool2d
from snncc.metrics import run_rules
from snncc.metrics.energy import (
    count_ops,
    maxpool_comparisons,
    reduce_sum_adds,
    synapse_sops,
)
from snncc.metrics.energy import td_matmul_sops as td_matmul_sops_on_trains
from snncc.metrics.measure import measure, pack_raster
from snncc.metrics.run_rules import (
    NonzeroCurrents,
    conv_fan_out,
    summed_adds,
    td_matmul_sops,
    window_reach,
)
from snncc.metrics.tally import count_from_counts, replayed, summed_from_counts

runner = CliRunner()


def cli(*args):
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_models):
    folder = tmp_path_factory.mktemp("vit")
    made = {"vit": modelgen.tiny_vit(),
            "vit_spiking_overlap": modelgen.tiny_vit(seed=2, spike_input=True,
                                                     overlap_pool=True)}
    paths = dict(tiny_models, digits=EXAMPLE / "digits_vit_qcdq.onnx")
    for name, model in made.items():
        paths[name] = folder / f"{name}.onnx"
        onnx.save(model, paths[name])
    return paths


def inputs(model, n, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (n,) + model.input_shape)


@pytest.mark.parametrize("name", ["cnn", "transformer", "transformer_spiking_input",
                                  "transformer_po2", "vit", "vit_spiking_overlap", "digits"])
def test_counts_from_spike_counts_equal_counting_the_trains(models, name):
    model = snncc.compile(models[name], T=7)
    x = inputs(model, 9)
    r = model.simulate(x, trace=True)
    from_trains = count_ops(model.graph, x, r.trains)
    from_counts = count_from_counts(model.graph, x, r.counts)
    assert from_counts == from_trains
    assert any(ops.sops_effective for ops in from_counts.layers.values())
    # the heads' sums (mean over tokens -> linear) come from masks of counts, not replayed
    sums = {n.name for n in model.graph.ops(o.ReduceSum)}
    assert set(summed_from_counts(model.graph)) == sums and not replayed(model.graph) - sums
    assert all(from_trains.layers[k].adds for k in sums)


def _cancelling(w: np.ndarray) -> np.ndarray:
    """w with row 1 = -row 0: a current is zero at a step where inputs 0 and 1 spike alone."""
    w[1] = -w[0]
    return w


def _weights(kind: str, rng) -> np.ndarray:
    k, m = 6, 7
    if kind == "int8":  # one 8-bit factor, zero weights too
        return _cancelling(rng.integers(-3, 4, (k, m)))
    if kind == "scaled":  # a * s + e with |e| summed below s: the factors tested apart
        a, e = rng.integers(-127, 128, (k, m)), rng.integers(-9, 10, (k, m))
        a[0], a[3], e[3] = 127, -a[2], 1 - e[2]  # rows 2 and 3: a cancels, e does not
        return _cancelling(a * 5003 + e)
    w = _cancelling(rng.integers(-2**20, 2**20, (k, m)))  # three digits, combined
    w[:2, 0] = 128, -128  # digits (-128, 1) and (-128): zero only once combined
    return w


@pytest.mark.parametrize("kind", ["int8", "scaled", "wide"])
@pytest.mark.parametrize("axes", [(0,), (-1,), (0, 1), (1, -1)])
def test_summed_currents_from_masks_equal_the_trains(kind, axes, monkeypatch):
    """ReduceSum of a dense synapse's current: the closed form on counts against energy's
    rule on the per-step currents of explicit trains (and each way of testing currents)."""
    rng = np.random.default_rng(len(axes) * 7 + len(kind))
    w = _weights(kind, rng)
    counts = rng.integers(0, 5, (3, 4, 5, w.shape[0]))  # [B, 4, 5, K]
    counts[0, 0, 0, :2], counts[0, 0, 0, 2:] = 3, 0  # inputs 0 and 1 alone: cancel
    counts[1, 0, 0], counts[1, 0, 0, 2:4] = 0, 2  # inputs 2 and 3 alone
    t = np.arange(6).reshape(-1, 1, 1, 1, 1)
    current = (counts[None] > t).astype(np.int64) @ w  # [T, B, 4, 5, M]
    expected = reduce_sum_adds(o.ReduceSum(axes), current)
    test = NonzeroCurrents(w)
    assert {"int8": test.kernel.digits == 1, "scaled": test.apart,
            "wide": not test.apart and test.kernel.digits > 2}[kind]
    for dtype in (np.uint8, np.int64):
        assert summed_adds(counts.astype(dtype), test, axes, (4, 5, w.shape[1])) == expected
    monkeypatch.setattr(run_rules, "SUMMED_BLOCK", 300)  # blocks of one or two inputs
    assert summed_adds(counts, test, axes, (4, 5, w.shape[1])) == expected
    assert summed_adds(np.zeros_like(counts), test, axes, (4, 5, w.shape[1])) == 0


@pytest.mark.parametrize("kernel, strides, pads, dilations, group", [
    ((3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1), ((2, 2), (2, 2), (0, 0, 0, 0), (1, 1), 2),
    ((3, 2), (2, 1), (1, 0, 2, 1), (2, 1), 1), ((1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 4)])
def test_conv_and_max_pool_costs_per_element_equal_the_rules(kernel, strides, pads,
                                                             dilations, group):
    """A conv synapse's (effective) SOPs and a max-pool's comparisons as the batch's counts
    dotted with costs per input element, against energy's rules (convolutions)."""
    rng = np.random.default_rng(sum(kernel) + group)
    c, h, w = 4, 7, 6
    weight = rng.integers(-2, 3, (8, c // group) + kernel)  # zeros among them
    op = o.Synapse(weight, "conv", strides, pads, dilations, group)
    counts = rng.integers(0, 6, (3, c, h, w))
    out = conv2d(counts, weight, strides, pads, dilations, group).shape[1:]
    batch = counts.sum(axis=0)
    reach, eff = conv_fan_out(op, (c, h, w), out)
    assert (int((batch * reach).sum()), int((batch * eff).sum())) == synapse_sops(op, counts)
    if dilations == (1, 1):
        pool = o.TDMaxPool(kernel, strides, pads)
        pooled = sumpool2d(counts, kernel, strides, pads).shape[1:]
        windows = window_reach(np.ones((c,) + kernel, np.int64), (c, h, w), pooled, strides,
                               pads)
        assert int((batch * windows).sum()) == maxpool_comparisons(pool, counts)


@pytest.mark.parametrize("lag", [-3, -1, 0, 1, 2, 5])
def test_td_matmul_closed_form_equals_the_trains(lag):
    """Runs of spikes (count c from its start) against energy's per-step rule."""
    rng = np.random.default_rng(lag + 10)
    a = rng.integers(0, 4, (3, 2, 4, 5))  # [B, heads, N, d]
    b = rng.integers(0, 4, (3, 1, 5, 6))  # [B, 1, d, M]: broadcast over the heads
    start_a, start_b = max(0, -lag), max(0, lag)
    steps = 12
    t = np.arange(steps).reshape(-1, 1, 1, 1, 1)
    sa = ((t >= start_a) & (t < start_a + a)).astype(np.int64)
    sb = ((t >= start_b) & (t < start_b + b)).astype(np.int64)
    assert td_matmul_sops(a, b, lag) == td_matmul_sops_on_trains(sa, sb)
    # the engine's counts are uint8: the same figures through the narrow sums
    assert td_matmul_sops(a.astype(np.uint8), b.astype(np.uint8), lag) == \
        td_matmul_sops_on_trains(sa, sb)


@pytest.mark.parametrize("kernel, strides, pads", [
    ((2, 2), (2, 2), (0, 0, 0, 0)), ((3, 3), (1, 1), (1, 1, 1, 1)),
    ((3, 3), (2, 2), (1, 0, 1, 1)), ((2, 3), (1, 2), (0, 1, 1, 0))])
def test_pooled_counts_equal_the_engines_max_pool(kernel, strides, pads):
    from snncc.kernels import maxpool_planes
    from snncc.metrics.run_rules import pooled_counts

    rng = np.random.default_rng(sum(kernel) + sum(pads))
    for dtype in (np.uint8, np.int64):
        c = rng.integers(0, 8, (3, 2, 7, 9)).astype(dtype)
        mine, engines = pooled_counts(c, kernel, strides, pads), maxpool_planes(
            c, kernel, strides, pads)
        assert mine.dtype == engines.dtype and np.array_equal(mine, engines)


def overlapping_residual() -> Graph:
    """Two synapses from one neuron meet in a residual add at the same steps: the add
    depends on per-step currents, so it is replayed."""
    g = Graph("overlap")
    g.add("x", o.Input(), shape=(4,), kind=o.FLOAT)
    g.inputs, g.meta = ["x"], {"T": 3, "delay": "exact"}
    g.add("enc", o.SpikeInput(np.array(1.0), 0, 0, 3, Rounding.HALF_EVEN, False), ["x"])
    g.add("fc1", o.Synapse(np.array([[1, -1], [1, 0], [2, 1], [-1, 1]], np.int64)), ["enc"])
    g.add("fc2", o.Synapse(np.array([[0, 1], [1, 1], [-1, 0], [1, 0]], np.int64)), ["enc"])
    g.add("add", o.AddCurrent(), ["fc1", "fc2"])
    th = np.array([1, 3, 5], np.int64)
    g.add("n1", o.Neuron(np.array(1, np.int8), th, 3, np.array(1.0), t_fire=3), ["add"])
    g.add("fc3", o.Synapse(np.ones((2, 3), np.int64)), ["n1"])
    g.add("out", o.Readout(1.0, np.zeros(3)), ["fc3"])
    g.outputs = ["out"]
    return g


def test_overlapping_residual_add_is_replayed_and_equal():
    g = overlapping_residual()
    assert replayed(g) == {"add"}
    model = snncc.CompiledModel(g)
    x = np.random.default_rng(4).integers(0, 4, (20, 4)).astype(np.float64)
    r = model.simulate(x, trace=True)
    expected = count_ops(g, x, r.trains)
    assert count_from_counts(g, x, r.counts) == expected
    assert expected.layers["add"].adds > 0


@pytest.mark.parametrize("batch_size", [1, 4, 256])
def test_measure_in_any_batches_equals_one_traced_run(models, batch_size):
    model = snncc.compile(models["vit"], T=7)
    x = inputs(model, 11, seed=5)
    m = measure(model, x, batch_size=batch_size)
    r = model.simulate(x, trace=True)
    assert np.array_equal(m.logits, r.logits) and np.array_equal(m.logits_int, r.logits_int)
    assert m.counts == count_ops(model.graph, x, r.trains)
    assert m.firing_rates(model.graph) == r.firing_rates(model.graph)
    for n in model.graph.ops(o.Neuron):
        assert m.spikes_per_neuron(model.graph, n.name) == float(r.counts[n.name].mean())
    assert set(m.rasters) == {n.name for n in model.graph.ops(o.Neuron)}
    _assert_rasters_are_the_step_engines(model, x, m)


def _assert_rasters_are_the_step_engines(model, x: np.ndarray, m) -> None:
    """The report's rasters (made from the first input's counts, for the neurons shown
    alone) are the step engine's trains of that input."""
    first = model.run(x[:1], engine="step", trace=True, batch_size=1)
    assert m.rasters == {name: pack_raster(t[:, 0]) for name, t in first.trains.items()}
    assert any(r["shown"] < r["neurons"] for r in m.rasters.values())


@pytest.mark.parametrize("neuron", ["signed", "multi"])
def test_other_neuron_kinds_are_counted_from_their_trains(models, neuron):
    """Signed and multi neurons do not send runs of unit spikes: their trains count."""
    model = snncc.compile(models["vit"], T=7, neuron=neuron)
    x = inputs(model, 6, seed=8)
    m = measure(model, x, batch_size=4)
    r = model.simulate(x, trace=True)
    assert m.counts == count_ops(model.graph, x, r.trains)
    assert m.firing_rates(model.graph) == r.firing_rates(model.graph)
    _assert_rasters_are_the_step_engines(model, x, m)


@pytest.mark.parametrize("delay", ["2", "4", "6", "none"])
def test_simulate_after_a_small_delay(tmp_path, models, delay):
    """Small delays open some neurons' windows after the run has ended (once a
    ZeroDivisionError in the replay)."""
    build = tmp_path / "b"
    assert cli("compile", models["vit"], "--delay", delay, "-o", build).exit_code == 0
    model = snncc.load(build / "model.snn")
    x = inputs(model, 10, seed=6)
    np.save(tmp_path / "x.npy", x)
    res = cli("simulate", build / "model.snn", "--input", tmp_path / "x.npy")
    assert res.exit_code == 0, res.output
    sim = json.loads((build / "report.json").read_text())["simulation"]
    r = model.simulate(x, trace=True)
    ref = model.reference(x)
    assert sim["conversion_error"] == {k: float(np.mean(r.counts[k] != ref[k]))
                                       for k in r.counts}
    layers = {row["node"]: row for row in json.loads((build / "report.json").read_text())[
        "layers"]}
    counted = count_ops(model.graph, x, r.trains)
    for name, ops in counted.layers.items():
        assert layers[name]["sops"] == ops.sops / len(x)
