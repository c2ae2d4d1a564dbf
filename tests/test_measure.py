"""`snncc simulate`'s figures from spike counts (issue 14): the same numbers as counting
operations on the expanded spike trains (snncc.metrics.energy.count_ops, the replay), for every
batch split, and `simulate` under non-exact delays."""

import json

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

import modelgen
import snncc
from snncc import ops as o
from snncc.app.cli import app
from snncc.intmath import Rounding
from snncc.ir import Graph
from snncc.metrics.energy import count_ops
from snncc.metrics.energy import td_matmul_sops as td_matmul_sops_on_trains
from snncc.metrics.measure import measure
from snncc.metrics.tally import count_from_counts, replayed, td_matmul_sops

runner = CliRunner()


def cli(*args):
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_models):
    folder = tmp_path_factory.mktemp("vit")
    made = {"vit": modelgen.tiny_vit(),
            "vit_spiking_overlap": modelgen.tiny_vit(seed=2, spike_input=True,
                                                     overlap_pool=True)}
    paths = dict(tiny_models)
    for name, model in made.items():
        paths[name] = folder / f"{name}.onnx"
        onnx.save(model, paths[name])
    return paths


def inputs(model, n, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (n,) + model.input_shape)


@pytest.mark.parametrize("name", ["cnn", "transformer", "transformer_spiking_input",
                                  "transformer_po2", "vit", "vit_spiking_overlap"])
def test_counts_from_spike_counts_equal_counting_the_trains(models, name):
    model = snncc.compile(models[name], T=7)
    x = inputs(model, 9)
    r = model.simulate(x, trace=True)
    from_trains = count_ops(model.graph, x, r.trains)
    from_counts = count_from_counts(model.graph, x, r.counts)
    assert from_counts == from_trains
    assert any(ops.sops_effective for ops in from_counts.layers.values())


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
    from snncc.metrics.tally import pooled_counts

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


@pytest.mark.parametrize("neuron", ["signed", "multi"])
def test_other_neuron_kinds_are_counted_from_their_trains(models, neuron):
    """Signed and multi neurons do not send runs of unit spikes: their trains count."""
    model = snncc.compile(models["vit"], T=7, neuron=neuron)
    x = inputs(model, 6, seed=8)
    m = measure(model, x, batch_size=4)
    r = model.simulate(x, trace=True)
    assert m.counts == count_ops(model.graph, x, r.trains)
    assert m.firing_rates(model.graph) == r.firing_rates(model.graph)


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
