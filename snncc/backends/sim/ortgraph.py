"""The fast engine's plan as one onnxruntime session: the whole graph in one call.

On a small model (the digits ViT: 45 layers on [4096, 32]-sized arrays) the numpy path's
time goes mostly to per-call costs, tens of µs a layer. Here `lower` writes the plan's
exact mode as one ONNX model, every neuron's counts and the readout's current among its
outputs, with the same arithmetic the numpy path does, op for op:

- a synapse on an integer kernel (``integer.IntMatMul``): MatMulInteger per 8-bit factor
  of its weights, combined as the kernel combines them (int32 digit pairs, then float64);
  other dense synapses: float MatMul in the plan's dtype (exact there: the plan's bound);
- a convolution on codes 0..255: with an integer kernel (``integer.IntConv``) and from
  IM2COL_CHANNELS input channels up, an 8-bit channels-last im2col (Pad, Slices, Concat)
  and MatMulInteger per weight factor, its current left channels last for the neuron
  alone reading it (which transposes its 8-bit codes back instead); else ConvInteger per
  weight factor (uint8 x uint8, the weights shifted by 128 with a zero point of 128), with
  the neuron alone reading it in bands of rows of about BAND elements (and a max pool
  tiling the rows after it band by band), so that the arrays between them stay in cache;
  the factors combined as for a dense synapse. Any other convolution: float32 Conv where its
  dtype is float32, else one float32 Conv per base-256 digit of the weights (each exact
  below 2**24) combined in float64;
- a neuron: the one-pass count trunc(clip(v*scale + offset, 0, L)) with the plan's proved
  tables, a Mul, an Add, a Clip and a Cast, each correctly rounded as numpy's are (or the
  L comparisons, GreaterOrEqual and a sum, where no line is proved);
- the input quantizer in float64 (Div, Round or Floor, Add, Clip); max pools, adds,
  TDMatMul on 8-bit counts (MatMulInteger; uint8 x int8 where its counts allow), layout
  ops, the head summed over its tokens first (as ``plan._pooled``).

Every 8-bit product is exact on this machine (``integer.exact_int8``: onnxruntime's x86
kernels without VNNI sum pairs of uint8 x int8 products in int16, saturating, its ARM
ones without the dot product in int16, wrapping): an int8 weight factor (or TDMatMul's
int8 counts) that could leave int16 there goes in as uint8, d + 128, with a zero point of
128, an int8 activation with it as x + 128 (``_products``; the lowering records each
product's operands' proved ranges in ``Builder.operands`` for the tests). A value is cast
to a type once (``Builder.cast`` reuses the tensor of equal values it came from, or an
earlier cast).

A plan holding anything else (an int64 current, a sum pool) has no lowering: `lower`
gives None and the engine keeps the numpy path. The model's bytes are written here with
``integer``'s protobuf writer (importing `onnx` costs a second at start-up).
"""

from __future__ import annotations

import os
import struct

import numpy as np

from snncc import kernels
from snncc import ops as o
from snncc.backends.sim import integer
from snncc.backends.sim.integer import IntMatMul, _field, _value_info, _varint
from snncc.intmath import Rounding
from snncc.ir import Node

F32_EXACT = 2**24
IM2COL_CHANNELS = 32  # from this many input channels up a convolution runs on an im2col
#                      (fewer: ConvInteger; the im2col's Concat copies runs of C bytes)
BAND = 1 << 20  # elements of a ConvInteger's current a band of rows, its neuron with it
CONV_INTEGER_PIXELS = 256  # ConvInteger from this many output pixels a sample up (it
#                            loops over the samples: on the digits ViT's 8x8 and 4x4
#                            images float Conv is 15% faster in all)

# ONNX TensorProto data types
_TYPES = {np.dtype(np.float32): 1, np.dtype(np.uint8): 2, np.dtype(np.int8): 3,
          np.dtype(np.uint16): 4, np.dtype(np.int16): 5, np.dtype(np.int32): 6,
          np.dtype(np.int64): 7, np.dtype(np.float64): 11, np.dtype(np.uint32): 12}
_F64 = np.dtype(np.float64)
_F32 = np.dtype(np.float32)
_I32 = np.dtype(np.int32)


class Unsupported(Exception):
    """The plan holds an op with no exact lowering here."""


def _ax(axis: int) -> int:
    return axis + 1 if axis >= 0 else axis


def _ints(num: int, values) -> bytes:
    return b"".join(_varint(num << 3) + _varint(int(v) & (2**64 - 1)) for v in values)


def _attr(name: str, value) -> bytes:
    """An AttributeProto: an int, a float or a list of ints."""
    if isinstance(value, float):
        return _field(1, name) + _varint(2 << 3 | 5) + struct.pack("<f", value) + _field(20, 1)
    if isinstance(value, int):
        return _field(1, name) + _ints(3, [value]) + _field(20, 2)
    return _field(1, name) + _ints(8, value) + _field(20, 7)


class Builder:
    """An ONNX graph written node by node; every tensor's numpy dtype is tracked."""

    def __init__(self) -> None:
        self.nodes: list[bytes] = []
        self.inits: list[bytes] = []
        self.types: dict[str, np.dtype] = {}
        self.count = 0
        self.consts: dict[tuple, str] = {}
        self.same: dict[str, dict[np.dtype, str]] = {}  # tensors of equal values by dtype
        self.channels_last: set[str] = set()  # currents held [B, H, W, C] for their neuron
        self.done: dict[str, str] = {}  # neurons already computed with their current
        self.bands: dict[str, list[str]] = {}  # codes -> its bands of rows, for a max pool
        self.per_block = 1  # samples a run (``Whole``'s blocks)
        # each MatMulInteger's or ConvInteger's output -> its operands' proved value ranges
        # as fed (after any shift to uint8)
        self.operands: dict[str, tuple[tuple[int, int], tuple[int, int]]] = {}

    def fresh(self) -> str:
        self.count += 1
        return f"t{self.count}"

    def const(self, a: np.ndarray, dtype=None) -> str:
        a = np.ascontiguousarray(a, dtype if dtype is not None else a.dtype)
        key = (a.dtype.str, a.shape, a.tobytes()) if a.size <= 64 else None
        if key is not None and key in self.consts:
            return self.consts[key]
        name = self.fresh()
        self.inits.append(_ints(1, a.shape) + _field(2, _TYPES[a.dtype]) + _field(8, name)
                          + _field(9, a.tobytes()))
        self.types[name] = a.dtype
        if key is not None:
            self.consts[key] = name
        return name

    def node(self, op: str, inputs: list[str], dtype, out: str | None = None,
             **attrs: int | float | list[int]) -> str:
        out = out or self.fresh()
        body = b"".join(_field(1, i) for i in inputs) + _field(2, out) + _field(4, op)
        body += b"".join(_field(5, _attr(k, v)) for k, v in attrs.items())
        self.nodes.append(body)
        self.types[out] = np.dtype(dtype)
        return out

    def cast(self, x: str, dtype) -> str:
        """x's values as `dtype` (exact: the plan's bounds hold them there). A tensor of
        the same values already held in `dtype` (x's source, or an earlier cast of it)
        is reused: no cast there and back."""
        dtype = np.dtype(dtype)
        if self.types[x] == dtype:
            return x
        same = self.same.setdefault(x, {self.types[x]: x})
        if dtype not in same:
            y = self.node("Cast", [x], dtype, to=_TYPES[dtype])
            same[dtype] = y
            self.same[y] = same
        return same[dtype]

    def model(self, outputs: list[str]) -> bytes:
        graph = b"".join(_field(1, n) for n in self.nodes) + _field(2, "plan")
        graph += b"".join(_field(5, t) for t in self.inits)
        graph += _field(11, _value_info("x", _TYPES[self.types["x"]], None))
        graph += b"".join(_field(12, _value_info(n, _TYPES[self.types[n]], None))
                          for n in outputs)
        opset = _field(1, "") + _field(2, 17)
        return _field(1, 8) + _field(8, opset) + _field(7, graph)


def lower(plan, builder: Builder | None = None
          ) -> tuple[bytes, list[str], list[tuple[np.dtype, tuple[int, ...]]]] | None:
    """(the model's bytes, the plan's value name of each output, each output's dtype and
    shape a sample) for the plan's exact mode, or None if some op has no exact
    lowering. `builder`, if given, is written into (a test reads its types and
    `operands`)."""
    try:
        return _lower(plan, builder or Builder())
    except Unsupported:
        return None


def _lower(plan, b: Builder) -> tuple[bytes, list[str], list[tuple[np.dtype, tuple[int, ...]]]]:
    b.per_block = max(1, BLOCK // largest(plan))
    names: dict[str, str] = {}
    skip: set[str] = set()
    outputs: list[str] = []
    tensors: list[str] = []  # the graph's outputs (read by later nodes too)
    for n in plan.order:
        op = n.op
        if n.name in skip:
            continue
        if isinstance(op, o.Input):
            names[n.name] = "x"  # float64: every float32 or float64 input exactly
            b.types["x"] = _F64
            continue
        xs = [names[i] for i in n.inputs]
        dt = plan.dtype[n.name]
        if dt.kind == "i" and n.kind != o.CODES or dt == np.dtype(np.int64):
            raise Unsupported(n.name)
        if n.name in plan.pooled:  # ReduceSum(x @ w) as ReduceSum(x) @ w
            pool, w = plan.pooled[n.name]
            pdt = plan.dtype[pool.name]
            if pdt.kind != "f":
                raise Unsupported(n.name)
            axes = [_ax(a) for a in pool.op.axes]
            summed = b.node("ReduceSum", [b.cast(xs[0], pdt), b.const(np.array(axes, np.int64))],
                            pdt, keepdims=int(pool.op.keepdims))
            names[pool.name] = b.node("MatMul", [summed, b.const(w, pdt)], pdt)
            skip.add(pool.name)
            continue
        v = b.done.pop(n.name) if n.name in b.done else _op(b, plan, n, xs, dt)
        if isinstance(op, o.Neuron | o.Readout):
            outputs.append(n.name)
            tensors.append(v)
        names[n.name] = v
    specs = [(b.types[t], tuple(plan.graph.node(k).shape)) for t, k in zip(tensors, outputs,
                                                                           strict=True)]
    return b.model(tensors), outputs, specs


def _batched(b: Builder, plan, ins: list[str], nodes) -> list[str]:
    """Operands given equal rank by 1-axes after the batch axis (``plan._batched``)."""
    shapes = [plan.graph.node(i).shape for i in nodes]
    rank = max(len(s) for s in shapes)
    out = []
    for x, s in zip(ins, shapes, strict=True):
        if len(s) < rank:
            shape = np.array([0] + [1] * (rank - len(s)) + list(s), np.int64)
            x = b.node("Reshape", [x, b.const(shape)], b.types[x])
        out.append(x)
    return out


def _op(b: Builder, plan, n, xs: list[str], dt: np.dtype) -> str:
    op = n.op
    if isinstance(op, o.SpikeInput):
        return _quantize(b, op, xs[0], dt)
    if isinstance(op, o.Neuron):
        return _neuron(b, plan, n, xs[0], dt)
    if isinstance(op, o.Synapse):
        if op.kind == "dense":
            return _dense(b, plan, n, xs[0], dt)
        return _conv(b, plan, n, xs[0], dt)
    if isinstance(op, o.TDMatMul):
        if n.name in plan.stacked:
            return b.cast(_stacked(b, plan, n, xs), dt)
        if dt.kind != "f":
            raise Unsupported(n.name)
        ins = _batched(b, plan, [b.cast(x, dt) for x in xs], n.inputs)
        return b.node("MatMul", ins, dt)
    if isinstance(op, o.TDMaxPool):
        # float32: onnxruntime's 8-bit max pool is many times slower (exact: small counts)
        def pool(x: str) -> str:
            return b.cast(b.node("MaxPool", [b.cast(x, _F32)], _F32,
                                 kernel_shape=list(op.kernel), strides=list(op.strides),
                                 pads=list(op.pads)), dt)

        bands = b.bands.get(xs[0])  # rows in multiples of the stride (``_tiling_pool``)
        if bands is not None:
            return b.node("Concat", [pool(x) for x in bands], dt, axis=2)
        return pool(xs[0])
    if isinstance(op, o.AddCurrent):
        a, c = _batched(b, plan, [b.cast(x, dt) for x in xs], n.inputs)
        return b.node("Add", [a, c], dt)
    if isinstance(op, o.Readout):
        return b.cast(xs[0], dt)
    if isinstance(op, o.ReduceSum):
        axes = b.const(np.array([_ax(a) for a in op.axes], np.int64))
        return b.node("ReduceSum", [b.cast(xs[0], dt), axes], dt, keepdims=int(op.keepdims))
    if isinstance(op, o.Reshape):
        shape = b.const(np.array((0,) + tuple(op.shape), np.int64))
        return b.cast(b.node("Reshape", [xs[0], shape], b.types[xs[0]]), dt)
    if isinstance(op, o.Transpose):
        x = b.node("Transpose", [xs[0]], b.types[xs[0]], perm=[0] + [p + 1 for p in op.perm])
        return b.cast(x, dt)
    if isinstance(op, o.Concat):
        return b.node("Concat", [b.cast(x, dt) for x in xs], dt, axis=_ax(op.axis))
    if isinstance(op, o.Take):
        idx = b.const(np.asarray(op.indices, np.int64))
        return b.cast(b.node("Gather", [xs[0], idx], b.types[xs[0]], axis=_ax(op.axis)), dt)
    raise Unsupported(n.name)


def _quantize(b: Builder, op, x: str, dt: np.dtype) -> str:
    """``intmath.quantize`` in float64: round(x / scale) + zero_point, clipped."""
    y = b.node("Div", [b.cast(x, _F64), b.const(np.asarray(op.scale, _F64))], _F64)
    if op.rounding is Rounding.HALF_EVEN:
        y = b.node("Round", [y], _F64)
    elif op.rounding is Rounding.HALF_UP:
        y = b.node("Floor", [b.node("Add", [y, b.const(np.array(0.5))], _F64)], _F64)
    else:
        y = b.node("Floor", [y], _F64)
    if op.zero_point:
        y = b.node("Add", [y, b.const(np.array(float(op.zero_point)))], _F64)
    y = b.node("Clip", [y, b.const(np.array(float(op.lo))), b.const(np.array(float(op.hi)))],
               _F64)
    return b.cast(y, dt)


def _neuron(b: Builder, plan, n, v: str, dt: np.dtype,
            rows: tuple[int, int] | None = None) -> str:
    """The count #{k : sign*v >= θ_k} (``plan._codes``); of the rows r0..r1-1 of a current
    [B, C, H, W] alone with `rows`."""
    levels = n.op_as(o.Neuron).levels
    last = v in b.channels_last  # v [B, H, W, C] of a current [B, C, H, W]: so are the tables
    rank = len(n.shape)
    if last:
        table = lambda a: _to_channels_last(a, rank)  # noqa: E731
    elif rows is not None:
        table = lambda a: _rows(a, rows, rank)  # noqa: E731
    else:
        table = lambda a: a  # noqa: E731
    if n.name in plan.affine:
        scale, offset = plan.affine[n.name]
        cd = scale.dtype
        t = b.node("Mul", [b.cast(v, cd), b.const(table(scale))], cd)
        t = b.node("Add", [t, b.const(table(offset))], cd)
        t = b.node("Clip", [t, b.const(np.array(0, cd)), b.const(np.array(levels, cd))], cd)
        # non-negative: the truncating cast is the floor (not `cast`: the values change)
        codes = b.node("Cast", [t], dt, to=_TYPES[dt])
    else:
        sign, th = plan.neurons[n.name]
        vt = b.types[v]
        if sign is not None:
            v = b.node("Mul", [v, b.const(table(sign), vt)], vt)
        acc = None
        for t in th:
            hit = b.node("Cast", [b.node("GreaterOrEqual", [v, b.const(table(t), vt)],
                                         np.bool_)], _I32, to=_TYPES[_I32])
            acc = hit if acc is None else b.node("Add", [acc, hit], _I32)
        if acc is None:
            raise Unsupported(n.name)
        codes = b.cast(acc, dt)
    return b.node("Transpose", [codes], dt, perm=[0, 3, 1, 2]) if last else codes


def _rows(a: np.ndarray, rows: tuple[int, int], rank: int) -> np.ndarray:
    """A table broadcast over [C, H, W] (from the right) for the rows r0..r1-1 alone."""
    a = np.asarray(a)
    a = a.reshape((1,) * (rank - a.ndim) + a.shape)
    return a[..., rows[0]:rows[1], :] if a.shape[-2] > 1 else a


def _to_channels_last(a: np.ndarray, rank: int) -> np.ndarray:
    """A table broadcast over [C, H, W] (from the right) as one over [H, W, C]."""
    a = np.asarray(a)
    return np.moveaxis(a.reshape((1,) * (rank - a.ndim) + a.shape), 0, -1)


def _combine(b: Builder, parts: list[str], base: float) -> str:
    """acc*base + part over the parts, high first, in float64 (``IntMatMul.product``)."""
    acc = b.cast(parts[-1], _F64)
    k = b.const(np.array(base))
    for part in reversed(parts[:-1]):
        acc = b.node("Add", [b.node("Mul", [acc, k], _F64), b.cast(part, _F64)], _F64)
    return acc


def _stacked(b: Builder, plan, n, xs: list[str]) -> str:
    """TDMatMul's counts times counts as MatMulInteger (``integer.IntStacked``'s form)."""
    kern = plan.stacked[n.name]
    types = list(kern.types)
    reach = [plan.bound[i] for i in n.inputs]
    ranges = [integer.operand_range(t, r) for t, r in zip(types, reach, strict=True)]
    if types == [np.uint8, np.uint8] and reach[1] <= 0x7F and integer.exact_int8(
            types[0], *ranges[0], *ranges[1]):
        types[1] = np.dtype(np.int8)  # uint8 x int8: twice as fast, same integers
    ins, zeros = [], []
    for x, t, shift in zip(xs, types, kern.shift, strict=True):
        ins.append(_shifted(b, x) if shift else b.cast(x, t))
        zeros.append(b.const(np.array(128, np.uint8)) if shift else "")
    ins = _batched(b, plan, ins, n.inputs)
    y = b.node("MatMulInteger", ins + zeros if any(kern.shift) else ins, _I32)
    b.operands[y] = (_fed(ranges[0], kern.shift[0]), _fed(ranges[1], kern.shift[1]))
    return y


def _fed(values: tuple[int, int], shift: bool) -> tuple[int, int]:
    return (values[0] + 0x80, values[1] + 0x80) if shift else values


def _shifted(b: Builder, x: str) -> str:
    """x's values (-128..127) plus 128, as uint8 (for a zero point of 128)."""
    y = b.node("Add", [b.cast(x, _I32), b.const(np.array(128, np.int32))], _I32)
    return b.node("Cast", [y], np.uint8, to=_TYPES[np.dtype(np.uint8)])


def _products(b: Builder, x8: str, x_range: tuple[int, int], mat: IntMatMul,
              unsigned: list[bool], shift: bool) -> list[str]:
    """x8 @ each 8-bit factor of `mat`'s weights, one MatMulInteger each: int8 weights,
    or uint8 ones (d + 128) with a zero point of 128 where `unsigned` (x8 then x + 128 with
    a zero point of 128 where `shift`), as ``integer.IntMatMul.model`` has them."""
    ys = []
    for d, u in zip(mat.cut, unsigned, strict=True):
        zero = b.const(np.array(128, np.uint8)) if u else ""
        ins = ([x8, b.const(integer._unsigned(d)), zero if shift else "", zero] if u
               else [x8, b.const(d)])
        y = b.node("MatMulInteger", ins, _I32)
        w = (int(d.min()) + 0x80, int(d.max()) + 0x80) if u else (int(d.min()), int(d.max()))
        b.operands[y] = (_fed(x_range, shift), w)
        ys.append(y)
    return ys


def _dense(b: Builder, plan, n, x: str, dt: np.dtype) -> str:
    if dt.kind != "f":
        raise Unsupported(n.name)
    kern = plan.integer.get(n.name)
    if not isinstance(kern, IntMatMul):
        w = b.const(plan.weights[n.name], dt)
        return b.node("MatMul", [b.cast(x, dt), w], dt)
    x8 = _shifted(b, x) if kern.shift else b.cast(x, kern.x_type)
    ys = _products(b, x8, kern.x_range, kern, kern.unsigned, kern.shift)
    return _factored(b, ys, kern.scale, kern.pairs, dt)


def _factored(b: Builder, ys: list[str], scale: np.ndarray | None, pairs: bool,
              dt: np.dtype) -> str:
    """The int32 products of x by each 8-bit factor of the weights combined as
    ``IntMatMul.product`` combines them: (x @ a) * scale + x @ e (`scale` shaped to the
    products' axes), or base-256 digits, two at a time in int32 first with `pairs`."""
    if len(ys) == 1:
        return b.cast(ys[0], dt)
    if scale is not None:  # (x @ a) * m + x @ e in float64
        acc = b.node("Mul", [b.cast(ys[0], _F64), b.const(scale)], _F64)
        return b.cast(b.node("Add", [acc, b.cast(ys[1], _F64)], _F64), dt)
    if pairs:  # d_j + 256*d_(j+1), exact in int32
        k = b.const(np.array(256, np.int32))
        joined = []
        for j in range(0, len(ys), 2):
            if j + 1 == len(ys):
                joined.append(ys[j])
            else:
                joined.append(b.node("Add", [b.node("Mul", [ys[j + 1], k], _I32), ys[j]], _I32))
        return b.cast(_combine(b, joined, 65536.0), dt)
    return b.cast(_combine(b, ys, 256.0), dt)


def _conv(b: Builder, plan, n, x: str, dt: np.dtype) -> str:
    op = n.op_as(o.Synapse)
    y = _conv_integer(b, plan, n, x, dt)
    if y is not None:
        return y
    xf = b.cast(x, _F32)

    def conv(w: np.ndarray) -> str:
        return b.node("Conv", [xf, b.const(w, _F32)], _F32, strides=list(op.strides),
                      pads=list(op.pads), dilations=list(op.dilations), group=int(op.group))

    if dt == _F32:
        return conv(op.weight)
    if dt != _F64:
        raise Unsupported(n.name)
    reach = plan.bound.get(n.inputs[0], 0)
    terms = int(np.prod(op.weight.shape[1:]))
    if terms * reach * 128 >= F32_EXACT:  # a digit's sums would leave float32's integers
        raise Unsupported(n.name)
    ys = [conv(d) for d in integer.digits(op.weight)]
    return _combine(b, ys, 256.0)


# ---------------------------------------------------------------- running it


def mode() -> str:
    """SNNCC_ORT_GRAPH: "0" (never: the numpy path), else "on" (wherever the plan lowers;
    bench/engine.py on a quiet machine: the digits ViT 1.4-3.0x onnxruntime against the
    numpy path's 0.8x, DeiT-tiny scale 1.22-1.93x against 0.84-1.19x; under a load of 4-9
    the numpy path was faster on the wall clock at DeiT-tiny scale, 0.74 s against 1.03 s
    a batch, which "0" picks)."""
    return "off" if os.environ.get("SNNCC_ORT_GRAPH", "") == "0" else "on"


BLOCK = 1 << 22  # elements of the largest value a run: bounds the session's memory


def largest(plan) -> int:
    """Elements of the plan's largest value, a sample."""
    return max((int(np.prod(n.shape, dtype=np.int64)) for n in plan.order), default=1)


class Whole:
    """A plan's lowered model in one onnxruntime session of one intra-op thread; a batch
    is split into even blocks, a multiple of the cores (``blocks``: smaller past BLOCK
    elements), the blocks run at once (onnxruntime's own threads split each op, which
    pays little on small element-wise ops). Each block's outputs are written by
    onnxruntime straight into its rows of arrays allocated once for the batch (I/O
    binding: no joining of the blocks)."""

    def __init__(self, model: bytes, outputs: list[str],
                 specs: list[tuple[np.dtype, tuple[int, ...]]], largest: int = 1):
        self.model, self.outputs, self.specs = model, outputs, specs
        self.largest = largest  # elements of the plan's largest value, a sample
        self._session = None

    def session(self):
        if self._session is None:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            opts.inter_op_num_threads = 1
            opts.log_severity_level = 3
            self._session = ort.InferenceSession(self.model, opts,
                                                 providers=["CPUExecutionProvider"])
        return self._session

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        x = np.ascontiguousarray(x, np.float64)
        session = self.session()
        names = [o.name for o in session.get_outputs()]
        ys = [np.empty((len(x),) + shape, dtype) for dtype, shape in self.specs]

        def block(rows: tuple[int, int]) -> None:
            io = session.io_binding()
            io.bind_cpu_input("x", x[rows[0]:rows[1]])
            for name, y in zip(names, ys, strict=True):
                part = y[rows[0]:rows[1]]
                io.bind_output(name, "cpu", 0, y.dtype, list(part.shape), part.ctypes.data)
            session.run_with_iobinding(io)

        kernels.parallel(block, blocks(len(x), self.largest))
        return dict(zip(self.outputs, ys, strict=True))


def blocks(batch: int, largest: int) -> list[tuple[int, int]]:
    """[0, batch) in blocks of at most BLOCK // largest samples (at least one), as many as
    a multiple of the cores and as even as can be, so that the cores finish together."""
    cores = kernels.cores()
    per = max(1, BLOCK // max(1, largest))
    count = max(1, -(-batch // per))
    count = min(batch, -(-count // cores) * cores) if batch else 0
    edges = [batch * k // count for k in range(count + 1)] if count else [0]
    return [(a, b) for a, b in zip(edges, edges[1:], strict=False)]


def _conv_integer(b: Builder, plan, n, x: str, dt: np.dtype) -> str | None:
    """The convolution on 8-bit products (an im2col and MatMulInteger, or ConvInteger, one
    per weight factor, combined as ``IntMatMul`` combines them), or None where x is not
    0..255, no factors fit, or the images are too small for ConvInteger.

    x is uint8 and each factor d int8, given to ConvInteger as d + 128 (uint8) with a
    weight zero point of 128: onnxruntime's fast kernel is the uint8-by-uint8 one (its
    int8 weights take a path 4x slower). Exact: the sums it forms, of x*(d + 128) and of
    128*x, stay below terms * 255 * 255 < 2**31 (checked)."""
    op = n.op_as(o.Synapse)
    if op.group != 1 or dt.kind != "f":
        return None
    src = plan.graph.node(n.inputs[0])
    lo, hi = _code_range(plan, src)
    if lo < 0 or hi > 0xFF:
        return None
    terms = int(np.prod(op.weight.shape[1:]))
    if terms * 0xFF * 0xFF >= 2**31:
        return None
    kern = plan.integer.get(n.name)
    if isinstance(kern, integer.IntConv) and len(n.shape) == 3 and (
            op.weight.shape[1] >= IM2COL_CHANNELS) and hi <= 0x7F:
        # analog codes (to 255) stay on ConvInteger, as measured (bench/engine.py)
        return _im2col(b, plan, n, b.cast(x, np.uint8), kern.mats[0], dt, (lo, hi))
    if int(np.prod(n.shape[1:])) < CONV_INTEGER_PIXELS:
        return None
    if isinstance(kern, integer.IntConv):
        mat = kern.mats[0]
        kh, kw = op.weight.shape[2:]
        cin = op.weight.shape[1]
        cut = [d.reshape(kh, kw, cin, -1).transpose(3, 2, 0, 1) for d in mat.cut]
        scale = None if mat.scale is None else mat.scale.reshape(-1, 1, 1)
        pairs = mat.pairs
    else:  # too few terms for the numpy path's im2col: 8-bit weights only
        cut, scale, pairs = integer.digits(op.weight), None, False
        if len(cut) > 1:
            return None
    x8 = b.cast(x, np.uint8)
    ws = [b.const((d.astype(np.int16) + 128).astype(np.uint8)) for d in cut]
    zero = b.const(np.array(128, np.uint8))

    def conv(x: str, pads: list[int]) -> str:
        ys = [b.node("ConvInteger", [x, w, "", zero], _I32, strides=list(op.strides),
                     pads=pads, dilations=list(op.dilations)) for w in ws]
        for y, d in zip(ys, cut, strict=True):
            b.operands[y] = ((lo, hi), (int(d.min()) + 0x80, int(d.max()) + 0x80))
        return _factored(b, ys, scale, pairs, dt)

    neuron = plan.fused.get(n.name)
    count = _bands(b, n)
    if neuron is None or not isinstance(neuron.op, o.Neuron) or count < 2:
        return conv(x8, list(op.pads))
    # the current and its neuron a band of rows at a time: the band's arrays stay in cache
    top, left, bottom, right = op.pads
    if top or bottom:
        pads = np.array([0, 0, top, 0, 0, 0, bottom, 0], np.int64)
        x8 = b.node("Pad", [x8, b.const(pads)], np.uint8)
    oh = n.shape[1]
    sh, ekh = op.strides[0], op.dilations[0] * (op.weight.shape[2] - 1) + 1
    axis = b.const(np.array([2], np.int64))
    pool = _tiling_pool(plan, neuron)
    step = 1 if pool is None else pool.op_as(o.TDMaxPool).strides[0]
    edges = sorted({oh * k // count // step * step for k in range(count)} | {oh})
    codes = []
    for r0, r1 in zip(edges, edges[1:], strict=False):
        band = b.node("Slice", [x8, b.const(np.array([r0 * sh], np.int64)),
                                b.const(np.array([(r1 - 1) * sh + ekh], np.int64)), axis],
                      np.uint8)
        ndt = plan.dtype[neuron.name]
        codes.append(_neuron(b, plan, neuron, conv(band, [0, left, 0, right]), ndt, (r0, r1)))
    b.done[neuron.name] = b.node("Concat", codes, plan.dtype[neuron.name], axis=2)
    if pool is not None:  # its windows within the bands: pooled band by band too
        b.bands[b.done[neuron.name]] = codes
    return b.done[neuron.name]  # the current itself is never whole; its neuron alone reads it


def _tiling_pool(plan, neuron) -> Node | None:
    """The max pool alone reading the neuron, if its windows tile the rows (kernel =
    stride, no padding): then a band of an even number of strides pools apart."""
    users = plan.graph.users(neuron.name)
    if len(users) != 1 or not isinstance(users[0].op, o.TDMaxPool):
        return None
    op = users[0].op_as(o.TDMaxPool)
    if tuple(op.kernel) != tuple(op.strides) or any(op.pads):
        return None
    return users[0]


def _bands(b: Builder, n) -> int:
    """Bands of output rows for a convolution's current of a run: about BAND elements
    each (at most one a row)."""
    if len(n.shape) != 3:
        return 1
    size = int(np.prod(n.shape)) * b.per_block
    return max(1, min(n.shape[1], -(-size // BAND)))


def _code_range(plan, n) -> tuple[int, int]:
    """The least and greatest value of n's codes (n holds codes or an input's)."""
    if isinstance(n.op, o.SpikeInput):
        return int(n.op.lo), int(n.op.hi)
    if plan.dtype.get(n.name, _F64).kind == "u":  # counts: 0 up to their bound
        return 0, plan.bound[n.name]
    return -1, 0  # not known to be 8-bit unsigned here


def _im2col(b: Builder, plan, n, x8: str, mat: IntMatMul, dt: np.dtype,
            x_range: tuple[int, int]) -> str:
    """A 2-D convolution of uint8 x [B, C, H, W] (values in x_range) as one MatMulInteger
    per weight factor (int8, or uint8 with a zero point where int8 is not exact here) on
    its channels-last im2col [B, OH, OW, kh*kw*C] (``integer.IntConv``'s layout: `mat`
    holds its factors, terms ordered (kh, kw, C)); the current [B, OH, OW, O] is left
    channels last for the neuron alone reading it (``_neuron`` transposes its codes
    back), else transposed. Twice as fast as ConvInteger from 64 terms up (its output
    transposed, not its input)."""
    op = n.op_as(o.Synapse)
    (kh, kw), (sh, sw), (dh, dw) = op.weight.shape[2:], op.strides, op.dilations
    top, left, bottom, right = op.pads
    oh, ow = n.shape[1:]
    xt = b.node("Transpose", [x8], np.uint8, perm=[0, 2, 3, 1])
    if any(op.pads):
        pads = np.array([0, top, left, 0, 0, bottom, right, 0], np.int64)
        xt = b.node("Pad", [xt, b.const(pads)], np.uint8)
    if (kh, kw, sh, sw) == (1, 1, 1, 1):  # every pixel once: the input itself
        cols = xt
    else:
        taps = []
        for i in range(kh):
            for j in range(kw):
                start = np.array([i * dh, j * dw], np.int64)
                end = start + np.array([(oh - 1) * sh + 1, (ow - 1) * sw + 1], np.int64)
                taps.append(b.node("Slice", [xt, b.const(start), b.const(end),
                                             b.const(np.array([1, 2], np.int64)),
                                             b.const(np.array([sh, sw], np.int64))], np.uint8))
        cols = taps[0] if len(taps) == 1 else b.node("Concat", taps, np.uint8, axis=3)
    u8 = np.dtype(np.uint8)
    unsigned = [not integer.exact_int8(u8, *x_range, int(d.min()), int(d.max()))
                for d in mat.cut]
    ys = _products(b, cols, x_range, mat, unsigned, False)
    y = _factored(b, ys, mat.scale, mat.pairs, dt)
    neuron = plan.fused.get(n.name)
    if neuron is not None and isinstance(neuron.op, o.Neuron):
        b.channels_last.add(y)
        return y
    return b.node("Transpose", [y], dt, perm=[0, 3, 1, 2])
