"""The HTML report: one self-contained page (inline SVG charts, PNG rasters as data: URIs)
rendered from report.json by a jinja2 template. Python computes, the template formats."""

from __future__ import annotations

from pathlib import Path

import jinja2

from snncc.app.charts import bar_chart, raster_png
from snncc.app.report_view import LAYER_HEADER, hardware_rows, layer_label, layer_rows, summary_rows
from snncc.errors import Diagnostic, SnnccError
from snncc.metrics.measure import RASTER_NEURONS, unpack_raster
from snncc.version import __version__


def _labels(rows: list[dict]) -> list[str]:
    labels = [layer_label(r) for r in rows]
    return [f"{lab} ({r['kind']})" if labels.count(lab) > 1 else lab
            for lab, r in zip(labels, rows, strict=True)]


def _charts(report: dict) -> dict[str, str]:
    charts = {"rates": "", "ops": "", "error": ""}
    neurons = [r for r in report["layers"] if "firing_rate" in r]
    if neurons:
        charts["rates"] = bar_chart(_labels(neurons),
                                    {"firing rate": [r["firing_rate"] for r in neurons]},
                                    percent=True)
    ops = [r for r in report["layers"] if r.get("dense_macs") or r.get("sops") or r.get("adds")]
    if ops and any("sops" in r for r in ops):
        charts["ops"] = bar_chart(_labels(ops), {
            "SOPs + current adds (SNN)": [(r.get("sops") or 0) + (r.get("adds") or 0)
                                          for r in ops],
            "MACs performed (SNN)": [r.get("macs") or 0 for r in ops],
            "MACs (ANN, dense)": [r.get("dense_macs") or 0 for r in ops]}, log=True)
    errors = (report.get("simulation") or {}).get("conversion_error")
    if errors:
        rows = [r for r in report["layers"] if r["name"] in errors]
        charts["error"] = bar_chart(_labels(rows),
                                    {"conversion error": [errors[r["name"]] for r in rows]},
                                    percent=True)
    return charts


def _keys(row: dict) -> tuple:
    """What --layer may name a layer by."""
    return row["name"], layer_label(row), row.get("node"), row.get("source")


def choose_layers(report: dict, wanted: list[str] | None) -> list[dict]:
    """The neuron layers to draw rasters for: by layer name (or IR node, or ONNX node),
    default all."""
    rasters = (report.get("simulation") or {}).get("rasters", {})
    rows = [r for r in report["layers"] if r["name"] in rasters]
    if not wanted:
        return rows
    chosen = [r for r in rows if any(k in wanted for k in _keys(r))]
    missing = [w for w in wanted if not any(w in _keys(r) for r in chosen)]
    if missing:
        raise SnnccError(Diagnostic(
            f"no spike raster for layer(s) {missing}",
            fix="name neuron layers as the table shows them, e.g. "
                + ", ".join(layer_label(r) for r in rows[:3])))
    return chosen


def _rasters(report: dict, rows: list[dict]) -> list[dict]:
    rasters = report["simulation"]["rasters"]
    out = []
    for r in rows:
        raw = rasters[r["name"]]
        spikes = unpack_raster(raw)
        out.append({"label": layer_label(r), "uri": raster_png(spikes),
                    "spikes": int(spikes.sum()), "shown": raw["shown"],
                    "neurons": raw["neurons"], "steps": raw["steps"],
                    "t_fire": r.get("t_fire", "")})
    return out


def _verify_rows(report: dict) -> list[dict]:
    rows = []
    for r in (report.get("verify") or {}).get("rungs", []):
        d = r.get("divergence")
        where = ""
        if d:
            step = f", step {d['step']}" if d.get("step") is not None else ""
            where = (f"{d['source']}: sample {d['element'][0]}, element {d['element'][1:]}"
                     f"{step}: {d['what']} {d['expected']} ≠ {d['got']}")
        agreement = "" if r.get("agreement") is None else f"{r['agreement']:.4%}"
        rows.append({"name": r["name"], "status": r["status"], "agreement": agreement,
                     "detail": r.get("detail", ""), "divergence": where})
    return rows


def render_html(report: dict, layers: list[str] | None = None, sweep: dict | None = None
                ) -> str:
    env = jinja2.Environment(loader=jinja2.PackageLoader("snncc", "templates/report"),
                             undefined=jinja2.StrictUndefined, autoescape=True)
    chosen = choose_layers(report, layers) if report.get("simulation") else []
    return env.get_template("report.html.j2").render(
        title=report.get("source") or "model", version=__version__,
        summary=summary_rows(report), hardware=hardware_rows(report),
        verify=_verify_rows(report), charts=_charts(report), delay=report["delay"],
        rasters=_rasters(report, chosen) if chosen else [], raster_cap=RASTER_NEURONS,
        layer_header=LAYER_HEADER, layer_rows=layer_rows(report),
        sweep=_sweep_html(sweep))


def _sweep_html(sweep: dict | None) -> str:
    if not sweep:
        return ""
    from snncc.app.sweep import html_section

    return html_section(sweep)


def write_html(report: dict, path: Path, layers: list[str] | None = None) -> None:
    text = render_html(report, layers)
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as e:
        raise SnnccError(Diagnostic(f"cannot write the HTML report ({e.strerror})",
                                    file=str(path), fix="choose a writable path")) from None
