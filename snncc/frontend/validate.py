"""Is the ONNX graph well formed? Checked before import, one diagnostic per offending node.

- structure: every tensor a node reads is defined (a graph input, an initializer or another
  node's output), every tensor has one producer, and the nodes form no cycle; nodes that
  are merely out of order are put in a topological order;
- each node against its ONNX schema at the model's opset: the number of inputs and
  outputs, the required inputs and attributes, and the attribute types.

The importer can then rely on what the ONNX spec promises about a node.
"""

from __future__ import annotations

from collections import deque

import onnx
from onnx import AttributeProto, defs

from snncc.errors import Diagnostic
from snncc.frontend.loader import QONNX_DOMAINS

# a schema's attribute type -> the AttributeProto type code of the same name
_ATTR_TYPES = {getattr(defs.OpSchema.AttrType, name): code
               for name, code in AttributeProto.AttributeType.items()
               if hasattr(defs.OpSchema.AttrType, name)}

REBUILD = "re-export the model (onnx.checker.check_model finds the same problem)"
_QONNX_ARITY = {"Quant": 4, "IntQuant": 4}


def node_name(node: onnx.NodeProto, k: int) -> str:
    """The node's name, or the one the importer gives an unnamed node."""
    return node.name or f"{node.op_type}_{k}"


def _diag(node: onnx.NodeProto, k: int, message: str, fix: str = REBUILD) -> Diagnostic:
    return Diagnostic(message, node_name(node, k), node.op_type, fix)


# ---------------------------------------------------------------- structure


def check_structure(graph: onnx.GraphProto) -> tuple[list[Diagnostic], list[int]]:
    """(problems, an order of the node indices in which every input is defined first)."""
    outer = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    producer: dict[str, int] = {}
    problems: list[Diagnostic] = []
    for k, n in enumerate(graph.node):
        for out in filter(None, n.output):
            if out in producer or out in outer:
                problems.append(_diag(n, k, f"writes '{out}', which is already defined"))
            producer.setdefault(out, k)
    for k, n in enumerate(graph.node):
        for name in filter(None, n.input):
            if name not in outer and name not in producer:
                problems.append(_diag(n, k, f"reads '{name}', which no node, graph input or "
                                            "initializer defines"))
    for o in graph.output:
        if o.name not in outer and o.name not in producer:
            problems.append(Diagnostic(f"graph output '{o.name}' is not computed by any node",
                                       o.name, "Output", REBUILD))
    if problems:
        return problems, []
    deps = [{producer[i] for i in n.input if i in producer} for n in graph.node]
    order = _topological(deps)
    if len(order) < len(deps):
        cycle = _a_cycle(deps, set(range(len(deps))) - set(order))
        names = " -> ".join(node_name(graph.node[k], k) for k in cycle)
        first = graph.node[cycle[0]]
        return [_diag(first, cycle[0], f"the graph has a cycle: {names}",
                      "re-export the model; an ONNX graph must be acyclic")], []
    return [], order


def _topological(deps: list[set[int]]) -> list[int]:
    """Kahn's algorithm, ties broken by file order; nodes on or after a cycle are left out."""
    waiting = [len(d) for d in deps]
    users: list[list[int]] = [[] for _ in deps]
    for k, d in enumerate(deps):
        for j in d:
            users[j].append(k)
    ready = deque(k for k, w in enumerate(waiting) if w == 0)
    order = []
    while ready:
        k = ready.popleft()
        order.append(k)
        for u in users[k]:
            waiting[u] -= 1
            if waiting[u] == 0:
                ready.append(u)
    return order


def _a_cycle(deps: list[set[int]], stuck: set[int]) -> list[int]:
    """Walk back through stuck producers until a node repeats: that loop is a cycle."""
    path: list[int] = []
    seen: dict[int, int] = {}
    k = min(stuck)
    while k not in seen:
        seen[k] = len(path)
        path.append(k)
        k = min(d for d in deps[k] if d in stuck)
    loop = path[seen[k]:]
    loop.reverse()  # producer first
    first = loop.index(min(loop))  # start at the node that comes first in the file
    loop = loop[first:] + loop[:first]
    return loop + [loop[0]]


# ---------------------------------------------------------------- schemas


def check_schemas(graph: onnx.GraphProto, opset: int, known: set[str]) -> list[Diagnostic]:
    """Each node of an op in `known` against its ONNX schema at `opset`."""
    problems = []
    for k, n in enumerate(graph.node):
        for a in n.attribute:
            if a.type == AttributeProto.UNDEFINED:
                problems.append(_diag(n, k, f"attribute '{a.name}' has no type"))
        if n.domain in QONNX_DOMAINS and n.op_type in _QONNX_ARITY:
            problems += _check_qonnx(n, k)
        elif n.domain in ("", "ai.onnx") and n.op_type in known:
            problems += _check_node(n, k, opset)
    return problems


def _check_qonnx(n: onnx.NodeProto, k: int) -> list[Diagnostic]:
    want = _QONNX_ARITY[n.op_type]
    if len(n.input) != want or not all(n.input) or len(n.output) != 1:
        return [_diag(n, k, f"has {len(n.input)} input(s) and {len(n.output)} output(s); "
                            f"QONNX {n.op_type} takes {want} (x, scale, zero point, bit width) "
                            "and gives 1")]
    return []


def _check_node(n: onnx.NodeProto, k: int, opset: int) -> list[Diagnostic]:
    try:
        schema = defs.get_schema(n.op_type, opset, "")
    except defs.SchemaError:
        return [_diag(n, k, f"{n.op_type} does not exist in opset {opset}",
                      "export with an opset that has this op")]
    found = []
    if not schema.min_input <= len(n.input) <= schema.max_input:
        found.append(_count(n, k, "input", len(n.input), schema.min_input, schema.max_input))
    if not schema.min_output <= len(n.output) <= schema.max_output:
        found.append(_count(n, k, "output", len(n.output), schema.min_output,
                            schema.max_output))
    single = defs.OpSchema.FormalParameterOption.Single
    for idx, param in enumerate(schema.inputs):
        if param.option == single and idx < len(n.input) and not n.input[idx]:
            found.append(_diag(n, k, f"required input {idx} ({param.name}) is empty"))
    given = {a.name: a for a in n.attribute}
    for name, spec in schema.attributes.items():
        a = given.get(name)
        if a is None:
            if spec.required:
                found.append(_diag(n, k, f"required attribute '{name}' is missing"))
        elif a.type != AttributeProto.UNDEFINED and a.type != _ATTR_TYPES[spec.type]:
            want = AttributeProto.AttributeType.Name(_ATTR_TYPES[spec.type])
            found.append(_diag(n, k, f"attribute '{name}' is "
                                     f"{AttributeProto.AttributeType.Name(a.type)}, not {want}"))
    return found


def _count(n: onnx.NodeProto, k: int, what: str, got: int, lo: int, hi: int) -> Diagnostic:
    want = str(lo) if lo == hi else f"{lo} to {hi}" if hi < 2**31 - 1 else f"{lo} or more"
    return _diag(n, k, f"has {got} {what}(s); {n.op_type} takes {want}")
