"""What the hardware backends share: golden vectors from the interpreter, test inputs."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from snncc import ops as o
from snncc.backends.sim import plan
from snncc.backends.sim.engine import SimResult, run_fast, run_step
from snncc.ir import Graph
from snncc.reference import EVAL


@dataclass
class Golden:
    """Per input: the input codes, every neuron's spike count, the integer logits."""

    codes: np.ndarray  # [n, *input shape] int64 (what the hardware is fed)
    counts: dict[str, np.ndarray]  # neuron name -> [n, *shape] int64
    logits: np.ndarray  # [n, *out shape] int64 (readout integers, bias included)


def default_inputs(graph: Graph, n: int = 20, seed: int = 0) -> np.ndarray:
    """`n` deterministic float inputs spread over the input quantizer's range."""
    (enc,) = graph.ops(o.SpikeInput)
    op = enc.op_as(o.SpikeInput)
    rng = np.random.default_rng(seed)
    codes = rng.integers(op.lo, op.hi + 1, (n,) + enc.shape)
    return ((codes - op.zero_point) * op.scale).astype(np.float64)


GOLDEN_BATCH = 4  # inputs per step-engine run: bounds its memory on large models
_LAST: weakref.WeakKeyDictionary[Graph, tuple[object, np.ndarray, SimResult]] = (
    weakref.WeakKeyDictionary())  # graph -> (its plan, inputs, the step engine's result)


def golden(graph: Graph, x: np.ndarray) -> Golden:
    """The interpreter on `x`: the reference every backend must equal. In exact mode the
    fast engine gives the counts and logits (equal to the step engine's, which
    ``snncc verify`` and the engine tests hold); other delay policies take the step engine.

    Inputs are independent of each other: the rows of the last run on this graph
    (``remember``) are reused for the inputs `x` begins with (the targets' default
    inputs share one seed, so one target's run gives the first rows of the next's)."""
    return golden_of(graph, x, _step_rows(graph, x))


def golden_of(graph: Graph, x: np.ndarray, result: SimResult) -> Golden:
    """The golden vectors of a step-engine run `result` on `x` (one the caller already
    has, e.g. with the trains that the cycle estimate needs)."""
    (enc,) = graph.ops(o.SpikeInput)
    codes = EVAL[o.SpikeInput](enc, [np.asarray(x, np.float64)])
    return Golden(codes, result.counts, result.logits_int)


def remember(graph: Graph, x: np.ndarray, result: SimResult) -> None:
    """Keep the step engine's `result` on `x` for the next ``golden`` on this graph
    (its counts and logits; not its trains)."""
    _LAST[graph] = (plan.build(graph), np.array(x), SimResult(
        result.logits, result.logits_int, dict(result.counts), result.steps))


def _step_rows(graph: Graph, x: np.ndarray) -> SimResult:
    p, last = plan.build(graph), _LAST.get(graph)  # a changed graph has a new plan
    parts: list[SimResult] = []
    if last is not None and last[0] is p:
        known = min(len(x), len(last[1]))
        if known and np.array_equal(last[1][:known], x[:known]):  # else nothing is reused
            parts.append(_rows_of(last[2], known))
    known = len(parts[0].logits) if parts else 0
    if known < len(x) and graph.meta.get("delay", "exact") == "exact":
        parts.append(run_fast(graph, x[known:]))
    else:
        parts += [run_step(graph, x[s:s + GOLDEN_BATCH])
                  for s in range(known, len(x), GOLDEN_BATCH)]
    if len(parts) == 1:
        result = parts[0]
    else:
        logits, logits_int = (np.concatenate([getattr(r, f) for r in parts])
                              for f in ("logits", "logits_int"))
        result = SimResult(logits, logits_int, {k: np.concatenate([r.counts[k] for r in parts])
                                                for k in parts[0].counts}, parts[0].steps)
    if known < len(x):
        remember(graph, x, result)
    return result


def _rows_of(r: SimResult, n: int) -> SimResult:
    """The first n inputs' rows of a run (counts and logits)."""
    return SimResult(r.logits[:n], r.logits_int[:n], {k: v[:n] for k, v in r.counts.items()},
                     r.steps)


def int_lines(blocks: list[np.ndarray]) -> bytes:
    """Integer arrays [n, m_i] side by side as text: one line per row (of all the blocks'
    columns in turn), its integers in decimal separated by single spaces; an empty line
    for a row of nothing."""
    return b"".join(bytes(line) for line in _int_rows(blocks))


def write_int_lines(path: Path, blocks: list[np.ndarray]) -> None:
    """`int_lines` of the blocks written to `path` a line at a time (no whole-file copy)."""
    with open(path, "wb") as f:
        for line in _int_rows(blocks):
            f.write(line)


def _int_rows(blocks: list[np.ndarray]) -> Iterator[bytes | memoryview]:
    """The lines of `int_lines`, formatted at numpy speed without widening the arrays:
    a row of one-digit values (spike counts) straight into a byte array (one buffer,
    refilled for the next row: use each line before asking for the next); others through
    `decimal_cells`."""
    n = len(blocks[0]) if blocks else 0
    if n == 0:
        return
    blocks = [np.asarray(b).reshape(n, -1) for b in blocks]
    blocks = [b for b in blocks if b.shape[1]]
    m = sum(b.shape[1] for b in blocks)
    if m == 0:
        yield b"\n" * n
        return
    digits = np.full(2 * m, ord(" "), np.uint8)
    digits[-1] = ord("\n")
    for r in range(n):
        if not all(_one_digit(b[r]) for b in blocks):
            yield _decimal_line(np.concatenate([b[r] for b in blocks]).astype(np.int64))
            continue
        at = 0
        for b in blocks:
            np.add(b[r], ord("0"), out=digits[2 * at:2 * (at + b.shape[1]):2],
                   casting="unsafe")
            at += b.shape[1]
        yield digits.data


def _one_digit(v: np.ndarray) -> bool:
    """Whether every value of v is 0..9 (integers: one pass, negatives read as huge)."""
    if v.dtype.kind in "iu":
        return int(v.view(np.dtype(f"u{v.dtype.itemsize}")).max()) <= 9
    return int(v.min()) >= 0 and int(v.max()) <= 9


def decimal_cells(v: np.ndarray, tail: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The decimal text of every integer of v (int64), at numpy speed: (cells
    [*v.shape, width + tail] uint8, each text at the right of its first `width` bytes
    after NULs, then `tail` bytes for the caller to fill; the texts' lengths [*v.shape]).
    Values of a narrow range are looked up in a table of them."""
    lo, hi = int(v.min(initial=0)), int(v.max(initial=0))
    if hi - lo < min(4096, v.size // 4):
        cells, lengths = _decimal_digits(np.arange(lo, hi + 1), tail)
        return cells[v - lo], lengths[v - lo]
    return _decimal_digits(v, tail)


def _decimal_digits(v: np.ndarray, tail: int) -> tuple[np.ndarray, np.ndarray]:
    """`decimal_cells`, a digit at a time from the right: past a value's last digit, its
    sign (if negative), then NULs."""
    lo, hi = int(v.min(initial=0)), int(v.max(initial=0))
    top, neg = max(hi, -lo), v < 0
    if top < 1 << 32:  # a narrow type divides faster
        q = np.abs(v).astype(np.uint32)
    else:
        q = np.where(neg, (~v).astype(np.uint64) + np.uint64(1), v.astype(np.uint64))
    ten, places = q.dtype.type(10), len(str(top))
    width = places + (lo < 0)
    cells = np.empty(v.shape + (width + tail,), np.uint8)
    sign = neg.astype(np.uint8) * np.uint8(ord("-"))
    lengths = neg.astype(np.int64) + 1
    for k in range(places):
        rest = q // ten
        char = (q - rest * ten).astype(np.uint8) + np.uint8(ord("0"))
        if k:
            live = q != 0
            lengths += live
            char = np.where(live, char, sign)
            sign = np.where(live, sign, np.uint8(0))
        cells[..., width - 1 - k] = char
        q = rest
    if width > places:
        cells[..., 0] = sign
    return cells, lengths


def _decimal_line(v: np.ndarray) -> bytes:
    """One line of `int_lines`: the integers of v, separated by spaces."""
    cells, _ = decimal_cells(v, 1)
    cells[:, -1] = ord(" ")
    cells[-1, -1] = ord("\n")
    return cells[cells != 0].tobytes()
