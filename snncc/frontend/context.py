"""What an op handler works with: the import's state, the values bound to ONNX tensor
names, and typed readers of a node's operands that record a diagnostic when an operand is
not what the handler needs.

A handler reads its operands (``act``, ``const``, ``weight``, ...), adds IR nodes with
``emit`` and binds its output with ``bind``. ``fail`` records one diagnostic for the node
and skips it (the driver goes on with the next node and raises once at the end).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import onnx
from onnx import helper

from snncc import ops
from snncc.errors import Diagnostic
from snncc.intmath import compress
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


# what an ONNX tensor name is bound to: an activation (the IR node's name), a constant, or
# a quantizer half-read
Value = str | np.ndarray | QConst | PendingQuant | ClippedAct


class Context:
    """The state of one import and the operand readers the handlers share."""

    def __init__(self, model: onnx.ModelProto, path: str):
        self.model = model
        self.path = path
        self.graph = Graph(Path(path).stem)
        self.env: dict[str, Value] = {}
        self.problems: list[Diagnostic] = []
        self.node: onnx.NodeProto | None = None

    @property
    def current(self) -> onnx.NodeProto:
        """The node being imported."""
        assert self.node is not None, "no node is being imported"
        return self.node

    # ------------------------------------------------------------ diagnostics
    def note(self, message: str, fix: str = "", *, node: str = "", op: str = "") -> None:
        """Record a problem (at the current node unless `node`/`op` are given)."""
        n = self.node
        self.problems.append(Diagnostic(message, node or (n.name if n else ""),
                                        op or (n.op_type if n else ""), fix))

    def fail(self, message: str, fix: str = "", *, node: str = "", op: str = "") -> NoReturn:
        """Record a problem and skip the current node."""
        self.note(message, fix, node=node, op=op)
        raise Skip

    # ------------------------------------------------------------ operands
    def is_const(self, name: str) -> bool:
        return isinstance(self.env.get(name), np.ndarray | QConst)

    def const(self, name: str, what: str = "this operand") -> np.ndarray:
        v = self.env.get(name)
        if not isinstance(v, np.ndarray):
            self.fail(f"{what} ('{name}') must be a constant", "fold it before export")
        return v

    def opt_const(self, node: onnx.NodeProto, k: int) -> np.ndarray | None:
        return self.const(node.input[k]) if len(node.input) > k and node.input[k] else None

    def act(self, name: str) -> str:
        v = self.env.get(name)
        if isinstance(v, ClippedAct):
            self.fail(f"Clip of an activation ('{name}') outside a quantizer cannot be spiked",
                      "clip with a quantizer (QuantizeLinear/DequantizeLinear) or use ReLU")
        if isinstance(v, PendingQuant):
            self.fail(f"the integer output of QuantizeLinear '{name}' is used directly",
                      "follow every QuantizeLinear of an activation by DequantizeLinear")
        if not isinstance(v, str):
            self.fail(f"'{name}' is a constant where snncc needs an activation",
                      "fold the constant expression before export")
        return v

    def shape(self, value: str) -> tuple[int, ...]:
        """The ONNX shape of an activation, batch taken as 1."""
        return (1,) + self.graph.node(value).shape

    def emit(self, op: ops.Op, inputs: list[str], out: str | None = None) -> str:
        n = self.current
        name = self.graph.fresh(out or f"{n.output[0]}/{op.name}")
        try:
            self.graph.add(name, op, inputs, origin=n.name)
        except ops.ShapeError as e:
            self.fail(str(e), "check the model with onnx.checker / shape inference")
        shape = self.graph.node(name).shape
        if any(d < 1 for d in shape):
            self.fail(f"gives an empty output of shape {list(shape)}",
                      "check the layer's sizes against its input")
        return name

    def bind(self, value: Value) -> None:
        self.env[self.current.output[0]] = value

    def attrs(self, node: onnx.NodeProto) -> dict[str, Any]:
        """The node's attributes (ints, floats, bytes, lists of them: any by name)."""
        return {a.name: helper.get_attribute_value(a) for a in node.attribute}

    def per_sample(self, c: np.ndarray, act: str) -> np.ndarray:
        """A constant broadcast against an activation with a batch axis -> per sample."""
        rank = len(self.shape(act))
        c = np.asarray(c, np.float64)
        if c.ndim > rank or c.ndim == rank and c.shape[0] != 1:
            self.fail(f"constant of shape {list(c.shape)} broadcasts over the batch axis",
                      "make constants per sample")
        return c[0] if c.ndim == rank else c

    def axis(self, axis: int, act: str) -> int:
        """An ONNX axis of an activation -> the per-sample axis (the batch may not be used)."""
        rank = len(self.shape(act))
        if not -rank <= axis < rank:
            self.fail(f"axis {axis} is out of range for a tensor of rank {rank}",
                      "re-export the model")
        a = axis % rank
        if a == 0:
            self.fail("operates on the batch axis", "keep the batch axis 0 untouched")
        return a - 1

    # ------------------------------------------------------------ constants
    def weight(self, name: str, out_axis: int, rank: int) -> ops.Weight:
        """A constant weight of `rank` axes; quantized if its scale varies along `out_axis`
        only."""
        v = self.env.get(name)
        shape = v.values.shape if isinstance(v, QConst) else np.shape(v) if isinstance(
            v, np.ndarray) else ()
        if isinstance(v, QConst | np.ndarray) and len(shape) != rank:
            self.fail(f"the weight '{name}' has shape {list(shape)}; {self.current.op_type} "
                      f"needs {rank} axes", "re-export the model")
        if isinstance(v, QConst):
            w = ops.Weight(v.values.astype(np.int64), np.asarray(v.scale, np.float64))
            scale = np.broadcast_to(np.asarray(v.scale, np.float64), w.values.shape)
            keep = compress(scale)
            if all(d == 1 for i, d in enumerate(keep.shape) if i != out_axis % keep.ndim):
                return ops.Weight(w.values, keep)
            return ops.Weight(w.real(), None)
        c = self.numeric(name, "the weight")
        if not np.all(np.isfinite(c)):
            self.fail(f"weight '{name}' contains NaN or Inf", "fix the trained weights")
        return ops.Weight(np.asarray(c, np.float64), None)

    def quant_scale(self, name: str) -> np.ndarray:
        """A quantizer's scale: positive and finite, one value or one per channel."""
        s = self.numeric(name, "the scale")
        if s.ndim > 1 and s.size != 1 or s.size == 0:
            self.fail(f"scale '{name}' has shape {list(s.shape)}; a quantizer's scale is one "
                      "value or a vector of one per channel", "re-export the model")
        if not (np.all(np.isfinite(s)) and np.all(s > 0)):
            self.fail(f"scale '{name}' is not positive and finite ({s.ravel()[:4]})",
                      "fix the quantizer's scale")
        return s

    def zero_point(self, node: onnx.NodeProto, k: int, scale: np.ndarray) -> np.ndarray | None:
        """The optional zero point (input k): integers, shaped like the scale."""
        zp = self.opt_const(node, k)
        if zp is None:
            return None
        if zp.size != scale.size:
            self.fail(f"zero point '{node.input[k]}' has {zp.size} value(s), the scale "
                      f"{scale.size}", "give one zero point per scale")
        if zp.dtype.kind not in "biu" and not np.array_equal(zp, np.round(zp)):
            self.fail(f"zero point '{node.input[k]}' is not an integer",
                      "use an integer zero point")
        return zp

    def scalar(self, name: str, what: str) -> float:
        """A constant holding one number."""
        c = self.numeric(name, what)
        if c.size != 1:
            self.fail(f"{what} ('{name}') has shape {list(c.shape)}, not one value",
                      "re-export the model")
        return float(c.ravel()[0])

    def ints(self, name: str, what: str) -> list[int]:
        """A constant list of integers (shapes, axes, sizes)."""
        c = self.const(name, what)
        if c.dtype.kind not in "iu" or c.ndim > 1:
            self.fail(f"{what} ('{name}') is {c.dtype} of shape {list(c.shape)}, not a list "
                      "of integers", "re-export the model")
        return [int(v) for v in c.ravel()]

    def real_const(self, name: str, what: str = "this operand") -> np.ndarray:
        """A constant's real value: plain, or a dequantized one (DequantizeLinear of an
        initializer, as onnxruntime's quantizer leaves BN parameters and biases)."""
        v = self.env.get(name)
        c = v.values * v.scale if isinstance(v, QConst) else self.numeric(name, what)
        if not np.all(np.isfinite(c)):
            self.fail(f"constant '{name}' contains NaN or Inf", "fix the trained weights")
        return c

    def numeric(self, name: str, what: str = "this operand") -> np.ndarray:
        """A constant of numbers, as float64."""
        c = self.const(name, what)
        if c.dtype.kind not in "biuf":
            self.fail(f"{what} ('{name}') has type {c.dtype}, not a number type",
                      "re-export the model")
        return np.asarray(c, np.float64)
