"""The hardware backends, and the interface each one implements.

A backend is a module that defines:

- ``check(graph) -> list[Diagnostic]``: every reason it cannot build `graph`, one per node,
  before anything is written (``registry.check`` adds the neuron kinds it lacks);
- ``emit(graph, out_dir, hw=None) -> dict``: write its project into `out_dir`
  (``build/<name>/``) and return the summary that report.json keeps under
  ``targets.<name>``; `hw` is the parallelism knob (``snncc.backends.parallel``);
- ``NEURON_MODES``: the neuron kinds it has engines for (``if`` when absent).

Its ``Backend`` record below says where it lives, which programs its project needs, and
how the project is run. The CLI's ``--target`` choices, the demo's targets and the
verification ladder's hardware rungs are all read from ``BACKENDS``; the interpreter
(``sim``) is not a backend of this kind: every build has it.
"""

from __future__ import annotations

import importlib
import shutil
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from snncc import ops as o
from snncc.backends.parallel import HwConfig
from snncc.errors import Diagnostic, SnnccError, raise_if
from snncc.ir import Graph


@dataclass(frozen=True)
class Backend:
    """One hardware target: its --target name (and folder in the build), its module, the
    programs that run its project, and how they run it."""

    name: str
    module: str
    tools: tuple[str, ...]
    run: str
    what: str

    def ready(self) -> bool:
        """True if this snncc has the backend and this machine its tools."""
        return available(self.name) and all(shutil.which(t) for t in self.tools)


BACKENDS: dict[str, Backend] = {b.name: b for b in (
    Backend("hls", "snncc.backends.hls", ("g++", "make"), "make csim",
            "HLS C++ (a Vitis HLS project; its testbench runs with plain g++)"),
    Backend("verilog", "snncc.backends.verilog", ("iverilog",), "make sim-icarus",
            "Verilog RTL (a self-checking testbench for Icarus or Verilator)"),
)}
TARGETS: tuple[str, ...] = tuple(BACKENDS)
# the order `--target all` emits them in: the Verilog target's traced step-engine run on
# its 5 test inputs gives the first 5 of the HLS target's 20 golden vectors
# (``common.remember``); reports still list them in TARGETS order
EMIT_ORDER: tuple[str, ...] = ("verilog", "hls")


def _backend(target: str) -> ModuleType:
    try:
        return importlib.import_module(BACKENDS[target].module)
    except (KeyError, ModuleNotFoundError):
        raise SnnccError(Diagnostic(f"the {target} target is not available in this snncc",
                                    fix="use --target sim")) from None


def available(target: str) -> bool:
    """True if this snncc has the backend for `target`."""
    try:
        _backend(target)
    except SnnccError:
        return False
    return True


def check(target: str, graph: Graph) -> None:
    """Every reason `target` cannot take `graph`, raised at once before anything is written."""
    backend = _backend(target)
    raise_if(_neuron_kinds(target, backend, graph) or backend.check(graph))


def _neuron_kinds(target: str, backend: ModuleType, graph: Graph) -> list[Diagnostic]:
    """Neuron kinds the backend has no engine for (its NEURON_MODES lists those it has)."""
    have = getattr(backend, "NEURON_MODES", ("if",))
    used = sorted({n.op_as(o.Neuron).mode for n in graph.ops(o.Neuron)} - set(have))
    return [Diagnostic(f"the {target} target has no engine for --neuron {mode} neurons",
                       fix=f"use --neuron {' or '.join(have)} for --target {target}, or "
                           "--target sim") for mode in used]


def emit(target: str, graph: Graph, out_dir: Path, hw: HwConfig | None = None) -> dict:
    """Write the target's files into `out_dir`; returns a summary for report.json. `hw`
    is the parallelism knob (`snncc.backends.parallel`) of the hls and verilog targets."""
    backend = _backend(target)
    summary: dict = backend.emit(graph, out_dir) if hw is None else backend.emit(
        graph, out_dir, hw=hw)
    return summary
