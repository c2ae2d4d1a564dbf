"""The `snncc simulate` command against onnxruntime's whole process, and on Ray.

    python bench/command.py [--reps N] [--copies N] [--out BENCHMARKS.md]

On the digits test split repeated `copies` times (30: 10,800 inputs), as fresh processes
taking turns (the medians of `reps` runs):
- `snncc simulate model.snn --input x.npy --labels y.npy --output o.npz` (statistics,
  report.json and all), against a Python process that loads the source QCDQ model into
  onnxruntime (graph optimizations on, one batch) and writes the logits;
- the command's start-up: the interpreter importing the modules the command runs;
- with `--previous CHECKOUT`, the same two from another snncc checkout (a previous
  round), in the same turns;
- the whole command once more from a copy of snncc's package without bytecode.

snncc's modules are compiled to bytecode first (`compileall`, in each checkout's
__pycache__), as `pip install` leaves an installed package and as numpy's, onnx's and
onnxruntime's modules are: where PYTHONDONTWRITEBYTECODE is set (this sandbox sets it)
every fresh process would otherwise compile snncc's source again while the peer's
modules load from bytecode. The row from the copy without bytecode says what that costs.
- in one process: the fast engine alone (`model.simulate`), the command's work
  (`measure`: the engine and every statistic), and onnxruntime's run;
- on a local Ray instance: the command's work with 1 and 2 workers (the instance already
  up; each run starts its workers and ships them the model), and whether every figure
  equals the local run's.

Run alone it replaces its section of BENCHMARKS.md; bench/run.py includes it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "examples" / "digits_vit"
MODEL = DIGITS / "digits_vit_qcdq.onnx"
TITLE = "## The `snncc simulate` command against onnxruntime"

ORT_PROCESS = """
import sys
import numpy as np, onnx, onnxruntime as ort
model = onnx.load(sys.argv[1])
for value in (model.graph.input[0], model.graph.output[0]):
    value.type.tensor_type.shape.dim[0].dim_param = "batch"
del model.graph.value_info[:]
opts = ort.SessionOptions()
opts.log_severity_level = 3
session = ort.InferenceSession(model.SerializeToString(), opts,
                               providers=["CPUExecutionProvider"])
x = np.load(sys.argv[2])
logits = session.run(None, {session.get_inputs()[0].name: x})[0]
np.save(sys.argv[3], logits)
print("accuracy", float(np.mean(logits.argmax(axis=1) == np.load(sys.argv[4]))))
"""


def _wall(args: list[str], cwd: Path, root: Path = ROOT) -> float:
    start = time.perf_counter()
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(root)})
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    return time.perf_counter() - start


COMMAND = ["-m", "snncc", "simulate", "build/model.snn", "--input", "x.npy", "--labels",
           "y.npy", "--output", "o.npz"]
STARTUP = ["-c", "import snncc.app.cli, snncc.app.simulate, snncc.metrics.measure, "
           "snncc.metrics.tally"]
WHOLE = "snncc simulate (whole command)"
SOURCE = "snncc simulate (whole command), snncc's modules compiled from source each run"
ORT_WHOLE = "onnxruntime (whole process)"
START = "start-up (interpreter and the command's imports)"
ORT_START = "onnxruntime start-up (interpreter; numpy, onnx, onnxruntime imports)"


def before(folder: Path, checkout: Path) -> float:
    """The same command run from an snncc checkout from before issue 14 (once: slow)."""
    return _wall([sys.executable, *COMMAND, "--report", "before.json"], folder, checkout)


def bytecode(root: Path) -> None:
    """snncc's modules under `root` compiled to bytecode, as an installed package has them."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(root / "snncc")],
                   check=True, capture_output=True)


def processes(folder: Path, reps: int, previous: Path | None = None) -> dict[str, list[float]]:
    """Whole processes, taking turns (with `previous`, the command and its start-up from
    that checkout too); snncc's bytecode compiled first, and the command run once more
    from a copy of the package without it."""
    bytecode(ROOT)
    if previous is not None:
        bytecode(previous)
    source = folder / "source"
    shutil.copytree(ROOT / "snncc", source / "snncc",
                    ignore=shutil.ignore_patterns("__pycache__"))
    runs: dict[str, tuple[list[str], Path]] = {
        WHOLE: ([sys.executable, *COMMAND], ROOT),
        SOURCE: ([sys.executable, *COMMAND], source),
        ORT_WHOLE: ([sys.executable, "-c", ORT_PROCESS, str(MODEL), "x.npy", "ort.npy",
                     "y.npy"], ROOT),
        START: ([sys.executable, *STARTUP], ROOT),
        ORT_START: ([sys.executable, "-c", "import numpy, onnx, onnxruntime"], ROOT),
    }
    if previous is not None:
        runs[f"{WHOLE}, {_label(previous)}"] = ([sys.executable, *COMMAND], previous)
        runs[f"{START}, {_label(previous)}"] = ([sys.executable, *STARTUP], previous)
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(reps):
        for name, (args, root) in runs.items():
            time.sleep(0.3)
            times[name].append(_wall(args, folder, root))
    return times


def _label(checkout: Path) -> str:
    """'previous: <branch> at <commit>' of a git checkout."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(checkout), *args], capture_output=True,
                              text=True).stdout.strip()

    return f"previous ({git('rev-parse', '--abbrev-ref', 'HEAD')} at " \
           f"{git('rev-parse', '--short', 'HEAD')})"


def in_process(folder: Path, reps: int) -> dict[str, list[float]]:
    """The engine, the command's work and onnxruntime in this process."""
    import snncc
    from snncc.metrics.measure import measure

    sys.path.insert(0, str(ROOT / "bench"))
    from run import ort_session, turns

    model = snncc.load(folder / "build" / "model.snn", frozen=True)  # as the command loads it
    x = np.load(folder / "x.npy")
    session = ort_session(MODEL, True)
    runners = {
        "fast engine (model.simulate)": lambda: model.simulate(x),
        "the command's work (measure: engine + statistics)": lambda: measure(model, x),
        "onnxruntime (session.run, one batch)": lambda: session.run(None, {"input": x}),
    }
    return turns(runners, reps)


def statistics_cpu(folder: Path, reps: int) -> list[float]:
    """The statistics' own CPU time per batch, in ms, in `reps` runs of measure(): the
    thread CPU time of each batch's figures (snncc.metrics.measure._figures, on the
    figures thread), which other processes on the machine barely change."""
    import snncc
    from snncc.metrics import measure as m

    model = snncc.load(folder / "build" / "model.snn", frozen=True)
    x = np.load(folder / "x.npy")
    spent: list[float] = []
    figures = m._figures

    def timed(*args, **kwargs):
        start = time.thread_time()
        out = figures(*args, **kwargs)
        spent.append(time.thread_time() - start)
        return out

    m._figures = timed
    try:
        runs = []
        for _ in range(reps):
            spent.clear()
            m.measure(model, x)
            runs.append(1e3 * sum(spent) / len(spent))
    finally:
        m._figures = figures
    return runs


def on_ray(folder: Path, reps: int) -> dict:
    """measure() on a local Ray instance with 1 and 2 workers; equality with local."""
    import ray

    import snncc
    from snncc.metrics.measure import measure

    model = snncc.load(folder / "build" / "model.snn")
    x = np.load(folder / "x.npy")
    local = measure(model, x)
    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    up = time.perf_counter() - start
    times: dict[str, list[float]] = {"1 worker": [], "2 workers": []}
    equal = True
    try:
        for _ in range(reps):
            for workers in (1, 2):
                start = time.perf_counter()
                m = measure(model, x, ray="local", workers=workers)
                times[f"{workers} worker{'s' if workers > 1 else ''}"].append(
                    time.perf_counter() - start)
                equal = equal and (np.array_equal(m.logits_int, local.logits_int)
                                   and m.counts == local.counts and m.spikes == local.spikes)
    finally:
        ray.shutdown()
    return {"times": times, "start": up, "equal": equal}


SHARD = 250  # inputs per shard file


def shards_rss(counts: tuple[int, ...], depth: int = 1, width: int = 64) -> dict:
    """Peak RSS of `snncc simulate` on `n` DeiT-tiny-shaped inputs (3x224x224 float32)
    from a folder of .npy shards, for each n in `counts`, through a small model of the
    DeiT family (same input, `depth` blocks of `width`): memory against data set size."""
    sys.path.insert(0, str(ROOT / "bench"))
    from run import CLI, Size, deit_model

    size = Size(depth, width, 196)
    path = deit_model(size)
    out = {"model": size.label, "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _wall([sys.executable, "-m", "snncc", "compile", str(path), "-T", "7", "-o", "build"],
              folder)
        rng = np.random.default_rng(0)
        (folder / "shards").mkdir()
        written = 0
        for n in sorted(counts):
            while written < n:
                np.save(folder / "shards" / f"x-{written // SHARD:05d}.npy",
                        rng.random((SHARD, 3, 224, 224), np.float32))
                written += SHARD
            start = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-c", CLI, "simulate", "build/model.snn", "--input", "shards",
                 "--batch-size", "16", "--output", "o.npz"], cwd=folder, capture_output=True,
                text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
            if proc.returncode != 0:
                raise RuntimeError(f"simulate on shards failed:\n{proc.stderr[-2000:]}")
            peak = json.loads(proc.stderr.strip().splitlines()[-1])["peak_rss"]
            out["runs"].append({"inputs": written, "gib": written * 3 * 224 * 224 * 4 / 2**30,
                                "seconds": time.perf_counter() - start, "peak_rss": peak})
    return out


def run(reps: int, copies: int, old: Path | None = None, previous: Path | None = None) -> dict:
    digits = np.load(DIGITS / "digits_test.npz")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        np.save(folder / "x.npy", np.tile(digits["x"], (copies, 1, 1, 1)))
        np.save(folder / "y.npy", np.tile(digits["y"], copies))
        _wall([sys.executable, "-m", "snncc", "compile", str(MODEL), "-T", "7", "-o",
               "build"], folder)
        result = {"inputs": len(digits["x"]) * copies, "load": os.getloadavg(),
                  "processes": processes(folder, reps, previous),
                  "in_process": in_process(folder, reps),
                  "statistics_cpu": statistics_cpu(folder, reps)}
        if old is not None:
            result["before"] = before(folder, old)
        try:
            result["ray"] = on_ray(folder, max(1, reps - 1))
        except ImportError:
            result["ray"] = None
    result["load_end"] = os.getloadavg()
    return result


def _row(name: str, times: list[float], inputs: int, base: float | None) -> str:
    med = statistics.median(times)
    ratio = f"{base / med:.2f}×" if base else ""
    return (f"| {name} | {med:.2f} | {min(times):.2f}–{max(times):.2f} | {inputs / med:,.0f} "
            f"| {ratio} |")


def goals(r: dict) -> list[str]:
    """Issue 14's goals for the command, as rows of the goals table."""
    ort_proc = statistics.median(r["processes"][ORT_WHOLE])
    cmd = statistics.median(r["processes"][WHOLE])
    ip = r["in_process"]
    engine = statistics.median(ip["fast engine (model.simulate)"])
    work = statistics.median(ip["the command's work (measure: engine + statistics)"])
    rows = [f"| `snncc simulate` whole command ≥ 1.5× onnxruntime's whole process, "
            f"{r['inputs']:,} digits | {ort_proc / cmd:.2f}× | "
            f"{'yes' if ort_proc / cmd >= 1.5 else 'no'} |",
            f"| the command's work within 1.3× the engine's time | {work / engine:.2f}× | "
            f"{'yes' if work <= 1.3 * engine else 'no'} |"]
    if r.get("ray"):
        rows.append(f"| Ray (local, 1 and 2 workers): results identical to the local run | "
                    f"{'identical' if r['ray']['equal'] else 'different'} | "
                    f"{'yes' if r['ray']['equal'] else 'no'} |")
    return rows


def section(r: dict) -> list[str]:
    n = r["inputs"]
    ort_proc = statistics.median(r["processes"][ORT_WHOLE])
    cmd = statistics.median(r["processes"][WHOLE])
    ip = r["in_process"]
    engine = statistics.median(ip["fast engine (model.simulate)"])
    work = statistics.median(ip["the command's work (measure: engine + statistics)"])
    ort_run = statistics.median(ip["onnxruntime (session.run, one batch)"])
    lines = [TITLE, "",
             f"The digits test split repeated to {n:,} inputs (digits ViT, QCDQ, T = 7, exact "
             "mode), written as x.npy / y.npy. *Whole processes*: a fresh Python process each "
             "(interpreter start-up and imports included), taking turns; `snncc simulate "
             "model.snn --input x.npy --labels y.npy --output o.npz` prints accuracy and the "
             "firing table and writes the logits and report.json (firing rates, SOPs, "
             "energy); onnxruntime's process loads the source model (graph optimizations "
             "on), runs all inputs as one batch and writes the logits. Ratio: onnxruntime's "
             "time over the row's (above 1 = faster than onnxruntime)."
             + (" Load average (1/5/15 min) at the start: "
                + " / ".join(f"{v:.1f}" for v in r["load"]) + " on 2 cores: the machine was "
                "shared, so every figure here is slower than on an idle machine."
                if r.get("load") else ""), "",
             "| run | s (median) | s (min–max) | inputs/s | ratio to onnxruntime |",
             "|---|---:|---:|---:|---:|"]
    for name, times in r["processes"].items():
        if name.startswith((START, ORT_START)):
            med = statistics.median(times)
            lines.append(f"| {name} | {med:.2f} | {min(times):.2f}–{max(times):.2f} | | |")
        else:
            lines.append(_row(name, times, n, ort_proc))
    if r.get("load_end"):
        lines += ["", "Load average at the end: " + " / ".join(f"{v:.1f}" for v in r["load_end"])
                  + "."]
    lines += ["", "In one process (no start-up), ratio to onnxruntime's run:", "",
              "| run | s (median) | s (min–max) | inputs/s | ratio to onnxruntime |",
              "|---|---:|---:|---:|---:|"]
    for name, times in ip.items():
        lines.append(_row(name, times, n, ort_run))
    old = (f"{r['before']:.1f} s for the whole command on these inputs on this machine"
           if r.get("before") else "59 s for the whole command on these inputs")
    start = statistics.median(r["processes"][START])
    ort_start = statistics.median(r["processes"][ORT_START])
    cpu = r.get("statistics_cpu")
    stats = (f"; the statistics' own CPU time, {statistics.median(cpu):.1f} ms a batch of "
             f"256 inputs ({min(cpu):.1f}–{max(cpu):.1f}; the figures thread's CPU time, "
             "which a shared machine changes little)" if cpu else "")
    lines += ["", f"- The command's work is {work / engine:.2f}× the engine's own time "
              "(statistics from spike counts, counted on a thread of their own while the "
              "engine runs the next batch" + stats + "; before issue 14 the counting replayed "
              f"expanded spike trains: {old}). The whole command takes {cmd:.2f} s against "
              "onnxruntime's "
              f"{ort_proc:.2f} s: {ort_proc / cmd:.2f}× (goal ≥ 1.5×: "
              f"{'met' if ort_proc / cmd >= 1.5 else 'not met'}). Of the command, {start:.2f} s "
              "is start-up (the interpreter, numpy, rich, typer and snncc's modules: no onnx, "
              "jinja2, compiler or networkx, and snncc's modules loaded from bytecode as "
              f"installed; onnxruntime's process: {ort_start:.2f} s); "
              f"the rest is the engine's work ({ort_run / engine:.2f}× onnxruntime's run in one "
              "process here; see the throughput section), its first batch (onnxruntime's "
              "import, the plan, its whole-graph session) and the statistics."
              + (f" With snncc's modules compiled from source in every process (a copy of "
                 f"the package without bytecode, where PYTHONDONTWRITEBYTECODE is set) the "
                 f"command took {statistics.median(r['processes'][SOURCE]):.2f} s "
                 f"({ort_proc / statistics.median(r['processes'][SOURCE]):.2f}×)."
                 if SOURCE in r["processes"] else "")]
    ray = r.get("ray")
    if ray:
        one = statistics.median(ray["times"]["1 worker"])
        two = statistics.median(ray["times"]["2 workers"])
        lines += [f"- On a local Ray instance (2 CPUs; started in {ray['start']:.1f} s, not "
                  f"counted): the command's work took {one:.2f} s with 1 worker and "
                  f"{two:.2f} s with 2 ({one / two:.2f}× scaling; the machine has 2 cores, "
                  "and each run starts its workers and ships them model.snn, a fixed cost "
                  "of a few seconds that a larger data set amortizes); every figure equal "
                  f"to the local run's: {'yes' if ray['equal'] else 'NO'}."]
    lines += ["- On N machines (`--ray HOST:PORT` or `auto`): the driver reads the inputs a "
              "batch at a time (memory-mapped .npy or a folder of shards) and puts each batch "
              "in Ray's object store; each worker (one actor per CPU, or `--ray-workers`) "
              "receives model.snn's bytes once and runs the engine and every statistic on its "
              "batches; it returns the batch's logits, per-layer spike totals and operation "
              "totals (a few integers per layer), which the driver merges in input order. "
              "Nothing but batches and those totals crosses the network; a worker that dies "
              "is replaced by a new one and its batches run again there."]
    sh = r.get("shards")
    new = shards_line(sh) if sh else None
    # the lines of earlier runs with --shards, but for the model just run
    lines += [k for k in r.get("shards_kept", [])
              if new is None or not k.startswith(new.split(" model")[0])]
    if new is not None:
        lines.append(new)
    return lines + [""]


def shards_line(sh: dict) -> str:
    """The section's line on one model's runs from shards (`shards_rss`)."""
    runs = "; ".join(f"{x['inputs']:,} inputs ({x['gib']:.1f} GiB of shards): peak RSS "
                     f"{x['peak_rss'] / 2**30:.2f} GiB, {x['seconds']:.0f} s"
                     for x in sh["runs"])
    deit = sh["model"] == "d12 w192 t196"
    whole = "the whole process, model and Python included"
    return (f"- Inputs from disk, {sh['model']} model: `snncc simulate --input shards/ "
            f"--batch-size 16 --output o.npz` on DeiT-tiny-shaped inputs (3×224×224 float32, "
            f".npy shards of {SHARD}, memory-mapped) through the {sh['model']} model of the "
            "DeiT family" + (" (DeiT-tiny itself)" if deit else
                            " (the same input, so the data set is as large; fewer blocks, so "
                            "it runs in minutes)")
            + f": {runs}. Peak RSS: {whole}; it grows with the data set only by the logits "
            "kept for --output (float64 and int64 per class: 0.75 GiB at 50,000 inputs of "
            "1,000 classes).")


def splice(out: Path, lines: list[str]) -> None:
    """Replace the section of `out` that starts like `lines` (or add it before the
    throughput section)."""
    text = out.read_text() if out.exists() else "# snncc benchmarks\n"
    block = "\n".join(lines) + "\n"
    title = lines[0]
    if title in text:
        start = text.index(title)
        end = text.find("\n## ", start + len(title))
        text = text[:start] + block + (text[end + 1:] if end >= 0 else "")
    else:
        anchor = text.find("## Simulation throughput")
        text = text[:anchor] + block + "\n" + text[anchor:] if anchor >= 0 else text + "\n" + block
    out.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--copies", type=int, default=30)
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    parser.add_argument("--before", type=Path, default=None,
                        help="an snncc checkout from before issue 14, to time its command")
    parser.add_argument("--previous", type=Path, default=None,
                        help="another snncc checkout (a previous round): its command and "
                             "start-up in the same turns")
    parser.add_argument("--shards", type=int, nargs="*", default=[],
                        help="data set sizes for the peak-RSS runs from shards (e.g. 500 4000)")
    parser.add_argument("--shards-model", type=int, nargs=2, default=(1, 64),
                        metavar=("DEPTH", "WIDTH"),
                        help="the DeiT-family model of those runs (12 192: DeiT-tiny)")
    args = parser.parse_args()
    result = run(args.reps, args.copies, args.before, args.previous)
    if args.shards:
        result["shards"] = shards_rss(tuple(args.shards), *args.shards_model)
    if args.out.exists():  # keep the figures of the last runs with --shards
        text = args.out.read_text()
        start = text.find(TITLE)
        result["shards_kept"] = [
            line for line in text[start:].split("\n## ")[0].splitlines()
            if line.startswith("- Inputs from disk")] if start >= 0 else []
    print(json.dumps(result, indent=1))
    splice(args.out, section(result))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
