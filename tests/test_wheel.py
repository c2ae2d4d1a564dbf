"""The newcomer's path: the built wheel carries the bundled example, and `snncc demo` run
from the installed package (the wheel unpacked as pip installs it, not the checkout)
finds it, prints its table, and leaves its simulation where `snncc report` finds it."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO_FILES = ("digits_vit_qcdq.onnx", "digits_vit_float.onnx", "digits_test.npz",
              "digits_calib.npz")


def test_demo_runs_from_the_wheel(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps",
                    "--no-build-isolation", "-q", "-w", str(tmp_path / "dist")],
                   check=True, capture_output=True, timeout=600, cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("snncc-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        for f in DEMO_FILES:  # byte for byte the checkout's
            assert z.read(f"snncc/examples/digits_vit/{f}") == (
                ROOT / "examples" / "digits_vit" / f).read_bytes()
        z.extractall(tmp_path / "site")
    assert "snncc/templates/hls/Makefile.j2" in names
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site"), "COLUMNS": "120"}

    def run(*args):
        proc = subprocess.run([sys.executable, *args], capture_output=True, text=True,
                              timeout=600, env=env, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    where = run("-c", "import snncc; print(snncc.__file__)")
    assert where.startswith(str(tmp_path / "site"))
    out = run("-m", "snncc", "demo")  # default -o build/demo
    for text in ("float twin", "quantized ANN (QAT)", "SNN, T=7, exact", "99.17%",
                 "SNN spike counts = integer reference: yes, every code"):
        assert text in out
    build = tmp_path / "build" / "demo"
    assert (build / "model.snn").is_file()
    simulation = json.loads((build / "report.json").read_text())["simulation"]
    assert simulation["inputs"] == 360 and f"{simulation['accuracy']:.2%}" == "99.17%"
    report = run("-m", "snncc", "report", "build/demo")
    assert "accuracy" in report and "99.17%" in report
