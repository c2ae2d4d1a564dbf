"""The SNN interpreter: a step engine and a fast (closed-form) engine.

The step engine advances every membrane, counter and accumulator one time step at a time,
vectorized over the batch and the neurons; it is the definition of the SNN's behaviour
under any delay policy. The fast engine is for exact mode only: there every neuron's
count equals the integer reference's code, so it evaluates that in one shot and expands
spike trains (code c -> spikes at t_fire .. t_fire+c-1) only when asked. The two must
agree bit for bit; tests hold them to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from snncc import kernels
from snncc import ops as o
from snncc.ir import Graph, Node
from snncc.reference import EVAL, batched, evaluate
from snncc.schedule import total_steps


@dataclass
class SimResult:
    """What one simulation gives back (batch first)."""

    logits: np.ndarray  # real units
    logits_int: np.ndarray  # the integers the argmax is taken over
    counts: dict[str, np.ndarray]  # spike count of every neuron
    steps: int
    trains: dict[str, np.ndarray] | None = None  # [T, batch, ...] uint8 spike trains
    spike_totals: dict[str, int] = field(default_factory=dict)

    @property
    def predictions(self) -> np.ndarray:
        flat = self.logits_int.reshape(len(self.logits_int), -1)
        return flat.argmax(axis=1)

    def firing_rates(self, graph: Graph) -> dict[str, float]:
        """Spikes per neuron per step of its window, per layer."""
        rates = {}
        for n in graph.ops(o.Neuron):
            rates[n.name] = float(self.counts[n.name].mean() / max(n.op.levels, 1))
        return rates


def _readout(graph: Graph, totals: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    (r,) = graph.ops(o.Readout)
    current = totals[r.inputs[0]]
    return r.op.scale * current + r.op.offset, current + r.op.bias


# ---------------------------------------------------------------- fast engine


def run_fast(graph: Graph, x: np.ndarray, trace: bool = False) -> SimResult:
    """Exact mode in closed form: counts from the integer reference."""
    if graph.meta.get("delay", "exact") != "exact":
        raise ValueError("the fast engine computes exact mode only; use the step engine")
    values = evaluate(graph, {graph.inputs[0]: x})
    counts = {n.name: values[n.name] for n in graph.ops(o.Neuron)}
    real, ints = _readout(graph, values)
    steps = total_steps(graph)
    trains = None
    if trace:
        trains = {}
        for n in graph.ops(o.Neuron):
            c = counts[n.name][None]
            t = np.arange(steps).reshape((-1,) + (1,) * (c.ndim - 1))
            trains[n.name] = ((t >= n.op.t_fire) & (t < n.op.t_fire + c)).astype(np.uint8)
    return SimResult(real, ints, counts, steps, trains)


# ---------------------------------------------------------------- step engine


class _State:
    """Per-node state of the step engine: membranes, counters, accumulators."""

    def __init__(self, graph: Graph, n: Node, batch: int):
        self.batch = batch
        self.in_shapes = [(batch,) + graph.node(i).shape for i in n.inputs]
        self.acc = np.zeros((batch,) + n.shape, np.int64)
        if isinstance(n.op, o.TDMatMul):
            self.ca, self.cb = (np.zeros(s, np.int64) for s in self.in_shapes)
        if isinstance(n.op, o.TDMaxPool):
            self.counts = np.zeros(self.in_shapes[0], np.int64)
        if isinstance(n.op, o.Neuron):
            self.n = np.zeros((batch,) + n.shape, np.int64)
            th = np.broadcast_to(n.op.thresholds, n.shape + (n.op.levels,))
            self.th = np.ascontiguousarray(th).reshape(-1)
            self.base = (np.arange(int(np.prod(n.shape))) * n.op.levels).reshape(n.shape)
            self.sign = np.broadcast_to(n.op.sign, n.shape)


def run_step(graph: Graph, x: np.ndarray, trace: bool = False) -> SimResult:
    """Simulate every time step; works for every delay policy."""
    batch = len(x)
    steps = total_steps(graph)
    states = {n.name: _State(graph, n, batch) for n in graph.topo()
              if not isinstance(n.op, o.Input)}
    codes = None
    trains = {n.name: [] for n in graph.ops(o.Neuron)} if trace else None
    order = [n for n in graph.topo() if not isinstance(n.op, o.Input)]
    for t in range(steps):
        now: dict[str, np.ndarray | None] = {}
        for n in order:
            ins = [now.get(i) for i in n.inputs]
            if isinstance(n.op, o.SpikeInput):
                if codes is None:
                    codes = EVAL[o.SpikeInput](n, [np.asarray(x, np.float64)])
                now[n.name] = _input_spikes(n, codes, t)
            else:
                now[n.name] = STEP[type(n.op)](n, states[n.name], ins, t)
            if trains is not None and isinstance(n.op, o.Neuron):
                spikes = now[n.name]
                trains[n.name].append(np.zeros(states[n.name].acc.shape, np.uint8)
                                      if spikes is None else spikes.astype(np.uint8))
    counts = {n.name: states[n.name].n for n in graph.ops(o.Neuron)}
    (r,) = graph.ops(o.Readout)
    real, ints = _readout(graph, {r.inputs[0]: states[r.name].acc})
    stacked = {k: np.stack(v) for k, v in trains.items()} if trains is not None else None
    return SimResult(real, ints, counts, steps, stacked)


def _input_spikes(n: Node, codes: np.ndarray, t: int) -> np.ndarray | None:
    if n.op.analog:
        return codes if t == 0 else None
    return (codes - n.op.lo > t).astype(np.int64)


def _stateless(n: Node, state: _State, ins, t: int):
    if all(i is None for i in ins):
        return None
    ins = [np.zeros(shape, np.int64) if i is None else i
           for i, shape in zip(ins, state.in_shapes, strict=True)]
    return EVAL[type(n.op)](n, ins)


def _add_current(n: Node, state: _State, ins, t: int):
    if all(i is None for i in ins):
        return None
    a, b = batched([np.zeros(shape, np.int64) if i is None else i
                    for i, shape in zip(ins, state.in_shapes, strict=True)])
    return a + b


def _td_matmul(n: Node, state: _State, ins, t: int):
    """ΔP(t) = C_A(t-1)·S_B(t) + S_A(t)·C_B(t)."""
    sa, sb = ins
    if sa is None and sb is None:
        return None
    out = np.zeros(state.acc.shape, np.int64)
    if sb is not None:
        out += kernels.matmul(*batched([state.ca, sb]))
        state.cb += sb
    if sa is not None:
        out += kernels.matmul(*batched([sa, state.cb]))
        state.ca += sa
    return out


def _td_maxpool(n: Node, state: _State, ins, t: int):
    s = ins[0]
    if s is None:
        return None
    op = n.op
    state.counts += s
    m = kernels.maxpool2d(state.counts, op.kernel, op.strides, op.pads)
    out = m - state.acc
    state.acc = m
    return out


def _neuron(n: Node, state: _State, ins, t: int):
    if ins[0] is not None:
        state.acc += ins[0]
    if not n.op.t_fire <= t < n.op.t_fire + n.op.levels:
        return None
    level = np.minimum(state.n, n.op.levels - 1)
    theta = state.th[state.base + level]
    fire = (state.n < n.op.levels) & (state.sign * state.acc >= theta)
    state.n += fire
    return fire.astype(np.int64)


def _readout_step(n: Node, state: _State, ins, t: int):
    if ins[0] is not None:
        state.acc += ins[0]
    return None


STEP = {o.Synapse: _stateless, o.ReduceSum: _stateless, o.SumPool: _stateless,
        o.Reshape: _stateless, o.Transpose: _stateless, o.Take: _stateless,
        o.Concat: _stateless, o.AddCurrent: _add_current, o.TDMatMul: _td_matmul,
        o.TDMaxPool: _td_maxpool, o.Neuron: _neuron, o.Readout: _readout_step}
