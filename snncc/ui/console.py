"""Console output shared by the tools: the progress display of long steps, and the
table of the integer reference against onnxruntime."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

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
from rich.table import Column, Table
from rich.text import Text

from snncc.ir import layer_names


def layer_column(header: str = "layer") -> Column:
    """The layer column of a table: layer names (``ir.layer_names``) shown whole, folded
    onto more lines in a narrow terminal, never cut short (they are what --layer, the
    counts, the trace file and report.json are keyed by)."""
    return Column(header, overflow="fold", min_width=12)


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


def agreement_table(console: Console, graph, a) -> None:
    """The integer reference against onnxruntime, per layer: differing codes, each at a
    rounding boundary, downstream of one, or unexplained (``compare.Agreement``)."""
    names = layer_names(graph)
    t = Table(layer_column("layer (the input, neurons)"), "codes", "differing",
              "at a boundary", "downstream", "unexplained", "first difference (sample, element)",
              title="integer reference vs onnxruntime")
    for layer in a.layers:
        first = "" if layer.first is None else (
            f"{list(layer.first)}: onnx {layer.ort_code}, snn {layer.snn_code}")
        t.add_row(names.get(layer.neuron or layer.name, layer.name), str(layer.total),
                  str(layer.differing), str(layer.at_boundary), str(layer.downstream),
                  str(layer.unexplained), first)
    console.print(t)
    console.print(f"codes identical: {a.code_agreement:.4%}; argmax identical: "
                  f"{a.decision_agreement:.4%} ({a.decisions - a.differing_decisions}/"
                  f"{a.decisions})")
    differing = sum(layer.differing for layer in a.layers)
    if differing:
        from snncc.metrics.compare import BOUNDARY  # loads onnx: only once a comparison ran

        at_input = sum(la.at_boundary for la in a.layers if la.encodes_input)
        inputs = (f"; {at_input} of them input codes whose x/scale is within float32 "
                  "precision of a tie, which onnxruntime divides in float32") if at_input else ""
        console.print(f"differences: {differing}: "
                      f"{sum(la.at_boundary for la in a.layers)} where onnxruntime's value "
                      f"sits within 1/{round(1 / BOUNDARY)} of a step of a rounding boundary "
                      f"(fixed-point residual sums, float32 rounding{inputs}), "
                      f"{sum(la.downstream for la in a.layers)} downstream of an earlier "
                      f"difference on the same sample, {a.unexplained} unexplained")
    verdict = ("[green]pass[/] (every differing code explained)" if not a.unexplained else
               f"[bold red]FAIL[/] ({a.unexplained} unexplained codes)")
    console.print(f"onnxruntime agreement: {verdict}")
