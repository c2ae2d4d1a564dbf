"""The README's claims about options and numerics, each held to a value computed apart from
the code under test: the fraction-bit rule against onnxruntime, `--target all` against
the two single-target builds, `report --layer` against the step engine's spike trains,
`simulate --report` and `--batch-size` against the integer reference, `--pj-mac` against
the energy formula on hand-counted MACs."""

from __future__ import annotations

import base64
import json
import re
import zlib

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

import modelgen
import snncc
from snncc import ops as o
from snncc.app.cli import app
from snncc.ir import layer_names
from snncc.metrics.compare import compare_onnx, run_onnx

runner = CliRunner()


def cli(*args):
    result = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result


def inputs(model, n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (n,) + model.input_shape)


# ---------------------------------------------------------------- fraction bits


def finest_reader_step(graph) -> float:
    """The finest quantizer step (a neuron's scale) among the neurons that read a current
    of the residual stream or the logits (an input of a residual add or of the readout, or
    the add itself); 1 if none does, as the rule has it."""
    stream = set()
    for n in graph.ops(o.AddCurrent, o.Readout):
        stream |= {n.name, *n.inputs}
    steps = [float(np.min(n.op.scale)) for n in graph.ops(o.Neuron) if n.inputs[0] in stream]
    return min(steps, default=1.0)


@pytest.mark.parametrize("name", ["transformer", "vit", "cnn"])
def test_fraction_bits_keep_the_stream_error_under_a_65536th_of_a_step(tmp_path, name):
    """README: F is chosen so that the worst-case rounding error stays under 1/65536 of the
    finest step that reads the stream, 25-29 bits on the test models. Measured: with every
    code equal to onnxruntime's, the logits (a stream current) differ from onnxruntime's by
    less than that; at F = 12 they do not (the measurement can fail)."""
    make = {"transformer": modelgen.tiny_transformer, "vit": modelgen.tiny_vit,
            "cnn": modelgen.tiny_cnn}[name]
    path = tmp_path / f"{name}.onnx"
    onnx.save(make(), path)
    model = snncc.compile(path, 7)
    assert 25 <= model.graph.meta["frac_bits"] <= 29
    x = inputs(model, 64)
    assert compare_onnx(model, path, x).code_agreement == 1.0
    ort = run_onnx(path, x, [])[0]
    bound = finest_reader_step(model.graph) / 65536
    float32 = 4 * np.finfo(np.float32).eps * np.abs(ort).max()  # onnxruntime's own rounding
    assert np.abs(model.simulate(x).logits - ort).max() < bound + float32
    coarse = snncc.compile(path, 7, frac_bits=12)
    assert np.abs(coarse.simulate(x).logits - ort).max() > bound + float32


# ---------------------------------------------------------------- --target all


def tree(folder) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def test_target_all_writes_the_hls_and_verilog_builds(tmp_path, tiny_models):
    """`compile --target all`: model.snn, report.json, hls/ and verilog/, each backend's
    folder byte for byte what `--target hls` and `--target verilog` write."""
    for target in ("all", "hls", "verilog"):
        cli("compile", tiny_models["cnn"], "--target", target, "-o", tmp_path / target)
    both = tmp_path / "all"
    assert sorted(p.name for p in both.iterdir()) == [".snncc-build.json", "hls", "model.snn",
                                                       "report.json", "verilog"]
    for target in ("hls", "verilog"):
        assert tree(both / target) == tree(tmp_path / target / target), target
        assert len(tree(both / target)) > 5
    report = json.loads((both / "report.json").read_text())
    single = {t: json.loads((tmp_path / t / "report.json").read_text())["targets"][t]
              for t in ("hls", "verilog")}
    assert report["targets"] == single
    assert (both / "model.snn").read_bytes() == (tmp_path / "hls" / "model.snn").read_bytes()


# ---------------------------------------------------------------- a simulated build


@pytest.fixture(scope="module")
def build(tmp_path_factory, tiny_models):
    """The tiny transformer compiled and simulated on 10 inputs with labels."""
    folder = tmp_path_factory.mktemp("claims")
    model = snncc.compile(tiny_models["transformer"], 7)
    x = inputs(model, 10, seed=4)
    np.save(folder / "x.npy", x)
    np.save(folder / "y.npy", np.arange(10) % 10)
    cli("compile", tiny_models["transformer"], "-o", folder / "b")
    cli("simulate", folder / "b" / "model.snn", "--input", folder / "x.npy", "--labels",
        folder / "y.npy")
    return folder


def gray_png(data: bytes) -> np.ndarray:
    """[H, W] of an 8-bit greyscale PNG whose rows all use filter 0 (what snncc writes)."""
    pos, idat = 8, b""
    while pos < len(data):
        n, kind = int.from_bytes(data[pos:pos + 4], "big"), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h = int.from_bytes(body[:4], "big"), int.from_bytes(body[4:8], "big")
            assert body[8:10] == b"\x08\x00"  # 8 bits, greyscale
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    rows = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, w + 1)
    assert not rows[:, 0].any()
    return rows[:, 1:]


def test_report_layer_draws_that_layers_spike_raster(build, tmp_path):
    """`report --layer NAME --html`: one raster, of that layer, black exactly where the
    step engine's spike train of the first input fires (first 256 neurons, 2 px a neuron
    and 6 px a step at this size)."""
    model = snncc.load(build / "b" / "model.snn")
    target = model.graph.ops(o.Neuron)[3]
    page = tmp_path / "r.html"
    cli("report", build / "b", "--html", page, "--layer", target.name)
    images = re.findall(r'alt="spike raster of ([^"]+)" src="data:image/png;base64,([^"]+)"',
                        page.read_text())
    assert [label.strip("/") for label, _ in images] == [target.name.strip("/")]
    picture = gray_png(base64.b64decode(images[0][1]))
    x = np.load(build / "x.npy")[:1]
    train = model.simulate(x, engine="step", trace=True).trains[target.name][:, 0]
    spikes = train.reshape(len(train), -1)[:, :256].T.astype(bool)  # [neuron, step]
    assert spikes.any() and picture.shape == (2 * spikes.shape[0], 6 * spikes.shape[1])
    assert np.array_equal(picture[::2, 1::6] == 0, spikes)
    all_layers = tmp_path / "all.html"
    cli("report", build / "b", "--html", all_layers)
    assert all_layers.read_text().count('alt="spike raster of ') == len(
        model.graph.ops(o.Neuron))


def test_simulate_report_writes_the_runs_figures_there(build, tmp_path):
    """`simulate --report PATH`: the report goes to PATH (the build's own is left as it
    was), with the accuracy and firing rates of the integer reference's codes."""
    before = (build / "b" / "report.json").read_bytes()
    path = tmp_path / "run.json"
    cli("simulate", build / "b" / "model.snn", "--input", build / "x.npy", "--labels",
        build / "y.npy", "--report", path)
    assert (build / "b" / "report.json").read_bytes() == before
    sim = json.loads(path.read_text())["simulation"]
    model = snncc.load(build / "b" / "model.snn")
    x, y = np.load(build / "x.npy"), np.load(build / "y.npy")
    ref = model.reference(x)
    (readout,) = model.graph.ops(o.Readout)
    predictions = ref[readout.name].reshape(len(x), -1).argmax(axis=1)
    assert sim["inputs"] == 10 and sim["steps"] == model.steps
    assert sim["accuracy"] == np.mean(predictions == y)
    names = layer_names(model.graph)  # report.json's keys
    for n in model.graph.ops(o.Neuron):
        assert sim["firing_rates"][names[n.name]] == pytest.approx(
            ref[n.name].mean() / n.op.levels, rel=1e-12), n.name


@pytest.mark.parametrize("batch_size", [1, 3, 10, 100000])
def test_batch_size_does_not_change_the_results(build, tmp_path, batch_size):
    """`--batch-size`: the same logits and predictions for any batch size, the integer
    reference's (the step engine, batch by batch)."""
    out = tmp_path / "o.npz"
    cli("simulate", build / "b" / "model.snn", "--input", build / "x.npy", "--engine", "step",
        "--batch-size", batch_size, "--output", out, "--report", tmp_path / "r.json")
    saved = np.load(out)
    model = snncc.load(build / "b" / "model.snn")
    (readout,) = model.graph.ops(o.Readout)
    want = model.reference(np.load(build / "x.npy"))[readout.name]
    assert np.array_equal(saved["logits_int"], want)
    assert np.array_equal(saved["predictions"], want.reshape(10, -1).argmax(axis=1))


def test_pj_mac_prices_every_mac(build, tmp_path):
    """`report --pj-mac`: the SNN's MACs (the analog embedding only: 8 tokens x 8 x 8 =
    512) and the ANN's MACs priced at that figure, accumulates at --pj-ac."""
    b = tmp_path / "b"
    b.mkdir()
    for f in ("model.snn", "report.json"):
        (b / f).write_bytes((build / "b" / f).read_bytes())
    result = cli("report", b, "--pj-mac", "2.5", "--pj-ac", "0.5")
    e = json.loads((b / "report.json").read_text())["simulation"]["energy"]
    ann_macs = json.loads((b / "report.json").read_text())["ann_macs"]["total"]
    assert (e["pj_per_mac"], e["pj_per_ac"], e["snn"]["macs"]) == (2.5, 0.5, 512)
    assert e["snn"]["pj"] == 2.5 * 512 + 0.5 * (e["snn"]["sops"] + e["snn"]["adds"])
    assert e["ann"] == {"macs": ann_macs, "pj": 2.5 * ann_macs}
    assert e["ann_over_snn"] == 2.5 * ann_macs / e["snn"]["pj"]
    assert "SNN energy (0.5 pJ/AC, 2.5 pJ/MAC)" in result.output
    assert f"{2.5 * ann_macs / 1000:.2f} nJ per inference" in result.output
