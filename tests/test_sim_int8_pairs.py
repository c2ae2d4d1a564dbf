"""8-bit products exact on every machine's onnxruntime kernels (backends/sim/integer.py
``exact_int8``): forced to assume x86 without VNNI ("saturating": pairs of uint8 x int8
products summed in int16 with saturation, int8 activations flipped to a + 128) or ARM
without the dot product ("wrapping": pairs in int16, wrapping, uint8 activations
flipped to a - 128), every MatMulInteger and ConvInteger the engine builds has operands
whose pair sums stay in int16, or both unsigned; the counts still equal the integer
reference; and an emulation of those kernels shows that the int8 form the engine used
before would have been wrong on one of the products."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper
from test_sim_ortgraph import conv_stack

import modelgen
import snncc
from snncc import ops as o
from snncc.backends.sim import integer, ortgraph, plan
from snncc.errors import SnnccError
from snncc.intmath import quantize

RNG = np.random.default_rng(11)


def pair_sums(a: np.ndarray, w: np.ndarray, a_signed: bool, hazard: str) -> np.ndarray:
    """a [M, K] @ w [K, N] (int8 w) as onnxruntime's kernels without VNNI or dot products
    compute it: the activation flipped (x86: int8 a to a + 128; ARM: uint8 a to a - 128),
    products of consecutive terms summed in pairs in int16 (x86 saturating, ARM wrapping),
    the pairs summed in int32, the flip's 128 * column sums taken back."""
    flip = (128 if a_signed else 0) if hazard == "saturating" else (0 if a_signed else -128)
    a = a.astype(np.int64) + flip
    w = w.astype(np.int64)
    if a.shape[1] % 2:
        a, w = np.pad(a, ((0, 0), (0, 1))), np.pad(w, ((0, 1), (0, 0)))
    p = a[:, :, None] * w[None]
    two = p[:, 0::2] + p[:, 1::2]
    saturated = np.clip(two, -0x8000, 0x7FFF)
    wrapped = (two + 0x8000) % 0x10000 - 0x8000
    two = saturated if hazard == "saturating" else wrapped
    return two.sum(axis=1) - flip * w.sum(axis=0)


def fits_int16(a_lo: int, a_hi: int, w_lo: int, w_hi: int) -> bool:
    ends = [a * w for a in (a_lo, a_hi) for w in (w_lo, w_hi)]
    return 2 * max(ends) <= 0x7FFF and 2 * min(ends) >= -0x8000


def flipped(a_lo: int, a_hi: int, a_type, hazard: str) -> tuple[int, int]:
    """An activation's values as the kernel of `hazard` holds them."""
    signed = np.dtype(a_type) == np.int8
    flip = (128 if signed else 0) if hazard == "saturating" else (0 if signed else -128)
    return a_lo + flip, a_hi + flip


def assert_safe(a_type, a_range, w_type, w_range, hazard: str, where: str) -> None:
    """Both operands unsigned (exact on every kernel), or int8 weights whose products pair
    up within int16 on the kernel of `hazard`."""
    if np.dtype(a_type) == np.uint8 and np.dtype(w_type) == np.uint8:
        return
    assert np.dtype(w_type) == np.int8, where
    assert fits_int16(*flipped(*a_range, a_type, hazard), *w_range), (where, a_range, w_range)


@pytest.mark.parametrize("hazard", ["saturating", "wrapping"])
def test_exact_int8_is_the_emulated_kernels_bound(hazard, monkeypatch):
    """exact_int8 says yes just where the emulation of the kernel (operands at their
    ends, two equal terms a pair) equals the exact product; "exact" always says yes."""
    monkeypatch.setattr(integer, "PAIRS", hazard)
    cases = [(np.uint8, 0, hi, wlo, whi) for hi in (1, 7, 127, 128, 129, 255)
             for wlo, whi in ((-128, 127), (-127, 127), (-64, 63), (0, 127), (-128, 0))]
    cases += [(np.int8, lo, hi, -128, 127) for lo, hi in ((-7, 7), (-128, 127), (0, 1))]
    cases += [(np.int8, -7, 7, -9, 9), (np.int8, -128, 127, -1, 1)]
    seen = set()
    for t, lo, hi, wlo, whi in cases:
        wrong = False
        for a in (lo, hi):
            for w in (wlo, whi):
                x = np.full((1, 2), a)
                d = np.full((2, 1), w)
                wrong |= bool(pair_sums(x, d, t == np.int8, hazard)[0, 0] != 2 * a * w)
        assert integer.exact_int8(np.dtype(t), lo, hi, wlo, whi) == (not wrong), (t, lo, hi,
                                                                                  wlo, whi)
        seen.add(wrong)
    assert seen == {True, False}
    monkeypatch.setattr(integer, "PAIRS", "exact")
    assert all(integer.exact_int8(np.dtype(t), *c) for t, *c in cases)
    monkeypatch.setattr(integer, "PAIRS", "bogus")
    with pytest.raises(SnnccError, match="SNNCC_INT8_PAIRS='bogus' is not a known way"):
        integer.pairs()


def test_a_bad_int8_pairs_setting_is_one_message(tmp_path):
    """Through the command: exit 1, one message naming the variable and its values."""
    onnx.save(modelgen.tiny_transformer(tokens=4, dim=4, seed=7), tmp_path / "t.onnx")
    model = snncc.compile(tmp_path / "t.onnx", T=7)
    model.save(tmp_path / "model.snn")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).uniform(0, 1, (2, *model.input_shape)))
    proc = subprocess.run([sys.executable, "-m", "snncc", "simulate", "model.snn", "--input",
                           "x.npy"], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "SNNCC_INT8_PAIRS": "bogus"})
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "SNNCC_INT8_PAIRS='bogus' is not a known way to sum 8-bit products" in proc.stderr
    assert "exact, saturating, wrapping, any" in proc.stderr


def _nodes(model: bytes):
    m = onnx.load_from_string(model)
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    types = {i.name: helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type)
             for i in m.graph.input}
    return m, inits, types


@pytest.mark.parametrize("hazard", ["saturating", "wrapping"])
@pytest.mark.parametrize("x_range", [(0, 255), (-128, 127), (0, 127)])
@pytest.mark.parametrize("scale", [1, 2**13 + 1, 2**21 + 1])  # 1, 2 and 4 weight digits
def test_integer_kernels_take_safe_forms(hazard, x_range, scale, monkeypatch):
    """IntMatMul's and IntStacked's sessions: every product's operands fit the kernel of
    `hazard` (or are both uint8, zero points 128), and the products stay exact."""
    monkeypatch.setattr(integer, "PAIRS", hazard)
    lo, hi = x_range
    w = RNG.integers(-128, 128, (130, 9)) * scale + RNG.integers(-scale // 2, scale // 2 + 1,
                                                                 (130, 9))
    w[:2] = -128 * scale  # digits at -128
    mat = integer.IntMatMul.planned(w, lo, hi)
    assert mat is not None
    m, inits, types = _nodes(mat.model())
    for node in m.graph.node:
        x, d = node.input[:2]
        a_type, d_vals = types[x], inits[d]
        a_range = (lo + 128, hi + 128) if a_type == np.uint8 and lo < 0 else (lo, hi)
        assert_safe(a_type, a_range, d_vals.dtype, (int(d_vals.min()), int(d_vals.max())),
                    hazard, node.output[0])
        if d_vals.dtype == np.uint8:  # zero points 128: the weights', int8 x's with them
            assert [inits[z].item() for z in node.input[2:] if z] == [128] * (1 + (lo < 0))
    x = RNG.integers(lo, hi + 1, (3, 17, 130))
    x[0, 0] = lo
    x[0, 1] = hi
    assert np.array_equal(mat(x, np.float64), x @ w)
    a, b = RNG.integers(lo, hi + 1, (4, 3, 5, 16)), RNG.integers(lo, hi + 1, (1, 3, 16, 7))
    t = integer.operand_type(lo, hi)
    stacked = integer.IntStacked(t, t, ((lo, hi), (lo, hi)))
    m, inits, types = _nodes(stacked.model())
    a_range = (lo + 128, hi + 128) if stacked.shift[0] else (lo, hi)
    b_range = (lo + 128, hi + 128) if stacked.shift[1] else (lo, hi)
    if types["b"] == np.int8:
        assert_safe(types["a"], a_range, types["b"], b_range, hazard, "stacked")
    assert np.array_equal(stacked(a, b, np.float64), a @ b)


def test_the_int8_form_was_wrong_on_analog_codes_and_wide_weights():
    """The emulated x86 kernel without VNNI gets the old int8 form of these products
    wrong (uint8 codes to 255, and -128 digits on ARM without the dot product): the
    checks above guard real cases."""
    x = RNG.integers(200, 256, (4, 130))
    d = RNG.integers(-128, 128, (130, 9)).astype(np.int8)
    d[:2] = -128
    exact = x @ d.astype(np.int64)
    assert not np.array_equal(pair_sums(x, d, False, "saturating"), exact)
    assert np.array_equal(pair_sums(x // 2, d, False, "saturating"), (x // 2) @ d.astype(int))
    assert not np.array_equal(pair_sums(0 * x, d, False, "wrapping"), 0 * exact)
    s = RNG.integers(-128, 128, (4, 130))
    assert not np.array_equal(pair_sums(s, d, True, "saturating"), s @ d.astype(np.int64))


def analog_mlp() -> onnx.ModelProto:
    """A dense synapse on the input's analog codes (0..255) with 8-bit weights, then one
    on spikes: the first is at risk on x86 without VNNI."""
    b = modelgen.Builder("analog", (40,), seed=3)
    x = b.quant(b.linear(b.input_quant(), 40, 24))
    return b.model([b.linear(x, 24, 5)])


def attention() -> onnx.ModelProto:
    """A TDMatMul of 8-bit counts (0..255) by 0..100 ones: uint8 x int8 only where exact."""
    b = modelgen.Builder("attention", (6, 8), seed=2)
    x = b.input_quant()
    q = b.quant(b.linear(x, 8, 8), levels=255)
    k = b.quant(b.linear(x, 8, 8), levels=100)
    y = b.quant(b.node("MatMul", [q, b.node("Transpose", [k], perm=[0, 2, 1])]))
    return b.model([b.linear(b.node("Flatten", [y], axis=1), 36, 3)])


def _operands_fed(p, x: np.ndarray):
    """The lowered model's MatMulInteger and ConvInteger nodes with the values their
    operands took on x (each operand's array) and the ranges the lowering proved."""
    builder = ortgraph.Builder()
    lowered = ortgraph.lower(p, builder)
    assert lowered is not None
    m = onnx.load_from_string(lowered[0])
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    nodes = [n for n in m.graph.node if n.op_type in ("MatMulInteger", "ConvInteger")]
    shown = sorted({i for n in nodes for i in n.input[:2] if i not in inits})
    for name in shown:
        m.graph.output.append(helper.make_tensor_value_info(
            name, helper.np_dtype_to_tensor_dtype(builder.types[name]), None))
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"x": x}),
                   strict=True))
    for n in nodes:
        vals = [inits[i] if i in inits else got[i] for i in n.input[:2]]
        zeros = [int(inits[z].item()) if z else None for z in [*n.input[2:4], "", ""]][:2]
        yield n, vals, zeros, builder.operands[n.output[0]], n.input[1] in inits


@pytest.mark.parametrize("case", ["analog", "signed", "wide", "cnn", "attention", "convs"])
def test_whole_graph_and_numpy_path_stay_exact_when_pairs_saturate(case, tiny_models, tmp_path,
                                                                   monkeypatch):
    """Forced "saturating" (and "wrapping" for the wide weights' -128 digits), every
    product in the lowered model has operands within their proved ranges and safe for
    that kernel (or both uint8 with zero points of 128), and every layer's counts and
    the logits equal the integer reference on both paths; on the analog model the old
    int8 form of the first product, emulated, differs from the exact one."""
    hazard = "wrapping" if case in ("wide", "convs") else "saturating"
    monkeypatch.setattr(integer, "PAIRS", hazard)
    if case in ("wide", "convs"):  # every synapse on base-256 digits (some at -128)
        monkeypatch.setattr(integer, "WIDE_TERMS", 0)
        monkeypatch.setattr(integer, "SCALED_TERMS", 0)
        monkeypatch.setattr(integer, "CONV_TERMS", 0)
        monkeypatch.setattr(integer, "MAX_DIGITS", 8)
        monkeypatch.setattr(integer, "scaled", lambda w: None)
        monkeypatch.setattr(ortgraph, "IM2COL_CHANNELS", 0)  # every convolution on codes
    if case in ("analog", "attention", "convs"):
        made = {"analog": analog_mlp, "attention": attention, "convs": conv_stack}[case]()
        onnx.save(made, tmp_path / "m.onnx")
        model = snncc.compile(tmp_path / "m.onnx", T=255 if case == "attention" else 7)
    else:
        name = {"signed": "transformer", "wide": "transformer", "cnn": "cnn"}[case]
        model = snncc.compile(tiny_models[name], T=7,
                              **({"neuron": "signed"} if case == "signed" else {}))
    x = np.clip(RNG.uniform(-0.1, 1.3, (6,) + model.input_shape), 0, 1)
    p = plan.build(model.graph)
    unsafe = counts_by_counts = 0
    for n, (a, w), zeros, (a_range, w_range), constant_w in _operands_fed(
            p, x[:3].astype(np.float64)):
        where = f"{n.op_type} -> {n.output[0]}"
        for v, (lo, hi) in ((a, a_range), (w, w_range)):
            assert lo <= int(v.min()) and int(v.max()) <= hi, where
        assert_safe(a.dtype, a_range, w.dtype, w_range, hazard, where)
        # uint8 weights (int8 ones shifted) come with a zero point of 128, int8 ones with
        # none; a shifted activation or TDMatMul operand is uint8 with one
        if constant_w:
            assert zeros[1] == (128 if w.dtype == np.uint8 else None), where
        for v, z in zip((a, w), zeros, strict=True):
            assert z in (None, 128) and (z is None or v.dtype == np.uint8), where
        unsafe += bool(constant_w and w.dtype == np.uint8 and n.op_type == "MatMulInteger")
        counts_by_counts += not constant_w  # a TDMatMul's (no initializer)
    kerns = [k for v in p.integer.values()
             for k in (v.mats if isinstance(v, integer.IntConv) else [v])]
    assert bool(counts_by_counts) == (case not in ("analog", "cnn", "convs"))  # attention
    if case != "cnn":  # its analog codes feed ConvInteger (uint8 x uint8 already)
        assert unsafe, "no product needed the unsigned form: the model is not at risk"
        assert any(any(k.unsigned) for k in kerns)
    ref = model.reference(x)
    for whole in ("1", "0"):
        monkeypatch.setenv("SNNCC_ORT_GRAPH", whole)
        got = model.simulate(x, engine="fast")
        for n in model.graph.ops(o.Neuron):
            assert np.array_equal(got.counts[n.name], ref[n.name]), (whole, n.name)
        (readout,) = model.graph.ops(o.Readout)
        assert np.array_equal(got.logits_int, ref[readout.name]), whole
    if case == "analog":  # the int8 form of the first product, emulated on these inputs
        first = next(n for n in p.order if isinstance(n.op, o.Synapse))
        (src,) = [model.graph.node(i) for i in first.inputs]
        q = src.op_as(o.SpikeInput)
        codes = quantize(x.reshape(len(x), -1), q.scale, q.zero_point, q.lo, q.hi, q.rounding)
        (d,) = p.integer[first.name].cut
        assert not np.array_equal(pair_sums(codes, d, False, hazard),
                                  codes @ d.astype(np.int64))
