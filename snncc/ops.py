"""Node kinds of the snncc IR: small frozen dataclasses, each stating its equation.

Shapes are per sample (no batch axis). A value is one of three kinds:
``float`` (real numbers, the source model's semantics), ``codes`` (spike counts:
integers in ``[0, L]``, carried as spike trains in the SNN) and ``current`` (integer
membrane currents). Canonical ops come out of the frontend; SNN ops come out of
``quant-to-neuron``; layout ops work on every kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import ClassVar

import numpy as np

from snncc.intmath import Rounding

Shape = tuple[int, ...]
FLOAT, CODES, CURRENT = "float", "codes", "current"


class ShapeError(ValueError):
    """An op got operands of the wrong shape or kind (a verifier finding)."""


@dataclass(frozen=True, eq=False)
class Op:
    """Base of every node kind. ``infer`` gives the output shape and kind."""

    arity: ClassVar[int | None] = 1  # None: any number of inputs >= 1

    @property
    def name(self) -> str:
        return type(self).__name__

    def infer(self, shapes: list[Shape], kinds: list[str]) -> tuple[Shape, str]:
        return shapes[0], kinds[0]

    def attrs(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _pool_shape(shape: Shape, kernel, strides, pads) -> Shape:
    if len(shape) != 3:
        raise ShapeError(f"expects [C, H, W], got {list(shape)}")
    c, h, w = shape
    oh = (h + pads[0] + pads[2] - kernel[0]) // strides[0] + 1
    ow = (w + pads[1] + pads[3] - kernel[1]) // strides[1] + 1
    return (c, oh, ow)


def _conv_shape(shape: Shape, weight: np.ndarray, strides, pads, dilations, group) -> Shape:
    if len(shape) != 3:
        raise ShapeError(f"expects [C, H, W], got {list(shape)}")
    o, ig, kh, kw = weight.shape
    if shape[0] != ig * group:
        raise ShapeError(f"input has {shape[0]} channels, weight expects {ig * group}")
    ekh, ekw = dilations[0] * (kh - 1) + 1, dilations[1] * (kw - 1) + 1
    oh = (shape[1] + pads[0] + pads[2] - ekh) // strides[0] + 1
    ow = (shape[2] + pads[1] + pads[3] - ekw) // strides[1] + 1
    return (o, oh, ow)


def _dense_shape(shape: Shape, weight: np.ndarray) -> Shape:
    if not shape or weight.ndim != 2 or shape[-1] != weight.shape[0]:
        raise ShapeError(f"input {list(shape)} does not match weight {list(weight.shape)}")
    return shape[:-1] + (weight.shape[1],)


def _matmul_shape(a: Shape, b: Shape) -> Shape:
    if len(a) < 2 or len(b) < 2 or a[-1] != b[-2]:
        raise ShapeError(f"cannot multiply {list(a)} by {list(b)}")
    return _broadcast([a[:-2], b[:-2]], "MatMul batch") + (a[-2], b[-1])


def _broadcast(shapes: list[Shape], what: str) -> Shape:
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError as e:
        raise ShapeError(f"{what} operands {[list(s) for s in shapes]} do not broadcast") from e


# ---------------------------------------------------------------- canonical (float) ops


@dataclass(frozen=True, eq=False)
class Input(Op):
    """x = the model input (float)."""

    arity: ClassVar[int | None] = 0

    def infer(self, shapes, kinds):
        raise AssertionError("Input has no operands")


@dataclass(frozen=True, eq=False)
class QuantAct(Op):
    """q = clip(round(x / scale) + zero_point, lo, hi); y = scale * (q - zero_point)."""

    scale: np.ndarray
    zero_point: int
    lo: int
    hi: int
    rounding: Rounding = Rounding.HALF_EVEN

    def __post_init__(self):
        if np.any(np.asarray(self.scale) <= 0) or not np.all(np.isfinite(self.scale)):
            raise ValueError("quantizer scale must be positive and finite")
        if self.hi <= self.lo:
            raise ValueError(f"quantizer range [{self.lo}, {self.hi}] is empty")

    @property
    def levels(self) -> int:
        """L: the number of spikes the top code needs."""
        return self.hi - self.lo

    @property
    def spikeable(self) -> bool:
        """Unsigned codes from zero: a spike count."""
        return self.lo == 0 and self.zero_point == 0


@dataclass(frozen=True, eq=False)
class Weight:
    """A constant weight tensor: real value = values * scale (scale None: float values)."""

    values: np.ndarray
    scale: np.ndarray | None = None

    @property
    def quantized(self) -> bool:
        return self.scale is not None

    def real(self) -> np.ndarray:
        v = np.asarray(self.values, np.float64)
        return v if self.scale is None else v * self.scale

    @property
    def shape(self) -> Shape:
        return tuple(self.values.shape)


@dataclass(frozen=True, eq=False)
class Dense(Op):
    """y[..., m] = sum_k x[..., k] * W[k, m]   (MatMul by a constant; Gemm without bias)."""

    weight: Weight

    def infer(self, shapes, kinds):
        return _dense_shape(shapes[0], self.weight.values), kinds[0]


@dataclass(frozen=True, eq=False)
class Conv(Op):
    """y = conv2d(x, W) on [C, H, W]; pads are (top, left, bottom, right); no bias."""

    weight: Weight
    strides: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    dilations: tuple[int, int] = (1, 1)
    group: int = 1

    def infer(self, shapes, kinds):
        shape = _conv_shape(shapes[0], self.weight.values, self.strides, self.pads,
                            self.dilations, self.group)
        return shape, kinds[0]


@dataclass(frozen=True, eq=False)
class Affine(Op):
    """y = x * mul + add (constants broadcast against the per-sample shape)."""

    mul: np.ndarray
    add: np.ndarray

    def infer(self, shapes, kinds):
        out = _broadcast([shapes[0], np.shape(self.mul), np.shape(self.add)], "Affine")
        if out != shapes[0]:
            raise ShapeError(f"constants would broadcast {list(shapes[0])} to {list(out)}")
        return out, kinds[0]


@dataclass(frozen=True, eq=False)
class BatchNorm(Op):
    """y = gamma * (x - mean) / sqrt(var + eps) + beta, per channel (axis 0)."""

    gamma: np.ndarray
    beta: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    eps: float

    def infer(self, shapes, kinds):
        if not shapes[0] or shapes[0][0] != len(self.gamma):
            raise ShapeError(f"{len(self.gamma)} channels, input {list(shapes[0])}")
        return shapes[0], kinds[0]

    def as_affine(self, ndim: int) -> tuple[np.ndarray, np.ndarray]:
        """(mul, add) of the equivalent Affine for an input of `ndim` axes."""
        g = self.gamma / np.sqrt(self.var + self.eps)
        shape = (-1,) + (1,) * (ndim - 1)
        return g.reshape(shape), (self.beta - self.mean * g).reshape(shape)


@dataclass(frozen=True, eq=False)
class Add(Op):
    """y = a + b (broadcasting)."""

    arity: ClassVar[int | None] = 2

    def infer(self, shapes, kinds):
        return _broadcast(shapes, "Add"), kinds[0]


@dataclass(frozen=True, eq=False)
class Sub(Op):
    """y = a - b (broadcasting)."""

    arity: ClassVar[int | None] = 2

    def infer(self, shapes, kinds):
        return _broadcast(shapes, "Sub"), kinds[0]


@dataclass(frozen=True, eq=False)
class MatMul(Op):
    """y = a @ b, both activations (Q Kᵀ, A V)."""

    arity: ClassVar[int | None] = 2

    def infer(self, shapes, kinds):
        kind = CURRENT if kinds == [CODES, CODES] else kinds[0]
        return _matmul_shape(shapes[0], shapes[1]), kind


@dataclass(frozen=True, eq=False)
class Relu(Op):
    """y = max(x, 0)."""


@dataclass(frozen=True, eq=False)
class Softmax(Op):
    """y = exp(x) / sum(exp(x)) along `axis` (cannot be spiked; see softmax-to-nrelu)."""

    axis: int


@dataclass(frozen=True, eq=False)
class MaxPool(Op):
    """y = max over each window of [C, H, W] (pads count as -inf)."""

    kernel: tuple[int, int]
    strides: tuple[int, int]
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)

    def infer(self, shapes, kinds):
        return _pool_shape(shapes[0], self.kernel, self.strides, self.pads), kinds[0]


@dataclass(frozen=True, eq=False)
class SumPool(Op):
    """y = sum over each window of [C, H, W] (pads count as 0); AvgPool = SumPool * 1/k."""

    kernel: tuple[int, int]
    strides: tuple[int, int]
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)

    def infer(self, shapes, kinds):
        kind = CURRENT if kinds[0] == CODES else kinds[0]
        return _pool_shape(shapes[0], self.kernel, self.strides, self.pads), kind


@dataclass(frozen=True, eq=False)
class ReduceSum(Op):
    """y = sum of x over `axes` (mean = ReduceSum * 1/n)."""

    axes: tuple[int, ...]
    keepdims: bool = False

    def infer(self, shapes, kinds):
        shape = shapes[0]
        if any(not -len(shape) <= a < len(shape) for a in self.axes):
            raise ShapeError(f"axes {list(self.axes)} out of range for {list(shape)}")
        axes = {a % len(shape) for a in self.axes}
        if self.keepdims:
            out = tuple(1 if i in axes else d for i, d in enumerate(shape))
        else:
            out = tuple(d for i, d in enumerate(shape) if i not in axes)
        return out, CURRENT if kinds[0] == CODES else kinds[0]


# ---------------------------------------------------------------- layout ops (any kind)


@dataclass(frozen=True, eq=False)
class Reshape(Op):
    """y = x viewed with `shape` (row-major)."""

    shape: tuple[int, ...]

    def infer(self, shapes, kinds):
        if int(np.prod(self.shape)) != int(np.prod(shapes[0])):
            raise ShapeError(f"cannot reshape {list(shapes[0])} to {list(self.shape)}")
        return tuple(self.shape), kinds[0]


@dataclass(frozen=True, eq=False)
class Transpose(Op):
    """y = x with axes permuted by `perm`."""

    perm: tuple[int, ...]

    def infer(self, shapes, kinds):
        if sorted(self.perm) != list(range(len(shapes[0]))):
            raise ShapeError(f"perm {list(self.perm)} does not fit {list(shapes[0])}")
        return tuple(shapes[0][p] for p in self.perm), kinds[0]


@dataclass(frozen=True, eq=False)
class Concat(Op):
    """y = concatenation of the inputs along `axis`."""

    axis: int
    arity: ClassVar[int | None] = None

    def infer(self, shapes, kinds):
        if len(set(kinds)) != 1:
            raise ShapeError(f"cannot concatenate values of kinds {kinds}")
        rest = {s[: self.axis] + s[self.axis + 1 :] for s in shapes}
        if len(rest) != 1:
            raise ShapeError(f"shapes {[list(s) for s in shapes]} differ off axis {self.axis}")
        out = list(shapes[0])
        out[self.axis] = sum(s[self.axis] for s in shapes)
        return tuple(out), kinds[0]


@dataclass(frozen=True, eq=False)
class Take(Op):
    """y = x.take(indices, axis) with constant indices (ONNX Gather)."""

    indices: np.ndarray
    axis: int

    def infer(self, shapes, kinds):
        shape = shapes[0]
        if not -len(shape) <= self.axis < len(shape):
            raise ShapeError(f"axis {self.axis} is out of range for {list(shape)}")
        axis = self.axis % len(shape)
        if self.indices.size and not (-shape[axis] <= self.indices.min()
                                      and self.indices.max() < shape[axis]):
            raise ShapeError(f"indices outside 0..{shape[axis] - 1} of axis {axis}")
        return shape[:axis] + self.indices.shape + shape[axis + 1:], kinds[0]


LAYOUT_OPS = (Reshape, Transpose, Concat, Take)

# ---------------------------------------------------------------- SNN ops (integers)


@dataclass(frozen=True, eq=False)
class SpikeInput(Op):
    """codes = clip(round(x / scale) + zp, lo, hi) of the float input x.

    With ``analog`` the codes exceed T levels and feed the first layer as integers (the one
    layer allowed to multiply); with ``weighted`` code c arrives at step 0 as binary spikes
    on ⌈log2(L+1)⌉ lines of weight 1, 2, 4, … (the multi-threshold neurons' encoding);
    otherwise code c is c unit spikes at steps 0..c-1.
    """

    scale: np.ndarray
    zero_point: int
    lo: int
    hi: int
    rounding: Rounding
    analog: bool
    weighted: bool = False
    arity: ClassVar[int | None] = 1

    def infer(self, shapes, kinds):
        if kinds[0] != FLOAT:
            raise ShapeError("SpikeInput encodes a float input")
        return shapes[0], CODES


@dataclass(frozen=True, eq=False)
class Synapse(Op):
    """current = W · spikes: every spike on input i adds row i of the integer weights.

    ``kind`` is ``dense`` (last axis, W [K, M]) or ``conv`` (W [O, I/group, kh, kw]).
    With ``analog`` the input is integer codes and the layer multiplies (MACs).
    """

    weight: np.ndarray
    kind: str = "dense"
    strides: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    dilations: tuple[int, int] = (1, 1)
    group: int = 1
    analog: bool = False

    def __post_init__(self):
        if self.weight.dtype != np.int64:
            raise ValueError("Synapse weights must be int64")
        if self.kind not in ("dense", "conv"):
            raise ValueError(f"unknown synapse kind {self.kind}")

    def infer(self, shapes, kinds):
        if kinds[0] != CODES:
            raise ShapeError(f"a synapse reads spike codes, got {kinds[0]}")
        if self.kind == "dense":
            return _dense_shape(shapes[0], self.weight), CURRENT
        shape = _conv_shape(shapes[0], self.weight, self.strides, self.pads, self.dilations,
                            self.group)
        return shape, CURRENT


@dataclass(frozen=True, eq=False)
class TDMatMul(Op):
    """ΔP(t) = S_A(t)·C_B(t) + C_A(t-1)·S_B(t); over the window, sum = C_A · C_B."""

    arity: ClassVar[int | None] = 2

    def infer(self, shapes, kinds):
        if kinds != [CODES, CODES]:
            raise ShapeError(f"TDMatMul multiplies two spike tensors, got {kinds}")
        return _matmul_shape(shapes[0], shapes[1]), CURRENT


@dataclass(frozen=True, eq=False)
class TDMaxPool(Op):
    """out(t) = maxpool(C(t)) - maxpool(C(t-1)): a binary spike; sum = maxpool(C(T))."""

    kernel: tuple[int, int]
    strides: tuple[int, int]
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)

    def infer(self, shapes, kinds):
        if kinds[0] != CODES:
            raise ShapeError(f"TDMaxPool pools spikes, got {kinds[0]}")
        return _pool_shape(shapes[0], self.kernel, self.strides, self.pads), CODES


@dataclass(frozen=True, eq=False)
class AddCurrent(Op):
    """current = a + b: branch currents meeting in the residual stream."""

    arity: ClassVar[int | None] = 2

    def infer(self, shapes, kinds):
        if kinds != [CURRENT, CURRENT]:
            raise ShapeError(f"AddCurrent adds currents, got {kinds}")
        return _broadcast(shapes, "AddCurrent"), CURRENT


NEURON_MODES = ("if", "signed", "multi")


@dataclass(frozen=True, eq=False)
class Neuron(Op):
    """DIF neuron: v += I(t) every step; from step t_fire it fires by its `mode`:

    - ``if``: spike k (+1) at a step t_fire <= t < t_fire + levels when sign*v >= θ_k; at
      most one spike per step and `levels` in all.
    - ``signed``: as ``if``, and a negative spike (-1) takes the last one back when sign*v
      has fallen below the threshold it crossed (θ_count); one spike (±1) per step, up to
      `levels` steps after its input window closes, so the net count ends at the code.
    - ``multi``: at each step of its window every level still owed at once, #{k >= count :
      sign*v >= θ_k} unit spikes sent as one binary number on ⌈log2(L+1)⌉ weighted lines.

    Whatever the mode, once t_fire follows the input window (exact mode) the count is
    ``#{k : sign*ΣI >= θ_k}``, the quantizer's code. ``t_last`` >= 0 ends the firing
    window early (a run cut at a step budget, ``--latency``). ``scale`` is the real value
    of one spike (for readback and comparison).
    """

    sign: np.ndarray
    thresholds: np.ndarray
    levels: int
    scale: np.ndarray
    t_fire: int = -1
    mode: str = "if"
    t_last: int = -1

    def __post_init__(self):
        if self.mode not in NEURON_MODES:
            raise ValueError(f"unknown neuron mode {self.mode!r}")
        if self.thresholds.shape[-1] != self.levels:
            raise ValueError("one threshold per level")
        if np.any(np.diff(self.thresholds, axis=-1) < 0):
            raise ValueError("thresholds must be non-decreasing")

    def infer(self, shapes, kinds):
        if kinds[0] != CURRENT:
            raise ShapeError(f"a neuron integrates a current, got {kinds[0]}")
        _broadcast([shapes[0], self.sign.shape, self.thresholds.shape[:-1]], "Neuron")
        return shapes[0], CODES

    def uniform_theta(self) -> int | None:
        """θ if every threshold table is evenly spaced by one θ (the classic IF neuron)."""
        th = self.thresholds
        if self.levels < 2:
            return None
        steps = np.diff(th, axis=-1)
        return int(steps.flat[0]) if np.all(steps == steps.flat[0]) else None


@dataclass(frozen=True, eq=False)
class Readout(Op):
    """logits = scale * I + offset (real units); argmax over the integer I + bias."""

    scale: float
    offset: np.ndarray
    bias: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))

    def infer(self, shapes, kinds):
        if kinds[0] != CURRENT:
            raise ShapeError(f"a readout accumulates a current, got {kinds[0]}")
        return shapes[0], CURRENT


SNN_OPS = (SpikeInput, Synapse, TDMatMul, TDMaxPool, AddCurrent, Neuron, Readout, ReduceSum,
           SumPool) + LAYOUT_OPS
