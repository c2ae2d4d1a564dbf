"""The `snncc` command end to end (real subprocesses: exit codes, files, printed output)."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import onnx
import onnx.parser
import pytest

import snncc
from snncc import ops as o
from snncc.errors import PassError
from snncc.frontend.importer import import_onnx
from snncc.ir import layer_names
from snncc.passes.base import Pass, PassResult
from snncc.passes.pipeline import run_pipeline


def snncc_cmd(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "snncc", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=300,
                          env={**os.environ, "COLUMNS": "200", **(env or {})})


def progress_lines(stderr: str) -> list[str]:
    """The frames of rich's live display, without colours and cursor movements."""
    text = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", stderr)
    return [line.strip() for line in text.replace("\r", "\n").splitlines() if "━" in line]


def test_version():
    proc = snncc_cmd("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"snncc {snncc.__version__}"


def test_inspect_reports_structure_and_verdict(tiny_models):
    proc = snncc_cmd("inspect", tiny_models["transformer"])
    assert proc.returncode == 0, proc.stderr
    assert "attention products 2, heads 2, tokens 8" in proc.stdout
    assert "verdict: convertible at T >= 7" in proc.stdout
    data = json.loads(snncc_cmd("inspect", tiny_models["transformer"], "--json").stdout)
    assert data["convertible"] and data["min_T"] == 7
    assert data["structure"]["residual_adds"] == 2
    assert [q["levels"] for q in data["quantizers"]][:2] == [255, 7]


def test_compile_then_simulate(tmp_path, tiny_models):
    out = tmp_path / "build"
    proc = snncc_cmd("compile", tiny_models["cnn"], "-T", 7, "-o", out, "--time-passes")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == [".snncc-build.json", "model.snn", "report.json"]
    assert "quant-to-neuron" in proc.stdout and "total" in proc.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["T"] == 7 and report["delay"] == "exact" and report["steps"] == 15
    model = snncc.load(out / "model.snn")
    x = np.random.default_rng(0).uniform(0, 1, (12,) + model.input_shape).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    proc = snncc_cmd("simulate", out / "model.snn", "--input", tmp_path / "x.npy",
                     "--compare-onnx", tiny_models["cnn"], "--output", tmp_path / "o.npz",
                     "--trace", tmp_path / "t.npz", "--engine", "step")
    assert proc.returncode == 0, proc.stderr
    assert "end-to-end time steps: 15" in proc.stdout
    assert "codes identical: 100.0000%; argmax identical: 100.0000% (12/12)" in proc.stdout
    saved = np.load(tmp_path / "o.npz")
    result = model.simulate(x)
    assert np.array_equal(saved["predictions"], result.predictions)
    assert np.allclose(saved["logits"], result.logits)
    trains = np.load(tmp_path / "t.npz")
    assert len(trains.files) == len(model.graph.ops(snncc.ops.Neuron))
    first = model.graph.ops(snncc.ops.Neuron)[0]
    name = layer_names(model.graph)[first.name]  # the trace is keyed by layer name
    assert np.array_equal(trains[name].sum(axis=0), result.counts[first.name])


# What `snncc simulate` has no use for: the ONNX frontend and the compiler, the hardware
# backends and their templates, the cluster (issue 14: the command's start-up counts), and
# networkx: the IR's graphs are built over it (DESIGN.md), but the command runs model.snn
# as a read-only ir.FrozenGraph, which needs no graph algorithm.
NOT_FOR_SIMULATE = ("onnx", "jinja2", "ray", "networkx", "snncc.frontend",
                    "snncc.passes", "snncc.backends.hls", "snncc.backends.verilog",
                    "snncc.verify", "snncc.runtime.cluster", "snncc.metrics.compare")

IMPORTED = """
import json, sys
from snncc.app.cli import main
sys.argv = ["snncc", *sys.argv[2:]]
try:
    main()
except SystemExit as e:
    code = e.code
with open(OUT, "w") as f:
    json.dump({"code": code, "modules": sorted(sys.modules)}, f)
"""


def imported_by(tmp_path, *args) -> tuple[int, set[str]]:
    """The exit code of `snncc ARGS` run in a fresh interpreter, and every module it
    imported along the way."""
    out = tmp_path / "modules.json"
    script = IMPORTED.replace("OUT", repr(str(out)))
    proc = subprocess.run([sys.executable, "-c", script, "-", *map(str, args)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={**os.environ, "COLUMNS": "200"})
    assert out.exists(), proc.stderr
    data = json.loads(out.read_text())
    return data["code"], set(data["modules"])


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules
                  if any(m == h or m.startswith(h + ".") for h in NOT_FOR_SIMULATE))


def test_simulate_imports_only_what_it_uses(tmp_path, tiny_models):
    """`snncc simulate` (statistics, report and outputs included) and its --help load
    neither onnx nor the compiler, the hardware backends or Ray; compiling
    (the same check, the other way round) does load the frontend."""
    code, modules = imported_by(tmp_path, "compile", tiny_models["transformer"], "-T", 7,
                                "-o", tmp_path / "build")
    assert code in (0, None) and "onnx" in modules and "snncc.passes.pipeline" in modules
    model = snncc.load(tmp_path / "build" / "model.snn")
    x = np.random.default_rng(1).uniform(0, 1, (10,) + model.input_shape).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", np.arange(10) % 3)
    code, modules = imported_by(tmp_path, "simulate", tmp_path / "build" / "model.snn",
                                "--input", tmp_path / "x.npy", "--labels", tmp_path / "y.npy",
                                "--output", tmp_path / "o.npz")
    assert code in (0, None)
    assert np.array_equal(np.load(tmp_path / "o.npz")["predictions"],
                          model.simulate(x).predictions)
    report = json.loads((tmp_path / "build" / "report.json").read_text())
    assert report["simulation"]["energy"]["snn"]["sops"] > 0
    assert heavy(modules) == []
    code, modules = imported_by(tmp_path, "simulate", "--help")
    assert code in (0, None) and heavy(modules) == []


FLOAT_MLP = """<ir_version: 8, opset_import: ["" : 17]>
g (float[N, 4] x) => (float[N, 3] y)
<float[4, 3] w = {1.0, -1.0, 0.5, 2.0, 0.0, 1.0, -0.5, 1.0, 1.0, 0.25, 0.5, -1.0},
 float[3, 3] w2 = {1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0}> {
    h = MatMul(x, w)
    r = Relu(h)
    y = MatMul(r, w2)
}"""


def test_long_steps_show_progress_on_stderr_when_it_is_a_terminal(tmp_path, tiny_models):
    build = tmp_path / "b"
    assert snncc_cmd("compile", tiny_models["cnn"], "-o", build).returncode == 0
    model = snncc.load(build / "model.snn")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).uniform(0, 1, (40,) + model.input_shape))
    args = ("simulate", build / "model.snn", "--input", tmp_path / "x.npy", "--compare-onnx",
            tiny_models["cnn"])
    forced = snncc_cmd(*args, env={"TTY_COMPATIBLE": "1"})  # rich: treat stderr as a terminal
    assert forced.returncode == 0, forced.stderr
    frames = progress_lines(forced.stderr)
    assert any(re.fullmatch(r"simulating ━+ 40/40 \d:\d\d:\d\d", f) for f in frames), frames
    assert any(re.fullmatch(r"onnxruntime \(--compare-onnx\) ━+ 40/40 \d:\d\d:\d\d", f)
               for f in frames), frames
    assert "simulating ━" not in forced.stdout
    piped = snncc_cmd(*args)  # stderr a pipe: no progress display, not even a blank line
    assert piped.returncode == 0 and piped.stderr == ""
    assert piped.stdout == re.sub(r"\x1b\[[0-9;]*m", "", forced.stdout)
    (tmp_path / "float.onnx").write_bytes(onnx.parser.parse_model(FLOAT_MLP).SerializeToString())
    np.save(tmp_path / "calib.npy", np.random.default_rng(1).uniform(0, 1, (64, 4)))
    calibrated = snncc_cmd("compile", tmp_path / "float.onnx", "--calibrate",
                           tmp_path / "calib.npy", "-o", tmp_path / "c",
                           env={"TTY_COMPATIBLE": "1"})
    assert calibrated.returncode == 0, calibrated.stderr
    assert any(f.startswith("calibrating on 64 samples ━") for f in progress_lines(
        calibrated.stderr)), calibrated.stderr


def test_simulate_with_labels_prints_accuracy(tmp_path, tiny_models):
    model = snncc.compile(tiny_models["cnn"])
    model.save(tmp_path / "m.snn")
    x = np.random.default_rng(1).uniform(0, 1, (10,) + model.input_shape)
    (readout,) = model.graph.ops(o.Readout)
    # the integer reference's decisions (not the interpreter's), 7 of them kept
    y = model.reference(x)[readout.name].reshape(10, -1).argmax(axis=1)
    y[7:] = (y[7:] + 1) % 10
    np.savez(tmp_path / "d.npz", x=x, y=y)
    proc = snncc_cmd("simulate", tmp_path / "m.snn", "--input", tmp_path / "d.npz",
                     "--labels", tmp_path / "d.npz")
    assert proc.returncode == 0, proc.stderr
    assert "accuracy: 70.00% on 10 inputs" in proc.stdout


def test_print_after_all_and_dump_dir(tmp_path, tiny_models):
    proc = snncc_cmd("compile", tiny_models["cnn"], "-o", tmp_path / "b", "--print-after-all",
                     "--dump-dir", tmp_path / "dump")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("// after ") == 7
    dumps = sorted(p.name for p in (tmp_path / "dump").iterdir())
    assert dumps[0] == "00-import.snnir" and dumps[-1] == "07-insert-dif.snnir"
    assert "Neuron(" in (tmp_path / "dump" / "05-quant-to-neuron.snnir").read_text()


def test_low_latency_delay_from_the_cli(tmp_path, tiny_models):
    proc = snncc_cmd("compile", tiny_models["transformer"], "--delay", "none", "-o", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "delay=none, 7 steps end to end" in proc.stdout
    model = snncc.load(tmp_path / "model.snn")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).uniform(0, 1, (8,) + model.input_shape))
    proc = snncc_cmd("simulate", tmp_path / "model.snn", "--input", tmp_path / "x.npy")
    assert proc.returncode == 0, proc.stderr
    assert "conversion error" in proc.stdout


def test_user_errors_exit_1_without_traceback(tmp_path, tiny_models):
    proc = snncc_cmd("compile", tiny_models["cnn"], "-T", 3, "-o", tmp_path / "b")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "3-bit activations: 7 levels > T = 3. Fix: use --calibrate DATA (requantizes to T levels) or -T 7" in proc.stderr
    assert not (tmp_path / "b").exists()
    debug = snncc_cmd("--debug", "compile", tiny_models["cnn"], "-T", 3, "-o", tmp_path / "b")
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_a_failing_pass_is_named_with_the_passes_before_it(tiny_models):
    class Broken(Pass):
        name = "broken"

        def run(self, graph):
            raise KeyError("boom")

    class Fine(Pass):
        name = "fine"

        def run(self, graph):
            return PassResult(graph, False)

    with pytest.raises(PassError, match=r"internal error in pass 'broken' \(passes run before "
                                        r"it: fine\): KeyError: 'boom'"):
        run_pipeline(import_onnx(tiny_models["cnn"]), [Fine(), Broken()])


def test_no_arguments_prints_the_help_and_no_error():
    proc = snncc_cmd()
    assert proc.returncode == 0 and proc.stderr == ""
    assert "[OPTIONS] COMMAND [ARGS]..." in proc.stdout and "compile" in proc.stdout


@pytest.mark.parametrize("command", ["", "inspect", "compile", "simulate", "sweep", "report",
                                     "verify", "demo"])
def test_help_gives_every_option_a_text_and_flags_no_type(command):
    """A flag takes no value, so no `<bool>` beside it; every option says what it does."""
    proc = snncc_cmd(*([command] if command else []), "--help", env={"COLUMNS": "150"})
    assert proc.returncode == 0 and proc.stderr == ""
    options = [line for line in proc.stdout.splitlines()
               if re.match(r"│ +(\* +)?(-[A-Za-z]|--[a-z])", line)]
    assert options and "<bool>" not in proc.stdout
    for line in options:  # option, short form, type: then the help text
        assert re.match(r"│ +(\* +)?(--?[a-z-]+ +)+(<[^>]+> +)?\S.*\w", line, re.I), line
    if command == "simulate":
        assert "Needs snncc[cluster];" in proc.stdout  # not eaten as markup
