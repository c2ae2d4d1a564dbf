"""The hardware design the Verilog backend emits: buffers, engines, tables, schedule.

Python decides everything here (which RAMs exist, their widths and depths, how each
engine is parameterized and wired); the templates only format it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from snncc.ir import Graph, Node

from .tables import addr_bits

Param = tuple[str, int | str]


def ident(name: str) -> str:
    """A Verilog identifier fragment from an IR value name."""
    return re.sub(r"\W+", "_", name).strip("_") or "v"


def hex_word(value: int, bits: int) -> str:
    """`value` as a two's-complement hex word of `bits` bits, for $readmemh."""
    return format(int(value) & ((1 << bits) - 1), f"0{(bits + 3) // 4}x")


@dataclass
class Buffer:
    """One SNN value held in a RAM of the top. Its producer writes it during a step, then
    its consumers read it; engines run one at a time, so one read port suffices."""

    index: int
    node: Node
    width: int
    depth: int
    activity: int | None = None  # bit of the schedule's `active` vector, if consumers need it
    data: str = ""  # the net consumers read
    readers: list[tuple[str, str]] = field(default_factory=list)  # (busy net, address net)
    writer: str = ""  # instance name of the producer ("" for the input loader)

    @property
    def name(self) -> str:
        return f"b{self.index}"

    @property
    def aw(self) -> int:
        return addr_bits(self.depth)


@dataclass
class Table:
    """A combinational table in the top: the address map of a layout op chain."""

    name: str
    width: int
    depth: int
    file: str
    addr: str
    data: str
    comment: str

    @property
    def aw(self) -> int:
        return addr_bits(self.depth)


@dataclass
class Engine:
    """One layer's engine: a parameterized library module wired into the top."""

    index: int
    node: Node
    module: str
    params: list[Param]
    ports: list[tuple[str, str]]

    @property
    def name(self) -> str:
        return f"u{self.index}_{ident(self.node.name)}"

    @property
    def comment(self) -> str:
        return f"{self.node.origin} ({type(self.node.op).__name__} {self.node.name})"


@dataclass
class Probe:
    """A neuron layer whose spike counts the testbench reads back."""

    node: Node
    engine: int
    neurons: int
    aw: int
    bits: int


@dataclass
class Design:
    """Everything the templates need to write the top, the testbench and the Makefile."""

    graph: Graph
    steps: int
    step_bits: int
    engines: list[Engine]
    buffers: list[Buffer]
    tables: list[Table]
    wires: list[tuple[str, int]]  # engine-side nets: (name, width)
    files: dict[str, str]  # path under verilog/ -> contents ($readmemh files)
    probes: list[Probe]
    input_buffer: Buffer
    input_spiking: bool
    logits: int
    logit_bits: int
    readout_engine: int
    schedule: list[str]  # per step: {active, run} as hex words

    @property
    def tracked(self) -> int:
        """Values whose activity the schedule tracks."""
        return sum(b.activity is not None for b in self.buffers)

    @property
    def engine_bits(self) -> int:
        """Bits of the controller's engine index (holds the engine count)."""
        return max(1, len(self.engines).bit_length())

    @property
    def probe_bits(self) -> int:
        return addr_bits(len(self.probes))

    @property
    def probe_aw(self) -> int:
        return max((p.aw for p in self.probes), default=1)

    @property
    def count_bits(self) -> int:
        return max((p.bits for p in self.probes), default=1)
