"""The fast engine's plan as one onnxruntime session (backends/sim/ortgraph.py): every
layer's counts and the logits equal the integer reference's and the numpy path's, and
each lowered neuron counts its levels right at every threshold."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import modelgen
import snncc
from conftest import EXAMPLE
from snncc import ops as o
from snncc.backends.sim import integer, ortgraph, plan

RNG = np.random.default_rng(5)


def _fast(model, x, whole: str, monkeypatch):
    monkeypatch.setenv("SNNCC_ORT_GRAPH", whole)
    return model.simulate(x, engine="fast")


def _assert_exact(model, x, monkeypatch):
    """The whole-graph session ran and equals the integer reference and the numpy path."""
    ref = model.reference(x)
    got = _fast(model, x, "1", monkeypatch)
    assert plan.build(model.graph).whole, "the plan did not lower: the numpy path ran"
    numpy_path = _fast(model, x, "0", monkeypatch)
    for n in model.graph.ops(o.Neuron):
        assert np.array_equal(got.counts[n.name], ref[n.name]), n.name
        assert got.counts[n.name].dtype == numpy_path.counts[n.name].dtype, n.name
        assert np.array_equal(got.counts[n.name], numpy_path.counts[n.name]), n.name
    (readout,) = model.graph.ops(o.Readout)
    assert np.array_equal(got.logits_int, ref[readout.name])
    assert np.array_equal(got.logits, numpy_path.logits)


@pytest.mark.parametrize("name", ["cnn", "cnn_po2", "transformer", "transformer_po2",
                                  "transformer_spiking_input"])
def test_whole_graph_session_equals_the_reference(tiny_models, name, monkeypatch):
    """One sample a run (the blocks' outputs joined in order) for the CNN, else one block
    a core."""
    if name == "cnn":
        monkeypatch.setattr(ortgraph, "BLOCK", 1)
    model = snncc.compile(tiny_models[name], T=7)
    x = RNG.uniform(-0.2, 1.2, (9,) + model.input_shape)
    _assert_exact(model, x, monkeypatch)


@pytest.mark.parametrize("mode", ["signed", "multi"])
def test_whole_graph_session_on_every_neuron_kind(tiny_models, mode, monkeypatch):
    """Signed neurons (codes held as int8) and multi-threshold ones."""
    model = snncc.compile(tiny_models["transformer"], T=7, neuron=mode)
    x = RNG.uniform(0, 1, (5,) + model.input_shape)
    _assert_exact(model, x, monkeypatch)


def test_whole_graph_session_on_the_digits_vit(monkeypatch):
    model = snncc.compile(EXAMPLE / "digits_vit_qcdq.onnx", T=7)
    x = np.load(EXAMPLE / "digits_test.npz")["x"][:64]
    _assert_exact(model, x, monkeypatch)


@pytest.mark.parametrize("factors", ["digits", "pairs", "scaled"])
def test_whole_graph_session_on_every_weight_factoring(tiny_models, factors, monkeypatch):
    """Every synapse on 8-bit products, its weights cut into digits (combined in float64
    one at a time, or two at a time in int32 first) or scaled: the lowering combines the
    products as the kernel does, exactly."""
    monkeypatch.setattr(integer, "WIDE_TERMS", 0)
    monkeypatch.setattr(integer, "SCALED_TERMS", 0)
    monkeypatch.setattr(integer, "CONV_TERMS", 0)
    monkeypatch.setattr(integer, "MAX_DIGITS", 8)
    if factors != "scaled":
        monkeypatch.setattr(integer, "scaled", lambda w: None)
    if factors == "digits":
        monkeypatch.setattr(integer, "_INT32", 1)  # no int32 pairs (and no int32 bound)
    model = snncc.compile(tiny_models["transformer"], T=9)
    p = plan.build(model.graph)
    mats = [m for m in p.integer.values() if isinstance(m, integer.IntMatMul)]
    if factors == "digits":
        assert not mats  # nothing fits int32 sums: float MatMul and digit Convs instead
    else:
        assert any(m.digits > 1 for m in mats)
        assert any(m.scale is not None for m in mats) == (factors == "scaled")
        assert any(m.pairs for m in mats) == (factors == "pairs") or factors == "scaled"
    x = RNG.uniform(0, 1, (6,) + model.input_shape)
    _assert_exact(model, x, monkeypatch)


def conv_stack() -> onnx.ModelProto:
    """Convolutions of every shape the lowerings handle: on analog codes (0..255), 3x3
    stride 2 (a bias per pixel: its neuron's thresholds differ along the rows), asymmetric pads with a dilation and unequal strides, 1x1 (no im2col
    needed), and two added together (unequal scales: wide weights), read by an Add
    instead of a neuron (their currents transposed back to channels first)."""
    b = modelgen.Builder("convs", (2, 11, 11), seed=4)
    x = b.conv(b.input_quant(), 2, 6, k=3, pad=1, stride=2)  # [6, 6, 6]
    x = b.quant(b.node("Add", [x, b.const(b.rng.normal(0, .3, (6, 6, 6)).astype(np.float32))]))
    x = b.maxpool(x, 3, 1, 1)
    x = b.quant(b.node("Conv", [x, b.weight((5, 6, 3, 3))], pads=[2, 1, 0, 1],
                       strides=[1, 2], dilations=[2, 1], kernel_shape=[3, 3]))  # [5, 4, 3]
    x = b.quant(b.bn(b.conv(x, 5, 7, k=1, pad=0, per_channel=True), 7))  # [7, 4, 3]
    x = b.maxpool(x, 2, 2)  # [7, 2, 1]
    y = b.node("Add", [b.conv(x, 7, 4, k=1, pad=0), b.conv(x, 7, 4, k=3, pad=1)])
    return b.model([b.linear(b.quant(b.node("Flatten", [y], axis=1)), 8, 3)])


@pytest.mark.parametrize("lowering", ["ConvInteger", "ConvInteger in bands", "im2col"])
@pytest.mark.parametrize("factors", ["scaled", "digits"])
def test_whole_graph_session_on_every_convolution(tmp_path, lowering, factors, monkeypatch):
    """Every convolution with an integer kernel on 8-bit products, as ConvInteger (with its
    neuron a row of the current at a time, in bands) or as an im2col and MatMulInteger
    (its current left channels last for its neuron), its wide weights `scaled` (a * m + e)
    or cut into base-256 digits combined two at a time; without one, ConvInteger on 8-bit
    weights, else float Convs: every layer's counts equal the reference's (the neurons'
    tables differ along the rows: a band takes its rows' thresholds; a 2x2 max pool after
    a neuron in bands pools band by band)."""
    if factors == "digits":
        monkeypatch.setattr(integer, "scaled", lambda w: None)
        monkeypatch.setattr(integer, "WIDE_TERMS", 0)
        monkeypatch.setattr(integer, "MAX_DIGITS", 8)
    monkeypatch.setattr(integer, "CONV_TERMS", 0)
    monkeypatch.setattr(ortgraph, "IM2COL_CHANNELS", 0 if lowering == "im2col" else 10**9)
    monkeypatch.setattr(ortgraph, "CONV_INTEGER_PIXELS", 0)  # its images are small
    monkeypatch.setattr(ortgraph, "BAND", 1 if lowering.endswith("bands") else 10**12)
    onnx.save(conv_stack(), tmp_path / "convs.onnx")
    model = snncc.compile(tmp_path / "convs.onnx", T=7)
    p = plan.build(model.graph)
    convs = [n for n in p.order if isinstance(n.op, o.Synapse) and n.op.kind == "conv"]
    kerns = [p.integer[n.name].mats[0] for n in convs if n.name in p.integer]
    assert (len(kerns), max(k.digits for k in kerns)) == ((5, 4) if factors == "digits"
                                                          else (4, 2))
    assert any(k.pairs for k in kerns if k.digits == 4) == (factors == "digits")
    assert any(k.scale is not None for k in kerns) == (factors == "scaled")
    rest = [len(integer.digits(n.op.weight)) for n in convs if n.name not in p.integer]
    dense = sum(k.digits for n, k in p.integer.items() if isinstance(k, integer.IntMatMul))
    ops = [node.op_type for node in onnx.load_from_string(ortgraph.lower(p)[0]).graph.node]
    assert ops.count("Conv") == sum(d for d in rest if d > 1)
    if lowering == "im2col":  # but on analog codes (ConvInteger's uint8 x uint8 kernel)
        analog = [p.integer[n.name].mats[0].digits for n in convs if n.name in p.integer
                  and p.bound[n.inputs[0]] > 0x7F]
        assert len(analog) == 1
        assert ops.count("ConvInteger") == sum(d for d in rest if d == 1) + sum(analog)
        assert ops.count("MatMulInteger") == sum(k.digits for k in kerns) - sum(analog) + dense
        assert ops.count("Concat") == sum(1 for n in convs if n.name in p.integer
                                          and n.op.weight.shape[2:] != (1, 1)) - 1
    else:  # 8-bit weights on ConvInteger, one per factor of the others (a band: a row)
        # a band a row (the third's pool 2x2: two rows a band); the added two unfused
        bands = [6, 4, 2, 1, 1] if lowering.endswith("bands") else [1] * 5
        rows = dict(zip([n.name for n in convs], bands, strict=True))
        assert ops.count("ConvInteger") == sum(
            rows[n.name] * (p.integer[n.name].mats[0].digits if n.name in p.integer
                            else len(integer.digits(n.op.weight)))
            for n in convs if n.name in p.integer or len(integer.digits(n.op.weight)) == 1)
        assert ops.count("MatMulInteger") == dense
    x = RNG.uniform(-0.2, 1.2, (7,) + model.input_shape)
    _assert_exact(model, x, monkeypatch)


def _neuron_session(p: plan.Plan, n) -> ort.InferenceSession:
    """A model holding n's lowered count alone, the current as its input."""
    b = ortgraph.Builder()
    b.types["x"] = p.dtype[n.inputs[0]]
    b.model_out = ortgraph._neuron(b, p, n, "x", p.dtype[n.name])
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(b.model([b.model_out]), opts,
                                providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("name", ["cnn", "transformer", "digits"])
@pytest.mark.parametrize("affine", [True, False])
def test_lowered_level_counts_at_every_threshold(tiny_models, name, affine):
    """Each neuron's lowered count (the proved one-pass line, or the comparisons) against
    #{k : sign*v >= θ_k} on the currents θ_k - 1, θ_k and θ_k + 1 of every level of
    every neuron, and the ends of the current's range: a Clip to L - 1, a rounding
    instead of a floor or a > for a >= would fail here."""
    path = EXAMPLE / "digits_vit_qcdq.onnx" if name == "digits" else tiny_models[name]
    model = snncc.compile(path, T=7)
    p = plan.build(model.graph)
    if not affine:
        p = plan.Plan(p.graph, p.order, p.bound, p.dtype, p.weights, neurons=p.neurons)
    checked = 0
    for n in model.graph.ops(o.Neuron):
        op = n.op_as(o.Neuron)
        assert (n.name in p.affine) == affine, n.name
        bound = p.bound[n.inputs[0]]
        th = np.broadcast_to(op.thresholds, n.shape + (op.levels,)).astype(np.int64)
        sign = np.broadcast_to(op.sign, n.shape).astype(np.int64)
        s = np.concatenate([th + d for d in (-1, 0, 1)], axis=-1)
        s = np.moveaxis(np.clip(s, -bound, bound), -1, 0)  # [3L, ...] values of sign*v
        s = np.concatenate([s, np.full((2,) + n.shape, -bound), np.full((1,) + n.shape, bound)])
        v = s * sign  # the currents
        want = np.sum(s[..., None] >= th[None], axis=-1)
        got = _neuron_session(p, n).run(None, {"x": v.astype(p.dtype[n.inputs[0]])})[0]
        assert got.dtype == p.dtype[n.name], n.name
        assert np.array_equal(got, want), n.name
        checked += 1
    assert checked


def test_a_plan_that_does_not_lower_keeps_the_numpy_path(tiny_models, monkeypatch):
    def refuse(*args):
        raise ortgraph.Unsupported("max pool")

    monkeypatch.setattr(ortgraph, "_op", refuse)
    model = snncc.compile(tiny_models["cnn"], T=7)
    x = RNG.uniform(0, 1, (4,) + model.input_shape)
    got = _fast(model, x, "1", monkeypatch)
    assert plan.build(model.graph).whole is False
    ref = model.reference(x)
    for n in model.graph.ops(o.Neuron):
        assert np.array_equal(got.counts[n.name], ref[n.name]), n.name


@pytest.mark.parametrize("cores", [1, 2, 3])
def test_blocks_cover_the_batch_evenly(monkeypatch, cores):
    """The session's blocks: every sample once in order, none past BLOCK elements of the
    largest value (but one sample), as many as a multiple of the cores where the batch
    allows, their sizes within one of each other."""
    monkeypatch.setattr(ortgraph.kernels, "_workers", lambda: cores)
    for batch in [0, 1, 2, 5, 9, 16, 256, 1001]:
        for largest in [1, 1000, ortgraph.BLOCK // 3, ortgraph.BLOCK, 4 * ortgraph.BLOCK]:
            got = ortgraph.blocks(batch, largest)
            assert [i for a, b in got for i in range(a, b)] == list(range(batch))
            sizes = [b - a for a, b in got]
            assert all(s <= max(1, ortgraph.BLOCK // largest) for s in sizes)
            assert not sizes or max(sizes) - min(sizes) <= 1
            assert len(got) % cores == 0 or len(got) == batch
