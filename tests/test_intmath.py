"""The integer rules every backend shares: exact level thresholds, ties included."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snncc.intmath import (
    Rounding,
    c_int_type,
    codes_from_thresholds,
    compress,
    level_thresholds,
    signed_bits,
)


def exact_code(I: int, a: float, b: float, s: float, zp: int, lo: int, hi: int,
               rounding: Rounding) -> int:
    """The quantizer evaluated in exact rational arithmetic."""
    y = (Fraction(a) * I + Fraction(b)) / Fraction(s)
    fl = y.numerator // y.denominator
    if rounding is Rounding.FLOOR:
        r = fl
    elif rounding is Rounding.HALF_UP:
        r = (y + Fraction(1, 2)).numerator // (y + Fraction(1, 2)).denominator
    else:
        frac = y - fl
        r = fl + (1 if frac > Fraction(1, 2) or frac == Fraction(1, 2) and fl % 2 else 0)
    return min(max(r + zp, lo), hi)


po2 = st.integers(-8, 2).map(lambda e: 2.0**e)
real = st.floats(0.001, 4.0, allow_nan=False).map(lambda v: float(np.float32(v)))


@settings(max_examples=300, deadline=None)
@given(a=st.one_of(po2, real, po2.map(lambda v: -v), real.map(lambda v: -v), st.just(0.0)),
       b=st.one_of(st.just(0.0), st.floats(-3, 3).map(lambda v: float(np.float32(v))),
                   st.integers(-16, 16).map(lambda k: k / 8)),
       s=st.one_of(po2, real), levels=st.integers(1, 15),
       rounding=st.sampled_from(list(Rounding)))
def test_thresholds_equal_the_quantizer_on_every_integer(a, b, s, levels, rounding):
    sign, theta = level_thresholds(np.asarray(a), np.asarray(b), np.asarray(s), 0, 0, levels,
                                   rounding)
    currents = np.arange(-300, 301)
    got = codes_from_thresholds(currents, sign, theta)
    want = [exact_code(int(i), a, b, s, 0, 0, levels, rounding) for i in currents]
    assert got.tolist() == want


def test_half_even_and_half_up_differ_exactly_on_ties():
    # z = I/2 with s = 1: I = 1 is the tie 0.5 (half-even -> 0, half-up -> 1), I = 3 is 1.5 (-> 2 both)
    currents = np.arange(0, 8)
    even = codes_from_thresholds(currents, *level_thresholds(0.5, 0.0, 1.0, 0, 0, 7,
                                                             Rounding.HALF_EVEN))
    up = codes_from_thresholds(currents, *level_thresholds(0.5, 0.0, 1.0, 0, 0, 7,
                                                           Rounding.HALF_UP))
    assert even.tolist() == [0, 0, 1, 2, 2, 2, 3, 4]
    assert up.tolist() == [0, 1, 1, 2, 2, 3, 3, 4]


def test_per_channel_thresholds_broadcast_and_negative_scale_flips_sign():
    a = np.array([[0.5], [-0.25]])
    sign, theta = level_thresholds(a, np.zeros((2, 1)), np.ones(()), 0, 0, 3,
                                   Rounding.HALF_EVEN)
    assert sign.ravel().tolist() == [1, -1]
    assert theta.shape == (2, 1, 3)
    codes = codes_from_thresholds(np.array([[4], [-8]]), sign, theta)
    assert codes.ravel().tolist() == [2, 2]


def test_compress_keeps_only_varying_axes():
    x = np.broadcast_to(np.arange(3.0).reshape(1, 3, 1), (4, 3, 5))
    assert compress(x).shape == (1, 3, 1)


@pytest.mark.parametrize(("lo", "hi", "bits", "ctype"), [
    (0, 127, 8, "int8_t"), (-128, 0, 8, "int8_t"), (0, 128, 9, "int16_t"),
    (-40000, 5, 17, "int32_t"), (0, 2**40, 42, "int64_t")])
def test_widths(lo, hi, bits, ctype):
    assert signed_bits(lo, hi) == bits
    assert c_int_type(lo, hi) == ctype


@settings(max_examples=200, deadline=None)
@given(out=st.integers(1, 6), size=st.integers(1, 9), k=st.integers(1, 4),
       stride=st.integers(1, 3), pad=st.integers(0, 3), dilation=st.integers(1, 3))
def test_window_taps_is_the_onnx_window(out, size, k, stride, pad, dilation):
    """kernels.window_taps (both hardware backends' tap tables) against ONNX's definition of
    a window: output o, tap j reads input o*stride - pad + j*dilation, padding outside."""
    from snncc.kernels import window_taps

    got = window_taps(out, size, k, stride, pad, dilation)
    for o in range(out):
        for j in range(k):
            i = o * stride - pad + j * dilation
            assert got[o, j] == (i if 0 <= i < size else -1)
