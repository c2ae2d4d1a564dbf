"""The hardware targets' text writers (golden vectors, $readmemh images) at numpy speed
against the plain Python formatting they replace, and the golden run shared between
targets against a fresh step-engine run."""

from __future__ import annotations

import numpy as np
import pytest

import snncc
from conftest import EXAMPLE
from snncc.backends import common
from snncc.backends.common import default_inputs, golden, int_lines, remember, write_int_lines
from snncc.backends.hls.write import c_init
from snncc.backends.sim.engine import run_fast, run_step
from snncc.backends.verilog.design import hex_lines, hex_row, hex_rows, hex_word, hex_words

I64 = np.iinfo(np.int64)


def _c_init(values: np.ndarray, indent: int = 0) -> str:
    """c_init an item at a time: a row of items inline if its text is at most 48
    characters, else wrapped as many a line as fit 96 characters at the widest item."""
    pad = " " * (indent + 4)
    if values.ndim > 1:
        inner = [pad + _c_init(sub, indent + 4) for sub in values]
        return "{\n" + ",\n".join(inner) + "\n" + " " * indent + "}"
    items = [("true" if v else "false") if values.dtype == bool else str(int(v))
             for v in values]
    if len(", ".join(items)) <= 48:
        return "{" + ", ".join(items) + "}"
    per = max(1, (96 - len(pad) + 1) // (max(map(len, items)) + 2))
    lines = [pad + ", ".join(items[k:k + per]) for k in range(0, len(items), per)]
    return "{\n" + ",\n".join(lines) + "\n" + " " * indent + "}"


def _decimal(rows: np.ndarray) -> bytes:
    return "".join(" ".join(str(v) for v in row) + "\n" for row in rows.tolist()).encode()


def test_int_lines_is_decimal_text_of_every_range_and_dtype():
    rng = np.random.default_rng(0)
    cases = [rng.integers(0, 8, (5, 40)).astype(np.uint8),  # spike counts: one digit each
             rng.integers(-128, 128, (3, 17)).astype(np.int8),
             rng.integers(-70000, 70000, (4, 9)),  # wider than the lookup table
             np.array([[I64.min, I64.max, 0, -1, 9, 10, -10, 99, 100]]),
             np.zeros((2, 0), np.int64), np.zeros((0, 3), np.int64)]
    for a in cases:
        assert int_lines([a]) == _decimal(a)
    counts, codes = cases[0], cases[1][:, :5].repeat(2, axis=0)[:5]
    assert int_lines([counts, np.zeros((5, 0)), codes]) == _decimal(
        np.concatenate([counts.astype(np.int64), codes], axis=1))


def test_write_int_lines_writes_int_lines(tmp_path):
    """Line by line, one-digit rows and wider rows mixed (each row takes its own way)."""
    counts = np.random.default_rng(2).integers(0, 10, (4, 30))
    counts[2, 7] = 10
    counts[3, 0] = -1
    codes = np.random.default_rng(3).integers(-50, 50, (4, 1000)).astype(np.int16)
    for blocks in ([counts], [counts, codes], [np.zeros((3, 0))], [np.zeros((0, 2))]):
        write_int_lines(tmp_path / "x.dat", blocks)
        assert (tmp_path / "x.dat").read_bytes() == int_lines(blocks)
    assert int_lines([counts, codes]) == _decimal(np.concatenate([counts, codes], axis=1))


def test_c_init_is_the_item_at_a_time_formatting():
    """Bool, negative and wide values; short (inline) and long (wrapped) rows; 1-D to
    4-D; narrow ranges (a table of texts) and wide ones (digit by digit)."""
    rng = np.random.default_rng(4)
    shapes = [(1,), (9,), (12,), (13,), (17,), (300,), (2, 5), (4, 40), (2, 3, 300),
              (2, 2, 3, 7), (0,), (3, 0), (0, 2)]
    ranges = [(bool, 0, 2), (np.int8, -128, 128), (np.uint8, 0, 256), (np.int64, 0, 10),
              (np.int32, -2**31, 2**31), (np.int64, -3 * 10**8, 3 * 10**8),
              (np.int64, I64.min, I64.max)]
    for shape in shapes:
        for dtype, lo, hi in ranges:
            v = rng.integers(lo, hi, shape, dtype=np.int64).astype(dtype)
            for indent in (0, 4, 13):
                assert c_init(v, indent) == _c_init(v, indent), (shape, dtype, indent)
    wide = np.array([7, -1, 123456, 0, 5] * 9)  # one wide item: fewer items a line
    assert c_init(wide) == _c_init(wide)
    edge = np.full((2, 10), 100)  # 48 characters: inline; 49: wrapped
    edge[1, 0] = 1000
    assert c_init(edge) == _c_init(edge) == (
        "{\n    " + "{" + ", ".join(["100"] * 10) + "},\n    {\n        "
        + ", ".join(["1000"] + ["100"] * 9) + "\n    }\n}")
    assert c_init(np.array([-1, 10**9, I64.min])) == "{-1, 1000000000, -9223372036854775808}"


def test_hex_writers_are_hex_word_of_every_value():
    rng = np.random.default_rng(1)
    for dtype in (np.uint8, np.int8, np.int16, np.int32, np.int64):
        info = np.iinfo(dtype)
        v = rng.integers(max(info.min, -2**40), min(info.max, 2**40), 64,
                         endpoint=True).astype(dtype)
        for bits in (1, 3, 4, 8, 9, 17, 33, 64):
            words = [hex_word(int(x), bits) for x in v]
            assert hex_words(v, bits) == words
            assert hex_lines(v, bits) == "".join(w + "\n" for w in words)
    assert hex_lines(np.zeros(0, np.int64), 8) == ""
    for bits in (1, 5, 8, 13, 32, 64):
        for lanes in (1, 3, 8):
            rows = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), (lanes, 6)).T  # a view
            assert hex_rows(rows, bits) == [hex_row(r, bits) for r in rows]


@pytest.mark.parametrize("delay", ["exact", 2])
def test_a_golden_run_extends_the_rows_it_was_given(monkeypatch, delay):
    """HLS's 20 golden inputs after Verilog's traced run on the first 5: those 5 are
    reused, the other 15 run (exact mode: on the fast engine; other delays: on the step
    engine), and the whole equals one fresh step-engine run."""
    graph = snncc.compile(EXAMPLE / "digits_vit_qcdq.onnx", T=7, delay=delay).graph
    x = default_inputs(graph, 7)
    remember(graph, x[:3], run_step(graph, x[:3], trace=True))
    ran: dict[str, int] = {"fast": 0, "step": 0}

    def counted(name, run):
        return lambda g, xs: ran.__setitem__(name, ran[name] + len(xs)) or run(g, xs)
    monkeypatch.setattr(common, "run_step", counted("step", run_step))
    monkeypatch.setattr(common, "run_fast", counted("fast", run_fast))
    engine = "fast" if delay == "exact" else "step"
    got = golden(graph, x)
    assert ran == {"fast": 0, "step": 0, engine: 4}
    fresh = run_step(graph, x)
    assert np.array_equal(got.logits, fresh.logits_int)
    assert all(np.array_equal(got.counts[k], fresh.counts[k]) for k in fresh.counts)
    ran.update(fast=0, step=0)
    other = golden(graph, x[::-1].copy())  # other inputs: nothing reused
    assert ran[engine] == 7 and np.array_equal(other.logits, fresh.logits_int[::-1])


def test_a_traced_run_leaves_numpys_page_setting_as_it_was():
    """The traced step engine builds its trains on small pages and restores numpy's
    huge-page setting afterwards (a process-wide switch the caller owns)."""
    switch = np._core.multiarray._set_madvise_hugepage
    graph = snncc.compile(EXAMPLE / "digits_vit_qcdq.onnx", T=7).graph
    x = default_inputs(graph, 2)
    before = switch(True)
    try:
        for setting in (True, False):
            switch(setting)
            traced = run_step(graph, x, trace=True)
            assert switch(setting) is setting
            plain = run_step(graph, x)
            assert all(np.array_equal(traced.trains[k].sum(axis=0), plain.counts[k])
                       for k in plain.counts if traced.trains[k].dtype == np.uint8)
    finally:
        switch(before)
