"""Numpy kernels shared by the float evaluator, the integer reference and the interpreter.

All take a leading batch axis. Integer inputs give exact integer results: products go
through float64 BLAS only when every partial sum is exactly representable (< 2**53).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

_EXACT = 2.0**53


def _exact_float(a: np.ndarray, b: np.ndarray, k: int) -> bool:
    bound = float(np.max(np.abs(a), initial=0)) * float(np.max(np.abs(b), initial=0)) * k
    return bound < _EXACT


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b; exact for integers."""
    if a.dtype.kind != "i" or b.dtype.kind != "i":
        return np.matmul(a, b)
    if _exact_float(a, b, a.shape[-1]):
        return np.rint(np.matmul(a.astype(np.float64), b.astype(np.float64))).astype(np.int64)
    return np.matmul(a, b)


def _pad(x: np.ndarray, pads, value) -> np.ndarray:
    t, l, b, r = pads
    if not any(pads):
        return x
    return np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)), constant_values=value)


def _windows(x: np.ndarray, kernel, strides, dilations=(1, 1)) -> np.ndarray:
    """[B, C, OH, OW, kh, kw] views of the (already padded) input."""
    kh, kw = kernel
    dh, dw = dilations
    ekh, ekw = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    win = sliding_window_view(x, (ekh, ekw), axis=(2, 3))
    return win[:, :, :: strides[0], :: strides[1], ::dh, ::dw]


def conv2d(x: np.ndarray, w: np.ndarray, strides, pads, dilations, group: int) -> np.ndarray:
    """Grouped 2-D convolution, x [B, C, H, W], w [O, C/group, kh, kw]; exact for integers."""
    win = _windows(_pad(x, pads, 0), w.shape[2:], strides, dilations)
    b, c, oh, ow = win.shape[:4]
    o, cg = w.shape[:2]
    og = o // group
    outs = []
    for g in range(group):
        cols = win[:, g * cg:(g + 1) * cg].transpose(0, 2, 3, 1, 4, 5).reshape(b * oh * ow, -1)
        wg = w[g * og:(g + 1) * og].reshape(og, -1).T
        outs.append(matmul(cols, wg).reshape(b, oh, ow, og))
    return np.concatenate(outs, axis=-1).transpose(0, 3, 1, 2)


def maxpool2d(x: np.ndarray, kernel, strides, pads) -> np.ndarray:
    low = -np.inf if x.dtype.kind == "f" else np.iinfo(np.int64).min
    win = _windows(_pad(x, pads, low), kernel, strides)
    return win.max(axis=(-2, -1))


def sumpool2d(x: np.ndarray, kernel, strides, pads) -> np.ndarray:
    win = _windows(_pad(x, pads, 0), kernel, strides)
    return win.sum(axis=(-2, -1))
