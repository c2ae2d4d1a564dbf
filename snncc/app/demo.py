"""`snncc demo`: the bundled example end to end, in under a minute.

Compiles the bundled digits ViT (Brevitas QAT, QCDQ export) at T=7 for every target whose
tools are present, simulates its test split, and prints side by side the float accuracy,
the quantized ANN's accuracy in onnxruntime, the SNN's accuracy and their agreement.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

import snncc
from snncc.errors import Diagnostic, SnnccError
from snncc.ir import layer_names
from snncc.metrics.compare import compare_onnx, run_onnx
from snncc.ui.console import layer_column

# a checkout's examples/digits_vit, or the copy an installed wheel carries in the package
EXAMPLES = (Path(__file__).resolve().parents[2] / "examples" / "digits_vit",
            Path(__file__).resolve().parents[1] / "examples" / "digits_vit")


def example_dir(path: Path | None = None) -> Path:
    found = [f for f in EXAMPLES if (f / "digits_vit_qcdq.onnx").is_file()]
    folder = path or (found[0] if found else EXAMPLES[0])
    if not (folder / "digits_vit_qcdq.onnx").is_file():
        raise SnnccError(Diagnostic("the bundled example is not here", file=str(folder),
                                    fix="run from a checkout of snncc, or pass --example-dir"))
    return folder


def available_targets() -> list[str]:
    """Hardware targets this snncc has and whose tools are on this machine."""
    from snncc.backends import registry

    return [b.name for b in registry.BACKENDS.values() if b.ready()]


def run_demo(console: Console, out_dir: Path, folder: Path | None = None,
             targets: list[str] | None = None, force: bool = False) -> dict:
    from snncc.app.files import atomic_dir
    from snncc.ui.console import progress_bar

    folder = example_dir(folder)
    data = np.load(folder / "digits_test.npz")
    x, y = data["x"], data["y"]
    targets = available_targets() if targets is None else targets
    with atomic_dir(out_dir, force=force) as tmp, progress_bar(console) as bar:
        model, result, summary = _run(bar, folder, x, y, targets, tmp)
    _print(console, model, result, summary, out_dir)
    return summary


def _run(bar, folder: Path, x: np.ndarray, y: np.ndarray, targets: list[str], tmp: Path):
    """Every long step of the demo, each a line on the progress display `bar`."""
    from snncc.app.files import write_build, write_report
    from snncc.metrics.measure import measure, summarize
    from snncc.metrics.report import simulation_report
    from snncc.passes.calibrate_thresholds import calibration_progress
    from snncc.ui.console import progress_step

    qcdq, float_onnx = folder / "digits_vit_qcdq.onnx", folder / "digits_vit_float.onnx"
    with progress_step(bar, "float twin (onnxruntime)", len(x)) as advance:
        float_acc = _accuracy(run_onnx(float_onnx, x, [], advance)[0], y)
    with progress_step(bar, "quantized ANN (onnxruntime)", len(x)) as advance:
        qann_acc = _accuracy(run_onnx(qcdq, x, [], advance)[0], y)
    with progress_step(bar, "compiling (T=7)"):
        model = snncc.compile(qcdq, T=7)
    report = write_build(tmp, model, targets, lambda t: progress_step(bar, f"emitting {t}"))
    with progress_step(bar, "simulating the test split (step engine)", len(x)) as advance:
        measured = measure(model, x, engine="step", progress=advance, keep_counts=True)
    result = measured.result
    with progress_step(bar, "integer reference vs onnxruntime", len(x)) as advance:
        agreement = compare_onnx(model, qcdq, x, progress=advance)
    simulated = {**summarize(model, y, measured, "step"), "onnx": agreement.to_json()}
    report = simulation_report(model, report, measured.counts, simulated["firing_rates"],
                               simulated, rasters=measured.rasters)
    ref = model.reference(x)
    exact = all(np.array_equal(result.counts[k], ref[k]) for k in result.counts)
    calib = np.load(folder / "digits_calib.npz")["x"]
    with (progress_step(bar, f"calibrating the float twin on {len(calib)} images") as step,
          calibration_progress(step.set)):
        calibrated = snncc.compile(float_onnx, T=7, calibrate=calib)
    with progress_step(bar, "simulating the calibrated SNN", len(x)) as advance:
        calib_acc = float(np.mean(calibrated.simulate(x, progress=advance).predictions == y))
    summary = {
        "inputs": len(x), "float_accuracy": float_acc, "qann_onnxruntime_accuracy": qann_acc,
        "snn_accuracy": float(np.mean(result.predictions == y)),
        "calibrated_float_twin_snn_accuracy": calib_acc,
        "snn_equals_integer_reference": exact,
        "onnx_code_agreement": agreement.code_agreement,
        "onnx_argmax_agreement": agreement.decision_agreement,
        "steps": model.steps, "targets": ["sim", *targets],
    }
    report["demo"] = summary
    write_report(tmp, report)
    return model, result, summary


def _accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(logits.reshape(len(y), -1).argmax(axis=1) == y))


def _print(console: Console, model, result, s: dict, out_dir: Path) -> None:
    t = Table("model", "accuracy", "how", title=f"digits test split ({s['inputs']} images)")
    t.add_row("float twin", f"{s['float_accuracy']:.2%}", "onnxruntime, no quantizers")
    t.add_row("quantized ANN (QAT)", f"{s['qann_onnxruntime_accuracy']:.2%}",
              "onnxruntime on the QCDQ export")
    t.add_row("SNN, T=7, exact", f"{s['snn_accuracy']:.2%}",
              f"snncc step engine, {s['steps']} steps end to end")
    t.add_row("SNN from the float twin", f"{s['calibrated_float_twin_snn_accuracy']:.2%}",
              "--calibrate on 200 training images")
    console.print(t)
    console.print(f"SNN spike counts = integer reference: "
                  f"{'yes, every code' if s['snn_equals_integer_reference'] else 'NO'}; "
                  f"codes identical with onnxruntime: {s['onnx_code_agreement']:.4%}; "
                  f"argmax identical: {s['onnx_argmax_agreement']:.2%}")
    rates = Table(layer_column("neuron layer"), "neurons", "firing rate", title="firing rates")
    names = layer_names(model.graph)
    for n in model.graph.ops(snncc.ops.Neuron):
        c = result.counts[n.name]
        rates.add_row(names[n.name], str(c[0].size), f"{c.mean() / n.op.levels:.3f}")
    console.print(rates)
    console.print(f"outputs written to {out_dir}/ (targets: {', '.join(s['targets'])})")
