"""The counting rules of snncc.metrics.energy in closed form, for runs of spikes.

In exact mode with unit-spike (if) neurons a value with count c whose spikes start at step
s spikes at s, s+1, ..., s+c-1, so every rule follows from counts and starts (the module
snncc.metrics.tally applies these to a graph, batch by batch). Each function here is held
to energy's rule on explicit trains by tests/test_measure.py.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from snncc import ops as o
from snncc.backends.sim.integer import IntMatMul
from snncc.metrics.energy import _broadcast_factor


class NonzeroCurrents:
    """Which entries of m @ W are non-zero, for 0/1 masks m [M, K] (uint8) and integer
    weights W [K, N]: onnxruntime's 8-bit products (``integer.IntMatMul``: W cut into
    8-bit factors, combined exactly). Where W = a * s + e (``integer.scaled``) with
    sum_k |e_kj| < s_j, |m @ e| < s, so an entry is zero just where both m @ a and m @ e
    are: a and e then go side by side into one product (columns a_0, e_0, a_1, ...), and
    a pair of flags is non-zero as one uint16."""

    def __init__(self, weight: np.ndarray):
        kernel = IntMatMul(weight, np.dtype(np.uint8), 1)
        self.columns = weight.shape[1]
        scale = kernel.scale
        self.apart = scale is not None and bool(np.all(
            np.abs(kernel.cut[1].astype(np.int64)).sum(axis=0) < scale))
        if self.apart:
            pairs = np.stack(kernel.cut, axis=-1).reshape(len(weight), -1)  # int8 [K, 2N]
            kernel = IntMatMul(pairs.astype(np.int64), np.dtype(np.uint8), 1)
        self.kernel = kernel

    def __call__(self, masks: np.ndarray) -> np.ndarray:
        if self.kernel.digits == 1:
            y = self.kernel.session.run(None, {"x": masks})[0] != 0
            return y.view(np.uint16) != 0 if self.apart else y
        out = np.empty((len(masks), self.columns))
        self.kernel.product(masks, out)
        return out != 0


def _hits(size: int, out: int, k: int, stride: int, pad: int, dilation: int) -> np.ndarray:
    """[k, size]: 1 where kernel offset i of some output position reads input position h."""
    hits = np.zeros((k, size), np.int64)
    for i in range(k):
        pos = np.arange(out) * stride - pad + i * dilation
        hits[i, pos[(pos >= 0) & (pos < size)]] = 1
    return hits


def window_reach(taps: np.ndarray, in_shape: tuple[int, ...], out_shape: tuple[int, ...],
                 strides, pads, dilations=(1, 1)) -> np.ndarray:
    """Per input element [C, H, W]: taps[c, i, j] summed over the windows that read the
    element at kernel offset (i, j) (a window covers an element at one offset at most;
    padding reads nothing). `pads` is (top, left, bottom, right), as in kernels."""
    rows = _hits(in_shape[1], out_shape[1], taps.shape[1], strides[0], pads[0], dilations[0])
    cols = _hits(in_shape[2], out_shape[2], taps.shape[2], strides[1], pads[1], dilations[1])
    return np.einsum("cij,ih,jw->chw", taps, rows, cols)


def conv_fan_out(op: o.Synapse, in_shape: tuple[int, ...], out_shape: tuple[int, ...]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(SOPs, effective SOPs) that one spike at each input element [C, H, W] of a conv
    synapse causes (``energy.synapse_sops`` per spike): the (output, weight) pairs it
    reaches, every output channel of its group at each window, and those of non-zero
    weight."""
    o_, cg, kh, kw = op.weight.shape
    per_group = o_ // op.group
    nonzero = np.count_nonzero(op.weight.reshape(op.group, per_group, cg, kh, kw), axis=1)
    nonzero = nonzero.reshape(-1, kh, kw).astype(np.int64)
    reach = np.full_like(nonzero, per_group)
    return tuple(window_reach(taps, in_shape, out_shape, op.strides, op.pads, op.dilations)
                 for taps in (reach, nonzero))  # type: ignore[return-value]


def pooled_counts(c: np.ndarray, kernel, strides, pads) -> np.ndarray:
    """Max pooling of spike counts [B, C, H, W] (non-negative: zero padding never wins, as
    in kernels.maxpool_planes), channels last and separable (the rows' maxima, then the
    columns'), so that kh + kw - 2 maxima run over long rows instead of kh * kw over the
    short rows of a small map."""
    top, left, bottom, right = pads
    (kh, kw), (sh, sw) = kernel, strides
    b, ch, h, w = c.shape
    p = np.zeros((b, h + top + bottom, w + left + right, ch), c.dtype)
    p[:, top:top + h, left:left + w] = c.transpose(0, 2, 3, 1)
    oh, ow = (p.shape[1] - kh) // sh + 1, (p.shape[2] - kw) // sw + 1
    rows = p[:, 0:sh * (oh - 1) + 1:sh].copy()
    for i in range(1, kh):
        np.maximum(rows, p[:, i:i + sh * (oh - 1) + 1:sh], out=rows)
    out = rows[:, :, 0:sw * (ow - 1) + 1:sw].copy()
    for j in range(1, kw):
        np.maximum(out, rows[:, :, j:j + sw * (ow - 1) + 1:sw], out=out)
    return out.transpose(0, 3, 1, 2)


def weighted(counts: np.ndarray, per_element: np.ndarray) -> int:
    """The counts summed over the batch ([1, ...]) dotted with a cost per element."""
    return int(np.dot(counts.reshape(-1), per_element.reshape(-1)))


SUMMED_BLOCK = 1 << 22  # entries of masks @ W a block of inputs: bounds the memory


def summed_adds(counts: np.ndarray, nonzero: Callable[[np.ndarray], np.ndarray],
                axes: tuple[int, ...], shape: tuple[int, ...]) -> int:
    """``energy.reduce_sum_adds`` over `axes` of a dense synapse's current [B, *shape],
    for input runs of spikes with counts [B, ..., K] that start at one step: the current
    at the runs' t-th step is (counts > t) @ W, for every step at once (`nonzero`: which
    entries of masks @ W are non-zero); after the longest run it is zero and adds nothing.
    Per step and output element, (non-zero terms - 1) additions: the non-zero terms, less
    the outputs with any. Inputs go in blocks of at most SUMMED_BLOCK entries."""
    steps = int(counts.max(initial=0))
    if steps == 0:
        return 0
    per = max(1, SUMMED_BLOCK // (steps * int(np.prod(shape))))
    adds = 0
    for start in range(0, len(counts), per):
        block = counts[start:start + per]
        rows = block.reshape(-1, block.shape[-1])
        masks = np.empty((steps,) + rows.shape, np.bool_)
        np.greater(rows[None], np.arange(steps, dtype=rows.dtype).reshape(-1, 1, 1), out=masks)
        terms = nonzero(masks.view(np.uint8).reshape(-1, rows.shape[1]))
        terms = terms.reshape((steps, len(block)) + shape)
        adds += int(np.count_nonzero(terms))
        for axis in sorted({a % len(shape) + 2 for a in axes}, reverse=True):
            terms = _any_along(terms, axis)
        adds -= int(np.count_nonzero(terms))
    return adds


def _any_along(mask: np.ndarray, axis: int) -> np.ndarray:
    """mask.any(axis) by halving (numpy's reduction over a short middle axis is slow)."""
    m = _to_front(mask, axis)
    while len(m) > 1:
        half = len(m) // 2
        top = m[:half] | m[half:2 * half]
        if len(m) % 2:
            top[0] |= m[-1]
        m = top
    return m[0]


def dense_sops(counts: np.ndarray, outputs: int, fan_out: np.ndarray) -> tuple[int, int]:
    """``energy.synapse_sops`` of a dense synapse [K, outputs] for input counts [..., K]
    (`fan_out`: each row's non-zero weights): a spike on row k reaches every output,
    fan_out[k] of them through a non-zero weight (counts @ nonzero summed, as one dot)."""
    rows = counts.reshape(-1, counts.shape[-1]).sum(axis=0, dtype=np.int64)
    return int(rows.sum()) * outputs, int(rows @ fan_out)


def td_matmul_sops(a: np.ndarray, b: np.ndarray, lag: int) -> tuple[int, int]:
    """(SOPs, effective SOPs) of a TD-MatMul of runs of spikes with counts a [B, ..., N, d]
    and b [B, ..., d, M], B's runs starting `lag` steps after A's."""
    return td_matmul_figures(a, b, lag)[:2]


def td_matmul_figures(a: np.ndarray, b: np.ndarray, lag: int) -> tuple[int, int, int, int]:
    """`td_matmul_sops`, and the spikes of A and of B (which it sums anyway)."""
    out = tuple(np.broadcast_shapes(a.shape[1:-2], b.shape[1:-2])) + (a.shape[-2], b.shape[-1])
    memo: dict[tuple[int, bool], np.ndarray] = {}

    def along(side: int, nonzero: bool = False) -> np.ndarray:
        """A's column sums (side 0) or B's row sums (side 1), or their non-zero counts:
        [B, ..., d], each worked out once, when first needed."""
        if (side, nonzero) not in memo:
            memo[side, nonzero] = (_along(a, -2, nonzero) if side == 0
                                   else _along(b, -1, nonzero))
        return memo[side, nonzero]

    eff = 0
    late_a = _late(a, max(0, lag), -2, lambda: along(0), lambda: along(0, True))
    if late_a is not None:  # A's spikes once B has started, where B's entry is non-zero
        eff += _dot(late_a, along(1, True))
    late_b = _late(b, max(0, 1 - lag), -1, lambda: along(1), lambda: along(1, True))
    if late_b is not None:  # B's spikes after A's first, where A's entry is non-zero
        eff += _dot(along(0, True), late_b)
    spikes = [int(memo[side, False].sum(dtype=np.int64)) if (side, False) in memo
              else _spikes(c) for side, c in enumerate((a, b))]
    sops = (_broadcast_factor(a.shape[1:], out) * out[-1] * spikes[0]
            + _broadcast_factor(b.shape[1:], out) * out[-2] * spikes[1])
    return sops, eff, spikes[0], spikes[1]


def _spikes(c: np.ndarray) -> int:
    """The sum of counts c [B, ...] (over the batch first: a long, fast sum)."""
    narrow = c.dtype == np.uint8 and len(c) * 255 <= 0xFFFF
    return int(c.sum(axis=0, dtype=np.uint16 if narrow else np.int64).sum(dtype=np.int64))


def _along(c: np.ndarray, axis: int, nonzero: bool = False) -> np.ndarray:
    """The sums (or non-zero counts) of c [..., N, M] along `axis` (-2 or -1). Counts
    whose sums fit a byte (N * the largest <= 255) are added in halves, in uint8, unless
    the axis is the innermost in memory (numpy's own reductions over a short axis are
    two to three times slower); otherwise through einsum, in uint16 where that cannot
    overflow."""
    if nonzero:
        c = (c != 0).view(np.uint8)
    if c.dtype == np.uint8 and c.strides[axis] != 1 and c.shape[axis] > 1 and (
            c.shape[axis] * (1 if nonzero else int(c.max(initial=0))) <= 0xFF):
        return _halving_sum(_to_front(c, axis))
    narrow = c.dtype == np.uint8 and c.shape[axis] * 255 <= 0xFFFF
    return np.einsum("...ij->...j" if axis == -2 else "...ij->...i", c,
                     dtype=np.uint16 if narrow else np.int64)


def _to_front(c: np.ndarray, axis: int) -> np.ndarray:
    """c with `axis` first (np.moveaxis, without its checks: called for every batch)."""
    axis %= c.ndim
    return c.transpose((axis,) + tuple(i for i in range(c.ndim) if i != axis))


def _halving_sum(m: np.ndarray) -> np.ndarray:
    """m summed over its first axis, adding its halves until one is left."""
    while len(m) > 1:
        half = len(m) // 2
        top = m[:half] + m[half:2 * half]
        if len(m) % 2:
            top[0] += m[-1]
        m = top
    return m[0]


def _late(c: np.ndarray, skip: int, axis: int, sums: Callable[[], np.ndarray],
          present: Callable[[], np.ndarray]) -> np.ndarray | None:
    """`_along(c, axis)` of the spikes of c's runs after their first `skip` steps (`sums()`:
    all of them; `present()`: the runs, so skip 1 leaves sums - present); None if no run
    is that long."""
    if skip == 0:
        return sums()
    if skip == 1:
        return sums() - present()
    if c.size == 0 or skip >= int(c.max()):
        return None
    return _along(c - np.minimum(c, skip), axis)


def _dot(cols: np.ndarray, rows: np.ndarray) -> int:
    """The sum of all entries of a (broadcast, batched) matrix product, given the first
    operand's column sums and the second's row sums ([B, ..., d] each)."""
    rank = max(cols.ndim, rows.ndim)
    cols = cols.reshape(cols.shape[:1] + (1,) * (rank - cols.ndim) + cols.shape[1:])
    rows = rows.reshape(rows.shape[:1] + (1,) * (rank - rows.ndim) + rows.shape[1:])
    return int(np.multiply(cols, rows, dtype=np.int64).sum())
