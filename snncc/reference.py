"""The living definition of every op: a numpy evaluator of the IR, batch first.

On canonical ops it computes the source model's float semantics (float64); on SNN ops it
is the *integer reference*: the quantized ANN in exactly the integer arithmetic of the
SNN, activation by activation, with no notion of time. The interpreter's spike counts
must equal these codes bit for bit in exact mode.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from snncc import kernels
from snncc import ops as o
from snncc.intmath import codes_from_thresholds, quantize
from snncc.ir import Graph, Node

Eval = Callable[[Node, list[np.ndarray]], np.ndarray]
EVAL: dict[type, Eval] = {}


def evaluates(*kinds: type) -> Callable[[Eval], Eval]:
    def register(fn: Eval) -> Eval:
        for k in kinds:
            EVAL[k] = fn
        return fn
    return register


def evaluate(graph: Graph, feeds: dict[str, np.ndarray],
             keep: bool = True) -> dict[str, np.ndarray]:
    """Every value of `graph` for the batch in `feeds` (or just the outputs if not `keep`)."""
    values: dict[str, np.ndarray] = {}
    remaining = {n.name: 0 for n in graph.topo()}
    for n in graph.topo():
        for i in n.inputs:
            remaining[i] += 1
    for n in graph.topo():
        if isinstance(n.op, o.Input):
            values[n.name] = np.asarray(feeds[n.name], np.float64)
            continue
        values[n.name] = EVAL[type(n.op)](n, [values[i] for i in n.inputs])
        if not keep:
            for i in n.inputs:
                remaining[i] -= 1
                if remaining[i] == 0 and i not in graph.outputs:
                    del values[i]
    return values if keep else {k: values[k] for k in graph.outputs}


def _ax(axis: int) -> int:
    """Per-sample axis -> batch-first axis."""
    return axis + 1 if axis >= 0 else axis


def batched(xs: list[np.ndarray]) -> list[np.ndarray]:
    """Operands of a broadcasting op, given equal rank by 1-axes right after the batch axis
    (per-sample shapes broadcast from the right; the batch axis must not take part)."""
    rank = max(x.ndim for x in xs)
    return [x.reshape(x.shape[:1] + (1,) * (rank - x.ndim) + x.shape[1:]) for x in xs]


# ---------------------------------------------------------------- canonical ops


@evaluates(o.QuantAct)
def _quant_act(n, xs):
    op: o.QuantAct = n.op
    q = quantize(xs[0], op.scale, op.zero_point, op.lo, op.hi, op.rounding)
    return op.scale * (q - op.zero_point)


@evaluates(o.Dense)
def _dense(n, xs):
    return xs[0] @ n.op.weight.real()


@evaluates(o.Conv)
def _conv(n, xs):
    op: o.Conv = n.op
    return kernels.conv2d(xs[0], op.weight.real(), op.strides, op.pads, op.dilations, op.group)


@evaluates(o.Affine)
def _affine(n, xs):
    return xs[0] * n.op.mul + n.op.add


@evaluates(o.BatchNorm)
def _batchnorm(n, xs):
    mul, add = n.op.as_affine(xs[0].ndim - 1)
    return xs[0] * mul + add


@evaluates(o.Add, o.AddCurrent)
def _add(n, xs):
    a, b = batched(xs)
    return a + b


@evaluates(o.Sub)
def _sub(n, xs):
    a, b = batched(xs)
    return a - b


@evaluates(o.MatMul, o.TDMatMul)
def _matmul(n, xs):
    a, b = batched(xs)
    return kernels.matmul(a, b)


@evaluates(o.Relu)
def _relu(n, xs):
    return np.maximum(xs[0], 0)


@evaluates(o.Softmax)
def _softmax(n, xs):
    ax = _ax(n.op.axis)
    e = np.exp(xs[0] - xs[0].max(axis=ax, keepdims=True))
    return e / e.sum(axis=ax, keepdims=True)


@evaluates(o.MaxPool, o.TDMaxPool)
def _maxpool(n, xs):
    return kernels.maxpool2d(xs[0], n.op.kernel, n.op.strides, n.op.pads)


@evaluates(o.SumPool)
def _sumpool(n, xs):
    return kernels.sumpool2d(xs[0], n.op.kernel, n.op.strides, n.op.pads)


@evaluates(o.ReduceSum)
def _reduce_sum(n, xs):
    return xs[0].sum(axis=tuple(_ax(a) for a in n.op.axes), keepdims=n.op.keepdims)


@evaluates(o.Reshape)
def _reshape(n, xs):
    return xs[0].reshape((xs[0].shape[0],) + tuple(n.op.shape))


@evaluates(o.Transpose)
def _transpose(n, xs):
    return xs[0].transpose((0,) + tuple(p + 1 for p in n.op.perm))


@evaluates(o.Concat)
def _concat(n, xs):
    return np.concatenate(xs, axis=_ax(n.op.axis))


@evaluates(o.Take)
def _take(n, xs):
    return xs[0].take(n.op.indices, axis=_ax(n.op.axis))


# ---------------------------------------------------------------- SNN ops (integers)


@evaluates(o.SpikeInput)
def _spike_input(n, xs):
    op: o.SpikeInput = n.op
    return quantize(xs[0], op.scale, op.zero_point, op.lo, op.hi, op.rounding)


@evaluates(o.Synapse)
def _synapse(n, xs):
    op: o.Synapse = n.op
    if op.kind == "dense":
        return kernels.matmul(xs[0], op.weight)
    return kernels.conv2d(xs[0], op.weight, op.strides, op.pads, op.dilations, op.group)


@evaluates(o.Neuron)
def _neuron(n, xs):
    return codes_from_thresholds(xs[0], n.op.sign, n.op.thresholds)


@evaluates(o.Readout)
def _readout(n, xs):
    return xs[0] + n.op.bias
