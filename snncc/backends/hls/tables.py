"""Index tables the kernels read instead of computing addresses (Python resolves strides,
pads, dilations, permutations and broadcasting; the hardware only looks them up).

Every table is a small integer array; -1 marks "no such position" (padding, or an input
row that no kernel row maps onto an output row).
"""

from __future__ import annotations

import numpy as np

from snncc.kernels import window_taps


def conv_row_targets(size: int, out: int, k: int, stride: int, pad: int, dil: int,
                     step: int) -> np.ndarray:
    """[size, k]: for input position i and kernel tap j, ``o*step`` of the output position o
    with ``o*stride - pad + j*dil == i`` (the scatter form of a convolution), else -1."""
    table = np.full((size, k), -1, np.int64)
    for i in range(size):
        for j in range(k):
            num = i + pad - j * dil
            if num >= 0 and num % stride == 0 and num // stride < out:
                table[i, j] = num // stride * step
    return table


def pool_row_sources(out: int, size: int, k: int, stride: int, pad: int,
                     step: int) -> np.ndarray:
    """[out, k]: for output position o and window tap j, ``i*step`` of the input position
    ``i = o*stride - pad + j`` (the gather form of a pooling window), else -1 (padding)."""
    i = window_taps(out, size, k, stride, pad)
    return np.where(i >= 0, i * step, -1)


def gather_index(in_shape: tuple[int, ...], view) -> np.ndarray:
    """Flat source index of every output element, for a layout op given as a function
    from an index array of `in_shape` to the output arrangement of those indices."""
    return np.ascontiguousarray(view(np.arange(int(np.prod(in_shape))).reshape(in_shape))
                                ).ravel()


def batch_offsets(batch: tuple[int, ...], out_batch: tuple[int, ...], matrix: int
                  ) -> np.ndarray:
    """Flat offset of the matrix each output batch element reads (numpy broadcasting)."""
    index = np.arange(int(np.prod(batch))).reshape(batch)
    return np.broadcast_to(index, out_batch).ravel() * matrix


def contiguous_runs(axes: list[int]) -> list[tuple[int, int]]:
    """Maximal runs of consecutive axes, as (first, last), last run first."""
    runs: list[tuple[int, int]] = []
    for a in sorted(axes):
        if runs and runs[-1][1] == a - 1:
            runs[-1] = (runs[-1][0], a)
        else:
            runs.append((a, a))
    return runs[::-1]


def split_view(shape: tuple[int, ...], first: int, last: int) -> tuple[int, int, int]:
    """(outer, mid, inner) element counts of `shape` around the axes first..last."""
    size = int(np.prod(shape[first:last + 1], dtype=np.int64))
    outer = int(np.prod(shape[:first], dtype=np.int64))
    inner = int(np.prod(shape[last + 1:], dtype=np.int64))
    return outer, size, inner
