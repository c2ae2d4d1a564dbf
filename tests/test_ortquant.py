"""onnxruntime's static quantizer as an input: models quantized at test time with
``onnxruntime.quantization.quantize_static`` and held to onnxruntime, code by code.

QDQ (QuantizeLinear/DequantizeLinear around every op) is read exactly at -T equal to the
activation levels (255 for 8 bits); so are the QOperator kernels (QLinearConv,
QLinearMatMul, QLinearAdd, QLinearGlobalAveragePool, QGemm), read as what they compute and
held to onnxruntime's integer kernels. Dynamic quantization is refused with the fix.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import onnx
import onnx.parser
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
from snncc.errors import SnnccError
from snncc.metrics.compare import compare_onnx, run_onnx

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


@pytest.mark.parametrize("quant_format", [QuantFormat.QDQ, QuantFormat.QOperator])
def test_calibrate_requantizes_to_a_smaller_t(tmp_path, quant_format):
    path = (quantized(tmp_path, quant_format=quant_format, activation_type=QuantType.QInt8)
            if quant_format == QuantFormat.QDQ
            else qoperator_net(tmp_path, activation_type=QuantType.QInt8))
    model = snncc.compile(path, T=15, calibrate=images(64, seed=4))
    assert model.graph.meta["calibration"]["quantizers"] > 0
    x = images(100, seed=5)
    agree = model.simulate(x).logits.argmax(1) == run_onnx(path, x, [])[0].argmax(1)
    assert agree.mean() >= 0.8
    # held to the source with the build's quantizers put in and the removed ones taken out
    kinds = {site["kind"] for site in model.graph.meta["calibration"]["sites"]}
    assert {"drop", "requantize"} <= kinds
    agreement = compare_onnx(model, path, x)
    assert agreement.unexplained == 0 and agreement.code_agreement >= 0.999


QOPERATOR_NET = """<ir_version: 8, opset_import: ["" : 17]>
g (float[N, 1, 8, 8] x) => (float[N, 10] y) {
    c1 = Conv <pads: ints = [1, 1, 1, 1]> (x, w1, b1)
    r1 = Relu(c1)
    p1 = MaxPool <kernel_shape: ints = [2, 2], strides: ints = [2, 2]> (r1)
    c2 = Conv <pads: ints = [1, 1, 1, 1]> (p1, w2, b2)
    r2 = Relu(c2)
    pooled = GlobalAveragePool(r2)
    f = Flatten(pooled)
    t0 = Reshape(r2, shape)
    tokens = Transpose <perm: ints = [0, 2, 1]> (t0)
    z1 = MatMul(tokens, w3)
    z2 = MatMul(tokens, w5)
    z = Add(z1, z2)
    rz = Relu(z)
    m = ReduceMean <axes: ints = [1], keepdims: int = 0> (rz)
    y1 = Gemm <transB: int = 1> (m, w4, b4)
    y2 = Gemm <transB: int = 1> (f, w6, b6)
    y = Add(y1, y2)
}"""


def qoperator_net(tmp_path: Path, **options) -> Path:
    """Conv, max-pool, global average pool, two MatMul branches added, two Gemm heads
    added: every QOperator kernel, and no ReLU whose input has other users."""
    model = onnx.parser.parse_model(QOPERATOR_NET)
    rng = np.random.default_rng(0)
    shapes = dict(w1=(4, 1, 3, 3), b1=(4,), w2=(6, 4, 3, 3), b2=(6,), w3=(6, 6), w5=(6, 6),
                  w4=(10, 6), b4=(10,), w6=(10, 6), b6=(10,))
    model.graph.initializer.extend(
        numpy_helper.from_array(rng.normal(0, .4, s).astype(np.float32), k)
        for k, s in shapes.items())
    model.graph.initializer.append(numpy_helper.from_array(np.array([0, 6, 16]), "shape"))
    src, out = tmp_path / "float2.onnx", tmp_path / "qop.onnx"
    onnx.save(model, src)
    quantize_static(src, out, Reader("x", images(32)), quant_format=QuantFormat.QOperator,
                    **options)
    return out


@pytest.mark.parametrize("activation_type", [QuantType.QUInt8, QuantType.QInt8])
@pytest.mark.parametrize("per_channel", [False, True])
def test_qoperator_kernels_are_exact(tmp_path, activation_type, per_channel):
    path = qoperator_net(tmp_path, activation_type=activation_type, per_channel=per_channel)
    kernels = {n.op_type for n in onnx.load(path).graph.node}
    assert {"QLinearConv", "QLinearMatMul", "QLinearAdd", "QLinearGlobalAveragePool",
            "QGemm"} <= kernels
    model = assert_agrees(path, images(100, seed=6))
    assert_exact(model, images(3, seed=7))


def test_qoperator_relu_removed_by_onnxruntime_is_named(tmp_path):
    """onnxruntime's QOperator quantizer drops a ReLU after a quantized op and gives its
    users the op's codes: here the tokens, which also feed the residual add, are signed."""
    path = quantized(tmp_path, quant_format=QuantFormat.QOperator)
    with pytest.raises(SnnccError, match=r"signed or zero-point quantizer .* where spikes are "
                                         r"needed\. Fix: onnxruntime's QOperator quantizer "
                                         r"removes a ReLU"):
        snncc.compile(path, T=255)


def test_dynamic_quantization_is_refused_with_the_fix(tmp_path):
    src, dynamic = tmp_path / "float.onnx", tmp_path / "dyn.onnx"
    onnx.save(float_model(), src)
    quantize_dynamic(src, dynamic)
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
    # at T = 7 from the calibration data: held to the source with the build's quantizers
    # (one requantizer, attention's, lands on its input's grid and becomes no neuron)
    model = snncc.compile(path, T=7, calibrate=calib)
    agreement = compare_onnx(model, path, test["x"][:100])
    assert agreement.unexplained == 0 and agreement.code_agreement >= 0.999


SIGNED_NET = """<ir_version: 8, opset_import: ["" : 17]>
g (float[N, 4] x) => (float[N, 3] y)
<float s_in = {0.00390625}, uint8 zero = {0}, float s1 = {0.11}, int8 z8 = {0},
 int8 lo8 = {-7}, int8 hi8 = {7}, float s2 = {0.13}, uint8 lo = {0}, uint8 hi = {7},
 uint8 z3 = {3}, float s3 = {0.09}> {
    x8 = QuantizeLinear(x, s_in, zero)
    xq = DequantizeLinear(x8, s_in, zero)
    h = MatMul(xq, w1)
    h8 = QuantizeLinear(h, s1, z8)
    hc = Clip(h8, lo8, hi8)
    signed = DequantizeLinear(hc, s1, z8)
    g1 = MatMul(xq, w2)
    g8 = QuantizeLinear(g1, s3, z3)
    gc = Clip(g8, lo, hi)
    zero_point_3 = DequantizeLinear(gc, s3, z3)
    r = Add(signed, zero_point_3)
    rr = Relu(r)
    a8 = QuantizeLinear(rr, s2, zero)
    ac = Clip(a8, lo, hi)
    a = DequantizeLinear(ac, s2, zero)
    y = MatMul(a, w3)
}"""


@pytest.mark.simulator
def test_signed_quantizers_through_the_hardware_ladder(tmp_path):
    """A signed quantizer and one with its zero point inside the range, added in the
    stream: two neurons each (levels above and below the zero point). HLS C simulation
    and RTL simulation equal the interpreter; the codes equal onnxruntime's. (The file is
    named after a C++ keyword, which the HLS top function must not be.)"""
    from rich.console import Console
    from typer.testing import CliRunner

    from conftest import require_tool
    from snncc.app.cli import app
    from snncc.verify.ladder import run_ladder

    for tool in ("g++", "iverilog"):
        require_tool(tool)
    model = onnx.parser.parse_model(SIGNED_NET)
    rng = np.random.default_rng(0)
    model.graph.initializer.extend(
        numpy_helper.from_array(rng.normal(0, .6, s).astype(np.float32), k)
        for k, s in dict(w1=(4, 5), w2=(4, 5), w3=(5, 3)).items())
    path = tmp_path / "signed.onnx"
    onnx.save(model, path)
    compiled = snncc.compile(path, T=7)
    names = {n.name for n in compiled.graph.ops(snncc.ops.Neuron)}
    assert {"signed/pos", "signed/neg", "zero_point_3/pos", "zero_point_3/neg"} <= names
    x = rng.uniform(0, 1, (40, 4))
    agreement = compare_onnx(compiled, path, x)
    assert agreement.code_agreement == 1.0 and agreement.decision_agreement == 1.0
    build = tmp_path / "build"
    result = CliRunner().invoke(app, ["compile", str(path), "-T", "7", "--target", "all",
                                      "-o", str(build)])
    assert result.exit_code == 0, result.output
    console = Console(record=True, width=120, file=io.StringIO())
    assert run_ladder(build, x[:3], console, path, "icarus"), console.export_text()


def test_simulate_compare_onnx_names_signed_and_qoperator_layers(tmp_path):
    """The CLI's agreement table and report on both formats (signed quantizers are two
    neurons, QOperator outputs integer tensors of the source model)."""
    from typer.testing import CliRunner

    from snncc.app.cli import app

    np.save(tmp_path / "x.npy", images(20, seed=8))
    for path in (quantized(tmp_path, quant_format=QuantFormat.QDQ), qoperator_net(tmp_path)):
        build = tmp_path / f"build_{path.stem}"
        runner = CliRunner()
        result = runner.invoke(app, ["compile", str(path), "-T", "255", "-o", str(build)])
        assert result.exit_code == 0, result.output
        result = runner.invoke(app, ["simulate", str(build / "model.snn"), "--input",
                                     str(tmp_path / "x.npy"), "--compare-onnx", str(path)],
                               env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        assert "argmax identical: 100.0000% (20/20)" in result.output
