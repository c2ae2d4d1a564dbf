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

from snncc.backends.common import default_inputs, golden, golden_of, remember
from snncc.backends.parallel import DEFAULT, HwConfig
from snncc.backends.sim.engine import run_step
from snncc.ir import Graph

from . import estimate
from .check import check
from .lower import lower
from .tools import (
    VERILATOR_FAST_MODEL,
    check_hierarchy,
    mul_cells,
    multiplying_instances,
    run_simulation,
    run_synthesis,
    xilinx_figures,
)
from .write import summary, write_design
from .write import write_vectors as _write_vectors

__all__ = ["NEURON_MODES", "check", "emit", "lower", "write_vectors", "run_simulation",
           "run_synthesis", "check_hierarchy", "mul_cells", "multiplying_instances",
           "VERILATOR_FAST_MODEL", "xilinx_figures", "estimate"]

DEFAULT_VECTORS = 5
# the neuron kinds the engines implement (snn_neuron's MODE; the spike formats of the
# other engines follow from them)
NEURON_MODES = ("if", "signed", "multi")
def emit(graph: Graph, out_dir: Path, vectors: int = DEFAULT_VECTORS,
         hw: HwConfig = DEFAULT) -> dict:
    """Write the Verilog design of `graph` into `out_dir`, its synapse engines folded as
    the parallelism knob `hw` says; returns a summary."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    design = lower(graph, hw)
    files = write_design(design, out_dir)
    x = default_inputs(graph, vectors)
    run = run_step(graph, x, trace=True)  # one run: the golden vectors and the estimate's trains
    remember(graph, x, run)  # and the first rows of the HLS target's golden vectors
    n = _write_vectors(design, golden_of(graph, x, run), out_dir)
    return summary(design, files) | {"vectors": n, "parallel": hw.record(graph),
                                     "estimate": estimate.estimate(graph, hw, x, design, run)}


def write_vectors(graph: Graph, out_dir: Path, x: np.ndarray) -> int:
    """Replace the testbench's golden vectors by the interpreter's run on inputs `x`
    (float, batch first); returns how many were written."""
    return _write_vectors(lower(graph), golden(graph, np.asarray(x, np.float64)),
                          Path(out_dir))
