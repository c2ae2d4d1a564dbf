"""HLS pragma choices, from the layer sizes (the templates only print them).

Each kernel has one vector loop (a weight row, a row of counts, a run of neurons) that is
pipelined at II=1 and unrolled by a number of parallel lanes; the arrays that loop walks
are banked to match, so that the lanes do not wait on memory ports.
"""

from __future__ import annotations

MAX_LANES = 16  # parallel adders (or comparators) per layer
MAX_BANKS = 64  # the most banks one array is split into
MAX_LEVEL_BANKS = 16  # threshold tables with at most this many levels become registers


def lanes(n: int, most: int = MAX_LANES) -> int:
    """Lanes for a vector loop of `n` iterations: its largest divisor up to `most`
    (MAX_LANES, or a synapse's parallelism knob, `snncc.backends.parallel`)."""
    return max(d for d in range(1, min(n, most) + 1) if n % d == 0)


def cyclic(factor: int, dim: int | None = None) -> str:
    """Bank an array so that `factor` consecutive elements sit in different banks."""
    if factor <= 1:
        return ""
    return f"cyclic factor={factor}" + (f" dim={dim}" if dim else "")


def channel_banks(channels: int) -> str:
    """Bank a [channels][plane] array by channel (a conv writes one pixel of every
    channel at once: elements a plane apart)."""
    if channels <= 1 or channels > MAX_BANKS:
        return ""
    return f"block factor={channels}"


def level_banks(levels: int) -> str:
    """Threshold table [MID][LEVELS]: each lane reads the level its own count selects."""
    return "complete dim=2" if 1 < levels <= MAX_LEVEL_BANKS else ""


def table_rows(size: int, mid: int, inner: int, lanes: int) -> int:
    """The most rows of a neuron layer's [MID] tables that one cycle's `lanes` neurons
    (consecutive in C order of the `size` neurons, [OUTER][MID][INNER]) read."""
    if mid == 1 or inner % lanes == 0:
        return 1
    return max(len({(i // inner) % mid for i in range(c, c + lanes)})
               for c in range(0, size, lanes))


def table_banks(mid: int, rows: int, levels: str = "") -> str:
    """Bank a neuron layer's [MID](, [LEVELS]) table so that `rows` rows are read at once
    (the clause `levels` banks the levels; it gives way to banking rows): all rows when
    there are few, else cyclically."""
    if rows <= 1:
        return levels
    if mid <= MAX_BANKS:
        return "complete" if levels else "complete dim=1"
    return f"cyclic factor={rows} dim=1"
