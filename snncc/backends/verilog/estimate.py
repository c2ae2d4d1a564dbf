"""Estimates before synthesis: cycles per inference and resources, without running a tool.

Cycles: every engine's state machine costs a known number of cycles per row, per tap
and per input event (the engines' comments and `docs/verilog.md`); the events are the
spikes the interpreter's step engine sends on the estimate's inputs (by default the
testbench's vectors), so the estimate is a count of the design's work, not a fit. The
controller adds a few cycles per engine run and per time step.

Resources: from the design's memories (buffers, state, weight and table ROMs: their
words and widths, packed into the block RAMs of each family) and its datapaths (adders,
comparators and registers per lane, by engine kind), for Xilinx 7-series (LUT6, FF,
RAMB36, DSP48) and iCE40 (LUT4, FF, SB_RAM40_4K, no DSP).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from snncc import ops as o
from snncc.backends.common import default_inputs
from snncc.backends.parallel import DEFAULT, HwConfig
from snncc.backends.sim.engine import SimResult, run_step
from snncc.ir import Graph
from snncc.reference import EVAL
from snncc.schedule import activity

from .design import Design, Engine, Stream, op_of
from .layout import CHANNELS_LAST, Layout, resolve
from .lower import lower
from .tables import tap_range, taps

ESTIMATE_VECTORS = 5


def _params(e: Engine) -> defaultdict[str, int]:
    """The engine's integer parameters; an absent one (at its default) reads as 0."""
    return defaultdict(int, {k: int(v) for k, v in e.params if not isinstance(v, str)})


def _window_reads(ty: list[tuple[bool, int]], tx: list[tuple[bool, int]], oh: int, ow: int,
                  kh: int, kw: int) -> np.ndarray:
    """[oh*ow, kh*kw]: the input row that each tap of each output pixel reads, or -1 for
    padding, in the engines' order (pixel (oy, ox) at oy*ow + ox, tap (ky, kx) at
    ky*kw + kx); `ty`/`tx` are ``tables.taps`` rows and columns."""
    vy, iy = (np.array(c, np.int64).reshape(oh, 1, kh, 1) for c in zip(*ty, strict=True))
    vx, ix = (np.array(c, np.int64).reshape(1, ow, 1, kw) for c in zip(*tx, strict=True))
    reads = np.where((vy != 0) & (vx != 0), iy + ix, -1)
    return reads.reshape(oh * ow, kh * kw)


class _Trace:
    """Per step, the logical value of every spike tensor an engine reads."""

    def __init__(self, graph: Graph, x: np.ndarray, result: SimResult | None = None):
        self.graph = graph
        if result is None or result.trains is None:
            result = run_step(graph, x, trace=True)
        self.trains = result.trains or {}
        self.steps = result.steps
        self.act = activity(graph, self.steps)
        (enc,) = graph.ops(o.SpikeInput)
        self.enc = enc
        self.codes = np.asarray(EVAL[o.SpikeInput](enc, [np.asarray(x, np.float64)]),
                                np.int64)
        self.batch = len(x)
        self._pooled: dict[tuple[str, int], np.ndarray] = {}
        self._resolved: dict[str, tuple[str, np.ndarray | None]] = {}
        self._sums: dict[str, tuple[int, np.ndarray]] = {}
        self._pooled_counts: dict[str, tuple[int, np.ndarray]] = {}
        self._last: dict[str, tuple[int, np.ndarray]] = {}  # value -> its latest step
        self._zeros: dict[tuple[str, str], np.ndarray] = {}

    def before(self, value: str, t: int) -> np.ndarray:
        """The sum of `value`'s spikes over the steps before t (a running count; the
        callers ask for t in increasing order, so each step is added once)."""
        done, total = self._sums.get(value, (t + 1, None))
        if done > t or total is None:
            done, total = 0, np.zeros((self.batch,) + self.graph.node(value).shape, np.int64)
        src = self.source(value)[0]
        if src in self.trains and done < t:  # a neuron's spikes, over its firing window
            on = np.flatnonzero(self.act.active[src][done:t])  # zero at every other step
            if on.size:
                total = total + self._gather(value, self.trains[src][
                    done + on[0]:done + on[-1] + 1].sum(axis=0, dtype=np.int64))
            done = t
        for s in range(done, t):
            total = total + self.spikes(value, s)
        self._sums[value] = (t, total)
        return total

    def spikes(self, value: str, t: int) -> np.ndarray:
        """[batch, *shape of value] at step t (codes for analog or weighted inputs; the
        caller must not write into it: the latest step's array is kept for the next)."""
        last = self._last.get(value)
        if last is not None and last[0] == t:
            return last[1]
        out = self._spikes(value, t)
        self._last[value] = (t, out)
        return out

    def source(self, value: str) -> tuple[str, np.ndarray | None]:
        """The value whose data `value` reads, and the flat positions it reads (None:
        all of them, in order)."""
        if value not in self._resolved:
            src, index = resolve(self.graph, value)
            index = index.ravel()
            size = int(np.prod(self.graph.node(src).shape, dtype=np.int64))
            same = len(index) == size and np.array_equal(index, np.arange(size))
            self._resolved[value] = src, (None if same else index)
        return self._resolved[value]

    def _gather(self, value: str, data: np.ndarray) -> np.ndarray:
        """`value` [batch, *shape] from its source's data [batch, *source shape]."""
        index = self.source(value)[1]
        flat = data.reshape(self.batch, -1)
        if index is not None:
            flat = flat[:, index]
        return flat.reshape((self.batch,) + self.graph.node(value).shape)

    def silent(self, value: str, t: int) -> bool:
        """`value` is zero at step t for certain: a spike train outside its firing steps
        (`activity`), a current (its events do not matter), analog codes after step 0."""
        src = self.source(value)[0]
        op = self.graph.node(src).op
        if isinstance(op, o.SpikeInput):
            return bool(t) and (op.analog or op.weighted)
        if src in self.trains:
            return not self.act.active[src][t]
        return not isinstance(op, o.TDMaxPool)

    def _spikes(self, value: str, t: int) -> np.ndarray:
        """Spikes in 8 bits (the trains' own type, ±1 or 1; a TD max pool's int8: the
        readers count them, sum them into int64 counts or test them), codes in int64."""
        src = self.source(value)[0]
        n = self.graph.node(src)
        if self.silent(value, t):  # one shared zero array, not the trains' pages
            dtype = self.trains[src].dtype if src in self.trains else np.int64
            key = (value, np.dtype(dtype).str)
            if key not in self._zeros:
                self._zeros[key] = np.zeros((self.batch,) + self.graph.node(value).shape,
                                            dtype)
            return self._zeros[key]
        if isinstance(n.op, o.SpikeInput):
            op = n.op
            if op.analog or op.weighted:
                data = self.codes
            else:
                data = (self.codes - op.lo > t).view(np.uint8)
        elif src in self.trains:
            data = self.trains[src][t]
        else:
            data = self._maxpool(src, t)
        return self._gather(value, data)

    def _maxpool(self, name: str, t: int) -> np.ndarray:
        """A TD max pool's spikes: maxpool(C(t)) - maxpool(C(t-1)) of its input counts."""
        if (name, t) in self._pooled:
            return self._pooled[(name, t)]
        n = self.graph.node(name)
        op = n.op
        assert isinstance(op, o.TDMaxPool)
        c, h, w = self.graph.node(n.inputs[0]).shape
        _, oh, ow = n.shape
        (kh, kw), (sh, sw) = op.kernel, op.strides
        never = np.iinfo(np.int64).min  # padding: never wins

        def pooled(counts: np.ndarray) -> np.ndarray:
            # tap (ky, kx) of every output reads a strided slice of the padded counts
            padded = np.full((self.batch, c, max(op.pads[0] + h, (oh - 1) * sh + kh),
                              max(op.pads[1] + w, (ow - 1) * sw + kw)), never, np.int64)
            padded[:, :, op.pads[0]:op.pads[0] + h, op.pads[1]:op.pads[1] + w] = counts
            out = np.full((self.batch, c, oh, ow), never, np.int64)
            for ky in range(kh):
                for kx in range(kw):
                    np.maximum(out, padded[:, :, ky:ky + (oh - 1) * sh + 1:sh,
                                           kx:kx + (ow - 1) * sw + 1:sw], out=out)
            return out

        before = self.before(n.inputs[0], t).reshape(self.batch, c, h, w)
        counts = before + self.spikes(n.inputs[0], t).reshape(before.shape)
        last = self._pooled_counts.get(name)  # pooled C(t-1), if step t-1 made it
        now = pooled(counts)
        out = now - (last[1] if last and last[0] == t - 1 else pooled(before))
        self._pooled_counts[name] = (t, now)
        self._pooled[(name, t)] = out.astype(np.int8)  # 0 or ±1
        return self._pooled[(name, t)]


class _Step:
    """One at a time, the engines of step t so far: their start (from the step's first
    start), the start of what waits for them (`end`), their rows' write cycles."""

    def __init__(self, t: int):
        self.t = t
        self.at: dict[int, np.ndarray] = {}
        self.end: dict[int, np.ndarray] = {}
        self.writes: dict[int, np.ndarray] = {}


def _follow(module: str, wp: np.ndarray, start: np.ndarray) -> np.ndarray:
    """[batch, rows]: the write cycles of a neuron layer's or an add's rows (a row a
    cycle, written 2 cycles after its request or slot) streaming rows written at `wp`
    from `start`: row r's request in the cycle after its write (and after row r-1's);
    row 0's at the first chance: the cycle after the start (a neuron layer; the start,
    an add) when it is written by then."""
    first = 1 if module == "snn_neuron" else 0
    ask = np.where(wp[:, 0] <= start - 1, start + first,
                   np.maximum(start + first + 1, wp[:, 0] + 1 + first))
    # ask_r = max(ask_{r-1} + 1, wp_r + 1 + first) for r >= 1, as a running maximum:
    # ask_r = r + max(ask_0, max_{1 <= j <= r} (wp_j + 1 + first - j))
    r = np.arange(wp.shape[1], dtype=np.int64)
    late = wp + 1 + first - r
    late[:, 0] = ask
    return np.maximum.accumulate(late, axis=1) + r + 1 + (1 - first)


def _events(rows: np.ndarray, lines: bool) -> np.ndarray:
    """Events of each row [batch, rows, lanes]: non-zero lanes, or set lines."""
    if not lines:
        return np.count_nonzero(rows, axis=-1)
    bits = np.zeros(rows.shape[:-1], np.int64)
    v = np.abs(rows.astype(np.int64))
    while v.any():
        bits += (v & 1).sum(axis=-1)
        v = v >> 1
    return bits


class _Cycles:
    def __init__(self, design: Design, trace: _Trace):
        self.d = design
        self.tr = trace
        self.graph = design.graph
        self.act = (trace.act if trace.steps == design.steps
                    else activity(self.graph, design.steps))
        self.lat: dict[str, int] = {}
        for p in design.ports:
            params = dict(p.params)
            self.lat[p.name] = 1 if params["MAP"] == 0 else int(params["G"]) + 2
        # one at a time, silent runs skipped (`Design.silence`): per (engine, step) the
        # inputs whose run was skipped, per value the inputs it is live for at a step
        self.skip = design.silence.skip if design.silence is not None else 0
        self.streamed = {(s.engine, s.buffer.node.name): s for s in design.streams}
        self.streams_of: defaultdict[int, list[Stream]] = defaultdict(list)
        for s in design.streams:
            self.streams_of[s.engine].append(s)
        self.skipped: dict[tuple[int, int], np.ndarray] = {}
        self.live: dict[tuple[str, int], np.ndarray] = {}
        self._pool_taps: dict[int, np.ndarray] = {}
        self._walk_taps: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._walk_rows: dict[tuple[int, int], np.ndarray] = {}  # cycles per row

    def active(self, value: str, t: int) -> bool:
        src = self.tr.source(value)[0]
        return bool(self.act.active[src][t])

    def valid(self, e: Engine, value: str, t: int) -> np.ndarray:
        """[batch] bool: engine e sees `value` as possibly non-zero at step t (its
        `sees` bit): active, and, one at a time, live (`Design.silence`; streaming the
        producer's rows: that one not skipped; the input codes: always)."""
        src = self.tr.source(value)[0]
        on = np.full(self.tr.batch, bool(self.act.active[src][t]))
        if self.d.silence is None or not on.any():
            return on
        s = self.streamed.get((e.index, src))
        if s is not None:
            return ~self.skipped.get((s.producer, t), ~on)
        return self.live.get((src, t), on)

    def _quiet(self, e: Engine, t: int) -> np.ndarray:
        """[batch] bool: engine e (of the SKIP mask) is skipped at step t: every value it
        reads is silent (snn_ctrl's `quiet`)."""
        if not self.skip >> e.index & 1:
            return np.zeros(self.tr.batch, bool)
        seen = np.zeros(self.tr.batch, bool)
        for v in e.reads:
            seen |= self.valid(e, v, t)
        return ~seen

    def _data(self, value: str, t: int) -> np.ndarray:
        """[batch] bool: `value` is active and live at step t (the input codes: active)."""
        src = self.tr.source(value)[0]
        on = np.full(self.tr.batch, bool(self.act.active[src][t]))
        return on & self.live.get((src, t), on)

    def _lives(self, e: Engine, t: int, ran: np.ndarray) -> None:
        """The inputs for which engine e's value is live at step t: written with a
        non-zero word (a spike train: a neuron layer's, a TD max pool's), or its engine
        started and saw an input live (a current)."""
        if self.d.silence is None or e.module == "snn_readout":
            return
        if e.module in ("snn_neuron", "snn_td_maxpool"):
            if self.tr.silent(e.node.name, t):
                ran = np.zeros_like(ran)
            else:
                ran = ran & self.tr.spikes(e.node.name, t).reshape(self.tr.batch, -1).any(
                    axis=1)
        else:
            seen = np.zeros(self.tr.batch, bool)
            for v in e.reads:
                seen |= self._data(v, t)
            ran = ran & seen
        self.live[(e.node.name, t)] = ran

    def engine(self, e: Engine, t: int, first: np.ndarray) -> np.ndarray:
        """Cycles of engine `e`'s run at step t, per input: its start and done cycles
        and its state machine's."""
        rule = getattr(self, "_" + e.module.removeprefix("snn_"))
        return 2 + rule(e, t, first)

    def _port(self, e: Engine, port: str) -> int:
        return self.lat[f"p{e.index}_{port}"]

    def _lines(self, e: Engine) -> bool:
        return _params(e)["SPIKE"] == 2

    def _dense(self, e: Engine, t: int, first: np.ndarray) -> np.ndarray:
        p, n = _params(e), e.node
        x = self.tr.spikes(n.inputs[0], t)
        rows = x.reshape(self.tr.batch, int(p["R"]), int(p["K"]))
        nc = int(p["M"]) // int(p.get("P", p["M"]))
        ev = -(-_events(rows, self._lines(e)) // max(1, p["V"]))
        # folded: the row's nc words written after its events, a cycle each
        return (self._port(e, "in") + 2 + (nc if nc > 1 else 0) + nc * ev).sum(axis=1)

    def _conv(self, e: Engine, t: int, first: np.ndarray) -> np.ndarray:
        p, n = _params(e), e.node
        op = n.op
        assert isinstance(op, o.Synapse)
        c, h, w = self.graph.node(n.inputs[0]).shape
        _, oh, ow = n.shape
        kh, kw = op.weight.shape[2:]
        x = self.tr.spikes(n.inputs[0], t)
        rows = Layout((c, h, w), CHANNELS_LAST, c)
        per_row = _events(np.stack([rows.arrange(v) for v in x]), self._lines(e))
        ty = taps(oh, kh, op.strides[0], op.pads[0], op.dilations[0], h, w)
        tx = taps(ow, kw, op.strides[1], op.pads[1], op.dilations[1], w, 1)
        nc = int(p["O"]) // int(p.get("P", p["O"]))
        lat = self._port(e, "in")
        reads = _window_reads(ty, tx, oh, ow, kh, kw).ravel()
        hit = reads[reads >= 0]
        # nc write cycles per pixel, one per padding tap, lat + 3 + nc * events per read
        fixed = oh * ow * nc + (reads.size - hit.size) + hit.size * (lat + 3)
        times = np.bincount(hit, minlength=per_row.shape[1])  # reads of each input row
        return fixed + nc * (per_row @ times)

    def _conv_rows(self, e: Engine, t: int, first: np.ndarray) -> np.ndarray:
        """Fixed slots: max(NG, IG) cycles per tap of every output position, whatever the
        spikes; the last tap's row arrives ILAT cycles after its request, its NG groups
        are added and the sum written. WALK: a cycle per V non-silent groups of each
        tap's row it walks (one if none; padding only where a window is all padding), and
        4 more."""
        p = _params(e)
        slots = p["OH"] * p["OW"] * p["KH"] * p["KW"]
        if p["WALK"]:
            return self._walk(e, t)[1].sum(axis=1) + 3
        s = max(p["NG"], p["IG"])
        return np.full(self.tr.batch, (slots - 1) * s + p["ILAT"] + p["NG"] + 2, np.int64)

    def _walk(self, e: Engine, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A WALK snn_conv_rows at step t: the input row each tap it walks reads (-1:
        padding), in the engine's order (position by position; a window's rows and
        columns of valid taps, `tap_range`, tap 0 on an axis of padding only), each
        tap's cycles [batch, taps]: a cycle per V non-silent groups of its row, the last
        V or fewer (one if none; a padding tap one), and the index of each position's
        first tap."""
        reads, starts = self._walk_reads(e)
        if (e.index, t) not in self._walk_rows:  # the engine's run, then its stalls
            p, n = _params(e), e.node
            x = self.tr.spikes(n.inputs[0], t)
            if op_of(n, o.Synapse).kind == "dense":
                rows = x.reshape(self.tr.batch, p["OH"], p["C"])
            else:
                c, h, w = self.graph.node(n.inputs[0]).shape
                lay = Layout((c, h, w), CHANNELS_LAST, c)
                rows = np.stack([lay.arrange(v) for v in x])
            live = (rows.reshape(self.tr.batch, rows.shape[1], p["NG"], -1) != 0).any(-1)
            self._walk_rows[(e.index, t)] = np.maximum(  # [batch, rows]
                -(-live.sum(axis=-1, dtype=np.int32) // max(1, p["V"])), 1)
        per_row = self._walk_rows[(e.index, t)]
        return reads, np.where(reads >= 0, per_row[:, np.maximum(reads, 0)], 1), starts

    def _walk_reads(self, e: Engine) -> tuple[np.ndarray, np.ndarray]:
        """A WALK snn_conv_rows's taps, whatever the spikes: the input row each reads
        (-1: padding) and the index of each position's first tap (`_walk`)."""
        if e.index not in self._walk_taps:
            p, n = _params(e), e.node
            op = op_of(n, o.Synapse)
            if op.kind == "dense":
                reads = starts = np.arange(p["OH"])
            else:
                _, h, w = self.graph.node(n.inputs[0]).shape
                ty = taps(p["OH"], p["KH"], op.strides[0], op.pads[0], op.dilations[0], h, w)
                tx = taps(p["OW"], p["KW"], op.strides[1], op.pads[1], op.dilations[1], w, 1)
                every = _window_reads(ty, tx, p["OH"], p["OW"], p["KH"], p["KW"])
                ys = [range(lo, hi + 1) for lo, hi in tap_range(ty, p["OH"], p["KH"])]
                xs = [range(lo, hi + 1) for lo, hi in tap_range(tx, p["OW"], p["KW"])]
                walked = [every[oy * p["OW"] + ox, [ky * p["KW"] + kx for ky in ys[oy]
                                                     for kx in xs[ox]]]
                          for oy in range(p["OH"]) for ox in range(p["OW"])]
                reads = np.concatenate(walked)
                starts = np.cumsum([0] + [len(w) for w in walked[:-1]])
            self._walk_taps[e.index] = reads, starts
        return self._walk_taps[e.index]

    def _neuron(self, e: Engine, t: int, first: np.ndarray) -> np.ndarray:
        p = _params(e)
        on = self.valid(e, e.node.inputs[0], t)
        if p.get("NP", p["D"]) == p["D"]:  # rows streamed: a request every IG cycles
            lat = np.where(on, self._port(e, "in"), 1)
            gap = np.where(on, max(1, p["IG"]), 1)
            return (p["R"] - 1) * gap + lat + 1
        row = np.where(on, max(2, self._port(e, "in") + 1), 2)
        chunks = int(p["D"]) // int(p.get("NP", p["D"]))  # a later chunk: one cycle
        return int(p["R"]) * (row + chunks - 1)

    def _td_matmul(self, e: Engine, t: int, first: np.ndarray) -> np.ndarray:
        p, n = _params(e), e.node
        a, b = n.inputs
        nb, nn, kk, mm = int(p["NB"]), int(p["N"]), int(p["K"]), int(p["M"])
        av, bv = self.valid(e, a, t), self.valid(e, b, t)
        sa = self.tr.spikes(a, t).reshape(self.tr.batch, nb, nn, kk)
        sb = self.tr.spikes(b, t).reshape(self.tr.batch, nb, kk, mm)
        ca = self.tr.before(a, t).reshape(sa.shape)
        lines = p["SPA"] == 2 or p["SPB"] == 2
        if lines:  # the lines of codes wider than a byte's shifts
            sa, sb = sa.astype(np.int64), sb.astype(np.int64)
            jb = int(p["JB"])
            bits = [((np.abs(sa) >> j) & 1) | ((ca != 0) & (((np.abs(sb) >> j) & 1).any(
                axis=-1))[:, :, None, :]) for j in range(1 << jb)]
            ev = sum(np.count_nonzero(bt, axis=-1) for bt in bits)
        else:
            rel = (sa != 0) | ((ca != 0) & (sb != 0).any(axis=-1)[:, :, None, :])
            ev = np.count_nonzero(rel, axis=-1)  # [batch, nb, nn]
        wait_a = np.where(av, max(2, self._port(e, "a") + 1), 2)
        wait_b = np.where(bv, max(2, self._port(e, "b") + 1), 2)
        phase_b = np.where(bv | first, nb * kk * (1 + wait_b), 0)
        return phase_b + (nb * nn * (1 + wait_a + 2) + (ev + 0).sum(axis=(1, 2)))

    def _td_matmul_rows(self, e: Engine, t: int, first: np.ndarray) -> np.ndarray:
        """A B with spikes: its rows as read (every batch's, BH of them a row) a request
        every BG cycles from the start (a silent B: no cycle, C_B is kept); the A rows
        of every batch (`_td_wait`: once B's last is in) a request every AG cycles (a
        silent A: a row a cycle), each written the cycle after it arrives."""
        p = _params(e)
        a = e.node.inputs[0]
        rows = p["NB"] * p["N"]
        return self._td_wait(e, t) + np.where(
            self.valid(e, a, t), (rows - 1) * p["AG"] + self._port(e, "a") + 3, rows + 1)

    def _td_wait(self, e: Engine, t: int) -> np.ndarray:
        """The cycles a TD-MatMul row engine's A phase waits for its B rows at step t
        (none if B is silent): the lowering's WAV (WAS for a silent A)."""
        p = _params(e)
        a, b = e.node.inputs
        return np.where(self.valid(e, b, t),
                        np.where(self.valid(e, a, t), p["WAV"], p["WAS"]), 0)

    def _td_maxpool(self, e: Engine, t: int, first: np.ndarray) -> np.ndarray:
        """Its rows not waited for: counted from the start (`_pool_counts`), pooled as
        they are (`_pool`)."""
        zero = np.zeros(self.tr.batch, np.int64)
        return self._pool(e, t, zero, self._pool_counts(e, t, zero))[1] - 2

    def _pool_counts(self, e: Engine, t: int, start: np.ndarray,
                     wp: np.ndarray | None = None) -> np.ndarray:
        """[batch, rows]: the cycle a TD max pool started at `start` counts each input
        row: requested every IG cycles from the cycle after the start, the port's latency
        before it arrives (a silent input: read a row a cycle, each counted 2 cycles
        after the start and after the one before); streaming a producer that writes its
        rows at `wp`, each asked for no earlier than 2 cycles after its write (row 0, at
        the start when written before it), as a neuron layer asks (`_follow`)."""
        p = _params(e)
        rows = p["H"] * p["W"]
        on = self.valid(e, e.node.inputs[0], t)
        gap = np.where(on, max(1, p["IG"]), 1)
        lat = np.where(on, self._port(e, "in"), 1)
        fixed = (start + lat + 1)[:, None] + gap[:, None] * np.arange(rows)
        if wp is None:
            return fixed
        return np.where(on[:, None], _follow("snn_neuron", wp, start), fixed)

    def _pool_reads(self, e: Engine) -> np.ndarray:
        """[outputs, taps]: the input row each tap of each output of a TD max pool reads
        (-1: padding), in its order."""
        if e.index not in self._pool_taps:
            p, op = _params(e), op_of(e.node, o.TDMaxPool)
            ty = taps(p["OH"], p["KH"], op.strides[0], op.pads[0], 1, p["H"], p["W"])
            tx = taps(p["OW"], p["KW"], op.strides[1], op.pads[1], 1, p["W"], 1)
            self._pool_taps[e.index] = _window_reads(ty, tx, p["OH"], p["OW"], p["KH"],
                                                     p["KW"])
        return self._pool_taps[e.index]

    def _pool(self, e: Engine, t: int, start: np.ndarray, counts: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
        """A TD max pool's outputs' write cycles [batch, outputs] and its end (the cycle
        after its done), from its start and the cycles it counts its rows (`counts`):
        the outputs in order from the cycle after the start, a tap read once its row is
        counted (a cycle after its count at the earliest). WIN: an output's taps all at
        once, written the cycle after; else a tap a cycle, written the cycle after the
        last. Done the cycle after the last write and the last count."""
        p = _params(e)
        reads = self._pool_reads(e)
        if p.get("IL", 1):
            ready = np.where(reads >= 0, counts[:, np.maximum(reads, 0)] + 1, -1)
        else:  # the pooling after the last count
            ready = np.broadcast_to((counts[:, -1] + 1)[:, None, None],
                                    (self.tr.batch,) + reads.shape)
        # a read at a_q = max(a_{q-1} + gap_q, ready_q) + 1, from a_{-1} = start + 1: a
        # window (WIN) a read, else a tap; gap_q 0, but 1 for a tap-a-cycle output's
        # first tap after the first output's (the cycle its predecessor is written); the
        # output written at its last. As a running maximum over the reads: a_q = S_q +
        # max(a_{-1}, max_{i <= q} (ready_i + 1 - S_i)), S_q the sum of (gap_i + 1), i <= q
        if p["WIN"]:
            ready = ready.max(axis=2)
            gap = np.zeros(ready.shape[1], np.int64)
        else:
            ready = ready.reshape(self.tr.batch, -1)
            gap = np.zeros(reads.shape, np.int64)
            gap[1:, 0] = 1
            gap = gap.ravel()
        total = np.cumsum(gap + 1)
        at = total + np.maximum((start + 1)[:, None], np.maximum.accumulate(ready + 1 - total,
                                                                       axis=1))
        writes = at if p["WIN"] else at[:, reads.shape[1] - 1::reads.shape[1]]
        return writes, np.maximum(writes[:, -1], counts[:, -1]) + 2

    def _add(self, e: Engine, t: int, first: np.ndarray) -> np.ndarray:
        """A slot every P cycles; the last row's sum is written when b's row arrives
        (a's, when b is silent; the slot's next cycle, when both are)."""
        p = _params(e)
        a, b = e.node.inputs
        last = np.where(self.valid(e, b, t), p["DAB"] + self._port(e, "b"),
                        np.where(self.valid(e, a, t), self._port(e, "a"), 0))
        return (p["R"] - 1) * max(1, p["P"]) + last + 1

    def _reduce(self, e: Engine, t: int, first: np.ndarray) -> np.ndarray:
        """A request every IG cycles (the first the cycle after the start), done the
        port's latency and a cycle after the last."""
        p = _params(e)
        reads = int(p["NOUT"]) * int(p["Q"])
        return np.full(self.tr.batch, (reads - 1) * max(1, p["IG"]) + self._port(e, "in") + 1,
                       np.int64)

    def _readout(self, e: Engine, t: int, first: np.ndarray) -> np.ndarray:
        p = _params(e)
        return np.full(self.tr.batch, int(p["R"]) * (self._port(e, "in") + 1), np.int64)

    def runs(self) -> dict[tuple[int, int], np.ndarray]:
        """Cycles of every engine run, by (engine, step), per input: start to done. One
        at a time, a run whose inputs are all silent (`_quiet`) is skipped: a cycle
        (`skipped` records it), and an engine's lazy reset waits for its first run that
        is not skipped."""
        out: dict[tuple[int, int], np.ndarray] = {}
        ran = np.zeros((len(self.d.engines), self.tr.batch), bool)  # started, so far
        for t in range(self.d.steps):  # in step order: the trace's running counts
            for e in self.d.engines:
                if self.act.run[e.node.name][t]:
                    skip = self._quiet(e, t)  # not started: done at once, a cycle
                    run = self.engine(e, t, ~ran[e.index])
                    out[(e.index, t)] = np.where(skip, 1, run)
                    if skip.any():
                        self.skipped[(e.index, t)] = skip
                    ran[e.index] |= ~skip
                    self._lives(e, t, ~skip)
        return out

    def run(self, runs: dict[tuple[int, int], np.ndarray]
            ) -> tuple[np.ndarray, dict[str, float]]:
        """Cycles per inference, per input, and the mean cycles of each engine, from the
        engines' `runs`."""
        per_engine: dict[str, float] = {}
        for (k, _), c in runs.items():
            name = self.d.engines[k].name
            per_engine[name] = per_engine.get(name, 0.0) + float(c.mean())
        total = self._flows(runs) if self.d.pipelined else self._one_at_a_time(runs)
        return total, per_engine

    def _one_at_a_time(self, runs: dict[tuple[int, int], np.ndarray]) -> np.ndarray:
        """The controller (snn_ctrl): a step costs a cycle (its first, in which its first
        engines are started; a step without engines: that cycle alone) and the span of
        its engines' runs, to its last cycle (the last done's, in which the next step's
        row is read), each started when the engines it waits for are done and those it
        starts with have started (`Design.waits`: its producers and the engines before
        it reading a RAM it reads). An engine streaming its producer's
        rows starts with it and asks for row r a cycle after the producer writes it
        (every producer writes its rows in order, a cycle apart at least, the last in the
        cycle before its done): one asking for a row a cycle asks for its last row no
        earlier than 2 cycles after that last write, and what follows takes as long as
        ever; a WALK snn_conv_rows (its taps' rows in any order) waits tap by tap
        (`_stalled`), a TD-MatMul row engine's A phases row by row (`_td_rows`), an
        snn_reduce read by read (`_reduce_stalled`). A skipped run (`skipped`) ends a
        cycle after its would-be start, and the engines streaming its rows read its value
        as silent (no row comes, none is waited for)."""
        total = np.zeros(self.tr.batch, np.int64)
        waits = self.d.waits()
        for t in range(self.d.steps):
            step = _Step(t)
            for e in self.d.engines:
                if (e.index, t) not in runs:
                    continue
                wait, along = waits[e.index]
                start = np.zeros(self.tr.batch, np.int64)
                for j in step.at:
                    if wait >> j & 1:
                        start = np.maximum(start, step.end[j])
                    if along >> j & 1:
                        start = np.maximum(start, step.at[j])
                run = runs[(e.index, t)]
                ss = self._streams(e, step)
                step.at[e.index] = start
                if ss:  # it waits for the rows
                    s = ss[0]
                    if e.module == "snn_conv_rows":
                        run = self._stalled(e, step, s.producer) + 1 - start
                    elif e.module == "snn_td_matmul_rows":
                        run = self._td_rows(e, step) - start
                    elif e.module == "snn_reduce":
                        run = self._reduce_stalled(e, step, s.producer) - start
                    elif e.module == "snn_td_maxpool":
                        run = self._pool_stalled(e, step, s.producer) - start
                    else:  # an add: the later of its producers' last rows
                        run = run + np.max([np.maximum(0, step.end[x.producer] - start
                                                       - x.buffer.rows) for x in ss], axis=0)
                step.end[e.index] = start + run
            total += 1 + np.max([self._last(k, t, step) for k in step.end], axis=0
                                ) if step.end else 1
        return total

    def _streams(self, e: Engine, step: _Step) -> list[Stream]:
        """The streams of engine e whose producers run at the step (so far)."""
        return [s for s in self.streams_of[e.index] if s.producer in step.at]

    def _last(self, k: int, t: int, step: _Step) -> np.ndarray:
        """The cycle engine k's run at step t lets the step end a cycle later: its done
        (skipped: its would-be start, when it left the pending engines)."""
        skip = self.skipped.get((k, t))
        return step.end[k] if skip is None else np.where(skip, step.at[k], step.end[k])

    def _written(self, e: Engine, step: _Step) -> np.ndarray:
        """[batch, rows]: the cycle engine e writes each row of its output at the step
        (engines the lowering marks `row_timed`): a streamed engine's from its requests,
        as they wait for the producer's rows, a TD-MatMul row engine's from its phases
        (`_td_rows`), a TD max pool's from its counts (`_pool`), any other's back from its
        last write (the cycle before its done) by its rows' costs."""
        k = e.index
        if k in step.writes:
            return step.writes[k]
        if e.module == "snn_td_matmul_rows":
            self._td_rows(e, step)
            return step.writes[k]
        ss = self._streams(e, step)
        if e.module == "snn_td_maxpool":
            if ss:
                self._pool_stalled(e, step, ss[0].producer)
                return step.writes[k]
            counts = self._pool_counts(e, step.t, step.at[k])
            writes = self._pool(e, step.t, step.at[k], counts)[0]
            skip = self.skipped.get((k, step.t))  # not started: nothing to wait for
            step.writes[k] = writes if skip is None else np.where(
                skip[:, None], (step.at[k] - 1)[:, None], writes)
            return step.writes[k]
        cost = self._row_costs(e, step.t)
        after = np.cumsum(cost[:, ::-1], axis=1)[:, ::-1] - cost  # the later rows' costs
        step.writes[k] = (step.end[k] - 2)[:, None] - after
        if ss:
            # the rows of the producers not skipped (a skipped one's: all there), the
            # later of the two for an add's
            wp = np.full_like(step.writes[k], -(1 << 40))
            live = np.zeros(self.tr.batch, bool)
            for s in ss:
                skip = self.skipped.get((s.producer, step.t), np.zeros(self.tr.batch, bool))
                wp = np.where(skip[:, None], wp, np.maximum(
                    wp, self._written(self.d.engines[s.producer], step)))
                live |= ~skip
            follow = _follow(e.module, wp, step.at[k])
            step.writes[k] = np.where(live[:, None], follow, step.writes[k])
        return step.writes[k]

    def _row_costs(self, e: Engine, t: int) -> np.ndarray:
        """[batch, rows]: the cycles between the writes of consecutive output rows of an
        unstalled run of e at step t."""
        p, b = _params(e), self.tr.batch
        if e.module == "snn_neuron":  # a whole row a cycle: a request every IG cycles
            gap = np.where(self.valid(e, e.node.inputs[0], t), max(1, p["IG"]), 1)
            return np.repeat(gap[:, None], p["R"], axis=1).astype(np.int64)
        if e.module == "snn_add":
            return np.full((b, p["R"]), max(1, p["P"]), np.int64)
        if e.module == "snn_dense":  # unfolded: a request, the port's latency, the events
            x = self.tr.spikes(e.node.inputs[0], t).reshape(b, p["R"], p["K"])
            return self._port(e, "in") + 2 + -(-_events(x, self._lines(e)) // max(1, p["V"]))
        assert e.module == "snn_conv_rows", e.module  # the lowering's `row_timed`
        taps_ = p["KH"] * p["KW"]
        if p["WALK"]:
            _, cyc, starts = self._walk(e, t)
            return np.add.reduceat(cyc, starts, axis=1)
        return np.full((b, p["OH"] * p["OW"]), taps_ * max(p["NG"], p["IG"]), np.int64)

    def _td_rows(self, e: Engine, step: _Step) -> np.ndarray:
        """A TD-MatMul row engine's run at the step, from its start: its A rows once its
        B rows are in (`_td_wait`), row r asked for AG cycles after the one before
        (the first as the phase begins) and, streaming the rows of the producer of an A
        it sees (`valid`), no earlier than the cycle after it writes that row; a row is
        written the port's latency and 2 cycles after it is asked for, done the cycle
        after the last write (a silent A: a row a cycle, written the cycle after the one
        before). Its rows' write cycles go to `step.writes`; returns its end (the cycle
        after its done)."""
        p, k = _params(e), e.index
        a = e.node.inputs[0]
        rows, ag = p["NB"] * p["N"], max(1, p["AG"])
        seen = self.valid(e, a, step.t)
        wp = self._stream_writes(e, step, a)
        lat = self._port(e, "a")
        first = step.at[k] + 1 + self._td_wait(e, step.t)  # the A phase's first cycle
        first = np.maximum(first, self._td_b_phase(e, step))
        # ask_r = max(ask_{r-1} + AG, wp_r + 1), from ask_0 = max(first, wp_0 + 1): as a
        # running maximum, ask_r = r * AG + max(first, max_{i <= r} (wp_i + 1 - i * AG))
        r = np.arange(rows, dtype=np.int64)
        ask = first[:, None] + r * ag
        if wp is not None:
            wp = wp[:, np.minimum(r, wp.shape[1] - 1)]  # a head split's rows read again
            late = np.maximum.accumulate(wp + 1 - r * ag, axis=1) + r * ag
            ask = np.where(seen[:, None], np.maximum(ask, late), ask)
        writes = np.where(seen[:, None], ask + lat + 2, first[:, None] + 1 + r)
        step.writes[k] = writes
        return np.where(seen, ask[:, -1] + lat + 3, first + rows + 1) + 1

    def _stream_writes(self, e: Engine, step: _Step, value: str) -> np.ndarray | None:
        """[batch, rows]: the write cycles of the rows of `value` whose producer engine e
        streams at the step, if it does and e sees them (`valid`) at some input."""
        s = self.streamed.get((e.index, self.tr.source(value)[0]))
        if s is None or s.producer not in step.at or not self.valid(e, value, step.t).any():
            return None
        return self._written(self.d.engines[s.producer], step)

    def _td_b_phase(self, e: Engine, step: _Step) -> np.ndarray:
        """A TD-MatMul row engine streaming the rows of the producer of a B it sees: the
        first cycle its A phase may begin by its B rows, asked for a cycle apart from its
        start, each the cycle after it is written at the earliest: WAV - (BQ - 1) cycles
        (WAS for a silent A) after the last request, and not before the cycle after B's
        last write (a phase beginning before the last request: once every row is
        written, the requests left are known). 0 if it does not stream B."""
        p, k = _params(e), e.index
        a, b = e.node.inputs
        wp = self._stream_writes(e, step, b) if p["SB"] else None
        if wp is None:
            return np.zeros(self.tr.batch, np.int64)
        bq = wp.shape[1]
        r = np.arange(bq, dtype=np.int64)
        ask = np.maximum(step.at[k] + bq - 1, np.max(wp + 1 + (bq - 1) - r, axis=1))
        wait = np.where(self.valid(e, a, step.t), p["WAV"], p["WAS"]) - (bq - 1)
        return np.where(self.valid(e, b, step.t),
                        np.maximum(ask + 1 + wait, wp[:, -1] + 1), 0)

    def _pool_stalled(self, e: Engine, step: _Step, producer: int) -> np.ndarray:
        """A TD max pool streaming its producer's rows: its end (the cycle after its
        done); its outputs' write cycles go to `step.writes`. IL = 0 (a producer whose
        rows' times are not known): only its last count matters, as many cycles later
        as the producer's done leaves too few for a row a cycle."""
        k = e.index
        if _params(e).get("IL", 1):
            wp = self._written(self.d.engines[producer], step)
            counts = self._pool_counts(e, step.t, step.at[k], wp)
        else:  # its producer's rows' times unknown: its last row asked for no earlier
            # than 2 cycles after its done (what matters: the pooling waits for it)
            counts = self._pool_counts(e, step.t, step.at[k])
            late = np.maximum(0, step.end[producer] - step.at[k] - counts.shape[1])
            counts[:, -1] += np.where(self.valid(e, e.node.inputs[0], step.t), late, 0)
        step.writes[k], end = self._pool(e, step.t, step.at[k], counts)
        return end

    def _reduce_stalled(self, e: Engine, step: _Step, producer: int) -> np.ndarray:
        """An snn_reduce streaming its producer's rows: its end (the cycle after its
        done). It asks for row q*NOUT + j for each output row j and q < Q in turn, IG
        cycles after the one before (the first the cycle after the start) and no earlier
        than 2 cycles after its row is written; done the port's latency and a cycle after
        the last."""
        p = _params(e)
        wp = self._written(self.d.engines[producer], step)
        nout, q, gap = p["NOUT"], p["Q"], max(1, p["IG"])
        ask = step.at[e.index] + 1 - gap
        for j in range(nout):
            for i in range(q):
                ask = np.maximum(ask + gap, wp[:, i * nout + j] + 2)
        return ask + self._port(e, "in") + 2

    def _stalled(self, e: Engine, step: _Step, producer: int) -> np.ndarray:
        """A WALK snn_conv_rows streaming its producer's rows: its done cycle. A tap is
        asked for in the cycle its previous one's walk ends (the first a cycle after the
        start), but not before the cycle after its row is written; an output position is
        written 2 cycles after its last tap's walk, done a cycle later."""
        reads, cyc, starts = self._walk(e, step.t)
        wp = self._written(self.d.engines[producer], step)
        ends = np.append(starts[1:], len(reads)) - 1  # positions' last taps
        # after tap i: a_i = max(a_{i-1}, wp[row_i] + 1) + cyc_i (a padding tap: no
        # wait), from a_{-1} = the start + 1; as a running maximum over the taps:
        # a_i = C_i + max(a_{-1}, max_{j <= i} (wp[row_j] + 1 - C_{j-1})), C the
        # cumulative cycles
        total = np.cumsum(cyc, axis=1)
        never = np.iinfo(np.int64).min // 4
        wait = np.where(reads >= 0, wp[:, np.maximum(reads, 0)] + 1 - (total - cyc), never)
        ask = total + np.maximum((step.at[e.index] + 1)[:, None],
                                 np.maximum.accumulate(wait, axis=1))
        out = ask[:, ends] + 2
        step.writes[e.index] = out
        return out[:, -1] + 1

    def _flows(self, runs: dict[tuple[int, int], np.ndarray]) -> np.ndarray:
        """Pipelined, the sequencers (snn_flow): `at[k, t]` is the cycle engine k gets to
        step t (1 after the start). A step it does not run at costs a cycle; a run starts
        when its producers have got past step t and each reader past step t - dist[t]
        (its hold: the step of the write whose bank step t overwrites; none before the
        inference), and it gets to t + 1 a cycle after its done. The inference ends when
        every engine has got to the end."""
        steps, n = self.d.steps, len(self.d.engines)
        at = np.zeros((n, steps + 1, self.tr.batch), np.int64)
        at[:, 0] = 1
        for t in range(steps):
            for f in self.d.flows:  # in engine order: producers before their readers
                k = f.engine
                if (k, t) not in runs:
                    at[k, t + 1] = at[k, t] + 1
                    continue
                start = at[k, t]
                for p in f.producers:
                    start = np.maximum(start, at[p, t + 1])
                for h in f.holds:
                    if h.dist[t] and t - h.dist[t] + 1 > 0:
                        start = np.maximum(start, at[h.reader, t - h.dist[t] + 1])
                at[k, t + 1] = start + runs[(k, t)] + 1
        return at[:, steps].max(axis=0)

    def stream(self, runs: dict[tuple[int, int], np.ndarray]) -> int:
        """Pipelined, the inputs streamed back to back (inference n on input n, a code
        a cycle whenever the top takes one, the logits taken as soon as they are sent):
        the cycles from the first inference's last logit to the last one's. Edges (clock
        counts) of: `loaded[n]` its last code taken; `reach[k][g]` engine k's counters at
        absolute step g = n * steps + t; `sent[n]` its last logit taken. The rules are
        the sequencers' (`_flows`) and the top's: step 0 of an inference waits for its
        codes (the readout: for the previous logits sent) and costs a cycle; the loader
        takes inference m's codes once inference m - IN_FLIGHT is sent and every reader
        of the codes is past inference m - 2 (two input banks); the logits go out once
        every engine is past the inference, two cycles each."""
        d = self.d
        steps, count = d.steps, self.tr.batch
        n_in, n_out = d.input_buffer.layout.size, d.logits
        code_readers = [c.reader for c in d.input_buffer.copies]
        never = -(1 << 40)
        reach = [[never] * (count * steps + 1) for _ in d.engines]
        loaded, sent = [0] * count, [0] * count
        for n in range(count):
            free = max([sent[n - d.in_flight] if n >= d.in_flight else never]
                       + [reach[r][(n - 1) * steps] if n >= 2 else never
                          for r in code_readers])
            loaded[n] = max(loaded[n - 1] if n else 0, free) + n_in
            for t in range(steps):
                g = n * steps + t
                for f in d.flows:
                    k = f.engine
                    if t == 0:  # the sequencer opens the inference
                        gate = max(reach[k][g], loaded[n])
                        if k == d.readout.index and n:
                            gate = max(gate, sent[n - 1])
                        at = gate + 1
                    else:
                        at = reach[k][g]
                    if (k, t) not in runs:
                        reach[k][g + 1] = at + 1
                        continue
                    start = at
                    for p in f.producers:
                        start = max(start, reach[p][g + 1])
                    for h in f.holds:
                        if h.dist[t] and g - h.dist[t] + 1 > 0:
                            start = max(start, reach[h.reader][g - h.dist[t] + 1])
                    reach[k][g + 1] = start + int(runs[(k, t)][n]) + 1
            done = max(reach[k][(n + 1) * steps] for k in range(len(d.engines)))
            begin = max(done, sent[n - 1] if n else never) + 1
            sent[n] = begin + 2 * n_out
        return sent[-1] - sent[0]


def cycles(graph: Graph, hw: HwConfig = DEFAULT, x: np.ndarray | None = None,
           design: Design | None = None, run: SimResult | None = None) -> dict:
    """Estimated cycles per inference of the Verilog design of `graph` (knob `hw`) on
    inputs `x` (default: the testbench's vectors): {min, mean, max, per_input,
    per_engine (mean cycles of each engine over the inference), inputs}. `run`: the step
    engine's traced run on `x`, if the caller has it."""
    design = lower(graph, hw) if design is None else design
    x = default_inputs(graph, ESTIMATE_VECTORS) if x is None else np.asarray(x, np.float64)
    model = _Cycles(design, _Trace(graph, x, run))
    runs = model.runs()
    total, per_engine = model.run(runs)
    out = {"min": int(total.min()), "mean": float(total.mean()), "max": int(total.max()),
           "per_input": [int(v) for v in total], "per_engine": per_engine,
           "inputs": len(x)}
    if design.pipelined:  # the inputs streamed back to back, inferences in flight
        out["stream"] = model.stream(runs)
    return out


CLOCK_MHZ = 100  # the clock the report's inferences per second assume


def estimate(graph: Graph, hw: HwConfig = DEFAULT, x: np.ndarray | None = None,
             design: Design | None = None, run: SimResult | None = None) -> dict:
    """report.json's `targets.verilog.estimate`: cycles per inference (on `x`, default
    the testbench's vectors), the initiation interval and the resources per FPGA family,
    from the design alone. One inference at a time, the initiation interval is the
    latency (the largest); pipelined, with inferences in flight, it is the mean cycles
    between finished inferences when the inputs stream back to back (`stream_cycles`
    from the first inference's last logit to the last one's, over the inferences after
    the first), and the inferences per second follow from it."""
    design = lower(graph, hw) if design is None else design
    c = cycles(graph, hw, x, design, run)
    per_input = {k: c[k] for k in ("min", "mean", "max", "per_input", "inputs")}
    mean = c["mean"]
    streamed = {}
    if "stream" in c and c["inputs"] > 1:
        ii = c["stream"] / (c["inputs"] - 1)
        streamed = {"initiation_interval": round(ii, 1), "stream_cycles": c["stream"],
                    "inferences_per_second": round(CLOCK_MHZ * 1e6 / max(ii, 1), 1)}
    return {"cycles_per_inference": per_input,
            "initiation_interval": per_input["max"],
            "clock_mhz": CLOCK_MHZ,
            "inferences_per_second": round(CLOCK_MHZ * 1e6 / max(mean, 1), 1),
            **streamed,
            "cycles_by_engine": {k: round(v, 1) for k, v in c["per_engine"].items()},
            **resources(design)}


# ---------------------------------------------------------------- resources


def _copy(j: int) -> str:
    """The name suffix of copy j of a weight ROM (V events a cycle: V copies; the first
    has none)."""
    return f".copy{j}" if j else ""


def memories(design: Design) -> list[tuple[str, str, int, int]]:
    """Every memory of the design: (name, kind, depth, width); kind is "ram" (written
    while running), "rom" (a synchronous read of constants: weights, tables), "romblock"
    (a ROM the RTL asks to be block RAM: a folded synapse engine's weight ROM of
    FOLDED_ROM_BLOCK_DEPTH words or more, snn_rom's BLOCK) or "lut" (constants read
    combinationally: logic)."""
    mems = [(f"{b.name}{'.' + str(j) if j else ''}", "ram", b.rows, b.word)
            for b in design.buffers if not design.pipelined for j in range(1 + len(b.twins))]
    for b in design.buffers if design.pipelined else []:  # banked, a copy per reader
        mems += [(f"{b.name}.{j}", "ram", b.ram_depth(c.banks), b.word)
                 for j, c in enumerate(b.copies)]
    mems += [(f"flow{f.engine}", "lut", design.steps + 1, f.width) for f in design.flows]
    for e in design.engines:
        p = _params(e)
        if e.module == "snn_neuron":
            tw = p["L"] * p["WC"] + 1
            lanes = p.get("NP", p["D"])
            nc = p["D"] // lanes
            mems += [(f"{e.name}.v", "ram", p["R"] * nc, lanes * p["WV"]),
                     (f"{e.name}.n", "ram", p["R"] * nc, lanes * p["NB"]),
                     (f"{e.name}.th", "lut" if p["TH_ASYNC"] else "rom", p["TROWS"] * nc,
                      lanes * tw)]
        elif e.module in ("snn_dense", "snn_conv"):
            m = p["M"] if e.module == "snn_dense" else p["O"]
            lanes = p.get("P", m)
            depth = (p["K"] if e.module == "snn_dense"
                     else p["KH"] * p["KW"] * p["C"]) * (m // lanes)
            block = lanes < m and depth >= FOLDED_ROM_BLOCK_DEPTH
            mems += [(f"{e.name}.w{_copy(j)}", "romblock" if block else "rom", depth,
                      lanes * p["WW"]) for j in range(max(1, p["V"]))]  # V copies
            if lanes < m:  # the accumulator of a folded engine: a word per chunk
                mems.append((f"{e.name}.acc", "ram", m // lanes, lanes * p["WO"]))
        elif e.module == "snn_conv_rows":  # a word of E channels' weight rows, V copies
            mems += [(f"{e.name}.w{_copy(j)}", "rom", p["KH"] * p["KW"] * p["NG"],
                      p["E"] * p["O"] * p["WW"]) for j in range(max(1, p["V"]))]
        elif e.module == "snn_td_matmul":
            mems += [(f"{e.name}.cb", "ram", p["NB"] * p["K"], p["M"] * p["WCB"]),
                     (f"{e.name}.ca", "ram", p["NB"] * p["N"], p["K"] * p["WCA"])]
        elif e.module == "snn_td_matmul_rows":  # C_B in registers (`_features`)
            mems.append((f"{e.name}.ca", "ram", p["NB"] * p["N"], p["K"] * p["WCA"]))
        elif e.module == "snn_td_maxpool":
            pw = p["WCNT"] if not p["SPIKE"] else p["WS"]
            # a copy per tap (WIN; else one) and one for the counting
            copies = (p["KH"] * p["KW"] if p["WIN"] else 1) + 1
            mems += [(f"{e.name}.count.{j}", "ram", p["H"] * p["W"], p["C"] * p["WCNT"])
                     for j in range(copies)]
            mems.append((f"{e.name}.prev", "ram", p["OH"] * p["OW"], p["C"] * pw))
        elif e.module == "snn_readout":
            mems += [(f"{e.name}.acc", "ram", p["R"], p["D"] * p["WA"]),
                     (f"{e.name}.bias", "rom", p["R"], p["D"] * p["WB"])]
    return mems


# How Yosys 0.23 maps a memory (memory_libmap): RAMs go to the cheapest of block RAM,
# distributed RAM (Xilinx) and flip-flops, by the costs of its cell libraries
# (share/yosys/xilinx/brams_xc4v.txt, lutrams_xc5v.txt, ice40/brams.txt): a RAMB18 costs
# 129, a RAMB36 257, a LUTRAM cell 8, an SB_RAM40_4K 64, a flip-flop bit 1. Xilinx ROMs
# (no distributed ROM) become block RAM by themselves only when deeper than 256 words
# and at least half a RAMB18 (measured on Yosys 0.23: 300x100 and 512x18 map to RAMB18s,
# 256x128, 192x100 and 1024x8 to LUTs); iCE40 ROMs by cost, a soft-logic ROM bit costing
# 1/16. snn_rom asks for block RAM (rom_style) when a ROM has at least ROM_BLOCK_DEPTH
# words and half a RAMB18 of bits, in both families (a 64 x 432-bit ROM: 6 RAMB36, 27
# SB_RAM40_4K); snn_ram likewise for the RAMs of `ram_block`. Shapes are (depth, width)
# of one block.
XC7_RAMB18 = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))
XC7_RAMB36 = ((32768, 1), (16384, 2), (8192, 4), (4096, 9), (2048, 18), (1024, 36),
              (512, 72))
XC7_LUTRAM = ((32, 6), (64, 3))  # simple dual-port LUTRAM cells (RAM32M-, RAM64M-like)
XC7_ROM_MIN_DEPTH = 257
XC7_ROM_MIN_BITS = 9216
# a folded synapse engine's weight ROM this deep or deeper is block RAM in both families
# (snn_dense's and snn_conv's WBLOCK, snn_rom's BLOCK): in logic a 1,024 x 8-bit ROM took
# 240 LUTs more than its RAMB18 (Yosys 0.23 synth_xilinx, the bundled example's q layer
# at --parallel 1)
FOLDED_ROM_BLOCK_DEPTH = 1024
ROM_BLOCK_DEPTH = 64  # any ROM this deep and of XC7_ROM_MIN_BITS or more (snn_rom's rule)


def ram_block(depth: int, width: int) -> bool:
    """snn_ram's BLOCK: a RAM that asks for block RAM (ram_style), which Yosys's costs
    would keep in LUTRAM: at least 64 words of at least 72 bits (24 RAM64M cells a
    RAMB36) or at least 32 words of at least 512 bits."""
    return (depth >= 64 and width >= 72) or (depth >= 32 and width >= 512)
ICE40_BRAM = ((2048, 2), (1024, 4), (512, 8), (256, 16))
COST = {"ramb18": 129, "ramb36": 257, "lutram": 8, "ice40": 64}
LOGIC_COST = {"rom": 1 / 16, "ram": 1.0, "lut": 1 / 16}


def _blocks(depth: int, width: int, shapes: tuple[tuple[int, int], ...]) -> int:
    """Fewest blocks of one shape holding `depth` words of `width` bits."""
    return min(-(-depth // d) * -(-width // w) for d, w in shapes)


def mapping(kind: str, depth: int, width: int, family: str) -> tuple[str, float]:
    """Where a memory goes in `family` and how many of them: ("ramb36", n) with RAMB18s
    as halves, ("lutram", cells), ("bram", SB_RAM40_4Ks) or ("logic", bits)."""
    bits = depth * width
    options = [(bits * LOGIC_COST.get(kind, 0.0), "logic", float(bits))]
    if kind == "lut":  # a combinational read is no block RAM
        return "logic", float(bits)
    block = ((kind == "rom" and depth >= ROM_BLOCK_DEPTH and bits >= XC7_ROM_MIN_BITS)
             or (kind == "ram" and ram_block(depth, width)))
    if family == "xc7":
        n18, n36 = _blocks(depth, width, XC7_RAMB18), _blocks(depth, width, XC7_RAMB36)
        bram = [(COST["ramb18"] * n18, "ramb36", n18 / 2),
                (COST["ramb36"] * n36, "ramb36", float(n36))]
        if kind == "romblock":
            return min(bram)[1:]
        if kind == "rom":
            if block or (depth >= XC7_ROM_MIN_DEPTH and bits >= XC7_ROM_MIN_BITS):
                return min(bram)[1:]
            return "logic", float(bits)
        if block:
            return min(bram)[1:]
        cells = _blocks(depth, width, XC7_LUTRAM)
        options += bram + [(COST["lutram"] * cells, "lutram", float(cells))]
    else:
        blocks = _blocks(depth, width, ICE40_BRAM)
        if block or kind == "romblock":  # asked for block RAM
            return "bram", float(blocks)
        options.append((COST["ice40"] * blocks, "bram", float(blocks)))
    cost, where, count = options[0]  # soft logic unless something is cheaper
    for c, w, n in options[1:]:
        if c < cost:
            cost, where, count = c, w, n
    return where, count


def _dsp_per_multiply(a: int, b: int) -> int:
    """DSP48E1s of one unsigned a x b-bit product (25 x 18 signed: 24 x 17 unsigned
    operand bits per DSP; a wider product takes several). The analog layer multiplies a
    code (zero-extended: its own width; sign-extended: the output width) by a
    sign-extended weight (the output width)."""
    wide, narrow = max(a, b), min(a, b)
    return -(-wide // 24) * -(-narrow // 17)


def _tree_bits(levels: int, leaf: int, top: int) -> int:
    """Adder bits of a balanced tree of 2^levels leaves of `leaf` bits (a node one bit
    wider than its operands, at most `top`)."""
    return sum((1 << (levels - s - 1)) * min(top, leaf + s + 1) for s in range(levels))


def _features(design: Design, family: str) -> dict[str, float]:
    """What the LUT and FF counts scale with: datapath bits by role, memories left in
    soft logic or distributed RAM, control per engine and buffer, and the event slots of
    the spike-driven engines' priority encoders (`events`: snn_first_one over a row's
    inputs, or over their lines when the spikes are numbers on weighted lines, whose
    weights are also shifted by the line: JB more adder bits a lane bit)."""
    f = {"adder": 0.0, "register": 0.0, "select": 0.0, "lutram": 0.0, "romlogic": 0.0,
         "ramlogic": 0.0, "ramreg": 0.0,
         "engines": float(len(design.engines) + len(design.buffers)),
         "dsp_bits": 0.0, "ramb36": 0.0, "bram": 0.0, "tree": 0.0, "romwide": 0.0,
         "events": 0.0, "turn": 0.0}
    for name, kind, depth, width in memories(design):
        where, count = mapping(kind, depth, width, family)
        if where == "logic" and kind == "ram" and depth == 1 and family == "xc7":
            f["ramreg"] += count  # one word: a register, no address decoding
        elif where == "logic":
            f["ramlogic" if kind == "ram" else "romlogic"] += count
        else:
            f[where] += count
        if where in ("logic", "lutram") and kind != "lut" and ".copy" not in name:
            # the read register of a memory kept in LUTs (a further copy of a weight ROM
            # in logic counts none: the tiny transformer's seven walking engines at V = 2,
            # Yosys synth_xilinx, +140 FFs over V = 1, the estimate 2% above it)
            f["register"] += width
    for e in design.engines:
        p = _params(e)
        if e.module == "snn_neuron":
            d, wc = p.get("NP", p["D"]), p["WC"]
            f["adder"] += d * (p["WV"] + 2 * wc + p["NB"])
            f["select"] += d * wc * p["L"]
            if d < p["D"]:  # the kept input row and spikes of a folded row
                f["register"] += p["D"] * (p["WI"] + p.get("SW", 1))
        elif e.module in ("snn_dense", "snn_conv"):
            m = p["M"] if e.module == "snn_dense" else p["O"]
            lanes, wo = p.get("P", m), p["WO"]
            lines = p["JB"] if p["SPIKE"] == 2 else 0  # the weights shifted by the line
            v = max(1, p["V"])  # V events a cycle: V rows added a lane, V encoders
            f["adder"] += lanes * wo * (1 + lines) * v
            f["events"] += ((p["K"] or p["C"]) << lines) * v  # snn_first_one's event slots
            # the accumulator (folded: a RAM, among the memories) and the row's events
            f["register"] += (m * wo if lanes == m else 0) + (p["K"] or p["C"]) * (
                1 + p["ANALOG"] * p["WIN"])
            f["select"] += (p["K"] or p["C"]) * (1 + p["ANALOG"] * p["WIN"])
            if p["ANALOG"]:
                f["dsp_bits"] += lanes * _dsp_per_multiply(
                    p["WO"] if p["IN_SIGNED"] else p["WIN"], p["WO"])
        elif e.module == "snn_conv_rows":  # per output lane a tree of V*E terms
            v = max(1, p["V"])  # walking V groups a cycle: V copies of the ROM (memories)
            ve = v * p["E"]
            o_, wo, n_in = p["O"], p["WO"], ve * (1 + p["ANALOG"] * p["WIN"])
            f["adder"] += o_ * (ve - 1) * wo + o_ * wo
            # the weight bits of a word read and added a cycle (a further slot's ANDs go
            # into its adders' LUTs: the tiny transformer at V = 2, Yosys synth_xilinx,
            # +778 LUTs over V = 1, estimated +1,523 with them and +984 without)
            f["romwide"] += p["E"] * o_ * p["WW"]
            f["register"] += o_ * wo + p["C"] * p["WIN"]  # the accumulator, the row
            f["select"] += o_ * ve * p["WW"] + n_in  # the terms, the groups' inputs
            f["events"] += (v - 1) * p["NG"]  # the further slots' priority encoders
            if p["ANALOG"]:
                f["dsp_bits"] += o_ * ve * _dsp_per_multiply(
                    p["WO"] if p["IN_SIGNED"] else p["WIN"], p["WO"])
        elif e.module == "snn_td_matmul":
            k, m, wo = p["K"], p["M"], p["WO"]
            f["adder"] += m * (2 * wo + p["WCB"]) + k * p["WCA"]
            f["events"] += k << (p["JB"] if 2 in (p["SPA"], p["SPB"]) else 0)
            f["register"] += k * m * p.get("WSB", 1) + k * p["WCA"] + m * wo
            f["select"] += k * (m * p.get("WSB", 1) + p["WCA"])
        elif e.module == "snn_td_matmul_rows":  # 2K selected counts per output lane
            k, m, wo = p["K"], p["M"], p["WO"]
            tree = m * _tree_bits(p["LT"], max(p["WCA"], p["WCB"]), wo)
            f["tree"] += tree
            # C_B and S_B of every batch (a ring each, its row adders); several batches
            # turn (`turn`: a two-way selection a bit, the B row's or the next batch's)
            bits = p["NB"] * (p["WCB"] + 1) * p["BR"] * p["BL"]
            f["adder"] += tree + p["NB"] * p["BL"] * p["WCB"] + k * p["WCA"]
            f["register"] += bits + k
            f["turn"] += bits if p["NB"] > 1 else 0
        elif e.module == "snn_td_maxpool":
            c, w = p["C"], p["WCNT"]
            f["adder"] += 3 * c * w
            if p["WIN"]:  # the window's maximum: a comparison per further tap
                f["adder"] += (p["KH"] * p["KW"] - 1) * c * w
            else:
                f["register"] += c * w
        elif e.module in ("snn_add", "snn_reduce"):
            d, wo = p["D"], p["WO"]
            f["adder"] += d * wo
            f["register"] += d * wo
        elif e.module == "snn_readout":
            f["adder"] += p["D"] * (p["WA"] + p["WL"])
            f["select"] += p["D"] * p["WL"]
    for port in design.ports:
        q = dict(port.params)
        if q["MAP"]:  # the assembled row; a table's segments need a lane selection
            bits = int(q["VD"]) * int(q["W"])
            f["register"] += bits
            if q["MAP"] == 1:
                f["select"] += int(q["S"]) * int(q["W"]) * int(q["SD"])
    return f


# LUTs and FFs per unit of each feature, by family: non-negative least squares on the
# relative error against Yosys 0.23 (synth_xilinx -family xc7, synth_ice40), keeping the
# features with the smallest leave-one-out error; bench/fit_estimate.py refits them (its
# designs and Yosys's counts in bench/fit_estimate_<family>.json): tiny CNNs and
# transformers at several knob settings and neuron kinds, the generated MLP at
# --parallel 8 and, for xc7, the bundled example at --parallel 8, --parallel 1 and its
# fast setting (examples/digits_vit/hw_100t.json). xc7 refitted after snn_conv_rows and
# the block RAM requests of snn_rom, snn_ram and snn_acc_ram (the designs they changed
# re-synthesized: every fitted design within 8% of Yosys's LUTs and 16% of its FFs, the
# held-out ones within 9% and 16%). xc7 LUTs: adder bits (the datapath the knob folds; a
# line-weighted engine's shift of the weights counts JB adder bits a lane bit), the event
# slots of the spike-driven engines' priority encoders (`events`: the multi-spike CNN was
# -33% without them), ROMs left in logic, one-word RAMs in logic (`ramreg`: the buffers of
# an MLP, a row each) and a control cost per engine and buffer (leave-one-out error 20.9%,
# at the bundled example at --parallel 1; selection, register or LUTRAM bits besides fit
# no better; without `adder` the estimate of a small design does not move with the knob;
# LUTRAM cells are not LUTs in Yosys's count); xc7 FFs: registers and one-word RAMs
# (leave-one-out 18%, at the MLP). The adder trees of snn_td_matmul_rows (`tree`: their
# adder bits) are not fitted (bench/fit_estimate.py keeps them): 1.6 LUTs a bit, from
# Yosys synth_xilinx on the bundled example's engine alone (16 lanes of 32 terms: 4,418
# LUTs against 1,031 for the event engine it replaces). snn_conv_rows (`romwide`: the
# weight bits its ROM word holds, E channels' rows, read and added a cycle) is not fitted
# either: about a LUT a bit besides its adder and ROM bits, from Yosys synth_xilinx on the
# bundled example's convolutions and linear layers alone at E = 1, 4 and 16 (the default
# engines alone within -33% .. +15% at the coefficients before this refit; the
# tokenizer's second convolution at E = 8, not the default, 11,685 LUTs against 6,645).
# The iCE40 coefficients were not refitted with them. Nor is `turn` (the C_B and S_B bits
# of a row engine of several batches, each a two-way selection between its ring's next
# row and the next batch's): 0.94 xc7 LUTs a bit, from Yosys synth_xilinx on the bundled
# example's attn.v engine alone (2 heads: 6,367 LUTs and 2,161 FFs against 4,392 and
# 1,210 with one batch in registers and C_B in a count RAM), a LUT4 a bit for iCE40.
_LUT_COEF = {"xc7": {"adder": 1.098, "romlogic": 0.06239, "ramreg": 0.6284, "engines": 27.48,
                     "events": 3.136, "tree": 1.6, "romwide": 1.0, "turn": 0.94},
             "ice40": {"adder": 1.683, "register": 0.956, "engines": 51.42, "turn": 1.0}}
_FF_COEF = {"xc7": {"register": 1.053, "ramreg": 1.039},
            "ice40": {"register": 1.267, "select": 0.2659, "ramlogic": 0.4067,
                      "engines": 51.95}}


def resources(design: Design) -> dict:
    """Estimated resources per family: {"xc7": {lut, ff, bram36, dsp}, "ice40": {lut, ff,
    bram, dsp}}, from the design's memories and datapaths."""
    out = {}
    for family in ("xc7", "ice40"):
        f = _features(design, family)
        figures: dict[str, float] = {
            "lut": round(sum(c * f[k] for k, c in _LUT_COEF[family].items())),
            "ff": round(sum(c * f[k] for k, c in _FF_COEF[family].items()))}
        if family == "xc7":
            figures |= {"bram36": f["ramb36"], "dsp": int(f["dsp_bits"])}
        else:
            figures |= {"bram": int(f["bram"]), "dsp": 0}
        out[family] = figures
    return out
