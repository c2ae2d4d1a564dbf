"""Refit the Verilog resource estimate's LUT and flip-flop coefficients against Yosys.

    python bench/fit_estimate.py [--family ice40|xc7] [--jobs 2] [--work DIR]
                                 [--out bench/fit_estimate_<family>.json] [--reuse A,B]

Each design of FIT (tiny CNNs, transformers and the MLP of tests/modelgen.py at several
knob settings and neuron kinds) is compiled for the Verilog target and synthesized by
Yosys (iCE40: `synth_ice40 -run :check`; xc7: the design's `make synth-xilinx`); its
features (`estimate._features`) and Yosys's cell counts are written to the JSON file,
and the coefficients of each feature set of `estimate._LUT_COEF` / `_FF_COEF` are
refitted by non-negative least squares on the relative error (but those in FIXED, which
are measured: the adder trees' LUTs, snn_conv_rows's wide weight words). The held-out
design of tests/test_verilog.py (a 4 x 4 transformer, seed 7) is not in FIT. Prints the new
coefficients and each design's error; it changes no file of the package. With --work,
the builds are kept there and a design already synthesized there is not synthesized
again (the bundled example takes about 10 minutes of Yosys for xc7; it is fitted for
xc7 only). With --reuse, the named designs keep the Yosys counts of the existing JSON
file (for designs whose RTL has not changed since) and only their features are
recomputed.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import modelgen  # noqa: E402
import snncc  # noqa: E402
from snncc.backends.parallel import config  # noqa: E402
from snncc.backends.verilog import estimate  # noqa: E402
from snncc.backends.verilog.lower import lower  # noqa: E402

# name -> (model, neuron, delay, --parallel, --pipeline)
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
# the held-out design of tests/test_verilog.py (--check: reported, not fitted)
CHECK = {"tr44s7_if_None": (lambda: modelgen.tiny_transformer(seed=7, tokens=4, dim=4), "if",
                            "exact", None, False),
         "tr44s7_if_1": (lambda: modelgen.tiny_transformer(seed=7, tokens=4, dim=4), "if",
                         "exact", 1, False),
         "tr44s7_pipe": (lambda: modelgen.tiny_transformer(seed=7, tokens=4, dim=4), "if",
                         "exact", None, True)}
XC7_ONLY = {"digits_8": (lambda: onnx.load(EXAMPLE), "if", "exact", 8, False),
            "digits_1": (lambda: onnx.load(EXAMPLE), "if", "exact", 1, False)}


def synthesize(name: str, spec, family: str, work: Path, kept: dict | None = None) -> dict:
    make, neuron, delay, parallel, pipeline = spec
    path = work / f"{name}.onnx"
    onnx.save(make(), path)
    graph = snncc.compile(path, T=7, neuron=neuron, delay=delay).graph
    hw = config(graph, parallel, {}, "--parallel", pipeline=pipeline)
    features = estimate._features(lower(graph, hw), family)
    if kept is not None:  # Yosys's counts of an unchanged design, from the last fit
        print(f"{name}: {kept} (kept)", flush=True)
        return {"name": name, "features": features, "yosys": kept}
    build = work / name
    knob = (["--parallel", str(parallel)] if parallel else []) + (
        ["--pipeline"] if pipeline else [])
    design = build / "verilog"
    done = (design / "build" / "synth" / "xilinx.json").exists()
    if not (family == "xc7" and done):
        subprocess.run([sys.executable, "-m", "snncc", "compile", str(path), "-T", "7",
                        "--neuron", neuron, "--target", "verilog", "-o", str(build), "--force",
                        *knob], check=True, capture_output=True)
    if family == "xc7":
        if not done:
            subprocess.run(["make", "synth-xilinx"], cwd=design, check=True,
                           capture_output=True)
        from snncc.backends.verilog.tools import xilinx_figures
        figures = xilinx_figures(design)
        measured = {"lut": figures["lut"], "ff": figures["ff"]}
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
FIXED = {"tree", "romwide"}


def refit(rows: list[dict], family: str, key: str, coef: dict[str, float]) -> dict[str, float]:
    names = [k for k in coef if k not in FIXED]
    fixed = {k: v for k, v in coef.items() if k in FIXED}
    y = np.array([r["yosys"][key] for r in rows], float)
    off = np.array([sum(v * r["features"][k] for k, v in fixed.items()) for r in rows])
    a = np.array([[r["features"][k] for k in names] for r in rows], float) / y[:, None]
    x = nnls(a, 1 - off / y)
    return {k: float(f"{v:.4g}") for k, v in zip(names, x, strict=True)} | fixed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--family", choices=("ice40", "xc7"), default="ice40")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--reuse", default="")
    args = parser.parse_args()
    out = args.out or ROOT / "bench" / f"fit_estimate_{args.family}.json"
    designs = FIT | (XC7_ONLY if args.family == "xc7" else {})
    reuse = {n for n in args.reuse.split(",") if n}
    last = ({r["name"]: r["yosys"] for r in json.loads(out.read_text())["designs"]
             if r["name"] in reuse}
            if reuse and out.exists() else {})
    if reuse - set(last):
        sys.exit(f"--reuse: no Yosys counts of {sorted(reuse - set(last))} in {out}")
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(args.jobs) as pool:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        rows = list(pool.map(lambda item: synthesize(*item, args.family, work,
                                                     last.get(item[0])),
                             designs.items()))
    out.write_text(json.dumps({"family": args.family, "designs": rows}, indent=1) + "\n")
    for key, table in (("lut", estimate._LUT_COEF), ("ff", estimate._FF_COEF)):
        old = table[args.family]
        new = refit(rows, args.family, key, old)
        print(f"{args.family} {key}: {old} -> {new}")
        for r in rows:
            y = r["yosys"][key]
            est = {c: sum(v * r["features"][k] for k, v in cs.items())
                   for c, cs in (("old", old), ("new", new))}
            print(f"  {r['name']:>16}: Yosys {y:>6}  old {est['old']:>8.0f} "
                  f"({est['old'] / y - 1:+.0%})  new {est['new']:>8.0f} "
                  f"({est['new'] / y - 1:+.0%})")


if __name__ == "__main__":
    main()
