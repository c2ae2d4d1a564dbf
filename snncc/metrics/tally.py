"""Operation counts of an exact-mode run from its spike counts, with no spike trains.

In exact mode with unit-spike (if) neurons every spike train is one run of spikes: a
value with count c that starts at step s (its neuron's t_fire; 0 for the input) spikes at
s, s+1, ..., s+c-1 (the fast engine's trains, which the step engine equals bit for bit).
Counts and starts fix every train, so the rules of snncc.metrics.energy follow from them without
expanding any (the rules on arrays are in snncc.metrics.run_rules; this module applies
them to a graph, batch by batch):

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
from dataclasses import dataclass

import numpy as np

from snncc import ops as o
from snncc.ir import Graph, Node
from snncc.metrics.activity import replay, trains_from_counts
from snncc.metrics.energy import (
    LayerOps,
    OpCounts,
    dense_macs,
    layer_ops,
)
from snncc.metrics.run_rules import (
    NonzeroCurrents,
    conv_fan_out,
    dense_sops,
    pooled_counts,
    summed_adds,
    td_matmul_sops,
    weighted,
    window_reach,
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
            sops, eff = (weighted(counts, m) for m in s.maps[n.name])
        return LayerOps(sops=sops, sops_effective=eff)
    if isinstance(op, o.TDMatMul):
        a, b = (totals[i] for i in n.inputs)
        sa, sb = (s.starts[i] for i in n.inputs)
        assert sa is not None and sb is not None, f"{n.name} has mixed starts (replayed)"
        return LayerOps(*td_matmul_sops(a, b, sb - sa))
    if isinstance(op, o.TDMaxPool):
        return LayerOps(comparisons=weighted(totals.batch_sum(n.inputs[0]), s.maps[n.name][0]),
                        spikes=totals.spikes(n.name))
    if isinstance(op, o.AddCurrent):  # never both active at a step (else replayed)
        return LayerOps()
    if isinstance(op, o.Neuron) or isinstance(op, o.SpikeInput) and not op.analog:
        return LayerOps(spikes=totals.spikes(n.name))
    return None
