"""One test group per pass: the graph after it, `changed` reported truly both ways, and
the model's output unchanged by it (float semantics before quant-to-neuron, the integer
reference after)."""


import numpy as np
import onnx
import onnx.parser
import pytest

import modelgen
from snncc import ops as o
from snncc.errors import SnnccError
from snncc.frontend.importer import import_onnx
from snncc.passes.absorb_relu import AbsorbRelu
from snncc.passes.base import REGISTRY
from snncc.passes.calibrate_thresholds import CalibrateThresholds
from snncc.passes.canonicalize import Canonicalize
from snncc.passes.fold_batchnorm import FoldBatchNorm
from snncc.passes.insert_dif import InsertDif, parse_delay
from snncc.passes.quant_to_neuron import QuantToNeuron
from snncc.passes.softmax_to_nrelu import SoftmaxToNRelu
from snncc.passes.temporal_decomposition import TemporalDecomposition
from snncc.reference import evaluate

HEADER = '<ir_version: 8, opset_import: ["" : 17]>'
def rng() -> np.random.Generator:
    """A fresh generator per use: a test's data does not depend on which tests ran before."""
    return np.random.default_rng(0)


def load_text(text: str, tmp_path) -> "Graph":  # noqa: F821
    path = tmp_path / "m.onnx"
    onnx.save(onnx.parser.parse_model(HEADER + text), path)
    return import_onnx(path)


def load_model(model: onnx.ModelProto, tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    return import_onnx(path)


def outputs(graph, x):
    return evaluate(graph, {graph.inputs[0]: x}, keep=False)[graph.outputs[0]]


def kinds(graph) -> list[str]:
    return [n.op.name for n in graph.topo()]


def run_twice(p, graph, x, exact: bool = False):
    """Run a pass, check its output is preserved, and that a second run changes nothing."""
    before = outputs(graph, x)
    first = p.run(graph)
    after = outputs(first.graph, x)
    if exact:
        assert np.array_equal(before, after)
    else:
        assert np.allclose(before, after, rtol=1e-9, atol=1e-9)
    second = p.run(first.graph)
    assert not second.changed
    return first


def test_registry_names_every_pass():
    assert set(REGISTRY) == {"fold-batchnorm", "softmax-to-nrelu", "canonicalize",
                             "absorb-relu", "calibrate-thresholds", "quant-to-neuron",
                             "temporal-decomposition", "insert-dif"}


# ---------------------------------------------------------------- fold-batchnorm

BN_TEXT = """
g (float[N, 2, 3, 3] x) => (float[N, 2, 3, 3] y)
<float[2, 2, 1, 1] w = {1.0, -2.0, 0.5, 3.0}, float[2] g = {2.0, -0.5}, float[2] b = {0.1, 0.2},
 float[2] m = {0.3, -0.1}, float[2] v = {4.0, 0.25}> {
    c = Conv(x, w)
    y = BatchNormalization(c, g, b, m, v)
}"""


def test_fold_batchnorm_into_float_weights(tmp_path):
    g = load_text(BN_TEXT, tmp_path)
    x = rng().normal(size=(3, 2, 3, 3))
    result = run_twice(FoldBatchNorm(), g, x)
    assert result.changed
    assert kinds(result.graph) == ["Input", "Conv", "Affine"]
    affine = result.graph.ops(o.Affine)[0].op
    assert np.all(affine.mul == 1)
    conv = result.graph.ops(o.Conv)[0].op
    assert np.allclose(conv.weight.values[:, :, 0, 0],
                       [[1.0 * 2 / np.sqrt(4 + 1e-5), -2.0 * 2 / np.sqrt(4 + 1e-5)],
                        [0.5 * -0.5 / np.sqrt(0.25 + 1e-5), 3.0 * -0.5 / np.sqrt(0.25 + 1e-5)]])


def test_fold_batchnorm_keeps_quantized_weights_exact(tmp_path):
    g = load_model(modelgen.tiny_cnn(), tmp_path)
    x = rng().uniform(0, 1, (4, 1, 8, 8))
    codes_before = [n.op.weight.values.copy() for n in g.ops(o.Conv)]
    result = run_twice(FoldBatchNorm(), g, x)
    assert result.changed and not result.graph.ops(o.BatchNorm)
    assert all(np.array_equal(a, n.op.weight.values)
               for a, n in zip(codes_before, result.graph.ops(o.Conv), strict=True))


# ---------------------------------------------------------------- canonicalize


def test_canonicalize_moves_bn_between_transposes_next_to_the_linear(tmp_path):
    g = load_model(modelgen.tiny_transformer(), tmp_path)
    FoldBatchNorm().run(g)
    assert any(isinstance(n.op, o.Transpose) and isinstance(g.node(n.inputs[0]).op, o.Dense)
               for n in g.topo())
    x = rng().uniform(0, 1, (4, 8, 8))
    result = run_twice(Canonicalize(), g, x)
    assert result.changed
    for n in result.graph.ops(o.Dense):
        users = result.graph.users(n.name)
        assert all(not isinstance(u.op, o.Transpose) for u in users), n.name


def test_canonicalize_sinks_a_token_mean_below_the_head(tmp_path):
    g = load_text("""
    g (float[N, 4, 2] x) => (float[N, 3] y) <float[2, 3] w = {1.0, 2.0, 3.0, 4.0, 5.0, 6.0}> {
        m = ReduceMean <axes: ints = [1], keepdims: int = 0> (x)
        y = MatMul(m, w)
    }""", tmp_path)
    assert kinds(g) == ["Input", "ReduceSum", "Affine", "Dense"]
    result = run_twice(Canonicalize(), g, rng().normal(size=(2, 4, 2)))
    # the 1/n scale moves onto the input (it folds into the spikes' value), the sum after
    assert kinds(result.graph) == ["Input", "Affine", "Dense", "ReduceSum"]


@pytest.mark.parametrize("mean", [
    "p = GlobalAveragePool(x)\n        m = Flatten(p)",
    "m = ReduceMean <axes: ints = [2, 3], keepdims: int = 0> (x)"], ids=["gap", "reducemean"])
def test_canonicalize_sinks_a_spatial_mean_below_the_head(tmp_path, mean):
    """A mean over H and W before the head: the positions become rows ([C, H*W] -> [H*W,
    C]), the head a Dense per position, the sum after it; the values unchanged."""
    g = load_text(f"""
    g (float[N, 2, 3, 4] x) => (float[N, 5] y) <float[2, 5] w = {{{", ".join(
        str(k) for k in range(10))}}}> {{
        {mean}
        y = MatMul(m, w)
    }}""", tmp_path)
    result = run_twice(Canonicalize(), g, rng().normal(size=(2, 2, 3, 4)))
    assert kinds(result.graph) == ["Input", "Affine", "Reshape", "Transpose", "Dense",
                                   "ReduceSum"]
    (dense,) = result.graph.ops(o.Dense)
    assert dense.shape == (12, 5)


def test_canonicalize_reports_no_change_on_canonical_graph(tmp_path):
    g = load_text("""
    g (float[N, 2] x) => (float[N, 2] y) <float[2, 2] w = {1.0, 2.0, 3.0, 4.0}> {
        y = MatMul(x, w)
    }""", tmp_path)
    assert not Canonicalize().run(g).changed


REQUANTIZED = """
    g (float[N, 2, 3] x) => (float[N, 3, 2] y) <float s = {0.25}, float t = {0.5},
     uint8 z = {0}, uint8 lo = {0}, uint8 hi = {7}> {
        q = QuantizeLinear(x, s, z)
        c = Clip(q, lo, hi)
        a = DequantizeLinear(c, s, z)
        t1 = Transpose <perm: ints = [0, 2, 1]> (a)
        q2 = QuantizeLinear(t1, S2, z)
        d2 = DequantizeLinear(q2, S2, z)
        y = Mul(d2, t)
    }"""


@pytest.mark.parametrize("second, dropped", [("s", True), ("t", False)])
def test_canonicalize_drops_a_quantizer_that_repeats_the_one_before(tmp_path, second, dropped):
    """onnxruntime's quantizer requantizes after every Transpose with the same scale: a
    no-op (codes 0..7 are already on the grid of 0..255); another scale requantizes."""
    g = load_text(REQUANTIZED.replace("S2", second), tmp_path)
    assert len(g.ops(o.QuantAct)) == 2
    x = rng().uniform(-1, 3, (4, 2, 3))
    result = run_twice(Canonicalize(), g, x, exact=True)
    assert result.changed == dropped
    assert len(result.graph.ops(o.QuantAct)) == (1 if dropped else 2)


POOLED = """
    g (float[N, 2, 4, 4] x) => (float[N, 2, 2, 2] y) <float s = {0.25}, uint8 z = {0}> {
        r = Relu(x)
        p = MaxPool <kernel_shape: ints = [2, 2], strides: ints = [2, 2]> (r)
        q = QuantizeLinear(p, s, z)
        d = DequantizeLinear(q, s, z)
        y = Mul(d, s)
    }"""


def test_canonicalize_quantizes_before_a_max_pool(tmp_path):
    """onnxruntime's QOperator format pools the float ReLU and quantizes after; Q is
    monotone, so Q(max x) = max Q(x): the pool then reads spikes."""
    g = load_text(POOLED, tmp_path)
    x = rng().uniform(-1, 3, (4, 2, 4, 4))
    result = run_twice(Canonicalize(), g, x, exact=True)
    assert result.changed
    assert kinds(result.graph) == ["Input", "Relu", "QuantAct", "MaxPool", "Affine"]
    g = load_text(POOLED.replace("y = Mul(d, s)", "y = Mul(d, s)\n        p2 = Relu(p)")
                  .replace("=> (float[N, 2, 2, 2] y)", "=> (float[N, 2, 2, 2] y, "
                           "float[N, 2, 2, 2] p2)"), tmp_path)
    assert not Canonicalize().run(g).changed  # the pool has another user: it stays first


# ---------------------------------------------------------------- softmax-to-nrelu

SOFTMAX_TEXT = """
g (float[N, 4, 4] x) => (float[N, 4, 4] y) { y = Softmax <axis: int = -1> (x) }"""


def test_softmax_is_refused_with_the_fix(tmp_path):
    g = load_text(SOFTMAX_TEXT, tmp_path)
    with pytest.raises(SnnccError) as e:
        SoftmaxToNRelu().run(g)
    assert str(e.value) == (
        "node 'Softmax_0' (Softmax): Softmax needs exponentiation and division at run time. "
        "Fix: train with NReLU (ReLU(x)/N), or pass --replace-softmax to swap it in "
        "(accuracy changes unless the model was trained with NReLU)")


def test_softmax_replaced_by_relu_over_n_with_a_warning(tmp_path):
    g = load_text(SOFTMAX_TEXT, tmp_path)
    with pytest.warns(UserWarning, match=r"replaced by ReLU\(x\)/4"):
        result = SoftmaxToNRelu(replace_softmax=True).run(g)
    assert result.changed
    assert kinds(result.graph) == ["Input", "Affine", "Relu"]  # scale moved inside the ReLU
    x = rng().normal(size=(2, 4, 4))
    assert np.allclose(outputs(result.graph, x), np.maximum(x, 0) / 4)
    assert not SoftmaxToNRelu(replace_softmax=True).run(result.graph).changed


def test_nrelu_is_recognized_in_either_order(tmp_path):
    for body in ("r = Relu(s)\n y = Mul(r, c)", "m = Mul(s, c)\n y = Relu(m)"):
        g = load_text("""
        g (float[N, 2, 3] a, float[N, 3, 2] b) => (float[N, 2, 2] y) <float c = {0.5}> {
            s = MatMul(a, b)
            """ + body + "}", tmp_path)
        result = SoftmaxToNRelu().run(g)
        assert kinds(result.graph)[-2:] == ["Affine", "Relu"]
        assert result.graph.meta["nrelu"] == [{"node": "MatMul_0", "keys": 2, "scale": 0.5,
                                               "extra_factor": 1.0}]
        # the ReLU's value is the source's `y` either way: it names the node that made y
        (relu,) = result.graph.ops(o.Relu)
        assert relu.origin == ("Mul_2" if body.startswith("r =") else "Relu_2")


# ---------------------------------------------------------------- absorb-relu


def test_absorb_relu_before_unsigned_quantizer(tmp_path):
    g = load_model(modelgen.tiny_cnn(), tmp_path)
    x = rng().uniform(0, 1, (4, 1, 8, 8))
    relus = len(g.ops(o.Relu))
    result = run_twice(AbsorbRelu(), g, x)
    assert relus == 2 and result.changed and not result.graph.ops(o.Relu)


# ---------------------------------------------------------------- quant-to-neuron


def canonical(model: onnx.ModelProto, tmp_path):
    g = load_model(model, tmp_path)
    for p in (FoldBatchNorm(), SoftmaxToNRelu(), Canonicalize(), AbsorbRelu()):
        g = p.run(g).graph
    return g


@pytest.mark.parametrize("make", [modelgen.tiny_cnn, modelgen.tiny_transformer])
def test_quant_to_neuron_codes_equal_the_quantizers(tmp_path, make):
    g = canonical(make(po2=True), tmp_path)
    x = np.random.default_rng(1).uniform(0, 1, (64,) + g.node(g.inputs[0]).shape)
    floats = evaluate(g, {g.inputs[0]: x})
    result = QuantToNeuron(T=7).run(g.copy())
    assert result.changed
    ints = evaluate(result.graph, {g.inputs[0]: x})
    neurons = result.graph.ops(o.Neuron)
    assert len(neurons) == len(g.ops(o.QuantAct)) - 1  # all but the input quantizer
    differing = total = 0
    for n in neurons:
        want = np.rint(floats[n.name] / g.node(n.name).op.scale)
        differing += int(np.sum(ints[n.name] != want))
        total += want.size
    # exact but for residual-stream sums in fixed point (DESIGN §3): a rarity
    assert differing <= total * 1e-3
    assert not QuantToNeuron(T=7).run(result.graph).changed


def test_quant_to_neuron_refuses_levels_above_t(tmp_path):
    g = canonical(modelgen.tiny_cnn(), tmp_path)
    with pytest.raises(SnnccError, match="3-bit activations: 7 levels > T = 5. Fix: use --calibrate DATA .requantizes to T levels. or -T 7"):
        QuantToNeuron(T=5).run(g)


# ---------------------------------------------------------------- SNN-level passes


def snn(tmp_path, model=None):
    g = canonical(model or modelgen.tiny_transformer(), tmp_path)
    return QuantToNeuron(T=7).run(g).graph


def test_temporal_decomposition_swaps_products_and_pools(tmp_path):
    g = snn(tmp_path)
    x = rng().uniform(0, 1, (8, 8, 8))
    assert len(g.ops(o.MatMul)) == 2
    result = run_twice(TemporalDecomposition(), g, x, exact=True)
    assert result.changed and not result.graph.ops(o.MatMul)
    assert len(result.graph.ops(o.TDMatMul)) == 2
    g = snn(tmp_path, modelgen.tiny_cnn())
    result = run_twice(TemporalDecomposition(), g, rng().uniform(0, 1, (4, 1, 8, 8)), exact=True)
    assert len(result.graph.ops(o.TDMaxPool)) == 2


def test_insert_dif_sets_delays_by_policy(tmp_path):
    g = TemporalDecomposition().run(snn(tmp_path)).graph
    x = rng().uniform(0, 1, (8, 8, 8))
    result = run_twice(InsertDif("exact"), g, x, exact=True)
    assert result.changed
    fires = [n.op.t_fire for n in result.graph.ops(o.Neuron)]
    assert fires[0] == 1  # after the analog input (step 0)
    # exact: a neuron fires the step after the last spike of every neuron feeding it, over
    # every path (so a residual add waits for its later branch)
    spans = _source_spans(result.graph)
    residual_neurons = 0
    for n in result.graph.ops(o.Neuron):
        first, last = spans[n.inputs[0]]
        assert n.op.t_fire == last + 1, n.name
        residual_neurons += isinstance(result.graph.node(n.inputs[0]).op, o.AddCurrent)
    assert residual_neurons > 0  # the model has residual adds feeding neurons
    none = InsertDif("none").run(result.graph.copy())
    assert none.changed
    two = InsertDif(2).run(result.graph.copy())
    delayed = 0
    for policy, g in (("none", none.graph), (2, two.graph)):
        spans, onsets = _source_spans(g), _onsets(g)
        for n in g.ops(o.Neuron):
            first, last = spans[n.inputs[0]]
            # N counts from the input's onset: the first step of its latest-starting branch
            expected = first if policy == "none" else min(onsets[n.inputs[0]] + 2, last + 1)
            assert n.op.t_fire == expected, n.name
            delayed += policy == 2 and onsets[n.inputs[0]] > first
    assert delayed > 0  # some neuron reads a branch that starts after its stream does


def _source_spans(g) -> dict[str, tuple[int, int]]:
    """First and last step at which each value can carry input, from its spiking sources:
    a neuron spikes from t_fire for L steps; an input's spikes from 0 for L steps (analog:
    step 0 only); every other op is active when its inputs are."""
    spans: dict[str, tuple[int, int]] = {}
    for n in g.topo():
        if isinstance(n.op, o.SpikeInput):
            spans[n.name] = (0, 0 if n.op.analog else n.op.hi - n.op.lo - 1)
        elif isinstance(n.op, o.Neuron):
            spans[n.name] = (n.op.t_fire, n.op.t_fire + n.op.levels - 1)
        elif n.inputs:
            ins = [spans[i] for i in n.inputs if i in spans]
            spans[n.name] = (min(a for a, _ in ins), max(b for _, b in ins))
    return spans


def _onsets(g) -> dict[str, int]:
    """The step from which every spiking source of a value has started: the input at 0, a
    neuron at t_fire, anything else at the latest of its operands'."""
    onsets: dict[str, int] = {}
    for n in g.topo():
        if isinstance(n.op, o.SpikeInput):
            onsets[n.name] = 0
        elif isinstance(n.op, o.Neuron):
            onsets[n.name] = n.op.t_fire
        elif n.inputs:
            onsets[n.name] = max(onsets[i] for i in n.inputs if i in onsets)
    return onsets


@pytest.mark.parametrize(("text", "value"), [("exact", "exact"), ("none", "none"), ("3", 3)])
def test_parse_delay(text, value):
    assert parse_delay(text) == value


def test_parse_delay_rejects_garbage():
    with pytest.raises(ValueError, match="--delay must be 'exact', 'none' or a non-negative"):
        parse_delay("-2")


# ---------------------------------------------------------------- calibrate-thresholds


def test_calibrate_inserts_quantizers_in_a_float_model(tmp_path):
    g = load_text("""
    g (float[N, 4] x) => (float[N, 3] y)
    <float[4, 3] w = {1.0, -1.0, 0.5, 2.0, 0.0, 1.0, -0.5, 1.0, 1.0, 0.25, 0.5, -1.0},
     float[3, 3] w2 = {1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0}> {
        h = MatMul(x, w)
        r = Relu(h)
        y = MatMul(r, w2)
    }""", tmp_path)
    data = rng().uniform(0, 1, (64, 4))
    before = evaluate(g, {g.inputs[0]: data}, keep=False)[g.outputs[0]].argmax(axis=1)
    result = CalibrateThresholds(data, T=7).run(g.copy())
    assert result.changed
    quants = result.graph.ops(o.QuantAct)
    assert [q.op.levels for q in quants] == [255, 7]
    q = result.graph
    after = evaluate(q, {q.inputs[0]: data}, keep=False)[q.outputs[0]].argmax(axis=1)
    assert q.meta["calibration"]["decision_agreement"] == np.mean(before == after) >= 0.85
    assert not CalibrateThresholds(data, T=7).run(result.graph).changed


def test_calibrate_removes_quantizers_that_feed_no_spikes(tmp_path):
    """A signed 8-bit quantizer on a current (onnxruntime's quantizer puts one on every
    tensor) at T = 7: removed, not requantized; the unsigned one after the ReLU stays."""
    g = load_text("""
    g (float[N, 4] x) => (float[N, 3] y)
    <float[4, 3] w = {1.0, -1.0, 0.5, 2.0, 0.0, 1.0, -0.5, 1.0, 1.0, 0.25, 0.5, -1.0},
     float[3, 3] w2 = {1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0}, float s = {0.02},
     int8 z = {0}, uint8 uz = {0}, uint8 lo = {0}, uint8 hi = {7}, float t = {0.3}> {
        h = MatMul(x, w)
        hq = QuantizeLinear(h, s, z)
        hd = DequantizeLinear(hq, s, z)
        r = Relu(hd)
        rq = QuantizeLinear(r, t, uz)
        rc = Clip(rq, lo, hi)
        rd = DequantizeLinear(rc, t, uz)
        y = MatMul(rd, w2)
    }""", tmp_path)
    data = rng().uniform(0, 1, (64, 4))
    result = CalibrateThresholds(data, T=7).run(g.copy())
    assert result.changed
    assert [(q.op.lo, q.op.hi) for q in result.graph.ops(o.QuantAct)] == [(0, 255), (0, 7)]
    assert not CalibrateThresholds(data, T=7).run(result.graph).changed


def test_calibrate_requantizes_levels_above_T(tmp_path):
    """4-bit activations (15 levels) at T = 7: refused without data; with --calibrate data
    each becomes a 7-level quantizer, the cost is recorded as the decision agreement with
    the source model, and the SNN is exact for its new quantizers."""
    import snncc
    from snncc.metrics.compare import run_onnx

    b = modelgen.Builder("q4", (6, 8), seed=6)
    x = b.quant(b.linear(b.input_quant(), 8, 12), levels=15)
    x = b.quant(b.linear(x, 12, 8), levels=15)
    path = tmp_path / "q4.onnx"
    onnx.save(b.model([b.linear(b.mean(x, [1]), 8, 10)]), path)
    with pytest.raises(SnnccError, match="4-bit activations: 15 levels > T = 7"):
        snncc.compile(path, T=7)
    data = np.random.default_rng(4).uniform(0, 1, (96, 6, 8))
    model = snncc.compile(path, T=7, calibrate=data)
    assert [n.op.levels for n in model.graph.ops(o.Neuron)] == [7, 7]
    meta = model.graph.meta["calibration"]
    assert meta["samples"] == 96 and meta["quantizers"] == 2
    source = run_onnx(path, data, [])[0].argmax(axis=1)  # the 15-level model, onnxruntime
    agreement = np.mean(model.simulate(data).predictions == source)
    assert 0.5 < agreement < 1  # requantizing to fewer levels cost some decisions here
    assert meta["decision_agreement"] == pytest.approx(agreement, abs=1 / 96)
    step = model.simulate(data, engine="step")
    ref = model.reference(data)
    for n in model.graph.ops(o.Neuron):
        assert np.array_equal(step.counts[n.name], ref[n.name])
