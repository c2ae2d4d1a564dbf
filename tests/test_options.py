"""Every command and option of `snncc`, with legal edge values and illegal ones.

Each case runs `snncc.app.cli.main` as the command line runs it (its argv, its exit code, its
stderr) in a fresh copy of a small workspace: the tiny CNN, a build of it, inputs, labels
and calibration data. Whatever the value, the command exits 0 or 1 and never shows a
traceback; a refusal is one `error: ...` message and leaves the folder exactly as it was
(nothing half-written); a success leaves no temporary files behind. Where the outcome is
what the documentation promises, the exit code is asserted too.

The demo is run only with values it must refuse: its legal run compiles the digits ViT
(tests/test_example.py).
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest

import modelgen
import snncc.app.cli
from snncc import ops as o
from snncc.ir import layer_names

EITHER = None  # exit 0 or 1: the value is legal, the model may or may not allow it


@dataclass(frozen=True)
class Case:
    argv: tuple[str, ...]
    code: int | None  # the exit code the documentation promises (EITHER: 0 or 1)

    @property
    def id(self) -> str:
        return " ".join(self.argv).replace("build/model.snn", "M").replace("--input x.npy", "")


def cases(command: tuple[str, ...], option: str, values: dict[str, int | None],
          *extra: str) -> list[Case]:
    """`command option value extra...` for each value (an empty value: the flag alone)."""
    return [Case((*command, option, *([v] if v != "" else []), *extra), code)
            for v, code in values.items()]


T_VALUES = {"0": 1, "1": 1, "7": 0, "255": 0, "-1": 1, "x": 1, "7.5": 1}
POSITIVE = {"0": 1, "1": 0, "1000000": 0, "-1": 1, "x": 1}
ENERGY = {"0": 1, "1": 0, "1e9": 0, "0.001": 0, "-1": 1, "x": 1, "nan": 1, "inf": 1}

INSPECT = ("inspect", "cnn.onnx")
COMPILE = ("compile", "cnn.onnx", "-o", "out")
SIMULATE = ("simulate", "build/model.snn", "--input", "x.npy")
SWEEP = ("sweep", "cnn.onnx", "--input", "x.npy")
REPORT = ("report", "build")
VERIFY = ("verify", "build", "--input", "x.npy")

MATRIX = [
    Case(("--version",), 0), Case(("--help",), 0), Case(("--nope",), 1), Case(("nope",), 1),
    # ------------------------------------------------------------ inspect
    Case(INSPECT, 0), Case(("inspect", "missing.onnx"), 1), Case(("inspect", "x.npy"), 1),
    Case(("inspect",), 1), Case((*INSPECT, "--nope"), 1),
    *cases(INSPECT, "-T", T_VALUES),
    *cases(INSPECT, "--json", {"": 0}), *cases(INSPECT, "--replace-softmax", {"": 0}),
    *cases(INSPECT, "--input-shape", {"1,8,8": 0, "x=1,8,8": 0, "2,8,8": 1, "0": 1,
                                      "a,b": 1, "1,-8,8": 1, "nope=1,8,8": 1, "": 1}),
    # ------------------------------------------------------------ compile
    Case(COMPILE, 0), Case(("compile", "missing.onnx", "-o", "out"), 1),
    Case((*COMPILE, "--nope"), 1),
    *cases(COMPILE, "-T", T_VALUES),
    *cases(COMPILE, "--target", {"sim": 0, "hls": 0, "verilog": 0, "all": 0, "fpga": 1,
                                 "": 1}),
    *cases(COMPILE, "--delay", {"exact": 0, "none": 0, "0": 0, "1": 0, "4": 0, "6": 0,
                                "1000": 0, "-1": 1, "x": 1, "1.5": 1}),
    *cases(COMPILE, "--neuron", {"if": 0, "signed": 0, "multi": 0, "lif": 1, "": 1}),
    *cases(COMPILE, "--neuron", {"signed": 0, "if": 0, "multi": 1}, "--delay", "1"),
    *cases(COMPILE, "--latency", {"0": 1, "1": 1, "30": 0, "1000000": 0, "-1": 1, "x": 1},
           "--calibrate", "c.npy"),
    *cases(COMPILE, "--latency", {"30": 1}),  # no data to choose the delays on
    *cases(COMPILE, "--latency", {"30": 0}, "--neuron", "signed", "--calibrate", "c.npy"),
    *cases(COMPILE, "--calibrate", {"c.npy": 0, "missing.npy": 1, "y.npy": 1,
                                    "cnn.onnx": 1}),
    *cases(COMPILE, "--calibration", {"mse": 0, "max": 0, "percentile": 0, "kl": 0,
                                      "nope": 1, "": 1}, "--calibrate", "c.npy"),
    *cases(COMPILE, "--calibration", {"mse": 1}),  # nothing to calibrate on
    *cases(COMPILE, "--parallel", {"1": 0, "2": 0, "1000000": 0, "0": 1, "-1": 1, "x": 1},
           "--target", "verilog"),
    *cases(COMPILE, "--parallel", {"1": 0}, "--target", "hls"),
    *cases(COMPILE, "--parallel", {"2": 1}),  # --target sim has no hardware
    *cases(COMPILE, "--hw-config", {"hw.json": 0, "missing.json": 1, "bad.json": 1,
                                    "unknown.json": 1, "x.npy": 1, "notes": 1},
           "--target", "verilog"),
    *cases(COMPILE, "--pipeline", {"": 0}, "--target", "verilog", "--parallel", "2"),
    *cases(COMPILE, "--pipeline", {"": 1}, "--target", "hls"),  # no Verilog design
    *cases(COMPILE, "--pipeline", {"": 1}),
    *cases(COMPILE, "--in-flight", {"1": 0, "6": 0, "16": 0, "0": 1, "17": 1, "x": 1},
           "--target", "verilog", "--pipeline"),
    *cases(COMPILE, "--in-flight", {"6": 1}, "--target", "verilog"),  # not pipelined
    *cases(COMPILE, "--replace-softmax", {"": 0}), *cases(COMPILE, "--force", {"": 0}),
    *cases(COMPILE, "--print-after-all", {"": 0}), *cases(COMPILE, "--time-passes", {"": 0}),
    *cases(COMPILE, "--frac-bits", {"0": 0, "1": 0, "30": 0, "62": EITHER, "63": 1, "-1": 1,
                                    "x": 1}),
    *cases(COMPILE, "--dump-dir", {"dumps": 0, "x.npy": 1}),
    *cases(COMPILE, "--input-shape", {"1,8,8": 0, "1,9,9": 1, "-": 1}),
    *cases(("compile", "cnn.onnx"), "-o", {"x.npy": 1, "deep/new/folder": 0, "build": 0,
                                           "notes": 1}),
    # ------------------------------------------------------------ simulate
    Case(SIMULATE, 0), Case(("simulate", "missing.snn", "--input", "x.npy"), 1),
    Case(("simulate", "cnn.onnx", "--input", "x.npy"), 1),
    Case(("simulate", "build/model.snn"), 1), Case((*SIMULATE, "--nope"), 1),
    *cases(("simulate", "build/model.snn"), "--input", {"missing.npy": 1, "y.npy": 1,
                                                        "c.npy": 0, "x.npz": 0}),
    *cases(SIMULATE, "--labels", {"y.npy": 0, "x.npy": 1, "missing.npy": 1}),
    *cases(SIMULATE, "--compare-onnx", {"cnn.onnx": 0, "missing.onnx": 1, "x.npy": 1}),
    *cases(SIMULATE, "--trace", {"t.npz": 0, "t.txt": 1, "nowhere/t.npz": 1}),
    *cases(SIMULATE, "--engine", {"auto": 0, "fast": 0, "step": 0, "gpu": 1, "": 1}),
    *cases(SIMULATE, "--output", {"o.npz": 0, "o.csv": 1}),
    *cases(SIMULATE, "--batch-size", POSITIVE),
    *cases(SIMULATE, "--report", {"r.json": 0, "r.txt": 1}),
    *cases(SIMULATE, "--ray-workers", {"0": 1, "-1": 1, "x": 1}),
    *cases(SIMULATE, "--ray", {"nope": 1, "127.0.0.1:1": 1}),  # (local: test_cluster.py)
    # ------------------------------------------------------------ sweep
    Case(SWEEP, 0), Case(("sweep", "missing.onnx", "--input", "x.npy"), 1),
    Case(("sweep", "cnn.onnx"), 1),
    *cases(SWEEP, "-T", {"0": 1, "1": 1, "-1": 1, "x": 1}),
    *cases(SWEEP, "--budgets", {"7,14": 0, "1": 0, "1000000": 0, "0": 1, "-1": 1, "x": 1,
                                ",": 1}),
    *cases(SWEEP, "--labels", {"y.npy": 0, "x.npy": 1}),
    *cases(SWEEP, "--json", {"s.json": 0, "s.txt": 1}),
    *cases(SWEEP, "--html", {"s.html": 0}),
    *cases(SWEEP, "--calibrate", {"missing.npy": 1}),
    # ------------------------------------------------------------ report
    Case(REPORT, 0), Case(("report", "nowhere"), 1), Case(("report", "x.npy"), 1),
    *cases(REPORT, "--input", {"x.npy": 0, "y.npy": 1, "missing.npy": 1}),
    *cases(REPORT, "--labels", {"y.npy": 1}),  # without --input
    *cases(REPORT, "--labels", {"y.npy": 0}, "--input", "x.npy"),
    *cases(REPORT, "--html", {"r.html": 0, "nowhere/r.html": 1}),
    *cases(REPORT, "--layer", {"/act_22": 0, "nope": 1}, "--html", "r.html"),
    *cases(REPORT, "--pj-ac", ENERGY), *cases(REPORT, "--pj-mac", ENERGY),
    *cases(REPORT, "--engine", {"auto": 0, "fast": 0, "step": 0, "gpu": 1}, "--input",
           "x.npy"),
    *cases(REPORT, "--synth", {"": 1}),  # a sim-only build has no Verilog to synthesize
    *cases(REPORT, "--sweep", {"missing.json": 1, "x.npy": 1}, "--html", "r.html"),
    # ------------------------------------------------------------ verify
    Case(VERIFY, 0), Case(("verify", "nowhere", "--input", "x.npy"), 1),
    Case(("verify", "build"), 1),
    *cases(("verify", "build"), "--input", {"y.npy": 1, "missing.npy": 1}),
    *cases(VERIFY, "--onnx", {"cnn.onnx": 0, "missing.onnx": 1, "x.npy": 1}),
    *cases(VERIFY, "--rtl-simulator", {"auto": 0, "icarus": 0, "verilator": 0, "modelsim": 1}),
    *cases(VERIFY, "--require", {"onnx": 0, "all": 1, "hls": 1, "rtl": 1, "nope": 1}),
    # ------------------------------------------------------------ demo (refusals only)
    *cases(("demo", "-o", "d"), "--example-dir", {"nowhere": 1, "build": 1}),
    *cases(("demo",), "-o", {"x.npy": 1}),
]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """The tiny CNN, a build of it (target sim), inputs, labels, calibration data."""
    root = tmp_path_factory.mktemp("options")
    onnx.save(modelgen.tiny_cnn(), root / "cnn.onnx")
    rng = np.random.default_rng(0)
    np.save(root / "x.npy", rng.uniform(0, 1, (6, 1, 8, 8)).astype(np.float32))
    np.savez(root / "x.npz", x=rng.uniform(0, 1, (4, 1, 8, 8)).astype(np.float32))
    np.save(root / "y.npy", rng.integers(0, 10, 6))
    np.save(root / "c.npy", rng.uniform(0, 1, (32, 1, 8, 8)).astype(np.float32))
    (root / "notes").mkdir()
    (root / "hw.json").write_text('{"parallel": 2}')
    (root / "bad.json").write_text('{"layers": {')
    (root / "unknown.json").write_text('{"layers": {"/nope/Conv": 1}}')
    (root / "notes" / "mine.txt").write_text("not snncc's\n")
    code, _, err = run(root, "compile", "cnn.onnx", "-o", "build")
    assert code == 0, err
    code, _, err = run(root, "simulate", "build/model.snn", "--input", "x.npy")
    assert code == 0, err
    return root


def run(cwd: Path, *argv: str) -> tuple[int, str, str]:
    """`snncc argv` in `cwd`, in this process: (exit code, stdout, stderr). Any exception
    other than the exit is a traceback the user would see, and fails the test."""
    import contextlib
    import io
    import os

    stdout, stderr = io.StringIO(), io.StringIO()
    old = (sys.argv, os.getcwd())
    sys.argv = ["snncc", *argv]
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                snncc.app.cli.main()
            except SystemExit as e:
                code = e.code
            else:
                code = 0
    finally:
        sys.argv = old[0]
        os.chdir(old[1])
    return (0 if code is None else code), stdout.getvalue(), stderr.getvalue()


def tree(folder: Path) -> dict[str, bytes | str]:
    return {str(p.relative_to(folder)): "folder" if p.is_dir() else p.read_bytes()
            for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("case", MATRIX, ids=lambda c: c.id)
def test_option(case, workspace, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    home = tmp_path / "w"
    shutil.copytree(workspace, home)
    before = tree(home)
    code, stdout, stderr = run(home, *case.argv)
    assert code in (0, 1), (code, stderr)
    assert "Traceback" not in stdout + stderr, stderr
    if case.code is not None:
        assert code == case.code, f"exit {code}\n{stdout}\n{stderr}"
    if code == 1:
        lines = stderr.strip().splitlines()
        verdict = {"inspect": "verdict: ", "verify": "verify: "}.get(case.argv[0])
        said = any(line.startswith("error: ") and len(line) > 12 for line in lines) or (
            verdict is not None and verdict in stdout)  # not convertible; a rung failed
        assert said, stdout + stderr
        if "error: " in stderr:  # (a failed verify records its rungs in report.json)
            assert tree(home) == before, "a refused command changed the folder"
    leftovers = [p for p in home.rglob(".*") if p.name != ".snncc-build.json"]
    assert not leftovers, leftovers


def test_the_matrix_covers_every_option():
    """Every option of every command (as `--help` lists them) appears in a case."""
    import typer.main

    command = typer.main.get_command(snncc.app.cli.app)
    used = {a for c in MATRIX for a in c.argv}
    missing = []
    for name, sub in command.commands.items():
        for param in sub.params:
            opts = [o for o in param.opts if o.startswith("-")]
            if opts and not used & set(opts) and param.name != "help":
                missing.append(f"{name} {opts[0]}")
    assert not missing, missing
    assert {c.argv[0] for c in MATRIX if not c.argv[0].startswith("-")} >= set(
        command.commands)


@pytest.mark.parametrize(("delay", "neuron"), [
    *((d, "if") for d in ("0", "1", "4", "6", "10", "20", "1000", "none")),
    *((d, "signed") for d in ("1", "4", "none"))])
def test_every_delay_compiles_simulates_and_reports(workspace, tmp_path, delay, neuron):
    """`compile --delay N` then `simulate` and `report` (a ZeroDivisionError once followed
    `--delay 4` on the bundled model): exit 0, and the conversion error is reported for
    every neuron layer."""
    home = tmp_path / "w"
    shutil.copytree(workspace, home)
    for argv in (("compile", "cnn.onnx", "-o", "d", "--delay", delay, "--neuron", neuron),
                 ("simulate", "d/model.snn", "--input", "x.npy", "--report", "r.json"),
                 ("report", "d", "--input", "x.npy", "--html", "r.html")):
        code, stdout, stderr = run(home, *argv)
        assert code == 0 and "Traceback" not in stderr, (argv, stdout, stderr)
    sim = json.loads((home / "r.json").read_text())["simulation"]
    model = snncc.load(home / "d" / "model.snn")
    x = np.load(home / "x.npy")
    counts, codes = model.simulate(x, engine="step").counts, model.reference(x)
    names = layer_names(model.graph)  # report.json's keys
    assert sim["conversion_error"] == {  # the share of counts off the exact codes
        names[n.name]: float(np.mean(counts[n.name] != codes[n.name]))
        for n in model.graph.ops(o.Neuron)}
