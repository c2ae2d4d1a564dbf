"""The lowering rule of each SNN op: its kernel calls, constants and state."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from snncc import ops as o
from snncc.backends.hls import pragmas, tables
from snncc.backends.hls.design import Buffer, Call, Const, Layer, Project
from snncc.backends.hls.lower import Lowering, Rule, size_of
from snncc.backends.parallel import HwConfig
from snncc.intmath import c_int_type
from snncc.ir import Graph, Node
from snncc.ranges import LINES, SIGNED, UNIT, widest


def _spike_input(lw: Lowering, n: Node, layer: Layer) -> None:
    op = n.op_as(o.SpikeInput)
    if op.analog:
        layer.summary = (f"input codes {op.lo}..{op.hi}: more levels than spikes, fed as "
                         "integers to the first layer (at step 0)")
        lw.vals[n.name] = lw.input
        return
    if op.weighted:
        out = lw.value(n, layer)
        layer.summary = (f"input encoding: code c sent at step 0 as a binary number on "
                         f"{lw.ranges[n.name].lines} weighted lines (codes {op.lo}..{op.hi})")
        lw.bank(out, pragmas.cyclic(pragmas.lanes(out.size)))
        lw.call(layer, "encode_weighted", [out.size, op.lo], [lw.input, out], lw.gate(n), out)
        lw.vals[n.name] = out
        return
    layer.summary = f"input encoding: code c -> c spikes at steps 0..c-1 (codes {op.lo}..{op.hi})"
    out = lw.value(n, layer)
    lw.bank(out, pragmas.cyclic(pragmas.lanes(out.size)))
    lw.call(layer, "encode", [out.size, op.lo], [lw.input, "t", out], lw.gate(n), out)
    lw.vals[n.name] = out


# How a synapse reads its input: (kernel suffix, what it does) by the input's spikes.
_SYNAPSE_MODES = {
    "": ("analog", "analog: integer codes times weights (MACs)"),
    UNIT: ("spikes", "spike-driven: each input spike adds a weight row"),
    SIGNED: ("ternary", "spike-driven: each +1 (-1) input spike adds (subtracts) a weight row"),
    LINES: ("lines", "spike-driven: each set line b of an input's number adds the weight row "
                     "shifted left by b"),
}


def _synapse(lw: Lowering, n: Node, layer: Layer) -> None:
    op = n.op_as(o.Synapse)
    x = lw.vals[n.inputs[0]]
    out = lw.value(n, layer)
    rng = lw.ranges[n.inputs[0]]
    mode, what = _SYNAPSE_MODES["" if op.analog else rng.spikes]
    lines = [rng.lines] if mode == "lines" else []  # the LINES template argument
    if op.kind == "dense":
        k, m = op.weight.shape
        f = lw.synapse_lanes(n, m)
        layer.summary = f"dense synapse {k}x{m}, {what}"
        w = lw.const(layer, "w", op.weight, f"weights [K={k}][M={m}]: row k is added when input "
                     "k spikes", partition=pragmas.cyclic(f, 2))
        lw.bank(out, pragmas.cyclic(f))
        rows = size_of(lw.graph.node(n.inputs[0]).shape) // k
        lw.call(layer, f"dense_{mode}", [rows, k, m, *lines, f], [x, w, out], lw.gate(n), out)
    else:
        _conv(lw, n, layer, x, out, mode, what, lines)
    lw.vals[n.name] = out


def _conv(lw: Lowering, n: Node, layer: Layer, x: Buffer, out: Buffer, mode: str,
          what: str, lines: list[int]) -> None:
    op = n.op_as(o.Synapse)
    c, h, w = lw.graph.node(n.inputs[0]).shape
    oc, oh, ow = n.shape
    g = op.group
    cg, og = c // g, oc // g
    kh, kw = op.weight.shape[2:]
    # w[c][ky][kx][j] = W[g*OG + j][c - g*CG][ky][kx]: the row a spike on channel c adds.
    rows = (op.weight.reshape(g, og, cg, kh, kw).transpose(0, 2, 3, 4, 1)
            .reshape(c, kh, kw, og))
    f = lw.synapse_lanes(n, og)
    layer.summary = (f"conv synapse {oc}x{cg}x{kh}x{kw} on [{c},{h},{w}], stride "
                     f"{op.strides[0]}x{op.strides[1]}, group {g}, {what}")
    wc = lw.const(layer, "w", rows, f"weight rows [C={c}][KH={kh}][KW={kw}][OG={og}]",
                  partition=pragmas.cyclic(f, 4))
    row_to = tables.conv_row_targets(h, oh, kh, op.strides[0], op.pads[0], op.dilations[0], ow)
    col_to = tables.conv_row_targets(w, ow, kw, op.strides[1], op.pads[1], op.dilations[1], 1)
    itype = c_int_type(-1, max(int(row_to.max()), int(col_to.max()), 0))
    rt = lw.const(layer, "row_to", row_to, "[y][ky]: offset oy*OW of the output row (-1: none)",
                  itype)
    ct = lw.const(layer, "col_to", col_to, "[x][kx]: output column ox (-1: none)", itype)
    lw.bank(out, pragmas.channel_banks(oc))
    lw.call(layer, f"conv_{mode}", [g, cg, h, w, og, oh * ow, kh, kw, *lines, f],
            [x, wc, rt, ct, out], lw.gate(n), out)


def _neuron_view(n: Node) -> tuple[tuple[int, int, int], np.ndarray, np.ndarray]:
    """(OUTER, MID, INNER) with the thresholds [MID][L] and signs [MID] varying on MID."""
    op = n.op_as(o.Neuron)
    rank = len(n.shape)
    th = op.thresholds.reshape((1,) * (rank + 1 - op.thresholds.ndim) + op.thresholds.shape)
    sign = np.asarray(op.sign).reshape((1,) * (rank - np.ndim(op.sign)) + np.shape(op.sign))
    varying = [a for a in range(rank) if th.shape[a] > 1 or sign.shape[a] > 1]
    if not varying:
        return (1, 1, size_of(n.shape)), th.reshape(1, op.levels), sign.reshape(1)
    first, last = varying[0], varying[-1]
    span = n.shape[first:last + 1]
    pick = tuple(slice(None) if first <= a <= last else slice(0, 1) for a in range(rank))
    th_mid = np.broadcast_to(th[pick + (slice(None),)], (1,) * first + span +
                             (1,) * (rank - last - 1) + (op.levels,))
    sign_mid = np.broadcast_to(sign[pick], (1,) * first + span + (1,) * (rank - last - 1))
    view = tables.split_view(n.shape, first, last)
    return view, th_mid.reshape(view[1], op.levels), sign_mid.reshape(view[1])


_NEURON_KINDS = {
    "if": "DIF neurons",
    "signed": "signed DIF neurons (spikes +1, and -1 to take one back)",
    "multi": "multi-threshold neurons (the levels newly reached, a number on weighted lines)",
}


def _neuron_kernel(lw: Lowering, op: o.Neuron, layer: Layer, sign: np.ndarray,
                   partition: str = "") -> tuple[str, list[Const]]:
    """The kernel of the neuron's kind and its sign table (the sign table [MID]: which
    neurons compare -v; banked by `partition`). Only ``dif`` goes without one, when every
    sign is +1."""
    if op.mode == "if" and np.all(sign > 0):
        return "dif", []
    neg = lw.const(layer, "neg", sign < 0, f"[MID={len(sign)}]: the neuron compares -v",
                   "bool", partition)
    return {"if": "dif_signed", "signed": "dif_ternary", "multi": "dif_multi"}[op.mode], [neg]


def _neuron(lw: Lowering, n: Node, layer: Layer) -> None:
    op = n.op_as(o.Neuron)
    x = lw.vals[n.inputs[0]]
    (outer, mid, inner), th, sign = _neuron_view(n)
    bound = lw.ranges[n.inputs[0]].acc.magnitude
    th = np.clip(th, -bound, bound + 1)  # unreachable levels: same comparisons, fewer bits
    f = lw.neuron_lanes(n, inner)
    size = size_of(n.shape)
    assert size % f == 0, (n.name, f)
    tables_ = "one threshold table" if mid == 1 else f"{mid} threshold tables"
    layer.summary = (f"{_NEURON_KINDS[op.mode]} {list(n.shape)}, {op.levels} levels, fire "
                     f"from t={op.t_fire}, {tables_}")
    rows = pragmas.table_rows(size, mid, inner, f)  # the tables' rows a cycle's lanes read
    thc = lw.const(layer, "th", th, f"thresholds [MID={mid}][LEVELS={op.levels}]: spike n "
                   "fires when sign*v >= th[m][n]",
                   partition=pragmas.table_banks(mid, rows, pragmas.level_banks(op.levels)))
    mem = lw.state(layer, "mem", c_int_type(-bound, bound), size,
                   f"{layer.ident}: membranes v", pragmas.cyclic(f))
    cnt = lw.state(layer, "cnt", c_int_type(0, op.levels), size,
                   f"{layer.ident}: spikes sent n", pragmas.cyclic(f))
    out = lw.value(n, layer)
    lw.bank(out, pragmas.cyclic(f))
    fire = "true" if op.t_fire <= lw.gate(n)[0] else f"t >= {op.t_fire}"
    kernel, neg = _neuron_kernel(lw, op, layer, sign, pragmas.table_banks(mid, rows))
    lw.call(layer, kernel, [outer, mid, inner, op.levels, f],
            [x, mem, cnt, thc, *neg, fire, out], lw.gate(n), out)
    offset = sum(m["size"] for m in lw.neurons)
    layer.finish.append(Call("export_counts", [str(size), str(offset), "N_COUNTS"],
                             [cnt.name, "spike_counts"], (0, 0)))
    lw.neurons.append({"name": n.name, "layer": lw.names[n.name], "ident": layer.ident,
                       "origin": n.origin,
                       "offset": offset, "size": size,
                       "shape": list(n.shape), "levels": op.levels})
    lw.vals[n.name] = out


def _pool_tables(lw: Lowering, n: Node, layer: Layer) -> tuple[list[int], list[Const]]:
    op = n.op
    assert isinstance(op, o.TDMaxPool | o.SumPool)
    c, h, w = lw.graph.node(n.inputs[0]).shape
    _, oh, ow = n.shape
    (kh, kw), (sh, sw) = op.kernel, op.strides
    rows = tables.pool_row_sources(oh, h, kh, sh, op.pads[0], w)
    cols = tables.pool_row_sources(ow, w, kw, sw, op.pads[1], 1)
    itype = c_int_type(-1, max(int(rows.max()), int(cols.max()), 0))
    rf = lw.const(layer, "row_from", rows, "[oy][ky]: offset iy*W of the window row (-1: pad)",
                  itype)
    cf = lw.const(layer, "col_from", cols, "[ox][kx]: window column ix (-1: pad)", itype)
    return [c, h * w, oh * ow, oh, ow, kh, kw], [rf, cf]


def _td_maxpool(lw: Lowering, n: Node, layer: Layer) -> None:
    op = n.op_as(o.TDMaxPool)
    x = lw.vals[n.inputs[0]]
    targs, (rf, cf) = _pool_tables(lw, n, layer)
    layer.summary = (f"TD max pool {op.kernel[0]}x{op.kernel[1]} stride {op.strides[0]}: "
                     "out(t) = maxpool(C(t)) - maxpool(C(t-1))")
    ctype = c_int_type(0, lw.ranges[n.inputs[0]].acc.hi)
    count = lw.state(layer, "count", ctype, x.size, f"{layer.ident}: input spike counts C(t)")
    last = lw.state(layer, "last", ctype, size_of(n.shape), f"{layer.ident}: maxpool(C(t-1))")
    out = lw.value(n, layer)
    kernel = "td_maxpool" if lw.ranges[n.inputs[0]].binary else "td_maxpool_codes"
    lw.call(layer, kernel, targs, [x, count, last, rf, cf, out], lw.gate(n), out)
    lw.vals[n.name] = out


def _td_matmul(lw: Lowering, n: Node, layer: Layer) -> None:
    a_shape, b_shape = (lw.graph.node(i).shape for i in n.inputs)
    sa, sb = (lw.vals[i] for i in n.inputs)
    nn, k = a_shape[-2:]
    m = b_shape[-1]
    batch = n.shape[:-2]
    a_at = tables.batch_offsets(a_shape[:-2], batch, nn * k)
    b_at = tables.batch_offsets(b_shape[:-2], batch, k * m)
    f = pragmas.lanes(m)
    layer.summary = (f"TD matmul {list(a_shape)} x {list(b_shape)}: "
                     "out(t) = C_A(t-1) S_B(t) + S_A(t) C_B(t)")
    itype = c_int_type(0, max(int(a_at.max()), int(b_at.max())))
    ac = lw.const(layer, "a_at", a_at, "offset of the A matrix of each product", itype)
    bc = lw.const(layer, "b_at", b_at, "offset of the B matrix of each product", itype)
    ins = [lw.ranges[i] for i in n.inputs]
    la, lb = (r.acc.hi for r in ins)
    ca = lw.state(layer, "ca", c_int_type(0, la), sa.size, f"{layer.ident}: spike counts C_A",
                  pragmas.cyclic(f))
    cb = lw.state(layer, "cb", c_int_type(0, lb), sb.size, f"{layer.ident}: spike counts C_B",
                  pragmas.cyclic(f))
    out = lw.value(n, layer)
    lw.bank(out, pragmas.cyclic(f))
    kind = widest(ins)
    kernel = {UNIT: "td_matmul", SIGNED: "td_matmul_ternary", LINES: "td_matmul_lines"}[kind]
    lines = [r.lines for r in ins] if kind == LINES else []  # LINES_A, LINES_B
    lw.call(layer, kernel, [size_of(batch), nn, k, m, sa.size, sb.size, *lines, f],
            [sa, sb, ca, cb, ac, bc, out], lw.gate(n), out)
    lw.vals[n.name] = out


def _add_current(lw: Lowering, n: Node, layer: Layer) -> None:
    layer.summary = "residual add: the branches' currents add"
    operands = []
    for k, i in enumerate(n.inputs):
        shape = lw.graph.node(i).shape
        buf = lw.vals[i]
        if shape != n.shape:  # broadcast by a table
            idx = tables.gather_index(shape, lambda x: np.broadcast_to(x, n.shape))
            table = lw.const(layer, f"bcast{k}_from", idx, f"broadcast {list(shape)} to "
                             f"{list(n.shape)}: source index of each element")
            wide = lw.value(n, layer, f"bcast{k}", lw.ranges[i])
            lw.call(layer, "gather", [wide.size, buf.size], [buf, table, wide], lw.win[i], wide)
            buf = wide
        operands.append(buf)
    out = lw.value(n, layer)
    f = pragmas.lanes(out.size)
    lw.bank(out, pragmas.cyclic(f))
    lw.call(layer, "add", [out.size, f], [*operands, out], lw.gate(n), out)
    lw.vals[n.name] = out


def _reduce_sum(lw: Lowering, n: Node, layer: Layer) -> None:
    op = n.op_as(o.ReduceSum)
    src = lw.graph.node(n.inputs[0])
    shape = list(src.shape)
    axes = sorted({a % len(shape) for a in op.axes})
    layer.summary = f"sum over axes {axes} of {list(src.shape)}"
    buf, rng, summed = lw.vals[n.inputs[0]], lw.ranges[n.inputs[0]], 1
    runs = tables.contiguous_runs(axes)
    for k, (first, last) in enumerate(runs):
        outer, red, inner = tables.split_view(tuple(shape), first, last)
        summed *= red
        final = k == len(runs) - 1
        part = lw.ranges[n.name] if final else rng.times(summed)
        out = lw.value(n, layer, None if final else f"part{k}", part, outer * inner)
        lw.call(layer, "reduce_sum", [outer, red, inner], [buf, out], lw.gate(n), out)
        del shape[first:last + 1]
        buf = out
    lw.vals[n.name] = buf


def _sum_pool(lw: Lowering, n: Node, layer: Layer) -> None:
    op = n.op_as(o.SumPool)
    targs, consts = _pool_tables(lw, n, layer)
    layer.summary = f"sum pool {op.kernel[0]}x{op.kernel[1]} stride {op.strides[0]}"
    out = lw.value(n, layer)
    lw.call(layer, "sum_pool", targs, [lw.vals[n.inputs[0]], *consts, out], lw.gate(n), out)
    lw.vals[n.name] = out


def _readout(lw: Lowering, n: Node, layer: Layer) -> None:
    op = n.op_as(o.Readout)
    total = lw.ranges[n.inputs[0]].acc
    bias = np.broadcast_to(op.bias, n.shape).ravel()
    layer.summary = "readout: logits = accumulated current + bias (argmax: the prediction)"
    acc = lw.state(layer, "acc", c_int_type(total.lo, total.hi), size_of(n.shape),
                   f"{layer.ident}: accumulated current")
    b = lw.const(layer, "bias", bias, "integer bias of the logits")
    lw.call(layer, "accumulate", [acc.size], [lw.vals[n.inputs[0]], acc], lw.gate(n))
    lw.logit_t = c_int_type(total.lo + int(bias.min(initial=0)),
                            total.hi + int(bias.max(initial=0)))
    layer.finish.append(Call("readout", [str(acc.size)], [acc.name, b.name, "logits"], (0, 0)))


def _reshape(lw: Lowering, n: Node, layer: Layer) -> None:
    src = lw.vals[n.inputs[0]]
    layer.summary = f"reshape to {list(n.shape)}: a view of {src.name} (no data movement)"
    lw.vals[n.name] = src


def _gather(lw: Lowering, n: Node, layer: Layer, view: Callable, what: str) -> None:
    src = lw.graph.node(n.inputs[0])
    x = lw.vals[src.name]
    idx = tables.gather_index(src.shape, view)
    layer.summary = f"{what} (rewiring through a table)"
    table = lw.const(layer, "from", idx, f"source index of each of the {idx.size} outputs")
    out = lw.value(n, layer)
    lw.call(layer, "gather", [out.size, x.size], [x, table, out], lw.gate(n), out)
    lw.vals[n.name] = out


def _transpose(lw: Lowering, n: Node, layer: Layer) -> None:
    perm = n.op_as(o.Transpose).perm
    _gather(lw, n, layer, lambda x: x.transpose(perm), f"transpose {list(perm)}")


def _take(lw: Lowering, n: Node, layer: Layer) -> None:
    op = n.op_as(o.Take)
    _gather(lw, n, layer, lambda x: x.take(op.indices, op.axis), f"take on axis {op.axis}")


def _concat(lw: Lowering, n: Node, layer: Layer) -> None:
    axis = n.op_as(o.Concat).axis % len(n.shape)
    layer.summary = f"concatenate on axis {axis}"
    out = lw.value(n, layer)
    outer = size_of(n.shape[:axis])
    chunk_out = size_of(n.shape[axis:])
    offset = 0
    for i in n.inputs:
        chunk = size_of(lw.graph.node(i).shape[axis:])
        lw.call(layer, "concat_part", [outer, chunk, chunk_out, offset], [lw.vals[i], out],
                lw.gate(n), out)
        offset += chunk
    lw.vals[n.name] = out


LOWER: dict[type, Rule] = {
    o.SpikeInput: _spike_input, o.Synapse: _synapse, o.Neuron: _neuron,
    o.TDMaxPool: _td_maxpool, o.TDMatMul: _td_matmul, o.AddCurrent: _add_current,
    o.ReduceSum: _reduce_sum, o.SumPool: _sum_pool, o.Readout: _readout,
    o.Reshape: _reshape, o.Transpose: _transpose, o.Take: _take, o.Concat: _concat,
}


def lower(graph: Graph, hw: HwConfig | None = None) -> Project:
    """The HLS project of a checked SNN graph (synapse unroll factors from the
    parallelism knob `hw`, if given)."""
    return Lowering(graph, LOWER, hw).run()
