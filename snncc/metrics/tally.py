"""Operation counts of an exact-mode run from its spike counts, with no spike trains.

In exact mode with unit-spike (if) neurons every spike train is one run of spikes: a
value with count c that starts at step s (its neuron's t_fire; 0 for the input) spikes at
s, s+1, ..., s+c-1 (the fast engine's trains, which the step engine equals bit for bit).
Counts and starts fix every train, so the rules of snncc.metrics.energy follow from them without
expanding any:

- SOPs, effective SOPs, max-pool comparisons and spikes are linear in the counts (summed
  over the batch first: one product per layer and batch, not one per input; a dense
  synapse's effective SOPs are its input's spikes per row dotted with the rows' non-zero
  weights);
- TD-MatMul's effective SOPs: Σ_t S_A(t)·[C_B(t) ≠ 0] counts, per pair (a_ik, b_kj) with
  b_kj > 0, A's spikes at or after B's start: max(0, a - max(0, s_B - s_A)); the second
  term, per pair with a_ik > 0, B's spikes after A's start: max(0, b - max(0, s_A + 1 -
  s_B)). The sum of a matrix product's entries is a column sum dotted with a row sum;
- a conv synapse's SOPs and a max-pool's comparisons are the counts summed over the batch
  dotted with a map, worked out once a graph, of what one spike at each input element
  costs (the windows that hold it, weighted by the kernel's taps);
- a residual add whose operands are never active at the same step adds nothing;
- a sum (ReduceSum) of a dense synapse's current, whose input runs all start at one step:
  its t-th step's current is (counts > t) @ W, so the per-step additions come from one
  matrix product of those masks (no graph replay).

What else depends on per-step currents (sum-pools, sums of other currents, residual adds
whose operands overlap in time, and a TD-MatMul whose operands mix starting steps) is
replayed step by step from trains made of the counts (``activity.replay`` with ``only``),
and nothing else is.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from snncc import ops as o
from snncc.backends.sim.integer import IntMatMul
from snncc.ir import Graph, Node
from snncc.metrics.activity import replay, trains_from_counts
from snncc.metrics.energy import (
    LayerOps,
    OpCounts,
    _broadcast_factor,
    dense_macs,
    layer_ops,
)
from snncc.reference import EVAL
from snncc.schedule import windows

Spans = list[tuple[int, int]]


def counts_suffice(graph: Graph) -> bool:
    """Whether spike counts fix every train: exact mode, unit-spike (if) neurons, a unit
    spike or analog input (signed and multi neurons, and weighted inputs, spike otherwise)."""
    if graph.meta.get("delay", "exact") != "exact":
        return False
    ops = [n.op for n in graph.nodes()]  # once a batch: no sorting
    return all(op.mode == "if" for op in ops if isinstance(op, o.Neuron)) and not any(
        op.weighted for op in ops if isinstance(op, o.SpikeInput))


def active_spans(graph: Graph) -> dict[str, Spans]:
    """Per value, the steps at which it may be non-zero, as disjoint sorted intervals
    (finer than ``schedule.windows``: a residual stream is active only where a branch is)."""
    win = windows(graph)
    spans: dict[str, Spans] = {}
    for n in graph.topo():
        if isinstance(n.op, o.Input):
            continue
        if isinstance(n.op, o.SpikeInput | o.Neuron):
            spans[n.name] = [win[n.name]]
        else:
            spans[n.name] = _union([s for i in n.inputs for s in spans[i]])
    return spans


def _union(spans: Spans) -> Spans:
    out: Spans = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _overlap(a: Spans, b: Spans) -> bool:
    return any(max(p[0], q[0]) <= min(p[1], q[1]) for p in a for q in b)


def spike_starts(graph: Graph) -> dict[str, int | None]:
    """Per spike value, the step its runs of spikes start at (None: sources disagree)."""
    starts: dict[str, int | None] = {}
    for n in graph.topo():
        if n.kind != o.CODES:
            continue
        if isinstance(n.op, o.SpikeInput):
            starts[n.name] = 0
        elif isinstance(n.op, o.Neuron):
            starts[n.name] = n.op.t_fire
        else:  # layout ops and TD max-pool keep their inputs' runs
            found = {starts[i] for i in n.inputs}
            starts[n.name] = found.pop() if len(found) == 1 else None
    return starts


def replayed(graph: Graph) -> set[str]:
    """The nodes whose counts need per-step currents."""
    spans, starts = active_spans(graph), spike_starts(graph)
    out = set()
    for n in graph.topo():
        op = n.op
        if isinstance(op, o.ReduceSum | o.SumPool) or isinstance(op, o.AddCurrent) and (
                _overlap(spans[n.inputs[0]], spans[n.inputs[1]])) or isinstance(
                op, o.TDMatMul) and None in (starts[n.inputs[0]], starts[n.inputs[1]]):
            out.add(n.name)
    return out


def summed_from_counts(graph: Graph) -> dict[str, tuple[str, NonzeroCurrents]]:
    """The ReduceSums counted from masks of counts, not replayed: those of a dense synapse's
    current whose input runs start at one step (its weights' products exact in float64).
    Per node: the synapse's input and the test of its currents."""
    starts = spike_starts(graph)
    out = {}
    for n in graph.ops(o.ReduceSum):
        syn = graph.node(n.inputs[0])
        op = syn.op
        if not isinstance(op, o.Synapse) or op.kind != "dense" or op.analog:
            continue
        w = op.weight.astype(np.int64)
        if starts.get(syn.inputs[0]) is not None and int(np.abs(w).sum(axis=0).max(
                initial=0)) < 2**53:
            out[n.name] = syn.inputs[0], NonzeroCurrents(w)
    return out


class NonzeroCurrents:
    """Which entries of m @ W are non-zero, for 0/1 masks m [M, K] (uint8) and integer
    weights W [K, N]: onnxruntime's 8-bit products (``integer.IntMatMul``: W cut into
    8-bit factors, combined exactly). Where W = a * s + e (``integer.scaled``) with
    sum_k |e_kj| < s_j, |m @ e| < s, so an entry is zero just where both m @ a and m @ e
    are, and the factors need no combining."""

    def __init__(self, weight: np.ndarray):
        self.kernel = IntMatMul(weight, np.dtype(np.uint8), 1)
        self.columns = weight.shape[1]
        scale = self.kernel.scale
        self.apart = scale is not None and bool(np.all(
            np.abs(self.kernel.cut[1].astype(np.int64)).sum(axis=0) < scale))

    def __call__(self, masks: np.ndarray) -> np.ndarray:
        if self.kernel.digits == 1 or self.apart:
            ys = self.kernel.session.run(None, {"x": masks})
            return ys[0] != 0 if len(ys) == 1 else (ys[0] != 0) | (ys[1] != 0)
        out = np.empty((len(masks), self.columns))
        self.kernel.product(masks, out)
        return out != 0


@dataclass
class _Static:
    """What counting needs to know of a graph, worked out once."""

    order: list[Node]
    last_use: dict[str, int]
    starts: dict[str, int | None]
    slow: set[str]  # replayed
    summed: dict[str, tuple[str, NonzeroCurrents]]  # ReduceSum -> (spikes, test)
    fan_out: dict[str, np.ndarray]  # dense synapse -> its rows' non-zero weights (int64)
    maps: dict[str, tuple[np.ndarray, ...]]  # conv synapse, max-pool -> per input element
    sums_only: set[str]  # layout values read only through their sums over the batch


_STATIC: weakref.WeakKeyDictionary[Graph, tuple[tuple[int, ...], _Static]] = (
    weakref.WeakKeyDictionary())


def _static(graph: Graph) -> _Static:
    key = tuple(map(id, graph.nodes()))  # a node is replaced whenever it changes
    cached = _STATIC.get(graph)
    if cached is None or cached[0] != key:
        cached = key, _worked_out(graph)
        _STATIC[graph] = cached
    return cached[1]


def _worked_out(graph: Graph) -> _Static:
    order = [n for n in graph.topo() if not isinstance(n.op, o.Input)]
    summed = summed_from_counts(graph)
    # a summed node reads its synapse's input: keep that input's counts until then
    uses = {n.name: n.inputs + ((summed[n.name][0],) if n.name in summed else ())
            for n in order}
    last_use = {i: k for k, n in enumerate(order) for i in uses[n.name]}
    fan_out = {n.name: np.count_nonzero(n.op_as(o.Synapse).weight, axis=1).astype(np.int64)
               for n in order if isinstance(n.op, o.Synapse) and n.op.kind == "dense"}
    maps: dict[str, tuple[np.ndarray, ...]] = {}
    for n in order:
        in_shape = graph.node(n.inputs[0]).shape if n.inputs else ()
        if isinstance(n.op, o.Synapse) and n.op.kind == "conv" and not n.op.analog:
            maps[n.name] = conv_fan_out(n.op, in_shape, n.shape)
        elif isinstance(n.op, o.TDMaxPool):
            taps = np.ones((in_shape[0],) + tuple(n.op.kernel), np.int64)
            maps[n.name] = (window_reach(taps, in_shape, n.shape, n.op.strides, n.op.pads),)
    return _Static(order, last_use, spike_starts(graph), replayed(graph) - set(summed),
                   summed, fan_out, maps, _sums_only(graph, order, summed))


def _sums_only(graph: Graph, order: list[Node], summed: dict) -> set[str]:
    """Layout values of spikes whose readers need only their sums over the batch (the
    synapses, and layout values of that kind): a reshape or transpose of the sums, not of
    the counts, which may be a copy."""
    sources = {spikes for spikes, _ in summed.values()}
    out: set[str] = set()
    for n in reversed(order):
        if n.kind == o.CODES and isinstance(n.op, o.LAYOUT_OPS) and n.name not in sources \
                and all(isinstance(u.op, o.Synapse) or u.name in out
                        for u in graph.users(n.name)):
            out.add(n.name)
    return out


def _hits(size: int, out: int, k: int, stride: int, pad: int, dilation: int) -> np.ndarray:
    """[k, size]: 1 where kernel offset i of some output position reads input position h."""
    hits = np.zeros((k, size), np.int64)
    for i in range(k):
        pos = np.arange(out) * stride - pad + i * dilation
        hits[i, pos[(pos >= 0) & (pos < size)]] = 1
    return hits


def window_reach(taps: np.ndarray, in_shape: tuple[int, ...], out_shape: tuple[int, ...],
                 strides, pads, dilations=(1, 1)) -> np.ndarray:
    """Per input element [C, H, W]: taps[c, i, j] summed over the windows that read the
    element at kernel offset (i, j) (a window covers an element at one offset at most;
    padding reads nothing). `pads` is (top, left, bottom, right), as in kernels."""
    rows = _hits(in_shape[1], out_shape[1], taps.shape[1], strides[0], pads[0], dilations[0])
    cols = _hits(in_shape[2], out_shape[2], taps.shape[2], strides[1], pads[1], dilations[1])
    return np.einsum("cij,ih,jw->chw", taps, rows, cols)


def conv_fan_out(op: o.Synapse, in_shape: tuple[int, ...], out_shape: tuple[int, ...]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(SOPs, effective SOPs) that one spike at each input element [C, H, W] of a conv
    synapse causes (``energy.synapse_sops`` per spike): the (output, weight) pairs it
    reaches, every output channel of its group at each window, and those of non-zero
    weight."""
    o_, cg, kh, kw = op.weight.shape
    per_group = o_ // op.group
    nonzero = np.count_nonzero(op.weight.reshape(op.group, per_group, cg, kh, kw), axis=1)
    nonzero = nonzero.reshape(-1, kh, kw).astype(np.int64)
    reach = np.full_like(nonzero, per_group)
    return tuple(window_reach(taps, in_shape, out_shape, op.strides, op.pads, op.dilations)
                 for taps in (reach, nonzero))  # type: ignore[return-value]


def count_from_counts(graph: Graph, x: np.ndarray, counts: dict[str, np.ndarray]) -> OpCounts:
    """snncc.metrics.energy's operation totals for one exact-mode batch, from every neuron's
    spike count (``SimResult.counts``) and the input."""
    result = OpCounts(samples=len(x))
    s = _static(graph)
    totals = _Totals()
    for k, n in enumerate(s.order):
        if n.name in s.sums_only:  # a layout of the sums over the batch
            totals.sums[n.name] = EVAL[type(n.op)](n, [totals.batch_sum(i) for i in n.inputs])
        elif n.kind == o.CODES:
            totals[n.name] = _total(n, x, counts, totals)
        if n.name in s.summed:
            spikes, nonzero = s.summed[n.name]
            result.layers[n.name] = LayerOps(adds=summed_adds(
                totals[spikes], nonzero, n.op_as(o.ReduceSum).axes,
                graph.node(n.inputs[0]).shape))
        elif n.name not in s.slow:
            ops = _layer_ops(graph, n, totals, s, len(x))
            if ops is not None:
                result.layers[n.name] = ops
        for i in n.inputs:
            if s.last_use[i] == k:
                totals.drop(i)
    if s.slow:
        def visit(n: Node, ins: list[np.ndarray], out: np.ndarray | None) -> None:
            ops = layer_ops(n, ins, out)
            assert ops is not None, f"{n.name} is replayed but counts nothing"
            result.layers[n.name] = ops

        replay(graph, x, trains_from_counts(counts), visit, only=s.slow)
    return result


class _Totals(dict):
    """A batch's spike counts per value, and (computed once) their sums over the batch."""

    def __init__(self):
        super().__init__()
        self.sums: dict[str, np.ndarray] = {}

    def drop(self, name: str) -> None:
        self.pop(name, None)
        self.sums.pop(name, None)

    def batch_sum(self, name: str) -> np.ndarray:
        if name not in self.sums:
            c = self[name]
            narrow = c.dtype == np.uint8 and len(c) * 255 <= 0xFFFF
            total = c.sum(axis=0, dtype=np.uint16 if narrow else np.int64, keepdims=True)
            self.sums[name] = total.astype(np.int64)
        return self.sums[name]

    def spikes(self, name: str) -> int:
        return int(self.batch_sum(name).sum())


def _total(n: Node, x: np.ndarray, counts: dict[str, np.ndarray], totals: _Totals
           ) -> np.ndarray:
    """A spike value's count per element (analog input: its codes)."""
    op = n.op
    if isinstance(op, o.Neuron):
        return counts[n.name]
    if isinstance(op, o.SpikeInput):
        if op.analog:  # codes presented once, counted as MACs of the synapse it feeds
            return np.zeros((len(x),) + n.shape, np.uint8)
        return EVAL[o.SpikeInput](n, [x]).astype(np.int64) - op.lo
    ins = [totals[i] for i in n.inputs]
    if isinstance(op, o.TDMaxPool):
        return pooled_counts(ins[0], op.kernel, op.strides, op.pads)
    return EVAL[type(op)](n, ins)


def pooled_counts(c: np.ndarray, kernel, strides, pads) -> np.ndarray:
    """Max pooling of spike counts [B, C, H, W] (non-negative: zero padding never wins, as
    in kernels.maxpool_planes), channels last and separable (the rows' maxima, then the
    columns'), so that kh + kw - 2 maxima run over long rows instead of kh * kw over the
    short rows of a small map."""
    top, left, bottom, right = pads
    (kh, kw), (sh, sw) = kernel, strides
    b, ch, h, w = c.shape
    p = np.zeros((b, h + top + bottom, w + left + right, ch), c.dtype)
    p[:, top:top + h, left:left + w] = c.transpose(0, 2, 3, 1)
    oh, ow = (p.shape[1] - kh) // sh + 1, (p.shape[2] - kw) // sw + 1
    rows = p[:, 0:sh * (oh - 1) + 1:sh].copy()
    for i in range(1, kh):
        np.maximum(rows, p[:, i:i + sh * (oh - 1) + 1:sh], out=rows)
    out = rows[:, :, 0:sw * (ow - 1) + 1:sw].copy()
    for j in range(1, kw):
        np.maximum(out, rows[:, :, j:j + sw * (ow - 1) + 1:sw], out=out)
    return out.transpose(0, 3, 1, 2)


def _layer_ops(graph: Graph, n: Node, totals: _Totals, s: _Static, batch: int
               ) -> LayerOps | None:
    op = n.op
    if isinstance(op, o.Synapse):
        if op.analog:
            in_shape = graph.node(n.inputs[0]).shape
            return LayerOps(macs=batch * dense_macs(op, [in_shape], n.shape))
        counts = totals.batch_sum(n.inputs[0])
        if n.name in s.fan_out:
            sops, eff = dense_sops(counts, op.weight.shape[1], s.fan_out[n.name])
        else:
            sops, eff = (_weighted(counts, m) for m in s.maps[n.name])
        return LayerOps(sops=sops, sops_effective=eff)
    if isinstance(op, o.TDMatMul):
        a, b = (totals[i] for i in n.inputs)
        sa, sb = (s.starts[i] for i in n.inputs)
        assert sa is not None and sb is not None, f"{n.name} has mixed starts (replayed)"
        return LayerOps(*td_matmul_sops(a, b, sb - sa))
    if isinstance(op, o.TDMaxPool):
        return LayerOps(comparisons=_weighted(totals.batch_sum(n.inputs[0]), s.maps[n.name][0]),
                        spikes=totals.spikes(n.name))
    if isinstance(op, o.AddCurrent):  # never both active at a step (else replayed)
        return LayerOps()
    if isinstance(op, o.Neuron) or isinstance(op, o.SpikeInput) and not op.analog:
        return LayerOps(spikes=totals.spikes(n.name))
    return None


def _weighted(counts: np.ndarray, per_element: np.ndarray) -> int:
    """The counts summed over the batch ([1, ...]) dotted with a cost per element."""
    return int(np.dot(counts.reshape(-1), per_element.reshape(-1)))


def summed_adds(counts: np.ndarray, nonzero: Callable[[np.ndarray], np.ndarray],
                axes: tuple[int, ...], shape: tuple[int, ...]) -> int:
    """``energy.reduce_sum_adds`` over `axes` of a dense synapse's current [B, *shape],
    for input runs of spikes with counts [B, ..., K] that start at one step: the current
    at the runs' t-th step is (counts > t) @ W, for every step at once (`nonzero`: which
    entries of masks @ W are non-zero); after the longest run it is zero and adds nothing.
    Per step and output element, (non-zero terms - 1) additions: the non-zero terms, less
    the outputs with any."""
    steps = int(counts.max(initial=0))
    if steps == 0:
        return 0
    rows = counts.reshape(-1, counts.shape[-1])
    masks = np.empty((steps,) + rows.shape, np.bool_)
    np.greater(rows[None], np.arange(steps, dtype=rows.dtype).reshape(-1, 1, 1), out=masks)
    terms = nonzero(masks.view(np.uint8).reshape(-1, rows.shape[1]))
    terms = terms.reshape((steps, len(counts)) + shape)
    total = np.count_nonzero(terms)
    for axis in sorted({a % len(shape) + 2 for a in axes}, reverse=True):
        terms = _any_along(terms, axis)
    return int(total - np.count_nonzero(terms))


def _any_along(mask: np.ndarray, axis: int) -> np.ndarray:
    """mask.any(axis) by halving (numpy's reduction over a short middle axis is slow)."""
    m = np.moveaxis(mask, axis, 0)
    while len(m) > 1:
        half = len(m) // 2
        top = m[:half] | m[half:2 * half]
        if len(m) % 2:
            top[0] |= m[-1]
        m = top
    return m[0]


def dense_sops(counts: np.ndarray, outputs: int, fan_out: np.ndarray) -> tuple[int, int]:
    """``energy.synapse_sops`` of a dense synapse [K, outputs] for input counts [..., K]
    (`fan_out`: each row's non-zero weights): a spike on row k reaches every output,
    fan_out[k] of them through a non-zero weight (counts @ nonzero summed, as one dot)."""
    rows = counts.reshape(-1, counts.shape[-1]).sum(axis=0, dtype=np.int64)
    return int(rows.sum()) * outputs, int(rows @ fan_out)


def td_matmul_sops(a: np.ndarray, b: np.ndarray, lag: int) -> tuple[int, int]:
    """(SOPs, effective SOPs) of a TD-MatMul of runs of spikes with counts a [B, ..., N, d]
    and b [B, ..., d, M], B's runs starting `lag` steps after A's."""
    out = tuple(np.broadcast_shapes(a.shape[1:-2], b.shape[1:-2])) + (a.shape[-2], b.shape[-1])
    memo: dict[tuple[int, bool], np.ndarray] = {}

    def along(side: int, nonzero: bool = False) -> np.ndarray:
        """A's column sums (side 0) or B's row sums (side 1), or their non-zero counts:
        [B, ..., d], each worked out once, when first needed."""
        if (side, nonzero) not in memo:
            memo[side, nonzero] = (_along(a, -2, nonzero) if side == 0
                                   else _along(b, -1, nonzero))
        return memo[side, nonzero]

    eff = 0
    late_a = _late(a, max(0, lag), -2, lambda: along(0), lambda: along(0, True))
    if late_a is not None:  # A's spikes once B has started, where B's entry is non-zero
        eff += _dot(late_a, along(1, True))
    late_b = _late(b, max(0, 1 - lag), -1, lambda: along(1), lambda: along(1, True))
    if late_b is not None:  # B's spikes after A's first, where A's entry is non-zero
        eff += _dot(along(0, True), late_b)
    spikes = [int(memo[side, False].sum(dtype=np.int64)) if (side, False) in memo
              else _spikes(c) for side, c in enumerate((a, b))]
    sops = (_broadcast_factor(a.shape[1:], out) * out[-1] * spikes[0]
            + _broadcast_factor(b.shape[1:], out) * out[-2] * spikes[1])
    return sops, eff


def _spikes(c: np.ndarray) -> int:
    """The sum of counts c [B, ...] (over the batch first: a long, fast sum)."""
    narrow = c.dtype == np.uint8 and len(c) * 255 <= 0xFFFF
    return int(c.sum(axis=0, dtype=np.uint16 if narrow else np.int64).sum(dtype=np.int64))


def _along(c: np.ndarray, axis: int, nonzero: bool = False) -> np.ndarray:
    """The sums (or non-zero counts) of c [..., N, M] along `axis` (-2 or -1). Counts
    whose sums fit a byte (N * the largest <= 255) are added in halves, in uint8, unless
    the axis is the innermost in memory (numpy's own reductions over a short axis are
    two to three times slower); otherwise through einsum, in uint16 where that cannot
    overflow."""
    if nonzero:
        c = (c != 0).view(np.uint8)
    if c.dtype == np.uint8 and c.strides[axis] != 1 and c.shape[axis] > 1 and (
            c.shape[axis] * (1 if nonzero else int(c.max(initial=0))) <= 0xFF):
        return _halving_sum(np.moveaxis(c, axis, 0))
    narrow = c.dtype == np.uint8 and c.shape[axis] * 255 <= 0xFFFF
    return np.einsum("...ij->...j" if axis == -2 else "...ij->...i", c,
                     dtype=np.uint16 if narrow else np.int64)


def _halving_sum(m: np.ndarray) -> np.ndarray:
    """m summed over its first axis, adding its halves until one is left."""
    while len(m) > 1:
        half = len(m) // 2
        top = m[:half] + m[half:2 * half]
        if len(m) % 2:
            top[0] += m[-1]
        m = top
    return m[0]


def _late(c: np.ndarray, skip: int, axis: int, sums: Callable[[], np.ndarray],
          present: Callable[[], np.ndarray]) -> np.ndarray | None:
    """`_along(c, axis)` of the spikes of c's runs after their first `skip` steps (`sums()`:
    all of them; `present()`: the runs, so skip 1 leaves sums - present); None if no run
    is that long."""
    if skip == 0:
        return sums()
    if skip == 1:
        return sums() - present()
    if c.size == 0 or skip >= int(c.max()):
        return None
    return _along(c - np.minimum(c, skip), axis)


def _dot(cols: np.ndarray, rows: np.ndarray) -> int:
    """The sum of all entries of a (broadcast, batched) matrix product, given the first
    operand's column sums and the second's row sums ([B, ..., d] each)."""
    rank = max(cols.ndim, rows.ndim)
    cols = cols.reshape(cols.shape[:1] + (1,) * (rank - cols.ndim) + cols.shape[1:])
    rows = rows.reshape(rows.shape[:1] + (1,) * (rank - rows.ndim) + rows.shape[1:])
    return int(np.multiply(cols, rows, dtype=np.int64).sum())
