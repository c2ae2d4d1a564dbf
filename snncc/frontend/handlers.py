"""The ONNX op handlers: one function per op (or family), each registered with the line
the README's supported-ops table gives it. A handler reads its operands through the
``Context``, adds IR nodes and binds its output; the quantizer forms are in ``quantizers``,
constant folding in ``folding``."""

from __future__ import annotations

import numpy as np
import onnx

from snncc import ops
from snncc.frontend.context import Context
from snncc.frontend.registry import HandlerTable

# op type (ONNX's default domain) -> handler
TABLE = HandlerTable()
handles = TABLE.handles


@handles(Identity="removed", Dropout="removed")
def _alias(cx: Context, node: onnx.NodeProto) -> None:
    cx.bind(cx.act(node.input[0]))


@handles(Cast="folded on constants; float->float removed")
def _cast(cx: Context, node: onnx.NodeProto) -> None:
    to = cx.attrs(node)["to"]
    if to not in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16):
        cx.fail("Cast of an activation to a non-float type", "remove the Cast")
    cx.bind(cx.act(node.input[0]))


@handles(Shape="folded (static shapes)")
def _shape(cx: Context, node: onnx.NodeProto) -> None:
    a = cx.attrs(node)
    cx.bind(np.array(cx.shape(cx.act(node.input[0])), np.int64)[a.get("start", 0):a.get("end")])


@handles(Relu="absorbed by the following unsigned quantizer")
def _relu(cx: Context, node: onnx.NodeProto) -> None:
    cx.bind(cx.emit(ops.Relu(), [cx.act(node.input[0])]))


@handles(Add="bias (constant) or residual add of currents",
         Sub="by a constant: bias; of two activations: current difference",
         Mul="by a constant: folded into the next threshold",
         Div="by a constant: folded into the next threshold")
def _arith(cx: Context, node: onnx.NodeProto) -> None:
    a_name, b_name = node.input
    a_act, b_act = (isinstance(cx.env.get(n), str) for n in (a_name, b_name))
    if a_act and b_act:
        if node.op_type in ("Mul", "Div"):
            cx.fail(f"{node.op_type} of two activations cannot be spiked",
                    "use MatMul for products of activations, or a constant factor")
        op = ops.Add() if node.op_type == "Add" else ops.Sub()
        return cx.bind(cx.emit(op, [cx.act(a_name), cx.act(b_name)]))
    x = cx.act(a_name if a_act else b_name)
    c = cx.per_sample(cx.real_const(b_name if a_act else a_name), x)
    zero, one = np.zeros(()), np.ones(())
    if node.op_type == "Div" and not a_act:
        cx.fail("division of a constant by an activation cannot be spiked", "")
    if node.op_type == "Div" and np.any(c == 0):
        cx.fail("division by zero", "fix the constant")
    mul, add = {
        "Add": (one, c), "Mul": (c, zero), "Div": (1.0 / c if node.op_type == "Div" else c, zero),
        "Sub": (one, -c) if a_act else (-one, c),
    }[node.op_type]
    cx.bind(cx.emit(ops.Affine(np.asarray(mul, np.float64), np.asarray(add, np.float64)), [x]))


@handles(MatMul="by a constant: spike-driven linear; of two activations: TD-MatMul")
def _matmul(cx: Context, node: onnx.NodeProto) -> None:
    a, b = node.input
    if isinstance(cx.env.get(a), str) and isinstance(cx.env.get(b), str):
        return cx.bind(cx.emit(ops.MatMul(), [cx.act(a), cx.act(b)]))
    if not isinstance(cx.env.get(a), str):
        cx.fail("MatMul with a constant on the left is not supported",
                "export as activation @ weight")
    w = cx.weight(b, out_axis=1, rank=2)
    cx.bind(cx.emit(ops.Dense(w), [cx.act(a)]))


@handles(Gemm="MatMul by a constant + bias")
def _gemm(cx: Context, node: onnx.NodeProto) -> None:
    a = cx.attrs(node)
    if a.get("transA", 0):
        cx.fail("Gemm with transA is not supported", "export x @ W")
    v = cx.env.get(node.input[1])
    trans = bool(a.get("transB", 0))
    w = cx.weight(node.input[1], out_axis=0 if trans else 1, rank=2)
    alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
    if not (np.isfinite(alpha) and np.isfinite(beta)):
        cx.fail(f"alpha {alpha} or beta {beta} is not finite", "re-export the model")
    values = w.values.T if trans else w.values
    scale = None if w.scale is None else (w.scale.T if trans else w.scale) * alpha
    if w.scale is None:
        values = values * alpha
    del v
    y = cx.emit(ops.Dense(ops.Weight(values, scale)), [cx.act(node.input[0])])
    if len(node.input) > 2 and node.input[2]:
        c = beta * cx.real_const(node.input[2])
        y = cx.emit(ops.Affine(np.ones(()), cx.per_sample(c, y) if c.ndim == 2 else c), [y])
    cx.bind(y)


Pair = tuple[int, int]


def _conv_attrs(cx: Context, node: onnx.NodeProto, kernel: tuple[int, ...], x: str
                ) -> tuple[Pair, Pair, tuple[int, int, int, int], Pair]:
    """A 2-D window's kernel, strides, pads (top, left, bottom, right) and dilations."""
    a = cx.attrs(node)
    strides = tuple(a.get("strides", (1, 1)))
    dil = tuple(a.get("dilations", (1, 1)))
    pads = tuple(a.get("pads", (0, 0, 0, 0)))
    auto = a.get("auto_pad", b"NOTSET")
    auto = auto.decode(errors="replace") if isinstance(auto, bytes) else auto
    if len(kernel) != 2:
        cx.fail(f"{len(kernel)}-D {node.op_type} is not supported", "use 2-D layers")
    if len(cx.graph.node(x).shape) != 3:
        cx.fail(f"{node.op_type} of an input of shape {list(cx.shape(x))}, not [N, C, H, W]",
                "re-export the model")
    if "kernel_shape" in a and tuple(a["kernel_shape"]) != tuple(kernel):
        cx.fail(f"kernel_shape {list(a['kernel_shape'])} differs from the weight's "
                f"{list(kernel)}", "re-export the model")
    if (len(strides), len(dil), len(pads)) != (2, 2, 4) or min(kernel + strides + dil) < 1 \
            or min(pads) < 0:
        cx.fail(f"kernel {list(kernel)}, strides {list(strides)}, dilations {list(dil)} and "
                f"pads {list(pads)} do not describe a 2-D window", "re-export the model")
    if auto not in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"):
        cx.fail(f"auto_pad {auto!r} is not an ONNX padding mode", "re-export the model")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        _, h, w = cx.graph.node(x).shape
        ends = []
        for size, k, s, d in zip((h, w), kernel, strides, dil, strict=True):
            total = max(0, (-(-size // s) - 1) * s + (k - 1) * d + 1 - size)
            ends.append((total // 2, total - total // 2) if auto == "SAME_UPPER"
                        else (total - total // 2, total // 2))
        pads = (ends[0][0], ends[1][0], ends[0][1], ends[1][1])
    if a.get("ceil_mode", 0):
        cx.fail("ceil_mode pooling is not supported", "export with ceil_mode=0")
    return ((kernel[0], kernel[1]), (strides[0], strides[1]), (pads[0], pads[1], pads[2], pads[3]),
            (dil[0], dil[1]))


@handles(Conv="spike-driven convolution (the first layer may multiply analog input codes)")
def _conv(cx: Context, node: onnx.NodeProto) -> None:
    x = cx.act(node.input[0])
    w = cx.weight(node.input[1], out_axis=0, rank=4)
    _, strides, pads, dil = _conv_attrs(cx, node, w.values.shape[2:], x)
    group = int(cx.attrs(node).get("group", 1))
    if group < 1 or w.values.shape[0] % group:
        cx.fail(f"group {group} does not divide the {w.values.shape[0]} output channels",
                "re-export the model")
    y = cx.emit(ops.Conv(w, strides, pads, dil, group), [x])
    if len(node.input) > 2 and node.input[2]:
        bias = cx.real_const(node.input[2])
        if bias.size != w.values.shape[0]:
            cx.fail(f"the bias has {bias.size} values for {w.values.shape[0]} output channels",
                    "re-export the model")
        bias = bias.reshape(-1, 1, 1)
        y = cx.emit(ops.Affine(np.ones(()), bias), [y])
    cx.bind(y)


@handles(BatchNormalization="folded into weights or per-channel thresholds")
def _batchnorm(cx: Context, node: onnx.NodeProto) -> None:
    x = cx.act(node.input[0])
    gamma, beta, mean, var = (cx.real_const(n, "a BatchNorm parameter") for n in node.input[1:5])
    if len({t.shape for t in (gamma, beta, mean, var)}) != 1 or gamma.ndim != 1:
        cx.fail("BatchNorm parameters are not four vectors of one length",
                "re-export the model")
    eps = float(cx.attrs(node).get("epsilon", 1e-5))
    if not (np.isfinite(eps) and eps >= 0):
        cx.fail(f"epsilon {eps} is not a finite number >= 0", "re-export the model")
    if len(node.output) > 1 and any(node.output[1:]):
        cx.fail("BatchNormalization in training mode", "export the model in eval() mode")
    if not all(np.all(np.isfinite(t)) for t in (gamma, beta, mean, var)) or np.any(var + eps <= 0):
        cx.fail("BatchNorm parameters contain NaN, Inf or a non-positive variance",
                "fix the trained statistics")
    cx.bind(cx.emit(ops.BatchNorm(gamma, beta, mean, var, eps), [x]))


@handles(MaxPool="TD-MaxPool on spike counts",
         AveragePool="sum pool (spike-driven) + 1/k folded into the threshold")
def _pool(cx: Context, node: onnx.NodeProto) -> None:
    x = cx.act(node.input[0])
    a = cx.attrs(node)
    kernel, strides, pads, dil = _conv_attrs(cx, node, tuple(a["kernel_shape"]), x)
    if dil != (1, 1):
        cx.fail("dilated pooling is not supported", "use dilation 1")
    if node.op_type == "MaxPool":
        if len(node.output) > 1 and node.output[1]:
            cx.fail("MaxPool indices output is not supported", "drop the indices")
        return cx.bind(cx.emit(ops.MaxPool(kernel, strides, pads), [x]))
    if any(pads) and not a.get("count_include_pad", 0):
        cx.fail("AveragePool with padding that is not counted divides by a varying count",
                "use count_include_pad=1 or no padding")
    y = cx.emit(ops.SumPool(kernel, strides, pads), [x])
    cx.bind(cx.emit(ops.Affine(np.asarray(1.0 / (kernel[0] * kernel[1])), np.zeros(())), [y]))


@handles(GlobalAveragePool="spike sum + 1/n folded into the next layer",
         ReduceMean="spike sum + 1/n folded into the next layer",
         ReduceSum="spike sum")
def _reduce(cx: Context, node: onnx.NodeProto) -> None:
    x = cx.act(node.input[0])
    rank = len(cx.shape(x))
    a = cx.attrs(node)
    if node.op_type == "GlobalAveragePool":
        axes, keep = tuple(range(2, rank)), True
    else:
        axes = a.get("axes") or (tuple(cx.ints(node.input[1], "the axes"))
                                 if len(node.input) > 1 and node.input[1] else ())
        keep = bool(a.get("keepdims", 1))
        if not axes:
            axes = () if a.get("noop_with_empty_axes", 0) else tuple(range(rank))
    if not axes:
        return cx.bind(x)
    per = tuple(sorted({cx.axis(ax, x) for ax in axes}))
    y = cx.emit(ops.ReduceSum(per, keep), [x])
    if node.op_type != "ReduceSum":
        n = int(np.prod([cx.graph.node(x).shape[p] for p in per]))
        y = cx.emit(ops.Affine(np.asarray(1.0 / n), np.zeros(())), [y])
    cx.bind(y)


def _rewire(cx: Context, x: str, out_shape: tuple[int, ...]) -> None:
    """A reshape-like op: the batch axis must stay a leading 1."""
    if not out_shape or out_shape[0] != 1 or int(np.prod(out_shape[1:])) != int(
            np.prod(cx.graph.node(x).shape)):
        cx.fail(f"reshapes the batch axis (output shape {list(out_shape)} at batch 1)",
                "keep the batch axis leading and separate")
    if tuple(out_shape[1:]) == cx.graph.node(x).shape:
        return cx.bind(x)
    cx.bind(cx.emit(ops.Reshape(tuple(int(d) for d in out_shape[1:])), [x]))


@handles(Reshape="rewiring")
def _reshape(cx: Context, node: onnx.NodeProto) -> None:
    x = cx.act(node.input[0])
    target = cx.ints(node.input[1], "the target shape")
    src = cx.shape(x)
    target = [src[i] if d == 0 and i < len(src) and not cx.attrs(node).get("allowzero", 0)
              else d for i, d in enumerate(target)]
    try:
        out = np.empty(src, np.int8).reshape(target).shape
    except ValueError:
        cx.fail(f"cannot reshape {list(src)} to {target}", "check the export")
    _rewire(cx, x, out)


@handles(Flatten="rewiring")
def _flatten(cx: Context, node: onnx.NodeProto) -> None:
    x = cx.act(node.input[0])
    src = cx.shape(x)
    axis = int(cx.attrs(node).get("axis", 1))
    if not -len(src) <= axis <= len(src):
        cx.fail(f"axis {axis} is out of range for rank {len(src)}", "re-export the model")
    axis += len(src) if axis < 0 else 0
    _rewire(cx, x, (int(np.prod(src[:axis])), int(np.prod(src[axis:]))))


@handles(Squeeze="rewiring", Unsqueeze="rewiring")
def _squeeze(cx: Context, node: onnx.NodeProto) -> None:
    x = cx.act(node.input[0])
    axes = cx.attrs(node).get("axes") or (
        cx.ints(node.input[1], "the axes") if len(node.input) > 1 and node.input[1] else [])
    src = cx.shape(x)
    rank = len(src) + (len(axes) if node.op_type == "Unsqueeze" else 0)
    if any(not -rank <= a < rank for a in axes) or len({a % rank for a in axes}) < len(axes):
        cx.fail(f"axes {list(axes)} are out of range or repeated for rank {rank}",
                "re-export the model")
    if node.op_type == "Squeeze":
        axes = [a % len(src) for a in axes] or [i for i, d in enumerate(src) if d == 1]
        if any(src[a] != 1 for a in axes):
            cx.fail(f"squeezes axes {axes} of shape {list(src)}, which are not all 1",
                    "re-export the model")
        if 0 in axes:
            cx.fail("squeezes the batch axis", "keep the batch axis")
        out = tuple(d for i, d in enumerate(src) if i not in axes)
    else:
        axes = sorted(a % rank for a in axes)
        if 0 in axes:
            cx.fail("inserts an axis before the batch axis", "keep the batch axis first")
        grown = list(src)
        for a in axes:
            grown.insert(a, 1)
        out = tuple(grown)
    _rewire(cx, x, out)


@handles(Transpose="rewiring")
def _transpose(cx: Context, node: onnx.NodeProto) -> None:
    x = cx.act(node.input[0])
    rank = len(cx.shape(x))
    perm = list(cx.attrs(node).get("perm", range(rank - 1, -1, -1)))
    if sorted(perm) != list(range(rank)):
        cx.fail(f"perm {perm} is not a permutation of the {rank} axes", "re-export the model")
    if perm[0] != 0:
        cx.fail(f"permutation {perm} moves the batch axis", "keep the batch axis first")
    per = tuple(p - 1 for p in perm[1:])
    cx.bind(x if per == tuple(range(rank - 1)) else cx.emit(ops.Transpose(per), [x]))


def _take_range(cx: Context, x: str, axis: int, start: int, stop: int | None, step: int,
                out: str) -> str:
    size = cx.graph.node(x).shape[axis]
    idx = np.arange(*slice(start, stop, step).indices(size), dtype=np.int64)
    if len(idx) == size and step == 1:
        return x
    return cx.emit(ops.Take(idx, axis), [x], out=f"{out}/Take")


@handles(Slice="rewiring")
def _slice(cx: Context, node: onnx.NodeProto) -> None:
    x = cx.act(node.input[0])
    starts, ends = (cx.ints(n, "a Slice bound") for n in node.input[1:3])
    given = {k: cx.ints(node.input[k], "Slice axes or steps") for k in (3, 4)
             if len(node.input) > k and node.input[k]}
    axes = given.get(3, list(range(len(starts))))
    steps = given.get(4, [1] * len(starts))
    if len({len(starts), len(ends), len(axes), len(steps)}) != 1 or 0 in steps:
        cx.fail("Slice starts, ends, axes and steps differ in length, or a step is 0",
                "re-export the model")
    per_axes = [cx.axis(ax, x) for ax in axes]
    if len(set(per_axes)) < len(per_axes):
        cx.fail(f"Slice axes {axes} repeat an axis", "re-export the model")
    y = x
    for s, e, ax, st in zip(starts, ends, per_axes, steps, strict=True):
        stop = None if st < 0 and e < -cx.graph.node(x).shape[ax] else e
        y = _take_range(cx, y, ax, s, stop, st, node.output[0])
    cx.bind(y)


@handles(Split="rewiring")
def _split(cx: Context, node: onnx.NodeProto) -> None:
    x = cx.act(node.input[0])
    a = cx.attrs(node)
    axis = cx.axis(int(a.get("axis", 0)), x)
    size = cx.graph.node(x).shape[axis]
    sizes = a.get("split") or (cx.ints(node.input[1], "the split sizes") if len(node.input) > 1
                               and node.input[1] else None)
    if sizes is None:
        n = int(a.get("num_outputs", len(node.output)))
        chunk = -(-size // max(n, 1))
        sizes = [min(chunk, size - k * chunk) for k in range(n)]
    if len(sizes) != len(node.output) or min(sizes) < 1 or sum(sizes) != size:
        cx.fail(f"splits an axis of {size} into {list(sizes)} for {len(node.output)} outputs",
                "re-export the model")
    start = 0
    for out, n in zip(node.output, sizes, strict=True):
        cx.env[out] = _take_range(cx, x, axis, start, start + int(n), 1, out)
        start += int(n)


@handles(Concat="rewiring")
def _concat(cx: Context, node: onnx.NodeProto) -> None:
    xs = [cx.act(i) for i in node.input]
    axis = cx.axis(int(cx.attrs(node)["axis"]), xs[0])
    cx.bind(cx.emit(ops.Concat(axis), xs))


@handles(Gather="rewiring (constant indices)")
def _gather(cx: Context, node: onnx.NodeProto) -> None:
    x = cx.act(node.input[0])
    idx = cx.const(node.input[1], "the indices")
    axis = cx.axis(int(cx.attrs(node).get("axis", 0)), x)
    size = cx.graph.node(x).shape[axis]
    if idx.dtype.kind not in "iu" or np.any(idx < -size) or np.any(idx >= size):
        cx.fail(f"indices must be integers in [-{size}, {size})", "re-export the model")
    idx = idx.astype(np.int64) % size
    cx.bind(cx.emit(ops.Take(idx, axis), [x]))


@handles(Softmax="refused, or NReLU with --replace-softmax (see softmax-to-nrelu)")
def _softmax(cx: Context, node: onnx.NodeProto) -> None:
    x = cx.act(node.input[0])
    cx.bind(cx.emit(ops.Softmax(cx.axis(int(cx.attrs(node).get("axis", -1)), x)), [x]))
