"""canonicalize: the cleanups that put every export style into one shape.

Rewrites, repeated to a fixed point:
- merge chains of Affine, drop identity Affine/Reshape/Transpose, compose Transposes;
- move an Affine's multiplier back over rewiring (Transpose, Reshape, Take) and sums
  (ReduceSum, SumPool), so that it sits right after the Dense/Conv that made the value
  (BN between Transposes, a scale before or after a mean: all end up the same);
- sink a ReduceSum below the Dense that reads it (Dense(sum x) = sum Dense(x)), so that a
  mean over tokens before the head leaves the head reading spikes; a mean over H and W
  (GlobalAveragePool, ReduceMean over the spatial axes) the same way, its positions made
  tokens first;
- drop a quantizer that repeats the one before it (onnxruntime's quantizer puts one after
  every Transpose, Reshape and MaxPool, with the scale and zero point of its input);
- quantize before a max-pool rather than after it (Q(max x) = max Q(x): Q is monotone), so
  that the pool reads spikes (onnxruntime's QOperator format quantizes after the pool).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from snncc import ops as o
from snncc.intmath import compress
from snncc.ir import Graph, Node
from snncc.passes._cursor import rewrite_to_fixed_point
from snncc.passes._rewrite import bypass, full_rank, is_identity_affine, merge_affines, single_user
from snncc.passes.base import Pass, PassResult, register

_MOVABLE = (o.Transpose, o.Reshape, o.Take, o.ReduceSum, o.SumPool)


@register
@dataclass(frozen=True)
class Canonicalize(Pass):
    name = "canonicalize"

    def run(self, graph: Graph) -> PassResult:
        # the first rule that matches at the first node in topological order, repeated
        return PassResult(graph, rewrite_to_fixed_point(graph, _RULES))


def _drop_identity(graph: Graph, n: Node) -> bool:
    src = graph.node(n.inputs[0]) if n.inputs else None
    identity = (
        isinstance(n.op, o.Affine) and is_identity_affine(n.op)
        or isinstance(n.op, o.Transpose) and n.op.perm == tuple(range(len(n.op.perm)))
        or isinstance(n.op, o.Reshape) and src is not None and src.shape == n.shape
    )
    if not identity or n.name in graph.outputs and n.inputs[0] in graph.inputs:
        return False
    bypass(graph, n)
    return True


def _merge_affine(graph: Graph, n: Node) -> bool:
    if not isinstance(n.op, o.Affine):
        return False
    src = graph.node(n.inputs[0])
    if not isinstance(src.op, o.Affine) or single_user(graph, src.name) is None:
        return False
    graph.replace_op(n.name, merge_affines(src.op, n.op), src.inputs)
    graph.remove(src.name)
    return True


def _compose_transpose(graph: Graph, n: Node) -> bool:
    if not isinstance(n.op, o.Transpose):
        return False
    src = graph.node(n.inputs[0])
    if not isinstance(src.op, o.Transpose) or single_user(graph, src.name) is None:
        return False
    perm = tuple(src.op.perm[p] for p in n.op.perm)
    graph.replace_op(n.name, o.Transpose(perm), src.inputs)
    graph.remove(src.name)
    return True


def _hoist_affine(graph: Graph, n: Node) -> bool:
    """P(x) -> Affine(m, a)  ==>  Affine(m', a')(x) -> P  (a stays behind for sums)."""
    if not isinstance(n.op, o.Affine) or np.all(n.op.mul == 1):
        return False
    p = graph.node(n.inputs[0])
    if not isinstance(p.op, _MOVABLE) or single_user(graph, p.name) is None:
        return False
    x = graph.node(p.inputs[0])
    mapped = _map_back(p, x.shape, n.op)
    if mapped is None:
        return False
    before, after = mapped
    new = graph.add(graph.fresh(f"{n.name}/hoisted"), before, (x.name,), origin=n.origin)
    graph.replace_op(p.name, p.op, (new,) + p.inputs[1:])
    if after is None:
        bypass(graph, n)
    else:
        graph.replace_op(n.name, after)
    return True


def _map_back(p: Node, in_shape, aff: o.Affine) -> tuple[o.Affine, o.Affine | None] | None:
    """The Affine on P's input equal to `aff` on P's output (and what stays after)."""
    rank = len(p.shape)
    mul, add = full_rank(aff.mul, rank), full_rank(aff.add, rank)
    op = p.op
    if isinstance(op, o.Transpose):
        inv = tuple(np.argsort(op.perm))
        return o.Affine(compress(mul.transpose(inv)), compress(add.transpose(inv))), None
    if isinstance(op, o.Reshape):
        full = [compress(np.broadcast_to(c, p.shape).reshape(in_shape)) for c in (mul, add)]
        return o.Affine(full[0], full[1]), None
    if isinstance(op, o.Take):
        if mul.shape[op.axis] != 1 or add.shape[op.axis] != 1 or np.ndim(op.indices) != 1:
            return None
        return o.Affine(compress(mul), compress(add)), None
    if isinstance(op, o.ReduceSum):
        if not op.keepdims:
            for a in sorted(x % len(in_shape) for x in op.axes):
                mul = np.expand_dims(mul, a)
        keep = o.Affine(np.ones(()), compress(add)) if np.any(add != 0) else None
        return o.Affine(compress(mul), np.zeros(())), keep
    if isinstance(op, o.SumPool):
        if mul.shape[1] != 1 or mul.shape[2] != 1:
            return None
        keep = o.Affine(np.ones(()), compress(add)) if np.any(add != 0) else None
        return o.Affine(compress(mul), np.zeros(())), keep
    return None


def _sink_reduce(graph: Graph, n: Node) -> bool:
    """Dense(ReduceSum(x)) ==> ReduceSum(Dense(x)) when the summed axes exclude the last."""
    if not isinstance(n.op, o.Dense):
        return False
    r = graph.node(n.inputs[0])
    if not isinstance(r.op, o.ReduceSum) or single_user(graph, r.name) is None:
        return False
    rank = len(graph.node(r.inputs[0]).shape)
    if (rank - 1) in {a % rank for a in r.op.axes}:
        return False
    dense = graph.add(graph.fresh(f"{n.name}/per_token"), n.op, r.inputs, origin=n.origin)
    graph.replace_op(n.name, r.op, (dense,))
    graph.remove(r.name)
    return True


def _sink_spatial_reduce(graph: Graph, n: Node) -> bool:
    """Dense(squeeze(ReduceSum(x))) summed over every axis of x but the first or the last
    (C) ==> ReduceSum_0(Dense(x as [positions, C])): one row a position, as tokens are."""
    src = graph.node(n.inputs[0]) if isinstance(n.op, o.Dense) else None
    if src is None or len(src.shape) != 1:
        return False
    squeeze = src if isinstance(src.op, o.Reshape) else None
    r = graph.node(src.inputs[0]) if squeeze else src
    if not isinstance(r.op, o.ReduceSum) or any(
            single_user(graph, m.name) is None for m in (r, squeeze) if m is not None):
        return False
    shape = graph.node(r.inputs[0]).shape
    kept = [a for a in range(len(shape)) if a not in {x % len(shape) for x in r.op.axes}]
    if len(shape) < 2 or kept not in ([0], [len(shape) - 1]):
        return False
    c, positions = shape[kept[0]], int(np.prod(shape)) // shape[kept[0]]
    rows = r.inputs[0]
    if kept == [0]:  # [C, H, W] -> [C, H*W] -> [H*W, C], as a tokenizer makes tokens
        rows = graph.add(graph.fresh(f"{n.name}/by_channel"), o.Reshape((c, positions)),
                         (rows,), origin=n.origin)
        rows = graph.add(graph.fresh(f"{n.name}/positions"), o.Transpose((1, 0)), (rows,),
                         origin=n.origin)
    else:
        rows = graph.add(graph.fresh(f"{n.name}/positions"), o.Reshape((positions, c)),
                         (rows,), origin=n.origin)
    dense = graph.add(graph.fresh(f"{n.name}/per_position"), n.op, (rows,), origin=n.origin)
    graph.replace_op(n.name, o.ReduceSum((0,), False), (dense,))
    for m in (squeeze, r):
        if m is not None:
            graph.remove(m.name)
    return True


_KEEP_CODES = (o.Reshape, o.Transpose, o.Take, o.MaxPool)  # move codes, change none


def _drop_requantize(graph: Graph, n: Node) -> bool:
    """Q(rewire(Q(x))) ==> rewire(Q(x)) when the second Q has the first's scale and zero
    point and a range at least as wide: its input is already on its grid, in range."""
    if not isinstance(n.op, o.QuantAct) or n.name in graph.outputs or np.size(n.op.scale) != 1:
        return False
    src = graph.node(n.inputs[0])
    while isinstance(src.op, _KEEP_CODES) and len(src.inputs) == 1:
        src = graph.node(src.inputs[0])
    q = src.op
    if not isinstance(q, o.QuantAct) or np.size(q.scale) != 1:
        return False
    same = float(q.scale) == float(n.op.scale) and q.zero_point == n.op.zero_point
    if not same or q.lo < n.op.lo or q.hi > n.op.hi:
        return False
    bypass(graph, n)
    return True


def _quantize_before_pool(graph: Graph, n: Node) -> bool:
    """MaxPool -> QuantAct  ==>  QuantAct -> MaxPool (scale constant inside a window)."""
    if not isinstance(n.op, o.QuantAct):
        return False
    pool = graph.node(n.inputs[0])
    if not isinstance(pool.op, o.MaxPool) or single_user(graph, pool.name) is None:
        return False
    if full_rank(n.op.scale, 3).shape[1:] != (1, 1):
        return False
    q = graph.add(graph.fresh(f"{n.name}/before_pool"), n.op, pool.inputs, origin=n.origin)
    graph.replace_op(pool.name, pool.op, (q,))
    bypass(graph, n)
    return True


_RULES = (_drop_identity, _merge_affine, _compose_transpose, _hoist_affine, _sink_reduce,
          _sink_spatial_reduce, _drop_requantize, _quantize_before_pool)
