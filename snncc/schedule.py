"""Time windows of the SNN: when each value can be active, and the end-to-end steps.

A window ``(t0, t1)`` holds every step at which a value may be non-zero. Spikes of an
input with code c arrive at steps 0..c-1; an analog or weighted input is presented once,
at step 0. Synapses, sums, TD ops and residual adds are active when their inputs are. A
neuron may fire from ``t_fire``: an ``if`` neuron in the L steps t_fire .. t_fire+L-1 (at
most one spike per step), a ``multi`` neuron in the one step t_fire (its whole code on
weighted lines), a ``signed`` neuron from t_fire until L steps after its input window has
closed (so that its net count can settle). In exact mode t_fire follows the input window.

Each value also has an *onset*: the first step of its latest-starting contribution (a
residual stream's onset is that of the branch that starts last). A delay is counted from
the onset of a neuron's input: the step from which every branch that feeds it is under
way. The interpreter, the HLS and the Verilog backends all use this schedule.

``activity`` refines the windows step by step: a value is active at the steps where one
of its inputs is (a residual add of two branches in their union, not the hull), a neuron
in its firing window; the Verilog controller runs an engine only at those steps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from snncc import ops as o
from snncc.ir import Graph, Node

Window = tuple[int, int]


class Timing(NamedTuple):
    """A value's window (t0, t1) and its onset."""

    t0: int
    t1: int
    onset: int


def _recorded_t_fire(n: Node, inputs: Timing) -> int:
    return n.op_as(o.Neuron).t_fire


def timeline(graph: Graph, t_fire: Callable[[Node, Timing], int] = _recorded_t_fire
             ) -> dict[str, Timing]:
    """The window and onset of every SNN value (floats have none).

    `t_fire` gives each neuron's first firing step from its input's timing (by default the
    one recorded in the neuron; insert-dif passes its delay policy here).
    """
    out: dict[str, Timing] = {}
    for n in graph.topo():
        if isinstance(n.op, o.Input):
            continue
        if isinstance(n.op, o.SpikeInput):
            once = n.op.analog or n.op.weighted
            out[n.name] = Timing(0, 0 if once else n.op.hi - n.op.lo - 1, 0)
            continue
        ins = [out[i] for i in n.inputs]
        t0, t1 = min(w.t0 for w in ins), max(w.t1 for w in ins)
        onset = max(w.onset for w in ins)
        if isinstance(n.op, o.Neuron):
            start = max(t_fire(n, Timing(t0, t1, onset)), t0)
            out[n.name] = Timing(start, neuron_last_step(n.op, start, t1), start)
        else:
            out[n.name] = Timing(t0, t1, onset)
    return out


def neuron_last_step(op: o.Neuron, start: int, input_end: int) -> int:
    """The last step a neuron firing from `start` may fire at (see the module docstring;
    a recorded ``t_last`` cuts the window short, never below `start`)."""
    if op.mode == "multi":
        last = start
    elif op.mode == "signed":
        last = max(start, input_end + 1) + op.levels - 1
    else:
        last = start + op.levels - 1
    return last if op.t_last < 0 else max(start, min(last, op.t_last))


def windows(graph: Graph, t_fire: Callable[[Node, Timing], int] = _recorded_t_fire
            ) -> dict[str, Window]:
    """The activity window of every SNN value (floats have none)."""
    return {k: (t.t0, t.t1) for k, t in timeline(graph, t_fire).items()}


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


# ---------------------------------------------------------------- step by step


@dataclass(frozen=True)
class Activity:
    """Per step: which engines run, which values may be non-zero."""

    steps: int
    run: dict[str, np.ndarray]  # engine node -> [steps] bool
    active: dict[str, np.ndarray]  # value -> [steps] bool


def activity(graph: Graph, steps: int) -> Activity:
    """The step engine's behaviour, statically: a value is active at step t when it may
    be non-zero then; a node runs when an input is active (a neuron also in its firing
    window, `neuron_window`). Inactive values read as zero."""
    t = np.arange(steps)
    run: dict[str, np.ndarray] = {}
    active: dict[str, np.ndarray] = {}
    for n in graph.topo():
        if isinstance(n.op, o.Input):
            continue
        if isinstance(n.op, o.SpikeInput):
            once = n.op.analog or n.op.weighted
            active[n.name] = t == 0 if once else t < n.op.hi - n.op.lo
            continue
        any_in = np.logical_or.reduce([active[i] for i in n.inputs])
        if isinstance(n.op, o.Neuron):
            first, last = neuron_window(n.op, any_in)
            fire = (t >= first) & (t <= last)
            run[n.name], active[n.name] = any_in | fire, fire
        elif isinstance(n.op, o.LAYOUT_OPS):
            active[n.name] = any_in
        else:
            run[n.name], active[n.name] = any_in, any_in
    return Activity(steps, run, active)


def neuron_window(op: o.Neuron, input_active: np.ndarray) -> tuple[int, int]:
    """The steps first..last a neuron may fire at, as the step engine runs it
    (``plan._neuron_steps``): from t_fire (not before step 0) to the last step of its
    kind (``neuron_last_step``: t_fire + L - 1 for ``if``, t_fire for ``multi``,
    L steps after its input's last active step for ``signed``; cut at ``t_last``)."""
    first = max(0, op.t_fire)
    on = np.flatnonzero(input_active)
    input_end = int(on[-1]) if on.size else -1
    return first, neuron_last_step(op, first, input_end)
