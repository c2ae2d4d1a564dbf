"""`snncc simulate`: run a compiled SNN on a dataset and say what happened."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    Task,
    TaskID,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from snncc import ops as o
from snncc.compiler import CompiledModel
from snncc.report import atomic_file, short_name


class _Count(MofNCompleteColumn):
    """done/total, blank while the total is unknown (a spinner and the time say enough)."""

    def render(self, task: Task) -> Text:
        return Text("") if task.total is None else super().render(task)


def progress_bar(console: Console | None = None) -> Progress:
    """The progress display of every long step: a named spinner, a bar, done/total and the
    elapsed time, erased when done.

    It goes to stderr, never to stdout (`console` is used only if it writes elsewhere, as
    in tests), and is off when that is not a terminal; rich's TTY_COMPATIBLE=1 (or
    FORCE_COLOR) forces it on, TTY_COMPATIBLE=0 off.
    """
    if console is None or console.file is sys.stdout:
        console = Console(stderr=True)
    return Progress(SpinnerColumn(), "[progress.description]{task.description}", BarColumn(),
                    _Count(), TimeElapsedColumn(), console=console, transient=True,
                    redirect_stdout=False, disable=not console.is_terminal)


@dataclass
class Step:
    """One line of a progress display: call it to advance by k, or `set` done and total."""

    bar: Progress
    task: TaskID

    def __call__(self, k: int = 1) -> None:
        self.bar.advance(self.task, k)

    def set(self, done: int, total: int) -> None:
        self.bar.update(self.task, completed=done, total=total)


@contextmanager
def progress_step(bar: Progress, description: str, total: int | None = None) -> Iterator[Step]:
    """One named line on `bar` while a step runs (a spinner until a total is known),
    removed when the step ends."""
    task = bar.add_task(description, total=total)
    try:
        yield Step(bar, task)
        bar.refresh()  # show the line complete before it goes
    finally:
        bar.remove_task(task)


def conversion_error(model: CompiledModel, x: np.ndarray, counts: dict[str, np.ndarray]
                     ) -> dict[str, float]:
    """Per neuron layer: the fraction of counts that differ from the exact integer codes."""
    ref = model.reference(x)
    return {name: float(np.mean(counts[name] != ref[name])) for name in counts}


def simulate_and_report(model: CompiledModel, x: np.ndarray, y: np.ndarray | None,
                        console: Console, *, engine: str = "auto", compare: Path | None = None,
                        trace: Path | None = None, output: Path | None = None,
                        batch_size: int = 256, report: Path | None = None,
                        base: dict | None = None, ray: str | None = None,
                        workers: int | None = None, file: str = "") -> dict:
    """Simulate, print what happened, and write report.json to `report` (if given) on top
    of `base` (the compile report). `x` may be memory-mapped or a folder's shards
    (snncc.datasets): it is read a batch at a time (--compare-onnx reads it whole). With
    `ray`, the batches run on a Ray cluster. `file` names x in messages."""
    from snncc.measure import check_labels, measure, summarize

    if y is not None:
        y = check_labels(y, len(x))
    agreement = None
    with progress_bar(console) as bar:
        with _simulating(bar, len(x), batch_size, ray) as advance:
            measured = measure(model, x, engine=engine, trace=trace is not None,
                               progress=advance, batch_size=batch_size, ray=ray,
                               workers=workers, file=file)
        if compare is not None:
            from snncc.compare import compare_onnx

            with progress_step(bar, "onnxruntime (--compare-onnx)", len(x)) as advance:
                agreement = compare_onnx(model, compare, model.check_input(x, file=file),
                                         progress=advance)
    summary = summarize(model, y, measured, engine)
    if y is not None:
        console.print(f"accuracy: {summary['accuracy']:.2%} on {len(x)} inputs")
    else:
        shown = ", ".join(map(str, measured.predictions[:20]))
        console.print(f"predictions: {shown}{' ...' if len(x) > 20 else ''}")
    _rates_table(console, model, measured, summary["conversion_error"])
    console.print(f"end-to-end time steps: {measured.steps} (T = {model.T}, delay "
                  f"{model.delay}, {model.neuron_layers} neuron layers on the longest path)")
    if agreement is not None:
        summary["onnx"] = agreement.to_json()
        agreement_table(console, model.graph, agreement)
    if trace is not None:
        with atomic_file(trace, "trace") as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, **{k.replace("/", "."): v for k, v in measured.trains.items()})
        console.print(f"spike trains written to {trace}")
    if output is not None:
        with atomic_file(output, "output") as tmp, open(tmp, "wb") as f:
            np.savez(f, logits=measured.logits, predictions=measured.predictions,
                     logits_int=measured.logits_int)
        console.print(f"logits and predictions written to {output}")
    if report is not None:
        from snncc.report import simulation_report, write_report

        full = simulation_report(model, base, measured.counts, summary["firing_rates"],
                                 summary, rasters=measured.rasters)
        write_report(full, report)
        console.print(f"report written to {report}")
    return summary


def _simulating(bar: Progress, inputs: int, batch_size: int, ray: str | None):
    """The progress line of the simulation: inputs done, or with Ray, batches done across
    the cluster."""
    if ray is None:
        return progress_step(bar, "simulating", inputs)
    return progress_step(bar, "simulating on Ray (batches)", -(-inputs // batch_size))


def _rates_table(console: Console, model: CompiledModel, m, errors) -> None:
    t = Table("neuron layer (source node)", "neurons", "fires from step", "spikes/neuron",
              "rate", title="firing")
    if errors is not None:
        t.add_column("conversion error")
    for n in model.graph.ops(o.Neuron):
        mean = m.spikes_per_neuron(model.graph, n.name)
        row = [short_name(n.origin), str(int(np.prod(n.shape))), str(n.op.t_fire),
               f"{mean:.3f}", f"{mean / n.op.levels:.3f}"]
        if errors is not None:
            row.append(f"{errors[n.name]:.2%}")
        t.add_row(*row)
    console.print(t)


def agreement_table(console: Console, graph, a) -> None:
    """The integer reference against onnxruntime, per layer: differing codes, each at a
    rounding boundary, downstream of one, or unexplained (``compare.Agreement``)."""
    t = Table("neuron layer", "codes", "differing", "at a boundary", "downstream",
              "unexplained", "first difference (sample, element)",
              title="integer reference vs onnxruntime")
    for layer in a.layers:
        first = "" if layer.first is None else (
            f"{list(layer.first)}: onnx {layer.ort_code}, snn {layer.snn_code}")
        t.add_row(short_name(graph.node(layer.neuron or layer.name).origin), str(layer.total),
                  str(layer.differing), str(layer.at_boundary), str(layer.downstream),
                  str(layer.unexplained), first)
    console.print(t)
    console.print(f"codes identical: {a.code_agreement:.4%}; argmax identical: "
                  f"{a.decision_agreement:.4%} ({a.decisions - a.differing_decisions}/"
                  f"{a.decisions})")
    from snncc.compare import BOUNDARY

    differing = sum(layer.differing for layer in a.layers)
    if differing:
        console.print(f"differences: {differing}: "
                      f"{sum(la.at_boundary for la in a.layers)} where onnxruntime's value "
                      f"sits within 1/{round(1 / BOUNDARY)} of a step of a rounding boundary "
                      "(fixed-point residual sums, float32 rounding), "
                      f"{sum(la.downstream for la in a.layers)} downstream of an earlier "
                      f"difference on the same sample, {a.unexplained} unexplained")
    verdict = ("[green]pass[/] (every differing code explained)" if not a.unexplained else
               f"[bold red]FAIL[/] ({a.unexplained} unexplained codes)")
    console.print(f"onnxruntime agreement: {verdict}")
