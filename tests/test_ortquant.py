"""onnxruntime's static quantizer as an input: models quantized at test time with
``onnxruntime.quantization.quantize_static`` and held to onnxruntime, code by code.

QDQ (QuantizeLinear/DequantizeLinear around every op) is read exactly at -T equal to the
activation levels (255 for 8 bits); QOperator and dynamic quantization are refused with the
rewrite that fixes them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)

import snncc
from conftest import assert_exact
from snncc.compare import compare_onnx, run_onnx
from snncc.errors import SnnccError

ROOT = Path(__file__).resolve().parent.parent
VIT = ROOT / "examples" / "digits_vit"


class Reader(CalibrationDataReader):
    def __init__(self, name: str, x: np.ndarray, batch: int = 8):
        self.feeds = iter([{name: x[i:i + batch]} for i in range(0, len(x), batch)])

    def get_next(self):
        return next(self.feeds, None)


def float_model(act: str = "Relu") -> onnx.ModelProto:
    """x[1,8,8] -> conv+BN -> act -> maxpool -> conv -> act -> tokens [16, 6] -> linear+BN
    (between Transposes) -> residual add -> act -> mean over tokens -> Gemm."""
    rng = np.random.default_rng(0)
    inits, nodes = [], []

    def c(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value, np.float32), name))
        return name

    def n(op, ins, out, **attrs):
        nodes.append(helper.make_node(op, ins, [out], name=f"/{out}/{op}", **attrs))
        return out

    def activation(x, out):
        if act == "Clip":
            return n("Clip", [x, c(f"{out}_lo", 0.0), c(f"{out}_hi", 6.0)], out)
        return n("Relu", [x], out)

    def bn(x, ch, out):
        p = [rng.uniform(.5, 1.5, ch), rng.normal(0, .2, ch), rng.normal(0, .2, ch),
             rng.uniform(.5, 1.5, ch)]
        return n("BatchNormalization", [x] + [c(f"{out}_{k}", v) for k, v in enumerate(p)], out)

    h = n("Conv", ["x", c("w1", rng.normal(0, .5, (4, 1, 3, 3)))], "conv1", pads=[1] * 4)
    h = activation(bn(h, 4, "bn1"), "act1")
    h = n("MaxPool", [h], "pool1", kernel_shape=[2, 2], strides=[2, 2])
    h = n("Conv", [h, c("w2", rng.normal(0, .3, (6, 4, 3, 3))), c("b2", rng.normal(0, .1, 6))],
          "conv2", pads=[1] * 4)
    h = n("Reshape", [h, numpy_helper_const(inits, "shape", [0, 6, 16])], "tokens_t")
    tokens = n("Transpose", [h], "tokens", perm=[0, 2, 1])
    z = activation(tokens, "act2")
    z = n("MatMul", [z, c("w3", rng.normal(0, .4, (6, 6)))], "fc")
    z = n("Transpose", [bn(n("Transpose", [z], "fc_t", perm=[0, 2, 1]), 6, "bn3")], "fc_bn",
          perm=[0, 2, 1])
    stream = n("Add", [tokens, z], "residual")
    pooled = n("ReduceMean", [activation(stream, "act3")], "pooled", axes=[1], keepdims=0)
    n("Gemm", [pooled, c("w4", rng.normal(0, .4, (10, 6))), c("b4", rng.normal(0, .1, 10))],
      "logits", transB=1)
    graph = helper.make_graph(
        nodes, "float_net", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                           ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def numpy_helper_const(inits: list, name: str, value: list[int]) -> str:
    inits.append(numpy_helper.from_array(np.asarray(value, np.int64), name))
    return name


def images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (n, 1, 8, 8)).astype(np.float32)


def quantized(tmp_path: Path, name: str = "q.onnx", act: str = "Relu", **options) -> Path:
    src, out = tmp_path / "float.onnx", tmp_path / name
    onnx.save(float_model(act), src)
    quantize_static(src, out, Reader("x", images(32)), **options)
    return out


def assert_agrees(path: Path, x: np.ndarray, T: int = 255) -> snncc.CompiledModel:
    model = snncc.compile(path, T=T)
    agreement = compare_onnx(model, path, x)
    assert agreement.unexplained == 0
    assert agreement.code_agreement >= 0.999
    assert agreement.decision_agreement >= 0.99
    return model


@pytest.mark.parametrize("activation_type", [QuantType.QUInt8, QuantType.QInt8])
@pytest.mark.parametrize("per_channel", [False, True])
def test_qdq_is_exact_at_the_activation_levels(tmp_path, activation_type, per_channel):
    path = quantized(tmp_path, quant_format=QuantFormat.QDQ, activation_type=activation_type,
                     weight_type=QuantType.QInt8, per_channel=per_channel)
    model = assert_agrees(path, images(100, seed=1))
    assert_exact(model, images(3, seed=2))  # both engines: spike counts = the codes


@pytest.mark.parametrize("act", ["Relu", "Clip"])
def test_qdq_with_activations_kept_or_fused(tmp_path, act):
    for keep in (False, True):
        path = quantized(tmp_path, f"q{keep}.onnx", act, quant_format=QuantFormat.QDQ,
                         extra_options={"QDQKeepRemovableActivations": keep})
        assert_agrees(path, images(60, seed=3))


def test_more_levels_than_t_names_the_cause_and_both_fixes(tmp_path):
    path = quantized(tmp_path, quant_format=QuantFormat.QDQ)
    with pytest.raises(SnnccError, match=r"8-bit activations: 255 levels > T = 7\. Fix: use "
                                         r"--calibrate DATA \(requantizes to T levels\) or "
                                         r"-T 255"):
        snncc.compile(path, T=7)


def test_calibrate_requantizes_to_a_smaller_t(tmp_path):
    path = quantized(tmp_path, quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8)
    model = snncc.compile(path, T=15, calibrate=images(64, seed=4))
    assert model.graph.meta["calibration"]["quantizers"] > 0
    x = images(100, seed=5)
    agree = model.simulate(x).logits.argmax(1) == run_onnx(path, x, [])[0].argmax(1)
    assert agree.mean() >= 0.8


def test_qoperator_and_dynamic_quantization_are_refused_with_the_fix(tmp_path):
    path = quantized(tmp_path, quant_format=QuantFormat.QOperator)
    with pytest.raises(SnnccError) as e:
        snncc.compile(path, T=255)
    text = str(e.value)
    for op in ("QLinearConv", "QLinearMatMul", "QLinearAdd"):
        assert f"({op}): {op} is onnxruntime's QOperator format" in text
    assert "Fix: quantize with quantize_static(..., quant_format=QuantFormat.QDQ)" in text
    dynamic = tmp_path / "dyn.onnx"
    quantize_dynamic(tmp_path / "float.onnx", dynamic)
    with pytest.raises(SnnccError, match=r"is dynamic quantization: the activation's scale is "
                                         r"computed from each input at run time"):
        snncc.compile(dynamic, T=255)


def test_the_bundled_vit_quantized_by_onnxruntime(tmp_path):
    """examples/digits_vit's float model through quantize_static over a few of its images."""
    calib = np.load(VIT / "digits_calib.npz")["x"]
    path = tmp_path / "vit_qdq.onnx"
    quantize_static(VIT / "digits_vit_float.onnx", path, Reader("input", calib[:32]),
                    quant_format=QuantFormat.QDQ, per_channel=True)
    test = np.load(VIT / "digits_test.npz")
    assert_agrees(path, test["x"][:100])
