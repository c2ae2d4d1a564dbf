"""Target name -> backend module. Every backend has ``check(graph)`` and ``emit``."""

from __future__ import annotations

import importlib
from pathlib import Path

from snncc import ops as o
from snncc.backends.parallel import HwConfig
from snncc.errors import Diagnostic, SnnccError, raise_if
from snncc.ir import Graph

_MODULES = {"hls": "snncc.backends.hls", "verilog": "snncc.backends.verilog"}


def _backend(target: str):
    try:
        return importlib.import_module(_MODULES[target])
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


def _neuron_kinds(target: str, backend, graph: Graph) -> list[Diagnostic]:
    """Neuron kinds the backend has no engine for (its NEURON_MODES lists those it has)."""
    have = getattr(backend, "NEURON_MODES", ("if",))
    used = sorted({n.op_as(o.Neuron).mode for n in graph.ops(o.Neuron)} - set(have))
    return [Diagnostic(f"the {target} target has no engine for --neuron {mode} neurons",
                       fix=f"use --neuron {' or '.join(have)} for --target {target}, or "
                           "--target sim") for mode in used]


def emit(target: str, graph: Graph, out_dir: Path, hw: HwConfig | None = None) -> dict:
    """Write the target's files into `out_dir`; returns a summary for report.json. `hw`
    is the parallelism knob (`snncc.backends.parallel`) of the hls and verilog targets."""
    if hw is None:
        return _backend(target).emit(graph, out_dir)
    return _backend(target).emit(graph, out_dir, hw=hw)
