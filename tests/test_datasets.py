"""Inputs from disk (issue 14): `simulate --input/--labels` take a folder of .npy/.npz
shards (sorted name order) and memory-map .npy files, reading a batch at a time; bad
forms of a folder are one clear message each, exit 1."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import snncc
from snncc.metrics.measure import measure
from snncc.runtime.datasets import Shards, open_array


def snncc_cmd(*args, cwd):
    return subprocess.run([sys.executable, "-m", "snncc", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "200"})


@pytest.fixture(scope="module")
def build(tmp_path_factory, tiny_models):
    folder = tmp_path_factory.mktemp("shards")
    model = snncc.compile(tiny_models["transformer"], T=7)
    (folder / "b").mkdir()
    model.save(folder / "b" / "model.snn")
    x = np.random.default_rng(9).uniform(0, 1, (17,) + model.input_shape).astype(np.float32)
    y = np.arange(17) % 10
    np.save(folder / "x.npy", x)
    np.save(folder / "y.npy", y)
    (folder / "xs").mkdir()
    (folder / "ys").mkdir()
    # sorted name order, not creation order; .npy and .npz shards mixed; a hidden file
    np.save(folder / "xs" / "part-02.npy", x[10:])
    np.savez(folder / "xs" / "part-00.npz", x=x[:4])
    np.save(folder / "xs" / "part-01.npy", x[4:10])
    (folder / "xs" / ".DS_Store").write_bytes(b"\0")
    np.save(folder / "ys" / "0.npy", y[:9])
    np.savez(folder / "ys" / "1.npz", y=y[9:])
    return folder


def test_shards_are_one_data_set_in_name_order(build):
    x = np.load(build / "x.npy")
    shards = open_array(build / "xs", "--input")
    assert isinstance(shards, Shards) and shards.shape == x.shape and len(shards) == 17
    assert np.array_equal(shards[3:12], x[3:12]) and np.array_equal(np.asarray(shards), x)
    assert isinstance(open_array(build / "x.npy", "--input"), np.memmap)


def test_simulate_a_folder_equals_the_single_file(build):
    common = ("simulate", "b/model.snn", "--batch-size", "5")
    one = snncc_cmd(*common, "--input", "x.npy", "--labels", "y.npy", "--output", "one.npz",
                    "--report", "one.json", cwd=build)
    assert one.returncode == 0, one.stderr
    many = snncc_cmd(*common, "--input", "xs", "--labels", "ys", "--output", "many.npz",
                     "--report", "many.json", cwd=build)
    assert many.returncode == 0, many.stderr
    assert many.stdout.replace("many", "one") == one.stdout
    a, b = np.load(build / "one.npz"), np.load(build / "many.npz")
    assert all(np.array_equal(a[k], b[k]) for k in a.files)
    reports = [json.loads((build / f).read_text()) for f in ("one.json", "many.json")]
    for report, data in zip(reports, (("x.npy", "y.npy"), ("xs", "ys")), strict=True):
        sim = report["simulation"]  # where the data came from (`snncc report` says it)
        assert (sim.pop("input"), sim.pop("labels")) == tuple(str(build / f) for f in data)
    assert reports[0] == reports[1]


class BatchOnly:
    """An array-like that hands out slices of at most `limit` samples and refuses to be
    read whole."""

    def __init__(self, x, limit):
        self.x, self.limit, self.read = x, limit, 0
        self.shape, self.dtype, self.ndim = x.shape, x.dtype, x.ndim

    def __len__(self):
        return len(self.x)

    def __getitem__(self, index):
        part = self.x[index]
        assert len(part) <= self.limit, f"read {len(part)} samples at once"
        self.read += len(part)
        return part

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole data set was read")


def test_memory_is_bounded_by_the_batch(build):
    model = snncc.load(build / "b" / "model.snn")
    x = np.load(build / "x.npy", mmap_mode="r")
    source = BatchOnly(x, limit=4)
    m = measure(model, source, batch_size=4)
    assert source.read == len(x)
    assert np.array_equal(m.logits_int, model.simulate(np.asarray(x)).logits_int)


def write_bad(folder, kind):
    folder.mkdir()
    if kind == "mixed":
        np.save(folder / "a.npy", np.zeros((3, 8, 8), np.float32))
        np.save(folder / "b.npy", np.zeros((2, 8, 9), np.float32))
    elif kind == "text":
        np.save(folder / "a.npy", np.zeros((3, 8, 8), np.float32))
        (folder / "notes.txt").write_text("not an array")
    elif kind == "garbage":
        (folder / "a.npy").write_bytes(b"not an array at all")


@pytest.mark.parametrize("kind, message", [
    ("mixed", "error: --input bad: shards differ in the shape of a sample: a.npy has "
              "[3, 8, 8], b.npy has [2, 8, 9]. Fix: give every shard the same shape after "
              "the first axis"),
    ("text", "error: --input bad: the folder holds 'notes.txt', which is not a .npy/.npz "
             "shard. Fix: keep only the data set's shards (.npy or .npz) in the folder"),
    ("garbage", "error: --input bad/a.npy: cannot be read as an array of numbers"),
    ("empty", "error: --input bad: the folder has no .npy/.npz shards. Fix: put the data "
              "set's shards in it, or pass a .npy/.npz file"),
])
def test_bad_folders_are_one_clear_message(build, tmp_path, kind, message):
    write_bad(tmp_path / "bad", kind)
    if kind == "empty":
        (tmp_path / "bad").mkdir(exist_ok=True)
    proc = snncc_cmd("simulate", build / "b" / "model.snn", "--input", "bad", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.startswith(message), proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and "Traceback" not in proc.stderr


def test_nan_in_a_later_batch_names_the_file_and_global_index(build, tmp_path):
    x = np.load(build / "x.npy").copy()
    x[13, 2, 5] = np.nan
    np.save(tmp_path / "x.npy", x)
    proc = snncc_cmd("simulate", build / "b" / "model.snn", "--input", "x.npy",
                     "--batch-size", "4", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr == ("error: x.npy: input contains NaN or Inf (first at index "
                           "[13, 2, 5]). Fix: clean the input\n")


def test_a_large_npy_is_memory_mapped_through_the_command(build, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from snncc.app.cli import app
    from snncc.runtime import datasets

    def run(name):
        res = CliRunner().invoke(app, ["simulate", str(build / "b" / "model.snn"), "--input",
                                       str(build / "x.npy"), "--labels", str(build / "y.npy"),
                                       "--batch-size", "4", "--report", str(tmp_path / name)])
        assert res.exit_code == 0, res.output
        return json.loads((tmp_path / name).read_text())

    whole = run("whole.json")
    opened = []
    monkeypatch.setattr(datasets, "STREAM_BYTES", 0)  # every .npy counts as large
    monkeypatch.setattr(datasets, "open_array",
                        lambda *a, **k: opened.append(a[0]) or open_array(*a, **k))
    assert run("mapped.json") == whole and opened
