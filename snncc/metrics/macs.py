"""The source ANN's multiply-accumulates, counted on the ONNX graph itself.

Deliberately independent of the SNN IR (an independent check of the per-layer counts):
ONNX shape inference with every symbolic input dimension pinned to 1, then for each
Conv, Gemm and MatMul node ``MACs = output elements x reduction length``
(Conv: ``C_in/group x kernel``; Gemm/MatMul: the contracted axis). Counts are per input
sample; other ops (BatchNorm, adds, pools, quantizers) are not MACs and are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from snncc.errors import Diagnostic, SnnccError

MAC_OPS = ("Conv", "Gemm", "MatMul")


@dataclass
class AnnMacs:
    total: int = 0
    layers: list[dict] = field(default_factory=list)  # {"node", "op", "macs"}
    unknown: list[str] = field(default_factory=list)  # nodes whose shapes were not inferred

    def to_json(self) -> dict:
        return {"total": self.total, "layers": self.layers, "unknown": self.unknown}


def _pin_inputs(model: onnx.ModelProto, sample: tuple[int, ...] | None) -> int:
    """Pin free input dims to 1 (the first input to [1, *sample] if given); returns the
    batch size baked into the first input."""
    batch = 1
    inits = {i.name for i in model.graph.initializer}
    for k, inp in enumerate(i for i in model.graph.input if i.name not in inits):
        dims = inp.type.tensor_type.shape.dim
        for d, dim in enumerate(dims):
            fixed = dim.HasField("dim_value") and dim.dim_value > 0
            if k == 0 and d == 0 and fixed:
                batch = dim.dim_value
            elif k == 0 and d > 0 and sample is not None and len(sample) == len(dims) - 1:
                dim.Clear()
                dim.dim_value = sample[d - 1]
            elif not fixed:
                dim.Clear()
                dim.dim_value = 1
    return batch


def _shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    g = model.graph
    shapes = {i.name: tuple(i.dims) for i in g.initializer}
    for v in list(g.input) + list(g.value_info) + list(g.output):
        dims = v.type.tensor_type.shape.dim
        if v.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in dims):
            shapes[v.name] = tuple(d.dim_value for d in dims)
    return shapes


def _node_macs(node: onnx.NodeProto, shapes: dict[str, tuple[int, ...]]) -> int | None:
    a, w = (shapes.get(i) for i in node.input[:2])
    out = shapes.get(node.output[0])
    if out is None or a is None or w is None:
        return None
    if node.op_type == "Conv":
        return int(np.prod(out)) * int(np.prod(w[1:]))  # W is [O, C_in/group, *kernel]
    if node.op_type == "Gemm":
        trans_a = next((at.i for at in node.attribute if at.name == "transA"), 0)
        return int(np.prod(out)) * int(a[0] if trans_a else a[-1])
    return int(np.prod(out)) * int(a[-1])


def ann_macs(path: str | Path, sample: tuple[int, ...] | None = None) -> AnnMacs:
    """MACs per inference of the ONNX model at `path` (`sample`: the shape of one input
    sample, for models that leave dimensions free)."""
    try:
        model = onnx.load(str(path))
    except Exception as e:  # noqa: BLE001 - protobuf / file errors
        raise SnnccError(Diagnostic(f"cannot read the ONNX model ({e})", file=str(path),
                                    fix="pass the model the build was compiled from")) from None
    batch = _pin_inputs(model, sample)
    model = onnx.shape_inference.infer_shapes(model, data_prop=True)
    shapes = _shapes(model)
    result = AnnMacs()
    for node in model.graph.node:
        if node.op_type not in MAC_OPS:
            continue
        macs = _node_macs(node, shapes)
        if macs is None:
            result.unknown.append(node.name)
            continue
        result.layers.append({"node": node.name, "op": node.op_type, "macs": macs // batch})
        result.total += macs // batch
    return result
