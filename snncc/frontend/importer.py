"""ONNX -> canonical IR: per-sample shapes, folded constants, one QuantAct per quantizer.

Every quantizer form becomes ``QuantAct`` (activations) or a quantized ``Weight``:
QCDQ (QuantizeLinear -> [Clip] -> DequantizeLinear) and QONNX ``Quant``/``IntQuant``.
Shape arithmetic that exporters leave behind is folded (the batch axis is taken as 1 while
folding, and must stay axis 0). Problems are collected, one per offending node, and raised
together.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from snncc import ops
from snncc.errors import Diagnostic, SnnccError, raise_if
from snncc.frontend import fold_budget
from snncc.frontend.loader import (
    QONNX_DOMAINS,
    initializers,
    load_model,
    real_inputs,
    type_name,
)
from snncc.frontend.qoperator import has_qoperator, to_qdq
from snncc.frontend.support import SUPPORTED, UNSPIKEABLE
from snncc.frontend.validate import check_schemas, check_structure, node_name
from snncc.intmath import Rounding, compress
from snncc.ir import Graph


class Skip(Exception):
    """This node cannot be imported; a diagnostic has been recorded."""


@dataclass(frozen=True)
class QConst:
    """A quantized constant: real = values * scale (zero point already subtracted)."""

    values: np.ndarray
    scale: np.ndarray


@dataclass(frozen=True)
class PendingQuant:
    """A QuantizeLinear output waiting for its DequantizeLinear."""

    x: str
    scale: np.ndarray
    zero_point: int
    lo: int
    hi: int
    axis: int


@dataclass(frozen=True)
class ClippedAct:
    """Clip(x, 0 or -inf, top) of an activation, waiting for the QuantizeLinear that
    takes `top` into its range (onnxruntime's quantizer leaves a ReLU6 so)."""

    x: str
    top: float


Value = str | np.ndarray | QConst | PendingQuant | ClippedAct
_INT_RANGES = {np.dtype(t): (int(np.iinfo(t).min), int(np.iinfo(t).max))
               for t in (np.uint8, np.int8, np.uint16, np.int16, np.int32)}
InputShape = tuple[int, ...] | dict[str, tuple[int, ...]] | None
_ONNX_INT_TYPES = {onnx.TensorProto.UINT8: np.dtype(np.uint8), onnx.TensorProto.INT8:
                   np.dtype(np.int8), onnx.TensorProto.UINT16: np.dtype(np.uint16),
                   onnx.TensorProto.INT16: np.dtype(np.int16)}
_QONNX_ROUNDING = {"ROUND": Rounding.HALF_EVEN, "FLOOR": Rounding.FLOOR,
                   "HALF_UP": Rounding.HALF_UP}


def import_onnx(path: str | Path, input_shape: InputShape = None) -> Graph:
    """Load `path` and translate it into the canonical IR.

    `input_shape` pins the shape of one sample (batch excluded) where the model leaves
    dimensions free: a tuple for a model with one input, or a dict by input name.
    """
    model = load_model(path)
    qoperator = has_qoperator(model)
    if qoperator:
        model, _ = to_qdq(model)
    try:
        graph = Importer(model, str(path), input_shape).run()
    except SnnccError as e:
        raise e.with_file(str(path)) from None
    if qoperator:
        graph.meta["qoperator"] = True
    return graph


class Importer:
    def __init__(self, model: onnx.ModelProto, path: str, input_shape: InputShape = None):
        self.model = model
        self.path = path
        self.input_shape = input_shape
        self.graph = Graph(Path(path).stem)
        self.env: dict[str, Value] = {}
        self.problems: list[Diagnostic] = []
        self.node: onnx.NodeProto | None = None

    # ------------------------------------------------------------ driver
    def run(self) -> Graph:
        self.env.update(initializers(self.model))
        order = self._check_graph()
        refused = self._check_op_types()
        poisoned = self._add_inputs()
        for k in order:
            node = self.model.graph.node[k]
            if not node.name:
                node.name = node_name(node, k)
            if k in refused or any(i in poisoned for i in node.input if i):
                poisoned.update(node.output)
                continue
            self.node = node
            try:
                self._import(node)
            except Skip:
                poisoned.update(node.output)
        self._add_outputs(poisoned)
        if self.problems:
            raise SnnccError(self.problems)
        self.graph.prune()
        return self.graph

    def _check_graph(self) -> list[int]:
        """Structure and schemas; the node order to import in. Raises if the graph is
        malformed (the handlers rely on what the ONNX spec promises about a node)."""
        g = self.model.graph
        problems, order = check_structure(g)
        opset = next(o.version for o in self.model.opset_import if o.domain in ("", "ai.onnx"))
        raise_if(problems + check_schemas(g, opset, set(SUPPORTED)))
        return order

    def _check_op_types(self) -> set[int]:
        """Record one diagnostic per node of an op snncc refuses; their indices."""
        refused = set()
        for k, node in enumerate(self.model.graph.node):
            if node.domain in QONNX_DOMAINS and node.op_type in ("Quant", "IntQuant"):
                continue
            if node.domain not in ("", "ai.onnx") or node.op_type not in SUPPORTED:
                why, fix = UNSPIKEABLE.get(node.op_type, (
                    "is not an op snncc can convert",
                    "rewrite it with the supported ops (see the README's table)"))
                if node.op_type == "Softmax":
                    continue  # a pass decides: refused unless --replace-softmax
                refused.add(k)
                self.problems.append(Diagnostic(f"{node.op_type} {why}", node_name(node, k),
                                                node.op_type, fix))
        return refused

    def _add_inputs(self) -> set[str]:
        """Add the graph inputs; the names of those that failed."""
        inputs = real_inputs(self.model)
        pins = self._pins([vi.name for vi in inputs])
        failed = set()
        for vi in inputs:
            failed.add(vi.name)
            t = vi.type.tensor_type
            if t.elem_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16,
                                   onnx.TensorProto.DOUBLE):
                self._fail(f"input '{vi.name}' has element type {type_name(t.elem_type)}, "
                           "not float", "export the model with a float input", node=vi.name,
                           op="Input", raise_=False)
                continue
            shape = self._input_shape(vi, pins.get(vi.name))
            if shape is not None:
                self.env[vi.name] = self.graph.add(vi.name, ops.Input(), origin=vi.name,
                                                   shape=shape, kind=ops.FLOAT)
                self.graph.inputs.append(vi.name)
                failed.discard(vi.name)
        return failed

    def _pins(self, names: list[str]) -> dict[str, tuple[int, ...]]:
        """--input-shape per input name (an unnamed shape pins the only input)."""
        given = self.input_shape
        if given is None:
            return {}
        if not isinstance(given, dict):
            if len(names) != 1:
                raise SnnccError(Diagnostic(
                    f"the model has {len(names)} inputs ({', '.join(names) or 'none'}); an "
                    "unnamed --input-shape fits a model with one", fix="name the input: "
                    f"--input-shape {names[0] if names else 'x'}=1,8,8"))
            return {names[0]: tuple(given)}
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise SnnccError(Diagnostic(
                f"--input-shape names {unknown}, which the model does not take as inputs "
                f"(its inputs: {', '.join(names) or 'none'})", fix="use the input's name"))
        return {k: tuple(v) for k, v in given.items()}

    def _input_shape(self, vi: onnx.ValueInfoProto, pin: tuple[int, ...] | None
                     ) -> tuple[int, ...] | None:
        """One sample's shape: the model's, with free dimensions pinned; None if it fails."""
        t = vi.type.tensor_type
        dims: list[int | str] = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                                 for d in t.shape.dim]
        where = dict(node=vi.name, op="Input", raise_=False)
        if t.HasField("shape") and not dims:
            self._fail(f"input '{vi.name}' is a scalar; snncc needs [batch, ...]",
                       "export with a batch axis", **where)
            return None
        if dims and isinstance(dims[0], int) and dims[0] != 1:
            self._fail(f"input '{vi.name}' has a fixed batch of {dims[0]}",
                       "export with a dynamic batch axis or a batch of 1", **where)
            return None
        if pin is not None:
            if t.HasField("shape") and len(dims) != len(pin) + 1:
                self._fail(f"input '{vi.name}' has {len(dims) - 1} dimension(s) besides the "
                           f"batch; --input-shape gives {len(pin)}",
                           "give the shape of one sample, without the batch", **where)
                return None
            fixed = [(k, d, p) for k, (d, p) in enumerate(zip(dims[1:], pin, strict=False), start=1)
                     if isinstance(d, int) and d > 0 and d != p]
            if fixed:
                k, d, p = fixed[0]
                self._fail(f"input '{vi.name}' fixes dimension {k} to {d}; --input-shape says "
                           f"{p}", f"use --input-shape {','.join(map(str, dims[1:]))}"
                           if all(isinstance(d, int) for d in dims[1:]) else
                           f"use {d} for dimension {k}", **where)
                return None
            return pin
        if not t.HasField("shape"):
            self._fail(f"input '{vi.name}' has no shape",
                       "pin the shape of one sample with --input-shape, e.g. "
                       "--input-shape 1,8,8", **where)
            return None
        free = [d for d in dims[1:] if not isinstance(d, int) or d <= 0]
        if not dims or free:
            example = ",".join(str(d) if isinstance(d, int) and d > 0 else f"<{d}>"
                               for d in dims[1:]) or "1,8,8"
            self._fail(f"input '{vi.name}' has shape {dims}: dimension(s) "
                       f"{', '.join(map(str, free)) or 'batch'} are not fixed",
                       f"pin them with --input-shape {example} (the shape of one sample), or "
                       "export with a static example input", **where)
            return None
        return tuple(int(d) for d in dims[1:])

    def _add_outputs(self, poisoned: set[str]) -> None:
        for o in self.model.graph.output:
            if o.name in poisoned:
                continue
            v = self.env.get(o.name)
            if not isinstance(v, str):
                self._fail(f"output '{o.name}' is not computed from the input",
                           "remove constant outputs", node=o.name, op="Output", raise_=False)
                continue
            self.graph.outputs.append(v)

    def _import(self, node: onnx.NodeProto) -> None:
        if node.domain in QONNX_DOMAINS:
            return self._quant(node)
        handler = HANDLERS.get(node.op_type)
        keeps_quantization = node.op_type in ("Shape", "DequantizeLinear")
        if not keeps_quantization and all(self._is_const(i) for i in node.input if i):
            return self._fold(node)
        if handler is None:
            self._fail(f"{node.op_type} on an activation is not supported",
                       "see the README's supported-ops table")
        handler(self, node)

    # ------------------------------------------------------------ helpers
    def _fail(self, message: str, fix: str = "", *, node: str = "", op: str = "",
              raise_: bool = True) -> None:
        n = self.node
        self.problems.append(Diagnostic(message, node or (n.name if n else ""),
                                        op or (n.op_type if n else ""), fix))
        if raise_:
            raise Skip

    def _is_const(self, name: str) -> bool:
        return isinstance(self.env.get(name), np.ndarray | QConst)

    def const(self, name: str, what: str = "this operand") -> np.ndarray:
        v = self.env.get(name)
        if not isinstance(v, np.ndarray):
            self._fail(f"{what} ('{name}') must be a constant", "fold it before export")
        return v

    def opt_const(self, node: onnx.NodeProto, k: int) -> np.ndarray | None:
        return self.const(node.input[k]) if len(node.input) > k and node.input[k] else None

    def act(self, name: str) -> str:
        v = self.env.get(name)
        if isinstance(v, ClippedAct):
            self._fail(f"Clip of an activation ('{name}') outside a quantizer cannot be spiked",
                       "clip with a quantizer (QuantizeLinear/DequantizeLinear) or use ReLU")
        if isinstance(v, PendingQuant):
            self._fail(f"the integer output of QuantizeLinear '{name}' is used directly",
                       "follow every QuantizeLinear of an activation by DequantizeLinear")
        if not isinstance(v, str):
            self._fail(f"'{name}' is a constant where snncc needs an activation",
                       "fold the constant expression before export")
        return v

    def shape(self, value: str) -> tuple[int, ...]:
        """The ONNX shape of an activation, batch taken as 1."""
        return (1,) + self.graph.node(value).shape

    def emit(self, op: ops.Op, inputs: list[str], out: str | None = None) -> str:
        n = self.node
        name = self.graph.fresh(out or f"{n.output[0]}/{op.name}")
        try:
            self.graph.add(name, op, inputs, origin=n.name)
        except ops.ShapeError as e:
            self._fail(str(e), "check the model with onnx.checker / shape inference")
        shape = self.graph.node(name).shape
        if any(d < 1 for d in shape):
            self._fail(f"gives an empty output of shape {list(shape)}",
                       "check the layer's sizes against its input")
        return name

    def bind(self, value: Value) -> None:
        self.env[self.node.output[0]] = value

    def attrs(self, node: onnx.NodeProto) -> dict[str, object]:
        return {a.name: helper.get_attribute_value(a) for a in node.attribute}

    def per_sample(self, c: np.ndarray, act: str) -> np.ndarray:
        """A constant broadcast against an activation with a batch axis -> per sample."""
        rank = len(self.shape(act))
        c = np.asarray(c, np.float64)
        if c.ndim > rank or c.ndim == rank and c.shape[0] != 1:
            self._fail(f"constant of shape {list(c.shape)} broadcasts over the batch axis",
                       "make constants per sample")
        return c[0] if c.ndim == rank else c

    def axis(self, axis: int, act: str) -> int:
        """An ONNX axis of an activation -> the per-sample axis (the batch may not be used)."""
        rank = len(self.shape(act))
        if not -rank <= axis < rank:
            self._fail(f"axis {axis} is out of range for a tensor of rank {rank}",
                       "re-export the model")
        a = axis % rank
        if a == 0:
            self._fail("operates on the batch axis", "keep the batch axis 0 untouched")
        return a - 1

    # ------------------------------------------------------------ constants
    def _fold(self, node: onnx.NodeProto) -> None:
        feeds = {i: self.env[i] for i in node.input if i}
        if any(isinstance(v, QConst) for v in feeds.values()):
            return self._fold_qconst(node, feeds)
        self._check_fold_size(node, feeds)
        outs = self._evaluate(node, feeds)
        for name, value in zip(node.output, outs, strict=False):
            if name:
                self.env[name] = np.asarray(value)

    def _check_fold_size(self, node: onnx.NodeProto, feeds: dict[str, np.ndarray]) -> None:
        """Refuse a fold whose result would not fit the memory budget, before making it."""
        size = fold_budget.output_size(node, feeds, list(self.model.opset_import))
        if size is not None and size[1] > fold_budget.BUDGET:
            self._fail(f"folding this constant would make a tensor of shape {size[0]} "
                       f"({fold_budget.describe(size[1])}), more than snncc's budget of "
                       f"{fold_budget.describe(fold_budget.BUDGET)} for one constant",
                       "check the export: no layer snncc compiles needs a constant this large")

    def _evaluate(self, node: onnx.NodeProto, feeds: dict[str, np.ndarray]) -> list:
        """Run one node on constants with ONNX's reference evaluator."""
        from onnx.reference import ReferenceEvaluator

        try:
            return list(ReferenceEvaluator(node).run(None, feeds))
        except Exception as e:  # noqa: BLE001 - any evaluator failure is the model's problem
            self._fail(f"cannot fold this constant expression ({type(e).__name__}: {e})",
                       "simplify the export")

    def _fold_qconst(self, node: onnx.NodeProto, feeds: dict) -> None:
        """Layout ops on quantized weights: apply them to the codes and the scales alike."""
        if node.op_type not in ("Transpose", "Reshape", "Squeeze", "Unsqueeze", "Identity"):
            self._fail(f"{node.op_type} of a quantized weight is not supported",
                       "export weights already laid out for MatMul/Conv")
        q = feeds[node.input[0]]
        if not isinstance(q, QConst) or any(isinstance(feeds[i], QConst) for i in feeds
                                            if i != node.input[0]):
            self._fail(f"{node.op_type} with a quantized operand other than its data",
                       "export shapes and axes as plain constants")
        scale = np.broadcast_to(q.scale, q.values.shape)
        values = self._evaluate(node, {**feeds, node.input[0]: q.values})[0]
        scale = self._evaluate(node, {**feeds, node.input[0]: np.ascontiguousarray(scale)})[0]
        self.bind(QConst(np.asarray(values), compress(np.asarray(scale))))

    def weight(self, name: str, out_axis: int, rank: int) -> ops.Weight:
        """A constant weight of `rank` axes; quantized if its scale varies along `out_axis`
        only."""
        v = self.env.get(name)
        shape = v.values.shape if isinstance(v, QConst) else np.shape(v)
        if isinstance(v, QConst | np.ndarray) and len(shape) != rank:
            self._fail(f"the weight '{name}' has shape {list(shape)}; {self.node.op_type} needs "
                       f"{rank} axes", "re-export the model")
        if isinstance(v, QConst):
            w = ops.Weight(v.values.astype(np.int64), np.asarray(v.scale, np.float64))
            scale = np.broadcast_to(w.scale, w.values.shape)
            keep = compress(scale)
            if all(d == 1 for i, d in enumerate(keep.shape) if i != out_axis % keep.ndim):
                return ops.Weight(w.values, keep)
            return ops.Weight(w.real(), None)
        c = self.numeric(name, "the weight")
        if not np.all(np.isfinite(c)):
            self._fail(f"weight '{name}' contains NaN or Inf", "fix the trained weights")
        return ops.Weight(np.asarray(c, np.float64), None)

    def quant_scale(self, name: str) -> np.ndarray:
        """A quantizer's scale: positive and finite, one value or one per channel."""
        s = self.numeric(name, "the scale")
        if s.ndim > 1 and s.size != 1 or s.size == 0:
            self._fail(f"scale '{name}' has shape {list(s.shape)}; a quantizer's scale is one "
                       "value or a vector of one per channel", "re-export the model")
        if not (np.all(np.isfinite(s)) and np.all(s > 0)):
            self._fail(f"scale '{name}' is not positive and finite ({s.ravel()[:4]})",
                       "fix the quantizer's scale")
        return s

    def zero_point(self, node: onnx.NodeProto, k: int, scale: np.ndarray) -> np.ndarray | None:
        """The optional zero point (input k): integers, shaped like the scale."""
        zp = self.opt_const(node, k)
        if zp is None:
            return None
        if zp.size != scale.size:
            self._fail(f"zero point '{node.input[k]}' has {zp.size} value(s), the scale "
                       f"{scale.size}", "give one zero point per scale")
        if zp.dtype.kind not in "biu" and not np.array_equal(zp, np.round(zp)):
            self._fail(f"zero point '{node.input[k]}' is not an integer",
                       "use an integer zero point")
        return zp

    def scalar(self, name: str, what: str) -> float:
        """A constant holding one number."""
        c = self.numeric(name, what)
        if c.size != 1:
            self._fail(f"{what} ('{name}') has shape {list(c.shape)}, not one value",
                       "re-export the model")
        return float(c.ravel()[0])

    def ints(self, name: str, what: str) -> list[int]:
        """A constant list of integers (shapes, axes, sizes)."""
        c = self.const(name, what)
        if c.dtype.kind not in "iu" or c.ndim > 1:
            self._fail(f"{what} ('{name}') is {c.dtype} of shape {list(c.shape)}, not a list "
                       "of integers", "re-export the model")
        return [int(v) for v in c.ravel()]

    def real_const(self, name: str, what: str = "this operand") -> np.ndarray:
        """A constant's real value: plain, or a dequantized one (DequantizeLinear of an
        initializer, as onnxruntime's quantizer leaves BN parameters and biases)."""
        v = self.env.get(name)
        c = v.values * v.scale if isinstance(v, QConst) else self.numeric(name, what)
        if not np.all(np.isfinite(c)):
            self._fail(f"constant '{name}' contains NaN or Inf", "fix the trained weights")
        return c

    def numeric(self, name: str, what: str = "this operand") -> np.ndarray:
        """A constant of numbers, as float64."""
        c = self.const(name, what)
        if c.dtype.kind not in "biuf":
            self._fail(f"{what} ('{name}') has type {c.dtype}, not a number type",
                       "re-export the model")
        return np.asarray(c, np.float64)

    # ------------------------------------------------------------ quantizers
    def _quantize_linear(self, node: onnx.NodeProto) -> None:
        clipped = self.env.get(node.input[0])
        x = clipped.x if isinstance(clipped, ClippedAct) else self.act(node.input[0])
        scale = self.quant_scale(node.input[1])
        zp = self.zero_point(node, 2, scale)
        a = self.attrs(node)
        if a.get("block_size", 0):
            self._fail("blocked quantization is not supported", "quantize per tensor or axis")
        dtype = zp.dtype if zp is not None else _ONNX_INT_TYPES.get(a.get("output_dtype", 0)
                                                                    or 2, np.dtype(object))
        if dtype not in _INT_RANGES:
            self._fail(f"quantized type {dtype} is not supported", "use (u)int8 or (u)int16")
        lo, hi = _INT_RANGES[dtype]
        zps = np.unique(zp) if zp is not None else np.zeros(1)
        if len(zps) != 1:
            self._fail("per-channel zero points are not supported", "use one zero point")
        if isinstance(clipped, ClippedAct):  # round(min(y, top)/s) = min(round(y/s), round(top/s))
            if scale.size != 1:
                self._fail("a Clip before a per-channel quantizer", "quantize per tensor")
            hi = max(lo, min(hi, int(np.rint(clipped.top / float(scale.ravel()[0]))) + int(zps[0])))
        self.bind(PendingQuant(x, scale, int(zps[0]), lo, hi, int(a.get("axis", 1))))

    def _clip(self, node: onnx.NodeProto) -> None:
        v = self.env.get(node.input[0])
        lo, hi = (self.scalar(node.input[k], "the bound") if len(node.input) > k
                  and node.input[k] else None for k in (1, 2))
        if any(b is not None and np.isnan(b) for b in (lo, hi)):
            self._fail("a Clip bound is NaN", "fix the bound")
        lo = None if lo == -np.inf else lo
        hi = None if hi == np.inf else hi
        if isinstance(v, PendingQuant):
            new_lo = v.lo if lo is None else max(v.lo, min(v.hi, int(np.ceil(lo))))
            new_hi = v.hi if hi is None else min(v.hi, max(v.lo, int(np.floor(hi))))
            return self.bind(PendingQuant(v.x, v.scale, v.zero_point, new_lo, new_hi, v.axis))
        x = self.act(node.input[0])
        if lo == 0.0 and hi is None:
            return self.bind(self.emit(ops.Relu(), [x]))
        if lo in (0.0, None) and hi is not None:  # ReLU6 and the like: the quantizer's top
            return self.bind(ClippedAct(x if lo is None else self.emit(ops.Relu(), [x]), hi))
        self._fail("Clip of an activation outside a quantizer cannot be spiked",
                   "clip with a quantizer (QuantizeLinear/DequantizeLinear) or use ReLU")

    def _dequantize_linear(self, node: onnx.NodeProto) -> None:
        v = self.env.get(node.input[0])
        scale = self.quant_scale(node.input[1])
        zp = self.zero_point(node, 2, scale)
        a = self.attrs(node)
        if a.get("block_size", 0):
            self._fail("blocked quantization is not supported", "quantize per tensor or axis")
        axis = int(a.get("axis", 1))
        if isinstance(v, np.ndarray):  # a quantized weight or bias
            return self.bind(self._dequantized(v, scale, zp, axis))
        if not isinstance(v, PendingQuant):
            self._fail("DequantizeLinear of an activation must follow QuantizeLinear",
                       "export activations as QuantizeLinear -> DequantizeLinear pairs")
        if scale.size not in (1, np.size(v.scale)) and np.size(v.scale) != 1:
            self._fail(f"the scale has {scale.size} values, its QuantizeLinear's "
                       f"{np.size(v.scale)}", "use the same scale in both")
        self._quant_act(v.x, v.scale, v.zero_point, v.lo, v.hi, Rounding.HALF_EVEN, v.axis)
        if not np.allclose(scale, v.scale, rtol=0, atol=0):
            ratio = self._scale_shape(scale / v.scale, v.axis, v.x)
            self.bind(self.emit(ops.Affine(ratio, np.zeros(())), [self.env[node.output[0]]]))

    def _dequantized(self, v: np.ndarray, scale: np.ndarray, zp: np.ndarray | None,
                     axis: int) -> QConst:
        """A quantized constant: integer codes minus the zero point, per tensor or axis."""
        if v.dtype.kind not in "iu":
            self._fail(f"DequantizeLinear of a {v.dtype} constant", "store integer codes")
        shape = [1] * v.ndim
        if scale.size > 1:
            if not -v.ndim <= axis < v.ndim or v.shape[axis] != scale.size:
                self._fail(f"{scale.size} scales do not fit axis {axis} of a constant of shape "
                           f"{list(v.shape)}", "give one scale per channel of that axis")
            shape[axis] = -1
        zp = np.zeros(1, np.int64) if zp is None else np.asarray(zp, np.int64)
        values = v.astype(np.int64) - zp.reshape(shape)
        return QConst(values, compress(scale.reshape(shape)))

    def _scale_shape(self, scale: np.ndarray, axis: int, x: str) -> np.ndarray:
        """A per-axis scale vector -> an array broadcastable per sample."""
        if scale.size == 1:
            return scale.reshape(())
        rank = len(self.shape(x))
        a = self.axis(axis, x)
        if scale.ndim != 1 or scale.size != self.graph.node(x).shape[a]:
            self._fail(f"{scale.size} scales do not fit axis {axis} of an activation of shape "
                       f"{list(self.shape(x))}", "give one scale per channel of that axis")
        return scale.reshape((-1,) + (1,) * (rank - 2 - a))

    def _quant_act(self, x: str, scale, zp: int, lo: int, hi: int, rounding: Rounding,
                   axis: int | None) -> None:
        scale = np.asarray(scale, np.float64)
        if axis is not None:
            scale = self._scale_shape(scale, axis, x)
        else:
            scale = compress(self.per_sample(scale, x))
            shape = self.graph.node(x).shape
            if not _fits(scale.shape, shape):
                self._fail(f"a scale of shape {list(scale.shape)} does not fit an activation "
                           f"of shape {list(shape)}", "give one scale per channel")
        if np.any(scale <= 0) or not np.all(np.isfinite(scale)):
            self._fail(f"quantizer scale {scale.ravel()[:4]} is not positive and finite",
                       "fix the quantizer's scale")
        if hi <= lo:
            self._fail(f"quantizer range [{lo}, {hi}] is empty", "fix the quantizer")
        if lo == zp:  # the range starts at real 0 (int8 after a ReLU: zero point -128)
            lo, hi, zp = 0, hi - zp, 0
        self.bind(self.emit(ops.QuantAct(scale, zp, lo, hi, rounding), [x],
                            out=self.node.output[0]))

    def _quant(self, node: onnx.NodeProto) -> None:
        """QONNX Quant / IntQuant: (x, scale, zero point, bit width)."""
        if node.op_type not in ("Quant", "IntQuant"):
            self._fail(f"QONNX {node.op_type} is not supported", "use Quant")
        a = self.attrs(node)
        scale = self.numeric(node.input[1], "the scale")
        if scale.size == 0 or not (np.all(np.isfinite(scale)) and np.all(scale > 0)):
            self._fail(f"scale '{node.input[1]}' is not positive and finite",
                       "fix the quantizer's scale")
        zp = self.numeric(node.input[2], "the zero point")
        bits = self.scalar(node.input[3], "the bit width")
        if not (np.isfinite(bits) and bits == int(bits) and 1 <= bits <= 30):
            self._fail(f"bit width {bits} is not supported", "use 2 to 16 bits")
        bits = int(bits)
        signed, narrow = int(a.get("signed", 1)), int(a.get("narrow", 0))
        mode = a.get("rounding_mode", b"ROUND")
        mode = mode.decode(errors="replace") if isinstance(mode, bytes) else str(mode)
        if mode not in _QONNX_ROUNDING:
            self._fail(f"rounding mode {mode!r} is not supported", "use ROUND or FLOOR")
        lo = -(2 ** (bits - 1)) + narrow if signed else 0
        hi = 2 ** (bits - 1) - 1 if signed else 2**bits - 1 - narrow
        zps = np.unique(zp)
        if len(zps) != 1 or not np.isfinite(zps[0]) or float(zps[0]) != int(zps[0]):
            self._fail("per-channel or fractional zero points are not supported",
                       "use one integer zero point")
        zp_int, rounding = int(zps[0]), _QONNX_ROUNDING[mode]
        v = self.env.get(node.input[0])
        if isinstance(v, np.ndarray):  # weights
            v = self.real_const(node.input[0])
            if not _fits(scale.shape, v.shape):
                self._fail(f"a scale of shape {list(scale.shape)} does not fit a weight of "
                           f"shape {list(v.shape)}", "give one scale per output channel")
            q = np.clip(rounding.apply(v / scale) + zp_int, lo, hi) - zp_int
            full = scale if scale.ndim == v.ndim else scale.reshape([1] * v.ndim)
            return self.bind(QConst(q.astype(np.int64), compress(np.asarray(full, np.float64))))
        self._quant_act(self.act(node.input[0]), scale, zp_int, lo, hi, rounding, None)


def _fits(small: tuple[int, ...], shape: tuple[int, ...]) -> bool:
    """Does a constant of shape `small` broadcast to `shape` without growing it?"""
    return len(small) <= len(shape) and all(
        a in (1, b) for a, b in zip(reversed(small), reversed(shape), strict=False))


# ---------------------------------------------------------------- op handlers

Handler = Callable[[Importer, onnx.NodeProto], None]
HANDLERS: dict[str, Handler] = {}


def handles(*op_types: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        for t in op_types:
            HANDLERS[t] = fn
        return fn
    return register


HANDLERS.update(QuantizeLinear=Importer._quantize_linear, Clip=Importer._clip,
                DequantizeLinear=Importer._dequantize_linear)


@handles("Identity", "Dropout")
def _alias(im: Importer, node: onnx.NodeProto) -> None:
    im.bind(im.act(node.input[0]))


@handles("Cast")
def _cast(im: Importer, node: onnx.NodeProto) -> None:
    to = im.attrs(node)["to"]
    if to not in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16):
        im._fail("Cast of an activation to a non-float type", "remove the Cast")
    im.bind(im.act(node.input[0]))


@handles("Shape")
def _shape(im: Importer, node: onnx.NodeProto) -> None:
    a = im.attrs(node)
    im.bind(np.array(im.shape(im.act(node.input[0])), np.int64)[a.get("start", 0):a.get("end")])


@handles("Relu")
def _relu(im: Importer, node: onnx.NodeProto) -> None:
    im.bind(im.emit(ops.Relu(), [im.act(node.input[0])]))


@handles("Add", "Sub", "Mul", "Div")
def _arith(im: Importer, node: onnx.NodeProto) -> None:
    a_name, b_name = node.input
    a_act, b_act = (isinstance(im.env.get(n), str) for n in (a_name, b_name))
    if a_act and b_act:
        if node.op_type in ("Mul", "Div"):
            im._fail(f"{node.op_type} of two activations cannot be spiked",
                     "use MatMul for products of activations, or a constant factor")
        op = ops.Add() if node.op_type == "Add" else ops.Sub()
        return im.bind(im.emit(op, [im.act(a_name), im.act(b_name)]))
    x = im.act(a_name if a_act else b_name)
    c = im.per_sample(im.real_const(b_name if a_act else a_name), x)
    zero, one = np.zeros(()), np.ones(())
    if node.op_type == "Div" and not a_act:
        im._fail("division of a constant by an activation cannot be spiked", "")
    if node.op_type == "Div" and np.any(c == 0):
        im._fail("division by zero", "fix the constant")
    mul, add = {
        "Add": (one, c), "Mul": (c, zero), "Div": (1.0 / c if node.op_type == "Div" else c, zero),
        "Sub": (one, -c) if a_act else (-one, c),
    }[node.op_type]
    im.bind(im.emit(ops.Affine(np.asarray(mul, np.float64), np.asarray(add, np.float64)), [x]))


@handles("MatMul")
def _matmul(im: Importer, node: onnx.NodeProto) -> None:
    a, b = node.input
    if isinstance(im.env.get(a), str) and isinstance(im.env.get(b), str):
        return im.bind(im.emit(ops.MatMul(), [im.act(a), im.act(b)]))
    if not isinstance(im.env.get(a), str):
        im._fail("MatMul with a constant on the left is not supported",
                 "export as activation @ weight")
    w = im.weight(b, out_axis=1, rank=2)
    im.bind(im.emit(ops.Dense(w), [im.act(a)]))


@handles("Gemm")
def _gemm(im: Importer, node: onnx.NodeProto) -> None:
    a = im.attrs(node)
    if a.get("transA", 0):
        im._fail("Gemm with transA is not supported", "export x @ W")
    v = im.env.get(node.input[1])
    trans = bool(a.get("transB", 0))
    w = im.weight(node.input[1], out_axis=0 if trans else 1, rank=2)
    alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
    if not (np.isfinite(alpha) and np.isfinite(beta)):
        im._fail(f"alpha {alpha} or beta {beta} is not finite", "re-export the model")
    values = w.values.T if trans else w.values
    scale = None if w.scale is None else (w.scale.T if trans else w.scale) * alpha
    if w.scale is None:
        values = values * alpha
    del v
    y = im.emit(ops.Dense(ops.Weight(values, scale)), [im.act(node.input[0])])
    if len(node.input) > 2 and node.input[2]:
        c = beta * im.real_const(node.input[2])
        y = im.emit(ops.Affine(np.ones(()), im.per_sample(c, y) if c.ndim == 2 else c), [y])
    im.bind(y)


def _conv_attrs(im: Importer, node: onnx.NodeProto, kernel: tuple[int, int], x: str):
    a = im.attrs(node)
    strides = tuple(a.get("strides", (1, 1)))
    dil = tuple(a.get("dilations", (1, 1)))
    pads = tuple(a.get("pads", (0, 0, 0, 0)))
    auto = a.get("auto_pad", b"NOTSET")
    auto = auto.decode(errors="replace") if isinstance(auto, bytes) else auto
    if len(kernel) != 2:
        im._fail(f"{len(kernel)}-D {node.op_type} is not supported", "use 2-D layers")
    if len(im.graph.node(x).shape) != 3:
        im._fail(f"{node.op_type} of an input of shape {list(im.shape(x))}, not [N, C, H, W]",
                 "re-export the model")
    if "kernel_shape" in a and tuple(a["kernel_shape"]) != tuple(kernel):
        im._fail(f"kernel_shape {list(a['kernel_shape'])} differs from the weight's "
                 f"{list(kernel)}", "re-export the model")
    if (len(strides), len(dil), len(pads)) != (2, 2, 4) or min(kernel + strides + dil) < 1 \
            or min(pads) < 0:
        im._fail(f"kernel {list(kernel)}, strides {list(strides)}, dilations {list(dil)} and "
                 f"pads {list(pads)} do not describe a 2-D window", "re-export the model")
    if auto not in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"):
        im._fail(f"auto_pad {auto!r} is not an ONNX padding mode", "re-export the model")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        _, h, w = im.graph.node(x).shape
        pads = []
        for size, k, s, d in zip((h, w), kernel, strides, dil, strict=True):
            total = max(0, (-(-size // s) - 1) * s + (k - 1) * d + 1 - size)
            pads.append((total // 2, total - total // 2) if auto == "SAME_UPPER"
                        else (total - total // 2, total // 2))
        pads = (pads[0][0], pads[1][0], pads[0][1], pads[1][1])
    if a.get("ceil_mode", 0):
        im._fail("ceil_mode pooling is not supported", "export with ceil_mode=0")
    return strides, (pads[0], pads[1], pads[2], pads[3]), dil


@handles("Conv")
def _conv(im: Importer, node: onnx.NodeProto) -> None:
    x = im.act(node.input[0])
    w = im.weight(node.input[1], out_axis=0, rank=4)
    strides, pads, dil = _conv_attrs(im, node, w.values.shape[2:], x)
    group = int(im.attrs(node).get("group", 1))
    if group < 1 or w.values.shape[0] % group:
        im._fail(f"group {group} does not divide the {w.values.shape[0]} output channels",
                 "re-export the model")
    y = im.emit(ops.Conv(w, strides, pads, dil, group), [x])
    if len(node.input) > 2 and node.input[2]:
        bias = im.real_const(node.input[2])
        if bias.size != w.values.shape[0]:
            im._fail(f"the bias has {bias.size} values for {w.values.shape[0]} output channels",
                     "re-export the model")
        bias = bias.reshape(-1, 1, 1)
        y = im.emit(ops.Affine(np.ones(()), bias), [y])
    im.bind(y)


@handles("BatchNormalization")
def _batchnorm(im: Importer, node: onnx.NodeProto) -> None:
    x = im.act(node.input[0])
    gamma, beta, mean, var = (im.real_const(n, "a BatchNorm parameter") for n in node.input[1:5])
    if len({t.shape for t in (gamma, beta, mean, var)}) != 1 or gamma.ndim != 1:
        im._fail("BatchNorm parameters are not four vectors of one length",
                 "re-export the model")
    eps = float(im.attrs(node).get("epsilon", 1e-5))
    if not (np.isfinite(eps) and eps >= 0):
        im._fail(f"epsilon {eps} is not a finite number >= 0", "re-export the model")
    if len(node.output) > 1 and any(node.output[1:]):
        im._fail("BatchNormalization in training mode", "export the model in eval() mode")
    if not all(np.all(np.isfinite(t)) for t in (gamma, beta, mean, var)) or np.any(var + eps <= 0):
        im._fail("BatchNorm parameters contain NaN, Inf or a non-positive variance",
                 "fix the trained statistics")
    im.bind(im.emit(ops.BatchNorm(gamma, beta, mean, var, eps), [x]))


@handles("MaxPool", "AveragePool")
def _pool(im: Importer, node: onnx.NodeProto) -> None:
    x = im.act(node.input[0])
    a = im.attrs(node)
    kernel = tuple(a["kernel_shape"])
    strides, pads, dil = _conv_attrs(im, node, kernel, x)
    if dil != (1, 1):
        im._fail("dilated pooling is not supported", "use dilation 1")
    if node.op_type == "MaxPool":
        if len(node.output) > 1 and node.output[1]:
            im._fail("MaxPool indices output is not supported", "drop the indices")
        return im.bind(im.emit(ops.MaxPool(kernel, strides, pads), [x]))
    if any(pads) and not a.get("count_include_pad", 0):
        im._fail("AveragePool with padding that is not counted divides by a varying count",
                 "use count_include_pad=1 or no padding")
    y = im.emit(ops.SumPool(kernel, strides, pads), [x])
    im.bind(im.emit(ops.Affine(np.asarray(1.0 / (kernel[0] * kernel[1])), np.zeros(())), [y]))


@handles("GlobalAveragePool", "ReduceMean", "ReduceSum")
def _reduce(im: Importer, node: onnx.NodeProto) -> None:
    x = im.act(node.input[0])
    rank = len(im.shape(x))
    a = im.attrs(node)
    if node.op_type == "GlobalAveragePool":
        axes, keep = tuple(range(2, rank)), True
    else:
        axes = a.get("axes") or (tuple(im.ints(node.input[1], "the axes"))
                                 if len(node.input) > 1 and node.input[1] else ())
        keep = bool(a.get("keepdims", 1))
        if not axes:
            axes = () if a.get("noop_with_empty_axes", 0) else tuple(range(rank))
    if not axes:
        return im.bind(x)
    per = tuple(sorted({im.axis(ax, x) for ax in axes}))
    y = im.emit(ops.ReduceSum(per, keep), [x])
    if node.op_type != "ReduceSum":
        n = int(np.prod([im.graph.node(x).shape[p] for p in per]))
        y = im.emit(ops.Affine(np.asarray(1.0 / n), np.zeros(())), [y])
    im.bind(y)


def _rewire(im: Importer, x: str, out_shape: tuple[int, ...]) -> None:
    """A reshape-like op: the batch axis must stay a leading 1."""
    if not out_shape or out_shape[0] != 1 or int(np.prod(out_shape[1:])) != int(
            np.prod(im.graph.node(x).shape)):
        im._fail(f"reshapes the batch axis (output shape {list(out_shape)} at batch 1)",
                 "keep the batch axis leading and separate")
    if tuple(out_shape[1:]) == im.graph.node(x).shape:
        return im.bind(x)
    im.bind(im.emit(ops.Reshape(tuple(int(d) for d in out_shape[1:])), [x]))


@handles("Reshape")
def _reshape(im: Importer, node: onnx.NodeProto) -> None:
    x = im.act(node.input[0])
    target = im.ints(node.input[1], "the target shape")
    src = im.shape(x)
    target = [src[i] if d == 0 and i < len(src) and not im.attrs(node).get("allowzero", 0)
              else d for i, d in enumerate(target)]
    try:
        out = np.empty(src, np.int8).reshape(target).shape
    except ValueError:
        im._fail(f"cannot reshape {list(src)} to {target}", "check the export")
    _rewire(im, x, out)


@handles("Flatten")
def _flatten(im: Importer, node: onnx.NodeProto) -> None:
    x = im.act(node.input[0])
    src = im.shape(x)
    axis = int(im.attrs(node).get("axis", 1))
    if not -len(src) <= axis <= len(src):
        im._fail(f"axis {axis} is out of range for rank {len(src)}", "re-export the model")
    axis += len(src) if axis < 0 else 0
    _rewire(im, x, (int(np.prod(src[:axis])), int(np.prod(src[axis:]))))


@handles("Squeeze", "Unsqueeze")
def _squeeze(im: Importer, node: onnx.NodeProto) -> None:
    x = im.act(node.input[0])
    axes = im.attrs(node).get("axes") or (
        im.ints(node.input[1], "the axes") if len(node.input) > 1 and node.input[1] else [])
    src = im.shape(x)
    rank = len(src) + (len(axes) if node.op_type == "Unsqueeze" else 0)
    if any(not -rank <= a < rank for a in axes) or len({a % rank for a in axes}) < len(axes):
        im._fail(f"axes {list(axes)} are out of range or repeated for rank {rank}",
                 "re-export the model")
    if node.op_type == "Squeeze":
        axes = [a % len(src) for a in axes] or [i for i, d in enumerate(src) if d == 1]
        if any(src[a] != 1 for a in axes):
            im._fail(f"squeezes axes {axes} of shape {list(src)}, which are not all 1",
                     "re-export the model")
        if 0 in axes:
            im._fail("squeezes the batch axis", "keep the batch axis")
        out = tuple(d for i, d in enumerate(src) if i not in axes)
    else:
        axes = sorted(a % rank for a in axes)
        if 0 in axes:
            im._fail("inserts an axis before the batch axis", "keep the batch axis first")
        out = list(src)
        for a in axes:
            out.insert(a, 1)
        out = tuple(out)
    _rewire(im, x, out)


@handles("Transpose")
def _transpose(im: Importer, node: onnx.NodeProto) -> None:
    x = im.act(node.input[0])
    rank = len(im.shape(x))
    perm = list(im.attrs(node).get("perm", range(rank - 1, -1, -1)))
    if sorted(perm) != list(range(rank)):
        im._fail(f"perm {perm} is not a permutation of the {rank} axes", "re-export the model")
    if perm[0] != 0:
        im._fail(f"permutation {perm} moves the batch axis", "keep the batch axis first")
    per = tuple(p - 1 for p in perm[1:])
    im.bind(x if per == tuple(range(rank - 1)) else im.emit(ops.Transpose(per), [x]))


def _take_range(im: Importer, x: str, axis: int, start: int, stop: int, step: int,
                out: str) -> str:
    size = im.graph.node(x).shape[axis]
    idx = np.arange(*slice(start, stop, step).indices(size), dtype=np.int64)
    if len(idx) == size and step == 1:
        return x
    return im.emit(ops.Take(idx, axis), [x], out=f"{out}/Take")


@handles("Slice")
def _slice(im: Importer, node: onnx.NodeProto) -> None:
    x = im.act(node.input[0])
    starts, ends = (im.ints(n, "a Slice bound") for n in node.input[1:3])
    given = {k: im.ints(node.input[k], "Slice axes or steps") for k in (3, 4)
             if len(node.input) > k and node.input[k]}
    axes = given.get(3, list(range(len(starts))))
    steps = given.get(4, [1] * len(starts))
    if len({len(starts), len(ends), len(axes), len(steps)}) != 1 or 0 in steps:
        im._fail("Slice starts, ends, axes and steps differ in length, or a step is 0",
                 "re-export the model")
    per_axes = [im.axis(ax, x) for ax in axes]
    if len(set(per_axes)) < len(per_axes):
        im._fail(f"Slice axes {axes} repeat an axis", "re-export the model")
    y = x
    for s, e, ax, st in zip(starts, ends, per_axes, steps, strict=True):
        if st < 0 and e < -im.graph.node(x).shape[ax]:
            e = None
        y = _take_range(im, y, ax, s, e, st, node.output[0])
    im.bind(y)


@handles("Split")
def _split(im: Importer, node: onnx.NodeProto) -> None:
    x = im.act(node.input[0])
    a = im.attrs(node)
    axis = im.axis(int(a.get("axis", 0)), x)
    size = im.graph.node(x).shape[axis]
    sizes = a.get("split") or (im.ints(node.input[1], "the split sizes") if len(node.input) > 1
                               and node.input[1] else None)
    if sizes is None:
        n = int(a.get("num_outputs", len(node.output)))
        chunk = -(-size // max(n, 1))
        sizes = [min(chunk, size - k * chunk) for k in range(n)]
    if len(sizes) != len(node.output) or min(sizes) < 1 or sum(sizes) != size:
        im._fail(f"splits an axis of {size} into {list(sizes)} for {len(node.output)} outputs",
                 "re-export the model")
    start = 0
    for out, n in zip(node.output, sizes, strict=True):
        im.env[out] = _take_range(im, x, axis, start, start + int(n), 1, out)
        start += int(n)


@handles("Concat")
def _concat(im: Importer, node: onnx.NodeProto) -> None:
    xs = [im.act(i) for i in node.input]
    axis = im.axis(int(im.attrs(node)["axis"]), xs[0])
    im.bind(im.emit(ops.Concat(axis), xs))


@handles("Gather")
def _gather(im: Importer, node: onnx.NodeProto) -> None:
    x = im.act(node.input[0])
    idx = im.const(node.input[1], "the indices")
    axis = im.axis(int(im.attrs(node).get("axis", 0)), x)
    size = im.graph.node(x).shape[axis]
    if idx.dtype.kind not in "iu" or np.any(idx < -size) or np.any(idx >= size):
        im._fail(f"indices must be integers in [-{size}, {size})", "re-export the model")
    idx = idx.astype(np.int64) % size
    im.bind(im.emit(ops.Take(idx, axis), [x]))


@handles("Softmax")
def _softmax(im: Importer, node: onnx.NodeProto) -> None:
    x = im.act(node.input[0])
    im.bind(im.emit(ops.Softmax(im.axis(int(im.attrs(node).get("axis", -1)), x)), [x]))
