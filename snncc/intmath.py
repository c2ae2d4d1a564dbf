"""Integer semantics, in one place: rounding, level thresholds, fixed point, widths.

The integer reference, the interpreter and the hardware backends all take their integer
rules from here, so they cannot drift apart.

A quantizer maps a real value to a code: ``q = clip(round(z / s) + zp, lo, hi)``. Where
``z = a*I + b`` is an affine function of an integer current ``I``, every level boundary is
an exact integer threshold on ``I``: ``q >= k`` iff ``sign*I >= theta_k``. The thresholds
are computed in exact rational arithmetic on the float64 parameters (as FINN's
MultiThreshold does), so ties round exactly as the source model rounds them.
"""

from __future__ import annotations

from enum import StrEnum
from fractions import Fraction
from math import ceil, floor

import numpy as np

# Threshold sentinels: "always reached" and "never reached". The compiler clamps them to
# the current's reachable range before anything is emitted.
ALWAYS = -(2**62)
NEVER = 2**62


class Rounding(StrEnum):
    """How a quantizer rounds z/s to an integer."""

    HALF_EVEN = "half_even"  # ONNX QuantizeLinear, QONNX Quant ROUND, torch.round
    HALF_UP = "half_up"  # an IF neuron with v0 = theta/2
    FLOOR = "floor"  # an IF neuron with v0 = 0

    def apply(self, y: np.ndarray) -> np.ndarray:
        """Round float array `y` to integers (as float64) by this rule."""
        if self is Rounding.HALF_EVEN:
            return np.rint(y)
        if self is Rounding.HALF_UP:
            return np.floor(y + 0.5)
        return np.floor(y)


def quantize(x: np.ndarray, scale, zero_point, lo: int, hi: int, rounding: Rounding) -> np.ndarray:
    """Float reference of a quantizer: integer codes as int64."""
    y = rounding.apply(np.asarray(x, dtype=np.float64) / scale) + zero_point
    return np.clip(y, lo, hi).astype(np.int64)


def _boundary(a: Fraction, b: Fraction, c: Fraction, strict: bool) -> tuple[int, int]:
    """(sign, theta) such that ``a*I + b (> or >=) c`` iff ``sign*I >= theta`` for integer I."""
    if a == 0:
        holds = b > c if strict else b >= c
        return 1, ALWAYS if holds else NEVER
    x = (c - b) / a
    if a < 0:  # a*I + b > c  <=>  -I > -x
        x, sign = -x, -1
    else:
        sign = 1
    theta = floor(x) + 1 if strict else ceil(x)
    return sign, theta


def _level_conditions(k: int, zero_point: int, rounding: Rounding) -> tuple[Fraction, bool]:
    """The condition for code >= k as ``z/s (> or >=) y``: returns (y, strict)."""
    m = k - zero_point  # round(z/s) >= m
    if rounding is Rounding.FLOOR:
        return Fraction(m), False
    half = Fraction(2 * m - 1, 2)
    if rounding is Rounding.HALF_UP:
        return half, False
    # half to even: the tie m - 1/2 rounds up to m exactly when m is even.
    return half, m % 2 != 0


_INT64 = np.iinfo(np.int64)


def level_thresholds(a: np.ndarray, b: np.ndarray, scale: np.ndarray, zero_point: int,
                     lo: int, hi: int, rounding: Rounding) -> tuple[np.ndarray, np.ndarray]:
    """Exact thresholds for codes ``lo+1 .. hi`` of ``clip(round((a*I+b)/s)+zp, lo, hi)``.

    `a`, `b`, `scale` broadcast together to the tensor's (compressed) shape. Returns
    ``(sign, thresholds)``: sign (int8, that shape) and thresholds (int64, that shape plus
    a trailing axis of ``hi - lo`` levels, non-decreasing), so that
    ``code = lo + #{k : sign*I >= thresholds[..., k]}``.

    Vectorized in float64 where that is provably exact (the boundary is far enough from
    an integer for the rounding error not to matter); exact rational arithmetic for the
    rest (ties, a = 0, extreme magnitudes).
    """
    a, b, s = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(b, np.float64),
                                  np.asarray(scale, np.float64))
    if np.any(s <= 0):
        raise ValueError("quantizer scales must be positive")
    shape = a.shape
    rows = np.stack([a.ravel(), b.ravel(), s.ravel()], axis=1)
    uniq, inverse = np.unique(rows, axis=0, return_inverse=True)
    levels = hi - lo
    conditions = [_level_conditions(k, zero_point, rounding) for k in range(lo + 1, hi + 1)]
    sign_u = np.where(uniq[:, 0] < 0, -1, 1).astype(np.int8)
    theta_u, safe = _thresholds_float(uniq, np.array([float(y) for y, _ in conditions]))
    for r, j in zip(*np.nonzero(~safe), strict=True):
        ar, br, sr = uniq[r]
        y, strict = conditions[j]
        sign_u[r], theta = _boundary(Fraction(float(ar)), Fraction(float(br)),
                                     y * Fraction(float(sr)), strict)
        # a boundary beyond int64 is beyond every current: saturating it changes no code
        theta_u[r, j] = min(max(theta, _INT64.min), _INT64.max)
    inverse = inverse.ravel()
    return sign_u[inverse].reshape(shape), theta_u[inverse].reshape(shape + (levels,))


_FLOAT_TOLERANCE = 2.0**-45  # >> the few-ulp error of (y*s - b)/a in float64
_TINY, _HUGE = 2.0**-900, 2.0**900  # outside: no relative error bound (underflow)


def _thresholds_float(rows: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Thresholds of rows (a, b, s) x levels y, and where float64 gives them exactly.

    The boundary is x = ±(y*s - b)/a; computed in float64 it is within
    tolerance*(|y*s| + |b|)/|a| of the exact value. If no integer lies in that interval,
    x is not an integer and both ``ceil(x)`` and ``floor(x) + 1`` (the strict and
    non-strict thresholds) equal ``floor(x_hi) + 1``. Elsewhere `safe` is False.
    """
    a, b, s = (rows[:, k, None] for k in range(3))
    c = ys[None, :] * s
    with np.errstate(all="ignore"):
        x = np.where(a < 0, -1.0, 1.0) * (c - b) / a
        err = _FLOAT_TOLERANCE * (np.abs(c) + np.abs(b)) / np.abs(a)
        top = np.floor(x + err)
        safe = np.isfinite(top) & (top < x - err) & (np.abs(top) < 2.0**52)
    for v in (a, b, c):
        mag = np.abs(v)
        safe &= (mag == 0) | ((mag > _TINY) & (mag < _HUGE))
    safe &= a != 0
    theta = np.where(safe, top + 1, 0).astype(np.int64)
    return theta, safe


def codes_from_thresholds(current: np.ndarray, sign: np.ndarray,
                          thresholds: np.ndarray) -> np.ndarray:
    """Integer reference of a neuron: ``#{k : sign*I >= theta_k}`` per element."""
    v = np.asarray(current, np.int64) * sign
    return np.asarray(np.sum(v[..., None] >= thresholds, axis=-1, dtype=np.int64))


def to_fixed(x: np.ndarray, frac_bits: int) -> np.ndarray:
    """Round real `x` to integers in units of 2**-frac_bits (half to even)."""
    return np.rint(np.asarray(x, np.float64) * 2.0**frac_bits).astype(np.int64)


def compress(x: np.ndarray) -> np.ndarray:
    """Shrink every axis along which `x` is constant to size 1 (still broadcastable)."""
    x = np.asarray(x)
    for axis in range(x.ndim):
        if x.shape[axis] > 1 and np.all(x == x.take([0], axis=axis)):
            x = x.take([0], axis=axis)
    return x


def signed_bits(lo: int, hi: int) -> int:
    """Bits of the narrowest two's-complement integer that holds every value in [lo, hi]."""
    bits = 1
    while not (-(2 ** (bits - 1)) <= lo and hi <= 2 ** (bits - 1) - 1):
        bits += 1
    return bits


def unsigned_bits(hi: int) -> int:
    """Bits of the narrowest unsigned integer that holds 0..hi."""
    return max(1, int(hi).bit_length())


def c_int_type(lo: int, hi: int) -> str:
    """The narrowest standard C integer type that holds [lo, hi]."""
    bits = signed_bits(lo, hi)
    for width in (8, 16, 32, 64):
        if bits <= width:
            return f"int{width}_t"
    raise ValueError(f"range [{lo}, {hi}] does not fit in 64 bits")
