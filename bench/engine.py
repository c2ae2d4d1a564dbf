"""The fast engine against onnxruntime (issue 14, item 4), with and without its integer
kernels, and the command's start-up.

    python bench/engine.py [--reps N] [--deit-batch N] [--out BENCHMARKS.md]

1. Throughput on one batch, in one process, the runners taking turns (each after a 0.3 s
   pause): onnxruntime on the source QCDQ model (graph optimizations on, default threads);
   the fast engine (exact mode, T = 7, every layer's counts) on its numpy path and as one
   onnxruntime session (``ortgraph``); the numpy path with its integer kernels switched
   off (float BLAS everywhere: the engine before them). Digits ViT (256 inputs) and the
   DeiT-tiny-scale model (examples/deit_tiny/generate.py).
2. Start-up of `snncc --help` and of `import onnx`, fresh processes.
3. With --compile: `snncc compile --target all` on the DeiT-tiny-scale model in a fresh
   process: wall time, CPU time (user + system, which moves less with the machine's load)
   and peak RSS.

Run alone it replaces its section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import run as bench_run  # noqa: E402

TITLE = "## Fast engine against onnxruntime: integer kernels (issue 14, item 4)"


def engines(path: Path):
    """(with integer kernels, without) as two loaded copies of the compiled model."""
    import snncc
    from snncc.backends.sim import plan

    with tempfile.TemporaryDirectory() as tmp:
        snncc.compile(path, T=bench_run.T).save(Path(tmp) / "model.snn")
        fast, plain = snncc.load(Path(tmp) / "model.snn"), snncc.load(Path(tmp) / "model.snn")
    p = plan.build(plain.graph)
    p.integer.clear()
    p.stacked.clear()
    return fast, plain, plan.build(fast.graph)


def one_thread_session(path: Path):
    """onnxruntime on the source model, free batch axis, graph optimizations on, one
    intra-op thread."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(path))
    for value in (model.graph.input[0], model.graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    del model.graph.value_info[:]
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.log_severity_level = 1, 3
    return ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])


def throughput(path: Path, x: np.ndarray, reps: int) -> dict:
    """Wall time with every core (as BENCHMARKS.md's throughput section), and the CPU time
    of one thread each (onnxruntime with one intra-op thread, the engine's kernels on one
    core): on a shared machine the latter moves far less with the load."""
    from snncc import kernels
    x = np.ascontiguousarray(x, np.float32)
    fast, plain, p = engines(path)

    def run(model, whole: str):
        os.environ["SNNCC_ORT_GRAPH"] = whole  # ortgraph.mode: the numpy path, or one session
        return model.simulate(x, engine="fast", batch_size=len(x))

    def runners(ort):
        return {"onnxruntime": lambda: ort.run(None, {"input": x}),
                "fast engine, numpy path": lambda: run(fast, "0"),
                "fast engine, one onnxruntime session": lambda: run(fast, "1"),
                "fast engine, numpy path, no integer kernels": lambda: run(plain, "0")}

    times = bench_run.turns(runners(bench_run.ort_session(path, True)), reps)
    one = one_thread_session(path)
    cores = kernels._workers  # noqa: SLF001
    kernels._workers = lambda: 1  # noqa: SLF001
    try:
        loops = max(1, int(0.5 / max(min(times["onnxruntime"]), 1e-3)))
        cpu = bench_run.turns(runners(one), reps, time.process_time, loops)
    finally:
        kernels._workers = cores  # noqa: SLF001
    done = [f() for k, f in runners(one).items() if k != "onnxruntime"]
    same = all(np.array_equal(done[0].logits_int, b.logits_int) and all(
        np.array_equal(done[0].counts[k], b.counts[k]) for k in done[0].counts)
        for b in done[1:])
    os.environ.pop("SNNCC_ORT_GRAPH", None)
    return {"batch": len(x), "times": times, "cpu": cpu, "identical": same,
            "lowered": bool(p.whole),
            "integer": len(p.integer), "stacked": len(p.stacked),
            "synapses": sum(1 for n in p.order if type(n.op).__name__ == "Synapse")}


def startup(reps: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = {"snncc --help": [sys.executable, "-m", "snncc", "--help"],
            "import onnx": [sys.executable, "-c", "import onnx"],
            "python alone": [sys.executable, "-c", "pass"]}
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(reps):
        for name, cmd in runs.items():
            start = time.perf_counter()
            subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, check=True)
            times[name].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


NOTES = [
    "- Integer kernels: a synapse whose operands (counts, spikes, analog codes) fit 8 bits "
    "runs on onnxruntime's MatMulInteger (uint8/int8 × int8 → int32). 8-bit weights take one "
    "product; the residual stream's fixed-point weights (made from 8-bit ones times a real "
    "scale a column) are split exactly into a·m + e with a and e 8-bit and m an integer a "
    "column: two products, (x·a)·m + x·e in float64 (from 32 terms up); weights that do not "
    "split are cut into base-256 digits, combined two at a time in int32 (from 128 terms "
    "up). Convolutions run through an 8-bit channels-last im2col (from 64 terms a channel "
    "up); TDMatMul's counts × counts likewise. The \"no integer kernels\" row switches "
    "these off only (float BLAS everywhere); the counts and logits are the same integers "
    "either way (checked above, and by tests/test_sim_plan.py against a literal "
    "step-by-step simulation and the integer reference). A product whose pairs of terms "
    "could leave int16 on this CPU's kernel (x86 without VNNI saturates there, ARM without "
    "the dot product wraps: integer.exact_int8, SNNCC_INT8_PAIRS) takes uint8 weights "
    "(d + 128) with a zero point of 128 instead.",
    "- Level counts in one pass: where a neuron's thresholds are the ceilings of evenly "
    "spaced reals (a uniform quantizer's), its count is clip(v·scale + offset, 0, L), four "
    "array passes instead of L = 7 compare-and-add pairs. The plan uses it only where it has "
    "proved it equal to the comparisons on every integer of the current's range "
    "(snncc/ranges.py's bound): both sides are monotone in v, so checking the kernel's own "
    "float arithmetic at the two ends of every run of equal counts (2L + 2 points a "
    "threshold row) covers the whole range (backends/sim/levels.py; float64 arithmetic near "
    "the top of float32's exact range; otherwise the comparisons stay). Every neuron of both "
    "models is proved.",
    "- Fusion and blocks: a synapse or TDMatMul read by one neuron alone is evaluated with "
    "it a block of samples at a time, so its current never exists whole in memory (on "
    "DeiT-tiny the system time of fresh pages went from 77 to 20 ms a batch); the input "
    "quantizer, max pools and current adds run by blocks over the cores too (they ran on "
    "one); a dense head read by one ReduceSum over its tokens sums the tokens first "
    "(linearity: 196× less work for DeiT-tiny's 1000-class head); max pooling shifts whole "
    "arrays one axis after the other instead of folding kh·kw strided slices.",
    "- Whole graph in one onnxruntime session (backends/sim/ortgraph.py): the plan's exact "
    "mode written as one ONNX model, every neuron's counts among its outputs, op for op with "
    "the numpy path's arithmetic (MatMulInteger per 8-bit weight factor combined as the "
    "integer kernels combine them; convolutions on codes as an 8-bit channels-last im2col "
    "and MatMulInteger (from 32 input channels) or ConvInteger (from 256 output pixels a "
    "sample; its neuron with it in bands of rows); otherwise float MatMul/Conv where the "
    "plan's bound proves the dtype exact, a "
    "float64 convolution as one float32 Conv per base-256 weight digit; the proved "
    "one-pass level count as Mul, Add, Clip and a truncating Cast; the quantizer, pools, "
    "adds, TDMatMul, layout ops, the head summed over its tokens first), run with one "
    "intra-op thread, the batch in even blocks over the cores. Each block's outputs are "
    "written by onnxruntime into its rows of arrays allocated once for the batch (I/O "
    "binding): joining the blocks' outputs afterwards had cost a copy of every layer's "
    "counts (8.2 MB a sample at DeiT-tiny scale), which made the session 7% slower than "
    "the numpy path there (now as fast on one thread, and 1.17 GiB peak RSS against 1.24 "
    "on a batch of 16). The engine takes it by itself wherever the plan lowers (until this "
    "round only where every value had at most 2**14 elements a sample: at DeiT-tiny scale the"
    " numpy path was faster on the wall clock under a load of 4-9, 0.74 s against 1.03 s a "
    "batch, but on a quiet machine the session is, 1.22-1.24x onnxruntime against "
    "0.84-0.97x); SNNCC_ORT_GRAPH=1 or 0 forces it on or off. Exact: "
    "tests/test_sim_ortgraph.py holds every layer's counts and the logits to the integer "
    "reference and the numpy path, and each lowered neuron to the level count at θ-1, θ "
    "and θ+1 of every level.",
    "- Small costs removed: the core count is asked once (os.cpu_count reads /sys: 16 µs a "
    "call, hundreds of calls a DeiT-tiny batch); a result's layer names are kept per graph "
    "(sorting the graph for them took about 1 ms a batch); the session's blocks are even "
    "and a multiple of the cores (DeiT-tiny, 16 inputs: 2–3 samples each, not "
    "3, 3, 3, 3, 3, 1). Tried and dropped (one process, turns, load 4–9): the numpy path's "
    "batch in one share per core, each share on one thread (5–15% more CPU time, slower "
    "on the wall clock in five runs); `kernels.parallel` running items on the calling "
    "thread beside the pool's (DeiT-tiny numpy path 0.95 s against 0.74 s a batch on the "
    "wall clock, the session equal); the whole-graph session at DeiT-tiny scale by "
    "default (equal on one thread, 1.03 s against the numpy path's 0.74 s on the wall "
    "clock); a float64 convolution as one float32 Conv per group of two weight digits "
    "where exact instead of one per digit (digits: 4 Convs to 2, no change in time).",
    "- On one thread each the numpy path takes about 1.0× onnxruntime's CPU time at DeiT-tiny "
    "scale and 0.75× on the digits ViT, where every layer is small and the per-call costs of "
    "numpy and onnxruntime dominate; one session for the whole graph removes most of those "
    "(0.95–1.0× there) but does the same array passes. The wall-clock ratios on every core move "
    "with the machine's load, both runners' threads being preempted on a shared machine: "
    "read them with the load beside them; the one-thread figures move far less.",
    "- Threads: the kernels' pool (and so the whole-graph session's blocks) keeps one "
    "thread per CPU the process may use, each pinned to its CPU (kernels._pin; "
    "SNNCC_PIN_THREADS=0 leaves them unpinned). Unpinned, a worker woken for a short "
    "block was often placed beside the other one and the two blocks ran one after the "
    "other: on the digits ViT the session took 7.1 ms a batch of 256 unpinned against 4.1"
    " ms pinned (7.0 ms on one thread), idle machine, turn by turn in one process; with "
    "one core busy, 8 ms either way. At DeiT-tiny scale (blocks of 80-170 ms) pinning "
    "changed little.", ""]


def compile_all() -> dict:
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    run = bench_run.cli_child(bench_run.deit_model(bench_run.DEIT), "all", 1800)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return run | {"user": after.ru_utime - before.ru_utime,
                  "system": after.ru_stime - before.ru_stime}


def section(results: dict[str, dict], starts: dict[str, float],
            comp: dict | None = None) -> list[str]:
    load = " / ".join(f"{v:.1f}" for v in os.getloadavg())
    lines = [TITLE, "",
             f"Written by `python bench/engine.py`. Load average at the end: {load} on "
             f"{os.cpu_count()} cores (shared: absolute times move with it; the ratios are "
             "taken turn by turn on the same batch). Ratio: onnxruntime's time over the "
             "row's (above 1 = faster than onnxruntime).", ""]
    for name, r in results.items():
        t = {k: statistics.median(v) for k, v in r["times"].items()}
        lines += [f"**{name}**, batch {r['batch']}: {r['integer']} of {r['synapses']} "
                  f"synapses and {r['stacked']} TDMatMuls on integer kernels; counts and "
                  f"logits identical on every path: {'yes' if r['identical'] else 'NO'}; "
                  f"the plan lowers to one ONNX model: {'yes' if r['lowered'] else 'no'}",
                  "", "| runner | s (median) | s (min–max) | inputs/s | ratio to onnxruntime |",
                  "|---|---:|---:|---:|---:|"]
        for runner, ts in r["times"].items():
            lines.append(f"| {runner} | {t[runner]:.3f} | {min(ts):.3f}–{max(ts):.3f} "
                         f"| {r['batch'] / t[runner]:,.1f} "
                         f"| {t['onnxruntime'] / t[runner]:.2f}× |")
        c = {k: statistics.median(v) for k, v in r["cpu"].items()}
        lines += ["", "One thread each, CPU seconds per batch (median; ratio as above): "
                  + "; ".join(f"{k} {v:.3f} s ({c['onnxruntime'] / v:.2f}×)"
                              for k, v in c.items()), ""]
    lines += NOTES + ["Start-up, fresh processes (median s): " + "; ".join(
        f"{k} {v:.2f}" for k, v in starts.items()) + ". `snncc --help` and `snncc simulate "
        "model.snn` no longer import onnx (only compiling and `--compare-onnx` read ONNX).",
        ""]
    if comp is not None and comp["wall"] is not None:
        lines += [f"`snncc compile {bench_run.DEIT.label}.onnx -T 7 --target all` (the CLI, a "
                  f"fresh process): {comp['wall']:.1f} s wall, {comp['user']:.1f} s user + "
                  f"{comp['system']:.1f} s system CPU, peak RSS "
                  f"{comp['peak_rss'] / 2**30:.2f} GiB.", ""]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--deit-batch", type=int, default=16)
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    parser.add_argument("--compile", action="store_true", help="also time compile --target all")
    args = parser.parse_args()
    from command import splice

    digits = np.load(bench_run.DIGITS / "digits_test.npz")["x"][:256]
    results = {"digits ViT (QCDQ)": throughput(bench_run.DIGITS / "digits_vit_qcdq.onnx",
                                               digits, args.reps)}
    path = bench_run.deit_model(bench_run.DEIT)
    results[f"DeiT-tiny scale ({bench_run.DEIT.label})"] = throughput(
        path, bench_run.deit_inputs(path, args.deit_batch), max(2, args.reps // 2 + 1))
    lines = section(results, startup(args.reps), compile_all() if args.compile else None)
    print("\n".join(lines))
    splice(args.out, lines)


if __name__ == "__main__":
    main()
