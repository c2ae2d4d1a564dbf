"""Time windows of the SNN: when each value can be active, and the end-to-end steps.

A window ``(t0, t1)`` holds every step at which a value may be non-zero. Spikes of an
input with code c arrive at steps 0..c-1; an analog input is presented once, at step 0.
Synapses, sums, TD ops and residual adds are active when their inputs are. A neuron may
fire in the L steps ``t_fire .. t_fire+L-1``, at most one spike per step (in exact mode
t_fire follows its input window, so every spike it owes fits). The interpreter, the HLS
and the Verilog backends all use this schedule.
"""

from __future__ import annotations

from collections.abc import Callable

from snncc import ops as o
from snncc.ir import Graph, Node

Window = tuple[int, int]


def _recorded_t_fire(n: Node, inputs: Window) -> int:
    return n.op.t_fire


def windows(graph: Graph, t_fire: Callable[[Node, Window], int] = _recorded_t_fire
            ) -> dict[str, Window]:
    """The activity window of every SNN value (floats have none).

    `t_fire` gives each neuron's first firing step from its input window (by default the
    one recorded in the neuron; insert-dif passes its delay policy here).
    """
    win: dict[str, Window] = {}
    for n in graph.topo():
        if isinstance(n.op, o.Input):
            continue
        if isinstance(n.op, o.SpikeInput):
            win[n.name] = (0, 0) if n.op.analog else (0, n.op.hi - n.op.lo - 1)
            continue
        ins = [win[i] for i in n.inputs]
        t0, t1 = min(w[0] for w in ins), max(w[1] for w in ins)
        if isinstance(n.op, o.Neuron):
            start = max(t_fire(n, (t0, t1)), t0)
            win[n.name] = (start, start + n.op.levels - 1)
        else:
            win[n.name] = (t0, t1)
    return win


def total_steps(graph: Graph) -> int:
    """Time steps from the first input spike to the last current into the readout."""
    win = windows(graph)
    return max(win[n.inputs[0]][1] for n in graph.ops(o.Readout)) + 1


def neuron_layers_on_path(graph: Graph) -> int:
    """Neuron layers on the longest path (each adds up to L steps in exact mode)."""
    depth: dict[str, int] = {}
    for n in graph.topo():
        d = max((depth[i] for i in n.inputs), default=0)
        depth[n.name] = d + isinstance(n.op, o.Neuron)
    return max(depth.values(), default=0)
