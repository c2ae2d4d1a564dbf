"""insert-dif: give every neuron its firing delay (the DIF neuron), by the delay policy.

- ``exact``: fire only after the input window has closed. The SNN then equals the integer
  quantized ANN bit for bit; each neuron layer adds up to L steps of latency.
- an integer N: fire from N steps after the first input step (capped at exact).
- ``none``: fire as soon as current arrives (a plain IF neuron).
Residual paths need no alignment: currents add whenever they arrive and a neuron's window
closes after its last contributing branch.
"""

from __future__ import annotations

from dataclasses import dataclass

from snncc import ops as o
from snncc.ir import Graph
from snncc.passes import Pass, PassResult, register
from snncc.schedule import windows


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

    def run(self, graph: Graph) -> PassResult:
        fires: dict[str, int] = {}

        def policy(n, window: tuple[int, int]) -> int:
            t0, t1 = window
            if self.delay == "exact":
                fires[n.name] = t1 + 1
            elif self.delay == "none":
                fires[n.name] = t0
            else:
                fires[n.name] = min(t0 + int(self.delay), t1 + 1)
            return fires[n.name]

        windows(graph, policy)
        changed = False
        for name, t_fire in fires.items():
            op = graph.node(name).op
            if t_fire != op.t_fire:
                graph.replace_op(name, o.Neuron(op.sign, op.thresholds, op.levels, op.scale,
                                                t_fire))
                changed = True
        graph.meta["delay"] = self.delay
        return PassResult(graph, changed)
