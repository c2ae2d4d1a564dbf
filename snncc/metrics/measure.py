"""Simulate a dataset batch by batch and gather what `snncc simulate` reports.

Per batch: the engine's logits and spike counts, and the operation counts. In exact mode
with unit-spike neurons those come from the spike counts alone (snncc.metrics.tally: every train
is a run of spikes, fixed by its count and its start), so no train is expanded unless
--trace asks for them. Otherwise timing matters: each batch is simulated with tracing on
in chunks, counted from the trains (snncc.metrics.energy), and the trains dropped (unless kept).

A batch's figures are integers (spikes, differing codes, operations) and its outputs per
input; merging batches concatenates the outputs and adds the integers, so any split of
the inputs (local batches, Ray workers) gives the same result. The first sample's trains
are kept, bit-packed, as spike rasters for the report.
"""

from __future__ import annotations

import base64
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from snncc import ops as o
from snncc.backends.sim.engine import SimResult, exact_train
from snncc.errors import Diagnostic, SnnccError
from snncc.metrics.energy import OpCounts, count_ops

RASTER_NEURONS = 256  # neurons per layer kept in a raster (the first ones, row-major)
COUNT_CHUNK = 32  # inputs per counted chunk under a non-exact delay: bounds the replay
FIGURES_AHEAD = 1  # simulated batches whose figures may wait to be counted


@dataclass
class Measurement:
    """What a run gathered: outputs per input, everything else summed over the inputs."""

    logits: np.ndarray
    logits_int: np.ndarray
    steps: int
    counts: OpCounts
    spikes: dict[str, int]  # per neuron layer: spikes over all inputs
    differing: dict[str, int] | None = None  # non-exact delay: counts != the exact codes
    rasters: dict[str, dict] = field(default_factory=dict)
    trains: dict[str, np.ndarray] | None = None  # [T, inputs, ...], if asked for
    per_input: dict[str, np.ndarray] | None = None  # every neuron's counts, if asked for

    @property
    def inputs(self) -> int:
        return len(self.logits)

    @property
    def predictions(self) -> np.ndarray:
        return self.logits_int.reshape(self.inputs, -1).argmax(axis=1)

    @property
    def result(self) -> SimResult:
        """The run as `CompiledModel.run` returns it (measured with keep_counts)."""
        if self.per_input is None:
            raise ValueError("measure(..., keep_counts=True) keeps every input's counts")
        return SimResult(self.logits, self.logits_int, self.per_input, self.steps,
                         self.trains)

    def spikes_per_neuron(self, graph, name: str) -> float:
        """The mean count of the layer's neurons (as numpy's mean of the counts gives it)."""
        size = self.inputs * int(np.prod(graph.node(name).shape))
        return float(np.float64(self.spikes[name]) / size)

    def firing_rates(self, graph) -> dict[str, float]:
        """Spikes per neuron per step of its window, per layer."""
        return {n.name: float(np.float64(self.spikes_per_neuron(graph, n.name))
                              / max(n.op.levels, 1)) for n in graph.ops(o.Neuron)}

    def conversion_error(self, graph) -> dict[str, float] | None:
        """Per neuron layer: the fraction of counts that differ from the exact codes."""
        if self.differing is None:
            return None
        return {name: float(np.float64(k) / (self.inputs * int(np.prod(graph.node(name).shape))))
                for name, k in self.differing.items()}


def merge(parts: list[Measurement]) -> Measurement:
    """The measurement of the inputs of `parts`, in order."""
    first = parts[0]
    counts = OpCounts()
    for p in parts:
        counts.merge(p.counts)
    trains = None
    if first.trains is not None and all(p.trains is not None for p in parts):
        trains = {k: np.concatenate([p.trains[k] for p in parts if p.trains is not None],
                                    axis=1) for k in first.trains}
    differing = None
    if first.differing is not None:
        differing = {k: sum(p.differing[k] for p in parts if p.differing is not None)
                     for k in first.differing}
    per_input = None
    if first.per_input is not None:
        per_input = {k: np.concatenate([p.per_input[k] for p in parts
                                        if p.per_input is not None]) for k in first.per_input}
    return Measurement(np.concatenate([p.logits for p in parts]),
                       np.concatenate([p.logits_int for p in parts]), first.steps, counts,
                       {k: sum(p.spikes[k] for p in parts) for k in first.spikes},
                       differing, first.rasters, trains, per_input)


def measure_batch(model, x: np.ndarray, *, engine: str = "auto", trace: bool = False,
                  rasters: bool = False, keep_counts: bool = False) -> Measurement:
    """One batch (checked, float64): outputs, spike totals and operation counts (and
    every input's spike counts with `keep_counts`)."""
    return _figures(model, x, *_simulated(model, x, engine, trace, rasters), trace=trace,
                    keep_counts=keep_counts)


def _simulated(model, x: np.ndarray, engine: str, trace: bool, rasters: bool
               ) -> tuple[SimResult, OpCounts | None, dict[str, dict]]:
    """A batch's run (with its operation counts where they need the trains, else None)
    and, with `rasters`, its first sample's packed rasters."""
    from snncc.metrics.tally import counts_suffice

    if counts_suffice(model.graph):
        r, ops = model.run(x, engine=engine, trace=trace, batch_size=len(x)), None
    else:
        r, ops = _traced(model, x, engine, trace)
    packed = {}
    if rasters and (engine == "fast" or (engine == "auto" and model.delay == "exact")):
        packed = exact_rasters(model.graph, {k: v[0] for k, v in r.counts.items()}, r.steps)
    elif rasters:
        first = model.run(x[:1], engine=engine, trace=True, batch_size=1)
        packed = {name: pack_raster(t[:, 0]) for name, t in first.trains.items()}
    return r, ops, packed


def exact_rasters(graph, counts: dict[str, np.ndarray], steps: int,
                  cap: int = RASTER_NEURONS) -> dict[str, dict]:
    """`pack_raster` of one sample's trains in exact mode, from its `counts` (by neuron
    layer), each train made for the first `cap` neurons alone: the whole trains of a
    DeiT-tiny-scale model would take steps x neurons bytes (4.4 GB)."""
    out = {}
    for name, c in counts.items():
        flat = np.asarray(c).reshape(-1)
        train = exact_train(graph.node(name).op_as(o.Neuron), flat[:cap], steps)
        out[name] = pack_raster(train, cap, neurons=flat.size)
    return out


def _figures(model, x: np.ndarray, r: SimResult, ops: OpCounts | None,
             rasters: dict[str, dict], *, trace: bool, keep_counts: bool) -> Measurement:
    """A simulated batch's Measurement: operation counts from its spike counts (unless
    `ops` has them already), spike totals, codes that differ from the exact ones."""
    from snncc.metrics.tally import count_from_counts

    if ops is None:
        ops = count_from_counts(model.graph, x, r.counts)
        spikes = {k: ops.layers[k].spikes for k in r.counts}  # the counts' sums, once
    else:
        spikes = {k: int(v.sum(dtype=np.int64)) for k, v in r.counts.items()}
    differing = None
    if model.delay != "exact":
        ref = model.reference(x)
        differing = {k: int(np.count_nonzero(r.counts[k] != ref[k])) for k in r.counts}
    return Measurement(r.logits, r.logits_int, r.steps, ops, spikes, differing, rasters,
                       trains=r.trains if trace else None,
                       per_input=r.counts if keep_counts else None)


def _traced(model, x: np.ndarray, engine: str, keep: bool) -> tuple[SimResult, OpCounts]:
    """Simulate with trains in chunks and count operations from them."""
    parts, ops = [], OpCounts()
    for start in range(0, len(x), COUNT_CHUNK):
        chunk = x[start:start + COUNT_CHUNK]
        r = model.run(chunk, engine=engine, trace=True, batch_size=len(chunk))
        ops.merge(count_ops(model.graph, chunk, r.trains))
        if not keep:
            r.trains = None
        parts.append(r)
    return concat(parts), ops


def batches(model, x: np.ndarray, batch_size: int, file: str = ""
            ) -> Iterator[tuple[int, np.ndarray]]:
    """(start, checked float64 batch): only one batch of `x` (which may be memory-mapped,
    or a snncc.runtime.datasets.Shards) is read and converted at a time. `file` names x in
    messages."""
    x = model.check_form(x, file=file)
    for start in range(0, len(x), batch_size):
        yield start, model.check_input(x[start:start + batch_size], file=file, offset=start)


def measure(model, x: np.ndarray, *, engine: str = "auto", trace: bool = False,
            progress: Callable[[int], None] | None = None, batch_size: int = 256,
            ray: str | None = None, workers: int | None = None, file: str = "",
            keep_counts: bool = False) -> Measurement:
    """Run `model` on `x` batch by batch and gather outputs and figures (see Measurement);
    `progress(n)` as n more inputs are done. With `ray` (an address, see snncc.runtime.cluster),
    on `workers` Ray workers (default: one per CPU of the cluster), `progress(1)` per
    batch done. `file` names x in messages; `keep_counts` keeps every input's spike
    counts (``Measurement.result``), which the command does not need."""
    if ray is not None:
        return _on_cluster(model, x, ray, batch_size, progress, workers, file,
                           {"engine": engine, "trace": trace, "keep_counts": keep_counts})
    # A batch's figures are counted on a thread of their own while the engine runs the
    # next batch (the engine leaves a core idle between its parallel layers); at most
    # FIGURES_AHEAD batches wait to be counted, so memory stays bounded by the batch.
    gathered = _Gather(len(x))
    pending: deque[Future[Measurement]] = deque()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="snncc-figures") as figures:
        try:
            for start, xb in batches(model, x, batch_size, file):
                simulated = _simulated(model, xb, engine, trace, start == 0)
                pending.append(figures.submit(_figures, model, xb, *simulated, trace=trace,
                                              keep_counts=keep_counts))
                while len(pending) > FIGURES_AHEAD:
                    gathered.add(pending.popleft().result())
                if progress:
                    progress(len(xb))
            while pending:
                gathered.add(pending.popleft().result())
        finally:
            for f in pending:
                f.cancel()
    return gathered.measurement()


class _Gather:
    """`merge` of the batches' measurements as they come, in order, without keeping
    them: the outputs written into arrays for all `total` inputs (allocated at the first
    batch: no list of batches to join at the end, which would hold every output twice),
    the figures summed; only trains and per-input counts, when asked for, are kept and
    joined at the end."""

    def __init__(self, total: int):
        self.total, self.done, self.batches = total, 0, 0
        self.first: Measurement | None = None
        self.logits = self.logits_int = np.zeros(0)
        self.counts = OpCounts()
        self.spikes: dict[str, int] = {}
        self.differing: dict[str, int] | None = None
        self.trains: list[dict[str, np.ndarray]] = []
        self.per_input: list[dict[str, np.ndarray]] = []

    def add(self, p: Measurement) -> None:
        if self.first is None:
            self.first = p
            self.logits = np.empty((self.total,) + p.logits.shape[1:], p.logits.dtype)
            self.logits_int = np.empty((self.total,) + p.logits_int.shape[1:],
                                       p.logits_int.dtype)
            self.spikes = dict.fromkeys(p.spikes, 0)
            self.differing = None if p.differing is None else dict.fromkeys(p.differing, 0)
        n = len(p.logits)
        self.batches += 1
        self.logits[self.done:self.done + n] = p.logits
        self.logits_int[self.done:self.done + n] = p.logits_int
        self.done += n
        self.counts.merge(p.counts)
        for k in self.spikes:
            self.spikes[k] += p.spikes[k]
        if self.differing is not None and p.differing is not None:
            for k in self.differing:
                self.differing[k] += p.differing[k]
        if p.trains is not None:
            self.trains.append(p.trains)
        if p.per_input is not None:
            self.per_input.append(p.per_input)

    def measurement(self) -> Measurement:
        first = self.first
        assert first is not None and self.done == self.total, "every batch gathered"
        trains = None
        if first.trains is not None and len(self.trains) == self.batches:
            trains = {k: np.concatenate([t[k] for t in self.trains], axis=1)
                      for k in first.trains}
        per_input = None
        if first.per_input is not None:
            per_input = {k: np.concatenate([c[k] for c in self.per_input])
                         for k in first.per_input}
        return Measurement(self.logits, self.logits_int, first.steps, self.counts,
                           self.spikes, self.differing, first.rasters, trains, per_input)


def _on_cluster(model, x: np.ndarray, address: str, batch_size: int,
                progress: Callable[[int], None] | None, workers: int | None, file: str,
                options: dict) -> Measurement:
    """`measure` with the batches on Ray workers; `progress(1)` per batch done."""
    from snncc.backends.sim import artifact
    from snncc.compiler import load
    from snncc.runtime.cluster import run_batches

    x = model.check_form(x, file=file)
    parts = (xb for _, xb in batches(model, x, batch_size, file))
    done = (lambda n: progress(1)) if progress else None  # noqa: E731
    return merge(run_batches(artifact.to_bytes(model.graph), load, parts, address,
                             measure_batch, lambda k: {**options, "rasters": k == 0}, done,
                             workers))


def summarize(model, y: np.ndarray | None, m: Measurement, engine: str) -> dict:
    """The model-level figures of a run: accuracy, firing rates, conversion error."""
    summary: dict = {"inputs": m.inputs, "steps": m.steps, "engine": engine}
    if y is not None:
        summary["accuracy"] = float(np.mean(m.predictions == check_labels(y, m.inputs)))
    summary["firing_rates"] = m.firing_rates(model.graph)
    summary["conversion_error"] = m.conversion_error(model.graph)
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


def pack_raster(train: np.ndarray, cap: int = RASTER_NEURONS, neurons: int | None = None
                ) -> dict:
    """One sample's spike train [T, ...] as JSON: the first `cap` neurons, bit-packed
    (`neurons`: the layer's, when `train` holds only the first ones)."""
    flat = train.reshape(len(train), -1)
    shown = flat[:, :cap].astype(np.uint8)
    return {"steps": int(flat.shape[0]),
            "neurons": int(flat.shape[1] if neurons is None else neurons),
            "shown": int(shown.shape[1]),
            "bits": base64.b64encode(np.packbits(shown).tobytes()).decode()}


def unpack_raster(raster: dict) -> np.ndarray:
    """[T, shown] uint8 spikes of a `pack_raster` record."""
    steps, shown = raster["steps"], raster["shown"]
    bits = np.frombuffer(base64.b64decode(raster["bits"]), np.uint8)
    return np.unpackbits(bits)[: steps * shown].reshape(steps, shown)
