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
from collections.abc import Callable
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
    td_matmul_figures,
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


Rule = Callable[["_Totals", int], LayerOps]  # (a batch's totals, its size) -> its figures


@dataclass
class _Static:
    """What counting needs to know of a graph, worked out once: per node that keeps
    totals, counts something or ends a value's use, (node, how its totals are kept:
    "counts", "sums" (a layout read only through its sums over the batch) or "", its rule,
    the values to drop after it); and the nodes replayed."""

    steps: list[tuple[Node, str, Rule | None, tuple[str, ...]]]
    slow: set[str]


_STATIC: weakref.WeakKeyDictionary[Graph, tuple[tuple[Node, ...], _Static]] = (
    weakref.WeakKeyDictionary())


def _static(graph: Graph) -> _Static:
    key = tuple(graph.nodes())  # a node is replaced whenever it changes (held: no id reuse)
    cached = _STATIC.get(graph)
    if cached is None or cached[0] != key:
        cached = key, _worked_out(graph)
        _STATIC[graph] = cached
    return cached[1]


def _worked_out(graph: Graph) -> _Static:
    order = [n for n in graph.topo() if not isinstance(n.op, o.Input)]
    summed = summed_from_counts(graph)
    slow = replayed(graph) - set(summed)
    starts = spike_starts(graph)
    sums_only = _sums_only(graph, order, summed)
    # a summed node reads its synapse's input: keep that input's counts until then
    uses = {n.name: n.inputs + ((summed[n.name][0],) if n.name in summed else ())
            for n in order}
    last_use = {i: k for k, n in enumerate(order) for i in uses[n.name]}
    late = _summed_by_td_matmuls(graph, order, slow)
    deferred = {neuron.name for pairs in late.values() for neuron, _ in pairs}
    steps: list[tuple[Node, str, Rule | None, tuple[str, ...]]] = []
    for k, n in enumerate(order):
        keep = "sums" if n.name in sums_only else "counts" if n.kind == o.CODES else ""
        rule = None if n.name in slow else _rule(graph, n, starts, summed)
        if n.name in deferred:  # its place in the figures now, its spikes once summed below
            rule = _placeholder
        drop = tuple(i for i in dict.fromkeys(uses[n.name]) if last_use[i] == k)
        if keep or rule or drop:
            steps.append((n, keep, rule, drop))
        for neuron, operand in late.get(n.name, ()):
            steps.append((neuron, "", _spikes_of(operand), ()))
    return _Static(steps, slow)


def _placeholder(t: _Totals, batch: int) -> LayerOps:
    return LayerOps()


def _spikes_of(operand: str) -> Rule:
    return lambda t, _: LayerOps(spikes=t.known[operand])


def _summed_by_td_matmuls(graph: Graph, order: list[Node], slow: set[str]
                          ) -> dict[str, list[tuple[Node, str]]]:
    """Neurons whose counts only a TD-MatMul reads (through layout ops, one reader each):
    their spikes are its operand's, which it sums anyway. Per TD-MatMul: [(neuron node,
    operand)]."""
    out: dict[str, list[tuple[Node, str]]] = {}
    for n in order:
        if not isinstance(n.op, o.Neuron):
            continue
        value = n.name
        while len(users := graph.users(value)) == 1 and isinstance(
                users[0].op, o.LAYOUT_OPS) and len(users[0].inputs) == 1:
            value = users[0].name
        if len(users) == 1 and isinstance(users[0].op, o.TDMatMul) and \
                users[0].name not in slow and users[0].inputs.count(value) == 1:
            out.setdefault(users[0].name, []).append((n, value))
    return out


def _rule(graph: Graph, n: Node, starts: dict[str, int | None], summed: dict) -> Rule | None:
    """What node `n` counts, from a batch's totals (None: nothing)."""
    op, name = n.op, n.name
    src = n.inputs[0] if n.inputs else ""
    if name in summed:
        spikes, nonzero = summed[name]
        axes, shape = n.op_as(o.ReduceSum).axes, graph.node(src).shape
        return lambda t, _: LayerOps(adds=summed_adds(t[spikes], nonzero, axes, shape))
    if isinstance(op, o.Synapse) and op.analog:
        macs = dense_macs(op, [graph.node(src).shape], n.shape)
        return lambda _, batch: LayerOps(macs=batch * macs)
    if isinstance(op, o.Synapse) and op.kind == "dense":
        outputs = op.weight.shape[1]
        fan_out = np.count_nonzero(op.weight, axis=1).astype(np.int64)
        return lambda t, _: LayerOps(*dense_sops(t.batch_sum(src), outputs, fan_out))
    if isinstance(op, o.Synapse):
        reach, eff = conv_fan_out(op, graph.node(src).shape, n.shape)
        return lambda t, _: LayerOps(weighted(t.batch_sum(src), reach),
                                     weighted(t.batch_sum(src), eff))
    if isinstance(op, o.TDMatMul):
        a, b = n.inputs
        sa, sb = starts[a], starts[b]
        assert sa is not None and sb is not None, f"{name} has mixed starts (replayed)"

        def td(t: _Totals, _: int) -> LayerOps:
            sops, eff, t.known[a], t.known[b] = td_matmul_figures(t[a], t[b], sb - sa)
            return LayerOps(sops, eff)

        return td
    if isinstance(op, o.TDMaxPool):
        in_shape = graph.node(src).shape
        windows = window_reach(np.ones((in_shape[0],) + tuple(op.kernel), np.int64), in_shape,
                               n.shape, op.strides, op.pads)
        return lambda t, _: LayerOps(comparisons=weighted(t.batch_sum(src), windows),
                                     spikes=t.spikes(name))
    if isinstance(op, o.AddCurrent):  # never both active at a step (else replayed)
        return lambda t, _: LayerOps()
    if isinstance(op, o.Neuron) or isinstance(op, o.SpikeInput) and not op.analog:
        return lambda t, _: LayerOps(spikes=t.spikes(name))
    return None


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
    for n, keep, rule, drop in s.steps:
        if keep == "sums":  # a layout of the sums over the batch
            totals.sums[n.name] = EVAL[type(n.op)](n, [totals.batch_sum(i) for i in n.inputs])
        elif keep == "counts":
            totals[n.name] = _total(n, x, counts, totals)
        if rule is not None:
            result.layers[n.name] = rule(totals, len(x))
        for i in drop:
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
        self.known: dict[str, int] = {}  # spikes of TD-MatMul operands, as it summed them

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
