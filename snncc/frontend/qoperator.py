"""onnxruntime's QOperator format -> QDQ: each integer kernel written as what it computes.

``QLinearConv(x, xs, xz, w, ws, wz, ys, yz, B)`` is ``Q(Conv(DQ(x), DQ(w), DQ(B)), ys, yz)``
(the int32 bias has scale ``xs*ws``); QLinearMatMul, QLinearAdd, QLinearMul,
QLinearGlobalAveragePool, QLinearAveragePool and QGemm likewise. Ops that QOperator models
run on integer tensors (Transpose, Reshape, MaxPool, ...) keep the codes: they become
``op(DQ(x))`` requantized with the same scale and zero point, which canonicalize drops
again. The importer then reads the model as any QCDQ model. The rewritten model names
each new DequantizeLinear output ``<integer tensor>/real``; ``codes_of`` maps it back to
the integer tensor of the source model (``compare`` asks onnxruntime for that one).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

MS = "com.microsoft"
# op -> (positions of (x, scale, zero point) triples read, (scale, zp) of the output, float op)
_KERNELS = {
    ("", "QLinearConv"): (((0, 1, 2), (3, 4, 5)), (6, 7), "Conv"),
    ("", "QLinearMatMul"): (((0, 1, 2), (3, 4, 5)), (6, 7), "MatMul"),
    (MS, "QLinearAdd"): (((0, 1, 2), (3, 4, 5)), (6, 7), "Add"),
    (MS, "QLinearMul"): (((0, 1, 2), (3, 4, 5)), (6, 7), "Mul"),
    (MS, "QLinearGlobalAveragePool"): (((0, 1, 2),), (3, 4), "GlobalAveragePool"),
    (MS, "QLinearAveragePool"): (((0, 1, 2),), (3, 4), "AveragePool"),
    (MS, "QGemm"): (((0, 1, 2), (3, 4, 5)), (7, 8), "Gemm"),
}
QOPERATOR_KERNELS = tuple(op for _, op in _KERNELS)
QOPERATOR_BECOMES = ("onnxruntime's QOperator kernel, read as DequantizeLinear -> op -> "
                     "QuantizeLinear (what it computes)")
# ops that move or select codes without changing them (on integer tensors in QOperator)
_KEEP_CODES = {"Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "MaxPool", "Slice",
               "Gather", "Identity"}


def has_qoperator(model: onnx.ModelProto) -> bool:
    return any((n.domain if n.domain != "ai.onnx" else "", n.op_type) in _KERNELS
               for n in model.graph.node)


@dataclass
class _Rewrite:
    model: onnx.ModelProto
    consts: dict[str, np.ndarray]
    qparams: dict[str, tuple[str, str]] = field(default_factory=dict)  # int tensor -> (s, zp)
    real: dict[str, str] = field(default_factory=dict)  # int tensor -> its DQ output
    codes_of: dict[str, tuple[str, int]] = field(default_factory=dict)
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    inits: list[onnx.TensorProto] = field(default_factory=list)

    def dequantized(self, t: str, scale: str, zp: str, axis: int | None = None) -> str:
        """DQ(t): the activation's one DequantizeLinear, or a constant's."""
        if t in self.real:
            return self.real[t]
        out = f"{t}/real"
        node = helper.make_node("DequantizeLinear", [t, scale, zp], [out],
                                name=f"{t}/DequantizeLinear")
        if axis is not None:
            node.attribute.append(helper.make_attribute("axis", axis))
        self.nodes.append(node)
        if t not in self.consts:
            self.real[t] = out
            self.codes_of[out] = (t, int(np.ravel(self.consts.get(zp, 0))[0]) if zp else 0)
        return out

    def quantized(self, real: str, out: str, scale: str, zp: str) -> None:
        self.nodes.append(helper.make_node("QuantizeLinear", [real, scale, zp], [out],
                                           name=f"{out}/QuantizeLinear"))
        self.qparams[out] = (scale, zp)

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(value, name))
        self.consts[name] = value
        return name


def to_qdq(model: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, tuple[str, int]]]:
    """The model with its QOperator kernels in QDQ form, and the new DequantizeLinear
    outputs -> (integer tensor of the source model, its zero point)."""
    rw = _Rewrite(model, {t.name: numpy_helper.to_array(t) for t in model.graph.initializer})
    for n in model.graph.node:
        _rewrite_node(rw, n)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.node[:]
    out.graph.node.extend(rw.nodes)
    out.graph.initializer.extend(rw.inits)
    return out, rw.codes_of


def _rewrite_node(rw: _Rewrite, n: onnx.NodeProto) -> None:
    key = (n.domain if n.domain != "ai.onnx" else "", n.op_type)
    if n.op_type == "QuantizeLinear":
        rw.qparams[n.output[0]] = (n.input[1], n.input[2] if len(n.input) > 2 else "")
    elif n.op_type == "DequantizeLinear" and n.input[0] in rw.qparams:
        rw.real.setdefault(n.input[0], n.output[0])
    if key in _KERNELS and not _attrs(n).get("channels_last", 0):  # NHWC pooling: refused
        return _kernel(rw, n, *_KERNELS[key])
    if n.op_type in _KEEP_CODES and n.input and n.input[0] in rw.qparams:
        scale, zp = rw.qparams[n.input[0]]
        x = rw.dequantized(n.input[0], scale, zp)
        rw.nodes.append(helper.make_node(n.op_type, [x, *n.input[1:]], [f"{n.output[0]}/pre"],
                                         name=n.name, **_attrs(n)))
        return rw.quantized(f"{n.output[0]}/pre", n.output[0], scale, zp)
    rw.nodes.append(n)


def _kernel(rw: _Rewrite, n: onnx.NodeProto, triples, out_q, float_op: str) -> None:
    ins = list(n.input) + [""] * 9
    reals = []
    for k, (x, s, z) in enumerate(triples):
        weight = ins[x] in rw.consts and np.size(rw.consts.get(ins[s], 0)) > 1
        axis = (0 if float_op == "Conv" else 1 if float_op == "MatMul" else
                (0 if _attrs(n).get("transB", 0) else 1)) if weight and k == 1 else None
        reals.append(rw.dequantized(ins[x], ins[s], ins[z], axis))
    bias = _bias(rw, n, ins, triples)
    attrs = {k: v for k, v in _attrs(n).items() if k != "channels_last"}  # 0 here
    pre = f"{n.output[0]}/pre"
    rw.nodes.append(helper.make_node(float_op, reals + bias, [pre], name=n.name, **attrs))
    scale, zp = ins[out_q[0]], ins[out_q[1]]
    if not scale:  # QGemm with a float output
        rw.nodes.append(helper.make_node("Identity", [pre], [n.output[0]]))
        return None
    return rw.quantized(pre, n.output[0], scale, zp)


def _bias(rw: _Rewrite, n: onnx.NodeProto, ins: list[str], triples) -> list[str]:
    """The int32 bias of QLinearConv (input 8) and QGemm (input 6), scale x_s * w_s."""
    k = {"QLinearConv": 8, "QGemm": 6}.get(n.op_type)
    if k is None or not ins[k]:
        return []
    (_, xs, _), (_, ws, _) = triples
    scale = (np.asarray(rw.consts[ins[xs]], np.float32) * np.asarray(rw.consts[ins[ws]],
                                                                     np.float32))
    if n.op_type == "QGemm":
        scale = scale * np.float32(_attrs(n).get("alpha", 1.0))
    s = rw.const(f"{ins[k]}/scale", scale.astype(np.float32))
    return [rw.dequantized(ins[k], s, "", 0 if scale.size > 1 else None)]


def _attrs(n: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in n.attribute}
