"""What the HLS backend cannot emit, found before anything is written."""

from __future__ import annotations

from snncc import ops as o
from snncc.errors import Diagnostic
from snncc.ir import Graph, Node
from snncc.ranges import LINES, SIGNED, value_ranges, widest

SUPPORTED = (o.Input, o.SpikeInput, o.Synapse, o.Neuron, o.TDMaxPool, o.TDMatMul,
             o.AddCurrent, o.ReduceSum, o.SumPool, o.Readout, *o.LAYOUT_OPS)
_LIMIT = 2**62  # values must fit int64_t with room for a negation


def _where(n: Node, message: str, fix: str) -> Diagnostic:
    return Diagnostic(message, n.origin, n.op.name, fix)


def _structure(graph: Graph) -> list[Diagnostic]:
    problems = []
    for kind, what in ((o.SpikeInput, "input"), (o.Readout, "readout")):
        if len(graph.ops(kind)) != 1:
            problems.append(Diagnostic(
                f"the hls target needs exactly one {what}, the graph has "
                f"{len(graph.ops(kind))}", fix="compile a model with one input and one output"))
    if not graph.ops(o.Neuron):
        problems.append(Diagnostic("the model has no spiking layer",
                                   fix="use --target sim for a model without neurons"))
    return problems


def _spike_readers(graph: Graph, ranges) -> list[Diagnostic]:
    """Kernels that take spikes (unit, signed, or numbers on weighted lines) must not get
    multi-level (analog) codes."""
    problems = []
    for n in graph.topo():
        spikes_only = (isinstance(n.op, o.Synapse) and not n.op.analog) or isinstance(
            n.op, o.TDMaxPool | o.TDMatMul)
        if not spikes_only:
            continue
        ins = [ranges[i] for i in n.inputs]
        if {SIGNED, LINES} <= {r.spikes for r in ins}:
            problems.append(_where(n, "reads signed spikes and numbers on weighted lines "
                                   "at once", "compile with one --neuron kind"))
        elif not widest(ins):
            problems.append(_where(n, "reads multi-level input codes where the hardware "
                                   "expects binary spikes", "only the first (analog) synapse "
                                   "may read the input codes; quantize the input to at "
                                   "most T levels to make it spike"))
    return problems


def _pools(graph: Graph) -> list[Diagnostic]:
    problems = []
    for n in graph.ops(o.TDMaxPool, o.SumPool):
        op = n.op
        assert isinstance(op, o.TDMaxPool | o.SumPool)
        (kh, kw), (top, left, bottom, right) = op.kernel, op.pads
        if max(top, bottom) >= kh or max(left, right) >= kw:
            problems.append(_where(n, f"pads {list(op.pads)} reach a whole window of the "
                                   f"{kh}x{kw} kernel", "use pads smaller than the kernel"))
    return problems


def _widths(graph: Graph, ranges) -> list[Diagnostic]:
    problems = []
    for n in graph.topo():
        r = ranges.get(n.name)
        if r is not None and r.bound >= _LIMIT:
            problems.append(_where(n, "its currents may exceed 62 bits",
                                   "use fewer fraction bits (--frac-bits)"))
    return problems


def check(graph: Graph) -> list[Diagnostic]:
    """Every reason the hls target cannot take `graph` (empty: it can)."""
    unsupported = [_where(n, "the hls target has no kernel for this op",
                          "compile to the SNN IR first (snncc compile does)")
                   for n in graph.topo() if not isinstance(n.op, SUPPORTED)]
    problems = unsupported + _structure(graph)
    if problems:
        return problems
    ranges = value_ranges(graph)
    return _spike_readers(graph, ranges) + _pools(graph) + _widths(graph, ranges)
