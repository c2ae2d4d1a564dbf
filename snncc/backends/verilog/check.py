"""What the Verilog backend cannot build, listed before anything is written (one
diagnostic per node): ops without an engine, more than one input or output, operand
combinations the engines do not take."""

from __future__ import annotations

from snncc import ops as o
from snncc.errors import Diagnostic
from snncc.ir import Graph, Node

from .layout import BUFFERED, resolve

_SUPPORTED = BUFFERED + (o.Input, o.Readout, o.Reshape, o.Transpose, o.Take)


def check(graph: Graph) -> list[Diagnostic]:
    """Every reason the Verilog backend cannot build `graph`, one per node."""
    problems: list[Diagnostic] = []
    for n in graph.topo():
        if not isinstance(n.op, _SUPPORTED):
            problems.append(Diagnostic(
                f"the Verilog backend has no engine for {type(n.op).__name__}", n.origin,
                type(n.op).__name__, fix="use --target sim or hls for this model"))
    for kind in (o.SpikeInput, o.Readout):
        if len(graph.ops(kind)) != 1:
            problems.append(Diagnostic(
                f"the Verilog backend needs exactly one {kind.__name__}, the graph has "
                f"{len(graph.ops(kind))}", fix="compile a model with one input and one output"))
    if problems:
        return problems
    for n in graph.topo():
        problems += _check_operands(graph, n)
    return problems


def _check_operands(graph: Graph, n: Node) -> list[Diagnostic]:
    """Operand combinations the engines do not take."""
    if isinstance(n.op, o.SpikeInput) and not n.op.analog and n.op.lo != 0:
        return [Diagnostic(f"spiking input codes start at {n.op.lo}, not 0", n.origin,
                           "SpikeInput", fix="quantize the input to codes 0..L")]
    if isinstance(n.op, (o.Input, o.SpikeInput, *o.LAYOUT_OPS)):
        return []
    analog = [s for s in (resolve(graph, i)[0] for i in n.inputs) if _analog(graph.node(s))]
    if analog and not (isinstance(n.op, o.Synapse) and n.op.analog):
        return [Diagnostic("reads the analog (multi-level) input codes, which only the "
                           "analog first synapse may do", n.origin, type(n.op).__name__,
                           fix="put a linear or conv layer first, or use a spiking input")]
    return []


def _analog(n: Node) -> bool:
    return isinstance(n.op, o.SpikeInput) and n.op.analog
