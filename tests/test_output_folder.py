"""Output folders never cost a user a file: `compile -o` and `demo -o` write into an
existing folder only if it is an snncc build folder, and then replace only what snncc wrote
(through the command, as a user runs it; files compared before and after)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def run(*args, cwd):
    return subprocess.run([sys.executable, "-m", "snncc", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=300)


def tree(folder: Path) -> dict[str, bytes | None]:
    """Every file (bytes) and folder (None) under `folder`, by relative path."""
    return {str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes()
            for p in sorted(folder.rglob("*"))}


@pytest.fixture
def keep(tmp_path, tiny_models) -> Path:
    """A folder with the user's model and notes in it."""
    folder = tmp_path / "keep"
    folder.mkdir()
    shutil.copy(tiny_models["cnn"], folder / "model.onnx")
    (folder / "notes.txt").write_text("my notes\n")
    return folder


def test_a_folder_of_the_users_files_is_refused_untouched(keep, tmp_path):
    before = tree(keep)
    proc = run("compile", "keep/model.onnx", "-T", 7, "-o", "keep", cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr == (
        "error: keep: the output folder is not an snncc build folder and is not empty (it "
        "holds model.onnx, notes.txt). Fix: choose another folder with -o, or pass --force "
        "to write snncc's files beside what is there (nothing else in it is touched)\n")
    assert tree(keep) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep"]  # no temporary folder


def test_force_writes_beside_the_users_files(keep, tmp_path):
    before = tree(keep)
    proc = run("compile", "keep/model.onnx", "-T", 7, "-o", "keep", "--force", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    after = tree(keep)
    assert {k: after[k] for k in before} == before  # the model and the notes, byte for byte
    assert sorted(after) == [".snncc-build.json", "model.onnx", "model.snn", "notes.txt",
                             "report.json"]
    marker = json.loads((keep / ".snncc-build.json").read_text())
    assert marker["entries"] == ["model.snn", "report.json"]
    # a build folder now: compiling again replaces snncc's files, never the user's
    (keep / "model.snn").write_bytes(b"stale")
    proc = run("compile", "keep/model.onnx", "-T", 7, "-o", "keep", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    again = tree(keep)
    assert {k: again[k] for k in before} == before
    assert again["model.snn"] != b"stale" and again["model.snn"] == after["model.snn"]


def test_a_rebuild_replaces_only_what_snncc_wrote(tmp_path, tiny_models):
    out = tmp_path / "build"
    assert run("compile", tiny_models["cnn"], "--target", "hls", "-o", out,
               cwd=tmp_path).returncode == 0
    assert (out / "hls").is_dir()
    (out / "notes.txt").write_text("mine\n")
    (out / "runs").mkdir()
    (out / "runs" / "x.npy").write_bytes(b"data")
    proc = run("compile", tiny_models["cnn"], "-o", out, cwd=tmp_path)  # --target sim
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == [".snncc-build.json", "model.snn",
                                                     "notes.txt", "report.json", "runs"]
    assert (out / "notes.txt").read_text() == "mine\n"  # kept; the old hls/ is gone
    assert (out / "runs" / "x.npy").read_bytes() == b"data"


def test_a_file_of_the_users_where_snncc_writes_is_refused(tmp_path, tiny_models):
    out = tmp_path / "build"
    assert run("compile", tiny_models["cnn"], "-o", out, cwd=tmp_path).returncode == 0
    (out / "hls").mkdir()
    (out / "hls" / "my_kernel.cpp").write_text("// mine\n")
    before = tree(out)
    proc = run("compile", tiny_models["cnn"], "--target", "hls", "-o", "build", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr == ("error: build: the output folder holds 'hls', which snncc did not "
                           "write; it would be replaced. Fix: move it away, choose another "
                           "folder with -o, or pass --force\n")
    assert tree(out) == before


def test_the_source_model_is_never_replaced_even_with_force(tmp_path, tiny_models):
    out = tmp_path / "build"
    assert run("compile", tiny_models["cnn"], "-o", out, cwd=tmp_path).returncode == 0
    (out / "report.json").unlink()
    (out / "report.json").mkdir()  # the user keeps the model where snncc writes report.json
    shutil.copy(tiny_models["cnn"], out / "report.json" / "m.onnx")
    before = tree(out)
    proc = run("compile", "build/report.json/m.onnx", "-o", "build", "--force", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr == ("error: build: the output folder's 'report.json' is (or holds) an "
                           "input of this command; it would be replaced. Fix: choose another "
                           "folder with -o\n")
    assert tree(out) == before


def test_compile_beside_a_demo_build_keeps_it(tmp_path, tiny_models):
    """`snncc demo` writes build/demo; a later `snncc compile m.onnx` (default -o build)
    adds its files beside it."""
    demo = tmp_path / "build" / "demo"
    assert run("compile", tiny_models["cnn"], "-o", demo, cwd=tmp_path).returncode == 0
    before = tree(demo)
    proc = run("compile", tiny_models["cnn"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "build").iterdir()) == [
        ".snncc-build.json", "demo", "model.snn", "report.json"]
    assert tree(demo) == before


def test_demo_refuses_a_folder_of_the_users_files(keep, tmp_path):
    before = tree(keep)
    proc = run("demo", "-o", "keep", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: keep: the output folder is not an snncc build "
                                  "folder and is not empty (it holds model.onnx, notes.txt).")
    assert tree(keep) == before


def test_the_api_takes_the_paths_the_cli_takes(tmp_path, tiny_models):
    """snncc.compile(calibrate="c.npy") as --calibrate c.npy; model.save into a folder that
    does not exist yet creates it."""
    import numpy as np

    import snncc

    x = np.random.default_rng(0).uniform(0, 1, (16, 1, 8, 8)).astype(np.float32)
    np.save(tmp_path / "c.npy", x)
    by_path = snncc.compile(tiny_models["cnn"], latency=10, calibrate=tmp_path / "c.npy")
    by_array = snncc.compile(tiny_models["cnn"], latency=10, calibrate=x)
    assert by_path.graph.meta["latency"] == by_array.graph.meta["latency"]
    by_path.save(tmp_path / "new" / "folder" / "model.snn")
    again = snncc.load(tmp_path / "new" / "folder" / "model.snn")
    np.testing.assert_array_equal(again.simulate(x).logits_int, by_path.simulate(x).logits_int)
