"""Quantizer forms -> one ``QuantAct`` per activation quantizer, or a quantized constant.

QCDQ (QuantizeLinear -> [Clip] -> DequantizeLinear, onnxruntime's QDQ) is read in halves:
QuantizeLinear binds a ``PendingQuant``, a Clip narrows it, DequantizeLinear makes the
``QuantAct``. QONNX ``Quant``/``IntQuant`` is one node. On constants both give a ``QConst``
(integer codes and a scale) that becomes a quantized ``Weight``.
"""

from __future__ import annotations

import numpy as np
import onnx

from snncc import ops
from snncc.frontend.context import ClippedAct, Context, PendingQuant, QConst
from snncc.frontend.registry import HandlerTable
from snncc.intmath import Rounding, compress

_INT_RANGES: dict[np.dtype, tuple[int, int]] = {
    np.dtype(t): (int(np.iinfo(t).min), int(np.iinfo(t).max))
    for t in (np.uint8, np.int8, np.uint16, np.int16, np.int32)}
_ONNX_INT_TYPES: dict[int, np.dtype] = {
    onnx.TensorProto.UINT8: np.dtype(np.uint8), onnx.TensorProto.INT8: np.dtype(np.int8),
    onnx.TensorProto.UINT16: np.dtype(np.uint16), onnx.TensorProto.INT16: np.dtype(np.int16)}
_QONNX_ROUNDING = {"ROUND": Rounding.HALF_EVEN, "FLOOR": Rounding.FLOOR,
                   "HALF_UP": Rounding.HALF_UP}
# op type -> handler: ONNX's default domain, and the QONNX domains (loader.QONNX_DOMAINS)
TABLE = HandlerTable()
QONNX = HandlerTable()


@TABLE.handles(QuantizeLinear="with DequantizeLinear: a quantizer (QCDQ, onnxruntime's QDQ)")
def _quantize_linear(cx: Context, node: onnx.NodeProto) -> None:
    clipped = cx.env.get(node.input[0])
    x = clipped.x if isinstance(clipped, ClippedAct) else cx.act(node.input[0])
    scale = cx.quant_scale(node.input[1])
    zp = cx.zero_point(node, 2, scale)
    a = cx.attrs(node)
    if a.get("block_size", 0):
        cx.fail("blocked quantization is not supported", "quantize per tensor or axis")
    dtype = zp.dtype if zp is not None else _ONNX_INT_TYPES.get(
        int(a.get("output_dtype", 0) or 2), np.dtype(object))
    if dtype not in _INT_RANGES:
        cx.fail(f"quantized type {dtype} is not supported", "use (u)int8 or (u)int16")
    lo, hi = _INT_RANGES[dtype]
    zps = np.unique(zp) if zp is not None else np.zeros(1)
    if len(zps) != 1:
        cx.fail("per-channel zero points are not supported", "use one zero point")
    if isinstance(clipped, ClippedAct):  # round(min(y, top)/s) = min(round(y/s), round(top/s))
        if scale.size != 1:
            cx.fail("a Clip before a per-channel quantizer", "quantize per tensor")
        hi = max(lo, min(hi, int(np.rint(clipped.top / float(scale.ravel()[0]))) + int(zps[0])))
    cx.bind(PendingQuant(x, scale, int(zps[0]), lo, hi, int(a.get("axis", 1))))


@TABLE.handles(Clip="between QuantizeLinear and DequantizeLinear (quantizer range), min=0: "
                    "ReLU, or (0, top) before QuantizeLinear: the quantizer's top code")
def _clip(cx: Context, node: onnx.NodeProto) -> None:
    v = cx.env.get(node.input[0])
    lo, hi = (cx.scalar(node.input[k], "the bound") if len(node.input) > k
              and node.input[k] else None for k in (1, 2))
    if any(b is not None and np.isnan(b) for b in (lo, hi)):
        cx.fail("a Clip bound is NaN", "fix the bound")
    lo = None if lo == -np.inf else lo
    hi = None if hi == np.inf else hi
    if isinstance(v, PendingQuant):
        new_lo = v.lo if lo is None else max(v.lo, min(v.hi, int(np.ceil(lo))))
        new_hi = v.hi if hi is None else min(v.hi, max(v.lo, int(np.floor(hi))))
        return cx.bind(PendingQuant(v.x, v.scale, v.zero_point, new_lo, new_hi, v.axis))
    x = cx.act(node.input[0])
    if lo == 0.0 and hi is None:
        return cx.bind(cx.emit(ops.Relu(), [x]))
    if lo in (0.0, None) and hi is not None:  # ReLU6 and the like: the quantizer's top
        return cx.bind(ClippedAct(x if lo is None else cx.emit(ops.Relu(), [x]), hi))
    cx.fail("Clip of an activation outside a quantizer cannot be spiked",
            "clip with a quantizer (QuantizeLinear/DequantizeLinear) or use ReLU")


@TABLE.handles(DequantizeLinear="with QuantizeLinear: a quantizer; of a constant: "
                                "quantized weights, biases or BN parameters")
def _dequantize_linear(cx: Context, node: onnx.NodeProto) -> None:
    v = cx.env.get(node.input[0])
    scale = cx.quant_scale(node.input[1])
    zp = cx.zero_point(node, 2, scale)
    a = cx.attrs(node)
    if a.get("block_size", 0):
        cx.fail("blocked quantization is not supported", "quantize per tensor or axis")
    axis = int(a.get("axis", 1))
    if isinstance(v, np.ndarray):  # a quantized weight or bias
        return cx.bind(_dequantized(cx, v, scale, zp, axis))
    if not isinstance(v, PendingQuant):
        cx.fail("DequantizeLinear of an activation must follow QuantizeLinear",
                "export activations as QuantizeLinear -> DequantizeLinear pairs")
    if scale.size not in (1, np.size(v.scale)) and np.size(v.scale) != 1:
        cx.fail(f"the scale has {scale.size} values, its QuantizeLinear's "
                f"{np.size(v.scale)}", "use the same scale in both")
    _quant_act(cx, v.x, v.scale, v.zero_point, v.lo, v.hi, Rounding.HALF_EVEN, v.axis)
    if not np.allclose(scale, v.scale, rtol=0, atol=0):
        ratio = _scale_shape(cx, scale / v.scale, v.axis, v.x)
        y = cx.env[node.output[0]]
        assert isinstance(y, str)  # _quant_act bound the activation
        cx.bind(cx.emit(ops.Affine(ratio, np.zeros(())), [y]))


def _dequantized(cx: Context, v: np.ndarray, scale: np.ndarray, zp: np.ndarray | None,
                 axis: int) -> QConst:
    """A quantized constant: integer codes minus the zero point, per tensor or axis."""
    if v.dtype.kind not in "iu":
        cx.fail(f"DequantizeLinear of a {v.dtype} constant", "store integer codes")
    shape = [1] * v.ndim
    if scale.size > 1:
        if not -v.ndim <= axis < v.ndim or v.shape[axis] != scale.size:
            cx.fail(f"{scale.size} scales do not fit axis {axis} of a constant of shape "
                    f"{list(v.shape)}", "give one scale per channel of that axis")
        shape[axis] = -1
    zp = np.zeros(1, np.int64) if zp is None else np.asarray(zp, np.int64)
    values = v.astype(np.int64) - zp.reshape(shape)
    return QConst(values, compress(scale.reshape(shape)))


def _scale_shape(cx: Context, scale: np.ndarray, axis: int, x: str) -> np.ndarray:
    """A per-axis scale vector -> an array broadcastable per sample."""
    if scale.size == 1:
        return scale.reshape(())
    rank = len(cx.shape(x))
    a = cx.axis(axis, x)
    if scale.ndim != 1 or scale.size != cx.graph.node(x).shape[a]:
        cx.fail(f"{scale.size} scales do not fit axis {axis} of an activation of shape "
                f"{list(cx.shape(x))}", "give one scale per channel of that axis")
    return scale.reshape((-1,) + (1,) * (rank - 2 - a))


def _quant_act(cx: Context, x: str, scale: np.ndarray, zp: int, lo: int, hi: int,
               rounding: Rounding, axis: int | None) -> None:
    scale = np.asarray(scale, np.float64)
    if axis is not None:
        scale = _scale_shape(cx, scale, axis, x)
    else:
        scale = compress(cx.per_sample(scale, x))
        shape = cx.graph.node(x).shape
        if not _fits(scale.shape, shape):
            cx.fail(f"a scale of shape {list(scale.shape)} does not fit an activation "
                    f"of shape {list(shape)}", "give one scale per channel")
    if np.any(scale <= 0) or not np.all(np.isfinite(scale)):
        cx.fail(f"quantizer scale {scale.ravel()[:4]} is not positive and finite",
                "fix the quantizer's scale")
    if hi <= lo:
        cx.fail(f"quantizer range [{lo}, {hi}] is empty", "fix the quantizer")
    if lo == zp:  # the range starts at real 0 (int8 after a ReLU: zero point -128)
        lo, hi, zp = 0, hi - zp, 0
    cx.bind(cx.emit(ops.QuantAct(scale, zp, lo, hi, rounding), [x], out=cx.current.output[0]))


@QONNX.handles(Quant="QONNX quantizer (activations and weights)",
               IntQuant="QONNX quantizer (activations and weights)")
def _quant(cx: Context, node: onnx.NodeProto) -> None:
    """QONNX Quant / IntQuant: (x, scale, zero point, bit width)."""
    a = cx.attrs(node)
    scale = cx.numeric(node.input[1], "the scale")
    if scale.size == 0 or not (np.all(np.isfinite(scale)) and np.all(scale > 0)):
        cx.fail(f"scale '{node.input[1]}' is not positive and finite",
                "fix the quantizer's scale")
    zp = cx.numeric(node.input[2], "the zero point")
    width = cx.scalar(node.input[3], "the bit width")
    if not (np.isfinite(width) and width == int(width) and 1 <= width <= 30):
        cx.fail(f"bit width {width} is not supported", "use 2 to 16 bits")
    bits = int(width)
    signed, narrow = int(a.get("signed", 1)), int(a.get("narrow", 0))
    mode = a.get("rounding_mode", b"ROUND")
    mode = mode.decode(errors="replace") if isinstance(mode, bytes) else str(mode)
    if mode not in _QONNX_ROUNDING:
        cx.fail(f"rounding mode {mode!r} is not supported", "use ROUND or FLOOR")
    lo = -(2 ** (bits - 1)) + narrow if signed else 0
    hi = 2 ** (bits - 1) - 1 if signed else 2**bits - 1 - narrow
    zps = np.unique(zp)
    if len(zps) != 1 or not np.isfinite(zps[0]) or float(zps[0]) != int(zps[0]):
        cx.fail("per-channel or fractional zero points are not supported",
                "use one integer zero point")
    zp_int, rounding = int(zps[0]), _QONNX_ROUNDING[mode]
    if isinstance(cx.env.get(node.input[0]), np.ndarray):  # weights
        v = cx.real_const(node.input[0])
        if not _fits(scale.shape, v.shape):
            cx.fail(f"a scale of shape {list(scale.shape)} does not fit a weight of "
                    f"shape {list(v.shape)}", "give one scale per output channel")
        q = np.clip(rounding.apply(v / scale) + zp_int, lo, hi) - zp_int
        full = scale if scale.ndim == v.ndim else scale.reshape([1] * v.ndim)
        return cx.bind(QConst(q.astype(np.int64), compress(np.asarray(full, np.float64))))
    _quant_act(cx, cx.act(node.input[0]), scale, zp_int, lo, hi, rounding, None)


def _fits(small: tuple[int, ...], shape: tuple[int, ...]) -> bool:
    """Does a constant of shape `small` broadcast to `shape` without growing it?"""
    return len(small) <= len(shape) and all(
        a in (1, b) for a, b in zip(reversed(small), reversed(shape), strict=False))
