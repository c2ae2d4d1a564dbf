"""snncc benchmarks: interpreter throughput against onnxruntime, compile-time scaling.

    python bench/run.py [--quick] [--reps N] [--out BENCHMARKS.md]

Writes BENCHMARKS.md (and bench/compile_scaling.svg):
1. Simulation throughput (inputs per second) of the fast and the step engine against
   onnxruntime running the source quantized ONNX model on the same batch, in one process,
   on the bundled digits model and on the DeiT-tiny-scale model
   (examples/deit_tiny/generate.py; needs the ``train`` extra).
2. Compile time and peak memory (RSS of a fresh process) of compiling to every target as
   the model grows in depth, width and tokens, with the fitted growth exponents.
3. The time of each pass on the largest model.
4. The `snncc simulate` command against onnxruntime's whole process (bench/command.py).

Times are medians over repeated runs (the spread is shown); the engines and onnxruntime
take turns within each repetition, so that they see the same machine load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import command as bench_command  # noqa: E402  (bench/command.py: the simulate command)

MODELS = ROOT / "bench" / "models"
DIGITS = ROOT / "examples" / "digits_vit"
T = 7


# ---------------------------------------------------------------- machine


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas_name() -> str:
    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return f"{blas['name']} {blas['version']}"
    except Exception:  # noqa: BLE001 - informational only
        return "unknown"


def machine() -> dict:
    import onnxruntime as ort

    import snncc

    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": f"{np.__version__} ({blas_name()})",
        "onnxruntime": ort.__version__,
        "snncc": getattr(snncc, "__version__", "?"),
        "os": f"{platform.system()} {platform.release()}",
        "load": os.getloadavg(),
    }


# ---------------------------------------------------------------- models


@dataclass(frozen=True)
class Size:
    depth: int = 12
    width: int = 192
    tokens: int = 196

    @property
    def label(self) -> str:
        return f"d{self.depth} w{self.width} t{self.tokens}"


DEIT = Size()


def deit_model(size: Size) -> Path:
    """The generated model of `size` (cached in bench/models/)."""
    sys.path.insert(0, str(ROOT / "examples" / "deit_tiny"))
    import generate

    cfg = generate.Config(depth=size.depth, width=size.width, tokens=size.tokens,
                          heads=max(1, size.width // 64))
    path = MODELS / cfg.filename
    if not path.exists():
        print(f"  generating {size.label} ...", flush=True)
        generate.generate(cfg, MODELS)
    return path


def deit_inputs(path: Path, n: int) -> np.ndarray:
    sys.path.insert(0, str(ROOT / "examples" / "deit_tiny"))
    import generate
    import torch

    side = _input_shape(path)[-1]
    return generate.images(n, side, torch.Generator().manual_seed(1)).numpy()


def _input_shape(path: Path) -> list[int]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim[1:]]


# ---------------------------------------------------------------- throughput


def ort_session(path: Path, optimize: bool):
    """onnxruntime on the source model with a free batch axis (the export fixes it to 1)."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(path))
    for value in (model.graph.input[0], model.graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    del model.graph.value_info[:]
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def turns(runners: dict, reps: int, clock=time.perf_counter, loops: int = 1
          ) -> dict[str, list[float]]:
    """Seconds per run of each runner by `clock`, `loops` runs a sample, the runners
    taking turns (after one warm-up run each) so that load drifts hit them alike."""
    for fn in runners.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(reps):
        for name, fn in runners.items():
            time.sleep(0.3)  # let the previous runner's spinning threads go idle
            start = clock()
            for _ in range(loops):
                fn()
            times[name].append((clock() - start) / loops)
    return times


def throughput(path: Path, x: np.ndarray, reps: int, step_reps: int) -> dict:
    """Inputs per second of onnxruntime (optimized and not) and both engines, one batch."""
    import snncc

    x = np.ascontiguousarray(x, np.float32)
    model = snncc.compile(path, T=T)
    optimized, plain = ort_session(path, True), ort_session(path, False)
    runners = {
        "onnxruntime": lambda: optimized.run(None, {"input": x}),
        "onnxruntime, no graph optimizations": lambda: plain.run(None, {"input": x}),
        "snncc fast engine": lambda: model.simulate(x, engine="fast", batch_size=len(x)),
        "snncc step engine": lambda: model.simulate(x, engine="step", batch_size=len(x)),
    }
    times: dict[str, list[float]] = {k: [] for k in runners}
    for fn in runners.values():  # warm-up
        fn()
    for r in range(reps):
        for name, fn in runners.items():
            if name == "snncc step engine" and r >= step_reps:
                continue
            time.sleep(0.3)  # let the previous runner's spinning threads go idle
            times[name].append(_timed(fn))
    ort_pred = runners["onnxruntime"]()[0].argmax(axis=1)
    snn_pred = model.simulate(x, engine="fast", batch_size=len(x)).predictions
    return {"batch": len(x), "steps": model.steps, "times": times,
            "agreement": float(np.mean(ort_pred == snn_pred))}


def rate(times: list[float], batch: int) -> float:
    return batch / statistics.median(times)


# ---------------------------------------------------------------- compile scaling


PEAK_RSS = """
def peak_rss():
    # VmHWM: this process image's peak (getrusage's ru_maxrss carries the parent's over exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
"""

CHILD = PEAK_RSS + """
import json, sys, time
from pathlib import Path
def done(name, seconds, **extra):
    peak = peak_rss()
    print(json.dumps({"phase": name, "seconds": seconds, "peak_rss": peak, **extra}),
          flush=True)
t = time.perf_counter()
import snncc
from snncc.backends import registry
from snncc.metrics.report import compile_report
done("import snncc", time.perf_counter() - t)
path, out, T = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
targets = [t for t in sys.argv[4].split(",") if t]
t = time.perf_counter(); m = snncc.compile(path, T=T)
done("compile", time.perf_counter() - t, nodes=len(m.graph),
     passes=[[p.name, p.seconds, p.nodes] for p in m.timings])
for target in targets:
    t = time.perf_counter(); registry.check(target, m.graph)
    done("check " + target, time.perf_counter() - t)
t = time.perf_counter(); m.save(out / "model.snn"); compile_report(m)
done("model.snn + report", time.perf_counter() - t)
for target in targets:
    t = time.perf_counter(); registry.emit(target, m.graph, out / target)
    done("emit " + target, time.perf_counter() - t)
"""

SIM_TIMEOUT = 600  # seconds for compiling one model without hardware targets
EMIT_TIMEOUT = 300  # seconds for one hardware target (a run still going is cut off)


def compile_child(path: Path, targets: tuple[str, ...], timeout: float) -> dict:
    """`snncc.compile`, the targets' checks, model.snn and report.json, and the targets'
    emits, in a fresh process: the seconds of each phase and the peak RSS. A run cut off
    by `timeout` keeps the phases it finished (`unfinished` names the one it was in)."""
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", CHILD, str(path), out, str(T),
                                 ",".join(targets)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=ROOT)
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        wall = time.perf_counter() - start
    lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    if proc.returncode not in (0, -9):
        raise RuntimeError(f"compiling {path.name} failed:\n{stderr[-3000:]}")
    result = {"phases": {ln["phase"]: ln["seconds"] for ln in lines}, "wall": wall,
              "peak_rss": max((ln["peak_rss"] for ln in lines), default=0),
              "unfinished": None, "timeout": timeout}
    for ln in lines:
        result.update({k: v for k, v in ln.items() if k in ("nodes", "passes")})
    if proc.returncode == -9:
        order = ["import snncc", "compile", *(f"check {t}" for t in targets),
                 "model.snn + report", *(f"emit {t}" for t in targets)]
        result["unfinished"] = next(p for p in order if p not in result["phases"])
    return result


CLI = PEAK_RSS + """
import json, sys
from snncc.app.cli import main
sys.argv = ["snncc", *sys.argv[1:]]
try:
    main()
finally:
    print(json.dumps({"peak_rss": peak_rss()}), file=sys.stderr, flush=True)
"""


def cli_child(path: Path, target: str, timeout: float) -> dict:
    """`snncc compile --target TARGET` end to end in a fresh process: wall time and peak
    RSS (None for the time if it was cut off after `timeout` seconds)."""
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", CLI, "compile", str(path), "-T", str(T),
                                 "--target", target, "-o", str(Path(out) / "build")],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd=ROOT)
        try:
            _, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            return {"target": target, "wall": None, "timeout": timeout, "peak_rss": 0}
        wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"snncc compile --target {target} failed:\n{stderr[-3000:]}")
    peak = json.loads(stderr.strip().splitlines()[-1])["peak_rss"]
    return {"target": target, "wall": wall, "timeout": timeout, "peak_rss": peak}


def sweeps(quick: bool) -> dict[str, list[Size]]:
    if quick:
        return {"depth": [Size(d, 64, 16) for d in (1, 2, 4)],
                "width": [Size(2, w, 16) for w in (64, 128)],
                "tokens": [Size(2, 64, t) for t in (16, 49)]}
    return {"depth": [Size(d) for d in (1, 2, 4, 8, 12)],
            "width": [Size(width=w) for w in (64, 128, 192, 256, 384)],
            "tokens": [Size(tokens=t) for t in (16, 49, 100, 144, 196)]}


def hardware_targets() -> list[str]:
    from snncc.backends import registry

    return [t for t in ("hls", "verilog") if registry.available(t)]


def measure(size: Size, reps: int, skip: set[str]) -> dict:
    """A model of the sweeps: `reps` compiles without hardware targets, then one run per
    hardware target (they are long and deterministic) unless listed in `skip`."""
    path = deit_model(size)
    sim = [compile_child(path, (), SIM_TIMEOUT) for _ in range(reps)]
    emit = {t: None if t in skip else compile_child(path, (t,), EMIT_TIMEOUT)
            for t in hardware_targets()}
    return {"size": size, "mib": path.stat().st_size / 2**20, "sim": sim, "emit": emit}


def scaling(quick: bool, reps: int) -> dict:
    """Every model of the sweeps. Along a sweep, a target that was cut off on a smaller
    model is not run on the larger ones."""
    results: dict[str, list[dict]] = {}
    cache: dict[Size, dict] = {}
    for axis, sizes in sweeps(quick).items():
        results[axis] = []
        skip: set[str] = set()
        for size in sizes:
            if size not in cache:
                cache[size] = measure(size, reps, skip)
                e = cache[size]
                print(f"  {size.label}: compile {sim_seconds(e):.2f} s, "
                      + ", ".join(f"{t} {_cell(e, t)}" for t in e["emit"]), flush=True)
            e = cache[size]
            skip |= {t for t, run in e["emit"].items() if run is None or run["unfinished"]}
            results[axis].append(e)
    return results


def sim_seconds(entry: dict) -> float:
    """Median seconds of compile + model.snn + report (no hardware target)."""
    return statistics.median(r["phases"]["compile"] + r["phases"]["model.snn + report"]
                             for r in entry["sim"])


def target_seconds(entry: dict, target: str) -> float | None:
    """The target's check + emit, or None if it did not run or finish."""
    run = entry["emit"].get(target)
    if run is None or run["unfinished"]:
        return None
    return run["phases"][f"check {target}"] + run["phases"][f"emit {target}"]


def all_targets_seconds(entry: dict) -> float | None:
    parts = [target_seconds(entry, t) for t in entry["emit"]]
    return None if None in parts else sim_seconds(entry) + sum(parts)


def _cell(entry: dict, target: str) -> str:
    run = entry["emit"].get(target)
    if run is None:
        return "not run (cut off on a smaller model)"
    if run["unfinished"]:
        return f"> {run['timeout']:.0f} (cut off in {run['unfinished']})"
    return f"{target_seconds(entry, target):.2f}"


def growth_exponent(xs: list[float], ys: list[float]) -> float:
    """The slope of log(time) against log(size): time ~ size**slope."""
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


# ---------------------------------------------------------------- plot (plain SVG)


COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728")


def svg_plot(series: dict[str, dict[str, tuple[list[float], list[float]]]],
             path: Path) -> None:
    """One log-log panel per swept size: seconds against size, one line per curve."""
    w, h, pad = 300, 230, 48
    curves = list(dict.fromkeys(k for panel in series.values() for k in panel))
    ys_all = [y for panel in series.values() for _, ys in panel.values() for y in ys]
    y0, y1 = np.log(min(ys_all)) - 0.2, np.log(max(ys_all)) + 0.2
    body = []
    for k, (name, panel) in enumerate(series.items()):
        ox = k * (w + 16)
        xs = next(iter(panel.values()))[0]
        lx = np.log(xs)
        x0, x1 = lx.min(), max(lx.max(), lx.min() + 1e-9)
        fx = lambda v, ox=ox, x0=x0, x1=x1: (  # noqa: E731
            ox + pad + (np.log(v) - x0) / (x1 - x0) * (w - pad - 12))
        fy = lambda v: 12 + (y1 - np.log(v)) / (y1 - y0) * (h - pad - 12)  # noqa: E731
        body.append(f'<rect x="{ox + pad}" y="12" width="{w - pad - 12}" '
                    f'height="{h - pad - 12}" fill="none" stroke="#999"/>')
        for v in xs:
            body.append(f'<text x="{fx(v):.1f}" y="{h - pad + 14}" font-size="10" '
                        f'text-anchor="middle">{v:g}</text>')
        for v in (0.1, 0.3, 1, 3, 10, 30, 100, 300):
            if y0 <= np.log(v) <= y1:
                body.append(f'<text x="{ox + pad - 4}" y="{fy(v) + 3:.1f}" font-size="10" '
                            f'text-anchor="end">{v:g}</text>')
        for c, curve in enumerate(curves):
            if curve not in panel:
                continue
            cx, cy = panel[curve]
            pts = " ".join(f"{fx(a):.1f},{fy(b):.1f}" for a, b in zip(cx, cy, strict=True))
            color = COLORS[c % len(COLORS)]
            body.append(f'<polyline points="{pts}" fill="none" stroke="{color}" '
                        f'stroke-width="2"/>')
            body += [f'<circle cx="{fx(a):.1f}" cy="{fy(b):.1f}" r="2.5" fill="{color}"/>'
                     for a, b in zip(cx, cy, strict=True)]
        body.append(f'<text x="{ox + pad + (w - pad) / 2:.0f}" y="{h - pad + 30}" '
                    f'font-size="12" text-anchor="middle">{name}</text>')
    legend = "".join(
        f'<rect x="{pad + 150 * c}" y="{h - 12}" width="10" height="10" '
        f'fill="{COLORS[c % len(COLORS)]}"/><text x="{pad + 150 * c + 14}" y="{h - 3}" '
        f'font-size="11">{curve}</text>' for c, curve in enumerate(curves))
    label = (f'<text x="12" y="{(h - pad) / 2}" font-size="11" text-anchor="middle" '
             f'transform="rotate(-90 12 {(h - pad) / 2})">seconds (log)</text>')
    width = len(series) * (w + 16)
    path.write_text(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{h}" '
                    f'font-family="sans-serif">{label}{"".join(body)}{legend}</svg>\n')


# ---------------------------------------------------------------- report


def fmt_rate(v: float) -> str:
    return f"{v:,.1f}" if v < 100 else f"{v:,.0f}"


def throughput_table(name: str, r: dict) -> list[str]:
    batch, times = r["batch"], r["times"]
    ort = rate(times["onnxruntime"], batch)
    lines = [f"**{name}**, batch {batch}, T = {T} ({r['steps']} steps end to end); "
             f"argmax agreement of the fast engine with onnxruntime on this batch: "
             f"{r['agreement']:.2%}", "",
             "| runner | inputs/s (median) | s/batch (min–max) | runs "
             "| ratio to onnxruntime |",
             "|---|---:|---:|---:|---:|"]
    for runner, ts in times.items():
        v = rate(ts, batch)
        lines.append(f"| {runner} | {fmt_rate(v)} | {min(ts):.3f}–{max(ts):.3f} | {len(ts)} "
                     f"| {v / ort:.2f}× |")
    return lines + [""]


def scaling_table(res: dict) -> tuple[list[str], dict]:
    targets = hardware_targets()
    lines = ["| model | ONNX MiB | SNN nodes | compile + model.snn s | peak RSS GiB | "
             + " | ".join(f"{t}: check + emit s | peak RSS GiB" for t in targets)
             + " | all targets s |",
             "|---|---:|---:|---:|---:|" + "---:|---:|" * len(targets) + "---:|"]
    fits: dict[str, dict[str, float]] = {}
    series: dict[str, dict[str, tuple[list[float], list[float]]]] = {}
    seen = set()
    for axis, entries in res.items():
        xs = [float(getattr(e["size"], axis)) for e in entries]
        curves = {"compile (sim)": [sim_seconds(e) for e in entries]}
        for t in targets:
            curves[t] = [target_seconds(e, t) for e in entries]
        curves["all targets"] = [all_targets_seconds(e) for e in entries]
        fits[axis] = {k: growth_exponent(xs, ys) for k, ys in curves.items()
                      if None not in ys}
        series[axis] = {k: (xs, ys) for k, ys in curves.items() if None not in ys}
        for e in entries:
            if e["size"] in seen:
                continue
            seen.add(e["size"])
            total = all_targets_seconds(e)
            row = (f"| {e['size'].label} | {e['mib']:.1f} | {e['sim'][0].get('nodes', '?')} "
                   f"| {sim_seconds(e):.2f} "
                   f"| {max(r['peak_rss'] for r in e['sim']) / 2**30:.2f} ")
            for t in targets:
                run = e["emit"][t]
                peak = f"{run['peak_rss'] / 2**30:.2f}" if run else "–"
                row += f"| {_cell(e, t)} | {peak} "
            lines.append(row + f"| {'–' if total is None else f'{total:.2f}'} |")
    return lines, {"fits": fits, "series": series}


def pass_table(entry: dict) -> list[str]:
    runs = entry["sim"]
    med = lambda f: statistics.median(f(r) for r in runs)  # noqa: E731
    lines = ["| step | seconds (median) | nodes after |", "|---|---:|---:|",
             f"| import snncc (interpreter start-up excluded) "
             f"| {med(lambda r: r['phases']['import snncc']):.3f} | |",
             f"| frontend: load ONNX, fold constants, import "
             f"| {med(lambda r: r['phases']['compile'] - sum(p[1] for p in r['passes'])):.3f}"
             " | |"]
    for k, (name, _, nodes) in enumerate(runs[0]["passes"]):
        lines.append(f"| pass `{name}` | {med(lambda r, k=k: r['passes'][k][1]):.3f} "
                     f"| {nodes} |")
    lines.append(f"| model.snn + report.json "
                 f"| {med(lambda r: r['phases']['model.snn + report']):.3f} | |")
    for t, run in entry["emit"].items():
        if run is None:
            continue
        for phase in (f"check {t}", f"emit {t}"):
            sec = run["phases"].get(phase)
            cell = (f"{sec:.3f}" if sec is not None else
                    f"> {run['timeout']:.0f} (cut off)" if run["unfinished"] == phase else "–")
            lines.append(f"| {phase} | {cell} | |")
    return lines + [""]


FAST_GOAL = {"digits ViT": 1.5, "DeiT-tiny scale": 1.0}  # issue 14: × onnxruntime


def goals_section(thr: dict, scale: dict | None, cmd: dict | None = None) -> list[str]:
    """The issue's goals against what was measured."""
    lines = ["## Goals", "", "| goal | measured | met |", "|---|---|---|"]
    lines += bench_command.goals(cmd) if cmd else []
    for name, r in thr.items():
        ort = rate(r["times"]["onnxruntime"], r["batch"])
        fast = rate(r["times"]["snncc fast engine"], r["batch"]) / ort
        step = rate(r["times"]["snncc step engine"], r["batch"]) / ort
        short = name.split(" (")[0]
        goal = FAST_GOAL.get(short, 1.0)
        lines.append(f"| fast engine ≥ {goal:.1f}× onnxruntime, {short} | {fast:.2f}× "
                     f"| {'yes' if fast >= goal else 'no'} |")
        lines.append(f"| step engine ≥ 1/T = {1 / T:.2f}× onnxruntime, {short} | {step:.2f}× "
                     f"| {'yes' if step >= 1 / T else 'no'} |")
    if scale is not None:
        base = next((e for es in scale["results"].values() for e in es
                     if e["size"] == DEIT), None)
        if base is not None:
            total = all_targets_seconds(base)
            peak = max([r["peak_rss"] for r in base["sim"]]
                       + [r["peak_rss"] for r in base["emit"].values() if r])
            cut = [t for t, r in base["emit"].items() if r is None or r["unfinished"]]
            took = (f"{total:.1f} s" if total is not None else
                    f"not finished: {', '.join(cut)} cut off after {EMIT_TIMEOUT} s "
                    f"(compile + model.snn {sim_seconds(base):.1f} s)")
            lines.append(f"| DeiT-tiny ({DEIT.label}) to all targets < 30 s | {took} "
                         f"| {'yes' if total is not None and total < 30 else 'no'} |")
            lines.append(f"| … and < 4 GiB peak | {peak / 2**30:.2f} GiB (largest process) "
                         f"| {'yes' if peak < 4 * 2**30 else 'no'} |")
            cli = next((c for c in scale["cli"] if c["target"] == "all"), None)
            if cli is not None and cli["wall"] is not None:
                lines.append(f"| `snncc compile --target all`, DeiT-tiny, whole command "
                             f"< 15 s (issue 14) | {cli['wall']:.1f} s "
                             f"| {'yes' if cli['wall'] < 15 else 'no'} |")
        fits = scaling_table(scale["results"])[1]["fits"].get("depth", {})
        for curve, slope in fits.items():
            lines.append(f"| time no faster than linear in depth ({curve}) "
                         f"| exponent {slope:.2f} | {'yes' if slope <= 1.1 else 'no'} |")
    return lines + [""]


def bounds_section(thr: dict, scale: dict | None) -> list[str]:
    """For each goal not reached: what bounds it."""
    lines, short = [], []
    for name, r in thr.items():
        ort = rate(r["times"]["onnxruntime"], r["batch"])
        fast = rate(r["times"]["snncc fast engine"], r["batch"])
        plain = rate(r["times"]["onnxruntime, no graph optimizations"], r["batch"])
        if fast < ort * FAST_GOAL.get(name.split(" (")[0], 1.0):
            short.append(f"{name.split(' (')[0]} {fast / ort:.2f}× ({fast / plain:.2f}× "
                         "onnxruntime without graph optimizations)")
    if short:
        lines.append(
            f"- **Fast engine: {'; '.join(short)}.** Without its graph optimizations "
            "onnxruntime runs the model's own float32 arithmetic; with them it fuses each "
            "QuantizeLinear/DequantizeLinear pair into integer kernels and returns the "
            "logits alone. The engine computes every neuron layer's spike counts exactly: "
            "integer currents through float BLAS only where the range is exact, and each "
            "neuron's level by comparing its current with its threshold table. Both split "
            "each layer over the 2 cores; what is left is the arithmetic of exactness, not "
            "interpreter overhead (no Python loop runs over neurons or spikes).")
    base = None if scale is None else next(
        (e for es in scale["results"].values() for e in es if e["size"] == DEIT), None)
    total = None if base is None else all_targets_seconds(base)
    if total is not None and total >= 30:
        cli = next((c for c in scale["cli"] if c["target"] == "all"), None)
        took = "" if cli is None or cli["wall"] is None else (
            f" `snncc compile --target all` in one process took {cli['wall']:.1f} s.")
        lines.append(
            f"- **DeiT-tiny to all targets: {total:.1f} s** summed over separate processes, "
            "each target regenerating its own golden vectors with the step engine (20 "
            "inputs for the HLS testbench, 5 for the RTL one: about 10 s of the HLS "
            "target's time on this model) and writing every weight and golden vector as "
            f"text.{took}")
    return ["## What bounds the goals not met", "", *lines, ""] if lines else []


def write_report(out: Path, info: dict, thr: dict, scale: dict | None, command: str,
                 elapsed: float, cmd: dict | None = None) -> None:
    lines = ["# snncc benchmarks", "",
             f"Written by `{command}` ({elapsed / 60:.0f} min). Re-run it to refresh this "
             "file; the numbers below are from one machine and move with its load.", "",
             "## Machine", "",
             f"- CPU: {info['cpu']}, {info['cores']} cores",
             f"- {info['os']}; Python {info['python']}; numpy {info['numpy']}; "
             f"onnxruntime {info['onnxruntime']}",
             f"- load average (1/5/15 min) at the start: "
             f"{' / '.join(f'{v:.1f}' for v in info['load'])}; at the end: "
             f"{' / '.join(f'{v:.1f}' for v in os.getloadavg())}",
             "- onnxruntime: CPU execution provider, default session options (graph "
             "optimizations on, intra-op threads = cores); snncc: its kernels split each "
             "layer over the cores (numpy's OpenBLAS single-threaded inside the engines)", "",
             *goals_section(thr, scale, cmd),
             *bounds_section(thr, scale),
             *(bench_command.section(cmd) if cmd else []),
             "## Simulation throughput", "",
             "Both engines run exact mode (`--delay exact`, T = 7) and return every neuron "
             "layer's spike counts besides the logits; onnxruntime runs the source QCDQ "
             "model and returns the logits. Same float32 batch, same process; the runners "
             "take turns within each repetition, each after a 0.3 s pause (so that no "
             "runner's idle-spinning threads slow the next). Goals: fast engine ≥ 1.0× "
             f"onnxruntime; step engine ≥ 1/T = {1 / T:.2f}×.", ""]
    for name, r in thr.items():
        lines += throughput_table(name, r)
    if scale is not None:
        table, fit = scaling_table(scale["results"])
        growth = "; ".join(f"**{axis}**: " + ", ".join(f"{k} {v:.2f}" for k, v in f.items())
                           for axis, f in fit["fits"].items())
        lines += ["## Compile time and memory", "",
                  "Each model in a fresh process (peak RSS is the whole process's). "
                  f"*compile + model.snn*: `snncc.compile` (frontend and passes) then "
                  f"model.snn and report.json, the median of {scale['reps']} runs. Each "
                  "hardware target once more on its own (one run: they are long and "
                  "deterministic): its `check` and `emit`, cut off after "
                  f"{EMIT_TIMEOUT} s; along a sweep, a target cut off on a smaller model "
                  "is not run on the larger ones. *all targets* = compile + model.snn + "
                  "every target's check and emit: what `snncc compile --target all` "
                  "does, less the interpreter start-up and `import snncc` (see the step "
                  "table). The sweeps vary one size of DeiT-tiny (d12 w192 t196: heads = "
                  "width/64, MLP ratio 4, a 16·√tokens square RGB input through four "
                  "Conv-BN-ReLU-MaxPool stages, 1000 classes).", "", *table, "",
                  "Growth exponents (least-squares slope of log seconds against log "
                  "size; 1.0 = linear): " + growth + ".", "",
                  "![seconds against depth, width and tokens](bench/compile_scaling.svg)",
                  ""]
        for run in scale["cli"]:
            mem = f", peak RSS {run['peak_rss'] / 2**30:.2f} GiB" if run["peak_rss"] else ""
            took = (f"{run['wall']:.1f} s{mem}" if run["wall"] is not None
                    else f"did not finish within {run['timeout']:.0f} s")
            lines.append(f"- `snncc compile {scale['cli_label']}.onnx -T 7 --target "
                         f"{run['target']}` (the CLI, a fresh process): {took}")
        lines += ["", f"### Time of each step on the largest model "
                  f"({scale['largest'].label})", "", *pass_table(scale["largest_entry"])]
        svg_plot(fit["series"], ROOT / "bench" / "compile_scaling.svg")
    for part in ("latency.md", "calib_family.md", "depth_agreement.md",  # their bench scripts
                 "boundary_float64.md"):
        if (ROOT / "bench" / part).is_file():
            lines += ["", (ROOT / "bench" / part).read_text().rstrip()]
    out.write_text("\n".join(lines) + "\n")


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small models, few runs")
    parser.add_argument("--reps", type=int, default=None, help="repetitions per measurement")
    parser.add_argument("--skip-scaling", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    args = parser.parse_args()
    reps = args.reps or (2 if args.quick else 5)
    start = time.perf_counter()
    info = machine()
    print(f"machine: {info['cpu']}, {info['cores']} cores, load {info['load']}", flush=True)

    thr = {}
    digits = np.load(DIGITS / "digits_test.npz")["x"][:256]
    print("throughput: digits ViT", flush=True)
    thr["digits ViT (examples/digits_vit, QCDQ)"] = throughput(
        DIGITS / "digits_vit_qcdq.onnx", digits, reps, reps)
    size = Size(2, 64, 16) if args.quick else DEIT
    path = deit_model(size)
    print(f"throughput: DeiT-tiny scale ({size.label})", flush=True)
    thr[f"DeiT-tiny scale ({size.label}, random calibrated weights)"] = throughput(
        path, deit_inputs(path, 16), reps, max(2, reps // 2))

    print("the simulate command against onnxruntime", flush=True)
    cmd = bench_command.run(reps, 10 if args.quick else 30)

    scale = None
    if not args.skip_scaling:
        print("compile scaling", flush=True)
        reps = 2 if args.quick else 3
        results = scaling(args.quick, reps)
        entries = [e for es in results.values() for e in es]
        largest = max(entries, key=sim_seconds)
        base = DEIT if not args.quick else size
        print(f"CLI runs on {base.label}", flush=True)
        cli = [cli_child(deit_model(base), t, SIM_TIMEOUT if t == "sim" else 2 * EMIT_TIMEOUT)
               for t in ("sim", "hls", "all")]
        scale = {"results": results, "largest": largest["size"], "largest_entry": largest,
                 "cli": cli, "cli_label": base.label, "reps": reps}
    command = "python bench/run.py" + (" --quick" if args.quick else "")
    write_report(args.out, info, thr, scale, command, time.perf_counter() - start, cmd)
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    main()
