"""``snncc sweep``: accuracy and synaptic operations against end-to-end steps, for each
neuron kind, with exact mode as the reference point.

Points:
- ``exact``: unit-spike neurons that fire once their input window has closed (the
  integer quantized ANN, bit for bit);
- ``multi``: multi-threshold neurons (exact, one step a neuron layer);
- ``if`` at each step budget: per-layer delays chosen by ``--latency`` on the calibration
  data (without it: the largest delay common to all layers that fits the budget);
- ``signed`` at each step budget: the run cut at the budget, the start chosen by
  ``--latency`` on the calibration data (without it: firing at once, ``--delay none``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from snncc.compiler import CompiledModel
from snncc.compiler import compile as compile_model

KINDS = ("exact", "multi", "if", "signed")


@dataclass
class Point:
    kind: str
    steps: int
    setting: str  # how it was compiled, in `snncc compile` options
    accuracy: float | None
    decision_agreement: float  # argmax identical to the exact model
    code_agreement: float  # spike counts identical to the exact model, over every neuron
    sops: float  # synaptic operations per inference
    pj: float  # energy per inference (45 nm model)


def default_budgets(T: int, shortest: int, exact_steps: int) -> list[int]:
    """Multiples of T from the shortest run up to (not including) exact mode."""
    out = sorted({max(shortest, k * T) for k in range(1, 5)} | {shortest})
    return [b for b in out if b < exact_steps]


def run_sweep(model: str | Path, x: np.ndarray, y: np.ndarray | None, *, T: int = 7,
              budgets: list[int] | None = None, calibrate: np.ndarray | None = None,
              progress: Callable[[str], None] | None = None,
              labels_file: str | Path = "labels") -> dict:
    """Every point of the sweep (see the module docstring), as a JSON-ready dict.
    `labels_file`: where y came from (for a message about it)."""
    from snncc.runtime import inputs

    say = progress or (lambda what: None)
    say("exact mode")
    exact = compile_model(model, T, calibrate=calibrate)
    x = exact.check_input(x)
    if y is not None:
        y = inputs.labels(y, Path(labels_file), "--labels", len(x), inputs.classes(exact))
    ref = exact.run(x)
    shortest = compile_model(model, T, calibrate=calibrate, delay="none").steps
    budgets = budgets or default_budgets(T, shortest, exact.steps)
    points = [_point("exact", exact, "--delay exact", x, y, ref)]
    say("multi-threshold neurons")
    multi = compile_model(model, T, calibrate=calibrate, neuron="multi")
    points.append(_point("multi", multi, "--neuron multi", x, y, ref))
    for budget in budgets:
        for kind in ("if", "signed"):
            say(f"{kind} neurons in {budget} steps")
            compiled, setting = _within(model, T, kind, budget, calibrate, exact)
            points.append(_point(kind, compiled, setting, x, y, ref))
    return {"model": str(model), "T": T, "inputs": len(x), "budgets": budgets,
            "calibrated": calibrate is not None, "points": [asdict(p) for p in points]}


def _within(model, T: int, kind: str, budget: int, calibrate, exact: CompiledModel
            ) -> tuple[CompiledModel, str]:
    """The model compiled to fit `budget` steps with neurons of `kind` (`exact`: the same
    model in exact mode)."""
    if calibrate is not None:
        m = compile_model(model, T, calibrate=calibrate, neuron=kind, latency=budget)
        return m, f"--neuron {kind} --latency {budget}"
    if kind == "signed":
        from snncc.runtime.latency import cut_at

        m = compile_model(model, T, neuron="signed", delay="none")
        cut_at(m.graph, budget)
        return m, f"--neuron signed --delay none, cut at {budget}"
    from snncc import ops as o
    from snncc.runtime.latency import uniform_delay

    d = uniform_delay(exact.graph, [n.name for n in exact.graph.ops(o.Neuron)], budget)
    return compile_model(model, T, delay=d), f"--delay {d}"


def _point(kind: str, m: CompiledModel, setting: str, x: np.ndarray, y: np.ndarray | None,
           ref) -> Point:
    from snncc.metrics.energy import EnergyModel, energy_summary
    from snncc.metrics.measure import measure

    engine = "fast" if m.delay == "exact" else "step"
    meas = measure(m, x, engine=engine, keep_counts=True)
    r = meas.result
    energy = energy_summary(meas.counts, None, EnergyModel())["snn"]
    same = [np.mean(r.counts[k] == ref.counts[k]) for k in ref.counts]
    acc = None if y is None else float(np.mean(r.predictions == np.asarray(y).reshape(-1)))
    return Point(kind, int(r.steps), setting, acc,
                 float(np.mean(r.predictions == ref.predictions)), float(np.mean(same)),
                 float(energy["sops"]), float(energy["pj"]))


def table_rows(result: dict) -> list[list[str]]:
    rows = []
    for p in result["points"]:
        acc = "" if p["accuracy"] is None else f"{p['accuracy']:.2%}"
        rows.append([p["kind"], str(p["steps"]), acc, f"{p['decision_agreement']:.2%}",
                     f"{p['code_agreement']:.2%}", f"{p['sops']:,.0f}",
                     f"{p['pj'] / 1e6:.3f}", p["setting"]])
    return rows


def curves(result: dict, key: str) -> dict[str, list[tuple[float, float]]]:
    """(steps, `key`) per neuron kind, for a line chart."""
    out: dict[str, list[tuple[float, float]]] = {}
    for p in result["points"]:
        value = p[key]
        if value is not None:
            out.setdefault(p["kind"], []).append((float(p["steps"]), float(value)))
    return out


def html_section(result: dict) -> str:
    """The curves as inline SVG, with a heading (for sweep.html and the HTML report)."""
    from snncc.app.charts import line_chart

    has_acc = any(p["accuracy"] is not None for p in result["points"])
    key = "accuracy" if has_acc else "decision_agreement"
    what = "accuracy" if has_acc else "decisions equal to exact mode"
    return ("<h2>Accuracy and operations against end-to-end steps</h2>"
            + line_chart(curves(result, key), x_label="end-to-end steps", y_label=what,
                         percent=True)
            + line_chart(curves(result, "sops"), x_label="end-to-end steps",
                         y_label="synaptic operations per inference"))


def html_page(result: dict) -> str:
    from html import escape

    head = ("<!doctype html><html><head><meta charset='utf-8'><title>snncc sweep</title>"
            "<style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 8px;"
            "white-space:nowrap;text-align:right}</style></head><body>")
    title = f"<h1>snncc sweep: {escape(Path(result['model']).name)} (T = {result['T']})</h1>"
    cols = ["kind", "steps", "accuracy", "decisions = exact", "codes = exact",
            "SOPs/inference", "µJ/inference", "compiled with"]
    table = "<table><tr>" + "".join(f"<th>{c}</th>" for c in cols) + "</tr>" + "".join(
        "<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>"
        for row in table_rows(result)) + "</table>"
    return head + title + table + html_section(result) + "</body></html>\n"
