"""Where an unsigned L-level activation quantizer clips: pure functions on calibration
values, per channel (a column of `x`, shaped [samples, channels]; one column for a
per-tensor quantizer).

- ``max``: the largest value (no clipping error, the coarsest step).
- ``percentile``: the 99.99th percentile of the values.
- ``mse``: the clip c = max·k/GRID (k = 1..GRID) with the least mean squared error of
  c/L·clip(round(x·L/c), 0, L) against x.
- ``kl``: the clip whose L-level histogram of the values is closest in Kullback-Leibler
  divergence to the full-resolution histogram (TensorRT's entropy calibration, on the
  positive values).
"""

from __future__ import annotations

import numpy as np

from snncc.intmath import Rounding, quantize

METHODS = ("max", "percentile", "mse", "kl")
GRID = 100
PERCENTILE = 99.99
MAX_ROWS = 4096  # calibration values per channel the search looks at (an even subsample)
HIST_BINS = 512
FLOOR = 2.0**-12  # a channel's clip is at least this fraction of its layer's largest


def subsample(x: np.ndarray) -> np.ndarray:
    """At most MAX_ROWS rows of x, evenly spaced (deterministic)."""
    if len(x) <= MAX_ROWS:
        return x
    return x[np.linspace(0, len(x) - 1, MAX_ROWS).astype(np.int64)]


def squared_error(x: np.ndarray, clip: np.ndarray, levels: int,
                  rounding: Rounding = Rounding.HALF_EVEN) -> np.ndarray:
    """Mean squared quantization error per column of x [rows, channels] for each channel's
    clip [channels] (the quantizer's scale is clip / levels)."""
    scale = np.maximum(clip, 1e-12) / levels
    q = quantize(x, scale, 0, 0, levels, rounding)
    return np.mean((scale * q - x) ** 2, axis=0)


def choose(x: np.ndarray, levels: int, method: str,
           rounding: Rounding = Rounding.HALF_EVEN) -> np.ndarray:
    """The clip per column of x [rows, channels] (values below zero count as zero)."""
    pos = np.maximum(np.asarray(x, np.float64), 0)
    top = pos.max(axis=0) if len(pos) else np.zeros(pos.shape[1])
    if method == "max":
        clip = top
    elif method == "percentile":
        clip = np.percentile(pos, PERCENTILE, axis=0)
    elif method == "mse":
        clip = _mse_clip(subsample(pos), top, levels, rounding)
    elif method == "kl":
        clip = np.array([_kl_clip(pos[:, c], levels) for c in range(pos.shape[1])])
    else:
        raise ValueError(f"unknown clipping method {method!r}")
    clip = np.where(clip > 0, clip, np.where(top > 0, top, 1.0))
    # Below FLOOR of the layer's largest clip, a channel's values are the rounding noise
    # of a silent channel (1e-18 where the exact value is 0): a clip fitted to them gives
    # codes that a float32 run (onnxruntime) and a float64 run do not agree on.
    return np.maximum(clip, FLOOR * float(clip.max(initial=0.0)))


def _mse_clip(pos: np.ndarray, top: np.ndarray, levels: int, rounding: Rounding) -> np.ndarray:
    fractions = np.arange(1, GRID + 1) / GRID
    errors = np.stack([squared_error(pos, top * f, levels, rounding) for f in fractions])
    return top * fractions[np.argmin(errors, axis=0)]  # ties: the smallest clip


def _kl_clip(v: np.ndarray, levels: int) -> float:
    v = v[v > 0]
    if v.size == 0:
        return 0.0
    hist, edges = np.histogram(v, bins=HIST_BINS, range=(0, float(v.max())))
    best, best_kl = float(v.max()), np.inf
    for i in range(levels + 1, HIST_BINS + 1):
        kl = _kl(hist.astype(np.float64), i, levels)
        if kl < best_kl:
            best, best_kl = float(edges[i]), kl
    return best


def _kl(hist: np.ndarray, i: int, levels: int) -> float:
    """KL(P || Q): P the first i bins with the outliers added to the last, Q those bins
    merged into `levels` groups and spread back over their non-empty bins."""
    p = hist[:i].copy()
    p[-1] += hist[i:].sum()
    groups = np.array_split(np.arange(i), levels)
    q = np.zeros(i)
    for g in groups:
        nonzero = hist[g] > 0
        if nonzero.any():
            q[g[nonzero]] = hist[g].sum() / nonzero.sum()
    mask = p > 0
    if np.any(q[mask] == 0):
        return np.inf
    p, q = p[mask] / p.sum(), q[mask] / q[mask].sum()
    return float(np.sum(p * np.log(p / q)))
