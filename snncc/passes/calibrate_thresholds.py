"""calibrate-thresholds: choose quantizers from data where the model has none (or too many
levels).

- A float input gets an 8-bit quantizer (unsigned if the data is non-negative).
- Every ReLU without a quantizer after it gets an unsigned one with T levels.
- A quantizer with more than T levels is requantized to T levels; one whose codes are
  not spike counts (signed, or a zero point inside its range: onnxruntime's quantizer puts
  one on every tensor) is removed instead, leaving its value to the currents.
Sites are calibrated in graph order, each on the values the model computes with the
quantizers before it in place. Each clip is chosen by `method` (``_clipping``: max,
percentile, MSE- or KL-optimal), one per channel where every reader of the quantizer is
a linear layer over that channel (so the scale folds into its weights). Bias correction
shifts each quantizer's input by a constant per channel (an Affine before it, absorbed
into the neuron's thresholds) so that the mean of its output on the data equals the float
model's, within half a step. The agreement of the model's decisions before and after and
each site's clip and error are recorded in ``graph.meta``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

import numpy as np

from snncc import ops as o
from snncc.intmath import Rounding, quantize
from snncc.ir import Graph
from snncc.passes import _clipping
from snncc.passes._rewrite import bypass
from snncc.passes.base import Pass, PassResult, register
from snncc.reference import evaluate

INPUT_BITS = 8
BIAS_ROUNDS = 4  # fixed-point iterations of the mean-matching shift
_progress: ContextVar[Callable[[int, int], None] | None] = ContextVar("calibration_progress",
                                                                      default=None)


@contextmanager
def calibration_progress(callback: Callable[[int, int], None]) -> Iterator[None]:
    """While active, the pass calls `callback(done, total)` after each full evaluation of
    the model on the data (the CLI's progress bar; pass options hold no callbacks)."""
    token = _progress.set(callback)
    try:
        yield
    finally:
        _progress.reset(token)


@register
@dataclass(frozen=True)
class CalibrateThresholds(Pass):
    name = "calibrate-thresholds"
    data: np.ndarray = field(default_factory=lambda: np.zeros(0), compare=False)
    T: int = 7
    method: str = "mse"
    per_channel: bool = True
    bias_correction: bool = False

    def __post_init__(self):
        if self.method not in _clipping.METHODS:
            raise ValueError(f"unknown clipping method {self.method!r}")

    def run(self, graph: Graph) -> PassResult:
        feeds = {graph.inputs[0]: np.asarray(self.data, np.float64)}
        sites = _sites(graph, self.T)
        report = _progress.get() or (lambda done, total: None)
        total = len(sites) + 2  # the decisions before and after, and one run per site
        before = _decisions(graph, feeds)
        report(1, total)
        placed = []
        for name, kind in sites:  # first, so that the others see the values without them
            if kind == "drop":
                placed.append(_site(graph, name, kind, name, graph.node(name).origin))
                bypass(graph, graph.node(name))
        floats = evaluate(graph, feeds) if self.bias_correction else {}
        for k, (name, kind) in enumerate(sites):
            if kind == "drop":
                continue
            values = evaluate(graph, feeds)
            origin = graph.node(name).origin
            if kind == "input":
                q = _quantize_after(graph, name, _input_quantizer(values[name]))
                placed.append(_site(graph, q, kind, name, origin))
            else:
                placed.append(self._calibrate(graph, name, kind, values, floats.get(name)))
            report(k + 2, total)
        after = _decisions(graph, feeds)
        report(total, total)
        graph.meta["calibration"] = {
            "samples": int(len(self.data)), "quantizers": len(sites),
            "method": self.method, "per_channel": self.per_channel,
            "bias_correction": self.bias_correction,
            "decision_agreement": float(np.mean(before == after)) if len(before) else 1.0,
            "sites": placed,
        }
        return PassResult(graph, bool(sites))

    def _calibrate(self, graph: Graph, name: str, kind: str, values: dict,
                   target: np.ndarray | None) -> dict:
        """Place (relu) or replace (requantize) the quantizer at `name`; its site record."""
        node = graph.node(name)
        rounding = node.op_as(o.QuantAct).rounding if kind == "requantize" else Rounding.HALF_EVEN
        src = node.inputs[0]
        x = np.maximum(values[name if kind == "relu" else src], 0)
        rank = len(node.shape)
        axis = channel_axis(rank)
        scaled = axis is not None and self.per_channel and _channels_fold(graph, name, axis)
        clip = _clipping.choose(_columns(x, axis if scaled else None), self.T, self.method,
                                rounding)
        scale = _broadcast(clip / self.T, axis if scaled else None, rank)
        q = o.QuantAct(scale, 0, 0, self.T, rounding)
        shift = None
        if target is not None and axis is not None:
            shift = _mean_shift(values[src], target, q, axis, kind == "relu")
            _shift_input(graph, name, shift)
        if kind == "relu":
            out = _quantize_after(graph, name, q)
        else:
            graph.replace_op(name, q)
            out = name
        site = _site(graph, out, kind, name, node.origin)
        y = q.scale * quantize(x + (0 if shift is None else shift), q.scale, 0, 0, q.hi,
                               rounding)
        site.update(method=self.method, clip=np.ravel(clip).tolist(), rank=rank,
                    axis=axis if scaled else None,
                    shift=None if shift is None else np.ravel(shift).tolist(),
                    rel_error=_relative_error(y, x))
        return site


def channel_axis(rank: int) -> int | None:
    """The channel axis of one sample: 0 of [C, H, W], the last of [..., D]."""
    if rank == 0:
        return None
    return 0 if rank == 3 else rank - 1


def _channels_fold(graph: Graph, name: str, axis: int) -> bool:
    """Whether a per-channel scale on `name` folds into every reader's weights."""
    users = graph.users(name)
    if not users or name in graph.outputs:
        return False
    for u in users:
        op = u.op
        rank = len(graph.node(name).shape)
        if isinstance(op, o.Dense) and axis == rank - 1:
            continue
        if isinstance(op, o.Conv) and op.group == 1 and axis == 0:
            continue
        if isinstance(op, o.MaxPool) and axis == 0 and _channels_fold(graph, u.name, axis):
            continue
        return False
    return True


def _columns(x: np.ndarray, axis: int | None) -> np.ndarray:
    """x [batch, *sample] as [rows, channels] (one column if axis is None)."""
    if axis is None:
        return x.reshape(-1, 1)
    return np.moveaxis(x, axis + 1, -1).reshape(-1, x.shape[axis + 1])


def _broadcast(c: np.ndarray, axis: int | None, rank: int) -> np.ndarray:
    """Per-channel constants shaped to broadcast against one sample."""
    if axis is None:
        return np.asarray(float(np.ravel(c)[0]))
    return np.asarray(c, np.float64).reshape((-1,) + (1,) * (rank - 1 - axis))


def _mean_shift(pre: np.ndarray, target: np.ndarray, q: o.QuantAct, axis: int,
                relu: bool) -> np.ndarray:
    """δ per channel, |δ| <= scale/2, with mean(q(x + δ)) ≈ mean(target) on the data."""
    rank = pre.ndim - 1
    reduce = tuple(i for i in range(pre.ndim) if i != axis + 1)
    want = np.mean(np.maximum(target, 0) if relu else target, axis=reduce)
    half = np.broadcast_to(np.ravel(np.asarray(q.scale)) / 2, want.shape) if np.size(
        q.scale) in (1, want.size) else np.full(want.shape, float(np.max(q.scale)) / 2)
    delta = np.zeros_like(want)
    for _ in range(BIAS_ROUNDS):
        x = pre + _broadcast(delta, axis, rank)
        x = np.maximum(x, 0) if relu else x
        got = np.mean(q.scale * quantize(x, q.scale, 0, 0, q.hi, q.rounding), axis=reduce)
        delta = np.clip(delta + want - got, -half, half)
    return _broadcast(delta, axis, rank)


def _shift_input(graph: Graph, name: str, shift: np.ndarray) -> None:
    """An Affine x + shift between `name`'s operand and `name`; before a ReLU that feeds
    only `name` (q(relu(x + δ)) = q(relu(x) + δ) for |δ| <= half a step), so that
    absorb-relu still sees the ReLU feed the unsigned quantizer."""
    node = graph.node(name)
    src = graph.node(node.inputs[0])
    if isinstance(src.op, o.Relu) and len(graph.users(src.name)) == 1:
        node = src
    new = graph.add(graph.fresh(f"{node.name}/bias_correction"),
                    o.Affine(np.ones_like(shift), shift), (node.inputs[0],), origin=node.origin)
    graph.replace_op(node.name, node.op, (new,) + tuple(node.inputs[1:]))


def _relative_error(y: np.ndarray, ref: np.ndarray) -> float:
    """RMS of y - ref over the RMS of ref."""
    rms = float(np.sqrt(np.mean(np.square(ref))))
    return float(np.sqrt(np.mean(np.square(y - ref)))) / rms if rms > 0 else 0.0


def _sites(graph: Graph, T: int) -> list[tuple[str, str]]:
    sites = []
    for name in graph.inputs:
        if not any(isinstance(u.op, o.QuantAct) for u in graph.users(name)):
            sites.append((name, "input"))
    for n in graph.topo():
        if isinstance(n.op, o.Relu) and not any(isinstance(u.op, o.QuantAct)
                                                for u in graph.users(n.name)):
            sites.append((n.name, "relu"))
        elif isinstance(n.op, o.QuantAct) and n.op.levels > T and not any(
                isinstance(graph.node(i).op, o.Input) for i in n.inputs):
            sites.append((n.name, "requantize" if n.op.spikeable else "drop"))
    return sites


def _decisions(graph: Graph, feeds) -> np.ndarray:
    out = evaluate(graph, feeds, keep=False)[graph.outputs[0]]
    return out.reshape(len(out), -1).argmax(axis=1)


def _site(graph: Graph, q: str, kind: str, name: str, origin: str | None) -> dict:
    """Where a calibrated quantizer sits, for comparing with the source model (which has
    none there): its node, and the source's value it quantizes: the graph input, the
    output of the ONNX node a ReLU came from, or the input of a requantized quantizer; and
    its scale and levels (the SNN may have no neuron for it: a requantizer whose input is
    already on its grid becomes none)."""
    op = graph.node(q).op_as(o.QuantAct)
    return {"node": q, "kind": kind, "value": name, "origin": origin,
            "rounding": op.rounding.value, "scale": np.ravel(op.scale).tolist(),
            "levels": op.levels}


def _quantize_after(graph: Graph, name: str, q: o.QuantAct) -> str:
    new = graph.add(graph.fresh(f"{name}/calib_quant"), q, (name,), origin=graph.node(name).origin)
    for user in graph.users(name):
        if user.name != new:
            graph.replace_op(user.name, user.op, tuple(new if i == name else i
                                                       for i in user.inputs))
    graph.outputs = [new if x == name else x for x in graph.outputs]
    return new


def _input_quantizer(x: np.ndarray) -> o.QuantAct:
    if x.min() >= 0:
        hi = 2**INPUT_BITS - 1
        return o.QuantAct(np.asarray(max(float(x.max()), 1e-12) / hi), 0, 0, hi)
    hi = 2 ** (INPUT_BITS - 1) - 1
    return o.QuantAct(np.asarray(max(float(np.abs(x).max()), 1e-12) / hi), 0, -hi, hi)
