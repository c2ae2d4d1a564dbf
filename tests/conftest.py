"""Shared fixtures: tiny models on disk, tools that CI must have, and the exactness check
of the numerics contract (the step engine against the integer reference and the fast
engine, with the closed form out of its reach)."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import onnx
import pytest

sys.path.insert(0, str(Path(__file__).parent))

import modelgen  # noqa: E402
from snncc import compiler, intmath, kernels, reference  # noqa: E402
from snncc import ops as o  # noqa: E402
from snncc.backends.sim import engine, ortgraph, plan  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "digits_vit"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_tool(name: str) -> str:
    """The path of an external tool; in CI a missing tool fails the test, never skips it."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (.ci/run installs it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """The modelgen models written to disk once per session."""
    folder = tmp_path_factory.mktemp("models")
    made = {
        "cnn": modelgen.tiny_cnn(),
        "cnn_po2": modelgen.tiny_cnn(po2=True),
        "transformer": modelgen.tiny_transformer(),
        "transformer_po2": modelgen.tiny_transformer(po2=True),
        "transformer_spiking_input": modelgen.tiny_transformer(spike_input=True, seed=3),
    }
    paths = {}
    for name, model in made.items():
        paths[name] = folder / f"{name}.onnx"
        onnx.save(model, paths[name])
    return paths


# ---------------------------------------------------------------- exactness


def closed_forms() -> dict[str, object]:
    """Every closed form of a neuron's count in snncc, by name: the level count
    #{k : v >= θ_k} (kernels, intmath) and what computes codes with it (the fast engine,
    its plan pass and its whole-graph ONNX lowering, the integer reference)."""
    return {"kernels.level_counts": kernels.level_counts,
            "kernels.affine_counts": kernels.affine_counts, "plan._codes": plan._codes,
            "plan.run_exact": plan.run_exact, "engine.run_fast": engine.run_fast,
            "ortgraph.lower": ortgraph.lower,
            "intmath.codes_from_thresholds": intmath.codes_from_thresholds,
            "reference.evaluate": reference.evaluate,
            "reference EVAL[Neuron]": reference.EVAL[o.Neuron],
            "CompiledModel.reference": compiler.CompiledModel.reference}


@contextlib.contextmanager
def closed_form_forbidden():
    """Inside, every closed form raises, wherever it is reached from: each module of
    snncc that holds one under any name (``from … import`` included), the reference's
    EVAL table and CompiledModel.reference. A step engine falling back on one fails
    instead of agreeing with the reference by construction."""
    forms = closed_forms()
    by_id = {id(fn): name for name, fn in forms.items()}

    def refusal(name: str):
        def refuse(*args, **kwargs):
            raise AssertionError(f"a closed form was used: {name}")
        return refuse

    with contextlib.ExitStack() as stack:
        for module in [m for k, m in sys.modules.items() if k.split(".")[0] == "snncc"]:
            for attr, value in list(vars(module).items()):
                if id(value) in by_id:
                    stack.enter_context(mock.patch.object(module, attr,
                                                          refusal(by_id[id(value)])))
        stack.enter_context(mock.patch.dict(reference.EVAL, {
            k: refusal(by_id[id(fn)]) for k, fn in reference.EVAL.items() if id(fn) in by_id}))
        stack.enter_context(mock.patch.object(compiler.CompiledModel, "reference",
                                              refusal("CompiledModel.reference")))
        stack.enter_context(mock.patch.object(ortgraph.Whole, "__call__",
                                              refusal("ortgraph.Whole")))
        yield


def assert_exact(model, x: np.ndarray) -> None:
    """Exact mode: the step engine (simulated step by step, the closed form forbidden)
    equals the integer reference on every code and on the logits, and the fast engine bit
    for bit (spike trains and logits)."""
    ref = model.reference(x)
    fast = model.simulate(x, engine="fast", trace=True)
    with closed_form_forbidden():
        step = model.simulate(x, engine="step", trace=True)
    for n in model.graph.ops(o.Neuron):
        assert np.array_equal(step.counts[n.name], ref[n.name]), n.name
        assert np.array_equal(step.trains[n.name], fast.trains[n.name]), n.name
        assert np.array_equal(step.trains[n.name].sum(axis=0), ref[n.name]), n.name
    (readout,) = model.graph.ops(o.Readout)
    assert np.array_equal(step.logits_int, ref[readout.name])
    assert np.array_equal(step.logits_int, fast.logits_int)
    assert np.array_equal(step.logits, fast.logits)
