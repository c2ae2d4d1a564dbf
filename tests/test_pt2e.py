"""Exports as PyTorch users make them, committed with the scripts that made them
(tests/data/pt2e/generate.py, tests/data/brevitas/generate.py): PT2E with the XNNPACK
quantizer through the torch exporter, Brevitas with per-channel weight scales and 4-bit
activations, Brevitas with signed activations. Each compiled exact at -T equal to its
activation levels and held to onnxruntime code by code (every difference explained, every
decision the same); more levels than T refused with both fixes, and --calibrate
requantizes them."""

from pathlib import Path

import numpy as np
import pytest

import snncc
from conftest import assert_exact
from snncc.errors import SnnccError
from snncc.metrics.compare import compare_onnx

DATA = Path(__file__).resolve().parent / "data"
CASES = [  # model, activation levels (its T), input shape of a sample
    (DATA / "pt2e" / "pt2e_cnn.onnx", 255, (1, 8, 8)),
    (DATA / "brevitas" / "perchannel_q4.onnx", 15, (1, 8, 8)),
    (DATA / "brevitas" / "signed_q4.onnx", 15, (16,)),
    (DATA / "brevitas" / "gap_head_q4.onnx", 15, (1, 8, 8)),  # GlobalAveragePool head
    (DATA / "brevitas" / "mean_head_q4.onnx", 15, (1, 8, 8)),  # ReduceMean over H, W
]


def images(shape, n: int = 48, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (n, *shape)).astype(np.float32)


def held_to_onnxruntime(model, path, x) -> None:
    agreement = compare_onnx(model, path, x)
    assert agreement.layers, "no layer compared"
    assert all(layer.unexplained == 0 for layer in agreement.layers), [
        (la.name, la.first_unexplained) for la in agreement.layers if la.unexplained]
    assert agreement.code_agreement >= 0.99
    assert agreement.differing_decisions == 0


@pytest.mark.parametrize("path, levels, shape", CASES, ids=lambda v: getattr(v, "stem", None))
def test_exact_at_its_levels(path, levels, shape):
    model = snncc.compile(path, T=levels)
    x = images(shape)
    assert_exact(model, x)
    held_to_onnxruntime(model, path, x)


def test_brevitas_weights_keep_their_per_channel_scales():
    """Per-channel weight scales reach the synapses as they are (one per output channel)."""
    import onnx
    from onnx import numpy_helper

    path = DATA / "brevitas" / "perchannel_q4.onnx"
    scales = [numpy_helper.to_array(t) for t in onnx.load(path).graph.initializer
              if t.dims and len(t.dims) == 4 and t.dims[0] in (6, 8) and t.dims[1] == 1]
    assert scales and all(len(np.unique(s)) > 1 for s in scales)  # varies per channel
    snncc.compile(path, T=15)


@pytest.mark.parametrize("path, levels, shape", CASES[1:2], ids=["perchannel_q4"])
def test_more_levels_than_t(path, levels, shape):
    with pytest.raises(SnnccError, match=r"4-bit activations: 15 levels > T = 7. Fix: use "
                                         r"--calibrate DATA \(requantizes to T levels\) or "
                                         r"-T 15"):
        snncc.compile(path, T=7)
    model = snncc.compile(path, T=7, calibrate=images(shape, 64, seed=2))
    x = images(shape)
    assert_exact(model, x)
    held_to_onnxruntime(model, path, x)


@pytest.mark.simulator
def test_mean_over_h_and_w_head_through_the_hardware_ladder(tmp_path):
    """The head that reads a mean over H and W (a Dense per position, the sum after it) in
    HLS C simulation and RTL simulation equals the interpreter; the codes onnxruntime's."""
    import io

    from rich.console import Console

    from conftest import require_tool
    from snncc.app.files import write_build
    from snncc.verify.ladder import run_ladder

    for tool in ("g++", "iverilog"):
        require_tool(tool)
    path = DATA / "brevitas" / "gap_head_q4.onnx"
    build = tmp_path / "build"
    build.mkdir()
    write_build(build, snncc.compile(path, T=15), ["hls", "verilog"])
    console = Console(record=True, width=120, file=io.StringIO())
    assert run_ladder(build, images((1, 8, 8), 3), console, path, "icarus",
                      require=("hls", "rtl")), console.export_text()
