"""The Verilog backend: lint, RTL simulation against the interpreter, synthesis, golden text.

Every emitted design is built once per session (fixtures); the simulators run the
self-checking testbench, whose golden vectors come from the interpreter, and the tests
read its per-layer agreement. A missing tool fails the test in CI (`require_tool`).
"""

from __future__ import annotations

import difflib
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import EXAMPLE, require_tool

import snncc
from snncc import ops as o
from snncc.backends import verilog
from snncc.backends.common import golden

GOLDEN = Path(__file__).parent / "golden" / "verilog"
EXAMPLE_MODEL = EXAMPLE / "digits_vit_qcdq.onnx"
TINY = ("cnn", "transformer", "transformer_spiking_input")
FAST_VECTORS = 5

pytestmark = pytest.mark.simulator


def _emit(model: Path, out: Path, x: np.ndarray | None = None) -> Path:
    compiled = snncc.compile(model, T=7)
    assert verilog.check(compiled.graph) == []
    verilog.emit(compiled.graph, out, vectors=3)
    if x is not None:
        verilog.write_vectors(compiled.graph, out, x)
    return out


def _example_inputs(n: int | None = None) -> np.ndarray:
    x = np.load(EXAMPLE / "digits_test.npz")["x"]
    return x if n is None else x[:n]


@pytest.fixture(scope="session")
def tiny_designs(tiny_models, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("verilog_tiny")
    return {name: _emit(tiny_models[name], root / name) for name in TINY}


@pytest.fixture(scope="session")
def example_design(tmp_path_factory) -> Path:
    if not EXAMPLE_MODEL.exists():
        pytest.skip("the bundled example is not built")
    out = tmp_path_factory.mktemp("verilog_example") / "verilog"
    return _emit(EXAMPLE_MODEL, out, _example_inputs(FAST_VECTORS))


def _assert_bit_exact(result: dict, vectors: int) -> None:
    assert result["vectors"] == vectors
    bad = {k: v for k, v in result["layers"].items() if v["match"] != v["total"]}
    assert not bad, f"spike counts differ from the interpreter: {bad}"
    assert result["logits"]["match"] == result["logits"]["total"] > 0
    assert result["passed"]


# ---------------------------------------------------------------- lint


def test_lint_clean_example(example_design):
    require_tool("verilator")
    done = subprocess.run(["make", "--no-print-directory", "lint"], cwd=example_design,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "%Warning" not in done.stderr + done.stdout


@pytest.mark.parametrize("name", TINY)
def test_lint_clean_tiny(tiny_designs, name):
    require_tool("verilator")
    done = subprocess.run(["make", "--no-print-directory", "lint"], cwd=tiny_designs[name],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


# ---------------------------------------------------------------- simulation


@pytest.mark.parametrize("name", TINY)
def test_icarus_matches_interpreter_tiny(tiny_designs, name):
    require_tool("iverilog")
    require_tool("vvp")
    _assert_bit_exact(verilog.run_simulation(tiny_designs[name], "icarus"), 3)


@pytest.mark.parametrize("name", TINY)
def test_verilator_matches_interpreter_tiny(tiny_designs, name):
    require_tool("verilator")
    _assert_bit_exact(verilog.run_simulation(tiny_designs[name], "verilator"), 3)


def test_icarus_matches_interpreter_example(example_design):
    require_tool("iverilog")
    result = verilog.run_simulation(example_design, "icarus")
    _assert_bit_exact(result, FAST_VECTORS)
    assert len(result["layers"]) == 19


def test_verilator_matches_interpreter_example(example_design):
    require_tool("verilator")
    result = verilog.run_simulation(example_design, "verilator")
    _assert_bit_exact(result, FAST_VECTORS)
    assert result["cycles_per_inference"]["max"] > 0


@pytest.mark.slow
def test_verilator_matches_interpreter_example_test_split(tmp_path):
    require_tool("verilator")
    x = _example_inputs()
    out = _emit(EXAMPLE_MODEL, tmp_path / "verilog", x)
    _assert_bit_exact(verilog.run_simulation(out, "verilator"), len(x))


# ---------------------------------------------------------------- golden vectors


def test_vectors_are_the_interpreter_golden(example_design):
    """The testbench's vectors hold golden(graph, x) of the test inputs: every input code,
    every neuron's spike count, every logit."""
    compiled = snncc.compile(EXAMPLE_MODEL, T=7)
    gold = golden(compiled.graph, _example_inputs(FAST_VECTORS))
    folder = example_design / "tb" / "vectors"
    read = lambda name: (folder / name).read_text().split()  # noqa: E731
    assert int(read("count.txt")[0]) == FAST_VECTORS
    assert [int(c, 16) for c in read("codes.hex")] == gold.codes.ravel().tolist()
    neurons = compiled.graph.ops(o.Neuron)
    counts = [gold.counts[n.name][v].ravel() for v in range(FAST_VECTORS) for n in neurons]
    assert [int(c, 16) for c in read("counts.hex")] == np.concatenate(counts).tolist()
    assert len(read("logits.hex")) == gold.logits.size


# ---------------------------------------------------------------- golden text


def _snapshot(design: Path) -> dict[str, str]:
    files = ["rtl/snn_top.v", "tb/snn_tb.v", "Makefile", "synth/synth.ys"]
    return {f: (design / f).read_text() for f in files}


def test_golden_snapshot_example(tmp_path):
    """The emitted Verilog of the bundled example; SNNCC_UPDATE_GOLDEN=1 rewrites it."""
    if not EXAMPLE_MODEL.exists():
        pytest.skip("the bundled example is not built")
    out = _emit(EXAMPLE_MODEL, tmp_path / "verilog")
    current = _snapshot(out)
    if os.environ.get("SNNCC_UPDATE_GOLDEN"):
        for name, text in current.items():
            (GOLDEN / name).parent.mkdir(parents=True, exist_ok=True)
            (GOLDEN / name).write_text(text)
    diffs = []
    for name, text in current.items():
        path = GOLDEN / name
        old = path.read_text() if path.exists() else ""
        if old != text:
            diffs += difflib.unified_diff(old.splitlines(True), text.splitlines(True),
                                          f"golden/{name}", f"emitted/{name}")
    assert not diffs, "emitted Verilog changed (SNNCC_UPDATE_GOLDEN=1 to accept):\n" + "".join(
        diffs[:200])
