"""Pictures for the HTML report with no plotting library: inline SVG bar charts, and a
minimal PNG writer (numpy + zlib) for spike rasters."""

from __future__ import annotations

import base64
import math
import struct
import zlib
from html import escape

import numpy as np

PALETTE = ("#3b6fb6", "#e08a2c", "#4a9a5b", "#b64a4a")


# ---------------------------------------------------------------- PNG


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def png(gray: np.ndarray) -> bytes:
    """An 8-bit greyscale PNG of `gray` [H, W] (uint8)."""
    gray = np.ascontiguousarray(gray, np.uint8)
    h, w = gray.shape
    rows = np.concatenate([np.zeros((h, 1), np.uint8), gray], axis=1)  # filter 0 per row
    return (b"\x89PNG\r\n\x1a\n"
            + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + _chunk(b"IDAT", zlib.compress(rows.tobytes(), 9))
            + _chunk(b"IEND", b""))


def raster_png(spikes: np.ndarray, px_step: int = 6) -> str:
    """A spike raster (spikes [T, neurons]; time left to right, neurons top to bottom) as a
    data: URI. Spikes are black on white, with light grey lines every 10 steps."""
    t, n = spikes.shape
    px_neuron = 2 if n <= 128 else 1
    img = np.full((max(n, 1), t), 255, np.uint8)
    img[spikes.T.astype(bool)] = 0
    img = np.repeat(np.repeat(img, px_neuron, axis=0), px_step, axis=1)
    grid = img[:, :: 10 * px_step]
    grid[grid == 255] = 200
    return "data:image/png;base64," + base64.b64encode(png(img)).decode()


# ---------------------------------------------------------------- SVG


def _ticks(hi: float, log: bool) -> list[float]:
    if log:
        return [10.0**k for k in range(0, int(math.ceil(math.log10(max(hi, 1)))) + 1)]
    if hi <= 0:
        return [0.0]
    step = 10 ** math.floor(math.log10(hi))
    step = step / 2 if hi / step < 3 else step
    return [k * step for k in range(int(hi / step) + 1)]


def _fmt(v: float) -> str:
    if v >= 1e6:
        return f"{v / 1e6:.3g}M"
    if v >= 1e3:
        return f"{v / 1e3:.3g}k"
    return f"{v:.3g}"


def bar_chart(labels: list[str], series: dict[str, list[float]], *, log: bool = False,
              unit: str = "", width: int = 900, percent: bool = False) -> str:
    """Horizontal grouped bars: one group per label, one bar per series."""
    label_w, bar_h, gap, pad = 260, 12, 8, 30
    plot_w = width - label_w - 70
    group_h = bar_h * len(series) + gap
    height = pad * 2 + group_h * len(labels) + 18 * (len(series) > 1)
    values = [v for vs in series.values() for v in vs if v is not None]
    hi = max(values, default=1.0) or 1.0
    top = _ticks(hi, log)[-1] if log else max(hi, _ticks(hi, log)[-1])

    def x_of(v: float) -> float:
        if log:
            return plot_w * (math.log10(max(v, 1)) / max(math.log10(top), 1e-9))
        return plot_w * v / top

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
           f'<rect width="{width}" height="{height}" fill="white"/>']
    for tick in _ticks(top, log):
        x = label_w + x_of(tick)
        text = f"{tick:.0%}" if percent else _fmt(tick)
        out.append(f'<line x1="{x:.1f}" y1="{pad - 4}" x2="{x:.1f}" '
                   f'y2="{height - pad + 4}" stroke="#ddd"/>'
                   f'<text x="{x:.1f}" y="{pad - 8}" text-anchor="middle" fill="#555">'
                   f'{text}</text>')
    for i, label in enumerate(labels):
        y0 = pad + i * group_h
        out.append(f'<text x="{label_w - 6}" y="{y0 + group_h / 2 + 1:.1f}" text-anchor="end" '
                   f'dominant-baseline="middle">{escape(label)}</text>')
        for j, (name, vs) in enumerate(series.items()):
            v = vs[i] or 0.0
            if v <= 0:
                continue
            w = max(x_of(v), 1.0)
            y = y0 + j * bar_h
            shown = f"{v:.2%}" if percent else _fmt(v)
            out.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h - 2}" '
                       f'fill="{PALETTE[j % len(PALETTE)]}"><title>{escape(name)}: {shown}'
                       f'{escape(unit)}</title></rect>'
                       f'<text x="{label_w + w + 4:.1f}" y="{y + bar_h / 2:.1f}" '
                       f'dominant-baseline="middle" fill="#333">{shown}</text>')
    if len(series) > 1:
        x = label_w
        for j, name in enumerate(series):
            out.append(f'<rect x="{x}" y="{height - 16}" width="10" height="10" '
                       f'fill="{PALETTE[j % len(PALETTE)]}"/><text x="{x + 14}" '
                       f'y="{height - 7}">{escape(name)}</text>')
            x += 20 + 7 * len(name)
    out.append("</svg>")
    return "".join(out)


def line_chart(series: dict[str, list[tuple[float, float]]], *, x_label: str, y_label: str,
               percent: bool = False, width: int = 640, height: int = 320) -> str:
    """Lines with markers, one per series of (x, y) points (a single point is a marker)."""
    left, right, top, bottom = 64, 150, 16, 40
    pw, ph = width - left - right, height - top - bottom
    points = [p for ps in series.values() for p in ps]
    x_hi = max((x for x, _ in points), default=1.0) or 1.0
    y_lo = min((y for _, y in points), default=0.0)
    y_hi = max((y for _, y in points), default=1.0)
    if percent:
        y_lo, y_hi = max(0.0, math.floor(y_lo * 10) / 10), 1.0
    y_lo, y_hi = (y_lo, y_hi) if y_hi > y_lo else (y_lo - 1, y_hi + 1)

    def at(x: float, y: float) -> tuple[float, float]:
        return left + pw * x / x_hi, top + ph * (1 - (y - y_lo) / (y_hi - y_lo))

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
           f'<rect width="{width}" height="{height}" fill="white"/>']
    for k in range(5):
        y = y_lo + (y_hi - y_lo) * k / 4
        _, py = at(0, y)
        text = f"{y:.0%}" if percent else _fmt(y)
        out.append(f'<line x1="{left}" y1="{py:.1f}" x2="{left + pw}" y2="{py:.1f}" '
                   f'stroke="#ddd"/><text x="{left - 6}" y="{py + 4:.1f}" text-anchor="end" '
                   f'fill="#555">{text}</text>')
    for tick in _ticks(x_hi, False):
        px, _ = at(tick, y_lo)
        out.append(f'<text x="{px:.1f}" y="{top + ph + 16}" text-anchor="middle" '
                   f'fill="#555">{_fmt(tick)}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{height - 6}" text-anchor="middle">'
               f'{escape(x_label)}</text><text x="14" y="{top + ph / 2}" '
               f'transform="rotate(-90 14 {top + ph / 2})" text-anchor="middle">'
               f'{escape(y_label)}</text>')
    for j, (name, ps) in enumerate(series.items()):
        colour = PALETTE[j % len(PALETTE)]
        xy = [at(x, y) for x, y in sorted(ps)]
        if len(xy) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
            out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" '
                       f'stroke-width="2"/>')
        for (x, y), (vx, vy) in zip(xy, sorted(ps), strict=True):
            shown = f"{vy:.2%}" if percent else _fmt(vy)
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{colour}">'
                       f'<title>{escape(name)}: {shown} at {_fmt(vx)}</title></circle>')
        ly = top + 14 + 18 * j
        out.append(f'<rect x="{left + pw + 12}" y="{ly - 9}" width="10" height="10" '
                   f'fill="{colour}"/><text x="{left + pw + 26}" y="{ly}">{escape(name)}</text>')
    out.append("</svg>")
    return "".join(out)
