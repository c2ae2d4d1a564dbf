"""`snncc report`: the human view of report.json, as a terminal table (and see
snncc.app.html_report for the page). The rows are built here once for both views."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Column, Table

from snncc.errors import Diagnostic, SnnccError
from snncc.ir import short_name
from snncc.metrics.report import read_report, simulation_report, write_report
from snncc.ui.console import layer_column

LAYER_HEADER = ("layer", "kind", "neurons", "θ", "fires from (delay)", "rate", "SOPs",
                "MACs", "ANN MACs", "memory bits (weights / state)")
_NO_SOPS = ("input", "dif-neuron", "readout", "td-maxpool")


def _num(v, digits: int = 4) -> str:
    if v is None or v == "":
        return ""
    if isinstance(v, float) and not v.is_integer():
        return f"{v:.{digits}g}"
    return f"{int(v):,}"


def layer_label(row: dict) -> str:
    """The row's layer name (a report from before layer names: its source's short name)."""
    if "node" in row:
        return row["name"]
    return short_name(row.get("source") or row["name"])


def layer_rows(report: dict) -> list[list[str]]:
    """One row per layer; blank where a figure does not apply (or nothing was simulated)."""
    rows = []
    for r in report["layers"]:
        fires = f"{r['t_fire']} ({r['delay']})" if "t_fire" in r else ""
        sops = None
        if "sops" in r and r["kind"] not in _NO_SOPS and not r["kind"].startswith("analog"):
            sops = r["sops"] + r["adds"]
        rate = f"{r['firing_rate']:.3f}" if "firing_rate" in r else ""
        memory = " / ".join(_num(r.get(k)) or "-" for k in ("weight_bits", "state_bits"))
        rows.append([layer_label(r), r["kind"], _num(r.get("neurons")),
                     str(r.get("threshold", "")), fires, rate, _num(sops),
                     _num(r.get("macs") or None), _num(r.get("dense_macs") or None),
                     "" if memory == "- / -" else memory])
    return rows


ENGINE_HEADER = ("engine", "kind", "lanes", "cycles / inference", "share")


def engine_rows(report: dict) -> list[list[str]]:
    """One row per Verilog engine (report.json `targets.verilog`), in the design's order:
    its layer (else its Verilog name), the lanes the knob gave it (`--parallel`,
    `--hw-config`; blank for engines whose width follows their inputs'; "32 × 4 in": 32
    output lanes taking 4 input channels a cycle, snn_conv_rows; ", 2 events": walking
    2 input events a cycle, `V`) and the estimate's mean busy cycles per inference, with
    its share of all engines' cycles."""
    verilog = (report.get("targets") or {}).get("verilog") or {}
    cycles = (verilog.get("estimate") or {}).get("cycles_by_engine")
    if not cycles:
        return []
    lanes = verilog.get("parallel") or {}
    by_ident = {re.sub(r"\W+", "_", r["node"]).strip("_"): r
                for r in report.get("layers", []) if "node" in r}
    engines = verilog.get("layers", [])
    inputs = {e["engine"]: e["params"]["E"] for e in engines
              if e.get("module") == "snn_conv_rows" and "E" in e.get("params", {})}
    events = {e["engine"]: e["params"]["V"] for e in engines
              if int(e.get("params", {}).get("V", 1)) > 1}
    total = sum(cycles.values()) or 1
    rows = []
    for engine, c in cycles.items():
        layer = by_ident.get(re.sub(r"^u\d+_", "", engine))
        n = lanes.get(layer.get("source")) if layer else None
        width = "" if n is None else (str(n) + (f" × {inputs[engine]} in" if engine in inputs
                                                else "")
                                      + (f", {events[engine]} events" if engine in events
                                         else ""))
        rows.append([layer_label(layer) if layer else engine, layer["kind"] if layer else "",
                     width,
                     f"{c:,.0f}", f"{c / total:.1%}"])
    return rows


def simulated(sim: dict) -> str:
    """What a report's simulation ran on: '360 inputs from /data/x.npy (labels /data/y.npy)'
    (a report from before snncc kept the files: the count alone)."""
    text = f"{sim['inputs']} inputs"
    if sim.get("input"):
        text += f" from {sim['input']}"
    if sim.get("labels"):
        text += f" (labels {sim['labels']})"
    return text


def _pj(v: float) -> str:
    return f"{v / 1e6:.4g} µJ" if v >= 1e6 else f"{v / 1e3:.4g} nJ" if v >= 1e3 else f"{v:.4g} pJ"


def summary_rows(report: dict) -> list[tuple[str, str]]:
    rows = [("source model", str(report.get("source"))), ("T (spike window)", str(report["T"])),
            ("delay policy", str(report["delay"])),
            ("end-to-end time steps", str(report["steps"])),
            ("pipelined throughput", f"one inference every {report.get('pipeline_interval')} "
                                     "steps"),
            ("neuron layers on the longest path", str(report.get("neuron_layers_on_path"))),
            ("weight memory", f"{report['memory']['weight_bits']:,} bits"),
            ("state memory", f"{report['memory']['state_bits']:,} bits")]
    ann = report.get("ann_macs")
    if ann:
        rows.append(("ANN MACs (from the ONNX graph)", f"{ann['total']:,} per inference"))
    sim = report.get("simulation")
    if not sim:
        return rows
    rows.append(("inputs simulated", simulated(sim)))
    if sim.get("accuracy") is not None:
        rows.append(("accuracy", f"{sim['accuracy']:.2%}"))
    if sim.get("onnx"):
        a = sim["onnx"]
        rows.append(("onnxruntime agreement", f"codes {a['code_agreement']:.4%}, argmax "
                                              f"{a['decision_agreement']:.2%}"))
    e = sim["energy"]
    s = e["snn"]
    rows.append(("SNN operations", f"{s['sops']:,.0f} SOPs + {s['adds']:,.0f} current adds "
                                   f"+ {s['macs']:,.0f} MACs per inference"))
    rows.append((f"SNN energy ({e['pj_per_ac']} pJ/AC, {e['pj_per_mac']} pJ/MAC)",
                 _pj(s["pj"]) + " per inference"))
    if e.get("ann"):
        rows.append(("ANN energy (MACs)", _pj(e["ann"]["pj"]) + " per inference"))
        ratio = e.get("ann_over_snn")
        rows.append(("ANN / SNN energy", f"{ratio:.2f}x" if ratio else "n/a"))
    return rows


_SYNTH_FIGURES = (("generic", "cells"), ("generic", "memory_bits"), ("ice40", "luts"),
                  ("ice40", "ffs"), ("ice40", "carries"), ("ice40", "brams"))


def _resource_text(figures: dict, keys: tuple[str, ...]) -> str:
    return ", ".join(f"{figures[k]:,g} {k.upper()}" for k in keys if k in figures)


def _estimate_rows(estimate: dict | None, synth: dict) -> list[tuple[str, str]]:
    """The Verilog estimates (made without a tool) beside Yosys's figures, if any."""
    if not estimate:
        return []
    c = estimate["cycles_per_inference"]
    rows = [("verilog estimate: cycles per inference",
             f"{c['mean']:,.0f} (min {c['min']:,}, max {c['max']:,}, on {c['inputs']} "
             f"inputs); {estimate['inferences_per_second']:,.0f} inferences/s at "
             f"{estimate['clock_mhz']} MHz"),
            ("verilog estimate: initiation interval",
             f"{estimate['initiation_interval']:,} cycles (one inference at a time)"
             if "stream_cycles" not in estimate else
             f"{estimate['initiation_interval']:,.1f} cycles (pipelined, inputs streamed "
             f"back to back, inferences in flight)")]
    for family, keys in (("xc7", ("lut", "ff", "bram36", "dsp")),
                         ("ice40", ("lut", "ff", "bram"))):
        if family in estimate:
            rows.append((f"verilog estimate ({family})",
                         _resource_text(estimate[family], keys)))
    if synth.get("xc7"):
        rows.append(("verilog synthesis (xc7, synth_xilinx)",
                     _resource_text(synth["xc7"], ("lut", "ff", "bram36", "dsp", "carry4"))))
    return rows


def hardware_rows(report: dict) -> list[tuple[str, str]]:
    rows = []
    for target, info in (report.get("targets") or {}).items():
        for key, value in (info or {}).items():
            if isinstance(value, str | int | float) and not isinstance(value, bool):
                rows.append((f"{target}: {key}", str(value)))
    synth = (report.get("hardware") or {}).get("synthesis") or {}
    rows += _estimate_rows(((report.get("targets") or {}).get("verilog") or {}).get("estimate"),
                           synth)
    if "ice40" in synth:
        for flow, key in _SYNTH_FIGURES:
            rows.append((f"verilog synthesis ({flow}): {key}", f"{synth[flow][key]:,}"))
        muls = synth.get("mul_cells") or {}
        rows.append(("verilog synthesis: $mul cells", ", ".join(
            f"{k} {v}" for k, v in muls.items()) or "none"))
    for rung in (report.get("verify") or {}).get("rungs", []):
        for key, value in rung.get("figures", {}).items():
            rows.append((f"{rung['name']}: {key}", str(value)))
    return rows


CALIBRATION_HEADER = ("quantizer", "method", "clip", "shift", "error")


def calibration_rows(report: dict) -> list[list[str]]:
    """One row per quantizer calibration chose: where (the source's value), its clip (the
    range over channels for a per-channel one), the largest bias-correction shift and the
    quantizer's RMS error relative to the RMS of its input on the calibration data."""
    rows = []
    for site in (report.get("calibration") or {}).get("sites", []):
        if "clip" not in site:
            continue
        clip = site["clip"]
        shown = f"{clip[0]:.3g}" if len(clip) == 1 else (
            f"{min(clip):.3g}..{max(clip):.3g} ({len(clip)} ch)")
        shift = site.get("shift")
        name = short_name(site.get("origin") or site["value"])
        rows.append([name + (" (requantized)" if site["kind"] == "requantize" else ""),
                     site.get("method", ""), shown,
                     f"{max(map(abs, shift)):.2g}" if shift else "",
                     f"{site['rel_error']:.1%}"])
    return rows


# The layer table's columns: one table in a wide terminal; in a narrow one (under 120
# columns) two, each led by the layer's name, so that no figure is cut short
_WIDE = ((tuple(range(len(LAYER_HEADER))), "layers (per inference)"),)
_NARROW = (((0, 1, 2, 3, 4, 5), "layers (per inference)"),
           ((0, 6, 7, 8, 9), "layers: operations and memory (per inference)"))


def print_report(console: Console, report: dict) -> None:
    rows = layer_rows(report)
    for columns, title in _WIDE if console.width >= 120 else _NARROW:
        t = Table(layer_column(LAYER_HEADER[0]), *(LAYER_HEADER[c] for c in columns[1:]),
                  title=title)
        for row in rows:
            t.add_row(*(row[c] for c in columns))
        console.print(t)
    calibrated = calibration_rows(report)
    if calibrated:
        c = Table(layer_column(CALIBRATION_HEADER[0]), *CALIBRATION_HEADER[1:],
                  title=f"calibrated quantizers (T = {report['T']} levels)")
        for row in calibrated:
            c.add_row(*row)
        console.print(c)
    engines = engine_rows(report)
    if engines:
        e = Table(layer_column(ENGINE_HEADER[0]), ENGINE_HEADER[1],
                  *(Column(h, justify="right", no_wrap=True) for h in ENGINE_HEADER[2:]),
                  title="verilog engines (estimate: busy cycles per inference)")
        for row in engines:
            e.add_row(*row)
        console.print(e)
    s = Table("model", Column("", overflow="fold"), show_header=False, title="model")
    for key, value in summary_rows(report) + hardware_rows(report):
        s.add_row(key, value)
    console.print(s)


# ---------------------------------------------------------------- the command


def synthesis_figures(build: Path, run: bool, console: Console) -> dict | None:
    """Yosys figures of build/verilog: from a new `make synth` if `run`, else from the last
    one, if any."""
    verilog = build / "verilog"
    if not verilog.is_dir():
        if run:
            raise SnnccError(Diagnostic("no Verilog design in the build folder", file=str(build),
                                        fix="compile with --target verilog (or all)"))
        return None
    from snncc.backends.verilog.tools import mul_cells, resource_figures, run_synthesis

    if run:
        from snncc.ui.console import progress_bar, progress_step

        with progress_bar(console) as bar, progress_step(bar, "synthesis (yosys, make synth)"):
            return run_synthesis(verilog)
    from snncc.backends.verilog.tools import xilinx_figures

    try:
        xc7 = xilinx_figures(verilog)  # make synth-xilinx
    except (OSError, KeyError, ValueError, SnnccError):
        xc7 = None
    extra = {"xc7": xc7} if xc7 else {}
    if not (verilog / "build" / "synth" / "ice40.json").is_file():
        return extra or None
    try:
        return {**resource_figures(verilog), "mul_cells": mul_cells(verilog), **extra}
    except (OSError, KeyError, ValueError, SnnccError):
        return extra or None


def check_layers(graph, wanted: list[str] | None) -> None:
    """--layer: each a neuron layer of the model (by layer name, IR or ONNX node name),
    checked before anything runs or is written."""
    from snncc import ops as o
    from snncc.ir import layer_names

    names = layer_names(graph)
    neurons = graph.ops(o.Neuron)
    known = {k for n in neurons for k in (names[n.name], n.name, n.origin)}
    missing = [w for w in wanted or () if w not in known]
    if missing:
        shown = ", ".join(names[n.name] for n in neurons[:3])
        raise SnnccError(Diagnostic(
            f"--layer {missing[0]}: the model has no neuron layer of that name",
            fix=f"name a neuron layer as the tables show it, e.g. {shown}"))


def load_or_measure(build: Path, x: np.ndarray | None, y: np.ndarray | None, console: Console,
                    engine: str = "auto", energy=None, files: dict | None = None,
                    compiled: bool = False) -> dict:
    """The build's report: from a new simulation of `x` (written back to the build; `files`:
    where x and y came from), or the one `snncc simulate` wrote (`compiled`: or, if there is
    none, the figures `snncc compile` wrote)."""
    import snncc
    from snncc.metrics.measure import check_labels, measure, summarize
    from snncc.ui.console import progress_bar, progress_step

    path = build / "report.json"
    base = read_report(path)
    if x is None:
        if base is None or ("simulation" not in base and not compiled):
            raise SnnccError(Diagnostic(
                "no simulation results in the build folder", file=str(path),
                fix="pass --input x.npy, or run `snncc simulate` on the build first"))
        return base
    model = snncc.load(build / "model.snn")
    x = model.check_input(x)
    if y is not None:
        check_labels(y, len(x))
    with progress_bar(console) as bar, progress_step(bar, "simulating", len(x)) as advance:
        measured = measure(model, x, engine=engine, progress=advance)
    summary = {**summarize(model, y, measured, engine), **(files or {})}
    report = simulation_report(model, base, measured.counts, summary["firing_rates"], summary,
                               energy=energy, rasters=measured.rasters)
    write_report(report, path)
    return report
