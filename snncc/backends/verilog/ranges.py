"""Value ranges of the SNN: what every buffer, membrane and accumulator must hold.

Every value gets two intervals: ``step`` bounds its value at one time step, ``acc`` bounds
every partial sum of it over the steps (what a membrane or accumulator integrating it can
reach). A spike tensor has ``step = [0, 1]`` and ``acc = [0, most spikes]``; analog input
codes are presented once, so both are the code range. The bounds are sound, not tight:
a linear layer's bound is the sum over its inputs of the extreme terms, and partial sums
inside one step (a scatter that has added some rows but not all) stay inside it too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from snncc import ops as o
from snncc.intmath import signed_bits
from snncc.ir import Graph, Node

from .design import op_of


@dataclass(frozen=True)
class Interval:
    """The integers lo..hi (lo <= 0 <= hi for every SNN value: a silent step is zero)."""

    lo: int
    hi: int

    def __add__(self, other: Interval) -> Interval:
        return Interval(self.lo + other.lo, self.hi + other.hi)

    def times(self, k: int) -> Interval:
        """The bound of a sum of `k` values in this interval."""
        return Interval(self.lo * k, self.hi * k)

    def union(self, other: Interval) -> Interval:
        return Interval(min(self.lo, other.lo), max(self.hi, other.hi))

    @property
    def bits(self) -> int:
        """Two's-complement width that holds the interval."""
        return signed_bits(self.lo, self.hi)


@dataclass(frozen=True)
class ValueRange:
    """Bounds of one SNN value: per step, and over partial sums across steps."""

    step: Interval
    acc: Interval
    spikes: bool  # a binary spike train (else integer codes or currents)

    @property
    def count(self) -> int:
        """The most spikes one element of a spike train sends in an inference."""
        return self.acc.hi


def value_ranges(graph: Graph) -> dict[str, ValueRange]:
    """The range of every SNN value of `graph` (float values have none)."""
    ranges: dict[str, ValueRange] = {}
    for n in graph.topo():
        if isinstance(n.op, o.Input):
            continue
        ins = [ranges[i] for i in n.inputs if i in ranges]
        in_shapes = [graph.node(i).shape for i in n.inputs]
        ranges[n.name] = _RULES[type(n.op)](n, ins, in_shapes)
    return ranges


def _spike_input(n: Node, ins: list[ValueRange], shapes) -> ValueRange:
    op = op_of(n, o.SpikeInput)
    if op.analog:
        codes = Interval(min(op.lo, 0), max(op.hi, 0))
        return ValueRange(codes, codes, spikes=False)
    return ValueRange(Interval(0, 1), Interval(0, op.hi - op.lo), spikes=True)


def _linear_bound(w: np.ndarray, x: Interval) -> Interval:
    """Bound of every partial sum of ``sum_k w[k, j] * x_k`` over subsets of k, all j.

    `w` is [terms, outputs]; each term contributes between min(0, w*lo, w*hi) and
    max(0, w*lo, w*hi).
    """
    w = np.asarray(w, np.int64)
    a, b = w * x.lo, w * x.hi
    lo = np.minimum(0, np.minimum(a, b)).sum(axis=0)
    hi = np.maximum(0, np.maximum(a, b)).sum(axis=0)
    return Interval(int(lo.min(initial=0)), int(hi.max(initial=0)))


def _synapse(n: Node, ins: list[ValueRange], shapes) -> ValueRange:
    op = op_of(n, o.Synapse)
    w = op.weight
    # terms x outputs: a dense weight is [K, M]; a conv output channel sums [I/g, kh, kw]
    terms = w if op.kind == "dense" else w.reshape(w.shape[0], -1).T
    x = ins[0]
    return ValueRange(_linear_bound(terms, x.step), _linear_bound(terms, x.acc), spikes=False)


def _td_matmul(n: Node, ins: list[ValueRange], shapes) -> ValueRange:
    """dP(t) = S_A(t).C_B(t) + C_A(t-1).S_B(t) <= K (L_B + L_A); partial sums C_A.C_B."""
    a, b = ins
    k = shapes[0][-1]
    return ValueRange(Interval(0, k * (a.count + b.count)), Interval(0, k * a.count * b.count),
                      spikes=False)


def _add_current(n: Node, ins: list[ValueRange], shapes) -> ValueRange:
    a, b = ins
    return ValueRange(a.step + b.step, a.acc + b.acc, spikes=False)


def _sum_of(x: ValueRange, terms: int) -> ValueRange:
    return ValueRange(x.step.times(terms), x.acc.times(terms), spikes=False)


def _reduce_sum(n: Node, ins: list[ValueRange], shapes) -> ValueRange:
    terms = int(np.prod(shapes[0])) // max(int(np.prod(n.shape)), 1)
    return _sum_of(ins[0], terms)


def _sum_pool(n: Node, ins: list[ValueRange], shapes) -> ValueRange:
    return _sum_of(ins[0], int(np.prod(op_of(n, o.SumPool).kernel)))


def _neuron(n: Node, ins: list[ValueRange], shapes) -> ValueRange:
    return ValueRange(Interval(0, 1), Interval(0, op_of(n, o.Neuron).levels), spikes=True)


def _same(n: Node, ins: list[ValueRange], shapes) -> ValueRange:
    out = ins[0]
    for r in ins[1:]:
        out = ValueRange(out.step.union(r.step), out.acc.union(r.acc), out.spikes)
    return out


_RULES = {
    o.SpikeInput: _spike_input,
    o.Synapse: _synapse,
    o.TDMatMul: _td_matmul,
    o.TDMaxPool: _same,
    o.AddCurrent: _add_current,
    o.ReduceSum: _reduce_sum,
    o.SumPool: _sum_pool,
    o.Neuron: _neuron,
    o.Readout: _same,
    o.Reshape: _same,
    o.Transpose: _same,
    o.Concat: _same,
    o.Take: _same,
}
