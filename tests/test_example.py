"""The bundled example: several exporters, one IR; golden SNN predictions; ties; demo."""

import os
import subprocess
import sys

import numpy as np
import pytest

import snncc
from conftest import EXAMPLE, ROOT
from snncc import ops as o
from snncc.frontend.importer import import_onnx
from snncc.intmath import Rounding
from snncc.ir import print_graph
from snncc.metrics.compare import BOUNDARY, boundary_distance, compare_onnx, run_onnx
from snncc.passes.pipeline import Options, default_pipeline, run_pipeline
from snncc.reference import evaluate

GOLDEN = ROOT / "tests" / "golden" / "digits_vit_snn.npz"


@pytest.fixture(scope="module")
def test_split():
    data = np.load(EXAMPLE / "digits_test.npz")
    return data["x"], data["y"]


@pytest.fixture(scope="module")
def qat_model():
    return snncc.compile(EXAMPLE / "digits_vit_qcdq.onnx", T=7)


def test_qcdq_and_qonnx_exports_load_into_the_same_ir():
    qcdq = import_onnx(EXAMPLE / "digits_vit_qcdq.onnx")
    qonnx = import_onnx(EXAMPLE / "digits_vit_qonnx.onnx")
    assert len(qcdq.ops(o.QuantAct)) == 20
    assert all(n.op.weight.quantized for n in qcdq.ops(o.Dense, o.Conv))
    assert print_graph(qcdq, anonymous=True) == print_graph(qonnx, anonymous=True)


def test_dynamo_export_with_external_data_loads(test_split):
    path = EXAMPLE / "digits_vit_float_dynamo" / "model.onnx"
    assert (path.parent / "model.onnx.data").stat().st_size > 10_000
    g = import_onnx(path)
    x = test_split[0][:32]
    ours = evaluate(g, {g.inputs[0]: x}, keep=False)[g.outputs[0]]
    assert np.allclose(ours, run_onnx(path, x, [])[0], atol=1e-4)
    torch_export = import_onnx(EXAMPLE / "digits_vit_float.onnx")
    assert np.allclose(ours, evaluate(torch_export, {torch_export.inputs[0]: x},
                                      keep=False)[torch_export.outputs[0]], atol=1e-4)


def test_snn_predictions_match_the_golden_file(qat_model, test_split):
    """Golden SNN outputs on the test split; they are checked against onnxruntime too."""
    x, y = test_split
    result = qat_model.simulate(x, engine="step")
    if os.environ.get("SNNCC_UPDATE_GOLDEN"):
        np.savez_compressed(GOLDEN, predictions=result.predictions, logits=result.logits_int)
    golden = np.load(GOLDEN)
    assert np.array_equal(result.predictions, golden["predictions"])
    assert np.array_equal(result.logits_int, golden["logits"])
    assert np.mean(result.predictions == y) >= 0.95
    ref = qat_model.reference(x)
    assert all(np.array_equal(result.counts[k], ref[k]) for k in result.counts)


@pytest.mark.parametrize("name", ["digits_vit_qcdq.onnx", "digits_vit_po2_qcdq.onnx"])
def test_integer_reference_agrees_with_onnxruntime(name, test_split):
    model = snncc.compile(EXAMPLE / name, T=7)
    agreement = compare_onnx(model, EXAMPLE / name, test_split[0])
    assert agreement.code_agreement >= 0.999
    assert agreement.decision_agreement >= 0.999
    # every difference is explained: its quantizer input sits on a rounding boundary (the
    # fixed-point residual sums, float32 in onnxruntime), or an earlier layer differs
    assert agreement.unexplained == 0
    roots = [layer for layer in agreement.layers if layer.at_boundary]
    differing = [layer for layer in agreement.layers if layer.differing]
    assert roots[:1] == differing[:1]  # the first layer to differ has a boundary case
    assert all(layer.nearest <= BOUNDARY for layer in roots)


def test_a_planted_difference_is_unexplained(test_split):
    """The explanation is not vacuous: codes that differ because a threshold was changed
    are neither on a boundary nor downstream."""
    path = EXAMPLE / "digits_vit_qcdq.onnx"
    model = snncc.compile(path, T=7)
    target = model.graph.ops(o.Neuron)[0]
    op = target.op
    model.graph.replace_op(target.name, o.Neuron(op.sign, op.thresholds + 3 * np.abs(
        op.thresholds[..., :1]) + 1, op.levels, op.scale, op.t_fire))
    agreement = compare_onnx(model, path, test_split[0][:40])
    (first,) = [la for la in agreement.layers if la.neuron == target.name]
    assert first.differing > 0 and first.unexplained == first.differing - first.at_boundary
    assert first.unexplained > 0 and first.downstream == 0


def test_boundary_distance_in_steps():
    v = np.array([0.25, 0.5, 1.0, 1.2])
    assert np.allclose(boundary_distance(v, np.array(0.5), True), [0.0, 0.5, 0.5, 0.1])
    assert np.allclose(boundary_distance(v, np.array(0.5), False), [0.5, 0.0, 0.0, 0.4])


def compile_with_rounding(path, rounding: Rounding):
    """The pipeline with every quantizer's rounding overridden (to show ties matter)."""
    g = import_onnx(path)
    for n in g.ops(o.QuantAct):
        q = n.op
        g.replace_op(n.name, o.QuantAct(q.scale, q.zero_point, q.lo, q.hi, rounding))
    graph, _ = run_pipeline(g, default_pipeline(Options(T=7)))
    return snncc.CompiledModel(graph)


def test_power_of_two_scales_make_ties_common_and_they_round_to_even(test_split):
    path = EXAMPLE / "digits_vit_po2_qcdq.onnx"
    x = test_split[0]
    even = snncc.compile(path, T=7)
    up = compile_with_rounding(path, Rounding.HALF_UP)
    ort_outputs = run_onnx(path, x, [n.name for n in even.graph.ops(o.Neuron)])
    ref_even, ref_up = even.reference(x), up.reference(x)
    ties = total = 0
    for n, value in zip(even.graph.ops(o.Neuron), ort_outputs[1:], strict=True):
        onnx_codes = np.rint(value / n.op.scale)
        assert np.array_equal(ref_even[n.name], onnx_codes), n.name  # ties included
        ties += int(np.sum(ref_up[n.name] != ref_even[n.name]))
        total += onnx_codes.size
    assert ties > 0.0005 * total  # exact ties are not rare with power-of-two scales
    onnx_pred = ort_outputs[0].argmax(axis=1)
    assert np.array_equal(even.simulate(x).predictions, onnx_pred)
    assert not np.array_equal(up.simulate(x).predictions, onnx_pred)


def test_calibrated_float_twin_is_within_two_points(qat_model, test_split):
    x, y = test_split
    calibrated = snncc.compile(EXAMPLE / "digits_vit_float.onnx", T=7,
                               calibrate=np.load(EXAMPLE / "digits_calib.npz")["x"])
    acc_calibrated = np.mean(calibrated.simulate(x).predictions == y)
    acc_qat = np.mean(qat_model.simulate(x).predictions == y)
    assert acc_calibrated >= acc_qat - 0.02


def test_calibrated_float_twin_compares_with_its_source(test_split):
    """The README's demo model, calibrated, against the float ONNX it came from (its
    activations quantized by the calibrated quantizers): every differing code explained,
    the first layer's all at a rounding boundary, every decision the same."""
    path = EXAMPLE / "digits_vit_float.onnx"
    calibrated = snncc.compile(path, T=7, calibrate=np.load(EXAMPLE / "digits_calib.npz")["x"])
    a = compare_onnx(calibrated, path, test_split[0])
    assert [layer.name for layer in a.layers] == [n.name for n in calibrated.graph.ops(o.Neuron)]
    assert a.unexplained == 0
    assert a.layers[0].differing == a.layers[0].at_boundary
    assert (a.decisions, a.differing_decisions) == (360, 0)


def test_simulate_compare_onnx_explains_the_differences(tmp_path, test_split):
    """`simulate --compare-onnx` prints, per layer, how many differing codes sit on a
    rounding boundary, how many follow from an earlier difference, and how many neither."""
    path = EXAMPLE / "digits_vit_qcdq.onnx"
    x = test_split[0]
    np.save(tmp_path / "x.npy", x)
    # F = 23, the default before issue 15 (2^-12 of a step): some codes then differ (at the
    # default F the split has none)
    model = snncc.compile(path, T=7, frac_bits=23)
    model.save(tmp_path / "model.snn")
    proc = subprocess.run([sys.executable, "-m", "snncc", "simulate", str(tmp_path / "model.snn"),
                           "--input", str(tmp_path / "x.npy"), "--compare-onnx", str(path)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "250"})
    assert proc.returncode == 0, proc.stderr
    a = compare_onnx(model, path, x)
    roots = sum(layer.at_boundary for layer in a.layers)
    downstream = sum(layer.downstream for layer in a.layers)
    assert roots > 0 and a.unexplained == 0
    assert (f"differences: {roots + downstream}: {roots} where onnxruntime's value sits within "
            "1/1024 of a step of a rounding boundary (fixed-point residual sums, float32 "
            f"rounding), {downstream} downstream of an earlier difference on the same sample, "
            "0 unexplained\nonnxruntime agreement: pass (every differing code explained)\n"
            ) in proc.stdout
    table = proc.stdout.split("integer reference vs onnxruntime")[1]
    rows = [[c.strip() for c in line.split("│")[2:7]] for line in table.splitlines()
            if line.startswith("│ /")]
    assert rows == [[str(v) for v in (layer.total, layer.differing, layer.at_boundary,
                                      layer.downstream, layer.unexplained)]
                    for layer in a.layers]
