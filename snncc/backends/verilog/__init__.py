"""The Verilog backend: synthesizable RTL for spike-only hardware.

``check(graph)`` lists what the backend cannot build (before anything is written);
``emit(graph, out_dir)`` writes ``out_dir`` (``build/verilog/``): the engine library and
the generated top in ``rtl/``, weights, thresholds, tables and the step schedule in
``mem/`` ($readmemh images), a self-checking testbench with golden vectors from the
interpreter in ``tb/``, a Yosys script in ``synth/`` and a Makefile (sim-icarus,
sim-verilator, lint, synth). ``run_simulation`` and ``run_synthesis`` run those and
return the figures for report.json. The architecture is described in docs/verilog.md.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from snncc import ops as o
from snncc.backends.common import default_inputs, golden
from snncc.backends.parallel import DEFAULT, HwConfig
from snncc.errors import Diagnostic
from snncc.ir import Graph, Node

from . import estimate
from .layout import BUFFERED, resolve
from .lower import lower
from .render import summary, write_design
from .render import write_vectors as _write_vectors
from .tools import (
    VERILATOR_FAST_MODEL,
    check_hierarchy,
    mul_cells,
    multiplying_instances,
    run_simulation,
    run_synthesis,
    xilinx_figures,
)

__all__ = ["NEURON_MODES", "check", "emit", "lower", "write_vectors", "run_simulation",
           "run_synthesis", "check_hierarchy", "mul_cells", "multiplying_instances",
           "VERILATOR_FAST_MODEL", "xilinx_figures", "estimate"]

DEFAULT_VECTORS = 5
# the neuron kinds the engines implement (snn_neuron's MODE; the spike formats of the
# other engines follow from them)
NEURON_MODES = ("if", "signed", "multi")
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


def emit(graph: Graph, out_dir: Path, vectors: int = DEFAULT_VECTORS,
         hw: HwConfig = DEFAULT) -> dict:
    """Write the Verilog design of `graph` into `out_dir`, its synapse engines folded as
    the parallelism knob `hw` says; returns a summary."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    design = lower(graph, hw)
    files = write_design(design, out_dir)
    x = default_inputs(graph, vectors)
    n = _write_vectors(design, golden(graph, x), out_dir)
    return summary(design, files) | {"vectors": n, "parallel": hw.record(graph),
                                     "estimate": estimate.estimate(graph, hw, x, design)}


def write_vectors(graph: Graph, out_dir: Path, x: np.ndarray) -> int:
    """Replace the testbench's golden vectors by the interpreter's run on inputs `x`
    (float, batch first); returns how many were written."""
    return _write_vectors(lower(graph), golden(graph, np.asarray(x, np.float64)),
                          Path(out_dir))
