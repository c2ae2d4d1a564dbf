"""Refit the Verilog resource estimate's LUT and flip-flop coefficients against Yosys.

    python bench/fit_estimate.py [--family ice40|xc7] [--jobs 2] [--work DIR]
                                 [--out bench/fit_estimate_<family>.json] [--reuse A,B|all]

Each design of FIT (tiny CNNs, transformers and the MLP of tests/modelgen.py at several
knob settings and neuron kinds; for xc7 also the bundled example at `--parallel 8`,
`--parallel 1` and its fast setting examples/digits_vit/hw_100t.json) and of CHECK (the
held-out designs of tests/test_verilog.py: a 4 x 4 transformer of another seed at three
settings, the MLP at `--parallel 4`, the multi-spike CNN at `--parallel 1`) is compiled
for the Verilog target and synthesized by Yosys (iCE40: `synth_ice40 -run :check`; xc7:
the design's `make synth-xilinx`, whose wall time is kept as `seconds`); its features
(`estimate._features`) and Yosys's cell counts are written to the JSON file, the CHECK
designs marked `held_out`. The coefficients of each feature set of
`estimate._LUT_COEF` / `_FF_COEF` are refitted on the FIT designs by non-negative least
squares on the relative error (but those in FIXED, which are measured: the adder trees'
LUTs, snn_conv_rows's wide weight words). Prints the new coefficients, each design's
error at the old and new ones, and each fitted design's leave-one-out error (at the
coefficients refitted without it); it changes no file of the package. With --work, the
builds are kept there and a design already synthesized there is not synthesized again
(the bundled example takes 13-30 minutes of Yosys for xc7, by the load; it is fitted for
xc7 only). With --reuse, the named designs
(`all`: every one) keep the Yosys counts of the existing JSON file (for designs whose RTL
has not changed since) and only their features are recomputed.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import modelgen  # noqa: E402
import snncc  # noqa: E402
from snncc.backends.parallel import config, read_config  # noqa: E402
from snncc.backends.verilog import estimate  # noqa: E402
from snncc.backends.verilog.lower import lower  # noqa: E402

# name -> (model, neuron, delay, --parallel (or a --hw-config file), --pipeline)
FIT = {
    "cnn_if_None": (lambda: modelgen.tiny_cnn(), "if", "exact", None, False),
    "cnn_if_1": (lambda: modelgen.tiny_cnn(), "if", "exact", 1, False),
    "cnn_multi_2": (lambda: modelgen.tiny_cnn(), "multi", "exact", 2, False),
    "tr_if_1": (lambda: modelgen.tiny_transformer(), "if", "exact", 1, False),
    "tr44s3_if_None": (lambda: modelgen.tiny_transformer(seed=3, tokens=4, dim=4), "if",
                       "exact", None, False),
    "tr44s3_pipe": (lambda: modelgen.tiny_transformer(seed=3, tokens=4, dim=4), "if",
                    "exact", None, True),
    "mlp_8": (lambda: modelgen.tiny_mlp(), "if", "exact", 8, False),
}
EXAMPLE = ROOT / "examples" / "digits_vit" / "digits_vit_qcdq.onnx"
# the held-out designs of tests/test_verilog.py (xc7: synthesized and reported, not fitted)
CHECK = {"mlp_4": (lambda: modelgen.tiny_mlp(), "if", "exact", 4, False),
         "cnn_multi_1": (lambda: modelgen.tiny_cnn(), "multi", "exact", 1, False),
         "tr44s7_if_None": (lambda: modelgen.tiny_transformer(seed=7, tokens=4, dim=4), "if",
                            "exact", None, False),
         "tr44s7_if_1": (lambda: modelgen.tiny_transformer(seed=7, tokens=4, dim=4), "if",
                         "exact", 1, False),
         "tr44s7_pipe": (lambda: modelgen.tiny_transformer(seed=7, tokens=4, dim=4), "if",
                         "exact", None, True)}
HW_100T = EXAMPLE.parent / "hw_100t.json"  # the fast setting: 16 lanes, event TD-MatMuls
XC7_ONLY = {"digits_8": (lambda: onnx.load(EXAMPLE), "if", "exact", 8, False),
            "digits_1": (lambda: onnx.load(EXAMPLE), "if", "exact", 1, False),
            "digits_100t": (lambda: onnx.load(EXAMPLE), "if", "exact", HW_100T, False)}


def synthesize(name: str, spec, family: str, work: Path, kept: dict | None = None) -> dict:
    make, neuron, delay, parallel, pipeline = spec
    path = work / f"{name}.onnx"
    onnx.save(make(), path)
    graph = snncc.compile(path, T=7, neuron=neuron, delay=delay).graph
    if isinstance(parallel, Path):
        hw = config(graph, None, read_config(parallel), str(parallel), pipeline=pipeline)
    else:
        hw = config(graph, parallel, {}, "--parallel", pipeline=pipeline)
    features = estimate._features(lower(graph, hw), family)
    if kept is not None:  # Yosys's counts of an unchanged design, from the last fit
        print(f"{name}: {kept} (kept)", flush=True)
        return {"name": name, "features": features, "yosys": kept}
    build = work / name
    knob = (["--hw-config", str(parallel)] if isinstance(parallel, Path)
            else ["--parallel", str(parallel)] if parallel else []) + (
        ["--pipeline"] if pipeline else [])
    design = build / "verilog"
    done = (design / "build" / "synth" / "xilinx.json").exists()
    if not (family == "xc7" and done):
        subprocess.run([sys.executable, "-m", "snncc", "compile", str(path), "-T", "7",
                        "--neuron", neuron, "--target", "verilog", "-o", str(build), "--force",
                        *knob], check=True, capture_output=True)
    timing = design / "build" / "synth" / "seconds"  # Yosys's wall time, kept with --work
    if family == "xc7":
        if not done:
            start = time.monotonic()
            subprocess.run(["make", "synth-xilinx"], cwd=design, check=True,
                           capture_output=True)
            timing.write_text(f"{time.monotonic() - start:.0f}\n")
        from snncc.backends.verilog.tools import xilinx_figures
        figures = xilinx_figures(design)
        measured = {"lut": figures["lut"], "ff": figures["ff"]}
        if timing.exists():
            measured["seconds"] = int(timing.read_text())
    else:
        rtl = " ".join(re.search(r"^RTL := (.*)$", (design / "Makefile").read_text(),
                                 re.M)[1].split())
        (design / "build" / "synth").mkdir(parents=True, exist_ok=True)
        subprocess.run(["yosys", "-q", "-p", f"read_verilog -defer -DSYNTHESIS {rtl}; "
                        "synth_ice40 -top snn_top -run :check; "
                        "tee -q -o build/synth/ice40.json stat -json"],
                       cwd=design, check=True, capture_output=True)
        stat = json.loads((design / "build" / "synth" / "ice40.json").read_text())
        cells = stat["design"]["num_cells_by_type"]
        measured = {"lut": cells.get("SB_LUT4", 0),
                    "ff": sum(n for k, n in cells.items() if k.startswith("SB_DFF"))}
    print(f"{name}: {measured}", flush=True)
    return {"name": name, "features": features, "yosys": measured}


def nnls(a: np.ndarray, b: np.ndarray, iterations: int = 20000) -> np.ndarray:
    """Non-negative least squares by projected gradient (small problems)."""
    x = np.clip(np.linalg.lstsq(a, b, rcond=None)[0], 0, None)
    step = 1.0 / max(np.linalg.norm(a, 2) ** 2, 1e-12)
    for _ in range(iterations):
        x = np.clip(x - step * a.T @ (a @ x - b), 0, None)
    return x


# coefficients measured, not fitted (estimate.py says where from): kept as they are
FIXED = {"tree", "romwide", "turn"}


def refit(rows: list[dict], family: str, key: str, coef: dict[str, float]) -> dict[str, float]:
    names = [k for k in coef if k not in FIXED]
    fixed = {k: v for k, v in coef.items() if k in FIXED}
    y = np.array([r["yosys"][key] for r in rows], float)
    off = np.array([sum(v * r["features"][k] for k, v in fixed.items()) for r in rows])
    a = np.array([[r["features"][k] for k in names] for r in rows], float) / y[:, None]
    x = nnls(a, 1 - off / y)
    return {k: float(f"{v:.4g}") for k, v in zip(names, x, strict=True)} | fixed


def error(rows: list[dict], key: str, coef: dict[str, float]) -> list[float]:
    """Each row's relative error of the estimate at `coef`."""
    return [sum(v * r["features"][k] for k, v in coef.items()) / r["yosys"][key] - 1
            for r in rows]


def leave_one_out(rows: list[dict], family: str, key: str,
                  coef: dict[str, float]) -> list[float]:
    """Each fitted row's error at the coefficients refitted without it."""
    return [error([r], key, refit(rows[:i] + rows[i + 1:], family, key, coef))[0]
            for i, r in enumerate(rows)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--family", choices=("ice40", "xc7"), default="ice40")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--reuse", default="", help="designs (or 'all') whose counts are kept")
    args = parser.parse_args()
    out = args.out or ROOT / "bench" / f"fit_estimate_{args.family}.json"
    designs = FIT | (XC7_ONLY if args.family == "xc7" else {}) | CHECK
    stored = ({r["name"]: r["yosys"] for r in json.loads(out.read_text())["designs"]}
              if out.exists() else {})
    reuse = set(designs) if args.reuse == "all" else {n for n in args.reuse.split(",") if n}
    last = {n: y for n, y in stored.items() if n in reuse}
    if reuse - set(last):
        sys.exit(f"--reuse: no Yosys counts of {sorted(reuse - set(last))} in {out}")
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(args.jobs) as pool:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        rows = list(pool.map(lambda item: synthesize(*item, args.family, work,
                                                     last.get(item[0])),
                             designs.items()))
    for r in rows:
        r["held_out"] = r["name"] in CHECK
    out.write_text(json.dumps({"family": args.family, "designs": rows}, indent=1) + "\n")
    fit = [r for r in rows if not r["held_out"]]
    for key, table in (("lut", estimate._LUT_COEF), ("ff", estimate._FF_COEF)):
        old = table[args.family]
        new = refit(fit, args.family, key, old)
        print(f"{args.family} {key}: {old} -> {new}")
        loo = dict(zip([r["name"] for r in fit], leave_one_out(fit, args.family, key, old),
                       strict=True))
        for r, was, now in zip(rows, error(rows, key, old), error(rows, key, new),
                               strict=True):
            y = r["yosys"][key]
            tail = "held out" if r["held_out"] else f"leave-one-out {loo[r['name']]:+.0%}"
            print(f"  {r['name']:>16}: Yosys {y:>6}  old {(1 + was) * y:>8.0f} ({was:+.0%})"
                  f"  new {(1 + now) * y:>8.0f} ({now:+.0%})  {tail}")
        print(f"  worst leave-one-out {max(map(abs, loo.values())):.0%}")


if __name__ == "__main__":
    main()
