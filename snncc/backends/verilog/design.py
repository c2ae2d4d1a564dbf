"""The hardware design the Verilog backend emits: buffers, ports, engines, schedule.

Python decides everything here (which RAMs exist, their row and lane widths, how each
engine is parameterized and wired); the templates only format it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from snncc.ir import Graph, Node

from .layout import Layout

Param = tuple[str, int | str]

# One at a time, a reader gets a twin of a buffer's RAM (`share_reads`) only if the buffer
# holds at most this many bits (an iCE40 block RAM; 22 xc7 LUTRAM cells): the inputs of
# the bundled example's q, k and v layers (16 x 32 bits) save about 1,700 cycles with
# twins; a twin of a residual sum (16 x 992 bits) would save about 130 for some 2,300
# flip-flops (its read register) and 166 LUTRAM cells.
TWIN_MAX_BITS = 4096
OpT = TypeVar("OpT")


def op_of(n: Node, kind: type[OpT]) -> OpT:
    """The node's op, as the kind the caller handles (a bug if it is not)."""
    assert isinstance(n.op, kind), (n.name, n.op)
    return n.op


def ident(name: str) -> str:
    """A Verilog identifier fragment from an IR value name."""
    return re.sub(r"\W+", "_", name).strip("_") or "v"


def addr_bits(depth: int) -> int:
    """Bits of an index into `depth` entries (at least one)."""
    return max(1, (int(depth) - 1).bit_length())


def hex_word(value: int, bits: int) -> str:
    """`value` as a two's-complement hex word of `bits` bits, for $readmemh."""
    return format(int(value) & ((1 << bits) - 1), f"0{(bits + 3) // 4}x")


def _hex_text(v: np.ndarray, bits: int) -> np.ndarray:
    """[n, digits + 1] ASCII: the hex digits of the words of v (1-D, up to 64 bits), each
    row ending in a line break. Integers at least `bits` wide are read in their own width
    (two's complement keeps the low bits); the words are narrowed to the smallest
    unsigned type that holds them, and written a digit (a column) at a time."""
    if v.dtype.kind in "iu" and v.dtype.itemsize * 8 >= bits:
        u = v.view(np.dtype(f"u{v.dtype.itemsize}"))
    else:
        u = v.astype(np.int64).view(np.uint64)
    narrow = np.dtype(f"u{min(b for b in (1, 2, 4, 8) if 8 * b >= bits)}")
    u = u.astype(narrow, copy=False) & narrow.type((1 << bits) - 1)
    digits = (bits + 3) // 4
    text = np.empty((len(u), digits + 1), np.uint8)
    for k in range(digits):
        text[:, k] = _HEX[(u >> narrow.type(4 * (digits - 1 - k))) & narrow.type(15)]
    text[:, -1] = ord("\n")
    return text


_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)


def hex_words(values: np.ndarray, bits: int) -> list[str]:
    """`hex_word` of every value (C order), at numpy speed for up to 64 bits."""
    v = np.asarray(values).ravel()
    if bits > 64 or v.size == 0:
        return [hex_word(x, bits) for x in v]
    chars = np.ascontiguousarray(_hex_text(v, bits)[:, :-1])
    return chars.view(f"S{chars.shape[1]}").ravel().astype(str).tolist()


def hex_text(values: np.ndarray, bits: int) -> np.ndarray:
    """`hex_word` of every value (C order), one a line (nothing for none): the bytes of
    "\\n".join(hex_words(values, bits)) + "\\n" as a uint8 array (to write as it is)."""
    v = np.asarray(values).ravel()
    if bits > 64 or v.size == 0:
        return np.frombuffer("".join(w + "\n" for w in hex_words(v, bits)).encode(), np.uint8)
    return _hex_text(v, bits).ravel()


def hex_lines(values: np.ndarray, bits: int) -> str:
    """`hex_text` as a string."""
    return hex_text(values, bits).tobytes().decode("ascii")


def hex_row(values: np.ndarray, bits: int) -> str:
    """A row of lanes as one word: lane 0 in the low bits."""
    word = 0
    for k, v in enumerate(np.asarray(values).ravel()):
        word |= (int(v) & ((1 << bits) - 1)) << (k * bits)
    return hex_word(word, bits * max(np.asarray(values).size, 1))


def hex_rows(rows: np.ndarray, bits: int) -> list[str]:
    """`hex_row` of every row of rows [n, lanes], at numpy speed for lanes of up to 64
    bits: each row's lanes as one bit string (lane 0 lowest), packed into bytes and
    written as hex, most significant first."""
    rows = np.asarray(rows)
    if bits > 64 or rows.size == 0 or rows.dtype == object:
        return [hex_row(r, bits) for r in rows]
    n, lanes = rows.shape
    u = np.ascontiguousarray(rows, np.int64).view(np.uint64).astype("<u8")  # little-endian
    nbytes = (bits + 7) // 8  # the low bytes that hold a lane's bits
    low = np.ascontiguousarray(u.view(np.uint8).reshape(n, lanes, 8)[:, :, :nbytes])
    bit = np.unpackbits(low.ravel(), bitorder="little").reshape(n, lanes, 8 * nbytes)
    digits = (bits * lanes + 3) // 4
    flat = np.zeros((n, 8 * ((digits + 1) // 2)), np.uint8)
    flat[:, :bits * lanes] = bit[:, :, :bits].reshape(n, -1)
    packed = np.packbits(flat, axis=-1, bitorder="little")[:, ::-1]  # high byte first
    hexes = np.frombuffer(b"0123456789abcdef", np.uint8)
    chars = np.empty((n, 2 * packed.shape[1]), np.uint8)
    chars[:, 0::2], chars[:, 1::2] = hexes[packed >> 4], hexes[packed & 15]
    chars = np.ascontiguousarray(chars[:, chars.shape[1] - digits:])
    return chars.view(f"S{digits}").ravel().astype(str).tolist()


@dataclass
class Copy:
    """Pipelined: a reader's own RAM of a buffer, every copy written together. It holds
    `banks` of the producer's writes, counted by the steps its value is active at (the
    steps it writes, a count run across inferences): the write of count i in bank
    i mod `banks` (address {bank, row}). The producer must not overwrite a write the
    reader has still to read: its step waits for the reader to have got past the step
    of write i - `banks` (`Hold`)."""

    enable: str  # the reader's read enable
    raddr: str  # Verilog: {the reader's bank, its row}
    waddr: str  # Verilog: {the producer's bank, its row}
    data: str  # the read data net
    banks: int
    level: int  # the reader's level
    reader: int  # the reader's engine index
    we: str = ""  # its write enable (the buffer's, at the steps its value is active)


@dataclass
class Twin:
    """One at a time: a copy of a buffer's RAM, written with it by the producer, for
    readers that run beside those of the buffer's RAM (a read port of its own,
    `share_reads`)."""

    data: str  # the read data net
    readers: list[tuple[str, str]] = field(default_factory=list)  # (enable, row address)


@dataclass
class Buffer:
    """One SNN value held in a RAM of the top, a row of lanes per word. Its producer
    writes it during a step, then its consumers read it through their ports; one at a
    time, readers of a RAM run one after another (one read port) and readers that would
    otherwise wait for each other read twins of it (`twins`, `share_reads`). Pipelined
    (`Design.pipelined`), engines run concurrently and every reader has a banked copy of
    its own (`copies`)."""

    index: int
    node: Node
    layout: Layout
    width: int  # bits per lane
    activity: int | None = None  # bit of the schedule's `active` vector, if needed
    data: str = ""  # the net ports read (a row)
    readers: list[tuple[str, str]] = field(default_factory=list)  # (enable, row address)
    writer: str = ""  # instance name of the producer ("" for the input loader)
    writer_level: int | None = None  # pipelined: the producer's level (None: the input)
    writer_engine: int | None = None  # pipelined: the producer's engine index
    copies: list[Copy] = field(default_factory=list)  # pipelined, one per reader
    twins: list[Twin] = field(default_factory=list)  # one at a time: more RAMs, `Twin`

    @property
    def name(self) -> str:
        return f"b{self.index}"

    @property
    def rows(self) -> int:
        return self.layout.rows

    @property
    def lanes(self) -> int:
        return self.layout.lanes

    @property
    def aw(self) -> int:
        return addr_bits(self.rows)

    @property
    def word(self) -> int:
        return self.lanes * self.width

    def ram_aw(self, banks: int) -> int:
        """Address bits of a RAM of `banks` banks: {bank, row}."""
        return self.aw + (addr_bits(banks) if banks > 1 else 0)

    def ram_depth(self, banks: int) -> int:
        """Words of a RAM of `banks` banks (the last only as deep as the rows)."""
        return (banks - 1) * (1 << self.aw) + self.rows


@dataclass
class Port:
    """An snn_port instance between an engine input and the buffer it reads."""

    name: str
    buffer: Buffer
    params: list[Param]
    ports: list[tuple[str, str]]
    comment: str
    engine: int = -1  # the engine reading through it
    ram: int = 0  # one at a time: the RAM it reads (0: the buffer's, j: its twin j - 1)


@dataclass
class Engine:
    """One layer's engine: a parameterized library module wired into the top."""

    index: int
    node: Node
    module: str
    params: list[Param]
    ports: list[tuple[str, str]]
    reads: tuple[str, ...] = ()  # the values of the buffers it reads

    @property
    def name(self) -> str:
        return f"u{self.index}_{ident(self.node.name)}"

    @property
    def comment(self) -> str:
        return f"{self.node.origin} ({type(self.node.op).__name__} {self.node.name})"


@dataclass
class Hold:
    """Pipelined: a reader holding a producer back. At a step t at which the producer
    writes, the reader must have got past the step of the write `banks` writes earlier,
    whose bank step t overwrites: `dist[t]` steps earlier (absolute steps, inference x
    steps + step; 0: no condition), which the top checks by counting the writes each
    has got past (`near`)."""

    reader: int
    banks: int
    near: str  # Verilog: the reader allows the producer's step
    dist: list[int]  # per step of an inference


@dataclass
class Stream:
    """One at a time: an engine (a neuron layer, an add, a TD max pool's counting phase)
    reading a buffer, its rows in order, a request a cycle at most, while its producer
    writes it (the two started together), asking for row r only once the producer has
    written rows 0..r of this step (`avail`: rows written since the producer's start,
    every row once it is done or when it does not run). An add streams both of its
    inputs' producers (two streams; it asks for row r once both have written it)."""

    engine: int
    producer: int
    buffer: Buffer
    avail: str  # the net of the rows the engine may read
    bits: int  # its width: the engine's row index bits and one more
    tag: str = ""  # the engine's second stream: "_b"

    @property
    def reg(self) -> str:
        """The prefix of the top's registers counting the rows."""
        return f"s{self.engine}{self.tag}"


@dataclass
class Silence:
    """One at a time: silent runs skipped (snn_ctrl's SKIP and `quiet`). Each value an
    engine may read as silent has a dynamic bit, `live`, cleared at each step's start
    and set as its engine writes it with a non-zero word (a spike train) or, started,
    sees an input live (a current); an engine sees a value as possibly non-zero when
    the schedule says it is active and it is live (streaming the rows of a producer:
    when that one was not skipped). An engine of `skip` whose inputs are all unseen
    when it would start is not started (`quiet`), and its value stays silent."""

    skip: int  # snn_ctrl's SKIP mask
    lives: list[tuple[str, str, str]]  # (register, the condition that sets it, buffer)
    sights: list[tuple[str, str]]  # (an engine's validity input, its expression)
    quiet: list[str]  # per engine: its inputs are all silent (1'b0: never skipped)
    ons: list[int] = field(default_factory=list)  # engines with a `started` register

    @property
    def param(self) -> str:
        return f"{len(self.quiet)}'h{self.skip:x}"


@dataclass
class Flow:
    """Pipelined: an engine's sequencer (snn_flow). It runs its own time steps in order,
    each as soon as every producer has finished that step and every reader has got past
    the step of the write whose bank it is about to overwrite (`holds`)."""

    engine: int
    file: str  # its schedule: per step {fields, run}
    width: int
    assigns: list[tuple[str, str]]  # (slice of `active`, slice of its schedule word)
    producers: list[int]
    holds: list[Hold]  # one per copy of its value (its readers)
    # bank counters: (name, bits, banks, the schedule bit that counts a step)
    counters: list[tuple[str, int, int, str]] = field(default_factory=list)
    # writes counters (modulo 2^write_bits): (name, the schedule bit that counts a step)
    writes: list[tuple[str, str]] = field(default_factory=list)

    @property
    def readers(self) -> list[tuple[int, int]]:
        """(engine, banks of its copy) of every copy of its value."""
        return [(h.reader, h.banks) for h in self.holds]

    def ready(self) -> str:
        """Verilog: the producers and readers allow the step (n<engine>, t<engine>; the
        readers by the writes counters)."""
        me = f"n{self.engine}, t{self.engine}"
        terms = [f"later(n{p}, t{p}, {me})" for p in self.producers]
        terms += [f"({h.near})" for h in self.holds]
        return " && ".join(terms) or "1'b1"


@dataclass
class Probe:
    """A neuron layer whose spike counts the testbench reads back."""

    node: Node
    engine: int
    layout: Layout
    bits: int
    name: str = ""  # its layer name (``ir.layer_names``), as the testbench prints it
    row_bits: int = 0  # bits of its read-back row address (0: those of the layout's rows)

    @property
    def label(self) -> str:
        """The layer name inside a $display string: one word, nothing a format reads."""
        text = re.sub(r"\s", "_", self.name or self.node.name)
        return text.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")

    @property
    def neurons(self) -> int:
        return self.layout.size

    def places(self) -> np.ndarray:
        """(row, lane) of every neuron, in logical order, as [neurons, 2]."""
        pos = self.layout.positions().ravel()
        return np.stack([pos // self.layout.lanes, pos % self.layout.lanes], axis=1)


@dataclass
class Design:
    """Everything the templates need to write the top, the testbench and the Makefile."""

    graph: Graph
    steps: int
    step_bits: int
    engines: list[Engine]
    buffers: list[Buffer]
    ports: list[Port]
    wires: list[tuple[str, int]]  # engine- and port-side nets: (name, width)
    files: dict[str, str]  # path under verilog/ -> contents ($readmemh files)
    probes: list[Probe]
    input_buffer: Buffer
    input_spiking: bool
    code_bits: int
    readout: Engine
    readout_layout: Layout
    logit_bits: int
    schedule: list[str]  # per step (pipelined: per super-step): {active, run} as hex words
    tracked: int  # bits of the schedule's `active` vector
    pipelined: bool = False
    levels: list[int] = field(default_factory=list)  # pipelined: per engine
    flows: list[Flow] = field(default_factory=list)  # pipelined: per engine
    streams: list[Stream] = field(default_factory=list)  # one at a time: streamed reads

    # pipelined: inferences loaded and not yet sent, at most, and the bits of the
    # inference counters (engines are never more than that many inferences apart)
    in_flight: int = 6
    inference_bits: int = 4
    write_bits: int = 1  # pipelined: bits of the writes counters
    silence: Silence | None = None  # one at a time: silent runs skipped
    # one at a time: an add -> the neuron layer reading one RAM with it in lockstep
    # (`lockstep`): the two ask for the same rows in the same cycles, so neither waits
    paired: dict[int, int] = field(default_factory=dict)

    @property
    def in_flight_slots(self) -> int:
        """Pipelined: entries of `loaded_at`, indexed by the low bits of an inference."""
        return 1 << addr_bits(self.in_flight)

    def waits(self) -> list[tuple[int, int]]:
        """One at a time, per engine: (the engines of the step that must be done before
        it starts, those that must have started), as bit masks: `_masks` (its producers,
        and the engines before it sharing a RAM with it), the RAMs as `share_reads` left
        them. It runs beside every other engine (a neuron layer of a silent input: from
        the step's start)."""
        out: list[tuple[int, int]] = []
        rams = self.rams()
        streamed = _streamed(self.streams)
        for e in self.engines:
            out.append(_masks(self, e, out, rams, streamed))
        return out

    def rams(self) -> list[set[tuple[int, int]]]:
        """One at a time, per engine: the RAMs its ports read, as (buffer index, RAM)."""
        out: list[set[tuple[int, int]]] = [set() for _ in self.engines]
        for p in self.ports:
            out[p.engine].add((p.buffer.index, p.ram))
        return out

    def wait_params(self) -> list[tuple[str, str]]:
        """snn_ctrl's WAIT and SWAIT: engine k's masks at bits k*NE .. k*NE+NE-1."""
        n = len(self.engines)
        wait = start = 0
        for k, (w, s) in enumerate(self.waits()):
            wait |= w << (k * n)
            start |= s << (k * n)
        return [("WAIT", f"{n * n}'h{wait:x}"), ("SWAIT", f"{n * n}'h{start:x}")]

    @property
    def in_flight_index(self) -> str:
        """Pipelined: the bits of an inference counter that index `loaded_at`."""
        bits = addr_bits(self.in_flight)
        return "[0]" if bits == 1 else f"[{bits - 1}:0]"

    @property
    def reader_steps(self) -> list[tuple[int, str]]:
        """Pipelined: (reader, the step it is at) of every reader of the input codes."""
        return [(j, f"t{c.reader}") for j, c in enumerate(self.input_buffer.copies)]

    @property
    def logits(self) -> int:
        return self.readout_layout.size

    @property
    def probe_bits(self) -> int:
        return addr_bits(len(self.probes))

    @property
    def probe_row_bits(self) -> int:
        return max((p.row_bits or addr_bits(p.layout.rows) for p in self.probes), default=1)

    @property
    def probe_lane_bits(self) -> int:
        return max((addr_bits(p.layout.lanes) for p in self.probes), default=1)

    @property
    def probe_lanes(self) -> int:
        return max((p.layout.lanes for p in self.probes), default=1)

    @property
    def probe_rows(self) -> int:
        return max((p.layout.rows for p in self.probes), default=1)

    @property
    def count_bits(self) -> int:
        return max((p.bits for p in self.probes), default=1)


def _masks(d: Design, e: Engine, before: list[tuple[int, int]],
           rams: list[set[tuple[int, int]]], streamed: dict[int, set[int]]
           ) -> tuple[int, int]:
    """One at a time: engine e's WAIT and SWAIT masks (`before`: those of the engines
    before it). An engine reads the RAMs of its ports and writes its buffer (its state
    is its own), so it waits for its producers (read after write: done; the one whose
    rows it streams, `streamed`, started) and for the engines before it that read a RAM
    it reads (one read port) or the buffer it writes (write after read; none in
    topological order, where every reader follows its producer), and for no other.
    Streaming the rows of an engine that starts with its own producer, it takes that
    one's masks too (snn_ctrl starts an engine with those of its SWAIT mask that can
    start, not knowing their own SWAIT). An add does not wait for the neuron layer it
    reads a RAM with in lockstep (`Design.paired`)."""
    wait = start = 0
    for j in d.engines[:e.index]:
        if (rams[j.index] & rams[e.index] and d.paired.get(e.index) != j.index
                or e.node.name in j.reads):
            wait |= 1 << j.index
        if j.node.name in e.reads:  # a producer
            if j.index in streamed.get(e.index, ()):
                start |= 1 << j.index
                if before[j.index][1]:  # a producer that starts with its own
                    wait |= before[j.index][0]
                    start |= before[j.index][1]
            else:
                wait |= 1 << j.index
    return wait, start


def lockstep(d: Design, run: list[np.ndarray]) -> None:
    """One at a time: keep the pairs of `Design.paired` whose two engines start in the
    same cycle at every step both run (`run`: per engine, per step): the add waits for
    the same engines of the step as the neuron layer (not for it), and starts with the
    same ones (and that one). Reading their common RAM a row a cycle, each asking for
    row r once the producer they both stream has written it (the lowering pairs them
    only where the add's other producer does not run), they then read the same row in
    the same cycle. A pair dropped leaves the add waiting for the neuron layer."""
    while True:
        waits = d.waits()
        bad = [a for a, n in d.paired.items() if not _together(waits, a, n, run)]
        if not bad:
            return
        for a in bad:
            del d.paired[a]


def _together(waits: list[tuple[int, int]], a: int, n: int, run: list[np.ndarray]) -> bool:
    (wa, sa), (wn, sn) = waits[a], waits[n]
    if wa >> n & 1:
        return False
    for t in np.flatnonzero(run[a] & run[n]):
        on = sum(1 << k for k, r in enumerate(run) if r[t])
        if wa & on != wn & on or sa & on & ~(1 << n) != sn & on:
            return False
    return True


def _streamed(streams: list[Stream]) -> dict[int, set[int]]:
    """Per engine: the producers whose rows it streams."""
    out: dict[int, set[int]] = {}
    for s in streams:
        out.setdefault(s.engine, set()).add(s.producer)
    return out


def _bits(mask: int) -> list[int]:
    return [j for j in range(mask.bit_length()) if mask >> j & 1]


def share_reads(d: Design) -> None:
    """One at a time: the RAM each port reads (`Port.ram`). An engine's ports reading a
    buffer read one RAM of it: the buffer's, or a twin whose readers so far are all done
    before the engine starts by its producers' order alone (every engine running: the
    engines it waits for and those ending before them, a streaming engine ending after
    its producer), so that waiting for them (one read port, `_masks`) costs nothing;
    else a new twin, a copy written with the buffer, and it runs beside them. The
    spiking input codes keep one RAM (one encoder): their readers wait for each other."""
    streamed = _streamed(d.streams)
    masks: list[tuple[int, int]] = []
    rams: list[set[tuple[int, int]]] = [set() for _ in d.engines]
    done_before: list[int] = []  # per engine: the engines done before it starts
    ends_by: list[int] = []  # ... those done when it is done
    held: dict[tuple[int, int], int] = {}  # a RAM's readers so far
    for e in d.engines:
        wait, start = _masks(d, e, masks, rams, streamed)
        before = 0
        for j in _bits(wait):
            before |= ends_by[j]
        for j in _bits(start):
            before |= done_before[j]
        ports: dict[int, list[Port]] = {}
        for p in d.ports:
            if p.engine == e.index:
                ports.setdefault(p.buffer.index, []).append(p)
        for group in ports.values():
            b = group[0].buffer
            ram = next((r for r in range(len(b.twins) + 1)
                        if held.get((b.index, r), 0) & ~before == 0), None)
            if ram is None and (b.data == "in_spikes" or b.rows * b.word > TWIN_MAX_BITS):
                ram = 0
            elif ram is None:
                b.twins.append(Twin(f"{b.name}_rdata{len(b.twins) + 1}"))
                ram = len(b.twins)
            for p in group:
                p.ram = ram
                if ram:
                    _move_reader(p, b, b.twins[ram - 1])
            held[(b.index, ram)] = held.get((b.index, ram), 0) | 1 << e.index
            rams[e.index].add((b.index, ram))
        masks.append(_masks(d, e, masks, rams, streamed))  # waits only on `before`
        done_before.append(before)
        ends = 1 << e.index | before
        for w in streamed.get(e.index, ()):
            ends |= ends_by[w]
        ends_by.append(ends)


def _move_reader(p: Port, b: Buffer, twin: Twin) -> None:
    """Port p reads `twin` instead of the buffer's RAM."""
    nets = dict(p.ports)
    reader = (nets["rd_en"], nets["rd_addr"])
    b.readers.remove(reader)
    twin.readers.append(reader)
    p.ports = [(k, twin.data if k == "rd_data" else v) for k, v in p.ports]
