"""insert-dif: give every neuron its kind and its firing delay (the DIF neuron).

Delay policies:
- ``exact``: fire only after the input window has closed. The SNN then equals the integer
  quantized ANN bit for bit; each ``if`` neuron layer adds up to L steps of latency.
- an integer N: fire N steps after the *onset* of the input, the step from which every
  branch that feeds the neuron is under way (capped at exact). A residual stream is open
  from the tokenizer on, so counting from its first step would let a deep block fire
  before its own branch has delivered anything.
- ``none``: fire as soon as current arrives (a plain IF neuron).
- per layer (``delays``, as ``--latency`` chooses them): N for each neuron by name.
Neuron kinds (``neuron``): ``if``, ``signed``, ``multi`` (see ops.Neuron). A ``multi``
neuron always fires once its input window has closed (its whole code in one step), and
with it a spike input arrives at step 0 on weighted lines.
"""

from __future__ import annotations

from dataclasses import dataclass

from snncc import ops as o
from snncc.ir import Graph
from snncc.passes.base import Pass, PassResult, register
from snncc.schedule import Timing, timeline


def parse_delay(text: str) -> str | int:
    """'exact' | 'none' | a non-negative integer."""
    if text in ("exact", "none"):
        return text
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise ValueError(f"--delay must be 'exact', 'none' or a non-negative integer, not {text!r}")
    return value


@register
@dataclass(frozen=True)
class InsertDif(Pass):
    name = "insert-dif"
    delay: str | int = "exact"
    neuron: str = "if"
    delays: tuple[tuple[str, int], ...] | None = None  # per neuron (name, N): --latency

    def t_fire(self, name: str, t: Timing) -> int:
        """The first firing step of neuron `name` whose input has timing `t`."""
        exact = t.t1 + 1
        if self.neuron == "multi" or self.delay == "exact" and self.delays is None:
            return exact
        if self.delays is not None:
            return min(t.onset + dict(self.delays).get(name, 0), exact)
        if self.delay == "none":
            return t.t0
        return min(t.onset + int(self.delay), exact)

    def run(self, graph: Graph) -> PassResult:
        changed = self._set_kinds(graph)
        fires: dict[str, int] = {}

        def policy(n, t: Timing) -> int:
            fires[n.name] = self.t_fire(n.name, t)
            return fires[n.name]

        timeline(graph, policy)
        for name, t_fire in fires.items():
            op = graph.node(name).op_as(o.Neuron)
            if t_fire != op.t_fire:
                graph.replace_op(name, o.Neuron(op.sign, op.thresholds, op.levels, op.scale,
                                                t_fire, op.mode, op.t_last))
                changed = True
        graph.meta["delay"] = "per-layer" if self.delays is not None else (
            "exact" if self.neuron == "multi" else self.delay)
        if self.delays is None:
            graph.meta.pop("delays", None)
        graph.meta["neuron"] = self.neuron
        if self.delays is not None:
            graph.meta["delays"] = dict(self.delays)
        return PassResult(graph, changed)

    def _set_kinds(self, graph: Graph) -> bool:
        """Every neuron of kind `neuron`; spike inputs on weighted lines for ``multi``."""
        changed = False
        for n in list(graph.ops(o.Neuron)):
            op = n.op_as(o.Neuron)
            if op.mode != self.neuron:
                graph.replace_op(n.name, o.Neuron(op.sign, op.thresholds, op.levels, op.scale,
                                                  op.t_fire, self.neuron, op.t_last))
                changed = True
        weighted = self.neuron == "multi"
        for n in list(graph.ops(o.SpikeInput)):
            sp = n.op_as(o.SpikeInput)
            if not sp.analog and sp.weighted != weighted:
                graph.replace_op(n.name, o.SpikeInput(sp.scale, sp.zero_point, sp.lo, sp.hi,
                                                      sp.rounding, sp.analog, weighted))
                changed = True
        return changed
