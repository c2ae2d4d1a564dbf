"""How the engines' lanes carry a spike train (the Verilog encoding of the core's spike
kinds, ``snncc.ranges``): one bit, two bits, or the bits of a number of spikes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from snncc.intmath import unsigned_bits
from snncc.ranges import Interval


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
        """The format of spikes whose value at one step lies in `step` (a spike train's
        ``ValueRange.step``)."""
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
