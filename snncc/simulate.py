"""`snncc simulate`: run a compiled SNN on a dataset and say what happened."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from snncc import ops as o
from snncc.compiler import CompiledModel
from snncc.errors import Diagnostic, SnnccError
from snncc.report import short_name


def progress_bar(console: Console) -> Progress:
    return Progress("[progress.description]{task.description}", BarColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True)


def conversion_error(model: CompiledModel, x: np.ndarray, counts: dict[str, np.ndarray]
                     ) -> dict[str, float]:
    """Per neuron layer: the fraction of counts that differ from the exact integer codes."""
    ref = model.reference(x)
    return {name: float(np.mean(counts[name] != ref[name])) for name in counts}


def simulate_and_report(model: CompiledModel, x: np.ndarray, y: np.ndarray | None,
                        console: Console, *, engine: str = "auto", compare: Path | None = None,
                        trace: Path | None = None, output: Path | None = None,
                        batch_size: int = 256, report: Path | None = None,
                        base: dict | None = None) -> dict:
    """Simulate, print what happened, and write report.json to `report` (if given) on top
    of `base` (the compile report)."""
    from snncc.measure import measure

    x = model.check_input(x)
    if y is not None:
        y = np.asarray(y).reshape(-1)
        if len(y) != len(x):
            raise SnnccError(Diagnostic(f"{len(y)} labels for {len(x)} inputs",
                                        fix="pass one label per input"))
    with progress_bar(console) as bar:
        task = bar.add_task("simulating", total=len(x))
        measured = measure(model, x, engine=engine, trace=trace is not None,
                           progress=lambda k: bar.advance(task, k))
    result = measured.result
    summary: dict = {"inputs": len(x), "steps": result.steps, "engine": engine}
    if y is not None:
        summary["accuracy"] = float(np.mean(result.predictions == y))
        console.print(f"accuracy: {summary['accuracy']:.2%} on {len(x)} inputs")
    else:
        shown = ", ".join(map(str, result.predictions[:20]))
        console.print(f"predictions: {shown}{' ...' if len(x) > 20 else ''}")
    errors = conversion_error(model, x, result.counts) if model.delay != "exact" else None
    _rates_table(console, model, result, errors)
    console.print(f"end-to-end time steps: {result.steps} (T = {model.T}, delay "
                  f"{model.delay}, {model.neuron_layers} neuron layers on the longest path)")
    if compare is not None:
        from snncc.compare import compare_onnx

        agreement = compare_onnx(model, compare, x)
        summary["onnx"] = agreement.to_json()
        _agreement_table(console, model, agreement)
    if trace is not None:
        np.savez_compressed(trace, **{k.replace("/", "."): v for k, v in result.trains.items()})
        console.print(f"spike trains written to {trace}")
    if output is not None:
        np.savez(output, logits=result.logits, predictions=result.predictions,
                 logits_int=result.logits_int)
        console.print(f"logits and predictions written to {output}")
    summary["firing_rates"] = result.firing_rates(model.graph)
    summary["conversion_error"] = errors
    if report is not None:
        from snncc.report import simulation_report, write_report

        full = simulation_report(model, base, measured.counts, summary["firing_rates"],
                                 summary, rasters=measured.rasters)
        write_report(full, report)
        console.print(f"report written to {report}")
    return summary


def _rates_table(console: Console, model: CompiledModel, result, errors) -> None:
    t = Table("neuron layer (source node)", "neurons", "fires from step", "spikes/neuron",
              "rate", title="firing")
    if errors is not None:
        t.add_column("conversion error")
    for n in model.graph.ops(o.Neuron):
        c = result.counts[n.name]
        row = [short_name(n.origin), str(int(np.prod(n.shape))), str(n.op.t_fire),
               f"{c.mean():.3f}", f"{c.mean() / n.op.levels:.3f}"]
        if errors is not None:
            row.append(f"{errors[n.name]:.2%}")
        t.add_row(*row)
    console.print(t)


def _agreement_table(console: Console, model: CompiledModel, a) -> None:
    t = Table("neuron layer", "codes", "differing", "first difference (sample, element)",
              title="integer reference vs onnxruntime")
    for layer in a.layers:
        first = "" if layer.first is None else (
            f"{list(layer.first)}: onnx {layer.ort_code}, snn {layer.snn_code}")
        t.add_row(short_name(model.graph.node(layer.name).origin), str(layer.total),
                  str(layer.differing), first)
    console.print(t)
    console.print(f"codes identical: {a.code_agreement:.4%}; argmax identical: "
                  f"{a.decision_agreement:.4%} ({a.decisions - a.differing_decisions}/"
                  f"{a.decisions})")
