"""Bad input: one tiny bad model, file or flag per diagnostic, run through the real CLI.

Every case asserts the exact message, exit code 1 and no traceback. The catalogue is also
the table in docs/errors.md (``python tests/test_bad_input.py`` prints it; a test keeps the
two in sync). The models are written in ONNX's textual syntax: the good one is ``MLP``, and
each bad one names the lines it changes.
"""

from __future__ import annotations

import errno
import io
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnx.parser
import pytest
from onnx import numpy_helper

import snncc
import snncc.app.cli

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "errors.md"

# x -> input quantizer (8 bit, analog) -> fc1 -> ReLU -> act1 (3 bit) -> fc2 -> y
MLP = """<ir_version: 8, opset_import: ["" : 17]>
mlp (float[N, 4] x) => (float[N, 3] y)
<float s_in = {0.00390625}, uint8 zero = {0}, float s1 = {0.125}, uint8 lo = {0},
 uint8 hi = {7}> {
    [input_quant] x8 = QuantizeLinear(x, s_in, zero)
    [input_dequant] xq = DequantizeLinear(x8, s_in, zero)
    [fc1] h = MatMul(xq, fc1_weight)
    [relu] r = Relu(h)
    [act1_quant] q = QuantizeLinear(r, s1, zero)
    [act1_clip] c = Clip(q, lo, hi)
    [act1] a = DequantizeLinear(c, s1, zero)
    [fc2] y = MatMul(a, fc2_weight)
}"""


def weights(**changed: np.ndarray) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    w = {"fc1_weight": rng.normal(0, 0.5, (4, 8)).astype(np.float32),
         "fc2_weight": rng.normal(0, 0.5, (8, 3)).astype(np.float32)}
    return {**w, **changed}


def mlp(edits: dict[str, str] | None = None, **inits: np.ndarray) -> onnx.ModelProto:
    """MLP with whole lines replaced (`edits`: old text -> new text) and initializers
    added or changed."""
    text = MLP
    for old, new in (edits or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    model = onnx.parser.parse_model(text)
    model.graph.initializer.extend(numpy_helper.from_array(v, k)
                                   for k, v in weights(**inits).items())
    return model


def shapeless(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with its input's shape removed (rank unknown)."""
    model.graph.input[0].type.tensor_type.ClearField("shape")
    return model


def writes(name: str, model: Callable[[], onnx.ModelProto]) -> Callable[[Path], None]:
    return lambda d: onnx.save(model(), d / name)


def write_bytes(name: str, data: Callable[[], bytes]) -> Callable[[Path], None]:
    return lambda d: (d / name).write_bytes(data())


def good_bytes() -> bytes:
    return mlp().SerializeToString()


def external_data_missing(d: Path) -> None:
    onnx.save(mlp(), d / "big.onnx", save_as_external_data=True, location="big.onnx.data",
              size_threshold=0)
    (d / "big.onnx.data").unlink()


def built(d: Path) -> None:
    """build/model.snn compiled from MLP (in process: fast)."""
    onnx.save(mlp(), d / "mlp.onnx")
    (d / "build").mkdir()
    snncc.compile(d / "mlp.onnx").save(d / "build" / "model.snn")


def with_array(name: str, array: np.ndarray) -> Callable[[Path], None]:
    def make(d: Path) -> None:
        built(d)
        np.save(d / name, array)
    return make


def other_version(d: Path) -> None:
    """A model.snn whose manifest says it is format v99, written by snncc 9.9.9."""
    built(d)
    with np.load(d / "build" / "model.snn") as z:
        arrays = {k: z[k] for k in z.files}
    manifest = json.loads(bytes(arrays["__manifest__"]).decode())
    manifest.update(format_version=99, snncc_version="9.9.9")
    arrays["__manifest__"] = np.frombuffer(json.dumps(manifest).encode(), np.uint8)
    with open(d / "old.snn", "wb") as f:
        np.savez_compressed(f, **arrays)
    np.save(d / "x.npy", np.zeros((2, 4), np.float32))


def damaged_manifest(d: Path) -> None:
    """A readable zip whose manifest names an op this snncc does not know."""
    other_version(d)
    with np.load(d / "build" / "model.snn") as z:
        arrays = {k: z[k] for k in z.files}
    manifest = json.loads(bytes(arrays["__manifest__"]).decode())
    manifest["nodes"][1]["op"] = "Bogus"
    arrays["__manifest__"] = np.frombuffer(json.dumps(manifest).encode(), np.uint8)
    with open(d / "damaged.snn", "wb") as f:
        np.savez_compressed(f, **arrays)


def truncated_snn(d: Path) -> None:
    built(d)
    data = (d / "build" / "model.snn").read_bytes()
    (d / "cut.snn").write_bytes(data[: len(data) // 2])
    np.save(d / "x.npy", np.zeros((2, 4), np.float32))


def a_file(name: str) -> Callable[[Path], None]:
    def make(d: Path) -> None:
        onnx.save(mlp(), d / "mlp.onnx")
        (d / name).write_text("notes\n")
    return make


def steps(*makers: Callable[[Path], None]) -> Callable[[Path], None]:
    """One setup made of several, in order."""
    return lambda d: [make(d) for make in makers] and None


def x_npy(d: Path) -> None:
    np.save(d / "x.npy", np.zeros((2, 4), np.float32))


def array(name: str, value: object) -> Callable[[Path], None]:
    return lambda d: np.save(d / name, np.asarray(value))


def text(name: str) -> Callable[[Path], None]:
    return lambda d: (d / name).write_text("notes\n")


def folder(name: str, *files: str) -> Callable[[Path], None]:
    """A folder holding `files` (.onnx: the MLP; others: zeros shaped like an input)."""
    def make(d: Path) -> None:
        (d / name).mkdir()
        for f in files:
            if f.endswith(".onnx"):
                onnx.save(mlp(), d / name / f)
            else:
                np.save(d / name / f, np.zeros((2, 4), np.float32))
    return make


def unreadable(name: str) -> Callable[[Path], None]:
    """`name` made unreadable (the run drops root's power to read it anyway)."""
    return lambda d: (d / name).chmod(0)


def npz(name: str, **arrays: np.ndarray) -> Callable[[Path], None]:
    return lambda d: np.savez(d / name, **arrays)


BUILT = steps(built, x_npy)
NAN_WEIGHT = weights()["fc2_weight"].copy()
NAN_WEIGHT[2, 1] = np.nan


@dataclass(frozen=True)
class Case:
    id: str
    input: str  # what the user gave, in words
    argv: tuple[str, ...]
    message: str  # stderr without "error: "; "{version}" is snncc's version
    make: Callable[[Path], None] = field(default=lambda d: None, repr=False)
    in_process: bool = False  # a fault that only a test can cause (see its own test)

    def expected(self, version: str = snncc.__version__) -> str:
        return self.message.replace("{version}", version)


CATALOGUE = [
    # ------------------------------------------------------------ unreadable files
    Case("missing-file", "a model path that does not exist", ("compile", "nowhere.onnx"),
         "nowhere.onnx: file not found. Fix: check the path to the .onnx file"),
    Case("unreadable-onnx", "a model file one may not read", ("compile", "mlp.onnx"),
         "mlp.onnx: cannot read the file (Permission denied). Fix: check the file's "
         "permissions", steps(writes("mlp.onnx", mlp), unreadable("mlp.onnx"))),
    Case("truncated-onnx", "a truncated ONNX file", ("compile", "cut.onnx"),
         "cut.onnx: not a readable ONNX model (its protobuf data is damaged); the file may be "
         "truncated or not ONNX at all. Fix: re-export the model",
         write_bytes("cut.onnx", lambda: good_bytes()[: len(good_bytes()) * 6 // 10])),
    Case("not-onnx", "a file that is not ONNX (text)", ("compile", "notes.onnx"),
         "notes.onnx: not a readable ONNX model (its protobuf data is damaged); the file may "
         "be truncated or not ONNX at all. Fix: re-export the model",
         write_bytes("notes.onnx", lambda: b"hello, this is not a model\n")),
    Case("npy-as-onnx", "a numpy array passed as the model", ("compile", "weights.npy"),
         "weights.npy: not a readable ONNX model (its protobuf data is damaged); the file may "
         "be truncated or not ONNX at all. Fix: re-export the model",
         lambda d: np.save(d / "weights.npy", np.arange(12.0))),
    Case("external-data-missing", "an ONNX file whose external weight file is missing",
         ("compile", "big.onnx"),
         "big.onnx: external data 'big.onnx.data' (tensors 'fc1_weight', 'fc2_weight') not "
         "found next to the model. Fix: copy the weight file(s) into the model's folder",
         external_data_missing),
    # ------------------------------------------------------------ malformed graphs
    Case("empty-graph", "a graph with no nodes", ("compile", "empty.onnx"),
         "empty.onnx: the model's graph is empty (it has no nodes). Fix: re-export the model "
         "with its layers",
         writes("empty.onnx", lambda: onnx.parser.parse_model(
             '<ir_version: 8, opset_import: ["" : 17]> g (float[N, 4] x) => (float[N, 4] x) {}'
         ))),
    Case("cycle", "a graph with a cycle", ("compile", "cycle.onnx"),
         "cycle.onnx: node 'fc1' (Add): the graph has a cycle: fc1 -> relu -> act1_quant "
         "-> act1_clip -> act1 -> fc1. Fix: re-export the model; an ONNX graph must be acyclic",
         writes("cycle.onnx", lambda: mlp({"h = MatMul(xq, fc1_weight)": "h = Add(xq, a)"}))),
    Case("dangling-input", "a node reading a tensor nothing defines", ("compile", "dangling.onnx"),
         "dangling.onnx: node 'fc2' (MatMul): reads 'ghost', which no node, graph input or "
         "initializer defines. Fix: re-export the model (onnx.checker.check_model finds the "
         "same problem)",
         writes("dangling.onnx", lambda: mlp({"MatMul(a, fc2_weight)": "MatMul(ghost, "
                                                                       "fc2_weight)"}))),
    Case("wrong-arity", "a node with the wrong number of inputs", ("compile", "arity.onnx"),
         "arity.onnx: node 'fc1' (MatMul): has 3 input(s); MatMul takes 2. Fix: re-export the "
         "model (onnx.checker.check_model finds the same problem)",
         writes("arity.onnx", lambda: mlp({"MatMul(xq, fc1_weight)": "MatMul(xq, fc1_weight, "
                                                                     "xq)"}))),
    # ------------------------------------------------------------ ops
    Case("unknown-op", "an op snncc does not know", ("compile", "einsum.onnx"),
         "einsum.onnx: node 'fc1' (Einsum): Einsum is not an op snncc can convert. Fix: "
         "rewrite it with the supported ops (see the README's table)",
         writes("einsum.onnx", lambda: mlp({"MatMul(xq, fc1_weight)": 'Einsum <equation: '
                                            'string = "bi,io->bo"> (xq, fc1_weight)'}))),
    Case("custom-op", "an op from another domain", ("compile", "custom.onnx"),
         "custom.onnx: node 'relu' (FancyRelu): FancyRelu is not an op snncc can convert. Fix: "
         "rewrite it with the supported ops (see the README's table)",
         writes("custom.onnx", lambda: mlp(
             {"Relu(h)": "com.example.FancyRelu(h)",
              '["" : 17]': '["" : 17, "com.example" : 1]'}))),
    Case("layernorm", "LayerNorm", ("compile", "ln.onnx"),
         "ln.onnx: node 'ln' (LayerNormalization): LayerNormalization normalizes by a "
         "per-token statistic, which needs division at run time. Fix: replace LayerNorm with "
         "BatchNorm after the Linear and retrain",
         writes("ln.onnx", lambda: mlp({"[relu] r = Relu(h)": "[ln] n = LayerNormalization(h, "
                                        "ln_scale)\n    [relu] r = Relu(n)"},
                                       ln_scale=np.ones(8, np.float32)))),
    Case("gelu", "GELU", ("compile", "gelu.onnx"),
         "gelu.onnx: node 'relu' (Gelu): Gelu is a smooth non-linearity with no spike-count "
         "equivalent. Fix: replace GELU with ReLU followed by a quantizer and retrain",
         writes("gelu.onnx", lambda: mlp({"Relu(h)": "Gelu(h)", '"" : 17': '"" : 20'}))),
    Case("erf", "exact GELU (as exported with Erf)", ("compile", "erf.onnx"),
         "erf.onnx: node 'erf' (Erf): Erf is part of an exact GELU, a smooth non-linearity. "
         "Fix: replace GELU with ReLU followed by a quantizer and retrain",
         writes("erf.onnx", lambda: mlp({"[relu] r = Relu(h)": "[erf] e = Erf(h)\n"
                                         "    [relu] r = Relu(e)"}))),
    Case("exp", "Exp", ("compile", "exp.onnx"),
         "exp.onnx: node 'exp' (Exp): Exp needs exponentiation at run time. Fix: replace "
         "softmax with NReLU (ReLU(x)/N) and retrain",
         writes("exp.onnx", lambda: mlp({"[relu] r = Relu(h)": "[exp] e = Exp(h)\n"
                                         "    [relu] r = Relu(e)"}))),
    Case("softmax", "Softmax without --replace-softmax", ("compile", "softmax.onnx"),
         "softmax.onnx: node 'softmax' (Softmax): Softmax needs exponentiation and division at "
         "run time. Fix: train with NReLU (ReLU(x)/N), or pass --replace-softmax to swap it in "
         "(accuracy changes unless the model was trained with NReLU)",
         writes("softmax.onnx", lambda: mlp({"[relu] r = Relu(h)": "[softmax] r = Softmax(h)"}))),
    # ------------------------------------------------------------ quantizers and T
    Case("float-into-linear", "a linear layer reading a value that is not quantized (a "
         "mean, sum or linear layer's output with no quantized ReLU after it)",
         ("compile", "float_in.onnx"),
         "float_in.onnx: node 'fc2' (Dense): a linear layer reads an activation that is not "
         "quantized (not spikes). Fix: put a quantized ReLU (unsigned quantizer) before the "
         "layer",
         writes("float_in.onnx", lambda: mlp({"[fc2] y = MatMul(a, fc2_weight)":
                                              "[fc2] y = MatMul(h, fc2_weight)"}))),
    Case("signed-activation", "a signed activation feeding a spike-driven layer",
         ("compile", "signed.onnx"),
         "signed.onnx: node 'act1' (QuantAct): signed or zero-point quantizer (codes -7..7, "
         "zero point 0) where spikes are needed. Fix: use an unsigned quantizer with zero point "
         "0 after a ReLU",
         writes("signed.onnx", lambda: mlp({
             "[relu] r = Relu(h)": "[scale] r = Identity(h)",
             "uint8 hi = {7}>": "uint8 hi = {7}, int8 szero = {0}, int8 slo = {-7}, "
                                "int8 shi = {7}>",
             "QuantizeLinear(r, s1, zero)": "QuantizeLinear(r, s1, szero)",
             "Clip(q, lo, hi)": "Clip(q, slo, shi)",
             "DequantizeLinear(c, s1, zero)": "DequantizeLinear(c, s1, szero)"}))),
    Case("zero-point-activation", "a zero-point activation feeding a spike-driven layer",
         ("compile", "zp.onnx"),
         "zp.onnx: node 'act1' (QuantAct): signed or zero-point quantizer (codes 0..7, zero "
         "point 3) where spikes are needed. Fix: use an unsigned quantizer with zero point 0 "
         "after a ReLU",
         writes("zp.onnx", lambda: mlp({
             "[relu] r = Relu(h)": "[scale] r = Identity(h)",
             "uint8 hi = {7}>": "uint8 hi = {7}, uint8 three = {3}>",
             "QuantizeLinear(r, s1, zero)": "QuantizeLinear(r, s1, three)",
             "DequantizeLinear(c, s1, zero)": "DequantizeLinear(c, s1, three)"}))),
    Case("levels-above-T", "a quantizer with more levels than -T", ("compile", "q4.onnx"),
         "q4.onnx: node 'act1' (QuantAct): 4-bit activations: 15 levels > T = 7. Fix: use "
         "--calibrate DATA (requantizes to T levels) or -T 15",
         writes("q4.onnx", lambda: mlp({"uint8 hi = {7}": "uint8 hi = {15}"}))),
    Case("qoperator-concat", "onnxruntime's QLinearConcat (QOperator format)",
         ("compile", "qcat.onnx"),
         "qcat.onnx: node 'cat' (QLinearConcat): QLinearConcat is onnxruntime's QOperator "
         "format with a requantization per input, which snncc does not read. Fix: quantize "
         "with quantize_static(..., quant_format=QuantFormat.QDQ): the same quantization as "
         "QuantizeLinear/DequantizeLinear pairs, which snncc reads exactly",
         writes("qcat.onnx", lambda: mlp({
             '"" : 17': '"" : 17, "com.microsoft" : 1',
             "[fc2] y = MatMul(a, fc2_weight)": "[a8] q8 = QuantizeLinear(a, s1, zero)\n"
             "    [cat] c8 = com.microsoft.QLinearConcat <axis: int = 1> (s1, zero, q8, s1, "
             "zero, q8, s1, zero)\n"
             "    [cat_real] c2 = DequantizeLinear(c8, s1, zero)\n"
             "    [fc2] y = MatMul(c2, fc2_weight)"},
             fc2_weight=np.ones((16, 3), np.float32)))),
    Case("dynamic-quantization", "onnxruntime's dynamic quantization (MatMulInteger, ...)",
         ("compile", "dyn8.onnx"),
         "dyn8.onnx: node 'fc2' (MatMulInteger): MatMulInteger is dynamic quantization: the "
         "activation's scale is computed from each input at run time, and a neuron's "
         "thresholds must be fixed at compile time. Fix: quantize statically with calibration "
         "data: quantize_static(..., quant_format=QuantFormat.QDQ)",
         writes("dyn8.onnx", lambda: mlp({
             "[fc2] y = MatMul(a, fc2_weight)": "[fc2_quant] a8 = QuantizeLinear(a, s1, zero)\n"
             "    [fc2] y32 = MatMulInteger(a8, w8)\n"
             "    [out] y = Cast<to = 1>(y32)"},
             w8=np.ones((8, 3), np.uint8)))),
    Case("T-zero", "-T 0", ("compile", "mlp.onnx", "-T", "0"),
         "-T must be a positive integer, not 0. Fix: pass the spike window, e.g. -T 7",
         writes("mlp.onnx", mlp)),
    Case("frac-bits", "--frac-bits out of range", ("compile", "mlp.onnx", "--frac-bits", "200"),
         "--frac-bits must be an integer from 0 to 62, not 200. Fix: leave it out to let snncc "
         "choose", writes("mlp.onnx", mlp)),
    Case("latency-zero", "--latency 0", ("compile", "mlp.onnx", "--latency", "0"),
         "--latency must be a positive number of steps, not 0. Fix: e.g. --latency 28 (4 T "
         "at T = 7)", writes("mlp.onnx", mlp)),
    Case("parallel-zero", "--parallel 0 (the parallelism knob)",
         ("compile", "mlp.onnx", "--target", "verilog", "--parallel", "0"),
         "--parallel 0 is not a number of output lanes per cycle. Fix: use an integer of at "
         "least 1 (each layer takes its largest legal value up to it), e.g. --parallel 8",
         writes("mlp.onnx", mlp)),
    Case("hw-config-lanes", "a layer's lanes in --hw-config that the layer cannot take",
         ("compile", "mlp.onnx", "--target", "verilog", "--hw-config", "hw.json"),
         "hw.json: node 'fc1': 3 output lanes per cycle is not a legal value for this layer. "
         "Fix: use one of 1, 2, 4, 8 (divisors of its 8 outputs by a power of two)",
         steps(writes("mlp.onnx", mlp),
               lambda d: (d / "hw.json").write_text('{"layers": {"fc1": 3}}'))),
    Case("hw-config-layer", "--hw-config naming a layer the model does not have",
         ("compile", "mlp.onnx", "--target", "verilog", "--hw-config", "hw.json"),
         "hw.json: no layer with a parallelism knob is named 'fc9'. Fix: name one of the "
         "linear, conv, neuron or TD-MatMul layers (legal lanes): fc1 (1, 2, 4, 8); "
         "act1 (1, 2, 4, 8); fc2 (3)",
         steps(writes("mlp.onnx", mlp),
               lambda d: (d / "hw.json").write_text('{"layers": {"fc9": 2}}'))),
    Case("hw-config-neurons", "a neuron layer's neurons per cycle in --hw-config that it "
         "cannot take", ("compile", "mlp.onnx", "--target", "verilog", "--hw-config", "hw.json"),
         "hw.json: node 'act1': 3 neurons per cycle is not a legal value for this layer. "
         "Fix: use one of 1, 2, 4, 8 (divisors of its 8 neurons a row by a power of two)",
         steps(writes("mlp.onnx", mlp),
               lambda d: (d / "hw.json").write_text('{"layers": {"act1": 3}}'))),
    Case("pipeline-no-verilog", "--pipeline without a Verilog target",
         ("compile", "mlp.onnx", "--target", "hls", "--pipeline"),
         "--pipeline overlaps the layers of the Verilog design; --target hls has none. Fix: "
         "add --target verilog or all", writes("mlp.onnx", mlp)),
    Case("in-flight-range", "--in-flight outside its legal values",
         ("compile", "mlp.onnx", "--target", "verilog", "--pipeline", "--in-flight", "0"),
         "--in-flight 0 is not a legal number of inferences in flight. Fix: use an integer "
         "from 1 to 16 (more: a shorter initiation interval and more buffer memory), e.g. "
         "--in-flight 6", writes("mlp.onnx", mlp)),
    Case("in-flight-no-pipeline", "--in-flight without --pipeline",
         ("compile", "mlp.onnx", "--target", "verilog", "--in-flight", "6"),
         "--in-flight sizes a pipelined Verilog design; --pipeline is not given. Fix: add "
         "--pipeline (and --target verilog or all)", writes("mlp.onnx", mlp)),
    Case("hw-config-in-flight", "a config's in_flight outside its legal values",
         ("compile", "mlp.onnx", "--target", "verilog", "--pipeline", "--hw-config", "hw.json"),
         'hw.json: "in_flight" 40 is not a legal number of inferences in flight. Fix: use an '
         "integer from 1 to 16 (more: a shorter initiation interval and more buffer memory), "
         'e.g. "in_flight": 6',
         steps(writes("mlp.onnx", mlp),
               lambda d: (d / "hw.json").write_text('{"in_flight": 40}'))),
    Case("neuron-unknown", "an unknown --neuron kind", ("compile", "mlp.onnx", "--neuron", "foo"),
         "unknown neuron kind 'foo'. Fix: use one of if, signed, multi", writes("mlp.onnx", mlp)),
    Case("latency-too-small", "a --latency budget below the model's shortest run",
         ("compile", "mlp.onnx", "--latency", "3", "--calibrate", "c.npy"),
         "mlp.onnx: --latency 3 is too small for this model: with no delay at all its 1 neuron "
         "layer on the longest path and their spike windows take 7 steps end to end. Fix: pass "
         "--latency 7 or more (exact mode takes 8)",
         steps(writes("mlp.onnx", mlp),
               lambda d: np.save(d / "c.npy", np.full((4, 4), 0.5, np.float32)))),
    Case("calibration-unknown", "an unknown --calibration method",
         ("compile", "mlp.onnx", "--calibrate", "c.npy", "--calibration", "entropy"),
         "unknown calibration method 'entropy'. Fix: use one of max, percentile, mse, kl",
         steps(writes("mlp.onnx", mlp),
               lambda d: np.save(d / "c.npy", np.full((4, 4), 0.5, np.float32)))),
    Case("calibration-without-data", "--calibration without --calibrate",
         ("compile", "mlp.onnx", "--calibration", "max"),
         "--calibration max chooses how --calibrate clips activations, but no --calibrate "
         "data was given. Fix: add --calibrate DATA.npy, or leave --calibration out",
         writes("mlp.onnx", mlp)),
    Case("T-negative", "-T -3 (inspect)", ("inspect", "mlp.onnx", "-T", "-3"),
         "-T must be a positive integer, not -3. Fix: pass the spike window, e.g. -T 7",
         writes("mlp.onnx", mlp)),
    # ------------------------------------------------------------ shapes
    Case("dynamic-shape", "an input dimension left free (dim_param)", ("compile", "dyn.onnx"),
         "dyn.onnx: node 'x' (Input): input 'x' has shape ['N', 'features']: dimension(s) "
         "features are not fixed. Fix: pin them with --input-shape <features> (the shape of "
         "one sample), or export with a static example input",
         writes("dyn.onnx", lambda: mlp({"float[N, 4] x": "float[N, features] x"}))),
    Case("no-shape", "an input with no shape at all", ("compile", "noshape.onnx"),
         "noshape.onnx: node 'x' (Input): input 'x' has no shape. Fix: pin the shape of one "
         "sample with --input-shape, e.g. --input-shape 1,8,8",
         writes("noshape.onnx", lambda: shapeless(mlp()))),
    Case("pin-contradicts", "--input-shape that contradicts a fixed dimension",
         ("compile", "mlp.onnx", "--input-shape", "5"),
         "mlp.onnx: node 'x' (Input): input 'x' fixes dimension 1 to 4; --input-shape says 5. "
         "Fix: use --input-shape 4", writes("mlp.onnx", mlp)),
    Case("pin-malformed", "--input-shape that is not a shape",
         ("compile", "dyn.onnx", "--input-shape", "4,a"),
         "--input-shape '4,a' is not a list of positive integers. Fix: give the shape of one "
         "sample without the batch, e.g. --input-shape 1,8,8 or --input-shape x=1,8,8",
         writes("dyn.onnx", lambda: mlp({"float[N, 4] x": "float[N, features] x"}))),
    Case("pin-unknown-input", "--input-shape naming an input the model lacks",
         ("compile", "dyn.onnx", "--input-shape", "image=4"),
         "dyn.onnx: --input-shape names ['image'], which the model does not take as inputs "
         "(its inputs: x). Fix: use the input's name",
         writes("dyn.onnx", lambda: mlp({"float[N, 4] x": "float[N, features] x"}))),
    # ------------------------------------------------------------ values
    Case("nan-weight", "NaN in a weight", ("compile", "nan.onnx"),
         "nan.onnx: node 'fc2' (MatMul): weight 'fc2_weight' contains NaN or Inf. Fix: fix "
         "the trained weights", writes("nan.onnx", lambda: mlp(fc2_weight=NAN_WEIGHT))),
    Case("inf-bias", "Inf in a bias", ("compile", "inf.onnx"),
         "inf.onnx: node 'bias' (Add): constant 'fc1_bias' contains NaN or Inf. Fix: fix the "
         "trained weights",
         writes("inf.onnx", lambda: mlp({"[relu] r = Relu(h)": "[bias] hb = Add(h, fc1_bias)\n"
                                         "    [relu] r = Relu(hb)"},
                                        fc1_bias=np.full(8, np.inf, np.float32)))),
    Case("zero-scale", "a quantizer scale of 0", ("compile", "scale0.onnx"),
         "scale0.onnx: node 'act1_quant' (QuantizeLinear): scale 's1' is not positive and "
         "finite ([0.]). Fix: fix the quantizer's scale",
         writes("scale0.onnx", lambda: mlp({"float s1 = {0.125}": "float s1 = {0.0}"}))),
    # ------------------------------------------------------------ simulate
    Case("input-shape", "an input array of the wrong shape",
         ("simulate", "build/model.snn", "--input", "x.npy"),
         "x.npy: input has shape [2, 5]; the model takes [batch, 4]. Fix: reshape the input "
         "array", with_array("x.npy", np.zeros((2, 5), np.float32))),
    Case("input-dtype", "an input array that is not numbers",
         ("simulate", "build/model.snn", "--input", "x.npy"),
         "x.npy: input has dtype <U1, not a number type. Fix: pass a float array",
         with_array("x.npy", np.full((2, 4), "a"))),
    Case("input-nan", "NaN in the input array",
         ("simulate", "build/model.snn", "--input", "x.npy"),
         "x.npy: input contains NaN or Inf (first at index [1, 2]). Fix: clean the input",
         with_array("x.npy", np.array([[0, 0, 0, 0], [0, 0, np.nan, 0]], np.float32))),
    Case("input-empty", "an input array with no samples",
         ("simulate", "build/model.snn", "--input", "x.npy"),
         "x.npy: input has no samples (shape [0, 4]). Fix: pass at least one",
         with_array("x.npy", np.zeros((0, 4), np.float32))),
    Case("trace-folder-missing", "a --trace file in a folder that does not exist",
         ("simulate", "build/model.snn", "--input", "x.npy", "--trace", "nodir/t.npz"),
         "--trace nodir/t.npz: folder 'nodir' does not exist. Fix: choose a file in an "
         "existing folder", with_array("x.npy", np.zeros((2, 4), np.float32))),
    Case("input-missing", "an input file that does not exist",
         ("simulate", "build/model.snn", "--input", "none.npy"),
         "--input none.npy: file not found. Fix: check the path", built),
    Case("require-unknown", "a rung --require does not know",
         ("verify", "build", "--input", "x.npy", "--require", "cpu"),
         "--require cpu: unknown rung. Fix: use one of all, onnx, hls, rtl",
         with_array("x.npy", np.zeros((2, 4), np.float32))),
    Case("rtl-simulator-unknown", "an RTL simulator verify does not know",
         ("verify", "build", "--input", "x.npy", "--rtl-simulator", "modelsim"),
         "--rtl-simulator modelsim: unknown simulator. Fix: use one of auto, icarus, "
         "verilator", with_array("x.npy", np.zeros((2, 4), np.float32))),
    # ------------------------------------------------------------ path options
    Case("compare-onnx-missing", "--compare-onnx naming a file that does not exist",
         ("simulate", "build/model.snn", "--input", "x.npy", "--compare-onnx", "nothere.onnx"),
         "--compare-onnx nothere.onnx: file not found. Fix: check the path", BUILT),
    Case("compare-onnx-folder", "--compare-onnx naming a folder that holds one model",
         ("simulate", "build/model.snn", "--input", "x.npy", "--compare-onnx", "models"),
         "--compare-onnx models: is a folder, not a file. Fix: did you mean --compare-onnx "
         "models/mlp.onnx?", steps(BUILT, folder("models", "mlp.onnx"))),
    Case("compare-onnx-unreadable", "--compare-onnx naming a file one may not read",
         ("simulate", "build/model.snn", "--input", "x.npy", "--compare-onnx", "mlp.onnx"),
         "--compare-onnx mlp.onnx: cannot read the file (Permission denied). Fix: check the "
         "file's permissions", steps(BUILT, unreadable("mlp.onnx"))),
    Case("compare-onnx-not-onnx", "--compare-onnx naming a file that is not ONNX",
         ("simulate", "build/model.snn", "--input", "x.npy", "--compare-onnx", "notes.onnx"),
         "--compare-onnx notes.onnx: not a readable ONNX model (its protobuf data is damaged); "
         "the file may be truncated or not ONNX at all. Fix: re-export the model",
         steps(BUILT, text("notes.onnx"))),
    Case("onnx-missing", "verify --onnx naming a file that does not exist",
         ("verify", "build", "--input", "x.npy", "--onnx", "nothere.onnx"),
         "--onnx nothere.onnx: file not found. Fix: check the path", BUILT),
    Case("onnx-folder", "verify --onnx naming a folder of two models",
         ("verify", "build", "--input", "x.npy", "--onnx", "models"),
         "--onnx models: is a folder, not a file. Fix: pass a .onnx file",
         steps(BUILT, folder("models", "a.onnx", "b.onnx"))),
    Case("onnx-not-onnx", "verify --onnx naming a numpy file",
         ("verify", "build", "--input", "x.npy", "--onnx", "x.npy"),
         "--onnx x.npy: not a readable ONNX model (its protobuf data is damaged); the file may "
         "be truncated or not ONNX at all. Fix: re-export the model", BUILT),
    Case("input-folder", "--input naming a folder of shards with a stray file in it",
         ("simulate", "build/model.snn", "--input", "data"),
         "--input data: the folder holds 'notes.txt', which is not a .npy/.npz shard. Fix: "
         "keep only the data set's shards (.npy or .npz) in the folder",
         steps(built, folder("data", "x.npy"), text("data/notes.txt"))),
    Case("input-unreadable", "--input naming a file one may not read",
         ("simulate", "build/model.snn", "--input", "x.npy"),
         "--input x.npy: cannot read the file (Permission denied). Fix: check the file's "
         "permissions", steps(BUILT, unreadable("x.npy"))),
    Case("input-pipe", "--input naming a named pipe (reading it would wait forever)",
         ("simulate", "build/model.snn", "--input", "x.npy"),
         "--input x.npy: is not a regular file (a pipe, socket or device). Fix: pass a file",
         steps(built, lambda d: os.mkfifo(d / "x.npy"))),
    Case("input-not-array", "--input naming a text file",
         ("simulate", "build/model.snn", "--input", "notes.txt"),
         "--input notes.txt: cannot be read as an array of numbers: it is neither .npy nor "
         ".npz. Fix: save an array of numbers with numpy.save or numpy.savez",
         steps(built, text("notes.txt"))),
    Case("input-npz-no-x", "--input naming an .npz without 'x' and with several arrays",
         ("simulate", "build/model.snn", "--input", "d.npz"),
         "--input d.npz: has arrays ['a', 'b'] and no 'x'. Fix: name the array 'x'",
         steps(built, npz("d.npz", a=np.zeros((2, 4)), b=np.zeros((2, 4))))),
    Case("labels-missing", "--labels naming a file that does not exist",
         ("simulate", "build/model.snn", "--input", "x.npy", "--labels", "y.npy"),
         "--labels y.npy: file not found. Fix: check the path", BUILT),
    Case("calibrate-missing", "--calibrate naming a file that does not exist",
         ("compile", "mlp.onnx", "--calibrate", "calib.npz"),
         "--calibrate calib.npz: file not found. Fix: check the path", writes("mlp.onnx", mlp)),
    Case("calibrate-folder", "--calibrate naming an empty folder",
         ("compile", "mlp.onnx", "--calibrate", "data"),
         "--calibrate data: is a folder, not a file. Fix: pass a .npy or .npz file",
         steps(writes("mlp.onnx", mlp), folder("data"))),
    Case("calibrate-unreadable", "--calibrate naming a file one may not read",
         ("compile", "mlp.onnx", "--calibrate", "calib.npy"),
         "--calibrate calib.npy: cannot read the file (Permission denied). Fix: check the "
         "file's permissions",
         steps(writes("mlp.onnx", mlp), array("calib.npy", np.zeros((2, 4))),
               unreadable("calib.npy"))),
    Case("calibrate-not-array", "--calibrate naming the ONNX model",
         ("compile", "mlp.onnx", "--calibrate", "mlp.onnx"),
         "--calibrate mlp.onnx: cannot be read as an array of numbers: it is neither .npy nor "
         ".npz. Fix: save an array of numbers with numpy.save or numpy.savez",
         writes("mlp.onnx", mlp)),
    Case("trace-is-folder", "--trace naming a folder",
         ("simulate", "build/model.snn", "--input", "x.npy", "--trace", "out"),
         "--trace out: is a folder, not a file. Fix: name a file, e.g. --trace out/trace.npz",
         steps(BUILT, folder("out"))),
    Case("trace-suffix", "--trace naming a .npy file (the trace is an .npz archive)",
         ("simulate", "build/model.snn", "--input", "x.npy", "--trace", "t.npy"),
         "--trace t.npy: snncc writes a .npz file here, not .npy. Fix: name it t.npz", BUILT),
    Case("output-file-folder-missing", "simulate --output in a folder that does not exist",
         ("simulate", "build/model.snn", "--input", "x.npy", "--output", "nodir/o.npz"),
         "--output nodir/o.npz: folder 'nodir' does not exist. Fix: choose a file in an "
         "existing folder", BUILT),
    # ------------------------------------------------------------ labels and numbers
    Case("labels-one-hot", "one-hot labels",
         ("simulate", "build/model.snn", "--input", "x.npy", "--labels", "y.npy"),
         "--labels y.npy: labels have shape [2, 3], one row of 3 per input (one-hot?). Fix: "
         "pass one class number per input: y.argmax(axis=1)",
         steps(BUILT, array("y.npy", np.eye(3)[[0, 2]]))),
    Case("labels-float", "labels that are not whole numbers",
         ("simulate", "build/model.snn", "--input", "x.npy", "--labels", "y.npy"),
         "--labels y.npy: label 7.5 (at index 1) is not a whole number. Fix: pass class "
         "numbers 0..2", steps(BUILT, array("y.npy", [1.0, 7.5]))),
    Case("labels-out-of-range", "labels outside the model's classes",
         ("simulate", "build/model.snn", "--input", "x.npy", "--labels", "y.npy"),
         "--labels y.npy: 2 label(s) outside the model's classes 0..2 (first 3 at index 0). "
         "Fix: pass class numbers 0..2", steps(BUILT, array("y.npy", [3, -1]))),
    Case("labels-count", "more labels than inputs",
         ("simulate", "build/model.snn", "--input", "x.npy", "--labels", "y.npy"),
         "--labels y.npy: 3 labels for 2 inputs. Fix: pass one label per input",
         steps(BUILT, array("y.npy", [0, 1, 2]))),
    Case("labels-text", "labels that are text",
         ("simulate", "build/model.snn", "--input", "x.npy", "--labels", "y.npy"),
         "--labels y.npy: labels have dtype <U3, not numbers. Fix: pass class numbers 0..2",
         steps(BUILT, array("y.npy", ["cat", "dog"]))),
    Case("sweep-labels-count", "sweep --labels with more labels than inputs",
         ("sweep", "mlp.onnx", "--input", "x.npy", "--labels", "y.npy", "--budgets", "7"),
         "--labels y.npy: 3 labels for 2 inputs. Fix: pass one label per input",
         steps(BUILT, array("y.npy", [0, 1, 2]))),
    Case("labels-without-input", "report --labels without --input",
         ("report", "build", "--labels", "y.npy"),
         "--labels y.npy given without --input. Fix: pass the inputs the labels belong to "
         "with --input", steps(BUILT, array("y.npy", [0, 1]))),
    Case("report-json-foreign", "a report.json that is not what snncc writes",
         ("report", "build"),
         "build/report.json: report.json is not one this snncc writes (TypeError: 'int' "
         "object is not subscriptable). Fix: run `snncc simulate` on the build again, or pass "
         "--input", steps(built, lambda d: (d / "build" / "report.json").write_text(
             '{"simulation": 5}\n'))),
    Case("batch-size-zero", "--batch-size 0", ("simulate", "build/model.snn", "--input",
                                                "x.npy", "--batch-size", "0"),
         "--batch-size must be positive, not 0. Fix: e.g. --batch-size 256", BUILT),
    Case("pj-ac-negative", "a negative energy per accumulate",
         ("report", "build", "--pj-ac", "-1"),
         "--pj-ac must be positive, not -1.0. Fix: e.g. --pj-ac 0.9", BUILT),
    Case("pj-mac-zero", "an energy per MAC of 0", ("report", "build", "--pj-mac", "0"),
         "--pj-mac must be positive, not 0.0. Fix: e.g. --pj-mac 4.6", BUILT),
    Case("report-unknown-layer", "report --layer naming no neuron layer (checked before "
         "anything runs)", ("report", "build", "--input", "x.npy", "--layer", "/act1/relu"),
         "--layer /act1/relu: the model has no neuron layer of that name. Fix: name a neuron "
         "layer as the tables show it, e.g. act1", BUILT),
    Case("snn-other-version", "a model.snn from another snncc version",
         ("simulate", "old.snn", "--input", "x.npy"),
         "old.snn: model.snn format snncc-snn v99 (written by snncc 9.9.9) is not snncc-snn v1 "
         "(snncc {version}). Fix: recompile the model with this snncc", other_version),
    Case("snn-unreadable", "a model.snn one may not read",
         ("simulate", "build/model.snn", "--input", "x.npy"),
         "build/model.snn: not a readable model.snn (Permission denied). Fix: recompile the "
         "model with `snncc compile`", steps(BUILT, unreadable("build/model.snn"))),
    Case("snn-truncated", "a truncated model.snn", ("simulate", "cut.snn", "--input", "x.npy"),
         "cut.snn: not a readable model.snn (BadZipFile). Fix: recompile the model with "
         "`snncc compile`", truncated_snn),
    Case("snn-damaged", "a model.snn whose manifest is damaged",
         ("simulate", "damaged.snn", "--input", "x.npy"),
         "damaged.snn: model.snn is damaged (node 'xq/encode' has unknown op 'Bogus'). Fix: "
         "recompile the model",
         damaged_manifest),
    # ------------------------------------------------------------ output
    Case("output-under-file", "an output folder under a regular file",
         ("compile", "mlp.onnx", "-o", "notes.txt/build"),
         "notes.txt/build: cannot create the output folder: 'notes.txt' is a file, not a "
         "folder. Fix: choose another folder with -o", a_file("notes.txt")),
    Case("output-is-file", "an output path that is a regular file",
         ("compile", "mlp.onnx", "-o", "notes.txt"),
         "notes.txt: cannot create the output folder: 'notes.txt' is a file, not a folder. "
         "Fix: choose another folder with -o", a_file("notes.txt")),
    Case("disk-full", "a full disk while writing the output (simulated)",
         ("compile", "mlp.onnx", "-o", "build"),
         "build: cannot write the output (No space left on device); the previous output, if "
         "any, is unchanged. Fix: free space or choose another folder with -o",
         writes("mlp.onnx", mlp), in_process=True),
    Case("output-permission-denied", "an output folder that cannot be written (permission "
         "denied, simulated)", ("compile", "mlp.onnx", "-o", "build"),
         "build: cannot create the output folder (Permission denied). Fix: choose a writable "
         "folder with -o", writes("mlp.onnx", mlp), in_process=True),
    Case("output-read-only", "an output folder on a read-only file system (simulated)",
         ("compile", "mlp.onnx", "-o", "out/build"),
         "out/build: cannot create the output folder (Read-only file system). Fix: choose a "
         "writable folder with -o", writes("mlp.onnx", mlp), in_process=True),
    Case("output-not-replaceable", "a previous output folder that cannot be replaced "
         "(permission denied, simulated)", ("compile", "mlp.onnx", "-o", "build"),
         "build: cannot write the output (Permission denied); the previous output, if any, is "
         "unchanged. Fix: choose a writable folder with -o", writes("mlp.onnx", mlp),
         in_process=True),
]
BY_ID = {c.id: c for c in CATALOGUE}


def run_cli(argv: tuple[str, ...], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snncc", *argv], capture_output=True,
                          text=True, cwd=cwd, timeout=120, env={**os.environ, "COLUMNS": "200"},
                          preexec_fn=as_a_user)


def as_a_user() -> None:
    """In the child: as root, give up the power to read and search any file regardless of
    its permissions (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), so that a file with mode 000
    is unreadable as it is to everyone else."""
    if os.geteuid() != 0:
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        libc.prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP: gone after exec


def tree(folder: Path) -> dict[str, object]:
    """Every file and folder under `folder`: bytes, a symlink's target, or a file's mode and
    size if this process may not read it."""
    found: dict[str, object] = {}
    for p in sorted(folder.rglob("*")):
        key = str(p.relative_to(folder))
        if p.is_symlink():
            found[key] = ("->", os.readlink(p))
        elif p.is_dir():
            found[key] = "folder"
        elif not p.is_file():
            found[key] = "pipe, socket or device"
        else:
            try:
                found[key] = p.read_bytes()
            except PermissionError:
                found[key] = ("unreadable", p.stat().st_mode, p.stat().st_size)
    return found


@pytest.mark.parametrize("case", [c for c in CATALOGUE if not c.in_process], ids=lambda c: c.id)
def test_bad_input_gets_one_clear_message(case, tmp_path):
    case.make(tmp_path)
    before = tree(tmp_path)
    proc = run_cli(case.argv, tmp_path)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr == f"error: {case.expected()}\n"
    assert proc.returncode == 1
    assert tree(tmp_path) == before  # nothing written, nothing half-written


def test_the_good_model_compiles_and_simulates(tmp_path):
    """The control: MLP itself is fine, so each case above fails for its one change."""
    onnx.checker.check_model(mlp())
    built(tmp_path)
    np.save(tmp_path / "x.npy", np.random.default_rng(0).uniform(0, 1, (3, 4)))
    proc = run_cli(("simulate", "build/model.snn", "--input", "x.npy"), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "predictions:" in proc.stdout


def test_debug_shows_the_traceback(tmp_path):
    onnx.save(mlp(fc2_weight=NAN_WEIGHT), tmp_path / "nan.onnx")
    proc = run_cli(("--debug", "compile", "nan.onnx"), tmp_path)
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "SnnccError" in proc.stderr


# ---------------------------------------------------------------- values that saturate


def test_inputs_beyond_the_input_quantizer_are_reported(tmp_path):
    """Images scaled 0..255 where the model's input quantizer stops at 0.996: the run
    goes on (exit 0) with one warning saying how many values saturate."""
    built(tmp_path)
    x = np.array([[0.5, 0.25, 200.0, 255.0], [0.1, -3.0, 0.2, 0.3]], np.float32)
    np.save(tmp_path / "x.npy", x)
    proc = run_cli(("simulate", "build/model.snn", "--input", "x.npy"), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == (
        "warning: x.npy: 3 of 8 input values (37.50%) lie outside the range 0..0.9961 of "
        "the input quantizer (node 'xq/encode') and saturate (2 above, 1 below); scale the "
        "inputs as the model was trained\n")
    # the control: values in range, or only just above it (a quantizer that clips the top
    # of the data by design), give no warning
    np.save(tmp_path / "x.npy", np.clip(x, 0, 1.05))
    proc = run_cli(("simulate", "build/model.snn", "--input", "x.npy"), tmp_path)
    assert proc.returncode == 0 and proc.stderr == ""


def test_a_streamed_data_set_is_checked_for_saturation_a_part_at_a_time(tmp_path, monkeypatch,
                                                                        capsys):
    """A folder of shards: its first inputs are read a part at a time (here an input a
    part) for the saturation warning, which counts every saturated value of them as the
    whole array's would, even when the far-out value that calls for it comes last."""
    from snncc.runtime import datasets, inputs

    built(tmp_path)
    first = np.array([[0.5, 0.25, 1.02, 0.3], [0.1, -0.01, 0.2, 0.3]], np.float32)
    second = np.array([[0.5, 0.25, 0.2, 255.0]], np.float32)  # the far-out value, last
    (tmp_path / "shards").mkdir()
    np.save(tmp_path / "shards" / "a.npy", first)
    np.save(tmp_path / "shards" / "b.npy", second)
    monkeypatch.setattr(datasets, "SATURATION_CHUNK", 8 * 4)  # an input (4 float64) a part
    read = []
    monkeypatch.setattr(inputs, "_float64", lambda x: read.append(len(x)) or np.asarray(x))
    model = snncc.load(tmp_path / "build" / "model.snn")
    x = snncc.app.cli._simulate_input(model, tmp_path / "shards")
    parts = list(read)  # both passes (far out anywhere? then the count), an input a part
    whole = inputs.saturation(model, np.concatenate([first, second]), tmp_path / "shards")
    assert len(whole) == 1 and " 3 of 12 input values " in whole[0]
    assert capsys.readouterr().err == f"warning: {whole[0]} (in its first 3 inputs)\n"
    assert len(x) == 3 and parts == [1] * 6


# ---------------------------------------------------------------- pinning shapes


def test_input_shape_pins_free_dimensions(tmp_path):
    onnx.save(mlp({"float[N, 4] x": "float[N, features] x"}), tmp_path / "dyn.onnx")
    proc = run_cli(("compile", "dyn.onnx", "--input-shape", "4", "-o", "build"), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert snncc.load(tmp_path / "build" / "model.snn").input_shape == (4,)
    verdict = run_cli(("inspect", "dyn.onnx", "--input-shape", "x=4"), tmp_path)
    assert verdict.returncode == 0 and "input  x: ['batch', 4]" in verdict.stdout


def test_input_shape_through_the_python_api(tmp_path):
    onnx.save(shapeless(mlp()), tmp_path / "noshape.onnx")
    assert snncc.compile(tmp_path / "noshape.onnx", input_shape=(4,)).input_shape == (4,)
    assert snncc.compile(tmp_path / "noshape.onnx", input_shape={"x": (4,)}).input_shape == (4,)


# ---------------------------------------------------------------- atomic output


def write_previous_build(folder: Path) -> dict[str, bytes]:
    folder.mkdir()
    (folder / "model.snn").write_bytes(b"the previous model")
    (folder / "MARKER").write_text("from the previous run\n")
    (folder / ".snncc-build.json").write_text('{"entries": ["model.snn", "MARKER"]}\n')
    return snapshot(folder)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def run_main(monkeypatch, capsys, *argv: str) -> tuple[int, str]:
    """snncc.app.cli.main in this process (so that a test can inject a fault)."""
    monkeypatch.setattr(sys, "argv", ["snncc", *argv])
    with pytest.raises(SystemExit) as exit_:
        snncc.app.cli.main()
    return exit_.value.code, capsys.readouterr().err


def test_a_failing_compile_leaves_the_previous_output_untouched(tmp_path):
    before = write_previous_build(tmp_path / "build")
    onnx.save(mlp(fc2_weight=NAN_WEIGHT), tmp_path / "nan.onnx")
    proc = run_cli(("compile", "nan.onnx", "-o", "build"), tmp_path)
    assert proc.returncode == 1
    assert snapshot(tmp_path / "build") == before and leftovers(tmp_path) == []


def test_a_successful_compile_replaces_the_output_whole(tmp_path):
    write_previous_build(tmp_path / "build")
    onnx.save(mlp(), tmp_path / "mlp.onnx")
    proc = run_cli(("compile", "mlp.onnx", "-o", "build"), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(snapshot(tmp_path / "build")) == [".snncc-build.json", "model.snn",
                                                    "report.json"]
    assert leftovers(tmp_path) == []


def test_full_disk_while_writing(tmp_path, monkeypatch, capsys):
    """A write fails half way with ENOSPC: one message, the previous build is untouched
    and no temporary folder remains."""
    case = BY_ID["disk-full"]
    case.make(tmp_path)
    before = write_previous_build(tmp_path / "build")
    real = Path.write_bytes

    def half_then_full(path: Path, data: bytes) -> int:
        real(path, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(Path, "write_bytes", half_then_full)
    code, err = run_main(monkeypatch, capsys, *case.argv)
    assert (code, err) == (1, f"error: {case.expected()}\n")
    assert snapshot(tmp_path / "build") == before and leftovers(tmp_path) == []


def refuse(code: int) -> Callable[..., None]:
    """A stand-in for a file-system call that fails as it would on a folder one may not
    write (as root, chmod does not stop writes, so the tests simulate it)."""
    def fail(*args, **kwargs) -> None:
        raise OSError(code, os.strerror(code), str(args[0]) if args else None)
    return fail


# where atomic_dir meets each refusal: creating the temporary folder, creating the
# missing parent folders, and moving the finished build over the previous one
UNWRITABLE = {"output-permission-denied": (tempfile, "mkdtemp", errno.EACCES),
              "output-read-only": (Path, "mkdir", errno.EROFS),
              "output-not-replaceable": (Path, "rename", errno.EACCES)}


@pytest.mark.parametrize("case_id", UNWRITABLE)
def test_an_output_folder_that_cannot_be_written(case_id, tmp_path, monkeypatch, capsys):
    """One message, exit 1, no traceback; a previous build untouched, nothing left behind."""
    case = BY_ID[case_id]
    case.make(tmp_path)
    before = write_previous_build(tmp_path / "build")
    names = sorted(p.name for p in tmp_path.iterdir())
    where, name, code = UNWRITABLE[case_id]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(where, name, refuse(code))
    exit_code, err = run_main(monkeypatch, capsys, *case.argv)
    monkeypatch.undo()
    assert (exit_code, err) == (1, f"error: {case.expected()}\n")
    assert snapshot(tmp_path / "build") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == names  # no out/, no .build.*


def save_half_then(fault: BaseException, real: Callable) -> Callable:
    """A numpy save (`real`) that writes the first half of its bytes, then fails."""
    def save(file, *args, **kwargs):
        whole = io.BytesIO()
        real(whole, *args, **kwargs)
        half = whole.getvalue()[: len(whole.getvalue()) // 2]
        if hasattr(file, "write"):
            file.write(half)
        else:
            Path(file).write_bytes(half)
        raise fault
    return save


FULL = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
SIMULATE_FILES = {"--trace": ("t.npz", "savez_compressed", "trace"),
                  "--output": ("o.npz", "savez", "output")}


@pytest.mark.parametrize("fault", [FULL, KeyboardInterrupt()], ids=["disk-full", "ctrl-c"])
@pytest.mark.parametrize("flag", SIMULATE_FILES)
def test_simulate_files_are_replaced_whole_or_not_at_all(flag, fault, tmp_path, monkeypatch,
                                                         capsys):
    """--trace and --output go through a temporary file: a write that fails half way leaves
    the previous file byte for byte and no temporary file."""
    name, save, what = SIMULATE_FILES[flag]
    with_array("x.npy", np.zeros((2, 4), np.float32))(tmp_path)
    (tmp_path / name).write_bytes(b"the previous file")
    monkeypatch.chdir(tmp_path)
    with monkeypatch.context() as m:
        m.setattr(np, save, save_half_then(fault, getattr(np, save)))
        code, err = run_main(m, capsys, "simulate", "build/model.snn", "--input", "x.npy",
                             flag, name)
    if isinstance(fault, OSError):
        assert (code, err) == (1, f"error: {name}: cannot write the {what} (No space left on "
                                  "device). Fix: choose a writable path\n")
    else:
        assert code == 130 and "Traceback" not in err
    assert (tmp_path / name).read_bytes() == b"the previous file"
    assert leftovers(tmp_path) == []
    code, _ = run_main(monkeypatch, capsys, "simulate", "build/model.snn", "--input", "x.npy",
                       flag, name)  # the control: without the fault the file is replaced
    assert code == 0 and len(np.load(tmp_path / name).files) > 0 and leftovers(tmp_path) == []


def test_html_report_is_replaced_whole_or_not_at_all(tmp_path, monkeypatch, capsys):
    with_array("x.npy", np.zeros((2, 4), np.float32))(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert run_main(monkeypatch, capsys, "simulate", "build/model.snn", "--input",
                    "x.npy")[0] == 0
    (tmp_path / "r.html").write_text("the previous page\n")
    real = Path.write_text

    def write_text(self: Path, text: str, *args, **kwargs):
        if self.name.startswith((".r.html", "r.html")):  # half the page, then a full disk
            real(self, text[: len(text) // 2], *args, **kwargs)
            raise FULL
        return real(self, text, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(Path, "write_text", write_text)
        code, err = run_main(m, capsys, "report", "build", "--html", "r.html")
    assert (code, err) == (1, f"reusing the last simulation in build/report.json: 2 inputs "
                              f"from {tmp_path / 'x.npy'} (pass --input to simulate other "
                              "inputs)\nerror: r.html: cannot write the HTML report (No space "
                              "left on device). Fix: choose a writable path\n")
    assert (tmp_path / "r.html").read_text() == "the previous page\n"
    assert leftovers(tmp_path) == [] and leftovers(tmp_path / "build") == []
    assert run_main(monkeypatch, capsys, "report", "build", "--html", "r.html")[0] == 0
    assert (tmp_path / "r.html").read_text().startswith("<!doctype html>")


def test_interrupted_compile(tmp_path, monkeypatch, capsys):
    """Ctrl-C while writing: exit 130, the previous build untouched, no temporary folder."""
    onnx.save(mlp(), tmp_path / "mlp.onnx")
    before = write_previous_build(tmp_path / "build")

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(Path, "write_bytes", interrupt)
    code, err = run_main(monkeypatch, capsys, "compile", "mlp.onnx", "-o", "build")
    assert code == 130 and "interrupted" in err and "Traceback" not in err
    assert snapshot(tmp_path / "build") == before and leftovers(tmp_path) == []


def test_failing_final_rename_puts_the_previous_output_back(tmp_path, monkeypatch, capsys):
    """The swap is renames (snncc's old entries away, the new ones in); if moving a new
    entry in fails, the ones already moved are taken out and the old ones return."""
    onnx.save(mlp(), tmp_path / "mlp.onnx")
    before = write_previous_build(tmp_path / "build")
    real = Path.rename

    def rename(self: Path, target):
        if Path(target).parent.name == "build" and Path(target).name == "report.json" \
                and self.parent.name.startswith(".build.") and ".old." not in self.parent.name:
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))
        return real(self, target)

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(Path, "rename", rename)
    code, err = run_main(monkeypatch, capsys, "compile", "mlp.onnx", "-o", "build")
    assert code == 1 and "cannot write the output (Invalid cross-device link)" in err
    assert snapshot(tmp_path / "build") == before and leftovers(tmp_path) == []


def test_a_failing_backend_leaves_no_partial_output(tmp_path, monkeypatch, capsys):
    """An error after some files were written inside the temporary folder."""
    from snncc.metrics import report

    onnx.save(mlp(), tmp_path / "mlp.onnx")
    before = write_previous_build(tmp_path / "build")

    def broken(*args, **kwargs):
        raise snncc.errors.SnnccError(snncc.errors.Diagnostic("the report failed"))

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(report, "compile_report", broken)
    code, err = run_main(monkeypatch, capsys, "compile", "mlp.onnx", "-o", "build")
    assert (code, err) == (1, "error: the report failed\n")
    assert snapshot(tmp_path / "build") == before and leftovers(tmp_path) == []


# ---------------------------------------------------------------- exit codes


def test_inspect_exits_1_when_not_convertible(tmp_path):
    onnx.save(mlp({"uint8 hi = {7}": "uint8 hi = {15}"}), tmp_path / "q4.onnx")
    proc = run_cli(("inspect", "q4.onnx"), tmp_path)
    assert proc.returncode == 1 and "verdict: not convertible" in proc.stdout


# ---------------------------------------------------------------- the docs table


def markdown_table() -> str:
    """The catalogue as docs/errors.md shows it."""
    rows = ["| input | command | message | what to do |", "|---|---|---|---|"]
    for c in CATALOGUE:
        message, _, fix = c.expected("<version>").partition(". Fix: ")
        cells = [c.input, code("snncc " + " ".join(c.argv)), code(message),
                 fix.replace("<", "\\<")]
        rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(rows)


def code(text: str) -> str:
    """A Markdown code span, even around text with backticks in it."""
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def test_docs_table_is_in_sync():
    assert markdown_table() in DOCS.read_text(), (
        "docs/errors.md is out of date: paste the output of `python tests/test_bad_input.py`")


def test_every_case_has_a_fix():
    assert all(". Fix: " in c.message for c in CATALOGUE)
    assert len(BY_ID) == len(CATALOGUE)


if __name__ == "__main__":
    print(markdown_table())
