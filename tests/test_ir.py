"""The IR: building, the stable printer, the verifier (collects every problem)."""

import numpy as np
import pytest

from snncc import ops as o
from snncc.errors import SnnccError
from snncc.ir import Graph, Node, print_graph, verify


def small_graph() -> Graph:
    g = Graph("g")
    g.add("x", o.Input(), shape=(4, 8), kind=o.FLOAT, origin="x")
    g.inputs.append("x")
    w = o.Weight(np.arange(24, dtype=np.int64).reshape(8, 3) - 12, np.asarray(0.5))
    g.add("d", o.Dense(w), ["x"], origin="/fc/MatMul")
    g.add("a", o.Affine(np.asarray(2.0), np.zeros(())), ["d"], origin="/fc/Mul")
    g.outputs.append("a")
    return g


def test_nodes_keep_their_onnx_origin_and_inferred_types():
    g = small_graph()
    n = g.node("d")
    assert (n.origin, n.shape, n.kind) == ("/fc/MatMul", (4, 3), o.FLOAT)


def test_printer_is_stable_and_names_every_node():
    text = print_graph(small_graph())
    assert text == print_graph(small_graph())
    assert text.splitlines() == [
        "graph g(%x) {",
        "  %x = Input(){} : [4,8] float",
        "  %d = Dense(%x){weight=<8x3 int64 #" + text.split("#")[1][:8]
        + "> q scale=0.5} : [4,3] float",
        "  %a = Affine(%d){mul=2.0, add=0.0} : [4,3] float",
        "  return %a",
        "}",
    ]


def test_verifier_collects_every_problem_at_once():
    g = small_graph()
    # break two nodes behind the builder's back: a wrong recorded shape and a bad operand
    bad = g.node("d")
    g._g.nodes["d"]["node"] = Node(bad.name, bad.op, bad.inputs, (4, 5), bad.kind, bad.origin)
    g._g.nodes["a"]["node"] = Node("a", o.Add(), ("d",), (4, 3), o.FLOAT, "/fc/Add")
    with pytest.raises(SnnccError) as e:
        verify(g)
    text = str(e.value)
    assert "node '/fc/MatMul' (Dense): recorded type [[4, 5] float] but operands give [[4, 3] float]" in text
    assert "node '/fc/Add' (Add): takes 2 operand(s), has 1" in text


def test_verifier_finds_cycles_and_dangling_inputs():
    g = small_graph()
    g._g.add_edge("a", "d")
    with pytest.raises(SnnccError, match="the graph has a cycle through"):
        verify(g)
    g = small_graph()
    g.outputs.append("nowhere")
    with pytest.raises(SnnccError, match="graph input/output 'nowhere' is not defined"):
        verify(g)


def test_shape_errors_name_the_operands():
    g = small_graph()
    with pytest.raises(o.ShapeError, match=r"cannot multiply \[4, 3\] by \[4, 3\]"):
        g.add("m", o.MatMul(), ["a", "a"])


def test_invalid_op_values_are_rejected_on_construction():
    with pytest.raises(ValueError, match="scale must be positive"):
        o.QuantAct(np.asarray(-1.0), 0, 0, 7)
    with pytest.raises(ValueError, match="non-decreasing"):
        o.Neuron(np.ones(1, np.int8), np.array([3, 1]), 2, np.ones(1))
