"""Simulate a dataset in chunks and count operations as the spike trains go by.

Counting needs every neuron's spike train, so each chunk is simulated with tracing on,
counted, and its trains dropped (unless the caller keeps them). The first sample's trains
are kept, bit-packed, as spike rasters for the report.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from snncc.backends.sim.engine import SimResult
from snncc.energy import OpCounts, count_ops
from snncc.errors import Diagnostic, SnnccError

RASTER_NEURONS = 256  # neurons per layer kept in a raster (the first ones, row-major)
COUNT_CHUNK = 32  # inputs per counted chunk: bounds the memory of the per-step replay


@dataclass
class Measurement:
    result: SimResult
    counts: OpCounts
    rasters: dict[str, dict] = field(default_factory=dict)


def measure(model, x: np.ndarray, *, engine: str = "auto", trace: bool = False,
            progress: Callable[[int], None] | None = None) -> Measurement:
    """Run `model` on `x` and count every layer's operations (see snncc.energy)."""
    x = model.check_input(x)
    parts: list[SimResult] = []
    counts = OpCounts()
    rasters: dict[str, dict] = {}
    for start in range(0, len(x), COUNT_CHUNK):
        chunk = x[start:start + COUNT_CHUNK]
        r = model.simulate(chunk, engine=engine, trace=True, batch_size=len(chunk))
        counts.merge(count_ops(model.graph, chunk, r.trains))
        if not rasters:
            rasters = {name: pack_raster(t[:, 0]) for name, t in r.trains.items()}
        if not trace:
            r.trains = None
        parts.append(r)
        if progress:
            progress(len(chunk))
    return Measurement(concat(parts), counts, rasters)


def summarize(model, x: np.ndarray, y: np.ndarray | None, m: Measurement, engine: str) -> dict:
    """The model-level figures of a run: accuracy, firing rates, conversion error."""
    from snncc.simulate import conversion_error

    r = m.result
    summary: dict = {"inputs": len(x), "steps": r.steps, "engine": engine,
                     "firing_rates": r.firing_rates(model.graph),
                     "conversion_error": (conversion_error(model, x, r.counts)
                                          if model.delay != "exact" else None)}
    if y is not None:
        summary["accuracy"] = float(np.mean(r.predictions == check_labels(y, len(x))))
    return summary


def check_labels(y: np.ndarray, n: int) -> np.ndarray:
    y = np.asarray(y).reshape(-1)
    if len(y) != n:
        raise SnnccError(Diagnostic(f"{len(y)} labels for {n} inputs",
                                    fix="pass one label per input"))
    return y


def concat(parts: list[SimResult]) -> SimResult:
    first = parts[0]
    all_trains = [p.trains for p in parts if p.trains is not None]
    trains = None
    if len(all_trains) == len(parts):
        trains = {k: np.concatenate([t[k] for t in all_trains], axis=1) for k in all_trains[0]}
    return SimResult(np.concatenate([p.logits for p in parts]),
                     np.concatenate([p.logits_int for p in parts]),
                     {k: np.concatenate([p.counts[k] for p in parts]) for k in first.counts},
                     first.steps, trains)


def pack_raster(train: np.ndarray, cap: int = RASTER_NEURONS) -> dict:
    """One sample's spike train [T, ...] as JSON: the first `cap` neurons, bit-packed."""
    flat = train.reshape(len(train), -1)
    shown = flat[:, :cap].astype(np.uint8)
    return {"steps": int(flat.shape[0]), "neurons": int(flat.shape[1]),
            "shown": int(shown.shape[1]),
            "bits": base64.b64encode(np.packbits(shown).tobytes()).decode()}


def unpack_raster(raster: dict) -> np.ndarray:
    """[T, shown] uint8 spikes of a `pack_raster` record."""
    steps, shown = raster["steps"], raster["shown"]
    bits = np.frombuffer(base64.b64decode(raster["bits"]), np.uint8)
    return np.unpackbits(bits)[: steps * shown].reshape(steps, shown)
