"""The hardware rungs of `snncc verify`: the emitted HLS C simulation and RTL simulation,
run on the user's inputs and compared with the interpreter.

Both run in a copy of the target's folder in a temporary folder, so that nothing verify
builds or writes (binaries, vectors) lands in the build folder.

HLS (``build/hls/``, needs g++ and make): ``make <model>_csim`` builds the testbench; it is
run on a tb_data folder holding the user's input codes (``tb_input_codes.dat``)
and the interpreter's counts and logits as its golden vectors, and writes what the C++
computed to ``csim_spike_counts.dat`` and ``csim_logits.dat`` (one input per line; the
counts of the neuron layers concatenated in the order of ``spike_counts_layout`` in
report.json). Those files are compared with the interpreter, layer by layer.

RTL (``build/verilog/``, needs iverilog+vvp or verilator): the backend's ``write_vectors``
replaces the copy's golden vectors by the interpreter's run on the user's inputs, the
Makefile's ``sim-icarus``/``sim-verilator`` target runs the self-checking testbench, and
its report lines are parsed: ``MISMATCH vector v layer l neuron i: count c, expected e``,
``LAYER l name match a/b``, ``LOGITS match a/b``, ``CYCLES min a max b mean c``,
``VECTOR v cycles c ok``. The rung in report.json (``verify.rungs``) carries the cycles
per inference as numbers: ``cycles_per_inference`` {min, mean, max, per_input}.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from snncc import ops as o
from snncc.errors import SnnccError
from snncc.ir import layer_names
from snncc.metrics.report import read_report
from snncc.reference import EVAL
from snncc.verify.rungs import FAIL, PASS, SKIP, Divergence, Rung, hardware_rung

HLS = "interpreter ↔ HLS C simulation"
RTL = "interpreter ↔ RTL simulation"
TIMEOUT = 3600


def _run(cmd: list[str], cwd: Path, on_line: Callable[[str], None] | None = None
         ) -> subprocess.CompletedProcess:
    """Run `cmd` for at most TIMEOUT seconds. With `on_line`, its output (stdout and stderr
    as one stream) is read as it comes and each line passed on, for a progress bar."""
    if on_line is None:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT,
                              check=False)
    lines: list[str] = []
    killed = threading.Event()
    if shutil.which("stdbuf"):  # the simulators' stdio would hold the lines back otherwise
        cmd = ["stdbuf", "-oL", *cmd]
    # its own process group, so that a timeout or an interruption ends make's children too
    with subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, start_new_session=True) as proc:
        def timeout() -> None:
            killed.set()
            _kill_group(proc)

        timer = threading.Timer(TIMEOUT, timeout)
        timer.start()
        assert proc.stdout is not None  # stdout=PIPE
        try:
            for line in proc.stdout:
                lines.append(line)
                on_line(line)
        except BaseException:  # Ctrl-C, or SIGTERM's exit: make's children end too
            _kill_group(proc)
            raise
        finally:
            timer.cancel()
    if killed.is_set():
        raise subprocess.TimeoutExpired(cmd, TIMEOUT, output="".join(lines))
    return subprocess.CompletedProcess(cmd, proc.returncode, "".join(lines), "")


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def count_vectors(progress: Callable[[int], None] | None) -> Callable[[str], None] | None:
    """An `on_line` that advances `progress` by one per testbench ``VECTOR`` line."""
    if progress is None:
        return None
    return lambda line: progress(1) if line.startswith("VECTOR ") else None


def _tail(text: str, lines: int = 6) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])


def _rows(a: np.ndarray) -> str:
    flat = np.asarray(a, np.int64).reshape(len(a), -1)
    return "".join(" ".join(map(str, row)) + "\n" for row in flat)


def input_codes(graph, x: np.ndarray) -> np.ndarray:
    (enc,) = graph.ops(o.SpikeInput)
    return EVAL[o.SpikeInput](enc, [np.asarray(x, np.float64)])


# ---------------------------------------------------------------- HLS


def _hls_model(hls: Path) -> str | None:
    makefile = hls / "Makefile"
    match = re.search(r"^MODEL\s*=\s*(\S+)", makefile.read_text(), re.M) if (
        makefile.is_file()) else None
    return match.group(1) if match else None


def _hls_layout(build: Path, graph) -> list[dict]:
    """Where each neuron layer sits in the testbench's spike-count rows."""
    report = read_report(build / "report.json") or {}
    layout = ((report.get("targets") or {}).get("hls") or {}).get("spike_counts_layout")
    if layout:
        return layout
    from snncc.backends.hls.layers import lower

    return lower(graph).neuron_table


def _read_rows(path: Path) -> np.ndarray:
    return np.array([[int(v) for v in line.split()] for line in path.read_text().splitlines()
                     if line.strip()], np.int64)


def _run_csim(build: Path, model, x: np.ndarray, golden: dict, hls: Path, data: Path
              ) -> Rung | tuple[np.ndarray, np.ndarray, list[dict]]:
    """Build the testbench in `hls` and run it on `x` with its tb_data in `data`:
    (counts, logits, layout), or a failed rung saying why."""
    name = _hls_model(hls)
    if name is None:
        return Rung(HLS, FAIL, detail=f"no Makefile with a MODEL in {build / 'hls'}")
    built = _run(["make", f"{name}_csim"], hls)
    if built.returncode != 0:
        return Rung(HLS, FAIL, detail=f"the C++ does not build: "
                    f"{_tail(built.stdout + built.stderr)}")
    layout = _hls_layout(build, model.graph)
    data.mkdir()
    counts = np.concatenate([golden["counts"][n["name"]].reshape(len(x), -1)
                             for n in layout], axis=1)
    (data / "tb_input_codes.dat").write_text(_rows(input_codes(model.graph, x)))
    (data / "tb_spike_counts.dat").write_text(_rows(counts))
    (data / "tb_output_logits.dat").write_text(_rows(golden["logits"]))
    ran = _run([str(hls / f"{name}_csim"), str(data)], hls)
    out_counts, out_logits = data / "csim_spike_counts.dat", data / "csim_logits.dat"
    if not out_counts.is_file() or not out_logits.is_file():
        return Rung(HLS, FAIL, detail=f"the testbench wrote no results: {_tail(ran.stdout)}")
    return _read_rows(out_counts), _read_rows(out_logits), layout


def hls_rung(build: Path, model, x: np.ndarray, golden: dict) -> Rung:
    """The HLS C simulation on `x`, built and run in a copy of build/hls in a temporary
    folder (the build folder is left as it is)."""
    missing = [t for t in ("g++", "make") if shutil.which(t) is None]
    if missing:
        return Rung(HLS, SKIP, detail=f"{' and '.join(missing)} not installed")
    with tempfile.TemporaryDirectory(prefix="snncc-verify-") as tmp:
        hls = Path(tmp) / "hls"
        shutil.copytree(build / "hls", hls)
        ran = _run_csim(build, model, x, golden, hls, Path(tmp) / "tb_data")
    if isinstance(ran, Rung):
        return ran
    got_counts, got_logits, layout = ran
    if len(got_counts) != len(x):
        return Rung(HLS, FAIL, detail=f"the testbench ran {len(got_counts)} of {len(x)} inputs")
    per_layer = {n["name"]: got_counts[:, n["offset"]:n["offset"] + n["size"]] for n in layout}
    return hardware_rung(HLS, "HLS", model.graph, golden,
                         {"counts": per_layer, "logits": got_logits,
                          "figures": {"inputs": len(x), "time steps": model.steps}})


# ---------------------------------------------------------------- RTL

_MISMATCH = re.compile(r"MISMATCH vector (\d+) layer (\d+) neuron (\d+): count (-?\d+), "
                       r"expected (-?\d+)")
_LOGIT = re.compile(r"MISMATCH vector (\d+) logit (\d+): (-?\d+), expected (-?\d+)")


def _simulator(choice: str) -> tuple[str, str] | None:
    """(make target, name) of the RTL simulator to use, or None if none is installed."""
    tools = {"icarus": ("sim-icarus", ("iverilog", "vvp")),
             "verilator": ("sim-verilator", ("verilator",))}
    order = ["icarus", "verilator"] if choice == "auto" else [choice]
    for sim in order:
        target, needed = tools[sim]
        if all(shutil.which(t) for t in needed):
            return target, sim
    return None


def _no_simulator(choice: str) -> str:
    if choice == "auto":
        return "no simulator: neither iverilog and vvp nor verilator on PATH"
    return f"{choice} not installed"


def first_mismatch(text: str, graph, probes: list[str]) -> Divergence | None:
    """The testbench's first MISMATCH line as a divergence (layer, sample, element)."""
    if (m := _MISMATCH.search(text)):
        v, layer, i, got, want = map(int, m.groups())
        n = graph.node(probes[layer])
        idx = np.unravel_index(i, n.shape)
        return Divergence(n.name, n.origin, (v, *map(int, idx)), None, want, got,
                          "spike count", ("interpreter", "RTL"), layer_names(graph)[n.name])
    if (m := _LOGIT.search(text)):
        v, i, got, want = map(int, m.groups())
        (r,) = graph.ops(o.Readout)
        return Divergence(r.name, r.origin, (v, i), None, want, got, "integer logit",
                          ("interpreter", "RTL"))
    return None


def parse_rtl(text: str, graph, probes: list[str]) -> tuple[Divergence | None, float | None,
                                                              dict]:
    """The first mismatch, the agreement and the cycle figures of a testbench log
    (the summary lines through the Verilog backend's own parser)."""
    from snncc.backends.verilog.tools import parse_simulation

    summary = parse_simulation(text)
    parts = list(summary["layers"].values()) + [summary["logits"]]
    agreement = sum(p["match"] for p in parts) / max(sum(p["total"] for p in parts), 1)
    c = summary["cycles_per_inference"]
    figures = {"cycles per inference (min/mean/max)": f"{c['min']} / {c['mean']} / {c['max']}"}
    return first_mismatch(text, graph, probes), agreement, figures


def cycle_figures(text: str) -> dict:
    """The cycles per inference of a testbench log as numbers: min and max as printed,
    the mean of the per-input counts (the testbench prints it rounded down) and those."""
    from snncc.backends.verilog.tools import parse_simulation

    summary = parse_simulation(text)
    c, per_input = summary["cycles_per_inference"], summary["cycles"]
    mean = sum(per_input) / len(per_input) if per_input else float(c["mean"])
    return {"min": c["min"], "mean": mean, "max": c["max"], "per_input": per_input}


@dataclass
class RtlRung(Rung):
    """The RTL rung, with its cycles per inference as numbers (in report.json)."""
    cycles_per_inference: dict | None = None


def _simulate_rtl(rtl: Path, graph, x: np.ndarray, target: str,
                  on_line: Callable[[str], None] | None = None) -> str:
    """The testbench's log on inputs `x`, simulated in a copy of the design in a temporary
    folder (the build folder, its golden vectors included, is left as it is)."""
    from snncc.backends.verilog import write_vectors

    with tempfile.TemporaryDirectory(prefix="snncc-verify-") as tmp:
        copy = Path(tmp) / "verilog"
        shutil.copytree(rtl, copy)
        write_vectors(graph, copy, x)
        ran = _run(["make", target], copy, on_line)
    return ran.stdout + ran.stderr


def rtl_rung(build: Path, model, x: np.ndarray, choice: str,
             progress: Callable[[int], None] | None = None) -> Rung:
    """`progress(1)` as the testbench finishes each input."""
    rtl = (build / "verilog").resolve()
    sim = _simulator(choice)
    if sim is None:
        return Rung(RTL, SKIP, detail=_no_simulator(choice))
    target, simulator = sim
    text = _simulate_rtl(rtl, model.graph, x, target, count_vectors(progress))
    report = read_report(build / "report.json") or {}
    probes = ((report.get("targets") or {}).get("verilog") or {}).get("probes") or [
        n.name for n in model.graph.ops(o.Neuron)]
    try:
        div, agreement, figures = parse_rtl(text, model.graph, probes)
        cycles = cycle_figures(text)
    except SnnccError:
        return Rung(f"{RTL} ({simulator})", FAIL, detail=f"the simulation did not finish: "
                    f"{_tail(text)}")
    passed = "RESULT PASS" in text and div is None
    detail = (f"{len(probes)} neuron layers and logits "
              + ("identical" if passed else "compared") + f" on {len(x)} inputs")
    return RtlRung(f"{RTL} ({simulator})", PASS if passed else FAIL, agreement, detail, div,
                   figures, cycles_per_inference=cycles)


# ---------------------------------------------------------------- both


RunRung = Callable[[Callable[[int], None] | None], Rung]


def _hls(build: Path, model, x: np.ndarray, golden: dict, rtl_simulator: str
         ) -> tuple[str, str, int | None, RunRung]:
    return (HLS, f"HLS C simulation (make, g++; {len(x)} inputs)", None,
            lambda step: hls_rung(build, model, x, golden))


def _rtl(build: Path, model, x: np.ndarray, golden: dict, rtl_simulator: str
         ) -> tuple[str, str, int | None, RunRung]:
    return (RTL, "RTL simulation (make, inputs done)", len(x),
            lambda step: rtl_rung(build, model, x, rtl_simulator, step))


# backend (registry.TARGETS) -> its rung: (name, progress title, total, run(progress step))
RUNGS = {"hls": _hls, "verilog": _rtl}


def hardware_rungs(build: Path, model, x: np.ndarray, golden: dict, rtl_simulator: str,
                   bar) -> list[Rung]:
    """The HLS and RTL rungs (skipped where the target was not built), with a progress
    line each: the HLS testbench reports nothing until it ends (a spinner and the elapsed
    time), the RTL testbench one line per input (a bar over the inputs)."""
    from snncc.backends import registry
    from snncc.ui.console import progress_step

    rungs = []
    for folder in registry.TARGETS:
        name, title, total, run = RUNGS[folder](build, model, x, golden, rtl_simulator)
        if not (build / folder).is_dir():
            rungs.append(Rung(name, SKIP, detail=f"not built: compile with --target "
                                                 f"{folder} or all"))
            continue
        with progress_step(bar, title, total) as step:
            try:
                rungs.append(run(step))
            except (OSError, subprocess.TimeoutExpired) as e:
                rungs.append(Rung(name, FAIL, detail=f"could not run: {e}"))
    return rungs
