"""Constant folding: a node whose inputs are all constants is run once at import, with
ONNX's reference evaluator, within a memory budget. Layout ops on quantized weights are
applied to the integer codes and the scales alike."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx

from snncc.frontend import fold_budget
from snncc.frontend.context import Context, QConst, Value
from snncc.intmath import compress

# ops that are only ever folded (no handler: on an activation they are refused) -> README line
FOLDED_ONLY: dict[str, str] = {
    "Constant": "folded", "ConstantOfShape": "folded", "Range": "folded",
    "Expand": "folded on constants",
}
# ops applied to a quantized weight's codes and scales alike
_QCONST_LAYOUT = ("Transpose", "Reshape", "Squeeze", "Unsqueeze", "Identity")


def fold(cx: Context, node: onnx.NodeProto) -> None:
    """Bind the node's outputs to their constant values."""
    feeds = {i: cx.env[i] for i in node.input if i}
    if any(isinstance(v, QConst) for v in feeds.values()):
        return _fold_qconst(cx, node, feeds)
    arrays = {k: v for k, v in feeds.items() if isinstance(v, np.ndarray)}
    _check_fold_size(cx, node, arrays)
    outs = _evaluate(cx, node, arrays)
    for name, value in zip(node.output, outs, strict=False):
        if name:
            cx.env[name] = np.asarray(value)


def _check_fold_size(cx: Context, node: onnx.NodeProto, feeds: dict[str, np.ndarray]) -> None:
    """Refuse a fold whose result would not fit the memory budget, before making it."""
    size = fold_budget.output_size(node, feeds, list(cx.model.opset_import))
    if size is not None and size[1] > fold_budget.BUDGET:
        cx.fail(f"folding this constant would make a tensor of shape {size[0]} "
                f"({fold_budget.describe(size[1])}), more than snncc's budget of "
                f"{fold_budget.describe(fold_budget.BUDGET)} for one constant",
                "check the export: no layer snncc compiles needs a constant this large")


def _evaluate(cx: Context, node: onnx.NodeProto, feeds: dict[str, np.ndarray]) -> list[Any]:
    """Run one node on constants with ONNX's reference evaluator."""
    from onnx.reference import ReferenceEvaluator

    try:
        return list(ReferenceEvaluator(node).run(None, feeds))
    except Exception as e:  # noqa: BLE001 - any evaluator failure is the model's problem
        cx.fail(f"cannot fold this constant expression ({type(e).__name__}: {e})",
                "simplify the export")


def _fold_qconst(cx: Context, node: onnx.NodeProto, feeds: dict[str, Value]) -> None:
    """Layout ops on quantized weights: apply them to the codes and the scales alike."""
    if node.op_type not in _QCONST_LAYOUT:
        cx.fail(f"{node.op_type} of a quantized weight is not supported",
                "export weights already laid out for MatMul/Conv")
    q = feeds[node.input[0]]
    rest = {k: v for k, v in feeds.items() if k != node.input[0] and isinstance(v, np.ndarray)}
    if not isinstance(q, QConst) or len(rest) < len(feeds) - 1:
        cx.fail(f"{node.op_type} with a quantized operand other than its data",
                "export shapes and axes as plain constants")
    scale = np.broadcast_to(q.scale, q.values.shape)
    values = _evaluate(cx, node, {**rest, node.input[0]: q.values})[0]
    scale = _evaluate(cx, node, {**rest, node.input[0]: np.ascontiguousarray(scale)})[0]
    cx.bind(QConst(np.asarray(values), compress(np.asarray(scale))))
