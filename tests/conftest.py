"""Shared fixtures: tiny models on disk, and tools that CI must have."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import onnx
import pytest

sys.path.insert(0, str(Path(__file__).parent))

import modelgen  # noqa: E402

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
