"""A neuron's level count in one pass, proved equal to the L comparisons it replaces.

The count of a neuron is ``g(s) = #{k : s >= θ_k}`` with s = sign*v the integrated current
and θ non-decreasing integers. Thresholds that come from a uniform quantizer are the
ceilings of evenly spaced reals, θ_k = ceil(x0 + k*Δ); then, s being an integer,
``g(s) = clip(floor((s - x0)/Δ) + 1, 0, L)``: one multiply, one add, a clip and a cast
(``kernels.affine_counts``) instead of L compare-and-add passes.

The plan uses it only where it has proved it exact, by evaluating the very function the
kernel computes (``kernels.affine_levels``, in the current's dtype) at a few points:

- both g and the computed f are monotone in v (the same way): f is a chain of correctly
  rounded float operations (multiply, add), an exact clip and a truncation, each
  monotone; g counts thresholds below s;
- the current lies in [-B, B] (``snncc.ranges``, the bound the plan sizes its dtype by),
  and g is constant on each run of integers between two consecutive distinct thresholds;
- a monotone f that equals g at both ends of such a run equals it on the whole run.

So f = g on every integer of [-B, B] iff it does at -B, B and at θ - 1 and θ for every
threshold θ in (-B, B]: 2L + 2 points a table row. Where the proof fails (or no line
fits the thresholds), the layer keeps the comparisons.
"""

from __future__ import annotations

import numpy as np

from snncc import kernels

MAX_LEVELS = 64  # the line is fitted over all pairs of levels: L**2 per row


def affine_tables(thresholds: np.ndarray, sign: np.ndarray, bound: int,
                  sample: tuple[int, ...], dtype) -> tuple[np.ndarray, np.ndarray] | None:
    """(scale, offset) tables for ``kernels.affine_counts`` giving every neuron's count
    ``#{k : sign*v >= thresholds[k]}`` for every integer v in [-bound, bound] held in
    `dtype` (the current's), or None if that is not proved (then the comparisons stay).
    The arithmetic is in `dtype`, or in float64 where float32's precision does not
    prove it (near the top of float32's exact range)."""
    dtype = np.dtype(dtype)
    levels = thresholds.shape[-1]
    if dtype.kind != "f" or not 0 < levels <= MAX_LEVELS or bound >= 2**(
            np.finfo(dtype).nmant + 1):
        return None
    th, sg = np.broadcast_arrays(np.asarray(thresholds, np.int64),
                                 np.asarray(sign, np.int64)[..., None])
    rows = np.concatenate([th, sg[..., :1]], axis=-1).reshape(-1, levels + 1)
    uniq, inverse = np.unique(rows, axis=0, return_inverse=True)
    fit = _line(np.clip(uniq[:, :levels], -bound - 1, bound + 1), bound)
    if fit is None:
        return None
    x0, delta = fit
    for compute in dict.fromkeys([dtype, np.dtype(np.float64)]):
        scale = (uniq[:, levels] / delta).astype(compute)
        offset = (1 - x0 / delta).astype(compute)
        if _proved(uniq[:, :levels], uniq[:, levels], scale, offset, bound, dtype):
            table = np.stack([scale[inverse.ravel()], offset[inverse.ravel()]], axis=-1)
            return tuple(kernels.level_tables(table.reshape(th.shape[:-1] + (2,)), sample,
                                              compute))  # type: ignore[return-value]
    return None


def _line(th: np.ndarray, bound: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Per row, reals x0 and Δ > 0 such that x_k = x0 + k*Δ lies in (θ_k - 1, θ_k] for
    every level in reach, below -bound for those always reached (θ <= -bound) and above
    bound for those never reached (θ > bound); both picked mid-way in what the rows allow,
    so that the rounding of the kernel's arithmetic stays far from the boundaries. None if
    some row has no such line."""
    per = max(1, (1 << 20) // th.shape[1] ** 2)  # rows a block: L*L pairs each
    fits = [_line_block(th[r:r + per], bound) for r in range(0, len(th), per)]
    if any(f is None for f in fits):
        return None
    return (np.concatenate([f[0] for f in fits]),  # type: ignore[index]
            np.concatenate([f[1] for f in fits]))  # type: ignore[index]


def _line_block(th: np.ndarray, bound: int) -> tuple[np.ndarray, np.ndarray] | None:
    rows, levels = th.shape
    lo = np.where(th <= -bound, -np.inf, th - 1.0)  # x_k in (lo, hi]
    hi = np.where(th <= -bound, -bound, np.where(th > bound, np.inf, th.astype(np.float64)))
    lo = np.where(th > bound, float(bound), lo)
    k = np.arange(levels, dtype=np.float64)
    gap = k[None, :] - k[:, None]  # [j, k]: k - j
    later = gap > 0
    with np.errstate(invalid="ignore"):
        # (k-j)*Δ lies in (lo_k - hi_j, hi_k - lo_j) for every pair j < k
        low = (lo[:, None, :] - hi[:, :, None]) / np.where(later, gap, 1)
        high = (hi[:, None, :] - lo[:, :, None]) / np.where(later, gap, 1)
    low = np.where(later & ~np.isnan(low), low, -np.inf).max(axis=(1, 2))
    high = np.where(later & ~np.isnan(high), high, np.inf).min(axis=(1, 2))
    low = np.maximum(low, 0.0)
    if np.any(low >= high):
        return None
    span = float(2 * bound + 2)
    delta = np.where(np.isfinite(high), (low + high) / 2, np.maximum(2 * low, span))
    if np.any(delta <= 0):
        return None
    start = np.max(lo - k * delta[:, None], axis=1)  # x0 in (start, stop]
    stop = np.min(hi - k * delta[:, None], axis=1)
    if np.any(start >= stop):
        return None
    finite = np.isfinite(start) & np.isfinite(stop)
    x0 = np.where(finite, (start + stop) / 2,
                  np.where(np.isfinite(stop), stop - span, start + span))
    return x0, delta


def _proved(th: np.ndarray, sign: np.ndarray, scale: np.ndarray, offset: np.ndarray,
            bound: int, dtype: np.dtype) -> bool:
    """Whether the kernel's function (currents of `dtype`, tables of theirs) equals the
    level count at the ends of every run of integers of [-bound, bound] on which the count
    is constant (module docstring)."""
    inner = np.where((th > -bound) & (th <= bound), th, bound)
    ends = np.concatenate([np.full((len(th), 2), [-bound, bound]), inner, inner - 1], axis=1)
    ends = np.clip(ends, -bound, bound)  # s = sign*v at the ends of the runs
    want = np.sum(ends[:, :, None] >= th[:, None, :], axis=-1)
    v = (ends * sign[:, None]).astype(dtype)  # exact: |v| <= bound is in the dtype's reach
    # the kernel's function on the current's dtype and the tables' (as the engine calls it)
    got = np.empty(v.shape, np.int64)
    kernels.affine_levels(v, scale[:, None], offset[:, None], th.shape[-1], got)
    return bool(np.array_equal(got, want))
