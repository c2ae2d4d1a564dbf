"""The checklist of docs/new-op.md, over the op registries: every SNN op has its entry in
each table an engine, backend or report dispatches on, and every importer handler names a
real ONNX op and says what it becomes. A new op that misses a table fails here, naming it."""

from __future__ import annotations

import dataclasses
import importlib

import pytest
from onnx import defs

from snncc import ops as o
from snncc import ranges, reference
from snncc.app import cli
from snncc.backends import registry
from snncc.backends.hls import layers as hls_layers
from snncc.backends.sim import artifact
from snncc.frontend.support import HANDLERS, QONNX_HANDLERS
from snncc.metrics import report
from snncc.verify import hardware

verilog_lower = importlib.import_module("snncc.backends.verilog.lower")  # not the function
verilog_check = importlib.import_module("snncc.backends.verilog.check")  # not the function
SNN_OPS = [pytest.param(cls, id=cls.__name__) for cls in o.SNN_OPS]


@pytest.mark.parametrize("cls", SNN_OPS)
def test_every_snn_op_states_its_equation(cls):
    assert (cls.__doc__ or "").strip() and cls.__doc__ != o.Op.__doc__, (
        f"ops.{cls.__name__} needs a docstring stating its equation")


@pytest.mark.parametrize("cls", SNN_OPS)
def test_every_snn_op_is_serializable(cls):
    """model.snn reads every SNN op, each field checked by its type (artifact._attr)."""
    assert artifact._OPS[cls.__name__] is cls
    readable = {"np.ndarray", "Rounding", "int", "bool", "str", "float"}
    for f in dataclasses.fields(cls):
        assert str(f.type) in readable or str(f.type).startswith("tuple[int"), (
            f"{cls.__name__}.{f.name}: model.snn cannot read a field of type {f.type} "
            "(backends/sim/artifact.py, _attr)")


@pytest.mark.parametrize("cls", SNN_OPS)
def test_every_snn_op_has_a_reference_rule(cls):
    assert cls in reference.EVAL, f"reference.py: add an @evaluates({cls.__name__}) rule"


@pytest.mark.parametrize("cls", SNN_OPS)
def test_every_snn_op_has_a_range_rule(cls):
    assert cls in ranges._RULES, f"ranges.py: add {cls.__name__} to _RULES"


@pytest.mark.parametrize("cls", SNN_OPS)
def test_every_snn_op_has_an_hls_layer(cls):
    assert cls in hls_layers.LOWER, f"backends/hls/layers.py: add {cls.__name__} to LOWER"


@pytest.mark.parametrize("cls", SNN_OPS)
def test_every_snn_op_verilog_builds_has_an_engine(cls):
    """An op the Verilog backend accepts is built by an engine (rewiring is addressing);
    one it has no engine for is refused by `check`, naming it."""
    if cls in verilog_check._SUPPORTED and cls not in o.LAYOUT_OPS:
        assert cls in verilog_lower._RULES, (
            f"backends/verilog/lower.py: add an engine rule for {cls.__name__}")


@pytest.mark.parametrize("cls", SNN_OPS)
def test_every_snn_op_has_a_row_in_the_report(cls):
    assert cls in report.LAYER_OPS + o.LAYOUT_OPS, (
        f"metrics/report.py: add {cls.__name__} to LAYER_OPS (and its layer_kind)")


def test_every_importer_handler_is_a_real_onnx_op_with_a_readme_line():
    for op_type, handler in HANDLERS.items():
        assert defs.has(op_type), f"handlers.py registers {op_type}, which ONNX does not define"
        assert handler.becomes.strip(), f"{op_type}'s handler needs its README line"
    assert sorted(QONNX_HANDLERS) == ["IntQuant", "Quant"]


@pytest.mark.parametrize("backend", list(registry.BACKENDS.values()), ids=registry.TARGETS)
def test_every_backend_implements_the_interface_and_is_offered_everywhere(backend):
    """registry.py's interface: check, emit and NEURON_MODES in the module; the CLI's
    --target, the demo and the verification ladder take their targets from BACKENDS."""
    module = importlib.import_module(backend.module)
    assert callable(module.check) and callable(module.emit), backend.module
    assert set(module.NEURON_MODES) <= set(o.NEURON_MODES)
    assert backend.name in cli.TARGETS
    assert backend.name in hardware.RUNGS, f"verify/hardware.py: add a rung for {backend.name}"
