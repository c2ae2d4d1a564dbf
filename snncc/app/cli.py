"""The `snncc` command: a thin layer over the Python API.

Every user-facing problem is an SnnccError: the CLI prints its diagnostics and exits 1,
with no traceback unless --debug is given.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from snncc.app.files import _file_in_the_way, atomic_dir, write_build
from snncc.backends import registry
from snncc.errors import Diagnostic, SnnccError
from snncc.runtime import inputs
from snncc.version import __version__

if TYPE_CHECKING:  # onnx, which the importer loads, takes ~1 s: only commands that import
    from snncc.frontend.importer import InputShape


def _type_column(param, ctx) -> str | None:
    """The type column of --help: a flag takes no value, so nothing (typer would show
    `<bool>` beside every flag, --help included); other options as typer shows them."""
    return None if getattr(param, "is_flag", False) else _TYPER_TYPE_COLUMN(param, ctx)


_TYPER_TYPE_COLUMN = typer.core.TyperOption.display_type_rich
# a patch of typer's class (mypy rightly refuses assigning to a method)
setattr(typer.core.TyperOption, "display_type_rich", _type_column)  # noqa: B010

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Compile quantized ANN transformers (ONNX) into spike-driven SNNs.")
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
TARGETS = ("sim", *registry.TARGETS, "all")  # sim: the interpreter alone
RTL_SIMULATORS = ("auto", "icarus", "verilator")
FORCE_HELP = ("Write into an output folder that holds other files (snncc's own entries "
              "are replaced; nothing else is touched).")
SHAPE_HELP = ("Pin free input dimensions: the shape of one sample without the batch, "
              "e.g. 1,8,8 (or x=1,8,8 per input).")
_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        out.print(f"snncc {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
) -> None:
    _state["debug"] = debug


# ---------------------------------------------------------------- inputs




def parse_input_shape(values: list[str] | None) -> InputShape:
    """--input-shape 1,8,8 (the only input) or --input-shape x=1,8,8 (repeatable)."""
    if not values:
        return None
    named: dict[str, tuple[int, ...]] = {}
    for value in values:
        name, _, dims = value.rpartition("=")
        try:
            shape = tuple(int(d) for d in dims.split(","))
        except ValueError:
            shape = ()
        if not shape or min(shape) < 1:
            raise SnnccError(Diagnostic(
                f"--input-shape '{value}' is not a list of positive integers",
                fix="give the shape of one sample without the batch, e.g. --input-shape 1,8,8 "
                    "or --input-shape x=1,8,8"))
        named[name] = shape
    if "" in named and len(values) > 1:
        raise SnnccError(Diagnostic("several --input-shape values need input names",
                                    fix="e.g. --input-shape a=1,8,8 --input-shape b=16"))
    return named.get("", named)


# ---------------------------------------------------------------- inspect


@app.command()
def inspect(
    model: Path = typer.Argument(..., readable=False, help="The ONNX model."),
    T: int = typer.Option(7, "-T", help="Spike window (most spikes per neuron)."),
    replace_softmax: bool = typer.Option(False, "--replace-softmax",
                                         help="Judge the model as if Softmax were replaced "
                                              "by NReLU (as compile --replace-softmax does)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    input_shape: list[str] | None = typer.Option(None, "--input-shape", help=SHAPE_HELP),
) -> None:
    """What is in a model, and whether (at which T) it can be made spike-driven."""
    from snncc.verify.verdict import inspect_model

    v = inspect_model(model, T, replace_softmax, parse_input_shape(input_shape))
    if as_json:
        out.print_json(json.dumps(v.to_json()))
    else:
        _print_verdict(v)
    if not v.convertible:
        raise typer.Exit(1)


def _print_verdict(v) -> None:
    out.print(f"[bold]{v.file}[/bold]")
    out.print("ops: " + ", ".join(f"{k}×{n}" for k, n in v.onnx_ops.items()))
    for i in v.inputs:
        out.print(f"input  {i['name']}: {i['shape']}")
    for i in v.outputs:
        out.print(f"output {i['name']}: {i['shape']}")
    if v.structure:
        out.print("found: " + ", ".join(f"{k.replace('_', ' ')} {n}"
                                        for k, n in v.structure.items()))
    if v.quantizers:
        t = Table("quantizer", "codes", "levels", "scale", "rounding", title="quantizers")
        for q in v.quantizers:
            scale = q["scale"] if isinstance(q["scale"], float) else "{:.4g}..{:.4g}".format(
                *q["scale"])
            t.add_row(q["node"] + (" (input)" if q["input"] else ""),
                      f"{q['codes'][0]}..{q['codes'][1]}", str(q["levels"]),
                      f"{scale:.6g}" if isinstance(scale, float) else scale, q["rounding"])
        out.print(t)
    if v.convertible:
        out.print(f"[green]verdict: convertible[/green] at T >= {v.min_T}")
    else:
        out.print(f"[red]verdict: not convertible[/red] ({len(v.diagnostics)} problem(s))")
        for d in v.diagnostics:
            out.print("  " + d.render(), markup=False)


# ---------------------------------------------------------------- compile


@app.command("compile")
def compile_cmd(
    model: Path = typer.Argument(..., readable=False, help="The ONNX model."),
    T: int = typer.Option(7, "-T", help="Spike window: the most spikes one neuron may emit."),
    target: str = typer.Option("sim", "--target", help=" | ".join(TARGETS)),
    delay: str = typer.Option("exact", "--delay",
                              help="exact | N (steps after the input's onset) | none"),
    neuron: str = typer.Option("if", "--neuron",
                               help="if (unit spikes) | signed (±1 spikes) | multi (a code a "
                                    "step on weighted lines)"),
    latency: int | None = typer.Option(None, "--latency",
                                       help="End-to-end step budget: per-layer delays chosen "
                                            "on the --calibrate data."),
    calibrate: Path | None = typer.Option(None, "--calibrate", readable=False,
                                          help="Calibration inputs (.npy/.npz)."),
    calibration: str | None = typer.Option(None, "--calibration", show_default=False,
                                           help="How --calibrate clips activations: mse "
                                                "(default) | max | percentile | kl"),
    replace_softmax: bool = typer.Option(False, "--replace-softmax",
                                         help="Replace Softmax by NReLU (changes accuracy)."),
    frac_bits: int | None = typer.Option(None, "--frac-bits",
                                         help="Fraction bits of residual-stream currents."),
    output: Path = typer.Option(Path("build"), "-o", "--output", help="Output folder."),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
    print_after_all: bool = typer.Option(False, "--print-after-all",
                                         help="Print the IR after every pass."),
    dump_dir: Path | None = typer.Option(None, "--dump-dir",
                                         help="Write the IR after every pass into this "
                                              "folder (NN-pass.snnir)."),
    time_passes: bool = typer.Option(False, "--time-passes",
                                     help="Print each pass's time and whether it changed "
                                          "the graph."),
    input_shape: list[str] | None = typer.Option(None, "--input-shape", help=SHAPE_HELP),
    parallel: int | None = typer.Option(None, "--parallel",
                                        help="Output lanes per cycle of every linear and conv "
                                             "engine, neurons per cycle of every neuron "
                                             "engine (hls, verilog): each layer takes its "
                                             "largest legal value up to N (default: all)."),
    hw_config: Path | None = typer.Option(None, "--hw-config", readable=False,
                                          help="Per-layer lanes by ONNX node or layer "
                                               "name (JSON: "
                                               '{"parallel": N, "layers": {NODE: N}}).'),
    pipeline: bool = typer.Option(False, "--pipeline",
                                  help="Verilog: run the engines of different layers "
                                       "concurrently (a wavefront over the time steps; "
                                       "banked value buffers)."),
    in_flight: int | None = typer.Option(None, "--in-flight",
                                         help="With --pipeline: inferences loaded and not "
                                              "yet sent, at most (1-16, default 6); more "
                                              "shortens the initiation interval and adds "
                                              "buffer banks."),
) -> None:
    """Convert an ONNX model into an SNN and write it for a target."""
    import snncc
    from snncc.passes.insert_dif import parse_delay

    if target not in TARGETS:
        raise SnnccError(Diagnostic(f"unknown target {target!r}",
                                    fix=f"use one of {', '.join(TARGETS)}"))
    try:
        policy = parse_delay(delay)
    except ValueError as e:
        raise SnnccError(Diagnostic(str(e), fix="e.g. --delay exact")) from None
    knob = _hw_knob(target, parallel, hw_config, pipeline, in_flight)
    if calibration is not None and calibrate is None:
        raise SnnccError(Diagnostic(f"--calibration {calibration} chooses how --calibrate "
                                    "clips activations, but no --calibrate data was given",
                                    fix="add --calibrate DATA.npy, or leave --calibration out"))
    data = inputs.load_array(calibrate, "--calibrate") if calibrate else None
    inputs.output_folder(output, "-o")
    if dump_dir is not None and _file_in_the_way(dump_dir) is not None:
        raise SnnccError(Diagnostic(f"cannot create the dump folder: "
                                    f"'{_file_in_the_way(dump_dir)}' is a file",
                                    file=str(dump_dir), fix="choose another --dump-dir"))
    printer = (lambda name, text: out.print(f"// after {name}\n{text}", markup=False)
               ) if print_after_all else None
    with warnings.catch_warnings(record=True) as caught, _calibration_bar(data, latency) as fit:
        warnings.simplefilter("always")
        compiled = snncc.compile(model, T, delay=policy, calibrate=data,
                                 replace_softmax=replace_softmax, frac_bits=frac_bits,
                                 dump_dir=dump_dir, print_after=printer,
                                 input_shape=parse_input_shape(input_shape), neuron=neuron,
                                 latency=latency, latency_progress=fit,
                                 calibration=calibration or "mse")
    for w in caught:
        err.print(f"warning: {w.message}", markup=False)
    targets = registry.TARGETS if target == "all" else (target,) if target != "sim" else ()
    for t in targets:
        registry.check(t, compiled.graph)
    hw = None
    if knob is not None:
        from snncc.backends.parallel import config

        hw = config(compiled.graph, parallel, knob, str(hw_config or "--parallel"), pipeline,
                    in_flight)
    with atomic_dir(output, force=force, protect=(model, calibrate, hw_config)) as tmp:
        write_build(tmp, compiled, targets, hw=hw)
    if time_passes:
        _print_timings(compiled.timings)
    calib = compiled.graph.meta.get("calibration")
    if calib:
        out.print(f"calibration: {calib['quantizers']} quantizer(s) chosen from "
                  f"{calib['samples']} samples; the model's decisions on them are unchanged "
                  f"for {calib['decision_agreement']:.2%}")
    fitted = compiled.graph.meta.get("latency")
    if fitted:
        out.print(f"latency: {fitted['steps']} of {fitted['budget']} steps; on "
                  f"{fitted['samples']} calibration inputs the exact model's decisions kept "
                  f"for {fitted['decision_agreement']:.2%}, its codes for "
                  f"{fitted['code_agreement']:.2%}")
    kind = f", neuron={neuron}" if neuron != "if" else ""
    how = f"latency={latency}" if latency is not None else f"delay={delay}"
    out.print(f"compiled {model} -> {output}/ (T={T}, {how}{kind}, "
              f"{compiled.steps} steps end to end, targets: sim"
              f"{''.join(', ' + t for t in targets)})")


def _hw_knob(target: str, parallel: int | None, hw_config: Path | None,
             pipeline: bool = False, in_flight: int | None = None) -> dict | None:
    """The raw parallelism knob (--parallel, --hw-config, --pipeline, --in-flight),
    checked before compiling; None if none is given. Its layer names are checked against
    the compiled graph."""
    if parallel is None and hw_config is None and not pipeline and in_flight is None:
        return None
    from snncc.backends.parallel import check_in_flight, check_parallel, read_config

    if in_flight is not None and not pipeline:
        raise SnnccError(Diagnostic("--in-flight sizes a pipelined Verilog design; "
                                    "--pipeline is not given",
                                    fix="add --pipeline (and --target verilog or all)"))
    check_in_flight(in_flight)

    if pipeline and target not in ("verilog", "all"):
        raise SnnccError(Diagnostic(f"--pipeline overlaps the layers of the Verilog design; "
                                    f"--target {target} has none",
                                    fix="add --target verilog or all"))
    if target not in ("hls", "verilog", "all"):
        raise SnnccError(Diagnostic(f"--parallel and --hw-config shape the hardware; "
                                    f"--target {target} has none",
                                    fix="add --target verilog, hls or all"))
    check_parallel(parallel)
    return read_config(hw_config) if hw_config is not None else {}


@contextmanager
def _calibration_bar(data: np.ndarray | None, latency: int | None = None):
    """With --calibrate: a progress bar over the calibration's runs of the model (and with
    --latency, a second line over the delay search); yields the search's callback."""
    if data is None:
        yield None
        return
    from contextlib import nullcontext

    from snncc.passes.calibrate_thresholds import calibration_progress
    from snncc.ui.console import progress_bar, progress_step

    search = (progress_step if latency is not None else lambda *a: nullcontext())
    with (progress_bar(err) as bar,
          progress_step(bar, f"calibrating on {len(data)} samples") as step,
          calibration_progress(step.set),
          search(bar, f"choosing delays for {latency} steps") as fit):
        yield None if fit is None else fit.set


def _print_timings(timings) -> None:
    t = Table("pass", "seconds", "changed", "nodes", title="pass timings")
    for p in timings:
        t.add_row(p.name, f"{p.seconds:.4f}", "yes" if p.changed else "no", str(p.nodes))
    t.add_row("total", f"{sum(p.seconds for p in timings):.4f}", "", "")
    out.print(t)


# ---------------------------------------------------------------- simulate


@app.command()
def simulate(
    artifact: Path = typer.Argument(..., readable=False,
                                    help="model.snn written by `snncc compile`."),
    input: Path = typer.Option(..., "--input", readable=False,
                               help="Inputs: .npy (memory-mapped), .npz with 'x', or a folder "
                                    "of .npy/.npz shards (sorted by name)."),
    labels: Path | None = typer.Option(None, "--labels", readable=False,
                                       help="Labels: .npy, .npz 'y', or a folder of shards."),
    compare_onnx: Path | None = typer.Option(None, "--compare-onnx", readable=False,
                                             help="Compare codes with onnxruntime."),
    trace: Path | None = typer.Option(None, "--trace", help="Write spike trains (.npz)."),
    engine: str = typer.Option("auto", "--engine", help="auto | fast | step"),
    output: Path | None = typer.Option(None, "--output", help="Write logits and predictions."),
    batch_size: int = typer.Option(256, "--batch-size",
                                   help="Inputs simulated at a time (memory is bounded by "
                                        "the batch)."),
    report: Path | None = typer.Option(None, "--report",
                                       help="Where to write report.json (default: next to "
                                            "the artifact)."),
    ray: str | None = typer.Option(None, "--ray",
                                   help="Run the batches on a Ray cluster: local (start one "
                                        "here), auto (RAY_ADDRESS) or HOST:PORT. Needs "
                                        "snncc\\[cluster]; the results are the same."),
    ray_workers: int | None = typer.Option(None, "--ray-workers",
                                           help="Ray workers (default: one per CPU of the "
                                                "cluster)."),
) -> None:
    """Run a compiled SNN on inputs: predictions, firing rates, time steps."""
    import snncc
    from snncc.app.simulate import simulate_and_report
    from snncc.metrics.report import read_report

    for path, option, suffix in ((trace, "--trace", ".npz"), (output, "--output", ".npz"),
                                 (report, "--report", ".json")):
        inputs.output_file(path, option, suffix)
    inputs.positive(batch_size, "--batch-size", "256")
    if compare_onnx is not None:
        inputs.onnx_file(compare_onnx, "--compare-onnx")
    model = snncc.load(artifact, frozen=True)  # to be run: no networkx to import
    x = _simulate_input(model, input)
    y = _simulate_labels(model, labels, len(x))
    base = read_report(artifact.parent / "report.json")
    if report is None and os.access(artifact.parent, os.W_OK):
        report = artifact.parent / "report.json"
    elif report is None:
        err.print(f"note: {artifact.parent} is read-only; pass --report PATH to keep the "
                  "report", markup=False)
    if ray_workers is not None:
        inputs.positive(ray_workers, "--ray-workers", "2")
    summary = simulate_and_report(model, x, y, out, engine=engine, compare=compare_onnx,
                                  trace=trace, output=output, batch_size=batch_size,
                                  report=report, base=base, ray=ray, workers=ray_workers,
                                  file=str(input), labels_file=str(labels) if labels else "")
    if summary.get("onnx", {}).get("unexplained"):  # the contract of verify's first rung
        raise typer.Exit(1)


# ---------------------------------------------------------------- sweep


@app.command()
def sweep(
    model: Path = typer.Argument(..., readable=False, help="The ONNX model."),
    input: Path = typer.Option(..., "--input", readable=False,
                               help="Inputs (.npy, or .npz with 'x')."),
    labels: Path | None = typer.Option(None, "--labels", readable=False,
                                       help="Labels (.npy, or .npz 'y')."),
    calibrate: Path | None = typer.Option(None, "--calibrate", readable=False,
                                          help="Calibration inputs: quantizers of a float "
                                               "model, and the --latency search."),
    T: int = typer.Option(7, "-T", help="Spike window: the most spikes one neuron may emit."),
    budgets: str | None = typer.Option(None, "--budgets",
                                       help="End-to-end step budgets, e.g. 7,14,21,28 "
                                            "(default: multiples of T below exact mode)."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the points (.json)."),
    html: Path | None = typer.Option(None, "--html", help="Write a page with the curves."),
) -> None:
    """Accuracy and synaptic operations against end-to-end steps, per neuron kind."""
    from snncc.app.sweep import html_page, run_sweep, table_rows
    from snncc.metrics.report import atomic_file
    from snncc.ui.console import progress_bar, progress_step

    for path, option, suffix in ((json_out, "--json", ".json"), (html, "--html", None)):
        inputs.output_file(path, option, suffix)
    steps = _parse_budgets(budgets)
    x = inputs.load_array(input, "--input")
    y = inputs.load_array(labels, "--labels", key="y") if labels else None
    data = inputs.load_array(calibrate, "--calibrate") if calibrate else None
    with progress_bar(err) as bar, progress_step(bar, "sweep") as step:
        result = run_sweep(model, x, y, T=T, budgets=steps, calibrate=data,
                           progress=lambda what: bar.update(step.task, description=what),
                           labels_file=labels or "labels")
    t = Table("kind", "steps", "accuracy", "decisions = exact", "codes = exact",
              "SOPs/inference", "µJ/inference", "compiled with",
              title=f"{model.name}: accuracy against end-to-end steps (T = {T})")
    for row in table_rows(result):
        t.add_row(*row)
    out.print(t)
    if json_out is not None:
        with atomic_file(json_out, "sweep points") as tmp:
            tmp.write_text(json.dumps(result, indent=2) + "\n")
    if html is not None:
        with atomic_file(html, "sweep page") as tmp:
            tmp.write_text(html_page(result))


def _parse_budgets(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise SnnccError(Diagnostic(f"--budgets must be positive step counts separated by "
                                    f"commas, not {text!r}", fix="e.g. --budgets 7,14,21,28"))
    return sorted(set(values))


def _checked_input(model, path: Path) -> np.ndarray:
    """--input as a batch the model takes; a warning if values saturate its quantizer."""
    x = model.check_input(inputs.load_array(path, "--input"), file=str(path))
    for note in inputs.saturation(model, x, path):
        err.print(f"warning: {note}", markup=False)
    return x


def _simulate_input(model, path: Path):
    """simulate's --input: a folder of shards or a large .npy file is read a batch at a
    time (snncc.runtime.datasets; the saturation check looks at its first inputs); anything else as
    every command reads it."""
    from snncc.runtime.datasets import SATURATION_CHUNK, SATURATION_SAMPLE, open_array, streamed

    if not streamed(path):
        return _checked_input(model, path)
    x = model.check_form(open_array(path, "--input"), file=f"--input {path}")
    n = min(len(x), SATURATION_SAMPLE)
    step = max(1, SATURATION_CHUNK // (8 * int(np.prod(x.shape[1:]))))  # float64 bytes

    def chunks():  # checked a part at a time: memory bounded by the part, not the sample
        for s in range(0, n, step):
            yield model.check_input(x[s:min(s + step, n)], file=f"--input {path}", offset=s)

    for note in inputs.saturation_of(model, chunks, path):
        err.print(f"warning: {note} (in its first {n} inputs)", markup=False)
    return x


def _simulate_labels(model, path: Path | None, n: int) -> np.ndarray | None:
    from snncc.runtime.datasets import open_array

    if path is None or not path.is_dir():
        return _checked_labels(model, path, n)
    y = np.asarray(open_array(path, "--labels", key="y"))
    return inputs.labels(y, path, "--labels", n, inputs.classes(model))


def _checked_labels(model, path: Path | None, n: int) -> np.ndarray | None:
    if path is None:
        return None
    return inputs.labels(inputs.load_array(path, "--labels", key="y"), path, "--labels", n,
                         inputs.classes(model))


# ---------------------------------------------------------------- report


@app.command("report")
def report_cmd(
    build: Path = typer.Argument(..., help="Build folder written by `snncc compile`."),
    input: Path | None = typer.Option(None, "--input", readable=False,
                                      help="Inputs to simulate (default: reuse the "
                                           "simulation in build/report.json)."),
    labels: Path | None = typer.Option(None, "--labels", readable=False,
                                       help="Labels (.npy, or .npz 'y')."),
    html: Path | None = typer.Option(None, "--html", help="Also write an HTML page here."),
    layers: list[str] | None = typer.Option(None, "--layer",
                                            help="Neuron layer to draw a raster for "
                                                 "(repeatable; default: all)."),
    pj_ac: float = typer.Option(0.9, "--pj-ac", help="Energy of one accumulate (pJ)."),
    pj_mac: float = typer.Option(4.6, "--pj-mac", help="Energy of one MAC (pJ)."),
    engine: str = typer.Option("auto", "--engine", help="auto | fast | step"),
    synth: bool = typer.Option(False, "--synth",
                               help="Run Yosys on build/verilog first (cells, LUTs, FFs)."),
    sweep_json: Path | None = typer.Option(None, "--sweep",
                                           help="Points of `snncc sweep --json` to plot in "
                                                "the HTML page (default: build/sweep.json "
                                                "if there is one)."),
) -> None:
    """Per-layer figures, operation counts and energy; optionally an HTML page."""
    import snncc
    from snncc.app.report_view import (
        check_layers,
        load_or_measure,
        print_report,
        simulated,
        synthesis_figures,
    )
    from snncc.app.simulate import data_files
    from snncc.metrics.energy import EnergyModel
    from snncc.metrics.report import reprice, write_report

    if not (build / "model.snn").is_file():
        raise SnnccError(Diagnostic("no model.snn in the build folder", file=str(build),
                                    fix="pass the folder written by `snncc compile`"))
    inputs.positive(pj_ac, "--pj-ac", "0.9")
    inputs.positive(pj_mac, "--pj-mac", "4.6")
    energy = EnergyModel(pj_ac, pj_mac)
    sweep_points = _read_sweep(sweep_json, build / "sweep.json") if html is not None else None
    model = snncc.load(build / "model.snn")
    check_layers(model.graph, layers)
    x = y = None
    if labels is not None and input is None:
        raise SnnccError(Diagnostic(f"--labels {labels} given without --input",
                                    fix="pass the inputs the labels belong to with --input"))
    if input is not None:
        x = _checked_input(model, input)
        y = _checked_labels(model, labels, len(x))
    report = load_or_measure(build, x, y, err, engine, energy, data_files(input, labels),
                             compiled=html is None)
    changed = False
    if "simulation" not in report:
        err.print(f"no simulation results in {build / 'report.json'}: the compiled figures "
                  "only (pass --input x.npy, or run `snncc simulate` on the build first, for "
                  "spike counts, operations and energy)", markup=False)
    elif x is None:
        with _saved_report(build / "report.json"):
            err.print(f"reusing the last simulation in {build / 'report.json'}: "
                      f"{simulated(report['simulation'])} (pass --input to simulate other "
                      "inputs)", markup=False)
    if "simulation" in report:
        with _saved_report(build / "report.json"):
            changed = reprice(report, energy)
    figures = synthesis_figures(build, synth, err)
    if figures is not None:
        report.setdefault("hardware", {})["synthesis"] = figures
        changed = True
    if changed:
        write_report(report, build / "report.json")
    with _saved_report(build / "report.json"):
        print_report(out, report)
    if html is not None:
        from snncc.app.html_report import render_html
        from snncc.metrics.report import atomic_file

        with _saved_report(build / "report.json"):
            text = render_html(report, layers, sweep_points)
        with atomic_file(html, "HTML report") as tmp:
            tmp.write_text(text, encoding="utf-8")
        out.print(f"HTML report written to {html}")


def _read_sweep(given: Path | None, default: Path) -> dict | None:
    """The points of `snncc sweep --json` (from `given`, else `default` if it exists)."""
    path = given if given is not None else default if default.is_file() else None
    if path is None:
        return None
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or not isinstance(data.get("points"), list):
            raise ValueError("no 'points'")
    except (OSError, ValueError) as e:
        raise SnnccError(Diagnostic(f"--sweep: not the points of `snncc sweep --json` ({e})",
                                    file=str(path), fix="pass the file `snncc sweep --json "
                                                        "FILE` wrote")) from None
    return data


@contextmanager
def _saved_report(path: Path):
    """Reading a report.json from disk: one that is not what snncc writes (edited, or from
    elsewhere) is a user's file to replace, not a traceback."""
    try:
        yield
    except (KeyError, TypeError, AttributeError, ValueError, IndexError) as e:
        if _state["debug"]:
            raise
        raise SnnccError(Diagnostic(
            f"report.json is not one this snncc writes ({type(e).__name__}: {e})",
            file=str(path), fix="run `snncc simulate` on the build again, or pass --input")
        ) from None


# ---------------------------------------------------------------- verify


@app.command()
def verify(
    build: Path = typer.Argument(..., help="Build folder written by `snncc compile`."),
    input: Path = typer.Option(..., "--input", readable=False,
                               help="Inputs (.npy, or .npz with 'x')."),
    onnx_model: Path | None = typer.Option(None, "--onnx", readable=False,
                                           help="The source ONNX model (default: the one "
                                                "the build was compiled from, if present)."),
    rtl_simulator: str = typer.Option("auto", "--rtl-simulator",
                                      help="auto | icarus | verilator"),
    require: list[str] = typer.Option([], "--require",
                                      help="all | onnx | hls | rtl: exit 1 if that rung "
                                           "was skipped (repeatable; for CI)."),
) -> None:
    """Run the verification ladder; exit 1 on any divergence the contract forbids.

    Rungs: onnxruntime, integer reference, interpreter, HLS C simulation, RTL simulation."""
    import snncc
    from snncc.verify.ladder import run_ladder
    from snncc.verify.rungs import REQUIRE

    if not (build / "model.snn").is_file():
        raise SnnccError(Diagnostic("no model.snn in the build folder", file=str(build),
                                    fix="pass the folder written by `snncc compile`"))
    if rtl_simulator not in RTL_SIMULATORS:
        raise SnnccError(Diagnostic(f"--rtl-simulator {rtl_simulator}: unknown simulator",
                                    fix=f"use one of {', '.join(RTL_SIMULATORS)}"))
    unknown = [r for r in require if r not in REQUIRE]
    if unknown:
        raise SnnccError(Diagnostic(f"--require {unknown[0]}: unknown rung",
                                    fix=f"use one of {', '.join(REQUIRE)}"))
    if onnx_model is not None:
        inputs.onnx_file(onnx_model, "--onnx")
    x = _checked_input(snncc.load(build / "model.snn"), input)
    if not run_ladder(build, x, out, onnx_model, rtl_simulator, file=str(input),
                      require=tuple(require)):
        raise typer.Exit(1)


# ---------------------------------------------------------------- demo


@app.command()
def demo(
    output: Path = typer.Option(Path("build/demo"), "-o", "--output", help="Output folder."),
    example_dir: Path | None = typer.Option(None, "--example-dir",
                                            help="Folder of the bundled example."),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
) -> None:
    """Compile the bundled digits ViT at T=7 and run its test split."""
    from snncc.app.demo import run_demo

    run_demo(out, output, example_dir, force=force)


# ---------------------------------------------------------------- entry point


def main() -> None:
    """Run the CLI: user errors print one clear message and exit 1."""
    debug = "--debug" in sys.argv
    # SIGTERM unwinds like an exception, so that a half-built output folder is removed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        # without standalone mode click returns, not raises, a command's exit code
        # (typer.Exit(n), and 130 for Ctrl-C)
        code = app(standalone_mode=False)
    except SnnccError as e:
        if debug:
            raise
        for d in e.diagnostics:
            err.print(f"error: {d.render()}", markup=False)
        sys.exit(1)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted; nothing was written")
        sys.exit(130)
    except Exception as e:
        # Usage errors of the command-line parser (click's, vendored or not).
        if debug or not hasattr(e, "format_message"):
            raise
        if not e.format_message():  # `snncc` alone: the help was the answer
            sys.exit(0)
        err.print(f"error: {e.format_message()}", markup=False)
        hint = getattr(getattr(e, "ctx", None), "command_path", "snncc")
        err.print(f"see '{hint} --help'", markup=False)
        sys.exit(1)
    if code == 130:
        err.print("interrupted; the output folder was left as it was")
    sys.exit(code if isinstance(code, int) else 0)
