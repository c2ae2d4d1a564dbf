"""Value ranges of every SNN value: the one analysis behind the interpreter's integer
types, the HLS C types and the Verilog widths.

Every value gets two closed integer intervals, both holding 0 (a silent step is zero):
``step`` bounds its value at one time step and ``acc`` every running sum of it over steps
(what a membrane or accumulator integrating it can reach). Both bound every *partial*
sum too — a kernel that has added some of a step's terms but not all, or some steps but
not all — because each term's interval holds 0 and the bound of a linear layer is the
sum of its terms' extremes. A spike train also says how its spikes travel (``spikes``):
unit spikes (0/1, ``--neuron if``), signed spikes (-1/0/+1, ``signed``: the running count
never leaves [0, L]), or a number a step on weighted lines (``multi``, and the weighted
input); analog and weighted input codes are presented once, so both intervals are the
code range. The arithmetic is on Python integers (no overflow, however wide).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from snncc import ops as o
from snncc.intmath import signed_bits
from snncc.ir import Graph, Node

UNIT, SIGNED, LINES = "unit", "signed", "lines"  # how a spike train's spikes travel
_WIDER = (UNIT, SIGNED, LINES)  # a kernel for a later kind also takes the earlier ones


@dataclass(frozen=True)
class Interval:
    """The integers lo..hi."""

    lo: int
    hi: int

    def __add__(self, other: Interval) -> Interval:
        return Interval(self.lo + other.lo, self.hi + other.hi)

    def __mul__(self, other: Interval) -> Interval:
        """The products of a value in this interval and one in `other`."""
        ends = [a * b for a in (self.lo, self.hi) for b in (other.lo, other.hi)]
        return Interval(min(ends), max(ends))

    def times(self, k: int) -> Interval:
        """The bound of a sum of `k` values in this interval (k >= 0)."""
        return Interval(self.lo * k, self.hi * k)

    def union(self, other: Interval) -> Interval:
        return Interval(min(self.lo, other.lo), max(self.hi, other.hi))

    @property
    def magnitude(self) -> int:
        """The largest |value|: a register holding the interval also holds its negation."""
        return max(abs(self.lo), abs(self.hi))

    @property
    def bits(self) -> int:
        """Two's-complement width that holds the interval."""
        return signed_bits(self.lo, self.hi)


@dataclass(frozen=True)
class ValueRange:
    """What one value can hold: per step, over running sums, and how it spikes."""

    step: Interval
    acc: Interval
    spikes: str = ""  # UNIT, SIGNED or LINES for a spike train; "" for currents and codes

    @property
    def binary(self) -> bool:
        """0 or 1 per step (a unit spike train)."""
        return self.spikes == UNIT

    @property
    def count(self) -> int:
        """The most spikes one element of a spike train sends in an inference."""
        return self.acc.hi

    @property
    def lines(self) -> int:
        """Weighted lines (bits) that carry one step of it."""
        return max(self.step.hi, 1).bit_length()

    @property
    def bound(self) -> int:
        """The largest |value| of it at a step or summed over steps (at least 1)."""
        return max(self.step.magnitude, self.acc.magnitude, 1)

    def times(self, k: int) -> ValueRange:
        """The range of a sum of `k` such values (a current, not a spike train)."""
        return ValueRange(self.step.times(k), self.acc.times(k))


def widest(ranges: list[ValueRange]) -> str:
    """The spike kind a kernel reading all of `ranges` must take ("" if one is no spike
    train)."""
    if not all(r.spikes for r in ranges):
        return ""
    return max((r.spikes for r in ranges), key=_WIDER.index)


def value_ranges(graph: Graph) -> dict[str, ValueRange]:
    """The range of every SNN value of `graph` (float values and the inputs have none)."""
    ranges: dict[str, ValueRange] = {}
    for n in graph.topo():
        if not isinstance(n.op, o.Input):
            ins = [ranges[i] for i in n.inputs if i in ranges]
            ranges[n.name] = _RULES[type(n.op)](graph, n, ins)
    return ranges


def _spike_input(graph: Graph, n: Node, ins: list[ValueRange]) -> ValueRange:
    op = n.op_as(o.SpikeInput)
    if op.analog:
        codes = Interval(min(op.lo, 0), max(op.hi, 0))
        return ValueRange(codes, codes)
    if op.weighted:  # the code at once, on weighted lines
        return ValueRange(Interval(0, op.hi - op.lo), Interval(0, op.hi - op.lo), LINES)
    return ValueRange(Interval(0, 1), Interval(0, op.hi - op.lo), UNIT)


def linear_bound(w: np.ndarray, x: Interval) -> Interval:
    """Bound of every partial sum of ``sum_k w[k, j] * x_k`` over subsets of k, all j,
    with every x_k in `x`. `w` is [terms, outputs]; each term lies between
    min(0, w*lo, w*hi) and max(0, w*lo, w*hi)."""
    w = np.asarray(w)
    top = max(-int(w.min(initial=0)), int(w.max(initial=0))) * x.magnitude
    w = w.astype(np.int64 if top * max(len(w), 1) < 2**62 else object)
    a, b = w * x.lo, w * x.hi
    lo = np.where(np.minimum(a, b) < 0, np.minimum(a, b), 0).sum(axis=0)
    hi = np.where(np.maximum(a, b) > 0, np.maximum(a, b), 0).sum(axis=0)
    return Interval(int(min(lo, default=0)), int(max(hi, default=0)))


def synapse_terms(op: o.Synapse) -> np.ndarray:
    """The weights as [terms, outputs]: a dense weight is [K, M]; a conv output channel
    sums [I/g, kh, kw]."""
    if op.kind == "dense":
        return op.weight
    return op.weight.reshape(op.weight.shape[0], -1).T


def _synapse(graph: Graph, n: Node, ins: list[ValueRange]) -> ValueRange:
    w = synapse_terms(n.op_as(o.Synapse))
    return ValueRange(linear_bound(w, ins[0].step), linear_bound(w, ins[0].acc))


def _td_matmul(graph: Graph, n: Node, ins: list[ValueRange]) -> ValueRange:
    """dP(t) = S_A(t).C_B(t) + C_A(t-1).S_B(t), K terms of each; partial sums C_A.C_B."""
    a, b = ins
    k = graph.node(n.inputs[0]).shape[-1]
    return ValueRange((a.step * b.acc + a.acc * b.step).times(k), (a.acc * b.acc).times(k))


def _add_current(graph: Graph, n: Node, ins: list[ValueRange]) -> ValueRange:
    a, b = ins
    return ValueRange(a.step + b.step, a.acc + b.acc)


def _reduce_sum(graph: Graph, n: Node, ins: list[ValueRange]) -> ValueRange:
    shape = graph.node(n.inputs[0]).shape
    return ins[0].times(int(np.prod([shape[a] for a in n.op_as(o.ReduceSum).axes])))


def _sum_pool(graph: Graph, n: Node, ins: list[ValueRange]) -> ValueRange:
    return ins[0].times(int(np.prod(n.op_as(o.SumPool).kernel)))


_NEURON = {"if": (Interval(0, 1), UNIT), "signed": (Interval(-1, 1), SIGNED)}


def _neuron(graph: Graph, n: Node, ins: list[ValueRange]) -> ValueRange:
    """Unit spikes (if), ±1 spikes whose running count stays in [0, L] (signed), or the
    levels newly reached, a number a step (multi)."""
    op = n.op_as(o.Neuron)
    step, kind = _NEURON.get(op.mode, (Interval(0, op.levels), LINES))
    return ValueRange(step, Interval(0, op.levels), kind)


def _max_pool(graph: Graph, n: Node, ins: list[ValueRange]) -> ValueRange:
    """max C(t) - max C(t-1): within one step's change of its input."""
    return ins[0]


def _same(graph: Graph, n: Node, ins: list[ValueRange]) -> ValueRange:
    """Rewiring (and the readout): the hull of its inputs, their spike kind if one."""
    step, acc = ins[0].step, ins[0].acc
    for r in ins[1:]:
        step, acc = step.union(r.step), acc.union(r.acc)
    kinds = {r.spikes for r in ins}
    return ValueRange(step, acc, kinds.pop() if len(kinds) == 1 else "")


_RULES = {
    o.SpikeInput: _spike_input, o.Synapse: _synapse, o.TDMatMul: _td_matmul,
    o.TDMaxPool: _max_pool, o.AddCurrent: _add_current, o.ReduceSum: _reduce_sum,
    o.SumPool: _sum_pool, o.Neuron: _neuron, o.Readout: _same, o.Reshape: _same,
    o.Transpose: _same, o.Concat: _same, o.Take: _same,
}
