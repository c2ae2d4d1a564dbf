"""The newcomer's path: `pip wheel .`, then the wheel installed by pip into a fresh virtual
environment (not the checkout, not an unpacked copy), and `snncc demo` and `snncc report`
run from that environment's own `snncc` command in a folder outside the checkout.

No network: the wheel is installed with --no-deps --no-index, and the environment sees the
dependencies (numpy, onnx, onnxruntime, ...) through one .pth line naming this
interpreter's site-packages, which holds no importable snncc (an editable install there is
a finder that only a site folder's own .pth would start). A wheel without one of the
package's modules, templates or example files fails here: the file lists are compared,
and the demo runs on what pip installed."""

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np

import snncc

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "digits_vit"
DEMO_FILES = ("digits_vit_qcdq.onnx", "digits_vit_float.onnx", "digits_test.npz",
              "digits_calib.npz")
# no PYTHONPATH: a checkout on it would be the snncc that pip and the venv find
ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


def package_files() -> set[str]:
    """What the wheel must hold: every module and template of the checkout's snncc/, and
    the bundled example's files under snncc/examples/digits_vit/."""
    found = {p.relative_to(ROOT).as_posix() for p in (ROOT / "snncc").rglob("*")
             if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}
    return found | {f"snncc/examples/digits_vit/{f}" for f in (*DEMO_FILES, "README.md")}


def clean_copy(folder: Path) -> Path:
    """The checkout as a fresh clone has it: without build/ and *.egg-info (setuptools
    builds in place and would put a stale build/lib's files into the wheel), virtual
    environments, caches and generated models."""
    def ignore(where: str, names: list[str]) -> set[str]:
        top = Path(where) == ROOT
        return {n for n in names if n == "__pycache__" or n.endswith(".egg-info")
                or top and n in (".git", ".venv", "build", "out") or top and n.startswith(".")
                and n.endswith("_cache") or Path(where) == ROOT / "bench" and n == "models"}

    shutil.copytree(ROOT, folder, ignore=ignore)
    return folder


def build_wheel(folder: Path) -> Path:
    folder.mkdir()
    source = clean_copy(folder.parent / "source")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps",
                    "--no-build-isolation", "-q", "-w", str(folder)],
                   check=True, capture_output=True, timeout=600, cwd=folder, env=ENV)
    (wheel,) = folder.glob("snncc-*.whl")
    return wheel


def fresh_venv(folder: Path, wheel: Path) -> Path:
    """A new virtual environment with the wheel installed by pip; its bin/ folder."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True,
                   timeout=120, env=ENV)
    python = folder / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--no-deps", "--no-index", str(wheel)], check=True, capture_output=True,
                   timeout=300, env=ENV)
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig."
                                "get_paths()['purelib'])"], check=True, capture_output=True,
                               text=True, env=ENV).stdout.strip())
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "zz_dependencies.pth").write_text("".join(f"{d}\n" for d in sorted(deps)))
    return folder / "bin"


def test_demo_runs_from_a_wheel_installed_in_a_fresh_venv(tmp_path):
    wheel = build_wheel(tmp_path / "dist")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        missing = package_files() - names
        assert not missing, f"the wheel lacks {sorted(missing)}"
        for f in DEMO_FILES:  # byte for byte the checkout's
            assert z.read(f"snncc/examples/digits_vit/{f}") == (EXAMPLE / f).read_bytes()
    bin_ = fresh_venv(tmp_path / "venv", wheel)
    work = tmp_path / "work"  # outside the checkout: nothing found relative to it
    work.mkdir()
    env = {**ENV, "COLUMNS": "120"}

    def run(*args: str) -> str:
        proc = subprocess.run([*args], capture_output=True, text=True, timeout=600, env=env,
                              cwd=work)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    where = run(str(bin_ / "python"), "-c", "import snncc; print(snncc.__file__)").strip()
    assert Path(where).is_relative_to(tmp_path / "venv"), where
    out = run(str(bin_ / "snncc"), "demo", "-o", "demo")
    report = run(str(bin_ / "snncc"), "report", "demo")

    # the build the installed snncc wrote, simulated here by the checkout's snncc
    test = np.load(EXAMPLE / "digits_test.npz")
    built = snncc.load(work / "demo" / "model.snn")
    accuracy = float(np.mean(built.simulate(test["x"]).predictions == test["y"]))
    simulation = json.loads((work / "demo" / "report.json").read_text())["simulation"]
    assert simulation["inputs"] == len(test["y"]) and simulation["accuracy"] == accuracy
    assert re.search(rf"SNN, T=7, exact +│ {re.escape(f'{accuracy:.2%}')} ", out), out
    assert "SNN spike counts = integer reference: yes, every code" in out
    assert f"{accuracy:.2%}" in report and "no simulation results" not in report
    # and it is the bundled example's SNN: the checkout compiles the same predictions
    ours = snncc.compile(EXAMPLE / "digits_vit_qcdq.onnx", T=7)
    assert np.array_equal(ours.simulate(test["x"]).predictions,
                          built.simulate(test["x"]).predictions)
