"""How large a folded constant would be, asked of ONNX shape inference before it is computed.

A crafted model can ask for ``ConstantOfShape([10**11])`` or an ``Expand`` to terabytes;
folding it would exhaust memory. Shape inference on the one node (the small constant
operands given as values, the rest as shapes) tells the output's size without making it.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference

BUDGET = 1 << 28  # bytes one folded constant may take (256 MiB)
_AS_VALUE = 1024  # operands up to this many elements are given to inference as values


def output_size(node: onnx.NodeProto, feeds: dict[str, np.ndarray],
                opsets: list[onnx.OperatorSetIdProto]) -> tuple[list[int], int] | None:
    """(shape, bytes) of the node's largest output; None if inference cannot tell."""
    try:
        inferred = shape_inference.infer_shapes(_one_node(node, feeds, opsets), data_prop=True)
    except Exception:  # noqa: BLE001 - inference gave up; the fold itself will say why
        return None
    sizes = [_size(v.type.tensor_type) for v in inferred.graph.value_info
             if v.name in node.output]
    known = [s for s in sizes if s is not None]
    return max(known, key=lambda s: s[1]) if known else None


def _one_node(node: onnx.NodeProto, feeds: dict[str, np.ndarray],
              opsets: list[onnx.OperatorSetIdProto]) -> onnx.ModelProto:
    values, shapes = [], []
    for name, value in feeds.items():
        value = np.asarray(value)
        if value.size <= _AS_VALUE:
            values.append(numpy_helper.from_array(value, name))
        else:
            elem = helper.np_dtype_to_tensor_dtype(value.dtype)
            shapes.append(helper.make_tensor_value_info(name, elem, value.shape))
    graph = helper.make_graph([node], "fold", shapes, [], initializer=values)
    return helper.make_model(graph, opset_imports=list(opsets))


def _size(t: onnx.TypeProto.Tensor) -> tuple[list[int], int] | None:
    if not t.HasField("shape") or not all(d.HasField("dim_value") for d in t.shape.dim):
        return None
    dims = [d.dim_value for d in t.shape.dim]
    try:
        itemsize = helper.tensor_dtype_to_np_dtype(t.elem_type).itemsize
    except (KeyError, TypeError):
        itemsize = 8
    return dims, math.prod(dims) * itemsize


def describe(nbytes: int) -> str:
    """1.5 GiB, 373 GiB, 12 MiB."""
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if nbytes >= 1 << shift:
            return f"{nbytes / (1 << shift):.3g} {unit}"
    return f"{nbytes} bytes"
