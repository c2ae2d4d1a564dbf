"""fold-batchnorm: BatchNorm -> per-channel Affine, folded into float weights when it can.

y = gamma*(x-mean)/sqrt(var+eps) + beta is an Affine; after a Dense/Conv with float
weights its multiplier moves into the weights (W' = diag(gamma/sigma) W) and its offset
stays as the bias. After quantized weights the Affine stays: quant-to-neuron folds it into
the per-channel thresholds, which keeps the integer weights exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from snncc import ops as o
from snncc.intmath import compress
from snncc.ir import Graph
from snncc.passes._rewrite import full_rank, per_axis_only, single_user
from snncc.passes.base import Pass, PassResult, register


@register
@dataclass(frozen=True)
class FoldBatchNorm(Pass):
    name = "fold-batchnorm"

    def run(self, graph: Graph) -> PassResult:
        changed = False
        for n in graph.ops(o.BatchNorm):
            mul, add = n.op_as(o.BatchNorm).as_affine(len(n.shape))
            graph.replace_op(n.name, o.Affine(compress(mul), compress(add)))
            changed = True
        for n in graph.ops(o.Affine):
            changed |= _fold_into_weights(graph, n.name)
        return PassResult(graph, changed)


def _fold_into_weights(graph: Graph, name: str) -> bool:
    """Dense/Conv(float W) -> Affine(m, a)  ==>  Dense/Conv(W*m) -> Affine(1, a)."""
    n = graph.node(name)
    affine = n.op_as(o.Affine)
    src = graph.node(n.inputs[0])
    if not isinstance(src.op, o.Dense | o.Conv) or src.op.weight.quantized:
        return False
    if single_user(graph, src.name) is None or np.all(affine.mul == 1):
        return False
    rank = len(n.shape)
    out_axis = rank - 1 if isinstance(src.op, o.Dense) else 0
    if not per_axis_only(affine.mul, rank, out_axis):
        return False
    m = full_rank(affine.mul, rank)
    m = np.broadcast_to(m, (1,) * out_axis + (n.shape[out_axis],) + (1,) * (rank - out_axis - 1))
    m = m.ravel()
    w = src.op.weight.values
    w = w * (m if isinstance(src.op, o.Dense) else m.reshape(-1, 1, 1, 1))
    graph.replace_op(src.name, _with_weight(src.op, o.Weight(w, None)))
    graph.replace_op(name, o.Affine(np.ones(()), affine.add))
    return True


def _with_weight(op: o.Dense | o.Conv, w: o.Weight) -> o.Dense | o.Conv:
    if isinstance(op, o.Dense):
        return o.Dense(w)
    return o.Conv(w, op.strides, op.pads, op.dilations, op.group)
