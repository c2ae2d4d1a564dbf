"""What the templates format: buffers, constant arrays, kernel calls (all numbers computed).

The emitted top function holds one flat array per value (a ``Buffer``) and one per
state (membranes, spike counts, accumulators); it steps through time and, at every step
inside a layer's activity window, calls that layer's kernel (a ``Call``). Weights,
thresholds and index tables are ``Const`` arrays in one header per layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Buffer:
    """A flat array in the top function: a value (one step of it) or a state."""

    name: str
    ctype: str
    size: int
    comment: str = ""
    partition: str = ""  # the ARRAY_PARTITION clause, e.g. "cyclic factor=4"
    reset: bool = False  # cleared before the first step


@dataclass
class Const:
    """A constant array in a weights header (a ROM in hardware)."""

    name: str
    ctype: str
    values: np.ndarray  # integer, in the C array's shape
    comment: str = ""
    partition: str = ""


@dataclass
class Call:
    """One kernel call per step inside ``window`` (inclusive); ``close`` clears a buffer
    at the step after the window, when consumers read it later."""

    kernel: str
    targs: list[str]
    args: list[str]
    window: tuple[int, int]
    close: Buffer | None = None
    first: int | None = None  # the guard the template prints: t >= first (None: no bound)
    last: int | None = None  # t <= last
    close_at: int = 0  # the step at which `close` is cleared
    reads: list[Buffer] = field(default_factory=list, repr=False)  # for the window analysis
    writes: Buffer | None = field(default=None, repr=False)


@dataclass
class Layer:
    """One IR node in the emitted code."""

    name: str  # the IR node
    ident: str  # its C identifier
    origin: str  # the ONNX node it came from
    summary: str  # what it is, for the comment above its call
    calls: list[Call] = field(default_factory=list)
    consts: list[Const] = field(default_factory=list)
    state: list[Buffer] = field(default_factory=list)
    finish: list[Call] = field(default_factory=list)  # after the time loop
    header: str = ""  # weights/<header>.h when the layer has constants


@dataclass
class Project:
    """Everything the templates need to write the HLS project."""

    model: str  # C identifier: top function and file stem
    source: str
    steps: int
    input: Buffer
    input_lo: int
    input_hi: int
    logits: Buffer
    counts: Buffer
    layers: list[Layer]
    values: list[Buffer]
    neuron_table: list[dict]  # name, origin, offset, size, shape, levels (testbench)
    typedefs: dict[str, str]  # interface types
    headers: list[str] = field(default_factory=list)  # kernel headers beyond snn_kernels.h
    spikes: str = "spikes (0/1)"  # what the spike values carry, for a comment
    lanes: dict[str, int] = field(default_factory=dict)  # unroll factor by synapse, neuron
