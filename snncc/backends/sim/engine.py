"""The SNN interpreter: a step engine and a fast (closed-form) engine.

The step engine advances every membrane, counter and accumulator one time step at a time,
vectorized over the batch and the neurons; it is the definition of the SNN's behaviour
under any delay policy. The fast engine is for exact mode only: there every neuron's
count equals the integer reference's code, so it evaluates that in one shot and expands
spike trains (code c -> spikes at t_fire .. t_fire+c-1) only when asked. The two must
agree bit for bit; tests hold them to it, and to the integer reference.

Both run on ``plan``: integers held in float32/float64 where every value and partial sum
is provably exact there (float BLAS), whole layers at a time. Spike counts are uint8.
"""

from __future__ import annotations

import weakref
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np

from snncc import kernels
from snncc import ops as o
from snncc.backends.sim import ortgraph, plan
from snncc.ir import Graph, Node, layer_names


class LayerMap(dict):
    """Arrays by layer name (``ir.layer_names``: the short name the tables show), in graph
    order. A layer's IR node name or its ONNX node name finds the same entry:
    ``counts['/head_act']`` and ``counts['/head_act/act_quant/export_handler/
    DequantizeLinear_output_0']`` are one array; iteration gives the layer names."""

    def __init__(self, by_node: dict[str, np.ndarray], graph: Graph):
        names, self.aliases = _names(graph)
        super().__init__((names.get(k, k), v) for k, v in by_node.items())

    def _resolve(self, key: object) -> object:
        if dict.__contains__(self, key) or not isinstance(key, str):
            return key
        return self.aliases.get(key, key)

    def __missing__(self, key: str) -> np.ndarray:
        name = self.aliases.get(key)
        if name is None or not dict.__contains__(self, name):
            shown = ", ".join(list(self)[:4])
            raise KeyError(f"no layer {key!r} (layers are named as the tables show them: "
                           f"{shown}{', ...' if len(self) > 4 else ''})")
        return self[name]

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, self._resolve(key))

    def get(self, key: str, default=None):
        return self[key] if key in self else default  # noqa: SIM401 (self.get is this)


_NAMES: weakref.WeakKeyDictionary[Graph, tuple[tuple, dict, dict]] = (
    weakref.WeakKeyDictionary())


def _names(graph: Graph) -> tuple[dict[str, str], dict[str, str]]:
    """(layer name by IR node name, layer name by alias) for `LayerMap`, kept while the
    graph's nodes and origins stay the same (``layer_names`` sorts the graph: about 1 ms,
    an eighth of a digits batch)."""
    key = tuple(graph.nodes())  # a node is replaced whenever its name, origin or inputs change
    cached = _NAMES.get(graph)
    if cached is not None and cached[0] == key:
        return cached[1], cached[2]
    names = layer_names(graph)
    aliases = {graph.node(k).origin: names[k] for k in reversed(names)}
    aliases.update((k, v) for k, v in names.items() if k != v)
    _NAMES[graph] = (key, names, aliases)
    return names, aliases


@dataclass
class SimResult:
    """What one simulation gives back (batch first)."""

    logits: np.ndarray  # real units
    logits_int: np.ndarray  # the integers the argmax is taken over
    counts: dict[str, np.ndarray]  # spike count of every neuron (uint8; wider past 255)
    steps: int
    trains: dict[str, np.ndarray] | None = None  # [T, batch, ...] uint8 (signed: int8 ±1)
    spike_totals: dict[str, int] = field(default_factory=dict)

    @property
    def predictions(self) -> np.ndarray:
        flat = self.logits_int.reshape(len(self.logits_int), -1)
        return flat.argmax(axis=1)

    def named(self, graph: Graph) -> SimResult:
        """This result keyed by layer name (``LayerMap``), as ``CompiledModel.simulate``
        gives it; the engines key by IR node name."""
        trains = None if self.trains is None else LayerMap(self.trains, graph)
        return SimResult(self.logits, self.logits_int, LayerMap(self.counts, graph),
                         self.steps, trains, self.spike_totals)

    def firing_rates(self, graph: Graph) -> dict[str, float]:
        """Spikes per neuron per step of its window, per layer."""
        rates = {}
        for n in graph.ops(o.Neuron):
            rates[n.name] = float(self.counts[n.name].mean() / max(n.op_as(o.Neuron).levels, 1))
        return rates


def _readout(r: Node, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Logits in real units and the integers the argmax is taken over."""
    op = r.op_as(o.Readout)
    return op.scale * current + op.offset, current + op.bias


# ---------------------------------------------------------------- fast engine


def run_fast(graph: Graph, x: np.ndarray, trace: bool = False) -> SimResult:
    """Exact mode in closed form: every neuron's count is its integer-reference code."""
    if graph.meta.get("delay", "exact") != "exact":
        raise ValueError("the fast engine computes exact mode only; use the step engine")
    p = plan.build(graph)
    whole = _whole(p)
    if whole is not None:
        values = whole(x)
    else:
        with kernels.single_blas_thread():
            values = plan.run_exact(p, x)
    counts = {name: values[name].astype(plan.count_dtype(graph.node(name).op_as(o.Neuron).levels),
                                        copy=False) for name in p.neurons}
    r = p.readout
    real, ints = _readout(r, values[r.name].astype(np.int64))
    trains = None
    if trace:
        trains = {n.name: exact_train(n.op_as(o.Neuron), counts[n.name], p.steps)
                  for n in p.order if isinstance(n.op, o.Neuron)}
    return SimResult(real, ints, counts, p.steps, trains)


def exact_train(op: o.Neuron, counts: np.ndarray, steps: int) -> np.ndarray:
    """[steps, *counts.shape] uint8: the spike train, in exact mode, of neurons whose
    counts are `counts`: one spike a step from t_fire on (a multi neuron: the whole code
    at t_fire, on weighted lines)."""
    c = counts[None].astype(np.int64)
    t = np.arange(steps).reshape((-1,) + (1,) * (c.ndim - 1))
    if op.mode == "multi":
        return np.where(t == op.t_fire, c, 0).astype(np.uint8)
    return ((t >= op.t_fire) & (t < op.t_fire + c)).astype(np.uint8)


def _whole(p: plan.Plan) -> ortgraph.Whole | None:
    """The plan as one onnxruntime session (``ortgraph``) where it lowers and is chosen:
    unless SNNCC_ORT_GRAPH=0 (``ortgraph.mode``)."""
    if ortgraph.mode() == "off":
        return None
    if p.whole is None:
        lowered = ortgraph.lower(p)
        p.whole = False if lowered is None else ortgraph.Whole(*lowered, ortgraph.largest(p))
    return p.whole if isinstance(p.whole, ortgraph.Whole) else None


# ---------------------------------------------------------------- step engine


def run_step(graph: Graph, x: np.ndarray, trace: bool = False,
             steps: int | None = None) -> SimResult:
    """Simulate every time step; works for every delay policy. With `steps`, the run
    stops after that many steps (the readout takes what arrived by then: an "anytime"
    answer).

    Evaluated layer by layer: each value over all the steps it is active in at once,
    each neuron advancing its membranes and firing step by step by the hardware's rule
    (``plan.run_steps``, ``kernels.dif_steps``); the closed form is never consulted.
    """
    p = plan.build(graph)
    steps = p.steps if steps is None else max(1, min(int(steps), p.steps))
    # traced, every train is a [steps, batch, ...] array written at its few firing steps
    with kernels.small_pages() if trace else nullcontext():
        with kernels.single_blas_thread():
            trains, counts, total = plan.run_steps(p, x, steps, trace)
        assert total is not None, "a plan has a readout"
        real, ints = _readout(p.readout, total.astype(np.int64))
        full = None
        if trace:
            full = {}
            for name, s in trains.items():
                signed = s.data.dtype.kind == "i"  # ±1 spikes of signed neurons
                out = np.zeros((steps,) + s.data.shape[1:], np.int8 if signed else np.uint8)
                out[s.t0:s.t0 + len(s.data)] = s.data[:max(0, steps - s.t0)]
                full[name] = out
    return SimResult(real, ints, counts, steps, full)
