"""`snncc inspect`: one diagnostic per offending node, wherever in the pipeline it is found."""

import subprocess
import sys
from pathlib import Path

import onnx
import onnx.parser

from snncc.frontend.support import UNSPIKEABLE
from snncc.verify.verdict import inspect_model

HEADER = '<ir_version: 8, opset_import: ["" : 17]>'


def parse(text: str, tmp_path: Path) -> Path:
    model = onnx.parser.parse_model(HEADER + text)
    onnx.checker.check_model(model)
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    return path


def refusal(op: str) -> str:
    why, _ = UNSPIKEABLE[op]
    return f"{op} {why}"


def found(path: Path, **kw) -> list[tuple[str, str, str]]:
    return [(d.node, d.op, d.message) for d in inspect_model(path, **kw).diagnostics]


def test_softmax_is_reported_beside_frontend_refusals(tmp_path):
    """The frontend refuses LayerNorm before the passes run; the Softmax on the other
    branch, which a pass refuses, is still listed, in the model's node order."""
    path = parse(tmp_path=tmp_path, text="""
    g (float[1, 4, 8] x) => (float[1, 4, 8] y, float[1, 4, 8] z) {
        s = Softmax <axis = -1> (x)
        g8 = Constant <value = float[8] {1, 1, 1, 1, 1, 1, 1, 1}> ()
        b8 = Constant <value = float[8] {0, 0, 0, 0, 0, 0, 0, 0}> ()
        y = LayerNormalization <axis = -1> (x, g8, b8)
        z = Identity (s)
    }""")
    names = [n.name or "" for n in onnx.load(path).graph.node]
    assert names[0] == ""  # unnamed: inspect names it as the importer does
    got = found(path)
    assert [(op, msg) for _, op, msg in got] == [
        ("Softmax", refusal("Softmax")), ("LayerNormalization", refusal("LayerNormalization"))]
    assert found(path, replace_softmax=True) == [got[1]]


def test_every_offending_node_of_a_chain_is_listed(tmp_path):
    path = parse(tmp_path=tmp_path, text="""
    g (float[1, 4, 8] x) => (float[1, 4, 8] y) {
        g8 = Constant <value = float[8] {1, 1, 1, 1, 1, 1, 1, 1}> ()
        b8 = Constant <value = float[8] {0, 0, 0, 0, 0, 0, 0, 0}> ()
        n = LayerNormalization <axis = -1> (x, g8, b8)
        e = Exp (n)
        s = Softmax <axis = -1> (e)
        y = Tanh (s)
    }""")
    assert [op for _, op, _ in found(path)] == ["LayerNormalization", "Exp", "Softmax", "Tanh"]


def test_a_diagnostic_names_the_onnx_op_not_the_stand_in(tmp_path):
    """inspect swaps a Softmax for NReLU to look further; what it then finds about that
    node is still said of the user's Softmax."""
    path = parse(tmp_path=tmp_path, text="""
    g (float[1, 4, 8] x) => (float[1, 4, 8] y) {
        sc = Constant <value = float {0.1}> ()
        zp = Constant <value = uint8 {0}> ()
        q = QuantizeLinear (x, sc, zp)
        d = DequantizeLinear (q, sc, zp)
        y = Softmax <axis = -1> (d)
    }""")
    assert {op for _, op, _ in found(path)} == {"Softmax"}
    proc = subprocess.run([sys.executable, "-m", "snncc", "inspect", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "(Relu)" not in proc.stdout and proc.stdout.count("(Softmax)") == 2
