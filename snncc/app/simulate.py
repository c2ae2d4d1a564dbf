"""`snncc simulate`: run a compiled SNN on a dataset and say what happened."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from snncc import ops as o
from snncc.compiler import CompiledModel
from snncc.ir import layer_names
from snncc.metrics.report import atomic_file, relabel
from snncc.ui.console import agreement_table, layer_column, progress_bar, progress_step


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
                        workers: int | None = None, file: str = "",
                        labels_file: str = "") -> dict:
    """Simulate, print what happened, and write report.json to `report` (if given) on top
    of `base` (the compile report). `x` may be memory-mapped or a folder's shards
    (snncc.runtime.datasets): it is read a batch at a time (--compare-onnx reads it whole). With
    `ray`, the batches run on a Ray cluster. `file` names x in messages and, with
    `labels_file`, in the report (`snncc report` says which data it reuses)."""
    from snncc.metrics.measure import check_labels, measure, summarize

    if y is not None:
        y = check_labels(y, len(x))
    agreement = None
    with progress_bar(console) as bar:
        with _simulating(bar, len(x), batch_size, ray) as advance:
            measured = measure(model, x, engine=engine, trace=trace is not None,
                               progress=advance, batch_size=batch_size, ray=ray,
                               workers=workers, file=file)
        if compare is not None:
            from snncc.metrics.compare import compare_onnx

            with progress_step(bar, "onnxruntime (--compare-onnx)", len(x)) as advance:
                agreement = compare_onnx(model, compare, model.check_input(x, file=file),
                                         progress=advance)
    summary = {**summarize(model, y, measured, engine), **data_files(file, labels_file)}
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
        assert measured.trains is not None  # measured with trace
        write_trace(model, measured.trains, trace)
        console.print(f"spike trains written to {trace}")
    if output is not None:
        with atomic_file(output, "output") as tmp, open(tmp, "wb") as f:
            np.savez(f, logits=measured.logits, predictions=measured.predictions,
                     logits_int=measured.logits_int)
        console.print(f"logits and predictions written to {output}")
    if report is not None:
        from snncc.metrics.report import simulation_report, write_report

        full = simulation_report(model, base, measured.counts, summary["firing_rates"],
                                 summary, rasters=measured.rasters)
        write_report(full, report)
        console.print(f"report written to {report}")
    return summary


def data_files(inputs: str | Path | None, labels: str | Path | None = None) -> dict:
    """Where a simulation's inputs and labels came from (absolute paths), for report.json."""
    return {"input": str(Path(inputs).resolve()) if inputs else None,
            "labels": str(Path(labels).resolve()) if labels else None}


def write_trace(model: CompiledModel, trains: dict[str, np.ndarray], path: Path) -> None:
    """The --trace file (docs/reports.md#the-trace-file): one array per neuron layer, keyed
    by layer name, [steps, inputs, *shape], uint8 (int8 for signed neurons)."""
    with atomic_file(path, "trace") as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **relabel(trains, layer_names(model.graph)))


def _simulating(bar: Progress, inputs: int, batch_size: int, ray: str | None):
    """The progress line of the simulation: inputs done, or with Ray, batches done across
    the cluster."""
    if ray is None:
        return progress_step(bar, "simulating", inputs)
    return progress_step(bar, "simulating on Ray (batches)", -(-inputs // batch_size))


def _rates_table(console: Console, model: CompiledModel, m, errors) -> None:
    t = Table(layer_column("neuron layer"), "neurons", "fires from step", "spikes/neuron",
              "rate", title="firing")
    if errors is not None:
        t.add_column("conversion error")
    names = layer_names(model.graph)
    for n in model.graph.ops(o.Neuron):
        mean = m.spikes_per_neuron(model.graph, n.name)
        row = [names[n.name], str(int(np.prod(n.shape))), str(n.op_as(o.Neuron).t_fire),
               f"{mean:.3f}", f"{mean / n.op_as(o.Neuron).levels:.3f}"]
        if errors is not None:
            row.append(f"{errors[n.name]:.2%}")
        t.add_row(*row)
    console.print(t)
