"""Lower the SNN IR to a hardware design: one engine per layer, one RAM per value.

Every value an engine produces lives in a buffer RAM in the top, a row of lanes per word
(`layout.py`); an engine reads its inputs through ports that resolve the layout ops in
between. Widths come from the value ranges (`ranges.py`), tables from `tables.py`. One
function per op kind says how its engine is parameterized and wired.
"""

from __future__ import annotations

import numpy as np

from snncc import ops as o
from snncc.backends.parallel import DEFAULT, TREE_INPUT_BITS, HwConfig, outputs
from snncc.intmath import signed_bits, unsigned_bits
from snncc.ir import Graph, Node, layer_names
from snncc.ranges import value_ranges
from snncc.schedule import activity, total_steps

from .design import (
    Buffer,
    Copy,
    Design,
    Engine,
    Flow,
    Hold,
    Param,
    Port,
    Probe,
    Silence,
    Stream,
    addr_bits,
    hex_row,
    hex_rows,
    hex_word,
    hex_words,
    lockstep,
    op_of,
    share_reads,
)
from .layout import (
    CHANNELS_LAST,
    Layout,
    View,
    assign_layouts,
    chunked,
    natural,
    reduce_view,
    reduction_axes,
    resolve,
    view_of,
)
from .silence import silence, skippable
from .spikes import SpikeFormat
from .tables import ThresholdTable, conv_weight_rows, tap_range, taps, threshold_table

# A threshold table of at most this many words is constants in logic (read
# combinationally); a longer one is a block-RAM ROM.
ASYNC_TABLE_WORDS = 4
# ... and at most this many words of a folded neuron layer's table (words x chunks): a
# threshold bit is then a function of the chunk and the level that a few LUTs make, where
# a registered ROM would cost a LUT and a flip-flop per bit of its wide word
ASYNC_FOLDED_WORDS = 16
# snn_neuron's MODE parameter per neuron kind
_NEURON_MODES = {"if": 0, "signed": 1, "multi": 2}


def _size(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape, dtype=np.int64))


def _tap_words(entries: list[tuple[bool, int]], bits: int) -> list[str]:
    """{valid, value} words of a tap table whose values take `bits` bits."""
    return [hex_word((int(ok) << bits) | v, bits + 1) for ok, v in entries]


def _map_words(view: View, vrw: int, gb: int, ow: int, aw: int) -> list[str]:
    """A port's map table: {buffer row, lane offset} at {view row, segment}."""
    words = ["0"] * (1 << (vrw + gb))
    rows = np.asarray(view.rows[:view.vrows, :view.segments], np.int64)
    offsets = np.asarray(view.offsets[:view.vrows, :view.segments], np.int64)
    at = (np.arange(view.vrows)[:, None] << gb) | np.arange(view.segments)[None, :]
    for a, w in zip(at.ravel().tolist(), hex_words((rows << ow) | offsets, aw + ow),
                    strict=True):
        words[a] = w
    return words


class _Builder:
    """Accumulates the design while walking the graph in topological order."""

    def __init__(self, graph: Graph, hw: HwConfig = DEFAULT):
        self.graph = graph
        self.hw = hw
        self.pipelined = hw.pipeline
        self.levels = wavefront(graph) if hw.pipeline else {}
        self.node: Node | None = None  # the node whose engine is being built
        # the fields of the schedule's `active` vector, (low bit, bits, value, owner,
        # banks), by key: a value's activity (one bit per value; pipelined, one per
        # value and owner, at the step its owner is at: a reader, or the producer, whose
        # writes and bank counters it gates) or, pipelined, the bank its owner is at in a
        # copy of `banks` banks of the value (a counter: `bank` set)
        self.fields: list[tuple[int, int, str, int, int]] = []
        self.field_of: dict[tuple, tuple[int, int]] = {}
        self.keys: list[tuple] = []  # of the fields, in order
        self.banked: set[tuple] = set()  # keys of the bank fields
        self.tables: dict[tuple, list[int]] = {}  # hold key -> its distance per step
        self.counted: set[tuple[int, str]] = set()  # (engine, value): a writes counter
        self.in_flight = hw.in_flight
        self.n_levels = max(self.levels.values(), default=0) + 1
        self.reads: dict[int, set[str]] = {}  # engine -> the buffers it reads
        self.inputs: dict[int, set[str]] = {}  # ... in every design (`Engine.reads`)
        self.streams: list[Stream] = []
        self.paired: dict[int, int] = {}  # one at a time: `Design.paired` (candidates)
        # one at a time: (engine, buffer, net) of the engines' validity inputs (`sees`)
        self.sights: list[tuple[int, Buffer, str]] = []
        # one at a time: the engines whose rows' write times the estimate knows (a cost a
        # row, or a streamed engine's own, from its producer's)
        self.row_timed: set[int] = set()
        self.ranges = value_ranges(graph)
        self.names = layer_names(graph)
        self.layouts = assign_layouts(graph)
        self.steps = total_steps(graph)
        self.activity = activity(graph, self.steps)
        # engines are at most in_flight + 1 inferences apart: the inference counters
        # compare by the sign of a difference, the writes counters likewise
        self.write_bits = ((self.in_flight + 2) * self.steps).bit_length() + 1
        self.engines: list[Engine] = []
        self.buffers: dict[str, Buffer] = {}
        self.ports: list[Port] = []
        self.wires: list[tuple[str, int]] = []
        self.files: dict[str, str] = {}
        self.probes: list[Probe] = []
        self.readout: Engine | None = None
        # one spike count width for every neuron layer, so the read-back rows line up
        self.count_bits = max([unsigned_bits(op_of(n, o.Neuron).levels)
                               for n in graph.ops(o.Neuron)] + [2])
        self.readout_layout: Layout | None = None
        self.logit_bits = 0

    # ------------------------------------------------------------ plumbing
    @property
    def k(self) -> int:
        """Index of the engine being built."""
        return len(self.engines)

    def wire(self, name: str, width: int) -> str:
        self.wires.append((name, width))
        return name

    def file(self, name: str, words: list[str]) -> str:
        path = f"mem/{name}.hex"
        self.files[path] = "\n".join(words) + "\n"
        return path

    def buffer(self, n: Node, width: int) -> Buffer:
        b = Buffer(len(self.buffers), n, self.layouts[n.name], width)
        b.data = f"{b.name}_rdata"
        if self.pipelined and n.name in self.levels:
            b.writer_level, b.writer_engine = self.levels[n.name], self.k
        self.buffers[n.name] = b
        return b

    @property
    def level(self) -> int:
        """Pipelined: the level of the engine being built (0 otherwise)."""
        return self.levels.get(self.node.name, 0) if self.node is not None else 0

    def field(self, key: tuple, bits: int, value: str, owner: int, banks: int) -> str:
        """The slice of the schedule's `active` vector holding field `key`."""
        if key not in self.field_of:
            lo = sum(f[1] for f in self.fields)
            self.field_of[key] = lo, bits
            self.fields.append((lo, bits, value, owner, banks))
            self.keys.append(key)
        lo, bits = self.field_of[key]
        return f"active[{lo}]" if bits == 1 else f"active[{lo + bits - 1}:{lo}]"

    def valid(self, b: Buffer) -> str:
        """The schedule bit saying `b` is active (may be non-zero) at the step the engine
        being built is at."""
        reader = self.k if self.pipelined else -1
        net = self.field(("active", reader, b.node.name), 1, b.node.name, reader, 0)
        if not self.pipelined:
            b.activity = self.field_of[("active", reader, b.node.name)][0]
        return net

    def sees(self, b: Buffer, port: str) -> str:
        """The bit saying the engine being built reads `b` (at its port `port`) as possibly
        non-zero: pipelined, `valid`; one at a time, a net of its own, which `silence`
        makes the schedule's bit and the dynamic one (`Design.sights`)."""
        net = self.valid(b)
        if self.pipelined:
            return net
        name = self.wire(f"e{self.k}_{port}_valid", 1)
        self.sights.append((self.k, b, name))
        return name

    def active_bit(self, value: str, owner: int) -> str:
        """Pipelined: the schedule bit of engine `owner` saying `value` is active at its
        step (the steps its producer writes it; they count its banks)."""
        return self.field(("active", owner, value), 1, value, owner, 0)

    def bank(self, banks: int, owner: int, value: str) -> str:
        """The schedule field with the bank of engine `owner` in a copy of `value` with
        `banks` banks: a counter of the steps it has got past at which `value` is
        active, modulo `banks`."""
        self.active_bit(value, owner)
        key = ("bank", banks, owner, value)
        self.banked.add(key)
        return self.field(key, addr_bits(banks), value, owner, banks)

    def banks(self, b: Buffer) -> int:
        """Pipelined: the banks of a copy of `b` for the engine being built: enough of its
        producer's writes for this reader to lag its producer by its share (the levels
        between them out of all the levels) of `in_flight - 1` inferences, rounded up,
        and one more (the one being written)."""
        assert b.writer_level is not None
        writes = int(np.count_nonzero(self.activity.active[b.node.name]))
        share = (self.in_flight - 1) * (self.level - b.writer_level) * writes
        return 1 + -(-share // self.n_levels)

    def hold(self, b: Buffer, banks: int) -> None:
        """Pipelined: the hold of a copy of `b` with `banks` banks on its producer: the
        producer and the reader count the steps they have got past at which `b` is
        active (its writes; counters in the top), and at a step it writes, the producer
        waits until the reader has got past the write `banks` writes earlier (its count
        less than `banks` behind). For the estimate, the same as a distance per step (in
        absolute steps, back to the step of that write; 0 at steps it does not write)."""
        assert b.writer_engine is not None
        for owner in (b.writer_engine, self.k):
            self.active_bit(b.node.name, owner)
            self.counted.add((owner, b.node.name))
        key = ("hold", banks, b.writer_engine, b.node.name)
        if key not in self.tables:
            on = np.flatnonzero(self.activity.active[b.node.name])
            dist = [0] * self.steps
            for j, t in enumerate(on):
                back = j - banks  # the write `banks` earlier: inference back // len(on)
                dist[int(t)] = int(t) - int(on[back % len(on)]) - self.steps * (back // len(on))
            self.tables[key] = dist

    def lane_bits(self, b: Buffer) -> int:
        """Bits per lane of what readers of `b` see (spiking input codes: 1)."""
        return 1 if b.data == "in_spikes" else b.width

    def spikes(self, value: str) -> SpikeFormat:
        """How the spike train `value` (or the buffered value behind it) is carried."""
        r = self.ranges[value]
        assert r.spikes, f"{value} is a current, not a spike train"
        return SpikeFormat.of(r.step)

    def read(self, port: str, value: str, wanted: Layout, view: View | None = None,
             bias: int = 0) -> tuple[list[tuple[str, str]], Buffer]:
        """The engine's ports reading `value` as rows of `wanted` (a layout of its shape or
        of a broadcast of it), through an snn_port that resolves the layout ops between;
        or as `view` of its buffer, offsets biased by `bias` (snn_port's OB)."""
        k = self.k
        src, seen = view_of(self.graph, self.layouts, value, wanted)
        view = seen if view is None else view
        b = self.buffers[src]
        self.inputs.setdefault(k, set()).add(src)
        w = self.lane_bits(b)
        pre = f"e{k}_{port}"
        vrw, gb = addr_bits(view.vrows), addr_bits(view.segments)
        ow = addr_bits(b.lanes + bias)
        nets = {"req": self.wire(f"{pre}_req", 1), "row": self.wire(f"{pre}_row", vrw),
                "ack": self.wire(f"{pre}_ack", 1),
                "data": self.wire(f"{pre}_data", view.vlanes * w),
                "en": self.wire(f"{pre}_en", 1), "addr": self.wire(f"{pre}_addr", b.aw)}
        data = b.data
        if self.pipelined:  # a copy of the RAM (and of the encoder) per reader
            data = self.copy(b, nets["en"], nets["addr"])
        # the identity, a buffer's words in order (a chunked buffer: MAP 2, no table) or a
        # table of segments
        kind = 0 if view.identity else 2 if view.chunked else 1
        map_file = "none" if kind != 1 else self.file(
            f"{pre}_map", _map_words(view, vrw, gb, ow, b.aw))
        params: list[Param] = [
            ("MAP", kind), ("VD", view.vlanes), ("W", w),
            ("G", view.segments), ("S", view.segment), ("SD", b.lanes), ("VRW", vrw),
            ("BAW", b.aw), ("GB", gb), ("OW", ow), ("MAP_FILE", map_file)]
        if bias:
            params.append(("OB", bias))
        ports = [("clk", "clk"), ("rst", "rst"), ("req", nets["req"]), ("row", nets["row"]),
                 ("ack", nets["ack"]), ("data", nets["data"]), ("rd_en", nets["en"]),
                 ("rd_addr", nets["addr"]), ("rd_data", data)]
        how = ("identity" if kind == 0 else f"{view.segments} words in order" if kind == 2
               else f"{view.segments} x {view.segment} lanes")
        self.ports.append(Port(f"p{k}_{port}", b, list(params), ports,
                               f"{value} read from {src} ({how})", k))
        b.readers.append((nets["en"], nets["addr"]))
        return [(f"{port}_req", nets["req"]), (f"{port}_row", nets["row"]),
                (f"{port}_ack", nets["ack"]), (f"{port}_data", nets["data"])], b

    def timing(self) -> list[Param]:
        """IG, ILAT and GW of an engine streaming rows through the port last read (a
        request every G cycles, answered one cycle later, G + 2 through a map); none
        for an identity port (the engines' defaults)."""
        q = dict(self.ports[-1].params)
        if q["MAP"] == 0:
            return []
        g = int(q["G"])
        return [("IG", g), ("ILAT", g + 2), ("GW", addr_bits(g))]

    def copy(self, b: Buffer, enable: str, addr: str) -> str:
        """Pipelined: a copy of `b` for the engine being built, with as many banks as
        steps are in flight between its producer and it; returns the net the engine's
        port reads (the input codes: through an encoder of its own)."""
        j = len(b.copies)
        rdata = f"{b.name}_rdata{j}"
        self.reads.setdefault(self.k, set()).add(b.node.name)
        if b.writer_engine is None:  # the input codes: two banks, by inference
            b.copies.append(Copy(enable, f"{{n{self.k}[0], {addr}}}",
                                 f"{{n_load[0], {b.name}_waddr}}", rdata, 2, self.level,
                                 self.k, f"{b.name}_we"))
            return f"in_spikes{j}" if b.data == "in_spikes" else rdata
        banks, w = self.banks(b), b.writer_engine
        # written at the steps its value is active (a neuron also runs at others)
        run, on = self.activity.run[b.node.name], self.activity.active[b.node.name]
        we = (f"{b.name}_we" if np.array_equal(run, on)
              else f"{b.name}_we && {self.active_bit(b.node.name, w)}")
        if banks == 1:
            c = Copy(enable, addr, f"{b.name}_waddr", rdata, 1, self.level, self.k, we)
        else:
            c = Copy(enable, f"{{{self.bank(banks, self.k, b.node.name)}, {addr}}}",
                     f"{{{self.bank(banks, w, b.node.name)}, {b.name}_waddr}}",
                     rdata, banks, self.level, self.k, we)
        b.copies.append(c)
        self.hold(b, banks)
        return f"in_spikes{j}" if b.data == "in_spikes" else rdata

    def write(self, n: Node, width: int) -> list[tuple[str, str]]:
        """The engine's ports writing its output buffer, a row at a time."""
        b = self.buffer(n, width)
        return [("out_we", f"{b.name}_we"), ("out_waddr", f"{b.name}_waddr"),
                ("out_wdata", f"{b.name}_wdata")]

    def engine(self, n: Node, module: str, params: list, ports: list, clear: bool) -> Engine:
        k = self.k
        head = [("clk", "clk"), ("rst", "rst"), ("start", f"start[{k}]")]
        if clear:
            head.append(("clear", f"clear[{k}]" if self.pipelined else "go"))
        tail = [("done", f"done[{k}]")]
        e = Engine(k, n, module, params, head + ports + tail,
                   tuple(sorted(self.inputs.get(k, ()))))
        self.engines.append(e)
        if n.name in self.buffers:
            self.buffers[n.name].writer = e.name
        return e

    # ------------------------------------------------------------ the design
    def silence(self) -> Silence:
        """One at a time: silent runs skipped (`silence.silence`). The buffers read by
        the engines that are not neuron layers get activity bits: `quiet` and the live
        bits read them."""
        for e in self.engines:
            if e.module != "snn_neuron":
                for value in e.reads:
                    self.field(("active", -1, value), 1, value, -1, 0)
                    self.buffers[value].activity = self.field_of[("active", -1, value)][0]
        bits = {key[2]: lo for key, (lo, _) in self.field_of.items()
                if key[0] == "active" and key[1] == -1}
        return silence(self.engines, self.buffers, self.streams, self.sights, bits)

    def design(self) -> Design:
        enc = self.graph.ops(o.SpikeInput)[0]
        silence = None if self.pipelined else self.silence()
        engines, buffers = self.engines, list(self.buffers.values())
        tracked = sum(f[1] for f in self.fields)
        rows = []
        flows: list[Flow] = []
        if not self.pipelined:  # per step: which engines run, which values are active
            for t in range(self.steps):
                word = 0
                for e in engines:
                    word |= int(self.activity.run[e.node.name][t]) << e.index
                for lo, _, value, _, _ in self.fields:
                    word |= int(self.activity.active[value][t]) << (len(engines) + lo)
                rows.append(hex_word(word, len(engines) + tracked))
        else:
            flows = [self.flow(e) for e in engines]
        inb = self.buffers[enc.name]
        readout, layout = self.readout, self.readout_layout
        assert readout is not None and layout is not None, "check() guarantees one Readout"
        step_bits = addr_bits(self.steps + 1 if self.pipelined else self.steps)
        design = Design(self.graph, self.steps, step_bits, engines, buffers,
                        self.ports, self.wires, self.files, self.probes, inb,
                        not op_of(enc, o.SpikeInput).analog, inb.width, readout, layout,
                        self.logit_bits, rows, tracked, self.pipelined,
                        [self.levels[e.node.name] for e in engines] if self.pipelined else [],
                        flows, self.streams)
        if silence is not None:
            design.silence = silence
        if not self.pipelined:
            design.paired = dict(self.paired)
            share_reads(design)
            lockstep(design, [self.activity.run[e.node.name] for e in engines])
        if self.pipelined:
            f = self.in_flight
            design.in_flight = f
            design.inference_bits = max(4, (f + 1).bit_length() + 1)
            design.write_bits = self.write_bits
        return design

    def flow(self, e: Engine) -> Flow:
        """Pipelined: engine `e`'s sequencer. Its schedule (a word per step, and a last
        one for "all done"): whether it runs, then its activity bits (its fields of the
        `active` vector); its bank fields come from counters (of the steps it has got
        past at which the value is active, modulo the banks, run across inferences).
        Its producers and its readers (a hold per copy of its value: the writes counters
        of the value, its and the reader's) hold it back."""
        owned = [(f, key) for f, key in zip(self.fields, self.keys, strict=True)
                 if f[3] == e.index]
        tabled = [(key, bits) for (_, bits, _, _, _), key in owned if key not in self.banked]
        width = 1 + sum(bits for _, bits in tabled)
        words = []
        for t in range(self.steps):
            word, at = int(self.activity.run[e.node.name][t]), 1
            for key, bits in tabled:
                word |= int(self.activity.active[key[2]][t]) << at
                at += bits
            words.append(hex_word(word, width))
        words.append(hex_word(0, width))
        srcs, at = {}, 1
        for key, bits in tabled:
            srcs[key] = f"f{e.index}[{at}]" if bits == 1 else f"f{e.index}[{at + bits - 1}:{at}]"
            at += bits
        assigns, counters = [], []
        for (lo, bits, value, _, banks), key in owned:
            dst = f"active[{lo}]" if bits == 1 else f"active[{lo + bits - 1}:{lo}]"
            if key in self.banked:
                name = f"bank{e.index}_{self.buffers[value].name}_{banks}"
                counters.append((name, bits, banks, self.active_bit(value, e.index)))
                assigns.append((dst, name))
            else:
                assigns.append((dst, srcs[key]))
        writes = [(self.writes(e.index, v), self.active_bit(v, e.index))
                  for k, v in sorted(self.counted) if k == e.index]
        producers = sorted({w for name in self.reads.get(e.index, ())
                            if (w := self.buffers[name].writer_engine) is not None})
        mine = self.buffers.get(e.node.name)
        copies, v = (mine.copies, mine.node.name) if mine is not None else ([], "")
        holds = []
        for c in copies:
            near = (f"!{self.active_bit(v, e.index)} || passed_by("
                    f"{self.writes(c.reader, v)}, {self.writes(e.index, v)}, "
                    f"{self.write_bits}'d{c.banks})")
            holds.append(Hold(c.reader, c.banks, near,
                              self.tables[("hold", c.banks, e.index, v)]))
        return Flow(e.index, self.file(f"flow{e.index}", words), width, assigns, producers,
                    holds, counters, writes)

    def writes(self, owner: int, value: str) -> str:
        """Pipelined: the Verilog name of engine `owner`'s counter of the steps it has got
        past at which `value` is active (its producer's writes)."""
        return f"w{owner}_{self.buffers[value].name}"


# ---------------------------------------------------------------- one rule per op


def _spike_input(bld: _Builder, n: Node) -> None:
    op = op_of(n, o.SpikeInput)
    bits = signed_bits(op.lo, op.hi) if op.lo < 0 else unsigned_bits(op.hi)
    b = bld.buffer(n, bits)
    if not op.analog and not op.weighted:  # else the codes are read as they are
        b.data = "in_spikes"


def _chunk_table(table: ThresholdTable, lanes: int) -> ThresholdTable:
    """A neuron layer's threshold table for rows of `lanes` lanes, chunk c of row r being
    row r * chunks + c: each word's lanes in chunks, a word per chunk row (one word for
    every row, or a word a row: the cases `_neuron_chunks` takes)."""
    words, d = table.negate.shape
    nc = d // lanes
    return ThresholdTable(words * nc, 1, table.negate.reshape(words * nc, lanes),
                          table.thetas.reshape(words * nc, lanes, -1), table.width)


def _neuron_chunks(bld: _Builder, n: Node, lanes: int, table: ThresholdTable) -> int | None:
    """`lanes` when a neuron layer folded to that many lanes a cycle reads a buffer
    written in chunks of as many lanes (a folded engine's output) as it is and its
    threshold words follow the chunks (one word for every row, or a word a row): the
    layer is then the streamed engine over rows of `lanes` lanes, a word of that buffer
    each, and writes its spikes in the same chunks (None otherwise). It keeps no input
    row and selects no chunk of one."""
    lay = bld.layouts[n.name]
    src = resolve(bld.graph, n.inputs[0])[0]
    if (lanes >= lay.lanes or src not in bld.buffers or bld.layouts[src].lanes != lanes
            or (table.words > 1 and table.inner > 1)):
        return None
    words = chunked(lay, lanes)
    return lanes if view_of(bld.graph, bld.layouts, n.inputs[0], words)[1].identity else None


def _neuron(bld: _Builder, n: Node) -> None:
    k = bld.k
    whole = bld.layouts[n.name]
    src = n.inputs[0]
    lanes_per_cycle = bld.hw.neuron_lanes(n, whole.lanes)
    acc = bld.ranges[src].acc
    ap = _neuron_chunks(bld, n, lanes_per_cycle, threshold_table(n, whole, acc, 1))
    if ap is not None:  # rows of AP lanes, a word of the chunked input each
        bld.layouts[n.name] = chunked(whole, ap)
    lay = bld.layouts[n.name]
    ports, ib = bld.read("in", src, lay)
    timing = bld.timing()
    wv = max(acc.bits, ib.width + 1)
    table = threshold_table(n, whole, acc, wv)
    if ap is not None:
        table = _chunk_table(table, ap)
        lanes_per_cycle = ap
    levels, wc = op_of(n, o.Neuron).levels, table.width
    lane_bits = levels * wc + 1
    chunks = lay.lanes // lanes_per_cycle
    words = []  # word {w, chunk}: the chunk's lanes
    for w in range(table.words):
        lanes = []
        for d in range(lay.lanes):
            entry = int(table.negate[w, d]) << (levels * wc)
            for lv in range(levels):
                entry |= (int(table.thetas[w, d, lv]) & ((1 << wc) - 1)) << (lv * wc)
            lanes.append(entry)
        for c in range(chunks):
            part = lanes[c * lanes_per_cycle:(c + 1) * lanes_per_cycle]
            words.append(hex_row(np.array(part, dtype=object), lane_bits))
    nb = bld.count_bits
    rw = addr_bits(lay.rows)
    cb = (chunks - 1).bit_length() if chunks > 1 else 0
    saw = (rw if lay.rows > 1 else 0) + cb if chunks > 1 else rw  # state word {row, chunk}
    fmt = bld.spikes(n.name)
    out = bld.write(n, fmt.bits)
    me = bld.buffers[n.name]
    params = [("R", lay.rows), ("D", lay.lanes), ("RW", rw), ("WI", ib.width), ("WV", wv),
              ("WC", wc), ("L", levels), ("NB", nb), ("LB", addr_bits(levels)),
              ("TROWS", table.words), ("TRB", addr_bits(table.words)),
              ("INNER", table.inner), ("IB", addr_bits(table.inner)),
              ("TH_ASYNC", int(table.words <= ASYNC_TABLE_WORDS
                               and table.words * chunks <= ASYNC_FOLDED_WORDS)),
              ("TH_FILE", bld.file(f"e{k}_thresholds", words))]
    if not fmt.unit:  # if neurons leave MODE and SW at their defaults
        params += [("MODE", _NEURON_MODES[op_of(n, o.Neuron).mode]), ("SW", fmt.bits)]
    if chunks > 1:  # folded lanes (the knob); a whole row leaves NP and CB at their defaults
        params += [("NP", lanes_per_cycle), ("CB", cb), ("SAW", saw)]
    else:  # a whole row a cycle: rows streamed through the port
        params += timing
    # the read-back sees the state words: rows of NP lanes, addressed {row, chunk}
    seen = Layout(lay.shape, lay.perm, lanes_per_cycle)
    streamed = chunks == 1 and not timing and ib.rows == lay.rows
    ports += [("in_valid", bld.sees(ib, "in")), ("fire_en", bld.valid(me)),
              ("in_avail", _avail(bld, ib, rw) if streamed else f"{rw + 1}'d{lay.rows}")]
    if chunks == 1:
        _timed(bld)
    ports += out + [
        ("dbg_en", bld.wire(f"e{k}_dbg_en", 1)),
        ("dbg_row", f"dbg_row[{saw - 1}:0]"),
        ("dbg_counts", bld.wire(f"e{k}_dbg_counts", lanes_per_cycle * nb))]
    bld.probes.append(Probe(n, k, seen, nb, bld.names[n.name], saw))
    bld.engine(n, "snn_neuron", params, ports, clear=True)


def _writer(bld: _Builder, b: Buffer) -> int:
    """The index of the engine writing `b` (-1: the input loader)."""
    return next((e.index for e in bld.engines if e.node.name == b.node.name), -1)


def _fresh(bld: _Builder, ib: Buffer) -> bool:
    """An engine without a validity input (a synapse engine, a ReduceSum) may stream the
    rows of `ib`'s producer: the estimate knows when it writes them (`row_timed`) and it
    is never skipped (`silence.skippable`: a neuron layer, or an engine streaming its
    own producer's rows), so its buffer holds this step's rows whenever it is scheduled."""
    w = _writer(bld, ib)
    return w in bld.row_timed and not skippable(bld.engines, bld.streams)[w]


def _timed(bld: _Builder) -> None:
    """The engine being built writes its rows at times the estimate knows: at a cost a
    row, or streaming the rows of an engine whose times it knows."""
    if all(s.producer in bld.row_timed for s in bld.streams if s.engine == bld.k):
        bld.row_timed.add(bld.k)


def _avail(bld: _Builder, ib: Buffer, rw: int, tag: str = "") -> str:
    """The rows of `ib` the engine being built (reading its rows in order, a row a cycle
    at most) may read: one at a time, when a layer engine writes `ib`, a count of the
    rows it has written in this step (the two start together, `Stream`); else every
    row."""
    rows = f"{rw + 1}'d{ib.rows}"
    producer = _writer(bld, ib)
    if bld.pipelined or producer < 0:
        return rows
    s = Stream(bld.k, producer, ib, bld.wire(f"e{bld.k}_avail{tag}", rw + 1), rw + 1, tag)
    bld.streams.append(s)
    return s.avail


def _synapse_widths(bld: _Builder, n: Node, ib: Buffer) -> list:
    op = op_of(n, o.Synapse)
    ww = signed_bits(int(op.weight.min()), int(op.weight.max()))
    win = bld.lane_bits(ib)
    wo = max(bld.ranges[n.name].step.bits, ww + 1, win + 2 if op.analog else 0)
    signed_in = int(op.analog and op_of(ib.node, o.SpikeInput).lo < 0)
    return [("WIN", win), ("ANALOG", int(op.analog)), ("IN_SIGNED", signed_in), ("WW", ww),
            ("WO", wo)]


def _spike_params(bld: _Builder, n: Node) -> list[Param]:
    """SPIKE and JB of a spike-driven synapse whose input is not unit spikes (none for
    unit spikes and analog codes: the engines' defaults)."""
    if op_of(n, o.Synapse).analog:
        return []
    fmt = bld.spikes(resolve(bld.graph, n.inputs[0])[0])
    return [] if fmt.unit else [("SPIKE", fmt.kind), ("JB", fmt.line_bits)]


def _chunks(rows: np.ndarray, lanes: int) -> np.ndarray:
    """Weight rows [K, M] as the ROM words of a folded engine: row k's lanes in chunks
    of `lanes`, chunk c of row k at word k*M/lanes + c."""
    rows = np.asarray(rows)
    return rows.reshape(rows.shape[0] * (rows.shape[1] // lanes), lanes)


def _folded_output(bld: _Builder, n: Node, lanes: int, width: int
                   ) -> tuple[list[tuple[str, str]], list[Param]]:
    """A synapse engine's output buffer and its ports, as P = `lanes` of the output's
    lanes a word when the engine is folded (it writes a row in chunks), and the engine's
    OAW parameter if so."""
    lay = bld.layouts[n.name]
    if lanes < lay.lanes:
        bld.layouts[n.name] = chunked(lay, lanes)
    ports = bld.write(n, width)
    b = bld.buffers[n.name]
    return ports, ([("OAW", b.aw)] if lanes < lay.lanes else [])


def _fold_params(outputs: int, lanes: int) -> list[Param]:
    """P and CB of a synapse engine folded to `lanes` output lanes per cycle (none at
    all lanes: the engines' defaults, the design as before the knob)."""
    if lanes == outputs:
        return []
    return [("P", lanes), ("CB", (outputs // lanes).bit_length() - 1)]


def _synapse(bld: _Builder, n: Node) -> None:
    op = op_of(n, o.Synapse)
    k = bld.k
    src = n.inputs[0]
    x_shape = bld.graph.node(src).shape
    if op.kind == "dense":
        ports, ib = bld.read("in", src, natural(x_shape))
        common = _synapse_widths(bld, n, ib)
        ww, wo = common[3][1], common[4][1]
        r, (kk, m) = _size(x_shape[:-1]), op.weight.shape
        p = bld.hw.lanes(n)
        e = bld.hw.inputs.get(n.name)  # the config's E (through any port), else
        if e is None and bld.timing() == [] and _events_per_cycle(
                bld, n, kk, ww, walk=True) is not None:
            # full width through an identity port: the events walked without a request
            # and wait per row, one a cycle (E = 1: no adder tree)
            e = 1
        if e is not None:  # as a 1x1 convolution over the R rows (a tap row each)
            _conv_rows(bld, n, ports, common, (kk, r, 1, m, 1, 1, addr_bits(r)),
                       [(True, i) for i in range(r)], [(True, 0)], op.weight, e)
            return
        words = hex_rows(_chunks(op.weight, p), ww)
        out, oaw = _folded_output(bld, n, p, wo)
        # full width, unit spikes: V events a cycle (`walk_events`, a row of K groups)
        v = (bld.hw.walk_events(n, kk, ww, False)
             if p == m and not op.analog and _spike_params(bld, n) == [] else 1)
        params = [("R", r), ("K", kk), ("M", m), ("RW", addr_bits(r)), ("KW", addr_bits(kk)),
                  *common, ("W_FILE", bld.file(f"e{k}_weights", words)),
                  *_spike_params(bld, n), *_fold_params(m, p), *oaw,
                  *([("V", min(v, kk))] if min(v, kk) > 1 else [])]
        if p == m:  # a row a word, written when its events are added
            bld.row_timed.add(k)
        bld.engine(n, "snn_dense", params, ports + out, clear=False)
        return
    c, h, w = x_shape
    if _kernel_rows(bld, n):
        return
    ports, ib = bld.read("in", src, Layout(x_shape, CHANNELS_LAST, c))
    common = _synapse_widths(bld, n, ib)
    ww, wo = common[3][1], common[4][1]
    oc, _, kh, kw = op.weight.shape
    _, oh, ow = n.shape
    irw = addr_bits(h * w)
    ty = taps(oh, kh, op.strides[0], op.pads[0], op.dilations[0], h, w)
    tx = taps(ow, kw, op.strides[1], op.pads[1], op.dilations[1], w, 1)
    p = bld.hw.lanes(n)
    rows = conv_weight_rows(op.weight, op.group)
    e = _events_per_cycle(bld, n, c, ww, walk=bld.timing() == [])
    if e is not None:  # full width, E channels a cycle
        _conv_rows(bld, n, ports, common, (c, oh, ow, oc, kh, kw, irw), ty, tx, rows, e)
        return
    words = hex_rows(_chunks(rows, p), ww)
    out, oaw = _folded_output(bld, n, p, wo)
    params = [("C", c), ("OH", oh), ("OW", ow), ("O", oc), ("KH", kh), ("KW", kw),
              ("IRW", irw), ("ORW", addr_bits(oh * ow)), ("CW", addr_bits(c)),
              ("AWW", addr_bits(kh * kw * c)), ("TYW", addr_bits(oh * kh)),
              ("TXW", addr_bits(ow * kw)), ("SW", addr_bits(max(kh, kw))), *common,
              ("W_FILE", bld.file(f"e{k}_weights", words)),
              ("TY_FILE", bld.file(f"e{k}_rows", _tap_words(ty, irw))),
              ("TX_FILE", bld.file(f"e{k}_cols", _tap_words(tx, irw))),
              *_spike_params(bld, n), *_fold_params(oc, p), *oaw]
    bld.engine(n, "snn_conv", params, ports + out, clear=False)


def _kernel_rows(bld: _Builder, n: Node) -> bool:
    """An analog convolution of one input channel whose buffer holds its image rows as
    rows (or within rows, the lanes around them outside it), taking a kernel row of its
    window a cycle: snn_conv_rows over the windows' kernel rows as KW input channels, a
    KH x 1 kernel over H x OW virtual rows (KH taps an output position, not KH*KW),
    each read through the port as one segment of the image row (offsets before its lane
    0 at the left edge: snn_port's OB), when the knob takes KW channels a cycle (E =
    KW; a hardware config's "inputs" entry for the layer keeps the tap-a-cycle engine).
    False when it does not apply (nothing built)."""
    op = op_of(n, o.Synapse)
    src = n.inputs[0]
    c, h, w = bld.graph.node(src).shape
    oc, _, kh, kw = op.weight.shape
    _, oh, ow = n.shape
    if (not op.analog or c != 1 or kw == 1 or op.dilations[1] != 1
            or n.name in bld.hw.inputs):
        return False
    _, pixels = view_of(bld.graph, bld.layouts, src, Layout((c, h, w), CHANNELS_LAST, c))
    buf = bld.layouts[resolve(bld.graph, src)[0]]
    ww = signed_bits(int(op.weight.min()), int(op.weight.max()))
    if _events_per_cycle(bld, n, kw, ww, walk=False) != kw:
        return False
    row = pixels.rows[:, 0].reshape(h, w)
    lane = pixels.offsets[:, 0].reshape(h, w)
    ix = np.arange(ow)[:, None] * op.strides[1] - op.pads[1] + np.arange(kw)  # [ow, kw]
    inside = (ix >= 0) & (ix < w)
    first = inside.argmax(axis=1)  # every window holds a pixel (pads < kernel)
    at = np.arange(ow)
    rows = row[:, ix[at, first]]  # [h, ow]: the buffer row of each kernel row
    start = lane[:, ix[at, first]] - first  # its lane of kx = 0
    lanes = start[..., None] + np.arange(kw)  # [h, ow, kw]
    clipped = np.clip(ix, 0, w - 1)
    fits = np.where(inside, (row[:, clipped] == rows[..., None])
                    & (lane[:, clipped] == lanes), (lanes < 0) | (lanes >= buf.lanes))
    if not inside.any(axis=1).all() or not fits.all() or start.min() < -(kw - 1):
        return False
    bias = kw - 1
    view = View(h * ow, kw, kw, rows.reshape(-1, 1), (start + bias).reshape(-1, 1), False)
    ports, ib = bld.read("in", src, Layout((c, h, w), CHANNELS_LAST, c), view, bias)
    common = _synapse_widths(bld, n, ib)
    ty = taps(oh, kh, op.strides[0], op.pads[0], op.dilations[0], h, ow)
    tx = taps(ow, 1, 1, 0, 1, ow, 1)
    weights = conv_weight_rows(op.weight[:, 0].transpose(0, 2, 1)[..., None], 1)
    _conv_rows(bld, n, ports, common, (kw, oh, ow, oc, kh, 1, addr_bits(h * ow)), ty, tx,
               weights, kw)
    return True


def _events_per_cycle(bld: _Builder, n: Node, c: int, ww: int, walk: bool) -> int | None:
    """The input channels E a full-width synapse engine of C = `c` inputs per row takes a
    cycle (snn_conv_rows), or None for the event engine (snn_conv, snn_dense: one input
    event a cycle). Only at full width (the folded settings keep their engines), for
    unit spikes and analog codes: the largest E with C / E a power of two, an adder tree
    of at most TREE_INPUT_BITS weight bits a lane and, with `--parallel N`, E times the
    outputs at most N. Through a port with a latency (fixed slots, `walk` False) the
    event engine when that leaves one channel of several (a slot per channel would be
    slower than its walk of the spikes); through an identity port the silent groups are
    skipped, so E = 1 is the event engine without its per-row cycles. A hardware
    config's "inputs" entry for the layer sets E (checked by `parallel.config`)."""
    op = op_of(n, o.Synapse)
    m = outputs(n)
    if n.name in bld.hw.inputs:  # the config's, checked against the same rule
        return bld.hw.inputs[n.name]
    if bld.hw.lanes(n) != m or not (op.analog or _spike_params(bld, n) == []):
        return None
    legal = [c >> j for j in range(c.bit_length()) if c % (1 << j) == 0]
    fits = [e for e in legal if e * ww <= TREE_INPUT_BITS
            and (bld.hw.parallel is None or e * m <= bld.hw.parallel)]
    if not fits:  # the knob allows fewer lanes than the outputs: the event engine
        return None
    e = max(fits)
    return e if e > 1 or c == 1 or walk else None


def _conv_rows(bld: _Builder, n: Node, ports: list, common: list,
               sizes: tuple[int, ...], ty: list[tuple[bool, int]], tx: list[tuple[bool, int]],
               rows: np.ndarray, e: int) -> None:
    """A full-width convolution (or a dense layer as a 1x1 one) taking `e` input
    channels a cycle: snn_conv_rows, its taps' rows streamed through the port (through
    an identity port walking V non-silent groups of them a cycle, `walk_events`)."""
    c, oh, ow, oc, kh, kw, irw = sizes
    k = bld.k
    ww, wo = common[3][1], common[4][1]
    ng = c // e
    timing = dict(bld.timing())
    ig, ilat = int(timing.get("IG", 1)), int(timing.get("ILAT", 1))
    walk = int(ilat == 1 and ig == 1)  # an identity port: skip the silent groups
    # walking, V non-silent groups a cycle (at most its groups: more slots never fill)
    v = min(ng, bld.hw.walk_events(n, ng, e * ww, op_of(n, o.Synapse).analog)) if walk else 1
    words = hex_rows(np.asarray(rows).reshape(kh * kw * ng, e * oc), ww)
    params = [("C", c), ("OH", oh), ("OW", ow), ("O", oc), ("KH", kh), ("KW", kw),
              ("IRW", irw), ("ORW", addr_bits(oh * ow)), ("TYW", addr_bits(oh * kh)),
              ("TXW", addr_bits(ow * kw)), ("SW", addr_bits(max(kh, kw))), *common,
              ("W_FILE", bld.file(f"e{k}_weights", words)),
              ("TY_FILE", bld.file(f"e{k}_rows", _tap_words(ty, irw))),
              ("TX_FILE", bld.file(f"e{k}_cols", _tap_words(tx, irw))),
              ("E", e), ("NG", ng), ("GB", addr_bits(ng)), ("TB", addr_bits(kh * kw)),
              ("AW", addr_bits(kh * kw * ng)), ("LT", max(1, (v * e - 1).bit_length())),
              ("IG", ig), ("ILAT", ilat), ("SB", addr_bits(max(ng, ig))),
              ("LB", unsigned_bits(ilat)), ("WALK", walk), *([("V", v)] if v > 1 else [])]
    if walk:  # the valid taps' ranges: a padding tap costs nothing
        params += _walk_ranges(bld, (oh, ow, kh, kw), ty, tx)
    ib = bld.ports[-1].buffer
    avail = f"{irw + 1}'d{1 << irw}"  # above every row
    if walk and _fresh(bld, ib):  # a tap's row asked for once written
        avail = _avail(bld, ib, irw)
    bld.row_timed.add(k)
    ports = ports + [("in_avail", avail)]
    bld.engine(n, "snn_conv_rows", params, ports + bld.write(n, wo), clear=False)


def _walk_ranges(bld: _Builder, sizes: tuple[int, int, int, int], ty: list[tuple[bool, int]],
                 tx: list[tuple[bool, int]]) -> list[tuple[str, object]]:
    """A walking snn_conv_rows' range tables: RY[oy] = {kylo*KW, kylo, kylo, kyhi} and
    RX[ox] = {KW - (kxhi - kxlo), kxlo, kxlo, kxlo, kxhi}, each field at the width it is
    added at (TB, TYW or TXW, SW bits)."""
    oh, ow, kh, kw = sizes
    k = bld.k
    sw, tb = addr_bits(max(kh, kw)), addr_bits(kh * kw)
    tyw, txw = addr_bits(oh * kh), addr_bits(ow * kw)
    ry = [(((lo * kw) << (tyw + 2 * sw)) | (lo << (2 * sw)) | (lo << sw) | hi)
          for lo, hi in tap_range(ty, oh, kh)]
    rx = [((((kw - (hi - lo)) % (1 << tb)) << (tb + txw + 2 * sw)) | (lo << (txw + 2 * sw))
           | (lo << (2 * sw)) | (lo << sw) | hi) for lo, hi in tap_range(tx, ow, kw)]
    return [("RY_FILE", bld.file(f"e{k}_row_ranges",
                                 [hex_word(r, tb + tyw + 2 * sw) for r in ry])),
            ("RX_FILE", bld.file(f"e{k}_col_ranges",
                                 [hex_word(r, 2 * tb + txw + 2 * sw) for r in rx])),
            ("YB", addr_bits(oh)), ("XB", addr_bits(ow))]


def _td_matmul(bld: _Builder, n: Node) -> None:
    a, b = n.inputs
    batch, (nn, kk), mm = n.shape[:-2], bld.graph.node(a).shape[-2:], n.shape[-1]
    fa, fb = (bld.spikes(resolve(bld.graph, v)[0]) for v in (a, b))
    # a count is wider than a spike (signed spikes are sign-extended into it)
    wca = max(unsigned_bits(bld.ranges[a].count), 2, fa.bits + 1)
    wcb = max(unsigned_bits(bld.ranges[b].count), 2, fb.bits + 1)
    wo = max(bld.ranges[n.name].step.bits, wca + 1, wcb + 1)
    nb = _size(batch)
    if fa.unit and fb.unit and bld.hw.td_rows(n, kk):  # every k of a row at once
        _td_matmul_rows(bld, n, (nb, nn, kk, mm), (wca, wcb, wo))
        return
    pa, ba = bld.read("a", a, natural(batch + (nn, kk)))
    pb, bb = bld.read("b", b, natural(batch + (kk, mm)))
    params = [("NB", nb), ("N", nn), ("K", kk), ("M", mm), ("ARW", addr_bits(nb * nn)),
              ("BRW", addr_bits(nb * kk)), ("KW", addr_bits(kk)), ("NW", addr_bits(nn)),
              ("BW", addr_bits(nb)), ("WCA", wca), ("WCB", wcb), ("WO", wo)]
    if not (fa.unit and fb.unit):
        params += [("SPA", fa.kind), ("SPB", fb.kind), ("WSA", bld.lane_bits(ba)),
                   ("WSB", bld.lane_bits(bb)), ("JB", max(fa.line_bits, fb.line_bits))]
    ports = pa + pb + [("a_valid", bld.sees(ba, "a")), ("b_valid", bld.sees(bb, "b"))]
    bld.engine(n, "snn_td_matmul", params, ports + bld.write(n, wo), clear=True)


def _td_matmul_rows(bld: _Builder, n: Node, sizes: tuple[int, int, int, int],
                    widths: tuple[int, int, int]) -> None:
    """A TD-MatMul of unit spikes an output row a cycle (snn_td_matmul_rows): B read as
    it is or as B^T, a batch's rows one by one or every batch's row r at once (BH = NB:
    the heads' rows side by side), whichever view costs the fewest cycles (a request
    every G cycles; a tie: batch by batch, B as it is)."""
    a, b = n.inputs
    nb, nn, kk, mm = sizes
    batch = n.shape[:-2]
    nat = tuple(range(len(batch)))
    ax = len(batch)
    want_a = natural(batch + (nn, kk))
    full = batch + (kk, mm)
    views = [  # (B^T, batches a row, layout)
        (False, 1, natural(full)), (True, 1, natural(full, nat + (ax + 1, ax))),
        (False, nb, Layout(full, (ax,) + nat + (ax + 1,), nb * mm)),
        (True, nb, Layout(full, (ax + 1,) + nat + (ax,), nb * kk))]
    if nb == 1:
        views = views[:2]

    def cost(v: tuple[bool, int, Layout]) -> int:
        return v[2].rows * view_of(bld.graph, bld.layouts, b, v[2])[1].segments

    bt, bh, want_b = min(views, key=cost)
    ag = view_of(bld.graph, bld.layouts, a, want_a)[1].segments
    bg = view_of(bld.graph, bld.layouts, b, want_b)[1].segments
    br, bl = (mm, kk) if bt else (kk, mm)
    pa, ba = bld.read("a", a, want_a)
    lat_a = _port_reads(bld.ports[-1])[0]
    pb, bb = bld.read("b", b, want_b)
    lat_b = _port_reads(bld.ports[-1])[0]
    # B with spikes: its last row arrives `was` cycles after the first request; the A
    # rows are asked for so that the first arrives no earlier (A and B one buffer: once
    # B's reads are over)
    was = (nb * br // bh - 1) * bg + lat_b
    wav = was if ba is bb else max(1, was - lat_a) - 1
    wca, wcb, wo = widths
    params = [("NB", nb), ("N", nn), ("K", kk), ("M", mm), ("BT", int(bt)), ("BR", br),
              ("BL", bl), ("BH", bh), ("AG", ag), ("BG", bg),
              ("GW", addr_bits(max(ag, bg))), ("WAV", wav), ("WAS", was),
              ("WTW", addr_bits(was + 1)),
              ("ARW", addr_bits(nb * nn)), ("BRW", addr_bits(nb * br // bh)),
              ("NW", addr_bits(nn)), ("RBW", addr_bits(br)), ("BW", addr_bits(nb)),
              ("WCA", wca), ("WCB", wcb), ("WO", wo), ("LT", addr_bits(2 * kk))]
    a_avail = _td_avail(bld, ba, bb, nb * nn, view_of(bld.graph, bld.layouts, a, want_a)[1])
    b_avail = _td_b_avail(bld, ba, bb, nb * br // bh, bg, a_avail)
    streamed = {s.avail for s in bld.streams}
    params += [("AQ", ba.rows if a_avail in streamed else nb * nn),
               ("SB", int(b_avail in streamed))]
    ports = pa + pb + [("a_valid", bld.sees(ba, "a")), ("b_valid", bld.sees(bb, "b")),
                       ("a_avail", a_avail), ("b_avail", b_avail)]
    bld.row_timed.add(bld.k)  # its rows' write times follow from its phases
    bld.engine(n, "snn_td_matmul_rows", params, ports + bld.write(n, wo), clear=True)


def _td_avail(bld: _Builder, ba: Buffer, bb: Buffer, rows: int, view: View) -> str:
    """The A rows a TD-MatMul row engine may ask for: its A phases stream the rows of the
    producer of A (`Stream`) when row r (as read) reads no buffer row past r (past the
    last: AQ, the buffer's rows; the heads of a head split, as q of q.k^T, read the
    buffer's rows again), B is another buffer (B's phases need it whole) and the
    estimate knows when that producer writes its rows; else every row."""
    rw = addr_bits(rows)
    need = np.maximum.accumulate(view.rows.max(axis=1))
    if (np.all(need <= np.minimum(np.arange(rows), ba.rows - 1)) and ba is not bb
            and _writer(bld, ba) in bld.row_timed):
        avail = _avail(bld, ba, rw)
        if any(s.avail == avail for s in bld.streams):  # not when pipelined
            return avail
    return f"{rw + 1}'d{rows}"


def _td_b_avail(bld: _Builder, ba: Buffer, bb: Buffer, rows: int, bg: int,
                a_avail: str) -> str:
    """The B rows (as read) a TD-MatMul row engine may ask for: its B phases stream the
    rows of the producer of B (`Stream`, the second: "_b") when B is read as it is (its
    rows the buffer's, the port of `bb` the last), a request a cycle, A is another
    buffer whose producer's rows it streams (`a_avail`; else it waits for that one, and
    a streamed B, seen by the schedule alone, would cost a B phase at every run: on the
    bundled example B's stream alone adds 82 cycles) and the estimate knows when B's
    producer writes its rows; else every row."""
    rw = addr_bits(rows)
    if (dict(bld.ports[-1].params)["MAP"] == 0 and bb.rows == rows and ba is not bb
            and bg == 1 and _writer(bld, bb) in bld.row_timed
            and a_avail in (s.avail for s in bld.streams)):
        return _avail(bld, bb, rw, "_b")
    return f"{rw + 1}'d{rows}"


def _td_maxpool(bld: _Builder, n: Node) -> None:
    op = op_of(n, o.TDMaxPool)
    k = bld.k
    src = n.inputs[0]
    c, h, w = bld.graph.node(src).shape
    _, oh, ow = n.shape
    kh, kw = op.kernel
    ports, ib = bld.read("in", src, Layout((c, h, w), CHANNELS_LAST, c))
    timing = bld.timing()
    fmt = bld.spikes(ib.node.name)
    irw = addr_bits(h * w)
    ty = taps(oh, kh, op.strides[0], op.pads[0], 1, h, w)
    tx = taps(ow, kw, op.strides[1], op.pads[1], 1, w, 1)
    params = [("H", h), ("W", w), ("C", c), ("OH", oh), ("OW", ow), ("KH", kh), ("KW", kw),
              ("IRW", irw), ("ORW", addr_bits(oh * ow)), ("TYW", addr_bits(oh * kh)),
              ("TXW", addr_bits(ow * kw)), ("SW", addr_bits(max(kh, kw))),
              ("WCNT", max(unsigned_bits(bld.ranges[src].count), 2, fmt.bits + 1)),
              ("TY_FILE", bld.file(f"e{k}_rows", _tap_words(ty, irw))),
              ("TX_FILE", bld.file(f"e{k}_cols", _tap_words(tx, irw)))]
    if not fmt.unit:
        params += [("SPIKE", fmt.kind), ("WS", fmt.bits)]
    if bld.hw.pool_taps(c, kh * kw) > 1:  # every tap of an output a cycle
        params.append(("WIN", 1))
    params += timing
    avail = f"{irw + 1}'d{h * w}"
    if not timing and ib.rows == h * w:  # the counting phase streams its producer's rows
        avail = _avail(bld, ib, irw)
        if avail != f"{irw + 1}'d{h * w}" and _writer(bld, ib) not in bld.row_timed:
            # the estimate knows only when that producer is done: pool after the counting
            params.append(("IL", 0))
    ports += [("in_valid", bld.sees(ib, "in")), ("in_avail", avail)] + bld.write(n, fmt.bits)
    bld.row_timed.add(k)  # its outputs written a cycle (a window's taps) apart, in order
    bld.engine(n, "snn_td_maxpool", params, ports, clear=True)


def _port_reads(port: Port) -> tuple[int, int, int]:
    """A port's latency from the request it sees to its row, its segments (cycles
    between requests), and the offset of its reads of the buffer RAM from the request
    (the identity reads in the request's cycle, a map in the G cycles after it)."""
    q = dict(port.params)
    g = int(q["G"])
    return (1, 1, 0) if q["MAP"] == 0 else (g + 2, g, 1)


def _slots(qa: Port, qb: Port, share: bool) -> tuple[int, int]:
    """snn_add's slot period P and b's request delay DAB: b's row arrives with or after
    a's, a's next row after b's, the ports are free again; reading one buffer RAM, b's
    reads after a's and a's next ones after b's."""
    (la, ga, oa), (lb, gb, ob) = _port_reads(qa), _port_reads(qb)
    dab = max(0, la - lb, oa + ga - ob if share else 0)
    period = max(ga, gb, dab + lb - la + 1, dab + ob + gb - oa if share else 0)
    return period, dab


def _add_chunks(bld: _Builder, n: Node) -> int | None:
    """The lanes a word of both of an add's inputs when each is a buffer written in
    chunks of the same lanes (a folded engine's output) read as it is: the add then
    sums a word a cycle and writes its output in the same chunks (None otherwise)."""
    lay = bld.layouts[n.name]
    srcs = [resolve(bld.graph, v)[0] for v in n.inputs]
    lanes = {bld.layouts[s].lanes for s in srcs}
    if len(lanes) != 1 or not all(s in bld.buffers for s in srcs):
        return None
    ap = lanes.pop()
    if ap >= lay.lanes or lay.lanes % ap:
        return None
    words = chunked(lay, ap)
    ok = all(view_of(bld.graph, bld.layouts, v, words)[1].identity for v in n.inputs)
    return ap if ok else None


def _add_current(bld: _Builder, n: Node) -> None:
    ap = _add_chunks(bld, n)
    if ap is not None:  # folded: rows of AP lanes, a word of the chunked buffers each
        bld.layouts[n.name] = chunked(bld.layouts[n.name], ap)
    lay = bld.layouts[n.name]
    pa, ba = bld.read("a", n.inputs[0], lay)
    pb, bb = bld.read("b", n.inputs[1], lay)
    wo = max(bld.ranges[n.name].step.bits, ba.width + 1, bb.width + 1)
    period, dab = _slots(bld.ports[-2], bld.ports[-1], ba is bb and not bld.pipelined)
    rw = addr_bits(lay.rows)
    params = [("R", lay.rows), ("D", lay.lanes), ("RW", rw),
              ("WA", ba.width), ("WB", bb.width), ("WO", wo)]
    avail = f"{rw + 1}'d{lay.rows}"
    if (period, dab) != (1, 0):  # rows streamed a slot every P cycles, b DAB after a
        params += [("P", period), ("PW", addr_bits(period)), ("DAB", dab)]
    elif ba.rows == bb.rows == lay.rows:  # a slot a cycle: stream both producers' rows
        counts = [v for v in (_avail(bld, ba, rw), _avail(bld, bb, rw, "_b"))
                  if v != avail]  # row r once both have written it
        avail = (f"({counts[0]} < {counts[1]}) ? {counts[0]} : {counts[1]}"
                 if len(counts) == 2 else counts[0] if counts else avail)
        _pair(bld, n, [(ba, bld.ports[-2]), (bb, bld.ports[-1])])
    _timed(bld)
    ports = pa + pb + [("a_valid", bld.sees(ba, "a")), ("b_valid", bld.sees(bb, "b")),
                       ("in_avail", avail)]
    bld.engine(n, "snn_add", params, ports + bld.write(n, wo), clear=False)


def _pair(bld: _Builder, n: Node, reads: list[tuple[Buffer, Port]]) -> None:
    """An add streaming its inputs' rows a slot a cycle may read one of them in lockstep
    with a neuron layer streaming the same producer's rows (`Design.paired`, which
    `lockstep` confirms): the add reads it through an identity port, and at every step
    both run its other producer does not (so both see the same rows written)."""
    run = bld.activity.run
    for (x, port), (y, _) in (reads, reads[::-1]):
        p, q = _writer(bld, x), _writer(bld, y)
        if p < 0 or dict(port.params)["MAP"] != 0 or x is y:
            continue
        for s in bld.streams:
            e = bld.engines[s.engine] if s.engine < bld.k else None
            if e is None or e.module != "snn_neuron" or s.producer != p or s.buffer is not x:
                continue
            both = run[n.name] & run[e.node.name]
            if q < 0 or not (both & run[bld.engines[q].node.name]).any():
                bld.paired[bld.k] = e.index
                return


def _reduce_sum(bld: _Builder, n: Node) -> None:
    src = n.inputs[0]
    x_shape = bld.graph.node(src).shape
    axes = op_of(n, o.ReduceSum).axes
    view = reduce_view(x_shape, axes)
    red, _ = reduction_axes(x_shape, axes)
    q = _size(tuple(x_shape[a] for a in red))
    nout = view.rows // q
    ports, ib = bld.read("in", src, view)
    signed_in = not bld.ranges[src].spikes or bld.ranges[src].step.lo < 0
    wi = bld.lane_bits(ib)
    wo = max(bld.ranges[n.name].step.bits, wi + 1)
    irw = addr_bits(view.rows)
    # a request every G cycles through a map (IG), a cycle through the identity
    timing = [(k, v) for k, v in bld.timing() if k in ("IG", "GW")]
    params = [("NOUT", nout), ("Q", q), ("D", view.lanes), ("IRW", irw),
              ("ORW", addr_bits(nout)), ("QW", addr_bits(q)), ("WI", wi),
              ("IN_SIGNED", int(signed_in)), ("WO", wo), *timing]
    avail = f"{irw + 1}'d{view.rows}"
    if (dict(bld.ports[-1].params)["MAP"] == 0 and ib.rows == view.rows
            and _fresh(bld, ib)):  # its producer's rows streamed
        avail = _avail(bld, ib, irw)
    ports += [("in_avail", avail)]
    bld.engine(n, "snn_reduce", params, ports + bld.write(n, wo), clear=False)


def _readout(bld: _Builder, n: Node) -> None:
    k = bld.k
    src = n.inputs[0]
    lay = natural(bld.graph.node(src).shape)
    ports, ib = bld.read("in", src, lay)
    acc = bld.ranges[src].acc
    wa = max(acc.bits, ib.width + 1)
    bias = np.broadcast_to(op_of(n, o.Readout).bias, lay.shape).astype(np.int64)
    wb = signed_bits(int(bias.min()), int(bias.max()))
    wl = max(signed_bits(acc.lo + int(bias.min()), acc.hi + int(bias.max())), wa + 1, wb + 1)
    rw, lw = addr_bits(lay.rows), addr_bits(lay.lanes)
    params = [("R", lay.rows), ("D", lay.lanes), ("RW", rw), ("LW", lw), ("WI", ib.width),
              ("WA", wa), ("WB", wb), ("WL", wl),
              ("B_FILE", bld.file(f"e{k}_bias", hex_rows(lay.arrange(bias), wb)))]
    ports += [("rd_row", "rd_row"), ("rd_lane", "rd_lane"),
              ("rd_logit", bld.wire("rd_logit", wl))]
    bld.readout = bld.engine(n, "snn_readout", params, ports, clear=True)
    bld.readout_layout, bld.logit_bits = lay, wl


_RULES = {
    o.SpikeInput: _spike_input,
    o.Neuron: _neuron,
    o.Synapse: _synapse,
    o.TDMatMul: _td_matmul,
    o.TDMaxPool: _td_maxpool,
    o.AddCurrent: _add_current,
    o.ReduceSum: _reduce_sum,
    o.Readout: _readout,
}


def lower(graph: Graph, hw: HwConfig = DEFAULT) -> Design:
    """The hardware design of `graph` (which `check` has accepted), its synapse engines
    folded as the knob `hw` says."""
    bld = _Builder(graph, hw)
    for n in graph.topo():
        rule = _RULES.get(type(n.op))
        if rule is not None:
            bld.node = n
            rule(bld, n)
    return bld.design()


def wavefront(graph: Graph) -> dict[str, int]:
    """The pipelined design's levels: of every engine, its depth in the engine graph (one
    more than the deepest engine whose value it reads; 0 for those reading only the
    input codes), so that an engine runs in super-step S the step S - level, after its
    producers."""
    levels: dict[str, int] = {}
    for n in graph.topo():
        if type(n.op) not in _RULES or isinstance(n.op, o.SpikeInput):
            continue
        sources = {resolve(graph, i)[0] for i in n.inputs}
        levels[n.name] = 1 + max((levels.get(s, -1) for s in sources), default=-1)
    return levels
