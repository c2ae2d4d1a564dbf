"""Lower the SNN IR to a hardware design: one engine per layer, one RAM per value.

Every value an engine produces lives in a buffer RAM in the top; layout ops (Reshape,
Transpose, Take) are resolved at compile time into address maps between a consumer and
the buffer it reads. Widths come from the value ranges (`ranges.py`), tables from
`tables.py`. One function per op kind says how its engine is parameterized and wired.
"""

from __future__ import annotations

import numpy as np

from snncc import ops as o
from snncc.intmath import signed_bits, unsigned_bits
from snncc.ir import Graph, Node
from snncc.schedule import total_steps

from .design import Buffer, Design, Engine, Probe, Table, hex_word
from .ranges import value_ranges
from .tables import (
    activity,
    addr_bits,
    conv_taps,
    conv_weights_scatter_order,
    gather_pool,
    gather_reduce,
    is_identity,
    pool_taps,
    resolve,
    threshold_table,
)


def _size(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape, dtype=np.int64))


def _table_words(entries: list[tuple[bool, int]], bits: int) -> list[str]:
    """{valid, value} words of a tap table whose values take `bits` bits."""
    return [hex_word((int(ok) << bits) | v, bits + 1) for ok, v in entries]


class _Builder:
    """Accumulates the design while walking the graph in topological order."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.ranges = value_ranges(graph)
        self.steps = total_steps(graph)
        self.activity = activity(graph, self.steps)
        self.engines: list[Engine] = []
        self.buffers: dict[str, Buffer] = {}
        self.tables: list[Table] = []
        self.wires: list[tuple[str, int]] = []
        self.files: dict[str, str] = {}
        self.probes: list[Probe] = []
        self.readout: dict[str, int] = {}

    # ------------------------------------------------------------ plumbing
    def wire(self, name: str, width: int) -> str:
        self.wires.append((name, width))
        return name

    def file(self, name: str, words: list[str]) -> str:
        path = f"mem/{name}.hex"
        self.files[path] = "\n".join(words) + "\n"
        return path

    def buffer(self, n: Node, width: int) -> Buffer:
        b = Buffer(len(self.buffers), n, width, _size(n.shape))
        b.data = f"{b.name}_rdata"
        self.buffers[n.name] = b
        return b

    def valid(self, b: Buffer) -> str:
        """The schedule bit saying `b` is active (may be non-zero) at the current step."""
        if b.activity is None:
            b.activity = 1 + max((c.activity for c in self.buffers.values()
                                  if c.activity is not None), default=-1)
        return f"active[{b.activity}]"

    def read(self, k: int, port: str, value: str, view: tuple[int, ...], enable: str = ""
             ) -> tuple[list[tuple[str, str]], Buffer]:
        """Ports of engine `k` reading `value` as a tensor of shape `view` (a broadcast of
        it), through an address map if layout ops lie between. The engine drives the
        buffer's read address while `enable` (default: while it is busy)."""
        src, index = resolve(self.graph, value)
        b = self.buffers[src]
        index = np.broadcast_to(index, view)
        addr = self.wire(f"e{k}_{port}_addr", addr_bits(index.size))
        baddr = addr
        if not is_identity(index, b.depth):
            baddr = self.wire(f"e{k}_{port}_baddr", b.aw)
            words = [hex_word(v, b.aw) for v in index.ravel()]
            self.tables.append(Table(f"m{k}_{port}", b.aw, index.size,
                                     self.file(f"e{k}_{port}_map", words), addr, baddr,
                                     f"{value} read from {src}"))
        b.readers.append((enable or f"e{k}_busy", baddr))
        return [(f"{port}_addr", addr), (f"{port}_data", b.data)], b

    def write(self, k: int, n: Node, width: int, rmw: bool) -> list[tuple[str, str]]:
        """Ports of engine `k` writing its output buffer (and reading it back if `rmw`)."""
        b = self.buffer(n, width)
        ports = [("out_we", f"{b.name}_we"), ("out_waddr", f"{b.name}_waddr"),
                 ("out_wdata", f"{b.name}_wdata")]
        if rmw:
            addr = self.wire(f"e{k}_out_raddr", b.aw)
            b.readers.append((f"e{k}_busy", addr))
            ports += [("out_raddr", addr), ("out_rdata", b.data)]
        return ports

    def engine(self, n: Node, module: str, params: list, ports: list, first: bool) -> None:
        k = len(self.engines)
        head = [("clk", "clk"), ("rst", "rst"), ("start", f"start[{k}]")]
        if first:
            head.append(("clear", "go"))
        tail = [("busy", self.wire(f"e{k}_busy", 1)), ("done", f"done[{k}]")]
        self.engines.append(Engine(k, n, module, params, head + ports + tail))
        for b in self.buffers.values():
            if b.node is n:
                b.writer = self.engines[-1].name

    # ------------------------------------------------------------ the design
    def design(self) -> Design:
        enc = self.graph.ops(o.SpikeInput)[0]
        engines, buffers = self.engines, list(self.buffers.values())
        tracked = [b for b in buffers if b.activity is not None]
        rows = []
        for t in range(self.steps):
            word = 0
            for e in engines:
                word |= int(self.activity.run[e.node.name][t]) << e.index
            for b in tracked:
                word |= int(self.activity.active[b.node.name][t]) << (len(engines) + b.activity)
            rows.append(hex_word(word, len(engines) + len(tracked)))
        return Design(self.graph, self.steps, addr_bits(self.steps), engines, buffers,
                      self.tables, self.wires, self.files, self.probes,
                      self.buffers[enc.name], not enc.op.analog, self.readout["n"],
                      self.readout["bits"], self.readout["engine"], rows)


# ---------------------------------------------------------------- one rule per op


def _spike_input(bld: _Builder, n: Node) -> None:
    op: o.SpikeInput = n.op
    bits = signed_bits(op.lo, op.hi) if op.lo < 0 else unsigned_bits(op.hi)
    b = bld.buffer(n, bits)
    if not op.analog:
        b.data = "in_spike"


def _neuron(bld: _Builder, n: Node) -> None:
    k = len(bld.engines)
    src = n.inputs[0]
    ports, ib = bld.read(k, "in", src, n.shape)
    acc = bld.ranges[src].acc
    wv = max(acc.bits, ib.width)
    table = threshold_table(n, acc, wv)
    levels = n.op.levels
    lb, rb = addr_bits(levels), addr_bits(table.rows)
    words = []
    for r in range(1 << rb):
        for lv in range(1 << lb):
            if r < table.rows and lv < levels:
                word = (int(table.negate[r]) << table.width) | (
                    int(table.thetas[r, lv]) & ((1 << table.width) - 1))
            else:
                word = 0
            words.append(hex_word(word, table.width + 1))
    nb = unsigned_bits(levels)
    count = bld.wire(f"e{k}_dbg_count", nb)
    out = bld.write(k, n, 1, rmw=False)
    me = bld.buffers[n.name]
    size = _size(n.shape)
    params = [("N", size), ("AW", addr_bits(size)), ("WI", ib.width), ("WV", wv),
              ("WC", table.width), ("L", levels), ("NB", nb), ("LB", lb),
              ("ROWS", table.rows), ("RB", rb), ("INNER", table.inner),
              ("IB", addr_bits(table.inner)),
              ("TH_FILE", bld.file(f"e{k}_thresholds", words))]
    ports += [("in_valid", bld.valid(ib)), ("fire_en", bld.valid(me))] + out + [
        ("dbg_addr", f"dbg_addr[{addr_bits(size) - 1}:0]"), ("dbg_count", count)]
    bld.probes.append(Probe(n, k, size, addr_bits(size), nb))
    bld.engine(n, "snn_neuron", params, ports, first=True)


def _synapse(bld: _Builder, n: Node) -> None:
    op: o.Synapse = n.op
    k = len(bld.engines)
    src = n.inputs[0]
    x_shape = bld.graph.node(src).shape
    ports, ib = bld.read(k, "in", src, x_shape)
    w = op.weight
    ww = signed_bits(int(w.min()), int(w.max()))
    win = ib.width if op.analog else 1
    wo = max(bld.ranges[n.name].step.bits, ww, win + 1)
    signed_in = int(op.analog and ib.node.op.lo < 0)
    ports += bld.write(k, n, wo, rmw=True)
    common = [("WIN", win), ("ANALOG", int(op.analog)), ("IN_SIGNED", signed_in), ("WW", ww),
              ("WO", wo)]
    if op.kind == "dense":
        r, (kk, m) = _size(x_shape[:-1]), w.shape
        wfile = bld.file(f"e{k}_weights", [hex_word(v, ww) for v in w.ravel()])
        params = [("R", r), ("K", kk), ("M", m), ("AWI", addr_bits(r * kk)),
                  ("AWO", addr_bits(r * m)), ("AWW", addr_bits(kk * m)), ("MW", addr_bits(m)),
                  *common, ("W_FILE", wfile)]
        bld.engine(n, "snn_dense", params, ports, first=False)
        return
    c, h, wd = x_shape
    oc, ig, kh, kw = w.shape
    _, oh, ow = n.shape
    og = oc // op.group
    aw_out = addr_bits(_size(n.shape))
    ty = conv_taps(h, kh, op.strides[0], op.pads[0], op.dilations[0], oh, ow)
    tx = conv_taps(wd, kw, op.strides[1], op.pads[1], op.dilations[1], ow, 1)
    scatter = conv_weights_scatter_order(w, op.group)
    params = [("C", c), ("H", h), ("W", wd), ("KH", kh), ("KW", kw), ("IG", ig), ("OG", og),
              ("OHW", oh * ow), ("NOUT", _size(n.shape)), ("AWI", addr_bits(c * h * wd)),
              ("AWO", aw_out), ("AWW", addr_bits(scatter.size)), ("TYW", addr_bits(h * kh)),
              ("TXW", addr_bits(wd * kw)), ("SW", addr_bits(max(ig, kh, kw, og))), *common,
              ("W_FILE", bld.file(f"e{k}_weights", [hex_word(v, ww) for v in scatter])),
              ("TY_FILE", bld.file(f"e{k}_rows", _table_words(ty, aw_out))),
              ("TX_FILE", bld.file(f"e{k}_cols", _table_words(tx, aw_out)))]
    bld.engine(n, "snn_conv", params, ports, first=False)


def _td_matmul(bld: _Builder, n: Node) -> None:
    k = len(bld.engines)
    a, b = n.inputs
    batch, (nn, kk), mm = n.shape[:-2], bld.graph.node(a).shape[-2:], n.shape[-1]
    pa, ba = bld.read(k, "a", a, batch + (nn, kk), bld.wire(f"e{k}_a_en", 1))
    pb, bb = bld.read(k, "b", b, batch + (kk, mm), bld.wire(f"e{k}_b_en", 1))
    wca, wcb = unsigned_bits(bld.ranges[a].count), unsigned_bits(bld.ranges[b].count)
    wo = max(bld.ranges[n.name].step.bits, wca + 1, wcb + 1)
    nb = _size(batch)
    params = [("NB", nb), ("N", nn), ("K", kk), ("M", mm), ("AWA", addr_bits(nb * nn * kk)),
              ("AWB", addr_bits(nb * kk * mm)), ("AWO", addr_bits(nb * nn * mm)),
              ("WCA", wca), ("WCB", wcb), ("WO", wo)]
    ports = pa + pb + [("a_en", f"e{k}_a_en"), ("b_en", f"e{k}_b_en"),
                       ("a_valid", bld.valid(ba)), ("b_valid", bld.valid(bb))]
    ports += bld.write(k, n, wo, rmw=True)
    bld.engine(n, "snn_td_matmul", params, ports, first=True)


def _td_maxpool(bld: _Builder, n: Node) -> None:
    op: o.TDMaxPool = n.op
    k = len(bld.engines)
    src = n.inputs[0]
    c, h, w = bld.graph.node(src).shape
    _, oh, ow = n.shape
    kh, kw = op.kernel
    ports, ib = bld.read(k, "in", src, (c, h, w))
    aw_in = addr_bits(c * h * w)
    ty = pool_taps(oh, kh, op.strides[0], op.pads[0], h, w)
    tx = pool_taps(ow, kw, op.strides[1], op.pads[1], w, 1)
    params = [("C", c), ("H", h), ("W", w), ("OH", oh), ("OW", ow), ("KH", kh), ("KW", kw),
              ("AWI", aw_in), ("AWO", addr_bits(c * oh * ow)), ("TYW", addr_bits(oh * kh)),
              ("TXW", addr_bits(ow * kw)), ("SW", addr_bits(max(kh, kw))),
              ("WCNT", unsigned_bits(bld.ranges[src].count)),
              ("TY_FILE", bld.file(f"e{k}_rows", _table_words(ty, aw_in))),
              ("TX_FILE", bld.file(f"e{k}_cols", _table_words(tx, aw_in)))]
    ports += [("in_valid", bld.valid(ib))] + bld.write(k, n, 1, rmw=False)
    bld.engine(n, "snn_td_maxpool", params, ports, first=True)


def _add_current(bld: _Builder, n: Node) -> None:
    k = len(bld.engines)
    pa, ba = bld.read(k, "a", n.inputs[0], n.shape)
    pb, bb = bld.read(k, "b", n.inputs[1], n.shape)
    wo = max(bld.ranges[n.name].step.bits, ba.width, bb.width)
    size = _size(n.shape)
    params = [("N", size), ("AW", addr_bits(size)), ("WA", ba.width), ("WB", bb.width),
              ("WO", wo)]
    ports = pa + pb + [("a_valid", bld.valid(ba)), ("b_valid", bld.valid(bb))]
    ports += bld.write(k, n, wo, rmw=False)
    bld.engine(n, "snn_add", params, ports, first=False)


def _gather_sum(bld: _Builder, n: Node) -> None:
    k = len(bld.engines)
    src, index = resolve(bld.graph, n.inputs[0])
    b = bld.buffers[src]
    if isinstance(n.op, o.ReduceSum):
        gather = gather_reduce(index, n.op.axes)
    else:
        gather = gather_pool(index, n.op)
    nout, q = gather.shape
    spikes = bld.ranges[n.inputs[0]].spikes
    wi = 1 if spikes else b.width
    wo = max(bld.ranges[n.name].step.bits, wi + 1)
    words = [hex_word((int(a >= 0) << b.aw) | max(int(a), 0), b.aw + 1) for a in gather.ravel()]
    addr = bld.wire(f"e{k}_in_addr", b.aw)
    b.readers.append((f"e{k}_busy", addr))
    params = [("NOUT", nout), ("Q", q), ("AWI", b.aw), ("AWO", addr_bits(nout)),
              ("AWG", addr_bits(nout * q)), ("QW", addr_bits(q)), ("WI", wi),
              ("IN_SIGNED", int(not spikes)), ("WO", wo),
              ("G_FILE", bld.file(f"e{k}_gather", words))]
    ports = [("in_addr", addr), ("in_data", b.data)] + bld.write(k, n, wo, rmw=False)
    bld.engine(n, "snn_gather_sum", params, ports, first=False)


def _readout(bld: _Builder, n: Node) -> None:
    k = len(bld.engines)
    src = n.inputs[0]
    ports, ib = bld.read(k, "in", src, bld.graph.node(src).shape)
    acc = bld.ranges[src].acc
    wa = max(acc.bits, ib.width)
    bias = np.broadcast_to(n.op.bias, n.shape).ravel().astype(np.int64)
    wb = signed_bits(int(bias.min()), int(bias.max()))
    wl = max(signed_bits(acc.lo + int(bias.min()), acc.hi + int(bias.max())), wa, wb)
    size = _size(n.shape)
    bld.wire("rd_logit", wl)
    params = [("N", size), ("AW", addr_bits(size)), ("WI", ib.width), ("WA", wa), ("WB", wb),
              ("WL", wl), ("B_FILE", bld.file(f"e{k}_bias", [hex_word(v, wb) for v in bias]))]
    ports += [("rd_addr", "rd_addr"), ("rd_logit", "rd_logit")]
    bld.readout = {"n": size, "bits": wl, "engine": k}
    bld.engine(n, "snn_readout", params, ports, first=True)


_RULES = {
    o.SpikeInput: _spike_input,
    o.Neuron: _neuron,
    o.Synapse: _synapse,
    o.TDMatMul: _td_matmul,
    o.TDMaxPool: _td_maxpool,
    o.AddCurrent: _add_current,
    o.ReduceSum: _gather_sum,
    o.SumPool: _gather_sum,
    o.Readout: _readout,
}


def lower(graph: Graph) -> Design:
    """The hardware design of `graph` (which `check` has accepted)."""
    bld = _Builder(graph)
    for n in graph.topo():
        rule = _RULES.get(type(n.op))
        if rule is not None:
            rule(bld, n)
    return bld.design()
