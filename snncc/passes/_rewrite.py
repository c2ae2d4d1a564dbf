"""Small graph-surgery helpers shared by the canonical passes."""

from __future__ import annotations

import numpy as np

from snncc import ops as o
from snncc.intmath import compress
from snncc.ir import Graph, Node


def single_user(graph: Graph, name: str) -> Node | None:
    """The only consumer of `name`, if it has exactly one and is not a graph output."""
    users = graph.users(name)
    if len(users) != 1 or name in graph.outputs:
        return None
    return users[0]


def full_rank(c: np.ndarray, rank: int) -> np.ndarray:
    """A broadcastable constant with leading 1-axes added up to `rank`."""
    c = np.asarray(c, np.float64)
    return c.reshape((1,) * (rank - c.ndim) + c.shape)


def is_identity_affine(op: o.Affine) -> bool:
    return bool(np.all(op.mul == 1) and np.all(op.add == 0))


def merge_affines(first: o.Affine, second: o.Affine) -> o.Affine:
    """second(first(x)) as one Affine."""
    return o.Affine(compress(np.asarray(first.mul * second.mul)),
                    compress(np.asarray(first.add * second.mul + second.add)))


def bypass(graph: Graph, node: Node) -> None:
    """Remove a one-operand node, wiring its users to its operand."""
    graph.replace_uses(node.name, node.inputs[0])
    graph.remove(node.name)


def per_axis_only(c: np.ndarray, rank: int, axis: int) -> bool:
    """True if constant `c` varies along `axis` at most (of a value of `rank` axes)."""
    c = full_rank(c, rank)
    return all(d == 1 for i, d in enumerate(c.shape) if i != axis % rank)
