"""Calibration's quantizer choice (issue 15): each method's clip against an independent
numpy computation on a tiny float model, per-channel scales where the readers absorb them,
and bias correction keeping the float means; the calibrated SNN held to the integer
reference and to onnxruntime (the build's quantizers put into the float source)."""

import numpy as np
import onnx
import onnx.parser
import pytest

import snncc
from snncc import ops as o
from snncc.errors import SnnccError
from snncc.intmath import Rounding, quantize
from snncc.metrics.compare import compare_onnx
from snncc.passes import _clipping

W = [[1.0, -1.0, 0.5, 2.0, 0.0, 1.0], [0.0, 1.0, -0.5, 1.0, 1.0, 0.25],
     [0.5, -1.0, 1.0, 0.5, 3.0, -1.0], [2.0, 0.5, -1.0, 0.25, 1.0, 0.5]]
MODEL = """<ir_version: 8, opset_import: ["" : 17]>
g (float[N, 4] x) => (float[N, 3] y)
<float[4, 6] w = {WEIGHTS},
 float[6, 3] w2 = {1.0, 0.0, 0.5, 0.0, 1.0, -1.0, 0.5, 0.5, 0.0, -1.0, 0.0, 1.0,
                   0.25, -0.5, 1.0, 1.0, 1.0, 0.0}> {
    h = MatMul(x, w)
    r = Relu(h)
    y = MatMul(r, w2)
}""".replace("WEIGHTS", ", ".join(str(v) for row in W for v in row))


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "mlp.onnx"
    onnx.save(onnx.parser.parse_model(MODEL), path)
    return path


def data(n: int = 300) -> np.ndarray:
    """Skewed inputs: the hidden values have long tails, so the best clip is below the max."""
    return np.random.default_rng(3).exponential(0.5, (n, 4))


def hidden(x: np.ndarray) -> np.ndarray:
    """The ReLU's output, computed here in numpy: [samples, 6], on the inputs as the
    calibrated 8-bit input quantizer passes them (unsigned, its clip at the max)."""
    s = x.max() / 255
    return np.maximum(s * np.round(x / s) @ np.array(W), 0)


def mse(v: np.ndarray, clip: float, levels: int = 7) -> float:
    s = clip / levels
    return float(np.mean((s * np.clip(np.round(v / s), 0, levels) - v) ** 2))


def brute_force(v: np.ndarray, levels: int = 7) -> float:
    """The least squared error over 4000 clips from 0 to the max (np.round: half to even)."""
    return min(mse(v, c) for c in np.linspace(v.max() / 4000, v.max(), 4000))


def relu_site(compiled) -> dict:
    (site,) = [s for s in compiled.graph.meta["calibration"]["sites"] if s["kind"] == "relu"]
    return site


def test_mse_clip_is_the_least_squared_error(model):
    x = data()
    compiled = snncc.compile(model, 7, calibrate=x, calibration="mse", per_channel=False,
                             bias_correction=False)
    site, v = relu_site(compiled), hidden(x)
    (clip,) = site["clip"]
    assert clip < 0.8 * v.max()  # it does clip the tail
    assert mse(v, clip) <= 1.01 * brute_force(v)
    assert site["scale"] == pytest.approx([clip / 7])
    rms = np.sqrt(np.mean(v ** 2))
    assert site["rel_error"] == pytest.approx(np.sqrt(mse(v, clip)) / rms)


def test_per_channel_clips_are_each_columns_least_squared_error(model):
    """The ReLU feeds a MatMul by a constant: one scale per hidden unit, each the least
    squared error of its column; the SNN equals the integer reference."""
    x = data()
    compiled = snncc.compile(model, 7, calibrate=x, calibration="mse", per_channel=True,
                             bias_correction=False)
    site, v = relu_site(compiled), hidden(x)
    assert site["axis"] == 0 and len(site["clip"]) == 6  # the one axis of a sample [6]
    for c, clip in enumerate(site["clip"]):
        assert mse(v[:, c], clip) <= 1.01 * brute_force(v[:, c])
    result = compiled.simulate(x[:40])
    ref = compiled.reference(x[:40])
    (readout,) = compiled.graph.ops(o.Readout)
    assert np.array_equal(result.logits_int, ref[readout.name])


@pytest.mark.parametrize("method, expected", [
    ("max", lambda v: v.max()), ("percentile", lambda v: np.percentile(v, 99.99))])
def test_max_and_percentile_clips(model, method, expected):
    x = data()
    compiled = snncc.compile(model, 7, calibrate=x, calibration=method, per_channel=False,
                             bias_correction=False)
    assert relu_site(compiled)["clip"] == pytest.approx([expected(hidden(x))])


def test_kl_clip_is_below_the_max(model):
    x = data()
    compiled = snncc.compile(model, 7, calibrate=x, calibration="kl", per_channel=False,
                             bias_correction=False)
    (clip,) = relu_site(compiled)["clip"]
    assert 0 < clip < hidden(x).max()


def test_bias_correction_keeps_the_float_means(model):
    """Each hidden unit's mean after quantization is the float mean (within what a shift
    of at most half a step can do), closer than without; onnxruntime agrees with the SNN
    on the source with the calibrated quantizers put in."""
    x = data()
    plain, corrected = (snncc.compile(model, 7, calibrate=x, calibration="mse",
                                      bias_correction=b) for b in (False, True))
    v = hidden(x)
    errors = []
    for compiled in (plain, corrected):
        site = relu_site(compiled)
        s = np.array(site["scale"])
        shift = np.array(site["shift"] or np.zeros(6))
        assert np.all(np.abs(shift) <= s / 2 + 1e-12)
        q = s * np.clip(np.round((v + shift) / s), 0, 7)  # numpy, not snncc's quantize
        errors.append(np.abs(q.mean(axis=0) - v.mean(axis=0)))
    assert errors[1].sum() < 0.5 * errors[0].sum()
    agreement = compare_onnx(corrected, model, x[:100])
    assert [la.name for la in agreement.layers] == [n.name for n in corrected.graph.ops(o.Neuron)]
    assert all(layer.unexplained == 0 for layer in agreement.layers)
    assert agreement.differing_decisions == 0


def test_unknown_calibration_method(model):
    with pytest.raises(SnnccError, match="unknown calibration method 'entropy'. Fix: use one "
                                         "of max, percentile, mse, kl"):
        snncc.compile(model, 7, calibrate=data(), calibration="entropy")


def test_report_lists_each_calibrated_quantizer(model, tmp_path):
    """`snncc compile --calibrate --calibration percentile` then `report --input`:
    the report's calibration table shows the ReLU's clip (the 99.99th percentile computed
    here) and its error; report.json keeps every channel's clip."""
    import json
    import os
    import subprocess
    import sys

    x = data()
    np.save(tmp_path / "c.npy", x)
    env = {**os.environ, "COLUMNS": "80"}

    def run(*args):
        proc = subprocess.run([sys.executable, "-m", "snncc", *map(str, args)], cwd=tmp_path,
                              capture_output=True, text=True, timeout=300, env=env)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    run("compile", model, "--calibrate", "c.npy", "--calibration", "percentile", "-o", "b")
    text = run("report", "b", "--input", "c.npy")
    clips = np.percentile(hidden(x), 99.99, axis=0)
    row = next(line for line in text.splitlines() if "percentile" in line)
    assert f"{clips.min():.3g}..{clips.max():.3g} (6 ch)" in row
    assert max(len(line) for line in text.splitlines()) <= 80
    (site,) = [s for s in json.loads((tmp_path / "b" / "report.json").read_text())[
        "calibration"]["sites"] if s["kind"] == "relu"]
    assert site["clip"] == pytest.approx(clips.tolist())


@pytest.mark.parametrize("method", _clipping.METHODS)
def test_a_silent_channel_gets_no_clip_fitted_to_rounding_noise(method):
    """A channel whose values are rounding noise (1e-18 where the exact value is 0) gets a
    clip of at least FLOOR times the layer's largest, so its codes are 0 whether the
    values are computed in float32 or float64; the other channels keep their own clip."""
    rng = np.random.default_rng(3)
    x = np.stack([rng.uniform(0, 2, 500), rng.uniform(0, 0.5, 500),
                  rng.uniform(0, 3e-18, 500)], axis=1)
    clip = _clipping.choose(x, 7, method)
    alone = _clipping.choose(x[:, :2], 7, method)
    assert clip[:2].tolist() == alone.tolist()
    assert clip[2] == _clipping.FLOOR * alone.max()
    codes = quantize(x[:, 2], clip[2] / 7, 0, 0, 7, Rounding.HALF_EVEN)
    assert not codes.any()
