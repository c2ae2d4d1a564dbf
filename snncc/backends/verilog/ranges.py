"""Value ranges of the SNN: what every buffer, membrane and accumulator must hold.

Every value gets two intervals: ``step`` bounds its value at one time step, ``acc`` bounds
every partial sum of it over the steps (what a membrane or accumulator integrating it can
reach). A spike tensor has ``acc = [0, most spikes]`` and, by its neurons' kind, ``step =
[0, 1]`` (unit spikes), ``[-1, 1]`` (signed) or ``[0, L]`` (a number on weighted lines);
analog and weighted input codes are presented once, so both are the code range. The step
range of a spike tensor is also how it is carried (`SpikeFormat`). The bounds are sound,
not tight:
a linear layer's bound is the sum over its inputs of the extreme terms, and partial sums
inside one step (a scatter that has added some rows but not all) stay inside it too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from snncc import ops as o
from snncc.intmath import signed_bits, unsigned_bits
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

    def __mul__(self, other: Interval) -> Interval:
        """The products of a value in this interval and one in `other`."""
        ends = [a * b for a in (self.lo, self.hi) for b in (other.lo, other.hi)]
        return Interval(min(ends), max(ends))

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

    @property
    def format(self) -> SpikeFormat:
        """How a spike train's lanes carry it (a bug to ask of a current)."""
        assert self.spikes, "currents have no spike format"
        return SpikeFormat.of(self.step)


@dataclass(frozen=True)
class SpikeFormat:
    """The lanes of a spike train, by the kind of neuron that sends it: ``UNIT`` spikes
    (one bit), ``SIGNED`` ±1 spikes (two bits, two's complement), or a number of spikes
    on ``LINES`` weighted lines (line j weighs 2^j). `kind` is the engines' SPIKE
    parameter."""

    kind: int
    bits: int

    UNIT: ClassVar[int] = 0
    SIGNED: ClassVar[int] = 1
    LINES: ClassVar[int] = 2

    @staticmethod
    def of(step: Interval) -> SpikeFormat:
        """The format of spikes whose value at one step lies in `step`."""
        if step.lo < 0:
            assert step == Interval(-1, 1), step
            return SpikeFormat(SpikeFormat.SIGNED, 2)
        if step.hi <= 1:
            return SpikeFormat(SpikeFormat.UNIT, 1)
        return SpikeFormat(SpikeFormat.LINES, unsigned_bits(step.hi))

    @property
    def unit(self) -> bool:
        return self.kind == SpikeFormat.UNIT

    @property
    def line_bits(self) -> int:
        """Bits of a line index (at least one)."""
        return max(1, (self.bits - 1).bit_length()) if self.kind == SpikeFormat.LINES else 1


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
    if op.weighted:  # the code at once, on weighted lines
        return ValueRange(Interval(0, op.hi - op.lo), Interval(0, op.hi - op.lo), spikes=True)
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
    """dP(t) = S_A(t).C_B(t) + C_A(t-1).S_B(t), K terms of each (unit spikes: at most
    K (L_B + L_A)); partial sums C_A.C_B. Every term's interval holds 0, so a partial
    sum of the terms (an engine's accumulator within a step) stays inside."""
    a, b = ins
    k = shapes[0][-1]
    return ValueRange((a.step * b.acc + a.acc * b.step).times(k), (a.acc * b.acc).times(k),
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


_NEURON_STEP = {"if": lambda levels: Interval(0, 1), "signed": lambda levels: Interval(-1, 1),
                "multi": lambda levels: Interval(0, levels)}


def _neuron(n: Node, ins: list[ValueRange], shapes) -> ValueRange:
    """Counts 0..L at every step (a signed neuron's net count never goes negative)."""
    op = op_of(n, o.Neuron)
    return ValueRange(_NEURON_STEP[op.mode](op.levels), Interval(0, op.levels), spikes=True)


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
