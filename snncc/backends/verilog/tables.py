"""Compile-time tables of the Verilog backend: convolution and pooling taps, threshold
words (the step schedule is snncc.schedule.activity). Pure functions of the graph; no
Verilog.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from snncc import ops as o
from snncc.intmath import signed_bits
from snncc.ir import Node
from snncc.kernels import window_taps
from snncc.ranges import Interval

from .design import op_of
from .layout import Layout


def addr_bits(depth: int) -> int:
    """Bits of an index into `depth` entries (at least one)."""
    return max(1, (int(depth) - 1).bit_length())


def taps(out: int, kernel: int, stride: int, pad: int, dilation: int, size: int,
         scale: int) -> list[tuple[bool, int]]:
    """For output position q and tap k (entry q*kernel + k): the input position
    i = q*stride - pad + k*dilation it reads, as (valid, i*scale); padding is invalid."""
    return [(bool(i >= 0), int(i) * scale if i >= 0 else 0)
            for i in window_taps(out, size, kernel, stride, pad, dilation).ravel()]


def tap_range(entries: list[tuple[bool, int]], out: int, kernel: int) -> list[tuple[int, int]]:
    """Per output position q of a `taps` table: the first and last valid tap (lo, hi)
    (the valid ones lie between them), or (0, 0) when every tap is padding (a walk over
    them then visits tap 0, padding)."""
    ranges = []
    for q in range(out):
        ok = [k for k in range(kernel) if entries[q * kernel + k][0]]
        ranges.append((ok[0], ok[-1]) if ok else (0, 0))
    return ranges


def conv_weight_rows(w: np.ndarray, group: int) -> np.ndarray:
    """[KH*KW*C, O]: row (ky*KW + kx)*C + c holds W[:, c, ky, kx] over all O output
    channels, zero outside c's group."""
    o_ch, ig, kh, kw = w.shape
    og = o_ch // group
    rows = np.zeros((kh, kw, ig * group, o_ch), np.int64)
    for c in range(ig * group):
        g = c // ig
        rows[:, :, c, g * og:(g + 1) * og] = w[g * og:(g + 1) * og, c - g * ig].transpose(1, 2, 0)
    return rows.reshape(-1, o_ch)


# ---------------------------------------------------------------- thresholds


@dataclass(frozen=True)
class ThresholdTable:
    """A neuron layer's threshold words: row r uses word (r // inner) % words."""

    words: int
    inner: int
    negate: np.ndarray  # [words, lanes] bool: compare -v instead of v
    thetas: np.ndarray  # [words, lanes, L] int64, clamped to the reachable range
    width: int  # comparison width: holds +-v and every threshold


def threshold_table(n: Node, layout: Layout, acc: Interval, membrane_bits: int
                    ) -> ThresholdTable:
    """The neuron's (sign, thresholds) in its physical layout, compressed over one
    contiguous block of row axes, every threshold clamped to [min sign*v, max sign*v + 1]
    (which changes no decision)."""
    op = op_of(n, o.Neuron)
    levels = op.levels
    rank = len(layout.shape)
    # (thresholds, sign) as given, broadcast only over the axes either varies along: the
    # table is read from its broadcast to the whole layer without writing that out
    th = np.asarray(op.thresholds, np.int64)
    th = th.reshape((1,) * (rank + 1 - th.ndim) + th.shape)
    sg = np.asarray(op.sign, np.int64)
    sg = sg.reshape((1,) * (rank - sg.ndim) + sg.shape)
    given = np.broadcast_shapes(th.shape[:-1], sg.shape)
    both = np.concatenate([np.broadcast_to(th, given + (levels,)),
                           np.broadcast_to(sg, given)[..., None]], axis=-1)
    order = tuple(layout.perm) + (rank,)
    small = both.transpose(order)
    phys = np.broadcast_to(small, tuple(layout.shape[a] for a in layout.perm) + (levels + 1,))
    row_shape = phys.shape[:-2]  # physical row axes; then lanes, then levels + sign
    varying = [a for a in range(len(row_shape))
               if small.shape[a] > 1 and not np.all(small == small.take([0], axis=a))]
    if varying:
        a0, a1 = varying[0], varying[-1]
        pick = tuple(slice(None) if a0 <= a <= a1 else 0 for a in range(len(row_shape)))
        words, inner = int(np.prod(row_shape[a0:a1 + 1])), int(np.prod(row_shape[a1 + 1:]))
    else:
        pick, words, inner = (0,) * len(row_shape), 1, max(layout.rows, 1)
    table = np.ascontiguousarray(phys[pick]).reshape(words, layout.lanes, levels + 1)
    negate = table[..., levels] < 0
    lo = np.where(negate, -acc.hi, acc.lo)
    hi = np.where(negate, -acc.lo, acc.hi)
    thetas = np.clip(table[..., :levels], lo[..., None], hi[..., None] + 1)
    width = max(signed_bits(min(int(lo.min()), int(thetas.min())),
                            max(int(hi.max()), int(thetas.max()))),
                signed_bits(-acc.hi, -acc.lo), membrane_bits + 1)
    return ThresholdTable(words, inner, negate, thetas, width)


# ---------------------------------------------------------------- schedule
