"""absorb-relu: drop a ReLU that an unsigned quantizer makes redundant.

clip(round(relu(x)/s), 0, L) = clip(round(x/s), 0, L) for s > 0, so a ReLU whose every
user is an unsigned quantizer (lo = zero point = 0) goes; so does a ReLU of an unsigned
quantizer's output (already >= 0). A ReLU that remains has no quantizer to become, and
quant-to-neuron refuses it.
"""

from __future__ import annotations

from dataclasses import dataclass

from snncc import ops as o
from snncc.ir import Graph, Node
from snncc.passes._rewrite import bypass
from snncc.passes.base import Pass, PassResult, register


def _unsigned(n: Node) -> bool:
    return isinstance(n.op, o.QuantAct) and n.op.lo >= n.op.zero_point


@register
@dataclass(frozen=True)
class AbsorbRelu(Pass):
    name = "absorb-relu"

    def run(self, graph: Graph) -> PassResult:
        changed = False
        for relu in graph.ops(o.Relu):
            n = graph.node(relu.name)  # its input may be a ReLU bypassed a moment ago
            users = graph.users(n.name)
            redundant_after = users and n.name not in graph.outputs and all(
                _unsigned(u) for u in users)
            if redundant_after or _unsigned(graph.node(n.inputs[0])):
                bypass(graph, n)
                changed = True
        return PassResult(graph, changed)
