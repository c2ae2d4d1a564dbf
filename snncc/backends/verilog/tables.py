"""Compile-time tables of the Verilog backend: layout maps, conv/pool tap tables, gather
tables, threshold tables, the step schedule. Pure functions of the graph; no Verilog.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from numpy.lib.stride_tricks import sliding_window_view

from snncc import ops as o
from snncc.intmath import signed_bits
from snncc.ir import Graph, Node
from snncc.reference import EVAL
from snncc.schedule import windows

from .ranges import Interval

BUFFERED = (o.SpikeInput, o.Synapse, o.TDMatMul, o.TDMaxPool, o.AddCurrent, o.Neuron,
            o.ReduceSum, o.SumPool)


def addr_bits(depth: int) -> int:
    """Bits of an index into `depth` entries (at least one)."""
    return max(1, (int(depth) - 1).bit_length())


# ---------------------------------------------------------------- layout maps


def resolve(graph: Graph, name: str) -> tuple[str, np.ndarray]:
    """The buffered value that `name` reads, and for every element of `name` its index
    in that buffer. Layout ops are pure rewiring: they become address maps."""
    n = graph.node(name)
    if isinstance(n.op, BUFFERED):
        return name, np.arange(int(np.prod(n.shape)), dtype=np.int64).reshape(n.shape)
    assert isinstance(n.op, o.Reshape | o.Transpose | o.Take), n.op
    src, idx = resolve(graph, n.inputs[0])
    return src, EVAL[type(n.op)](n, [idx[None]])[0]


def is_identity(index: np.ndarray, depth: int) -> bool:
    return index.size == depth and bool(np.array_equal(index.ravel(), np.arange(depth)))


# ---------------------------------------------------------------- tap tables


def conv_taps(size: int, kernel: int, stride: int, pad: int, dilation: int, out: int,
              scale: int) -> list[tuple[bool, int]]:
    """For input position p and tap k (entry p*kernel + k): the output position o that
    tap reaches (p + pad - k*dilation = o*stride), as (valid, o*scale)."""
    table = []
    for p in range(size):
        for k in range(kernel):
            num = p + pad - k * dilation
            q, r = divmod(num, stride)
            ok = num >= 0 and r == 0 and q < out
            table.append((ok, q * scale if ok else 0))
    return table


def pool_taps(out: int, kernel: int, stride: int, pad: int, size: int,
              scale: int) -> list[tuple[bool, int]]:
    """For output position o and tap k (entry o*kernel + k): the input position
    i = o*stride - pad + k it reads, as (valid, i*scale); padding is invalid."""
    table = []
    for q in range(out):
        for k in range(kernel):
            i = q * stride - pad + k
            ok = 0 <= i < size
            table.append((ok, i * scale if ok else 0))
    return table


def conv_weights_scatter_order(w: np.ndarray, group: int) -> np.ndarray:
    """W[o, c%Ig, ky, kx] stored at ((c*KH + ky)*KW + kx)*OG + o%OG for every input c."""
    o_ch, ig, kh, kw = w.shape
    og = o_ch // group
    out = np.empty((ig * group, kh, kw, og), np.int64)
    for c in range(ig * group):
        g = c // ig
        out[c] = w[g * og:(g + 1) * og, c - g * ig].transpose(1, 2, 0)
    return out.ravel()


def gather_reduce(index: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """[outputs, terms] buffer addresses summed by a ReduceSum over `axes` of `index`."""
    nd = index.ndim
    red = sorted(a % nd for a in axes)
    kept = [a for a in range(nd) if a not in red]
    out = index.transpose(kept + red)
    terms = int(np.prod([index.shape[a] for a in red]))
    return out.reshape(-1, terms)


def gather_pool(index: np.ndarray, op: o.SumPool) -> np.ndarray:
    """[outputs, kernel taps] buffer addresses of a SumPool (-1: padding)."""
    t, l, b, r = op.pads
    padded = np.pad(index, ((0, 0), (t, b), (l, r)), constant_values=-1)
    win = sliding_window_view(padded, op.kernel, axis=(1, 2))
    win = win[:, ::op.strides[0], ::op.strides[1]]
    return win.reshape(-1, int(np.prod(op.kernel)))


# ---------------------------------------------------------------- thresholds


@dataclass(frozen=True)
class ThresholdTable:
    """A neuron's shared threshold rows: row(i) = (i // inner) % rows."""

    rows: int
    inner: int
    negate: np.ndarray  # [rows] bool: compare -v instead of v
    thetas: np.ndarray  # [rows, L] int64, clamped to the reachable range of sign*v
    width: int  # comparison width: holds +-v and every threshold


def threshold_table(n: Node, acc: Interval, membrane_bits: int) -> ThresholdTable:
    """Compress the neuron's (sign, thresholds) into rows over one contiguous block of
    axes, and clamp every threshold to [min sign*v, max sign*v + 1] (same decisions)."""
    op: o.Neuron = n.op
    shape, levels = n.shape, op.levels
    th = np.broadcast_to(op.thresholds, shape + (levels,)).astype(np.int64)
    sg = np.broadcast_to(np.asarray(op.sign, np.int64), shape)
    both = np.concatenate([th, sg[..., None]], axis=-1)
    varying = [a for a in range(len(shape))
               if shape[a] > 1 and not np.all(both == both.take([0], axis=a))]
    if varying:
        a0, a1 = varying[0], varying[-1]
        pick = tuple(slice(None) if a0 <= a <= a1 else 0 for a in range(len(shape)))
        rows, inner = int(np.prod(shape[a0:a1 + 1])), int(np.prod(shape[a1 + 1:]))
        table = both[pick].reshape(rows, levels + 1)
    else:
        rows, inner = 1, max(int(np.prod(shape)), 1)
        table = both.reshape(-1, levels + 1)[:1]
    negate = table[:, levels] < 0
    lo = np.where(negate, -acc.hi, acc.lo)
    hi = np.where(negate, -acc.lo, acc.hi)
    thetas = np.clip(table[:, :levels], lo[:, None], hi[:, None] + 1)
    width = max(signed_bits(min(int(lo.min()), int(thetas.min())),
                            max(int(hi.max()), int(thetas.max()))),
                signed_bits(-acc.hi, -acc.lo), membrane_bits + 1)
    return ThresholdTable(rows, inner, negate, thetas, width)


# ---------------------------------------------------------------- schedule


@dataclass(frozen=True)
class Activity:
    """Per step: which engines run, which values may be non-zero."""

    steps: int
    run: dict[str, np.ndarray]  # engine node -> [steps] bool
    active: dict[str, np.ndarray]  # value -> [steps] bool


def activity(graph: Graph, steps: int) -> Activity:
    """The step engine's behaviour, statically: a value is active at step t when it may
    be non-zero then; a node runs when an input is active (a neuron also while it may
    fire, from t_fire to the end of its window). Inactive values read as zero."""
    t = np.arange(steps)
    win = windows(graph)
    run: dict[str, np.ndarray] = {}
    active: dict[str, np.ndarray] = {}
    for n in graph.topo():
        if isinstance(n.op, o.Input):
            continue
        if isinstance(n.op, o.SpikeInput):
            active[n.name] = t == 0 if n.op.analog else t < n.op.hi - n.op.lo
            continue
        any_in = np.logical_or.reduce([active[i] for i in n.inputs])
        if isinstance(n.op, o.Neuron):
            fire = (t >= n.op.t_fire) & (t <= win[n.name][1])
            run[n.name], active[n.name] = any_in | fire, fire
        elif isinstance(n.op, o.LAYOUT_OPS):
            active[n.name] = any_in
        else:
            run[n.name], active[n.name] = any_in, any_in
    return Activity(steps, run, active)
