"""calibrate-thresholds: choose quantizers from data where the model has none (or too many
levels).

- A float input gets an 8-bit quantizer (unsigned if the data is non-negative).
- Every ReLU without a quantizer after it gets an unsigned one with T levels.
- A quantizer with more than T levels is requantized to T levels; one whose codes are
  not spike counts (signed, or a zero point inside its range: onnxruntime's quantizer puts
  one on every tensor) is removed instead, leaving its value to the currents.
Each new scale minimizes the squared quantization error over a few clipping candidates
on the calibration data (layer by layer, with the layers before already quantized). The
agreement of the model's decisions before and after is recorded in ``graph.meta``.
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
from snncc.passes._rewrite import bypass
from snncc.passes.base import Pass, PassResult, register
from snncc.reference import evaluate

INPUT_BITS = 8
PERCENTILES = (99.0, 99.9, 99.99, 100.0)
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
        for k, (name, kind) in enumerate(sites):
            if kind == "drop":
                continue
            values = evaluate(graph, feeds)[name]
            origin = graph.node(name).origin
            if kind == "input":
                q = _quantize_after(graph, name, _input_quantizer(values))
            elif kind == "relu":
                q = _quantize_after(graph, name, _best_quantizer(values, self.T))
            else:
                old: o.QuantAct = graph.node(name).op
                src = evaluate(graph, feeds)[graph.node(name).inputs[0]]
                graph.replace_op(name, _best_quantizer(src, self.T, old.rounding))
                q = name
            placed.append(_site(graph, q, kind, name, origin))
            report(k + 2, total)
        after = _decisions(graph, feeds)
        report(total, total)
        graph.meta["calibration"] = {
            "samples": int(len(self.data)), "quantizers": len(sites),
            "decision_agreement": float(np.mean(before == after)) if len(before) else 1.0,
            "sites": placed,
        }
        return PassResult(graph, bool(sites))


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
    op: o.QuantAct = graph.node(q).op
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


def _best_quantizer(x: np.ndarray, levels: int,
                    rounding: Rounding = Rounding.HALF_EVEN) -> o.QuantAct:
    """The unsigned `levels`-level quantizer with the least squared error on `x`."""
    pos = np.maximum(np.asarray(x, np.float64).ravel(), 0)
    best, best_err = None, np.inf
    for p in PERCENTILES:
        top = float(np.percentile(pos, p)) if pos.size else 0.0
        if top <= 0:
            continue
        scale = np.asarray(top / levels)
        err = float(np.mean((scale * quantize(pos, scale, 0, 0, levels, rounding) - pos) ** 2))
        if err < best_err:
            best, best_err = scale, err
    return o.QuantAct(best if best is not None else np.asarray(1.0), 0, 0, levels, rounding)
