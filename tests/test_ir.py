"""The IR: building, the stable printer, the verifier (collects every problem)."""

import numpy as np
import pytest

import snncc
from snncc import ops as o
from snncc.errors import SnnccError
from snncc.ir import FrozenGraph, Graph, Node, layer_names, print_graph, verify


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


def test_a_frozen_graph_reads_as_the_graph_it_was_saved_from(tmp_path, tiny_models):
    """model.snn loaded read-only (as `snncc simulate` loads it, without networkx): the
    same topological order, printed form, users, layer names and simulation as the
    compiled graph, and the same value names as the graph loaded to be rewritten; it
    refuses to be rewritten, and its copy can be."""
    model = snncc.compile(tiny_models["transformer"], T=7)
    model.save(tmp_path / "model.snn")
    loaded = snncc.load(tmp_path / "model.snn")
    frozen = snncc.load(tmp_path / "model.snn", frozen=True)
    g, f = model.graph, frozen.graph
    assert isinstance(f, FrozenGraph) and not isinstance(loaded.graph, FrozenGraph)
    assert [n.name for n in f.topo()] == [n.name for n in g.topo()]
    assert print_graph(f) == print_graph(g)
    assert f.names() == loaded.graph.names() and len(f) == len(g)
    for graph in (g, f):  # the nodes in the names' order (what caches are checked by)
        assert [n.name for n in graph.nodes()] == graph.names()
        assert all(n is graph.node(n.name) for n in graph.nodes())
    assert {n: [u.name for u in f.users(n)] for n in g.names()} == {
        n: [u.name for u in g.users(n)] for n in g.names()}
    assert layer_names(f) == layer_names(g)
    assert [n.name for n in f.ops(o.Neuron)] == [n.name for n in g.ops(o.Neuron)]
    x = np.random.default_rng(0).uniform(0, 1, (6,) + model.input_shape).astype(np.float32)
    ours, theirs = frozen.simulate(x), model.simulate(x)
    assert np.array_equal(ours.logits_int, theirs.logits_int)
    assert all(np.array_equal(ours.counts[k], theirs.counts[k]) for k in theirs.counts)
    with pytest.raises(TypeError, match="read-only"):
        f.remove(g.outputs[0])
    with pytest.raises(TypeError, match="read-only"):
        f.prune()
    thawed = f.copy()
    assert type(thawed) is Graph and print_graph(thawed) == print_graph(g)
    thawed.add("extra", o.Input(), shape=(1,), kind=o.FLOAT)
    assert thawed.prune() and "extra" not in thawed and "extra" not in f
