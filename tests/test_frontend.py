"""Frontend rules, one tiny model each, written in ONNX's textual syntax."""

from pathlib import Path

import numpy as np
import onnx
import onnx.parser
import onnxruntime as ort
import pytest

import modelgen
from snncc import ops as o
from snncc.frontend.importer import import_onnx
from snncc.ir import print_graph
from snncc.metrics.compare import run_onnx
from snncc.reference import evaluate


def parse(text: str, tmp_path: Path, name: str = "m.onnx") -> Path:
    model = onnx.parser.parse_model(text)
    onnx.checker.check_model(model)
    path = tmp_path / name
    onnx.save(model, path)
    return path


def run_ort(path: Path, x: np.ndarray) -> np.ndarray:
    return run_onnx(path, x, [])[0]


def run_ir(path: Path, x: np.ndarray) -> np.ndarray:
    g = import_onnx(path)
    return evaluate(g, {g.inputs[0]: x}, keep=False)[g.outputs[0]]


HEADER = '<ir_version: 8, opset_import: ["" : 17]>'


def test_qcdq_becomes_one_quantact_with_the_clip_range(tmp_path):
    path = parse(HEADER + """
    g (float[N, 4] x) => (float[N, 4] y)
    <float s = {0.25}, uint8 z = {0}, uint8 lo = {0}, uint8 hi = {7}> {
        q = QuantizeLinear(x, s, z)
        c = Clip(q, lo, hi)
        y = DequantizeLinear(c, s, z)
    }""", tmp_path)
    g = import_onnx(path)
    (q,) = g.ops(o.QuantAct)
    assert (q.op.lo, q.op.hi, q.op.levels, float(q.op.scale), q.op.rounding.value) == (
        0, 7, 7, 0.25, "half_even")
    x = np.linspace(-1, 3, 32).reshape(8, 4)
    assert np.array_equal(run_ir(path, x), run_ort(path, x))


def test_qonnx_quant_on_activations_and_weights(tmp_path):
    path = parse("""<ir_version: 8, opset_import: ["" : 17, "qonnx.custom_op.general" : 1]>
    g (float[N, 2] x) => (float[N, 2] y)
    <float s = {0.5}, float z = {0.0}, float b3 = {3.0}, float b8 = {8.0}, float ws = {0.25},
     float[2, 2] w = {0.26, -0.5, 1.0, 0.1}> {
        a = qonnx.custom_op.general.Quant <signed: int = 0, narrow: int = 0, rounding_mode: string = "ROUND"> (x, s, z, b3)
        wq = qonnx.custom_op.general.Quant <signed: int = 1, narrow: int = 1, rounding_mode: string = "ROUND"> (w, ws, z, b8)
        y = MatMul(a, wq)
    }""", tmp_path)
    g = import_onnx(path)
    (q,) = g.ops(o.QuantAct)
    assert (q.op.lo, q.op.hi) == (0, 7)
    (d,) = g.ops(o.Dense)
    assert d.op.weight.values.tolist() == [[1, -2], [4, 0]]
    assert float(d.op.weight.scale.ravel()[0]) == 0.25


def test_gemm_with_trans_b_alpha_and_bias_becomes_dense_and_affine(tmp_path):
    path = parse(HEADER + """
    g (float[N, 3] x) => (float[N, 2] y)
    <float[2, 3] w = {1.0, 2.0, 3.0, -1.0, 0.5, 0.0}, float[2] b = {0.25, -1.0}> {
        y = Gemm <transB: int = 1, alpha: float = 2.0, beta: float = 0.5> (x, w, b)
    }""", tmp_path)
    g = import_onnx(path)
    assert [n.op.name for n in g.topo()] == ["Input", "Dense", "Affine"]
    x = np.arange(12.0).reshape(4, 3)
    assert np.allclose(run_ir(path, x), run_ort(path, x))


def test_shape_arithmetic_is_folded_and_the_batch_stays_out(tmp_path):
    path = parse(HEADER + """
    g (float[N, 2, 3] x) => (float[N, 3, 2] y)
    <int64[1] zero = {0}, int64[2] dims = {3, 2}> {
        sh = Shape(x)
        n = Gather <axis: int = 0> (sh, zero)
        cat = Concat <axis: int = 0> (n, dims)
        y = Reshape(x, cat)
    }""", tmp_path)
    g = import_onnx(path)
    (r,) = g.ops(o.Reshape)
    assert r.op.shape == (3, 2)
    x = np.arange(12.0).reshape(2, 2, 3)
    assert np.array_equal(run_ir(path, x), run_ort(path, x))


def test_initializers_listed_as_inputs_are_constants(tmp_path):
    path = parse(HEADER + """
    g (float[N, 2] x, float[2, 2] w) => (float[N, 2] y)
    <float[2, 2] w = {1.0, 2.0, 3.0, 4.0}> {
        y = MatMul(x, w)
    }""", tmp_path)
    g = import_onnx(path)
    assert g.inputs == ["x"]
    assert g.ops(o.Dense)[0].op.weight.values.tolist() == [[1, 2], [3, 4]]


def test_batch_baked_into_reshape_flatten_transpose(tmp_path):
    path = parse(HEADER + """
    g (float[1, 2, 2, 2] x) => (float[1, 8] y)
    <int64[3] s = {1, 2, 4}> {
        r = Reshape(x, s)
        t = Transpose <perm: ints = [0, 2, 1]> (r)
        y = Flatten <axis: int = 1> (t)
    }""", tmp_path)
    g = import_onnx(path)
    assert g.node(g.inputs[0]).shape == (2, 2, 2)
    assert [n.op.name for n in g.topo()] == ["Input", "Reshape", "Transpose", "Reshape"]
    x = np.arange(16.0).reshape(2, 2, 2, 2)  # a batch of 2 through a batch-1 export
    want = np.concatenate([run_ort(path, x[i:i + 1]) for i in range(2)])
    assert np.array_equal(run_ir(path, x), want)


def test_constant_arithmetic_becomes_affine(tmp_path):
    path = parse(HEADER + """
    g (float[N, 2] x) => (float[N, 2] y)
    <float four = {4.0}, float[2] c = {1.0, -2.0}> {
        a = Div(x, four)
        b = Sub(c, a)
        y = Mul(b, c)
    }""", tmp_path)
    g = import_onnx(path)
    assert {n.op.name for n in g.topo()} == {"Input", "Affine"}
    x = np.arange(8.0).reshape(4, 2)
    assert np.allclose(run_ir(path, x), run_ort(path, x))


def test_split_slice_gather_become_take(tmp_path):
    path = parse(HEADER + """
    g (float[N, 6, 2] x) => (float[N, 2, 2] y, float[N, 2] z)
    <int64[2] parts = {2, 4}, int64[1] st = {1}, int64[1] en = {3}, int64[1] ax = {1}, int64 i = {-1}> {
        a, b = Split <axis: int = 1> (x, parts)
        y = Slice(b, st, en, ax)
        z = Gather <axis: int = 1> (a, i)
    }""", tmp_path)
    g = import_onnx(path)
    assert {n.op.name for n in g.topo()} == {"Input", "Take"}
    x = np.arange(24.0).reshape(2, 6, 2)
    vals = evaluate(g, {"x": x})
    ort_y, ort_z = ort.InferenceSession(str(path)).run(None, {"x": x.astype(np.float32)})
    assert np.array_equal(vals[g.outputs[0]], ort_y)
    assert np.array_equal(vals[g.outputs[1]], ort_z)


def test_external_data_loads(tmp_path):
    model = onnx.parser.parse_model(HEADER + """
    g (float[N, 64] x) => (float[N, 64] y) { y = MatMul(x, w) }""")
    model.graph.initializer.append(onnx.numpy_helper.from_array(np.full((64, 64), 0.5,
                                                                        np.float32), "w"))
    onnx.save(model, tmp_path / "ext.onnx", save_as_external_data=True,
              location="ext.onnx.data", size_threshold=0)
    assert (tmp_path / "ext.onnx.data").is_file()
    g = import_onnx(tmp_path / "ext.onnx")
    assert float(g.ops(o.Dense)[0].op.weight.values.sum()) == 2048.0


@pytest.mark.parametrize("po2", [False, True])
def test_whole_transformer_imports_with_onnxruntime_semantics(tmp_path, po2):
    path = tmp_path / "t.onnx"
    onnx.save(modelgen.tiny_transformer(po2=po2, blocks=2), path)
    x = np.random.default_rng(0).uniform(0, 1, (64, 8, 8))
    ours, theirs = run_ir(path, x), run_ort(path, x)
    # float64 here, float32 there: a quantizer could flip a code on a near-tie and move
    # that sample's logits by a step; every other sample agrees to float32 precision.
    close = np.all(np.isclose(ours, theirs, atol=1e-5), axis=1)
    assert close.mean() >= 0.95


def test_printed_form_is_stable_for_a_model(tmp_path):
    path = tmp_path / "c.onnx"
    onnx.save(modelgen.tiny_cnn(), path)
    assert print_graph(import_onnx(path)) == print_graph(import_onnx(path))


def _at_opset(model: onnx.ModelProto, opset: int) -> onnx.ModelProto:
    """The same graph declared at `opset`; from 18 on ReduceMean takes its axes as an input."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    m.opset_import[0].version = opset
    if opset >= 18:
        for node in m.graph.node:
            if node.op_type == "ReduceMean":
                (axes,) = [a for a in node.attribute if a.name == "axes"]
                name = f"{node.name}/axes"
                m.graph.initializer.append(onnx.numpy_helper.from_array(
                    np.array(axes.ints, np.int64), name))
                node.input.append(name)
                node.attribute.remove(axes)
    onnx.checker.check_model(m, full_check=True)
    return m


@pytest.mark.parametrize("opset", [13, 21])
def test_opsets_13_to_21_load_into_the_same_ir(tmp_path, opset):
    base = modelgen.tiny_transformer(seed=2)
    paths = []
    for k, version in enumerate((17, opset)):
        paths.append(tmp_path / f"m{k}.onnx")
        onnx.save(_at_opset(base, version), paths[-1])
    x = np.random.default_rng(0).uniform(0, 1, (4, 8, 8))
    assert np.allclose(run_ir(paths[1], x), run_ort(paths[1], x), atol=1e-5)
    assert print_graph(import_onnx(paths[0]), anonymous=True) == print_graph(
        import_onnx(paths[1]), anonymous=True)


def test_cast_and_unsqueeze_shape_chains_fold(tmp_path):
    """The PyTorch exporter's shape arithmetic: Shape -> Gather -> Cast -> Unsqueeze ->
    Concat -> Reshape, with a Cast of a constant on the way."""
    path = parse(HEADER + """
    g (float[N, 4, 6] x) => (float[N, 2, 3, 4] y)
    <int64 one = {1}, int64[1] ax = {0}, float[1] three = {3.0}> {
        sh = Shape(x)
        n = Gather <axis: int = 0> (sh, one)
        nf = Cast <to: int = 1> (n)
        ni = Cast <to: int = 7> (nf)
        u = Unsqueeze(ni, ax)
        s3 = Cast <to: int = 7> (three)
        t = Transpose <perm: ints = [0, 2, 1]> (x)
        b = Constant <value = int64[2] {-1, 2}> ()
        cat = Concat <axis: int = 0> (b, s3, u)
        y = Reshape(t, cat)
    }""", tmp_path)
    g = import_onnx(path)
    assert [type(n.op).__name__ for n in g.topo()] == ["Input", "Transpose", "Reshape"]
    (r,) = g.ops(o.Reshape)
    assert r.op.shape == (2, 3, 4)
    x = np.random.default_rng(1).uniform(0, 1, (3, 4, 6)).astype(np.float32)
    assert np.array_equal(run_ir(path, x), run_ort(path, x))


def test_qonnx_intquant_is_a_quantizer(tmp_path):
    path = parse("""<ir_version: 8, opset_import: ["" : 17, "qonnx.custom_op.general" : 1]>
    g (float[N, 3] x) => (float[N, 3] y)
    <float s = {0.25}, float z = {0.0}, float b = {3.0}> {
        y = qonnx.custom_op.general.IntQuant <signed: int = 0, narrow: int = 0, rounding_mode: string = "ROUND"> (x, s, z, b)
    }""", tmp_path)
    g = import_onnx(path)
    (q,) = g.ops(o.QuantAct)
    assert (q.op.lo, q.op.hi, q.op.rounding.value) == (0, 7, "half_even")
    x = np.array([[0.125, 0.375, 2.0], [-1.0, 0.6, 0.625]])  # ties 0.5 and 1.5 to even
    out = evaluate(g, {g.inputs[0]: x}, keep=False)[g.outputs[0]]
    assert out.tolist() == [[0.0, 0.5, 1.75], [0.0, 0.5, 0.5]]
