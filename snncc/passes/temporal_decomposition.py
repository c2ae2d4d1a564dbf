"""temporal-decomposition: products and max-pools of spike counts as per-step updates.

MatMul of two spike tensors -> TDMatMul: ΔP(t) = S_A(t)·C_B(t) + C_A(t-1)·S_B(t), whose
sum over the window is exactly C_A·C_B (binary x integer: additions only).
MaxPool of spikes -> TDMaxPool: out(t) = maxpool(C(t)) - maxpool(C(t-1)), a binary spike
whose count is exactly maxpool(C). The integer reference is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from snncc import ops as o
from snncc.ir import Graph
from snncc.passes.base import Pass, PassResult, register


@register
@dataclass(frozen=True)
class TemporalDecomposition(Pass):
    name = "temporal-decomposition"

    def run(self, graph: Graph) -> PassResult:
        changed = False
        for n in graph.ops(o.MatMul, o.MaxPool):
            if any(graph.node(i).kind != o.CODES for i in n.inputs):
                continue
            if isinstance(n.op, o.MatMul):
                graph.replace_op(n.name, o.TDMatMul())
            else:
                pool = n.op_as(o.MaxPool)
                graph.replace_op(n.name, o.TDMaxPool(pool.kernel, pool.strides, pool.pads))
            changed = True
        return PassResult(graph, changed)
