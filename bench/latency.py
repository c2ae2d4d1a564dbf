"""Latency benchmarks: accuracy (and agreement with exact mode) against end-to-end steps,
per neuron kind, on the bundled digits ViTs and a deep DeiT-family model; and the input
spike placement experiment (front-loaded against evenly spread spike trains).

    python bench/latency.py [--quick] [--deit PATH]

Writes bench/latency.json and bench/latency.md (BENCHMARKS.md includes the latter).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import snncc  # noqa: E402
from snncc.app.sweep import run_sweep, table_rows  # noqa: E402
from snncc.backends.sim import plan  # noqa: E402
from snncc.backends.sim.engine import run_fast, run_step  # noqa: E402
from snncc.schedule import neuron_layers_on_path  # noqa: E402

EXAMPLE = ROOT / "examples" / "digits_vit"


def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    test = np.load(EXAMPLE / "digits_test.npz")
    return test["x"], test["y"], np.load(EXAMPLE / "digits_calib.npz")["x"]


def sweeps(quick: bool, done: list[dict], save) -> list[dict]:
    x, y, calib = digits()
    if quick:
        x, y = x[:120], y[:120]
    runs = [("digits ViT, QAT (QCDQ)", EXAMPLE / "digits_vit_qcdq.onnx", calib),
            ("digits ViT, QAT, power-of-two scales", EXAMPLE / "digits_vit_po2_qcdq.onnx", calib),
            ("digits ViT, float + --calibrate", EXAMPLE / "digits_vit_float.onnx", calib)]
    for title, path, data in runs:
        if any(r["title"] == title for r in done):
            continue
        start = time.perf_counter()
        result = run_sweep(path, x, y, T=7, budgets=[7, 14, 21, 28], calibrate=data)
        result.update(title=title, seconds=time.perf_counter() - start,
                      model=str(path.relative_to(ROOT)))  # no machine paths in the record
        done.append(result)
        save()
        print(f"{title}: {result['seconds']:.0f} s", flush=True)
    return done


def deit_points(deit: Path, quick: bool) -> dict:
    """A deep random-weight DeiT-family model: agreement with exact mode only (no labels),
    no operation counts (the per-step replay of a deep model's long windows is large)."""
    exact = snncc.compile(deit, 7)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (8 if quick else 16,) + exact.input_shape)
    calib = rng.uniform(0, 1, (32,) + exact.input_shape)
    ref = run_fast(exact.graph, x)
    rows = []

    def add(kind: str, setting: str, model) -> None:
        r = run_step(model.graph, x) if model.delay != "exact" else run_fast(model.graph, x)
        same = np.mean([np.mean(r.counts[k] == ref.counts[k]) for k in ref.counts])
        rows.append({"kind": kind, "setting": setting, "steps": int(model.steps),
                     "decisions": float(np.mean(r.predictions == ref.predictions)),
                     "codes": float(same)})
        print(f"  {setting}: {model.steps} steps", flush=True)

    add("exact", "--delay exact", exact)
    add("multi", "--neuron multi", snncc.compile(deit, 7, neuron="multi"))
    for budget in (14, 28, 56):
        add("signed", f"--neuron signed --latency {budget}",
            snncc.compile(deit, 7, neuron="signed", latency=budget, calibrate=calib))
    from snncc.runtime import latency

    latency.CANDIDATES, latency.MAX_ROUNDS = 6, 10  # a bounded search on a deep model
    for budget in (28, 56):
        add("if", f"--latency {budget} (search: 6 candidates x 10 rounds)",
            snncc.compile(deit, 7, latency=budget, calibrate=calib))
    return {"title": f"DeiT family, random weights ({deit.stem})", "inputs": len(x),
            "neuron_layers": neuron_layers_on_path(exact.graph), "rows": rows}


# ---------------------------------------------------------------- input spike placement


def spread_inputs(enable: bool):
    """Patch the interpreter's input encoding: spike k of code c at step ⌊k·W/c⌋ of the
    input window W (evenly spread) instead of steps 0..c-1 (front-loaded)."""
    original = plan._input_steps

    def spread(p, n, x, steps):
        s = original(p, n, x, steps)
        op = n.op
        if op.analog or op.weighted:
            return s
        codes = s.data.astype(np.int64).sum(axis=0)
        w = len(s.data)
        t = np.arange(w).reshape((-1,) + (1,) * codes.ndim)
        # spike k at floor(k*w/c): a step t carries one iff some k has floor(k*w/c) == t
        c = np.maximum(codes, 1)[None]
        lo = -(-(t * c) // w)  # the first k with k*w/c >= t, i.e. ceil(t*c/w)
        hi = -(-((t + 1) * c) // w)
        data = ((hi > lo) & (lo < codes[None])).astype(s.data.dtype)
        return plan.Steps(s.t0, data)

    plan._input_steps = spread if enable else original
    return original


def placement(quick: bool) -> list[dict]:
    import onnx

    import modelgen

    rows = []
    tmp = ROOT / "bench" / ".models"
    tmp.mkdir(exist_ok=True)
    for seed in (3, 4, 5):
        path = tmp / f"spiking_input_{seed}.onnx"
        onnx.save(modelgen.tiny_transformer(spike_input=True, seed=seed), path)
        exact = snncc.compile(path, 7)
        x = np.random.default_rng(seed).uniform(0, 1, (64 if quick else 256,) +
                                                 exact.input_shape)
        ref = run_fast(exact.graph, x)
        for delay in ("none", 0, 1, 2):
            model = snncc.compile(path, 7, delay=delay)
            for how in ("front-loaded", "evenly spread"):
                original = spread_inputs(how == "evenly spread")
                try:
                    plan._CACHE.clear()
                    r = run_step(model.graph, x)
                finally:
                    plan._input_steps = original
                    plan._CACHE.clear()
                same = np.mean([np.mean(r.counts[k] == ref.counts[k]) for k in ref.counts])
                rows.append({"model": f"tiny transformer, spiking input, seed {seed}",
                             "delay": str(delay), "steps": model.steps, "placement": how,
                             "decisions": float(np.mean(r.predictions == ref.predictions)),
                             "codes": float(same)})
    return rows


# ---------------------------------------------------------------- report


def markdown(results: list[dict], deit: dict | None, placed: list[dict]) -> str:
    lines = ["## Latency: accuracy against end-to-end steps (`bench/latency.py`)", "",
             "Each row is one `snncc compile` setting simulated on the whole test split with "
             "the step engine (exact mode and `multi` with the fast engine); `--latency` "
             "chose its delays on the 200 calibration images. \"= exact\" columns: argmax "
             "decisions and spike counts identical to exact mode. SOPs count spike events "
             "(a −1 spike, or a line of a weighted number, is one event) times fan-out.", ""]
    head = ("| kind | steps | accuracy | decisions = exact | codes = exact | SOPs/inference "
            "| µJ/inference | compiled with |")
    for r in results:
        lines += [f"### {r['title']}", "", f"{r['inputs']} inputs; sweep took "
                  f"{r['seconds']:.0f} s.", "", head, "|---|---:|---:|---:|---:|---:|---:|---|"]
        lines += ["| " + " | ".join(row) + " |" for row in table_rows(r)]
        lines.append("")
    if deit:
        lines += [f"### {deit['title']}", "",
                  f"{deit['neuron_layers']} neuron layers on the longest path; {deit['inputs']} "
                  "random inputs (no labels: agreement with exact mode); `--latency` chose on "
                  "32 other random inputs.", "",
                  "| kind | compiled with | steps | decisions = exact | codes = exact |",
                  "|---|---|---:|---:|---:|"]
        lines += [f"| {r['kind']} | `{r['setting']}` | {r['steps']} | {r['decisions']:.2%} | "
                  f"{r['codes']:.2%} |" for r in deit["rows"]]
        lines.append("")
    if placed:
        lines += ["### Input spike placement", "",
                  "Spiking-input models (8×8 inputs quantized to 7 levels, so the first layer "
                  "is spike-driven), unit-spike neurons, step engine; agreement with exact "
                  "mode on random inputs. Front-loaded: code c spikes at steps 0..c−1 (what "
                  "snncc does); evenly spread: spike k at step ⌊k·7/c⌋.", "",
                  "| model | --delay | steps | placement | decisions = exact | codes = exact |",
                  "|---|---|---:|---|---:|---:|"]
        lines += [f"| {p['model']} | {p['delay']} | {p['steps']} | {p['placement']} | "
                  f"{p['decisions']:.2%} | {p['codes']:.2%} |" for p in placed]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--deit", type=Path, default=None,
                        help="a DeiT-family model from examples/deit_tiny/generate.py")
    parser.add_argument("--only", choices=("digits", "deit", "placement"), action="append",
                        help="run only these parts (repeatable); the others are kept from "
                             "bench/latency.json")
    args = parser.parse_args()
    parts = set(args.only or ("digits", "deit", "placement"))
    store = ROOT / "bench" / "latency.json"
    state = json.loads(store.read_text()) if store.is_file() else {}
    state.setdefault("sweeps", [])
    if "digits" in parts:
        state["sweeps"] = []

    def save() -> None:
        store.write_text(json.dumps(state, indent=2) + "\n")
        (ROOT / "bench" / "latency.md").write_text(
            markdown(state["sweeps"], state.get("deit"), state.get("placement", [])))

    if "digits" in parts:
        sweeps(args.quick, state["sweeps"], save)
    if "deit" in parts and args.deit is not None:
        state["deit"] = deit_points(args.deit, args.quick)
        save()
    if "placement" in parts:
        state["placement"] = placement(args.quick)
        save()
    print("wrote bench/latency.json and bench/latency.md")


if __name__ == "__main__":
    main()
