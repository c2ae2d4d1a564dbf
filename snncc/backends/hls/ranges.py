"""Value ranges of every SNN value, for choosing C integer types (interval arithmetic).

Each value gets two intervals: ``step``, what it can hold at one time step, and ``total``,
what any running sum of it over steps can hold (a membrane, a readout accumulator). Both
are closed integer intervals that contain 0, so that every partial sum a kernel stores
while it accumulates (a subset of the terms) lies inside them too. A spike train also
says how its spikes travel (``spikes``): unit spikes (0/1, ``--neuron if``), signed
spikes (-1/0/+1, ``signed``), or a number a step on weighted lines (``multi``, and the
weighted input). A signed train's running count never leaves [0, L].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from snncc import ops as o
from snncc.ir import Graph, Node

Interval = tuple[int, int]


UNIT, SIGNED, LINES = "unit", "signed", "lines"  # how a spike train's spikes travel
_WIDER = (UNIT, SIGNED, LINES)  # a kernel for a later kind also takes the earlier ones


@dataclass(frozen=True)
class Range:
    """What one value can hold: per step, summed over steps, and how it spikes."""

    step: Interval
    total: Interval
    spikes: str = ""  # UNIT, SIGNED or LINES for a spike train; "" for currents and codes

    @property
    def binary(self) -> bool:
        """0 or 1 per step (a unit spike train)."""
        return self.spikes == UNIT

    @property
    def lines(self) -> int:
        """Weighted lines (bits) that carry one step of it."""
        return max(self.step[1], 1).bit_length()


def widest(ranges: list[Range]) -> str:
    """The spike kind a kernel reading all of `ranges` must take ("" if one is no spike
    train)."""
    if not all(r.spikes for r in ranges):
        return ""
    return max((r.spikes for r in ranges), key=_WIDER.index)


def _hull(*ivs: Interval) -> Interval:
    return min(i[0] for i in ivs), max(i[1] for i in ivs)


def _scale(iv: Interval, k: int) -> Interval:
    return k * iv[0], k * iv[1]


def _linear(w: np.ndarray, iv: Interval) -> Interval:
    """Bounds of every partial sum of ``sum_k w[k, j] * x_k`` with x_k in `iv`.

    `w` is [fan_in, outputs]; each term is bounded by [min(w*lo, w*hi), max(...)], and
    negative (positive) term bounds add up to the lowest (highest) partial sum.
    """
    w = np.asarray(w)
    top = max(-int(w.min(initial=0)), int(w.max(initial=0))) * max(abs(iv[0]), abs(iv[1]))
    # int64 where no partial sum can overflow it, Python integers otherwise
    w = w.astype(np.int64 if top * max(len(w), 1) < 2**62 else object)
    a, b = w * iv[0], w * iv[1]
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    neg = np.where(lo < 0, lo, 0).sum(axis=0)
    pos = np.where(hi > 0, hi, 0).sum(axis=0)
    return int(min(neg, default=0)), int(max(pos, default=0))


def _synapse_matrix(op: o.Synapse) -> np.ndarray:
    """The weights as [fan_in, outputs]: one column per output (channel)."""
    if op.kind == "dense":
        return op.weight
    return op.weight.reshape(op.weight.shape[0], -1).T


def _range(graph: Graph, n: Node, ins: list[Range]) -> Range:
    op = n.op
    if isinstance(op, o.SpikeInput):
        if op.analog:
            return Range((min(op.lo, 0), op.hi), (min(op.lo, 0), op.hi))
        if op.weighted:
            return Range((0, op.hi - op.lo), (0, op.hi - op.lo), LINES)
        return Range((0, 1), (0, op.hi - op.lo), UNIT)
    if isinstance(op, o.Synapse):
        w = _synapse_matrix(op)
        return Range(_linear(w, ins[0].step), _linear(w, ins[0].total))
    if isinstance(op, o.TDMatMul):  # S_A C_B + C_A S_B, counts C in [0, L]
        k = graph.node(n.inputs[0]).shape[-1]
        (sa, la), (sb, lb) = ((r.step, r.total[1]) for r in ins)
        return Range((k * (min(sa[0], 0) * lb + min(sb[0], 0) * la),
                      k * (sa[1] * lb + sb[1] * la)), (0, k * la * lb))
    if isinstance(op, o.TDMaxPool):  # max C(t) - max C(t-1): within one step's change
        s = ins[0].step
        return Range((min(s[0], 0), max(s[1], 0)), (0, ins[0].total[1]), ins[0].spikes)
    if isinstance(op, o.Neuron):
        return _neuron(op)
    if isinstance(op, o.AddCurrent):
        a, b = ins
        return Range((a.step[0] + b.step[0], a.step[1] + b.step[1]),
                     (a.total[0] + b.total[0], a.total[1] + b.total[1]))
    if isinstance(op, o.ReduceSum):
        shape = graph.node(n.inputs[0]).shape
        k = int(np.prod([shape[a] for a in op.axes]))
        return Range(_scale(ins[0].step, k), _scale(ins[0].total, k))
    if isinstance(op, o.SumPool):
        k = op.kernel[0] * op.kernel[1]
        return Range(_scale(ins[0].step, k), _scale(ins[0].total, k))
    if isinstance(op, o.Readout):
        return ins[0]
    if isinstance(op, o.LAYOUT_OPS):
        kinds = {r.spikes for r in ins}
        return Range(_hull(*(r.step for r in ins)), _hull(*(r.total for r in ins)),
                     kinds.pop() if len(kinds) == 1 else "")
    raise AssertionError(f"no range rule for {op.name}")


def _neuron(op: o.Neuron) -> Range:
    """Unit spikes (if), ±1 spikes whose running count stays in [0, L] (signed), or the
    levels newly reached, a number a step (multi)."""
    levels = op.levels
    if op.mode == "signed":
        return Range((-1, 1), (0, levels), SIGNED)
    if op.mode == "multi":
        return Range((0, levels), (0, levels), LINES)
    return Range((0, 1), (0, levels), UNIT)


def value_ranges(graph: Graph) -> dict[str, Range]:
    """The range of every SNN value of `graph` (check() has refused anything else)."""
    ranges: dict[str, Range] = {}
    for n in graph.topo():
        if not isinstance(n.op, o.Input):
            ranges[n.name] = _range(graph, n, [ranges[i] for i in n.inputs if i in ranges])
    return ranges


def magnitude(iv: Interval) -> int:
    """The largest |value| in `iv`: a membrane holding `iv` also holds its negation."""
    return max(abs(iv[0]), abs(iv[1]))
