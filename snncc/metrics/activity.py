"""Per-step activity of SNN values, replayed from the neurons' spike trains.

Given the input and every neuron's spike train (from either engine), every other value at
every step is fixed: input spikes come from the input codes, synapses, sums and layout ops
are stateless, and the TD ops are functions of running counts. ``replay`` evaluates the
graph with time folded into the batch axis and hands each node's per-step operands and
result to a visitor (the operation counters).

Two economies keep this cheap: a value is only computed over its activity window (the
schedule's; outside it the value is zero), and a current is only computed per step when
something counts from it (residual adds, sums, the readout). Operands handed to the
visitor are aligned on the union of their windows: ``[W, batch, ...]``.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from snncc import kernels
from snncc import ops as o
from snncc.ir import Graph, Node
from snncc.reference import EVAL
from snncc.schedule import windows

Visit = Callable[[Node, list[np.ndarray], np.ndarray | None], None]
COUNTED_FROM_CURRENTS = (o.AddCurrent, o.ReduceSum, o.SumPool, o.Readout)


@dataclass
class Steps:
    """A value over steps t0 .. t0 + len(data) - 1 (zero elsewhere): data [W, B, ...]."""

    t0: int
    data: np.ndarray


def _fold(a: np.ndarray) -> np.ndarray:
    return a.reshape((a.shape[0] * a.shape[1],) + a.shape[2:])


def _unfold(a: np.ndarray, steps: int) -> np.ndarray:
    return a.reshape((steps, a.shape[0] // steps) + a.shape[1:])


def align(values: list[Steps]) -> tuple[int, list[np.ndarray]]:
    """The operands zero-padded to the union of their windows."""
    t0 = min(v.t0 for v in values)
    t1 = max(v.t0 + len(v.data) for v in values)
    out = []
    for v in values:
        before, after = v.t0 - t0, t1 - v.t0 - len(v.data)
        pad = [(before, after)] + [(0, 0)] * (v.data.ndim - 1)
        out.append(np.pad(v.data, pad) if before or after else v.data)
    return t0, out


def input_spikes(n: Node, x: np.ndarray) -> Steps:
    """What the input layer emits: analog codes once at step 0, else code c as c spikes."""
    codes = EVAL[o.SpikeInput](n, [np.asarray(x, np.float64)])
    op = n.op_as(o.SpikeInput)
    if op.analog:
        return Steps(0, codes[None])
    t = np.arange(op.hi - op.lo).reshape((-1,) + (1,) * codes.ndim)
    return Steps(0, (codes[None] - op.lo > t).astype(np.int64))


def td_matmul_steps(sa: np.ndarray, sb: np.ndarray) -> np.ndarray:
    """ΔP(t) = S_A(t)·C_B(t) + C_A(t-1)·S_B(t) for every t of aligned windows at once."""
    ca_prev = np.cumsum(sa, axis=0) - sa
    cb = np.cumsum(sb, axis=0)
    out = kernels.matmul(_fold(sa), _fold(cb)) + kernels.matmul(_fold(ca_prev), _fold(sb))
    return _unfold(out, len(sa))


def td_maxpool_steps(n: Node, s: np.ndarray) -> np.ndarray:
    """out(t) = maxpool(C(t)) - maxpool(C(t-1)) for every t of the window at once."""
    op = n.op_as(o.TDMaxPool)
    pooled = kernels.maxpool2d(_fold(np.cumsum(s, axis=0)), op.kernel, op.strides, op.pads)
    m = _unfold(pooled, len(s))
    return np.diff(m, axis=0, prepend=np.zeros_like(m[:1]))


def stepwise(graph: Graph) -> set[str]:
    """Values needed step by step: spikes, and currents that something counts from."""
    need: set[str] = set()
    for n in reversed(list(graph.topo())):
        users = graph.users(n.name)
        if n.kind == o.CODES or any(
                isinstance(u.op, COUNTED_FROM_CURRENTS)
                or u.name in need and isinstance(u.op, o.LAYOUT_OPS) for u in users):
            need.add(n.name)
    return need


def _neuron_steps(n: Node, train: np.ndarray, window: tuple[int, int]) -> Steps:
    """The neuron's spikes over its window, cut at the end of the run (with a small
    --delay a neuron's window may open after the run ends: then it holds one silent step)."""
    t0, t1 = window
    assert not train[:t0].any() and not train[t1 + 1:].any(), f"{n.name} fired off-window"
    data = train[t0:t1 + 1].astype(np.int64)
    if len(data) == 0:
        return Steps(t0, np.zeros((1,) + train.shape[1:], np.int64))
    return Steps(t0, data)


def trains_from_counts(counts: dict[str, np.ndarray]) -> Callable[[Node, tuple[int, int]], Steps]:
    """Exact mode's spike trains over each neuron's window, made from its counts: count c
    is spikes at the window's first c steps (the fast engine's trains). Held as float64,
    which keeps every current computed from them an exact integer (below 2**53) and sends
    the synapses straight to BLAS."""
    def steps(n: Node, window: tuple[int, int]) -> Steps:
        c = counts[n.name]
        t = np.arange(window[1] - window[0] + 1).reshape((-1,) + (1,) * c.ndim)
        data = np.empty((len(t),) + c.shape, np.float64)
        np.greater(c[None], t, out=data)  # straight into float64: one pass, not two
        return Steps(window[0], data)

    return steps


def _compute(n: Node, ins: list[np.ndarray]) -> np.ndarray | None:
    if isinstance(n.op, o.TDMatMul):
        return td_matmul_steps(*ins)
    if isinstance(n.op, o.TDMaxPool):
        return td_maxpool_steps(n, ins[0])
    if isinstance(n.op, o.Readout):
        return None
    return _unfold(EVAL[type(n.op)](n, [_fold(i) for i in ins]), len(ins[0]))


_LAYOUT: weakref.WeakKeyDictionary[Graph, tuple[tuple[Node, ...], tuple]] = (
    weakref.WeakKeyDictionary())


def _layout(graph: Graph) -> tuple[dict[str, tuple[int, int]], list[Node]]:
    """The graph's windows and topological order (kept while its nodes stay the same: a
    replay per batch would otherwise spend its time sorting the graph)."""
    key = tuple(graph.nodes())  # a node is replaced whenever it changes (held: no id reuse)
    cached = _LAYOUT.get(graph)
    if cached is None or cached[0] != key:
        cached = key, (windows(graph), list(graph.topo()))
        _LAYOUT[graph] = cached
    return cached[1]


def needed_for(graph: Graph, targets: set[str]) -> set[str]:
    """The values the operands of `targets` are computed from, step by step."""
    need: set[str] = set()
    todo = [i for t in targets for i in graph.node(t).inputs]
    while todo:
        name = todo.pop()
        if name in need:
            continue
        need.add(name)
        if not isinstance(graph.node(name).op, o.Neuron | o.SpikeInput):
            todo.extend(graph.node(name).inputs)
    return need


def replay(graph: Graph, x: np.ndarray, trains: dict[str, np.ndarray] | Callable,
           visit: Visit, only: set[str] | None = None) -> None:
    """Call `visit(node, aligned per-step operands, per-step result or None)` for every SNN
    node in order. `trains` holds every neuron's spike train ``[T, batch, ...]`` (or gives
    a neuron's steps over its window: ``trains_from_counts``). With `only`, just those
    nodes are visited and just what their operands need is computed."""
    win, topo = _layout(graph)
    need = stepwise(graph) if only is None else needed_for(graph, only)
    visited = None if only is None else need | only
    order = [n for n in topo if not isinstance(n.op, o.Input)
             and (visited is None or n.name in visited)]
    last_use = {i: k for k, n in enumerate(order) for i in n.inputs}
    values: dict[str, Steps] = {}
    for k, n in enumerate(order):
        present = [values[i] for i in n.inputs if i in values]
        t0, ins = align(present) if present else (0, [])
        out: Steps | None = None
        if isinstance(n.op, o.SpikeInput):
            out = input_spikes(n, x)
        elif isinstance(n.op, o.Neuron):
            out = (trains(n, win[n.name]) if callable(trains)
                   else _neuron_steps(n, trains[n.name], win[n.name]))
        elif n.name in need:
            data = _compute(n, ins)
            out = None if data is None else Steps(t0, data)
        if only is None or n.name in only:
            visit(n, ins, None if out is None else out.data)
        if out is not None:
            values[n.name] = out
        for i in n.inputs:
            if last_use.get(i) == k:
                values.pop(i, None)
