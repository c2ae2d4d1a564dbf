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


def _random_graph(seed: int) -> Graph:
    """Adds over random earlier values, some rewired and removed, names not in
    topological order: what the passes do to a graph."""
    rng = np.random.default_rng(seed)
    g = Graph("r")
    names = [g.add("x", o.Input(), shape=(2,), kind=o.FLOAT)]
    g.inputs.append("x")
    for k in range(30):
        a, b = rng.choice(names, 2)
        names.append(g.add(f"v{rng.integers(10**6)}_{k}", o.Add(), [str(a), str(b)]))
    g.outputs = [names[-1], names[-5]]
    for _ in range(5):  # rewire some users, as passes do
        old, new = rng.choice(names[1:-1], 2)
        if names.index(str(new)) < names.index(str(old)):
            g.replace_uses(str(old), str(new))
    g.prune()
    return g


@pytest.mark.parametrize("seed", range(6))
def test_graph_order_and_pruning_equal_networkx(seed):
    """The IR's own adjacency against networkx (the reference it replaced): the same
    insertion-ordered topological sort, the same successors, the same nodes pruned."""
    import networkx as nx

    g = _random_graph(seed)
    ref = nx.DiGraph()
    ref.add_nodes_from(g.names())
    for name in g.names():
        ref.add_edges_from((i, name) for i in g.node(name).inputs)
    order = {n: k for k, n in enumerate(g.names())}
    assert [n.name for n in g.topo()] == list(
        nx.lexicographical_topological_sort(ref, key=order.__getitem__))
    for name in g.names():
        assert [u.name for u in g.users(name)] == sorted(ref.successors(name))
    live = set(g.outputs).union(*(nx.ancestors(ref, out) for out in g.outputs))
    assert set(g.names()) == live | set(g.inputs)
    before = [n.name for n in g.topo()]
    copy = g.copy()  # a copy's edits leave the original alone
    copy.outputs = copy.outputs[1:]
    copy.prune()
    assert set(copy.names()) == {g.outputs[1], *nx.ancestors(ref, g.outputs[1]), *g.inputs}
    assert [n.name for n in g.topo()] == before
