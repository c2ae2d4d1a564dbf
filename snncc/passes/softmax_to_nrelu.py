"""softmax-to-nrelu: attention normalization in the spike-driven form ReLU(x)/N.

Recognizes NReLU, ``Relu(x) * c`` with c > 0 a scalar (N = 1/c when the attention map is
N keys wide), in either order, and canonicalizes it to ``Relu(x * c)`` so that the scale
folds into the next threshold. A real ``Softmax`` is refused, or, with
``replace_softmax``, replaced by ``Relu(x) * (1/N)`` with a warning: accuracy changes
unless the model was trained with NReLU.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from snncc import ops as o
from snncc.errors import Diagnostic, SnnccError
from snncc.frontend.support import UNSPIKEABLE
from snncc.ir import Graph
from snncc.passes._rewrite import single_user
from snncc.passes.base import Pass, PassResult, register


@register
@dataclass(frozen=True)
class SoftmaxToNRelu(Pass):
    name = "softmax-to-nrelu"
    replace_softmax: bool = False

    def run(self, graph: Graph) -> PassResult:
        softmaxes = graph.ops(o.Softmax)
        if softmaxes and not self.replace_softmax:
            why, fix = UNSPIKEABLE["Softmax"]
            raise SnnccError([Diagnostic(f"Softmax {why}", n.origin, "Softmax", fix)
                              for n in softmaxes])
        for n in softmaxes:
            keys = n.shape[n.op_as(o.Softmax).axis]
            warnings.warn(f"Softmax '{n.origin}' replaced by ReLU(x)/{keys}: accuracy changes "
                          "unless the model was trained with NReLU", stacklevel=2)
            relu = graph.add(graph.fresh(f"{n.name}/relu"), o.Relu(), n.inputs, origin=n.origin)
            graph.replace_op(n.name, o.Affine(np.asarray(1.0 / keys), np.zeros(())), (relu,))
        changed = bool(softmaxes)
        for n in graph.ops(o.Relu):
            changed |= _scale_inside(graph, n.name)
        graph.meta["nrelu"] = _recognized(graph)
        return PassResult(graph, changed)


def _positive_scalar_scale(op: o.Op) -> bool:
    return (isinstance(op, o.Affine) and np.size(op.mul) == 1 and float(np.ravel(op.mul)[0]) > 0
            and bool(np.all(op.add == 0)))


def _scale_inside(graph: Graph, relu: str) -> bool:
    """Relu(x) -> Affine(c > 0)  ==>  Affine(c)(x) -> Relu. The ReLU's value is now the
    scaled one: its origin becomes the scale's source node (where calibration found a
    quantizer on it, that is the source tensor it quantizes)."""
    scale = single_user(graph, relu)
    if scale is None or not _positive_scalar_scale(scale.op):
        return False
    r = graph.node(relu)
    graph.replace_uses(scale.name, relu)
    graph.replace_op(scale.name, scale.op, r.inputs)
    graph.replace_op(relu, o.Relu(), (scale.name,), origin=scale.origin)
    return True


def _recognized(graph: Graph) -> list[dict[str, object]]:
    """NReLU sites: a product of activations, scaled by c > 0, then ReLU or a quantizer."""
    found = []
    for n in graph.ops(o.MatMul):
        user = single_user(graph, n.name)
        if user is None or not _positive_scalar_scale(user.op):
            continue
        keys = n.shape[-1]
        c = float(np.ravel(user.op_as(o.Affine).mul)[0])
        found.append({"node": n.origin, "keys": keys, "scale": c,
                      "extra_factor": c * keys})
    return found
