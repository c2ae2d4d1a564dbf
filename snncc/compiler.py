"""The Python API; the CLI is a thin layer over it.

>>> import snncc
>>> model = snncc.compile("vit.onnx", T=7)
>>> result = model.simulate(x)          # x: [batch, ...] float32
>>> result.predictions, result.logits
>>> model.save("build/model.snn"); snncc.load("build/model.snn")
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from snncc import ops as o
from snncc.backends.sim import artifact
from snncc.backends.sim.engine import LayerMap, SimResult, run_fast, run_step
from snncc.errors import Diagnostic, SnnccError
from snncc.ir import Graph
from snncc.reference import evaluate
from snncc.schedule import neuron_layers_on_path, total_steps

if TYPE_CHECKING:
    from snncc.frontend.importer import InputShape
    from snncc.passes.pipeline import PassTiming


@dataclass
class CompiledModel:
    """A compiled SNN: simulate it, save it, hand it to a hardware backend."""

    graph: Graph
    source: Path | None = None
    timings: list[PassTiming] = field(default_factory=list)

    @property
    def T(self) -> int:
        return int(self.graph.meta.get("T", 0))

    @property
    def delay(self) -> str | int:
        return self.graph.meta.get("delay", "exact")

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.graph.node(self.graph.inputs[0]).shape

    @property
    def steps(self) -> int:
        """End-to-end time steps of one inference."""
        return total_steps(self.graph)

    @property
    def neuron_layers(self) -> int:
        return neuron_layers_on_path(self.graph)

    def check_form(self, x, name: str = "input", file: str = ""):
        """x's dtype and shape checked without reading its values (x may be memory-mapped,
        or any array-like with shape, dtype and slicing); a single sample gets a batch
        axis."""
        if not hasattr(x, "shape") or not hasattr(x, "dtype"):
            x = np.asarray(x)
        if x.dtype.kind not in "fiu":
            raise SnnccError(Diagnostic(f"{name} has dtype {x.dtype}, not a number type",
                                        fix="pass a float array", file=file))
        shape = self.input_shape
        if tuple(x.shape) == shape:
            x = np.asarray(x)[None]
        if tuple(x.shape[1:]) != shape:
            raise SnnccError(Diagnostic(
                f"{name} has shape {list(x.shape)}; the model takes [batch, "
                f"{', '.join(map(str, shape))}]", fix="reshape the input array", file=file))
        if len(x) == 0:
            raise SnnccError(Diagnostic(f"{name} has no samples (shape {list(x.shape)})",
                                        fix="pass at least one", file=file))
        return x

    def check_input(self, x: np.ndarray, name: str = "input", file: str = "",
                    offset: int = 0) -> np.ndarray:
        """The input as a float64 batch; a clear error (naming `file`, if given) if its
        shape or values are wrong. `offset`: the index of x's first sample in the data set
        (for the message)."""
        x = np.asarray(self.check_form(x, name, file))
        if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
            bad = np.argwhere(~np.isfinite(x))[0]
            bad[0] += offset
            raise SnnccError(Diagnostic(
                f"{name} contains NaN or Inf (first at index {list(map(int, bad))})",
                fix="clean the input", file=file))
        return x.astype(np.float64, copy=False)

    def simulate(self, x: np.ndarray | str | Path, engine: str = "auto", trace: bool = False,
                 batch_size: int = 256, progress: Callable[[int], None] | None = None,
                 ray: str | None = None, workers: int | None = None) -> SimResult:
        """Run the SNN on a batch (an array, or a .npy/.npz file as --input takes it).
        engine: 'fast' (exact mode), 'step', or 'auto'.

        ray: 'local' (a local Ray instance), 'auto' (RAY_ADDRESS) or a cluster's address:
        the batches run on `workers` Ray workers (default: one per CPU; snncc.runtime.cluster,
        needs snncc[cluster]); the result is the same as without. `counts` and `trains`
        are keyed by layer name (``LayerMap``: the names the tables show; the IR and ONNX
        node names find the same arrays)."""
        return self.run(_array(x), engine, trace, batch_size, progress, ray,
                        workers).named(self.graph)

    def run(self, x: np.ndarray, engine: str = "auto", trace: bool = False,
            batch_size: int = 256, progress: Callable[[int], None] | None = None,
            ray: str | None = None, workers: int | None = None) -> SimResult:
        """`simulate` with counts and trains keyed by IR node name, as the tools inside
        snncc use them."""
        if ray is not None:
            from snncc.runtime.cluster import run_batches

            x = self.check_form(x)
            batches = (x[i:i + batch_size] for i in builtins.range(0, len(x), batch_size))
            return _concat(run_batches(artifact.to_bytes(self.graph), load, batches, ray,
                                       _simulate_batch,
                                       lambda k: {"engine": engine, "trace": trace},
                                       progress, workers))
        x = self.check_input(x)
        if engine == "auto":
            engine = "fast" if self.delay == "exact" else "step"
        if engine not in ("fast", "step"):
            raise SnnccError(Diagnostic(f"unknown engine {engine!r}", fix="use fast or step"))
        if engine == "fast" and self.delay != "exact":
            raise SnnccError(Diagnostic(
                f"the fast engine computes exact mode only (this model uses --delay "
                f"{self.delay})", fix="use --engine step"))
        run = run_fast if engine == "fast" else run_step
        parts = []
        for start in builtins.range(0, len(x), batch_size):
            parts.append(run(self.graph, x[start:start + batch_size], trace))
            if progress:
                progress(len(parts[-1].logits))
        return _concat(parts)

    def reference(self, x: np.ndarray | str | Path) -> LayerMap:
        """The integer reference: every neuron's code and the readout, no time; keyed by
        layer name as `simulate`'s counts."""
        values = evaluate(self.graph, {self.graph.inputs[0]: self.check_input(_array(x))})
        return LayerMap({n.name: values[n.name] for n in self.graph.topo()
                         if isinstance(n.op, o.Neuron | o.Readout)}, self.graph)

    def save(self, path: str | Path) -> None:
        artifact.save(self.graph, path)


def _array(x):
    """An array, or a .npy/.npz file's (as --input reads it)."""
    if not isinstance(x, str | Path):
        return x
    from snncc.runtime.inputs import load_array

    return load_array(Path(x), "input")


def _simulate_batch(model: CompiledModel, x: np.ndarray, **options) -> SimResult:
    """One batch of `CompiledModel.run` on a Ray worker."""
    return model.run(x, batch_size=len(x), **options)


def _concat(parts: list[SimResult]) -> SimResult:
    first = parts[0]
    if len(parts) == 1:
        return first
    trains = None
    if first.trains is not None:
        trains = {k: np.concatenate([p.trains[k] for p in parts if p.trains is not None], axis=1)
                  for k in first.trains}
    return SimResult(np.concatenate([p.logits for p in parts]),
                     np.concatenate([p.logits_int for p in parts]),
                     {k: np.concatenate([p.counts[k] for p in parts]) for k in first.counts},
                     first.steps, trains)


def check_window(T: object) -> int:
    """-T: the spike window, a positive integer."""
    if isinstance(T, bool) or not isinstance(T, int | np.integer) or T < 1:
        raise SnnccError(Diagnostic(f"-T must be a positive integer, not {T}",
                                    fix="pass the spike window, e.g. -T 7"))
    return int(T)


def check_neuron(neuron: object, delay: object = "exact") -> str:
    """--neuron: one of the neuron kinds (a multi-threshold neuron is always exact)."""
    if neuron not in o.NEURON_MODES:
        raise SnnccError(Diagnostic(f"unknown neuron kind {neuron!r}",
                                    fix=f"use one of {', '.join(o.NEURON_MODES)}"))
    if neuron == "multi" and delay != "exact":
        raise SnnccError(Diagnostic(
            f"--neuron multi sends each code in one step once its input is complete; "
            f"--delay {delay} does not apply to it",
            fix="leave --delay out (multi is exact), or use --neuron if|signed"))
    return str(neuron)


def check_calibration(method: object) -> None:
    """--calibration: one of the clipping methods."""
    from snncc.passes._clipping import METHODS

    if method not in METHODS:
        raise SnnccError(Diagnostic(f"unknown calibration method {method!r}",
                                    fix=f"use one of {', '.join(METHODS)}"))


def check_latency(latency: object, neuron: str, delay: object, data: object) -> None:
    """--latency: a positive step budget, for unit-spike (if) neurons, with data."""
    if latency is None:
        return
    if isinstance(latency, bool) or not isinstance(latency, int | np.integer) or latency < 1:
        raise SnnccError(Diagnostic(f"--latency must be a positive number of steps, not "
                                    f"{latency}", fix="e.g. --latency 28 (4 T at T = 7)"))
    if neuron == "multi":
        raise SnnccError(Diagnostic(
            "--neuron multi is exact in one step a layer; --latency does not apply to it",
            fix="leave --latency out, or use --neuron if|signed"))
    if delay != "exact":
        raise SnnccError(Diagnostic(f"--latency chooses the delays itself; --delay {delay} "
                                    "contradicts it", fix="pass one of --latency, --delay"))
    if data is None:
        raise SnnccError(Diagnostic("--latency needs inputs to choose the delays on",
                                    fix="pass --calibrate DATA (a few hundred inputs)"))


def compile(model: str | Path, T: int = 7, *, delay: str | int = "exact",
            calibrate: np.ndarray | str | Path | None = None, replace_softmax: bool = False,
            frac_bits: int | None = None, dump_dir: str | Path | None = None,
            print_after: Callable[[str, str], None] | None = None,
            input_shape: InputShape = None, neuron: str = "if",
            latency: int | None = None,
            latency_progress: Callable[[int, int], None] | None = None,
            calibration: str = "mse", per_channel: bool = True,
            bias_correction: bool = False) -> CompiledModel:
    """Import an ONNX model and convert it to a spike-driven SNN.

    With `calibrate` data: `calibration` chooses each activation quantizer's clip (max,
    percentile, mse or kl), `per_channel` lets a quantizer have a scale per channel where
    its readers' weights absorb it, `bias_correction` keeps each one's mean on the data.

    `input_shape` pins the shape of one sample (batch excluded) where the model leaves
    dimensions free: a tuple, or a dict by input name for a model with several inputs.
    """
    T = check_window(T)
    if frac_bits is not None and (isinstance(frac_bits, bool) or not isinstance(
            frac_bits, int | np.integer) or not 0 <= frac_bits <= 62):
        raise SnnccError(Diagnostic(f"--frac-bits must be an integer from 0 to 62, not "
                                    f"{frac_bits}", fix="leave it out to let snncc choose"))
    if isinstance(calibrate, str | Path):  # a file, as the CLI takes it
        from snncc.runtime.inputs import load_array

        calibrate = load_array(Path(calibrate), "--calibrate")
    from snncc.frontend.importer import import_onnx  # onnx loads in ~1 s: only to compile
    from snncc.passes.pipeline import Options, default_pipeline, run_pipeline

    graph = import_onnx(model, input_shape)
    if calibrate is not None:
        calibrate = CompiledModel(graph).check_input(calibrate, "calibration data")
    neuron = check_neuron(neuron, delay)
    check_latency(latency, neuron, delay, calibrate)
    check_calibration(calibration)
    opts = Options(T=T, delay=delay, replace_softmax=replace_softmax, calibrate=calibrate,
                   frac_bits=frac_bits, neuron=neuron, calibration=calibration,
                   per_channel=per_channel, bias_correction=bias_correction)
    try:
        snn, timings = run_pipeline(graph, default_pipeline(opts), print_after=print_after,
                                    dump_dir=Path(dump_dir) if dump_dir else None)
    except SnnccError as e:
        raise e.with_file(str(model)) from None
    if latency is not None:
        from snncc.runtime import latency as fitter

        assert calibrate is not None  # check_latency: --latency needs data
        try:
            snn = fitter.fit(snn, int(latency), calibrate, latency_progress)
        except SnnccError as e:
            raise e.with_file(str(model)) from None
    snn.meta["source"] = Path(model).name
    return CompiledModel(snn, Path(model), timings)


def load(path: str | Path, *, frozen: bool = False) -> CompiledModel:
    """Load a model.snn written by `CompiledModel.save` / `snncc compile`. `frozen`: its
    graph read-only (``ir.FrozenGraph``), to be run, as `snncc simulate` does: loading it
    imports no networkx; ``model.graph.copy()`` gives a graph to rewrite."""
    return CompiledModel(artifact.load(path, frozen))
