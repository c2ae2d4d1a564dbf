"""Run the emitted design's simulations and synthesis (through its Makefile) and parse
their figures for report.json: agreement, cycles per inference, cells, LUTs, FFs, RAM."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

from snncc.errors import Diagnostic, SnnccError

SIMULATORS = {"icarus": "sim-icarus", "verilator": "sim-verilator"}
_LAYER = re.compile(r"^LAYER (\d+) (\S+) match (\d+)/(\d+)$", re.M)
_LOGITS = re.compile(r"^LOGITS match (\d+)/(\d+)$", re.M)
_CYCLES = re.compile(r"^CYCLES min (\d+) max (\d+) mean (\d+)$", re.M)
_RESULT = re.compile(r"^RESULT (PASS|FAIL) (\d+)/(\d+) vectors$", re.M)
_VECTOR = re.compile(r"^VECTOR (\d+) cycles (\d+) (ok|FAIL)$", re.M)
_STREAM = re.compile(r"^STREAM logits match (\d+)/(\d+) inferences (\d+) cycles (\d+)$", re.M)
_STALLED = re.compile(r"^STALLED logits match (\d+)/(\d+)$", re.M)
_INSTANCE = re.compile(r"^\s*\\?(\S+)\s+(u\d+_\w+)\s*\(", re.M)  # module instance lines


def _make(out_dir: Path, target: str, timeout: float | None,
          variables: dict[str, str] | None = None) -> tuple[str, float]:
    start = time.monotonic()
    args = [f"{k}={v}" for k, v in (variables or {}).items()]
    try:
        done = subprocess.run(["make", "--no-print-directory", target, *args], cwd=out_dir,
                              capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise SnnccError(Diagnostic("make is not installed", fix="install make")) from None
    except subprocess.TimeoutExpired:
        raise SnnccError(Diagnostic(f"'make {target}' in {out_dir} took longer than "
                                    f"{timeout} s")) from None
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-20:])
        raise SnnccError(Diagnostic(f"'make {target}' failed in {out_dir}:\n{tail}"))
    return done.stdout, time.monotonic() - start


def parse_simulation(text: str) -> dict:
    """The testbench's summary lines as a dict."""
    result, logits, cycles = _RESULT.search(text), _LOGITS.search(text), _CYCLES.search(text)
    if result is None or logits is None or cycles is None:
        raise SnnccError(Diagnostic("the testbench printed no summary (did it crash?)"))
    return {
        "passed": result[1] == "PASS",
        "vectors": int(result[3]),
        "vectors_ok": int(result[2]),
        "layers": {m[2]: {"match": int(m[3]), "total": int(m[4])}
                   for m in _LAYER.finditer(text)},
        "logits": {"match": int(logits[1]), "total": int(logits[2])},
        "cycles_per_inference": {"min": int(cycles[1]), "max": int(cycles[2]),
                                 "mean": int(cycles[3])},
        "cycles": [int(m[2]) for m in _VECTOR.finditer(text)],
        **_stream(text),
    }


def _stream(text: str) -> dict:
    """Pipelined designs: the back-to-back run (every input again, inferences in flight):
    its logits' agreement and the cycles between the first and the last inference's last
    logit, over the inferences after the first (the initiation interval)."""
    m = _STREAM.search(text)
    if m is None:
        return {}
    n, span = int(m[3]), int(m[4])
    stalled = _STALLED.search(text)
    return {"stream": {"logits": {"match": int(m[1]), "total": int(m[2])}, "inferences": n,
                       "cycles": span,
                       "stalled_logits": None if stalled is None else
                       {"match": int(stalled[1]), "total": int(stalled[2])},
                       "initiation_interval": span / (n - 1) if n > 1 else None}}


VERILATOR_FAST_MODEL = "-O3 --x-assign fast --x-initial fast -CFLAGS -O1"


def run_simulation(out_dir: Path, simulator: str = "verilator",
                   timeout: float | None = None, verilator_flags: str | None = None) -> dict:
    """Build and run the testbench with `simulator` (icarus | verilator); returns the
    per-layer agreement with the interpreter, PASS/FAIL and cycles per inference.
    `verilator_flags` replaces the Makefile's VERILATOR_FLAGS (e.g. VERILATOR_FAST_MODEL:
    a slower build, a faster model, for many inputs)."""
    if simulator not in SIMULATORS:
        raise SnnccError(Diagnostic(f"unknown simulator {simulator!r}",
                                    fix=f"use one of {', '.join(SIMULATORS)}"))
    variables = {"VERILATOR_FLAGS": verilator_flags} if verilator_flags else None
    text, seconds = _make(Path(out_dir), SIMULATORS[simulator], timeout, variables)
    return {"simulator": simulator, "seconds": round(seconds, 2), **parse_simulation(text)}


def _stat(path: Path) -> dict:
    """The "modules" and "design" objects of a Yosys `stat -json` file (Yosys 0.23 prints
    the text hierarchy in the middle of the JSON, so each object is decoded on its own)."""
    text = path.read_text()
    decoder = json.JSONDecoder()
    found = {}
    for key in ("modules", "design"):
        at = text.find(f'"{key}":')
        if at >= 0:
            found[key], _ = decoder.raw_decode(text, text.index("{", at))
    return found


def _cells(design: dict) -> dict[str, int]:
    return {k: int(v) for k, v in design.get("num_cells_by_type", {}).items()}


def resource_figures(out_dir: Path) -> dict:
    """Cells, LUTs, FFs and memory of the last `make synth` run."""
    folder = Path(out_dir) / "build" / "synth"
    memory = _stat(folder / "memory.json")["design"]
    generic = _stat(folder / "generic.json")["design"]
    ice40 = _stat(folder / "ice40.json")["design"]
    cells = _cells(ice40)
    return {
        "generic": {"cells": int(generic["num_cells"]),
                    "memory_bits": int(memory["num_memory_bits"]),
                    "memories": int(memory["num_memories"]),
                    "cells_by_type": _cells(generic)},
        "ice40": {"cells": int(ice40["num_cells"]),
                  "luts": cells.get("SB_LUT4", 0),
                  "ffs": sum(n for k, n in cells.items() if k.startswith("SB_DFF")),
                  "carries": cells.get("SB_CARRY", 0),
                  "brams": cells.get("SB_RAM40_4K", 0),
                  "bram_bits": 4096 * cells.get("SB_RAM40_4K", 0),
                  "cells_by_type": cells},
    }


def xilinx_figures(out_dir: Path) -> dict | None:
    """LUTs, FFs, block RAMs (in RAMB36 units), DSPs and carries of the last
    `make synth-xilinx` run (Yosys synth_xilinx -family xc7), or None if there is none."""
    path = Path(out_dir) / "build" / "synth" / "xilinx.json"
    if not path.is_file():
        return None
    cells = _cells(_stat(path)["design"])
    return {"lut": sum(n for k, n in cells.items() if re.fullmatch(r"LUT[1-6]", k)),
            "ff": sum(n for k, n in cells.items() if re.fullmatch(r"FD[A-Z]*", k)),
            "bram36": cells.get("RAMB36E1", 0) + cells.get("RAMB18E1", 0) / 2,
            "dsp": cells.get("DSP48E1", 0), "carry4": cells.get("CARRY4", 0),
            "lutram": sum(n for k, n in cells.items() if k.startswith("RAM")
                          and not k.startswith("RAMB")),
            "cells_by_type": cells}


def mul_cells(out_dir: Path) -> dict[str, int]:
    """$mul cells per module of the unflattened design (after `make synth` or
    `make synth-hierarchy`), by the module's base name (snn_dense, snn_neuron, ...)."""
    modules = _stat(Path(out_dir) / "build" / "synth" / "hierarchy.json")["modules"]
    found: dict[str, int] = {}
    for name, stats in modules.items():
        count = _cells(stats).get("$mul", 0)
        if count:
            base = name.rsplit("\\", 1)[-1]
            found[base] = found.get(base, 0) + count
    return found


def multiplying_instances(out_dir: Path, stat: str = "hierarchy.json",
                          top: str = "top.v") -> list[str]:
    """The instances of snn_top whose module contains a $mul cell (after
    `make synth-hierarchy`): where the design multiplies. `stat` and `top` name the
    unflattened `stat -json` report and snn_top's `write_verilog` in build/synth/ (those
    of synth-hierarchy by default)."""
    folder = Path(out_dir) / "build" / "synth"
    modules = _stat(folder / stat)["modules"]
    multiplies = {name for name, stats in modules.items() if _cells(stats).get("$mul", 0)}
    found = []
    for m in _INSTANCE.finditer((folder / top).read_text()):
        if m[1] in multiplies:
            found.append(m[2])
    return sorted(found)


def check_hierarchy(out_dir: Path, timeout: float | None = None) -> dict:
    """Run `make synth-hierarchy`; returns the instances that multiply and $mul cells per
    module kind."""
    _, seconds = _make(Path(out_dir), "synth-hierarchy", timeout)
    return {"seconds": round(seconds, 2), "multiplying_instances":
            multiplying_instances(out_dir), "mul_cells": mul_cells(out_dir)}


def run_synthesis(out_dir: Path, timeout: float | None = None) -> dict:
    """Run Yosys (generic synthesis and the iCE40 flow); returns the resource figures
    and where the design multiplies."""
    _, seconds = _make(Path(out_dir), "synth", timeout)
    return {"seconds": round(seconds, 2), **resource_figures(out_dir),
            "mul_cells": mul_cells(out_dir)}
