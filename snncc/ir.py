"""The snncc IR: a typed dataflow graph over networkx, its printer and its verifier.

Each node produces one value, named by the node. Nodes keep the ONNX node they came from
(``origin``) so that every diagnostic can point at the user's model. This is the only
module that imports networkx, and only where a graph is built or rewritten: a model read
back to be run (``FrozenGraph``) needs no graph algorithm, and `snncc simulate` does not
import networkx (a tenth of a second of its start-up).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from snncc.errors import Diagnostic, SnnccError
from snncc.ops import Input, Neuron, Op, Shape, ShapeError

if TYPE_CHECKING:
    import networkx as nx

OpT = TypeVar("OpT", bound=Op)


@dataclass(frozen=True)
class Node:
    """One operation: ``name = op(*inputs) : shape kind``."""

    name: str
    op: Op
    inputs: tuple[str, ...]
    shape: Shape
    kind: str
    origin: str = ""

    def op_as(self, kind: type[OpT]) -> OpT:
        """The node's op as the kind the caller handles: the typed way to read its fields
        (a bug in snncc if it is another kind)."""
        if not isinstance(self.op, kind):
            raise TypeError(f"{self.name} is {type(self.op).__name__}, not {kind.__name__}")
        return self.op


class Graph:
    """A DAG of nodes with named inputs and outputs."""

    def __init__(self, name: str = "model"):
        import networkx as nx

        self.name = name
        self._g: nx.DiGraph = nx.DiGraph()
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        self.meta: dict[str, Any] = {}  # JSON-able facts passes record (T, delay, ...)

    # ------------------------------------------------------------ building
    def add(self, name: str, op: Op, inputs: tuple[str, ...] | list[str] = (), *,
            origin: str = "", shape: Shape | None = None, kind: str | None = None) -> str:
        """Add a node, inferring its shape and kind from its operands; returns its name."""
        if name in self._g:
            raise ValueError(f"duplicate value name {name!r}")
        inputs = tuple(inputs)
        if shape is None or kind is None:
            shapes = [self.node(i).shape for i in inputs]
            kinds = [self.node(i).kind for i in inputs]
            shape, kind = op.infer(shapes, kinds)
        self._g.add_node(name, node=Node(name, op, inputs, tuple(shape), kind, origin or name))
        for i in inputs:
            self._g.add_edge(i, name)
        return name

    def fresh(self, base: str) -> str:
        """A value name not yet used, derived from `base`."""
        if base not in self._g:
            return base
        k = 1
        while f"{base}_{k}" in self._g:
            k += 1
        return f"{base}_{k}"

    def replace_op(self, name: str, op: Op, inputs: tuple[str, ...] | None = None, *,
                   origin: str | None = None) -> None:
        """Swap the op (and optionally the operands, and the source node whose value it
        now computes) of a node, re-inferring its type."""
        old = self.node(name)
        inputs = old.inputs if inputs is None else tuple(inputs)
        shape, kind = op.infer([self.node(i).shape for i in inputs],
                               [self.node(i).kind for i in inputs])
        for i in old.inputs:
            if self._g.has_edge(i, name):
                self._g.remove_edge(i, name)
        self._g.nodes[name]["node"] = replace(old, op=op, inputs=inputs, shape=shape, kind=kind,
                                              origin=old.origin if origin is None else origin)
        for i in inputs:
            self._g.add_edge(i, name)

    def replace_uses(self, old: str, new: str) -> None:
        """Make every consumer of `old` (and the graph outputs) read `new` instead."""
        for user in list(self._g.successors(old)):
            n = self.node(user)
            inputs = tuple(new if i == old else i for i in n.inputs)
            self._g.remove_edge(old, user)
            self._g.add_edge(new, user)
            self._g.nodes[user]["node"] = replace(n, inputs=inputs)
        self.outputs = [new if o == old else o for o in self.outputs]

    def remove(self, name: str) -> None:
        if list(self._g.successors(name)) or name in self.outputs:
            raise ValueError(f"{name!r} is still used")
        self._g.remove_node(name)

    def prune(self) -> bool:
        """Drop nodes no output depends on; True if any went."""
        import networkx as nx

        live = set(self.outputs)
        for o in self.outputs:
            live |= nx.ancestors(self._g, o)
        dead = [n for n in self._g if n not in live and n not in self.inputs]
        self._g.remove_nodes_from(dead)
        return bool(dead)

    # ------------------------------------------------------------ reading
    def node(self, name: str) -> Node:
        return self._g.nodes[name]["node"]

    def __contains__(self, name: str) -> bool:
        return name in self._g

    def __len__(self) -> int:
        return self._g.number_of_nodes()

    def names(self) -> list[str]:
        """Value names in insertion order (the order `topo` breaks ties by)."""
        return list(self._g.nodes)

    def nodes(self) -> list[Node]:
        """The nodes in `names()`'s order (no sorting: cheap enough to check a cache by)."""
        return [n for _, n in self._g.nodes(data="node")]

    def users(self, name: str) -> list[Node]:
        return [self.node(u) for u in sorted(self._g.successors(name))]

    def topo(self) -> Iterator[Node]:
        """Nodes in a stable topological order (ties broken by insertion order)."""
        import networkx as nx

        order = {n: i for i, n in enumerate(self._g.nodes)}
        for name in nx.lexicographical_topological_sort(self._g, key=order.__getitem__):
            yield self.node(name)

    def copy(self) -> Graph:
        g = Graph(self.name)
        g._g = self._g.copy()
        g.inputs, g.outputs, g.meta = list(self.inputs), list(self.outputs), dict(self.meta)
        return g

    def ops(self, *kinds: type) -> list[Node]:
        return [n for n in self.topo() if isinstance(n.op, kinds)]


class FrozenGraph(Graph):
    """A graph read back to be run, not rewritten (``model.snn`` for `snncc simulate`):
    its nodes in the order they were saved in, each reading only nodes before it. That
    order is the saved graph's ``topo()``, so every reading method answers as that graph
    did, with no networkx; the rewriting methods refuse, and ``copy()`` gives the
    ``Graph`` to rewrite."""

    def __init__(self, name: str, nodes: list[Node], inputs: list[str], outputs: list[str],
                 meta: dict[str, Any]):
        self.name = name
        self._nodes: dict[str, Node] = {}
        self._users: dict[str, list[str]] = {}
        for n in nodes:
            if n.name in self._nodes:
                raise ValueError(f"duplicate value name {n.name!r}")
            if any(i not in self._nodes for i in n.inputs):
                raise ValueError(f"{n.name!r} reads values not defined before it")
            self._nodes[n.name] = n
            self._users[n.name] = []
            for i in dict.fromkeys(n.inputs):
                self._users[i].append(n.name)
        self.inputs, self.outputs, self.meta = inputs, outputs, meta

    def add(self, name: str, op: Op, inputs: tuple[str, ...] | list[str] = (), *,
            origin: str = "", shape: Shape | None = None, kind: str | None = None) -> str:
        raise _read_only()

    def replace_op(self, name: str, op: Op, inputs: tuple[str, ...] | None = None, *,
                   origin: str | None = None) -> None:
        raise _read_only()

    def replace_uses(self, old: str, new: str) -> None:
        raise _read_only()

    def remove(self, name: str) -> None:
        raise _read_only()

    def prune(self) -> bool:
        raise _read_only()

    def node(self, name: str) -> Node:
        return self._nodes[name]

    def __contains__(self, name: str) -> bool:
        return name in self._nodes

    def __len__(self) -> int:
        return len(self._nodes)

    def names(self) -> list[str]:
        return list(self._nodes)

    def nodes(self) -> list[Node]:
        return list(self._nodes.values())

    def users(self, name: str) -> list[Node]:
        return [self._nodes[u] for u in sorted(self._users[name])]

    def topo(self) -> Iterator[Node]:
        """The nodes in saved order: a topological order, the one `Graph.topo` gives for
        a graph built in it (ties broken by insertion order)."""
        return iter(list(self._nodes.values()))

    def copy(self) -> Graph:
        g = Graph(self.name)
        for n in self._nodes.values():
            g.add(n.name, n.op, n.inputs, origin=n.origin, shape=n.shape, kind=n.kind)
        g.inputs, g.outputs, g.meta = list(self.inputs), list(self.outputs), dict(self.meta)
        return g


def _read_only() -> TypeError:
    return TypeError("a FrozenGraph is read-only: copy() it to rewrite")


# ---------------------------------------------------------------- layer names

# Exporter scaffolding after a layer's own name in ONNX node names (Brevitas, QONNX)
_EXPORTER_PARTS = frozenset({"act_quant", "export_handler", "DequantizeLinear", "QuantizeLinear",
                             "Quant", "IntQuant", "weight_quant", "input_quant"})


def short_name(origin: str) -> str:
    """An ONNX node name without the exporter's quantizer plumbing, and without a module
    list before its item ('/blocks/blocks.0/attn/q_act/act_quant/export_handler/
    DequantizeLinear' -> '/blocks.0/attn/q_act'); a name that is all plumbing keeps its
    first part ('/input_quant/act_quant/...' -> '/input_quant')."""
    parts = origin.split("/")
    while len(parts) > 1 and parts[-1] in _EXPORTER_PARTS and parts[-2]:
        parts.pop()
    parts = [p for i, p in enumerate(parts)
             if not (p and i + 1 < len(parts) and parts[i + 1].startswith(p + "."))]
    return "/".join(parts) or origin


def layer_names(graph: Graph) -> dict[str, str]:
    """Every node's layer name (graph inputs excepted): the short name of the ONNX node it
    came from, as every table, report, trace file and testbench shows it.

    Unique and deterministic: neurons choose first, then the other nodes in topological
    order; a later node whose short name is taken gets its op added ('/head/Gemm:readout'),
    and then a number ('/head/Gemm:synapse.2')."""
    nodes = [n for n in graph.topo() if not isinstance(n.op, Input)]
    nodes.sort(key=lambda n: not isinstance(n.op, Neuron))  # stable: topological within
    names: dict[str, str] = {}
    taken: set[str] = set()
    for n in nodes:
        name = base = short_name(n.origin)
        if name in taken:
            name = base = f"{base}:{n.op.name.lower()}"
        k = 2
        while name in taken:
            name, k = f"{base}.{k}", k + 1
        names[n.name] = name
        taken.add(name)
    return names


# ---------------------------------------------------------------- printer


def _fmt_value(v: object) -> str:
    if isinstance(v, np.ndarray):
        if v.ndim == 0:
            return repr(v.item())
        if v.size <= 8:
            return "[" + ",".join(repr(x) for x in v.ravel().tolist()) + "]"
        digest = hashlib.sha1(np.ascontiguousarray(v).tobytes()).hexdigest()[:8]
        return f"<{'x'.join(map(str, v.shape))} {v.dtype} #{digest}>"
    if hasattr(v, "values") and hasattr(v, "scale"):  # Weight
        q = "" if v.scale is None else f" q scale={_fmt_value(np.asarray(v.scale))}"
        return f"{_fmt_value(v.values)}{q}"
    if hasattr(v, "value"):  # enums
        return str(v.value)
    if isinstance(v, float):
        return repr(v)
    return str(v).replace(" ", "")


def print_graph(graph: Graph, anonymous: bool = False) -> str:
    """A stable textual form, one line per node, for golden tests and --print-after-all.

    `anonymous` numbers the values (%0, %1, ...) in topological order, so that two
    exports of one model, named differently by their exporters, print the same.
    """
    order = list(graph.topo())
    names = {n.name: str(k) if anonymous else n.name for k, n in enumerate(order)}

    def ref(v: str) -> str:
        return "%" + names.get(v, v)

    title = "graph" if anonymous else f"graph {graph.name}"
    lines = [f"{title}({', '.join(ref(i) for i in graph.inputs)}) {{"]
    for n in order:
        attrs = ", ".join(f"{k}={_fmt_value(v)}" for k, v in n.op.attrs().items())
        args = ", ".join(ref(i) for i in n.inputs)
        lines.append(f"  {ref(n.name)} = {n.op.name}({args}){{{attrs}}} : "
                     f"[{','.join(map(str, n.shape))}] {n.kind}")
    lines.append(f"  return {', '.join(ref(o) for o in graph.outputs)}")
    lines.append("}")
    return "\n".join(lines)


# ---------------------------------------------------------------- verifier


def verify(graph: Graph) -> None:
    """Check the graph's invariants; collect every problem and raise once."""
    problems: list[Diagnostic] = []
    cycle = _cycle(graph)
    if cycle:
        problems.append(Diagnostic(f"the graph has a cycle through {' -> '.join(cycle)}"))
        raise SnnccError(problems)
    for name in list(graph.inputs) + list(graph.outputs):
        if name not in graph:
            problems.append(Diagnostic(f"graph input/output '{name}' is not defined"))
    for n in graph.topo():
        problems += _verify_node(graph, n)
    if problems:
        raise SnnccError(problems)


def _cycle(graph: Graph) -> list[str]:
    """The values on a cycle of the graph ([] if none; a FrozenGraph has none: each node
    reads nodes before it)."""
    if isinstance(graph, FrozenGraph):
        return []
    import networkx as nx

    if nx.is_directed_acyclic_graph(graph._g):
        return []
    return [e[0] for e in nx.find_cycle(graph._g)]


def _verify_node(graph: Graph, n: Node) -> list[Diagnostic]:
    missing = [i for i in n.inputs if i not in graph]
    if missing:
        return [Diagnostic(f"reads undefined value(s) {missing}", n.origin, n.op.name)]
    if n.op.arity is not None and len(n.inputs) != n.op.arity:
        return [Diagnostic(f"takes {n.op.arity} operand(s), has {len(n.inputs)}",
                           n.origin, n.op.name)]
    if n.op.arity == 0:
        return []
    try:
        shape, kind = n.op.infer([graph.node(i).shape for i in n.inputs],
                                 [graph.node(i).kind for i in n.inputs])
    except ShapeError as e:
        return [Diagnostic(str(e), n.origin, n.op.name)]
    if (tuple(shape), kind) != (n.shape, n.kind):
        return [Diagnostic(f"recorded type [{list(n.shape)} {n.kind}] but operands give "
                           f"[{list(shape)} {kind}]", n.origin, n.op.name)]
    return []
