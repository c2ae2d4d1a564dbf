"""Engines that take several rows or events a cycle (issue 13's cycle targets): each one
bit-exact against the interpreter in Icarus at the knob settings that pick it and those
that fold it, and the cycle estimate equal to the RTL's count for every input."""

from __future__ import annotations

import importlib
import re
import subprocess
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
from test_verilog import (
    _assert_bit_exact,
    _neuron,
    _readout,
    _serial_cycles,
    _spiking,
    _weights,
)

import snncc
from conftest import require_tool
from snncc import ops as o
from snncc.backends import parallel as parallel_knob
from snncc.backends import verilog
from snncc.backends.common import default_inputs, golden
from snncc.backends.verilog import design as verilog_design
from snncc.backends.verilog import estimate
from snncc.errors import SnnccError
from snncc.intmath import Rounding
from snncc.ir import Graph

VECTORS = 3
verilog_lower = importlib.import_module("snncc.backends.verilog.lower")


def _td_rows_graph(seed: int = 3) -> Graph:
    """Two TD-MatMuls of unit spikes: A through a transpose (a request every K cycles)
    and B through a reshape whose rows are two buffer rows (read as it is, a request
    every 2 cycles); then two heads whose B is the transpose of a head split (read as
    B^T, one segment). The operands' firing windows overlap in part: runs see a silent
    B with C_B = 0, a silent A with C_A != 0, and both at once."""
    rng = np.random.default_rng(seed)
    g = Graph("td_rows")
    _spiking(g, (8, 3), hi=7)
    g.add("c1", o.Synapse(_weights(rng, 3, 3)), ["codes"])
    g.add("n1", _neuron(rng, (8, 3), t_fire=6, axis=1), ["c1"])
    g.add("b1", o.Reshape((4, 6)), ["n1"])                       # [K=4, M=6]
    g.add("top", o.Take(np.arange(4), 0), ["codes"])
    g.add("c2", o.Synapse(_weights(rng, 3, 5)), ["top"])
    g.add("n2", _neuron(rng, (4, 5), t_fire=3, axis=1), ["c2"])
    g.add("a1", o.Transpose((1, 0)), ["n2"])                     # [N=5, K=4]
    g.add("s1", o.TDMatMul(), ["a1", "b1"])                      # [5, 6]
    # residual adds: a through a gather of rows (a map), then b, then one buffer twice
    g.add("cs", o.Synapse(_weights(rng, 3, 6)), ["codes"])
    g.add("pick", o.Take(np.array([0, 2, 4, 6, 7]), 0), ["cs"])   # [5, 6]
    g.add("add1", o.AddCurrent(), ["pick", "s1"])
    g.add("add2", o.AddCurrent(), ["add1", "pick"])
    g.add("add3", o.AddCurrent(), ["add2", "add2"])
    g.add("n3", _neuron(rng, (5, 6), levels=3, t_fire=13), ["add3"])
    g.add("r3", o.Reshape((5, 2, 3)), ["n3"])
    g.add("a2", o.Transpose((1, 0, 2)), ["r3"])                  # [2, 5, 3] heads
    g.add("n5", _neuron(rng, (8, 3), t_fire=14), ["c1"])
    g.add("r1", o.Reshape((2, 4, 3)), ["n5"])
    g.add("b2", o.Transpose((0, 2, 1)), ["r1"])                  # [2, 3, 4]
    g.add("s2", o.TDMatMul(), ["a2", "b2"])                      # [2, 5, 4]
    g.add("n4", _neuron(rng, (2, 5, 4), levels=3, t_fire=21), ["s2"])
    g.add("flat", o.Reshape((40,)), ["n4"])
    g.add("fc", o.Synapse(_weights(rng, 40, 4)), ["flat"])
    # neurons streaming their input through maps: a transpose (4 segments a row) and a
    # gather of rows (one segment)
    g.add("c2t", o.Transpose((1, 0)), ["c2"])
    g.add("n6", _neuron(rng, (5, 4), t_fire=5), ["c2t"])
    g.add("c1r", o.Take(np.array([1, 3, 5]), 0), ["c1"])
    g.add("n7", _neuron(rng, (3, 3), t_fire=7), ["c1r"])
    g.add("f6", o.Reshape((20,)), ["n6"])
    g.add("f7", o.Reshape((9,)), ["n7"])
    g.add("fc6", o.Synapse(_weights(rng, 20, 4)), ["f6"])
    g.add("fc7", o.Synapse(_weights(rng, 9, 4)), ["f7"])
    g.add("sum1", o.AddCurrent(), ["fc", "fc6"])
    g.add("sum2", o.AddCurrent(), ["sum1", "fc7"])
    return _readout(g, "sum2")


def _assert_lint_clean(design) -> None:
    """`make lint` (verilator --lint-only -Wall) on the design: no warning."""
    require_tool("verilator")
    lint = subprocess.run(["make", "--no-print-directory", "lint"], cwd=design,
                          capture_output=True, text=True)
    assert lint.returncode == 0 and "%Warning" not in lint.stdout + lint.stderr, (
        lint.stdout + lint.stderr)


def _engines(summary: dict, module: str) -> list[dict]:
    return [e["params"] for e in summary["layers"] if e["module"] == module]


@pytest.mark.parametrize("parallel,pipeline",
                         [(None, False), (2, False), (1, False), (None, True)],
                         ids=["default", "P2", "P1", "pipeline"])
def test_td_matmul_rows_icarus(tmp_path, parallel, pipeline):
    """snn_td_matmul_rows (by default: every k of an output row at once; B read as it is
    or as B^T; ports with several segments; silent A and silent B runs) and the event
    engine it folds back to (--parallel 2 < K), bit-exact; neuron rows streamed through
    identity ports and maps; residual adds streamed (a map on either side, one buffer on
    both) and, folded, adds of chunked linear outputs a word a cycle; the estimate is the
    RTL's count for every input; lint-clean."""
    require_tool("iverilog")
    graph = _td_rows_graph()
    gold = golden(graph, default_inputs(graph, VECTORS))
    assert all(c.sum() > 0 for c in gold.counts.values()), "every layer should spike"
    hw = parallel_knob.config(graph, parallel, pipeline=pipeline)
    summary = verilog.emit(graph, tmp_path / "v", vectors=VECTORS, hw=hw)
    rows = _engines(summary, "snn_td_matmul_rows")
    if parallel is None:
        assert [(p["BT"], p["AG"], p["BG"], p["NB"]) for p in rows] == [
            (0, 4, 2, 1), (1, 1, 1, 2)]
    else:
        assert rows == [] and len(_engines(summary, "snn_td_matmul")) == 2
    if parallel is None:  # whole neuron rows streamed through identity ports and maps
        timing = {(p.get("IG", 1), p.get("ILAT", 1)) for p in _engines(summary, "snn_neuron")}
        assert timing == {(1, 1), (4, 6), (1, 3)}
    slots = [(p.get("P", 1), p.get("DAB", 0)) for p in _engines(summary, "snn_add")]
    # a map first: b two cycles later; a map second: a slot every 3 cycles; one buffer
    # read twice: a slot every 2 cycles (pipelined: a copy each). Folded (--parallel 2),
    # the adds read the linear layers' chunked outputs (two words a row) and take other
    # slots: the simulation below holds them
    share = (1, 0) if pipeline else (2, 1)
    if parallel is None:
        assert sorted(slots) == sorted([(1, 0), (1, 0), (1, 2), (3, 0), share])
    else:  # the two adds of chunked linear outputs sum a word (`parallel` lanes) a
        # cycle, a row of 4 lanes as 4 / parallel words, and write the same chunks
        assert [(p["R"], p["D"]) for p in _engines(summary, "snn_add")][-2:] == [
            (4 // parallel, parallel)] * 2
    result = verilog.run_simulation(tmp_path / "v", "icarus")
    _assert_bit_exact(result, VECTORS, graph)
    assert summary["estimate"]["cycles_per_inference"]["per_input"] == result["cycles"]
    if pipeline:
        assert summary["estimate"]["stream_cycles"] == result["stream"]["cycles"]
    _assert_lint_clean(tmp_path / "v")


def test_td_matmul_engine_from_config(tmp_path):
    """A TD-MatMul's entry in the hardware config picks its engine: 1 the event engine, K
    the row engine (here against the global value, which picks the other one for each);
    bit-exact in Icarus, the estimate the RTL's count; a value between is refused with
    the legal ones."""
    require_tool("iverilog")
    graph = _td_rows_graph()
    sums = parallel_knob.td_sums(graph)
    assert sums == {"s1": (4, True), "s2": (3, True)}
    # --parallel 3: s2 (K = 3) would take the row engine, s1 (K = 4) the event engine
    hw = parallel_knob.config(graph, 3, {"layers": {"s1": 4, "s2": 1}})
    assert hw.record(graph)["s1"] == 4 and hw.record(graph)["s2"] == 1
    summary = verilog.emit(graph, tmp_path / "v", vectors=VECTORS, hw=hw)
    engines = {e["node"]: (e["module"], e["lanes"]) for e in summary["layers"]
               if e["module"].startswith("snn_td_matmul")}
    assert engines == {"s1": ("snn_td_matmul_rows", 4), "s2": ("snn_td_matmul", 1)}
    assert summary["parallel"] == hw.record(graph)
    result = verilog.run_simulation(tmp_path / "v", "icarus")
    _assert_bit_exact(result, VECTORS, graph)
    assert summary["estimate"]["cycles_per_inference"]["per_input"] == result["cycles"]
    with pytest.raises(SnnccError) as bad:
        parallel_knob.config(graph, None, {"layers": {"s1": 2}}, "hw.json")
    assert str(bad.value) == ("hw.json: node 's1': 2 terms per cycle is not a legal value "
                              "for this layer. Fix: use one of 1, 4 (1: one event a cycle; "
                              "4: all 4 terms of an output row)")


def _heads_graph(seed: int = 6) -> Graph:
    """Two heads side by side in every buffer row (q, k, v [N=6, 2 * 4], split by a
    reshape and a transpose, as in a transformer): q.k^T reads every head's row of k^T
    at once (B^T, one identity row a token) and attn.v every head's row of v (one
    identity row a token). k fires before q and stops before it: runs with a silent B
    whose C_B is not zero, and a silent A; v fires after attn starts and until after it
    stops: a silent A whose C_A is not zero. q.q^T reads one buffer as A and B."""
    rng = np.random.default_rng(seed)
    g = Graph("heads")
    _spiking(g, (6, 5), hi=7)
    for name, t_fire in (("q", 5), ("k", 2), ("v", 15)):
        g.add(f"{name}c", o.Synapse(_weights(rng, 5, 8)), ["codes"])
        g.add(name, _neuron(rng, (6, 8), t_fire=t_fire, axis=1), [f"{name}c"])
        g.add(f"{name}r", o.Reshape((6, 2, 4)), [name])
    g.add("qh", o.Transpose((1, 0, 2)), ["qr"])                  # [2, 6, 4]
    g.add("kt", o.Transpose((1, 2, 0)), ["kr"])                  # [2, 4, 6]
    g.add("vh", o.Transpose((1, 0, 2)), ["vr"])                  # [2, 6, 4]
    g.add("s1", o.TDMatMul(), ["qh", "kt"])                      # [2, 6, 6]
    g.add("attn", _neuron(rng, (2, 6, 6), levels=3, t_fire=13), ["s1"])
    g.add("s2", o.TDMatMul(), ["attn", "vh"])                    # [2, 6, 4]
    g.add("out", _neuron(rng, (2, 6, 4), levels=3, t_fire=22), ["s2"])
    g.add("flat", o.Reshape((48,)), ["out"])
    g.add("fc", o.Synapse(_weights(rng, 48, 4)), ["flat"])
    # q.q^T: A and B one buffer (A asked for once B's reads are over)
    g.add("qt", o.Transpose((1, 2, 0)), ["qr"])                  # [2, 4, 6]
    g.add("s3", o.TDMatMul(), ["qh", "qt"])                      # [2, 6, 6]
    g.add("self", _neuron(rng, (2, 6, 6), levels=3, t_fire=13), ["s3"])
    g.add("flat3", o.Reshape((72,)), ["self"])
    g.add("fc3", o.Synapse(_weights(rng, 72, 4)), ["flat3"])
    g.add("sum", o.AddCurrent(), ["fc", "fc3"])
    return _readout(g, "sum")


@pytest.mark.parametrize("pipeline", [False, True], ids=["default", "pipeline"])
def test_td_matmul_rows_heads_icarus(tmp_path, pipeline):
    """snn_td_matmul_rows with the heads' rows side by side: B read every head's row at
    once (BH = NB), C_B and S_B of both heads kept between runs (a silent B: no B
    phase, its C_B still counted), bit-exact in Icarus (and Verilator, one at a time),
    the estimate the RTL's count for every input, lint-clean."""
    require_tool("iverilog")
    graph = _heads_graph()
    x = default_inputs(graph, VECTORS)
    trace = estimate._Trace(graph, x, None)
    steps = len(trace.trains["out"])

    def live(f, v: str) -> np.ndarray:  # [steps, inputs]: any element nonzero
        return np.array([f(v, t).reshape(VECTORS, -1).any(axis=1) for t in range(steps)])

    # q.k^T: runs with a silent B (k) whose C_B is not zero; attn.v: runs with a
    # silent A (attn) whose C_A is not zero
    assert (live(trace.spikes, "qh") & ~live(trace.spikes, "kt")
            & live(trace.before, "kt")).any()
    assert (~live(trace.spikes, "attn") & live(trace.spikes, "vh")
            & live(trace.before, "attn")).any()
    hw = parallel_knob.config(graph, None, pipeline=pipeline)
    summary = verilog.emit(graph, tmp_path / "v", vectors=VECTORS, hw=hw)
    rows = _engines(summary, "snn_td_matmul_rows")
    # B's last row in 6 cycles after the start (6 rows a cycle apart, identity: a
    # cycle's latency); A's first asked for so that it arrives then: 2 cycles later
    # through a map (q, 3 cycles' latency), 4 through the identity (attn); q.q^T once
    # B's reads are over (6)
    assert [(p["NB"], p["BH"], p["BT"], p["BR"], p["BG"], p["WAV"], p["WAS"])
            for p in rows] == [(2, 2, 1, 6, 1, 2, 6), (2, 2, 0, 6, 1, 4, 6),
                               (2, 2, 1, 6, 1, 6, 6)]
    result = verilog.run_simulation(tmp_path / "v", "icarus")
    _assert_bit_exact(result, VECTORS, graph)
    assert summary["estimate"]["cycles_per_inference"]["per_input"] == result["cycles"]
    if pipeline:
        assert summary["estimate"]["stream_cycles"] == result["stream"]["cycles"]
    else:
        require_tool("verilator")
        fast = verilog.run_simulation(tmp_path / "v", "verilator")
        _assert_bit_exact(fast, VECTORS, graph)
        assert fast["cycles"] == result["cycles"]
    _assert_lint_clean(tmp_path / "v")


def test_td_matmul_rows_stream_both_producers_icarus(tmp_path, monkeypatch):
    """One at a time, a TD-MatMul row engine streams the rows of B's producer (`SB`, a
    second stream: a B row asked for once written, the A phase no earlier than B's
    last request allows) and of A's through a head split (`AQ`: q of q.k^T, whose
    heads read the buffer's rows again), so q.k^T starts with q and k, attn.v with
    attn and v (q.q^T, A and B one buffer, streams neither). Bit-exact in Icarus, the
    estimate equal to the RTL's count on every input, and that count below the one of
    the design that streams A's rows alone, as they are (also bit-exact and equal to
    its estimate)."""
    require_tool("iverilog")
    graph = _heads_graph()
    design = verilog.lower(graph)
    rows = [e for e in design.engines if e.module == "snn_td_matmul_rows"]
    assert [(dict(e.params)["AQ"], dict(e.params)["SB"]) for e in rows] == [
        (6, 1), (12, 1), (12, 0)]
    waits = design.waits()
    producers = {e.node.name: e.index for e in design.engines}
    for e, names in zip(rows[:2], (("q", "k"), ("attn", "v")), strict=True):
        for name in names:
            assert waits[e.index][1] >> producers[name] & 1, (e.name, name)
            assert not waits[e.index][0] >> producers[name] & 1, (e.name, name)
    td_avail = verilog_lower._td_avail

    def every(n: int) -> str:
        return f"{verilog_design.addr_bits(n) + 1}'d{n}"

    cycles = {}
    for name in ("both", "one"):
        if name == "one":  # A's rows streamed only as they are, B's not at all
            monkeypatch.setattr(verilog_lower, "_td_b_avail",
                                lambda bld, ba, bb, n, bg, a: every(n))
            monkeypatch.setattr(verilog_lower, "_td_avail", lambda bld, ba, bb, n, view: (
                td_avail(bld, ba, bb, n, view) if ba.rows == n else every(n)))
        summary = verilog.emit(graph, tmp_path / name, vectors=VECTORS)
        result = verilog.run_simulation(tmp_path / name, "icarus")
        _assert_bit_exact(result, VECTORS, graph)
        assert summary["estimate"]["cycles_per_inference"]["per_input"] == result["cycles"]
        cycles[name] = np.asarray(result["cycles"])
    assert all(cycles["both"] < cycles["one"]), cycles
    _assert_lint_clean(tmp_path / "both")


def _pool_graph(seed: int = 4, mode: str = "if") -> Graph:
    """TD max pools streaming their input rows: through a map (a [4, 16] neuron layer
    read as [C=4, H=4, W=4] channels-last: 4 segments a row) and as it is (a strided
    window; a padded, strided, overlapping one, whose outputs a convolution streams; a
    padded one after that convolution's neuron layer); the neurons' `mode` makes their
    spikes."""
    rng = np.random.default_rng(seed)
    g = Graph("pools")
    _spiking(g, (4, 6), hi=7)
    g.add("c", o.Synapse(_weights(rng, 6, 16)), ["codes"])
    g.add("n", replace(_neuron(rng, (4, 16), t_fire=4, axis=1), mode=mode), ["c"])
    g.add("cube", o.Reshape((4, 4, 4)), ["n"])
    g.add("p1", o.TDMaxPool((2, 2), (1, 1), (0, 0, 1, 1)), ["cube"])   # [4, 4, 4]
    g.add("p2", o.TDMaxPool((2, 2), (2, 2)), ["p1"])                   # [4, 2, 2]
    g.add("p3", o.TDMaxPool((3, 3), (2, 2), (1, 1, 1, 1)), ["p1"])     # [4, 2, 2]
    g.add("c3", o.Synapse(_weights(rng, 3, 4, 3, 3), kind="conv", pads=(1, 1, 1, 1)),
          ["p3"])                                                       # [3, 2, 2]
    g.add("n3", replace(_neuron(rng, (3, 2, 2), t_fire=6, axis=0), mode=mode), ["c3"])
    g.add("p4", o.TDMaxPool((2, 2), (1, 1), (0, 0, 1, 0)), ["n3"])     # [3, 2, 1]
    g.add("flat", o.Reshape((16,)), ["p2"])
    g.add("fc", o.Synapse(_weights(rng, 16, 3)), ["flat"])
    g.add("flat3", o.Reshape((6,)), ["p4"])
    g.add("fc3", o.Synapse(_weights(rng, 6, 3)), ["flat3"])
    g.add("sum", o.AddCurrent(), ["fc", "fc3"])
    return _readout(g, "sum")


def _pool_writes(graph: Graph, x: np.ndarray, pools: tuple[str, ...]
                 ) -> list[tuple[np.ndarray, np.ndarray]]:
    """One at a time, per run of TD max pool `pools` streaming its producer's rows (the
    estimate's model of it, which the RTL's cycle count checks): the cycles it writes
    its outputs and the cycles its producer writes its rows."""
    design = verilog.lower(graph)
    model = estimate._Cycles(design, estimate._Trace(graph, x))
    runs = model.runs()
    found = []
    orig = estimate._Step

    class Step(orig):
        def __init__(self, t):
            super().__init__(t)
            steps.append(self)

    steps: list = []
    estimate._Step = Step
    try:
        model._one_at_a_time(runs)
    finally:
        estimate._Step = orig
    for s in design.streams:
        if design.engines[s.engine].node.name in pools:
            found += [(st.writes[s.engine], st.writes[s.producer]) for st in steps
                      if s.engine in st.writes and s.producer in st.writes]
    return found


@pytest.mark.parametrize("neuron", ["if", "signed"])
def test_td_maxpool_streamed_icarus(tmp_path, monkeypatch, neuron):
    """The count phase of TD max pools streamed through a map and an identity port, and
    the pooling beside it (an output pooled once the rows under its window are counted)
    an output a cycle (WIN: every tap of the window read at once, a copy of the count
    RAM per tap; the default) or a tap a cycle (forced here): both bit-exact (unit and
    signed spikes, padded, strided and overlapping windows), the estimate the RTL's
    count for every input, the window a cycle faster; a streamed pool writes its first
    outputs before its producer writes its last rows, and a convolution of its unit
    spikes streams them; a pool streaming the neuron layer of an event engine (whose
    rows' times the estimate does not know) pools after its counting (IL = 0)."""
    require_tool("iverilog")
    graph = _pool_graph(mode=neuron)
    cycles = {}
    for window in (True, False):
        if not window:
            monkeypatch.setattr(parallel_knob.HwConfig, "pool_taps", lambda *_: 1)
        design = tmp_path / f"v{int(window)}"
        summary = verilog.emit(graph, design, vectors=VECTORS)
        pools = _engines(summary, "snn_td_maxpool")
        assert [(p.get("IG", 1), p.get("ILAT", 1)) for p in pools] == [(4, 6)] + [(1, 1)] * 3
        assert [p.get("WIN", 0) for p in pools] == [int(window)] * 4
        # the last streams a neuron layer of an event engine (signed spikes: snn_conv),
        # whose rows' times the estimate does not follow: pooled after the counting
        assert [p.get("IL", 1) for p in pools] == [1, 1, 1, int(neuron == "if")]
        lowered = verilog.lower(graph)
        streamed = {lowered.engines[s.engine].node.name: lowered.engines[s.producer].node.name
                    for s in lowered.streams}
        assert streamed["p2"] == streamed["p3"] == "p1" and streamed["p4"] == "n3"
        assert streamed.get("c3") == ("p3" if neuron == "if" else None)  # snn_conv_rows
        result = verilog.run_simulation(design, "icarus")
        _assert_bit_exact(result, VECTORS, graph)
        assert summary["estimate"]["cycles_per_inference"]["per_input"] == result["cycles"]
        cycles[window] = np.array(result["cycles"])
        writes = _pool_writes(graph, default_inputs(graph, VECTORS), ("p2", "p3"))
        ran = [(pool[:, 0] < producer[:, -1])[producer[:, -1] > producer[:, 0]]
               for pool, producer in writes]  # the producer ran (was not skipped)
        assert sum(r.size for r in ran) and all(r.all() for r in ran), writes
    assert (cycles[True] < cycles[False]).all(), cycles


def _analog_graph(signed: bool, strides: tuple[int, int], pads: tuple[int, ...],
                  seed: int = 8) -> Graph:
    """An analog first convolution of one input channel (a digits-like image), into a
    neuron layer, a TD max pool and a linear layer."""
    rng = np.random.default_rng(seed)
    g = Graph("analog")
    g.add("x", o.Input(), shape=(1, 7, 6), kind="float")
    g.inputs.append("x")
    lo, hi = (-128, 127) if signed else (0, 255)
    g.add("codes", o.SpikeInput(np.array([0.01]), 0, lo, hi, Rounding.HALF_EVEN, True), ["x"])
    g.add("s", o.Synapse(_weights(rng, 4, 1, 3, 3), kind="conv", strides=strides, pads=pads,
                         analog=True), ["codes"])
    g.add("n", _neuron(rng, g.node("s").shape, t_fire=1, axis=0, negate=True), ["s"])
    g.add("p", o.TDMaxPool((2, 2), (2, 2)), ["n"])
    size = int(np.prod(g.node("p").shape))
    g.add("flat", o.Reshape((size,)), ["p"])
    g.add("fc", o.Synapse(_weights(rng, size, 3)), ["flat"])
    return _readout(g, "fc")


@pytest.mark.parametrize("signed,strides,pads", [
    (False, (1, 1), (1, 1, 1, 1)), (True, (2, 1), (1, 0, 0, 2)), (False, (1, 2), (0, 2, 1, 1))],
    ids=["padded", "signed-asymmetric", "strided"])
def test_analog_kernel_rows_icarus(tmp_path, signed, strides, pads):
    """An analog convolution of one input channel takes a kernel row of its window a
    cycle (snn_conv_rows over the kernel rows as KW = 3 channels, E = 3; each read through
    the port as one segment of its image row, the lanes left of the row zero: OB) rather
    than a tap a cycle (kept by a hardware config's "inputs" of 1, and where the knob
    allows fewer than 3 x 4 lanes): both bit-exact in Icarus (unsigned and signed codes,
    padded, asymmetric and strided windows), the estimate the RTL's count for every
    input, and 3 taps an output position fewer cycles; lint-clean."""
    require_tool("iverilog")
    graph = _analog_graph(signed, strides, pads)
    cycles = {}
    for rows, hw in ((True, parallel_knob.DEFAULT),
                     (False, parallel_knob.config(graph, None, {"inputs": {"s": 1}})),
                     (False, parallel_knob.config(graph, 8))):
        design = tmp_path / f"v{len(cycles)}"
        summary = verilog.emit(graph, design, vectors=VECTORS, hw=hw)
        (first, *_) = _engines(summary, "snn_conv_rows") + _engines(summary, "snn_conv")
        port = dict(verilog.lower(graph, hw).ports[0].params)
        if rows:
            assert (first["C"], first["KH"], first["KW"], first["E"]) == (3, 3, 1, 3)
            assert (port["VD"], port["G"], port["OB"]) == (3, 1, 2)
        else:
            assert first["C"] == 1 and first["KW"] == 3 and "OB" not in port
        result = verilog.run_simulation(design, "icarus")
        _assert_bit_exact(result, VECTORS, graph)
        assert summary["estimate"]["cycles_per_inference"]["per_input"] == result["cycles"]
        cycles[len(cycles)] = np.array(result["cycles"])
        if rows:
            _assert_lint_clean(design)
    assert (cycles[0] < cycles[1]).all() and (cycles[0] < cycles[2]).all(), cycles


def _conv_rows_graph(seed: int = 6) -> Graph:
    """Convolutions for snn_conv_rows: the spiking input codes read through a map (four
    segments a channels-last row: fixed slots, a request every 4 cycles), padded; a
    strided, dilated conv of 8 channels (E = 8, 2 by the knob; silent groups skipped) on
    neurons silent in the early steps; a 1x1 conv of 6 channels (C / E a power of two:
    E = 6 or 3)."""
    rng = np.random.default_rng(seed)
    g = Graph("conv_rows")
    _spiking(g, (4, 6, 6))
    g.add("c1", o.Synapse(_weights(rng, 8, 4, 3, 3), kind="conv", pads=(1, 1, 1, 1)),
          ["codes"])
    g.add("n1", _neuron(rng, (8, 6, 6), t_fire=4, axis=0), ["c1"])
    g.add("c2", o.Synapse(_weights(rng, 6, 8, 2, 2), kind="conv", strides=(2, 2),
                          pads=(1, 0, 0, 1), dilations=(2, 1)), ["n1"])
    g.add("n2", _neuron(rng, g.node("c2").shape, t_fire=11, axis=0), ["c2"])
    g.add("c3", o.Synapse(_weights(rng, 4, 6, 1, 1), kind="conv"), ["n2"])
    g.add("n3", _neuron(rng, g.node("c3").shape, t_fire=16), ["c3"])
    size = int(np.prod(g.node("n3").shape))
    g.add("flat", o.Reshape((size,)), ["n3"])
    g.add("fc", o.Synapse(_weights(rng, size, 3)), ["flat"])
    return _readout(g, "fc")


@pytest.mark.parametrize("parallel,pipeline,groups",
                         [(None, False, [(4, 1), (8, 1), (6, 1)]),
                          (16, False, [(2, 2), (2, 4), (3, 2)]),
                          (12, False, [(2, 4), (3, 2)]),
                          (None, True, [(4, 1), (8, 1), (6, 1)])],
                         ids=["default", "P16", "P12", "pipeline"])
def test_conv_rows_icarus(tmp_path, parallel, pipeline, groups):
    """snn_conv_rows (full width: E input channels a cycle, the taps' rows streamed
    through identity ports and a map) at the settings that pick it with several E, and
    the event engine where the knob leaves one channel a cycle or folds the outputs:
    bit-exact in Icarus, the estimate the RTL's count for every input, lint-clean."""
    require_tool("iverilog")
    graph = _conv_rows_graph()
    gold = golden(graph, default_inputs(graph, VECTORS))
    assert all(c.sum() > 0 for c in gold.counts.values()), "every layer should spike"
    hw = parallel_knob.config(graph, parallel, pipeline=pipeline)
    summary = verilog.emit(graph, tmp_path / "v", vectors=VECTORS, hw=hw)
    rows = _engines(summary, "snn_conv_rows")
    assert [(p["E"], p["NG"]) for p in rows if p["KH"] * p["KW"] > 1 or p["C"] == 6
            ] == groups
    assert len(_engines(summary, "snn_conv")) == 3 - len(groups)
    if len(groups) == 3:  # the map: fixed slots; identity ports: the silent groups skipped
        assert [(p["IG"], p["ILAT"], p["WALK"]) for p in rows[:3]] == [(4, 6, 0), (1, 1, 1),
                                                                        (1, 1, 1)]
    result = verilog.run_simulation(tmp_path / "v", "icarus")
    _assert_bit_exact(result, VECTORS, graph)
    assert summary["estimate"]["cycles_per_inference"]["per_input"] == result["cycles"]
    if pipeline:
        assert summary["estimate"]["stream_cycles"] == result["stream"]["cycles"]
    _assert_lint_clean(tmp_path / "v")


def _padded_graph(seed: int = 9) -> Graph:
    """Walked convolutions (E = 8 or 4 through identity ports) over windows padded on
    every side, stride 2: streaming a neuron layer (c2), a padded TD max pool (c3), and
    one whose corner windows are all padding (c4: pads 2 of a 2x2 kernel)."""
    rng = np.random.default_rng(seed)
    g = Graph("padded")
    _spiking(g, (4, 6, 6))
    g.add("c1", o.Synapse(_weights(rng, 8, 4, 3, 3), kind="conv", pads=(1, 1, 1, 1)),
          ["codes"])
    g.add("n1", _neuron(rng, (8, 6, 6), t_fire=4, axis=0), ["c1"])
    g.add("c2", o.Synapse(_weights(rng, 4, 8, 3, 3), kind="conv", strides=(2, 2),
                          pads=(1, 2, 2, 1)), ["n1"])
    g.add("n2", _neuron(rng, g.node("c2").shape, t_fire=9, axis=0), ["c2"])
    g.add("p", o.TDMaxPool((2, 2), (1, 1), (1, 1, 0, 0)), ["n1"])
    g.add("c3", o.Synapse(_weights(rng, 4, 8, 3, 3), kind="conv", strides=(2, 2),
                          pads=(2, 1, 1, 2)), ["p"])
    g.add("n3", _neuron(rng, g.node("c3").shape, t_fire=9, axis=0), ["c3"])
    g.add("c4", o.Synapse(_weights(rng, 4, 4, 2, 2), kind="conv", strides=(2, 2),
                          pads=(2, 2, 2, 2)), ["n2"])
    g.add("n4", _neuron(rng, g.node("c4").shape, t_fire=14, axis=0), ["c4"])
    for k in ("n3", "n4"):
        size = int(np.prod(g.node(k).shape))
        g.add(f"f{k}", o.Reshape((size,)), [k])
        g.add(f"fc{k}", o.Synapse(_weights(rng, size, 3)), [f"f{k}"])
    g.add("sum", o.AddCurrent(), ["fcn3", "fcn4"])
    return _readout(g, "sum")


@pytest.mark.parametrize("pipeline", [False, True], ids=["streamed", "pipeline"])
def test_walk_skips_padding_icarus(tmp_path, monkeypatch, pipeline):
    """A walking snn_conv_rows visits only its windows' valid taps (padding on every
    side, stride 2; a window of padding only: one padding tap): bit-exact in Icarus,
    streaming its producers' rows (one at a time) and not (pipelined), the estimate the
    RTL's count for every input, lint-clean, and fewer cycles than the same engines
    walking every tap (their range tables forced to the whole kernel: a padding tap a
    cycle), which are bit-exact too."""
    require_tool("iverilog")
    graph = _padded_graph()
    gold = golden(graph, default_inputs(graph, VECTORS))
    assert all(c.sum() > 0 for c in gold.counts.values()), "every layer should spike"
    hw = parallel_knob.config(graph, None, pipeline=pipeline)
    lowered = verilog.lower(graph, hw)
    streamed = {lowered.engines[s.engine].node.name: lowered.engines[s.producer].node.name
                for s in lowered.streams}
    assert [streamed.get(k) for k in ("c2", "c3", "c4")] == (
        [None] * 3 if pipeline else ["n1", "p", "n2"])
    cycles = []
    for skip in (True, False):
        if not skip:
            def every(entries, out, kernel):
                return [(0, kernel - 1)] * out
            monkeypatch.setattr(verilog_lower, "tap_range", every)
            monkeypatch.setattr(estimate, "tap_range", every)
        design = tmp_path / f"v{int(skip)}"
        summary = verilog.emit(graph, design, vectors=VECTORS, hw=hw)
        walked = [p for p in _engines(summary, "snn_conv_rows") if p["WALK"]]
        assert [(p["KH"], p["E"]) for p in walked] == [(3, 8), (3, 8), (2, 4)]
        result = verilog.run_simulation(design, "icarus")
        _assert_bit_exact(result, VECTORS, graph)
        assert summary["estimate"]["cycles_per_inference"]["per_input"] == result["cycles"]
        if pipeline:
            assert summary["estimate"]["stream_cycles"] == result["stream"]["cycles"]
        cycles.append(np.array(result["cycles"]))
        if skip:
            _assert_lint_clean(design)
    assert (cycles[0] < cycles[1]).all(), cycles


def _dense_rows_graph(seed: int = 7) -> Graph:
    """Linear layers for snn_conv_rows's walk (E = 1 through identity ports): over the
    spiking codes, then over neurons that stay silent for the first steps and whose rows
    are often all zero (a row without events still takes a cycle and writes zeros)."""
    rng = np.random.default_rng(seed)
    g = Graph("dense_rows")
    _spiking(g, (5, 6), hi=7)
    g.add("d1", o.Synapse(_weights(rng, 6, 8)), ["codes"])
    g.add("n1", _neuron(rng, (5, 8), t_fire=4, axis=1), ["d1"])
    g.add("d2", o.Synapse(_weights(rng, 8, 4)), ["n1"])
    g.add("n2", _neuron(rng, (5, 4), levels=2, t_fire=9), ["d2"])
    g.add("d3", o.Synapse(_weights(rng, 4, 3)), ["n2"])
    return _readout(g, "d3")


def _analog_dense_graph() -> Graph:
    from test_verilog import _signed_analog_graph
    return _signed_analog_graph()


@pytest.mark.parametrize("build,parallel,pipeline",
                         [(_dense_rows_graph, None, False), (_dense_rows_graph, 2, False),
                          (_dense_rows_graph, None, True), (_analog_dense_graph, None, False)],
                         ids=["default", "P2", "pipeline", "analog"])
def test_dense_walk_icarus(tmp_path, build, parallel, pipeline):
    """Full-width linear layers reading through identity ports walk their events with
    snn_conv_rows (one a cycle, no request and wait cycles per row; analog codes: a
    multiplier a lane as before), folded ones keep snn_dense: bit-exact in Icarus, the
    estimate the RTL's count for every input, lint-clean."""
    require_tool("iverilog")
    graph = build()
    gold = golden(graph, default_inputs(graph, VECTORS))
    assert all(c.sum() > 0 for c in gold.counts.values()), "every layer should spike"
    hw = parallel_knob.config(graph, parallel, pipeline=pipeline)
    summary = verilog.emit(graph, tmp_path / "v", vectors=VECTORS, hw=hw)
    walks = [p for p in _engines(summary, "snn_conv_rows") if p["WALK"]]
    dense = len(graph.ops(o.Synapse))
    if parallel is None:
        assert len(walks) >= 1 + (build is _dense_rows_graph)
        assert all(p["E"] == 1 for p in walks)
    else:
        assert walks == [] and len(_engines(summary, "snn_dense")) == dense
    result = verilog.run_simulation(tmp_path / "v", "icarus")
    _assert_bit_exact(result, VECTORS, graph)
    assert summary["estimate"]["cycles_per_inference"]["per_input"] == result["cycles"]
    if pipeline:
        assert summary["estimate"]["stream_cycles"] == result["stream"]["cycles"]
    _assert_lint_clean(tmp_path / "v")


def test_input_channels_from_config_icarus(tmp_path):
    """The config's "inputs" sets full-width layers' input channels a cycle (E of
    snn_conv_rows) below the rule's: a padded conv through a map (fixed slots), a strided
    one of 8 channels, a 1x1 one of 6, and a linear layer of 36 inputs (its 36 a cycle by
    the rule: 9); bit-exact in Icarus, the estimate the RTL's count for every input and
    more cycles than the rule's wider trees, lint-clean."""
    require_tool("iverilog")
    graph = _conv_rows_graph()
    # c2 and c3 one group a cycle ("events"): the default V would walk their groups
    # several at once, as the wider E does
    hw = parallel_knob.config(graph, None, {"inputs": {"c1": 2, "c2": 2, "c3": 3, "fc": 9},
                                            "events": {"c2": 1, "c3": 1}})
    assert hw.inputs == {"c1": 2, "c2": 2, "c3": 3, "fc": 9}
    summary = verilog.emit(graph, tmp_path / "v", vectors=VECTORS, hw=hw)
    rows = {e["node"]: e["params"] for e in summary["layers"] if e["module"] == "snn_conv_rows"}
    assert {k: (p["E"], p["NG"]) for k, p in rows.items()} == {
        "c1": (2, 2), "c2": (2, 4), "c3": (3, 2), "fc": (9, 4)}
    result = verilog.run_simulation(tmp_path / "v", "icarus")
    _assert_bit_exact(result, VECTORS, graph)
    assert summary["estimate"]["cycles_per_inference"]["per_input"] == result["cycles"]
    wide = verilog.estimate.cycles(graph, parallel_knob.config(graph))["per_engine"]
    narrow = summary["estimate"]["cycles_by_engine"]
    by_node = {e["node"]: e["engine"] for e in summary["layers"]}
    for node in ("c1", "c2", "c3"):
        assert narrow[by_node[node]] > wide[by_node[node]], node
    _assert_lint_clean(tmp_path / "v")


def test_input_channels_config_refused():
    """Bad "inputs" entries, all in one error: a folded layer (none legal, and why), a
    value off the legal list (listed), a name that is no linear or conv layer (they are
    listed with their legal values)."""
    graph = _conv_rows_graph()
    with pytest.raises(SnnccError) as bad:
        parallel_knob.config(graph, None, {"layers": {"c2": 3},
                                           "inputs": {"c2": 4, "c3": 4, "n1": 2}}, "hw.json")
    assert str(bad.value).splitlines() == [
        "hw.json: node 'c2': input channels per cycle cannot be set for this layer: its "
        "engine runs folded (3 of 6 output lanes): only a full-width layer takes several "
        'input channels a cycle. Fix: remove it from "inputs" or give it all 6 lanes in '
        '"layers"',
        "hw.json: node 'c3': 4 input channels per cycle is not a legal value for this "
        "layer. Fix: use one of 3, 6 (divisors of its 6 inputs by a power of two, at most "
        "128 weight bits a lane)",
        "hw.json: no layer with input channels per cycle is named 'n1'. Fix: name one of "
        "the linear or conv layers (legal input channels a cycle): c1 (1, 2, 4); c2 "
        "(none); c3 (3, 6); fc (9, 18)"]
    with pytest.raises(SnnccError) as bad:  # with a bad "layers" value: both at once
        parallel_knob.config(graph, None, {"layers": {"c1": 3}, "inputs": {"c3": 4}})
    assert [line.split(":")[1] for line in str(bad.value).splitlines()] == [
        " node 'c1'", " node 'c3'"]
    with pytest.raises(SnnccError) as bad:
        parallel_knob.config(graph, None, {"inputs": {"c3": True}}, "hw.json")
    assert "True input channels per cycle is not a legal value" in str(bad.value)


@pytest.mark.parametrize("sim", ["iverilog", "verilator"])
def test_walk_events_from_config(tmp_path, sim):
    """The config's "events" sets the non-silent channel groups a walking snn_conv_rows
    takes a cycle (V, a copy of its weight ROM each): a strided conv of 2-channel groups
    at V = 3 (more slots than a tap's live groups at times), a 1x1 conv of 3-channel
    groups at 2 (an AND-OR select per slot), a linear layer of analog codes at 2 (a
    multiplier a term), and snn_dense (a linear layer through a map) at 3 events a cycle;
    the padded conv through a map keeps its fixed slots (no V).
    Bit-exact in Icarus and Verilator, the estimate the RTL's count for every input,
    fewer cycles than one group a cycle, lint-clean."""
    require_tool(sim)
    from test_verilog import _signed_analog_graph
    for graph, raw, want in (
            (_conv_rows_graph(), {"inputs": {"c2": 2, "c3": 3},
                                  "events": {"c1": 4, "c2": 3, "c3": 2, "fc": 3}},
             {"c1": (4, 0, 1), "c2": (2, 1, 3), "c3": (3, 1, 2), "fc": (0, 0, 3)}),
            (_signed_analog_graph(), {"events": {"s": 2}},
             {"s": (1, 1, 2), "fc": (0, 0, parallel_knob.WALK_EVENTS)})):
        hw = parallel_knob.config(graph, None, raw)
        one = parallel_knob.config(graph, None, {**raw, "events": {k: 1 for k in want}})
        design = tmp_path / graph.name
        summary = verilog.emit(graph, design, vectors=VECTORS, hw=hw)
        rows = {e["node"]: e["params"] for e in summary["layers"]
                if e["module"] in ("snn_conv_rows", "snn_dense")}
        assert {k: (p.get("E", 0), p.get("WALK", 0), p.get("V", 1))
                for k, p in rows.items()} == want
        result = verilog.run_simulation(design, "icarus" if sim == "iverilog" else sim)
        _assert_bit_exact(result, VECTORS, graph)
        assert summary["estimate"]["cycles_per_inference"]["per_input"] == result["cycles"]
        slow = verilog.estimate.cycles(graph, one)["per_engine"]
        fast = summary["estimate"]["cycles_by_engine"]
        by_node = {e["node"]: e["engine"] for e in summary["layers"]}
        for node, (*_, v) in want.items():
            assert (fast[by_node[node]] < slow[by_node[node]]) == (v > 1), node
        if sim == "iverilog":
            _assert_lint_clean(design)


def test_walk_events_config_refused():
    """Bad "events" entries, all in one error: a folded layer (none legal, and why), a
    value off the legal list (listed), a name that is no linear or conv layer (they are
    listed with their legal values); a bad "events" object."""
    graph = _conv_rows_graph()
    with pytest.raises(SnnccError) as bad:
        parallel_knob.config(graph, None, {"layers": {"c2": 3},
                                           "events": {"c2": 2, "c3": 9, "n1": 2}}, "hw.json")
    assert str(bad.value).splitlines() == [
        "hw.json: node 'c2': input events per cycle cannot be set for this layer: its "
        "engine runs folded (3 of 6 output lanes): only a full-width layer walks several "
        'events a cycle. Fix: remove it from "events" or give it all 6 lanes in "layers"',
        "hw.json: node 'c3': 9 input events per cycle is not a legal value for this layer. "
        "Fix: use one of 1, 2, 3, 4, 5, 6, 7, 8 (its non-silent channel groups walked a "
        "cycle, a copy of its weight ROM each)",
        "hw.json: no layer with input events per cycle is named 'n1'. Fix: name one of the "
        "linear or conv layers (legal input events a cycle): c1 (1, 2, 3, 4, 5, 6, 7, 8); "
        "c2 (none); c3 (1, 2, 3, 4, 5, 6, 7, 8); fc (1, 2, 3, 4, 5, 6, 7, 8)"]
    for value in (0, True, 2.0):
        with pytest.raises(SnnccError) as bad:
            parallel_knob.config(graph, None, {"events": {"c3": value}}, "hw.json")
        assert f"{value!r} input events per cycle is not a legal value" in str(bad.value)


@pytest.mark.parametrize("name,parallel,kinds", [
    ("transformer", None, {"snn_neuron", "snn_add", "snn_conv_rows", "snn_td_matmul_rows",
                           "snn_reduce"}),
    ("cnn", None, {"snn_neuron", "snn_td_maxpool", "snn_conv_rows"}),
    ("cnn", 8, {"snn_neuron", "snn_td_maxpool", "snn_conv_rows"})],
    ids=["transformer", "cnn", "cnn-P8"])
def test_streamed_rows_overlap_their_producers(tiny_models, tmp_path, name, parallel, kinds):
    """One at a time, the default design streams rows: its neuron layers, adds, linear
    layers and max pools start with the producer whose buffer they read (snn_ctrl's SWAIT
    mask, not its WAIT) and ask for a row once it is written, and so do the A phases of
    a TD-MatMul whose A is read as it is, the convolutions reading a max pool (its
    window a cycle; at --parallel 8 a tap a cycle) and the token sum. Bit-exact in Icarus, the estimate
    equal to the RTL's count, and that count below the one of engines run one after
    another (a step: its engines' runs and a cycle)."""
    require_tool("iverilog")
    graph = snncc.compile(tiny_models[name], T=7).graph
    hw = parallel_knob.config(graph, parallel)
    design = verilog.lower(graph, hw)
    assert {design.engines[s.engine].module for s in design.streams} == kinds
    pools = [dict(e.params).get("WIN", 0) for e in design.engines
             if e.module == "snn_td_maxpool"]
    assert (0 in pools) == (parallel is not None), pools
    waits = design.waits()
    for s in design.streams:
        wait, along = waits[s.engine]
        assert along >> s.producer & 1 and not wait >> s.producer & 1, s
    summary = verilog.emit(graph, tmp_path / "v", vectors=VECTORS, hw=hw)
    result = verilog.run_simulation(tmp_path / "v", "icarus")
    _assert_bit_exact(result, VECTORS, graph)
    assert summary["estimate"]["cycles_per_inference"]["per_input"] == result["cycles"]
    serial = _serial_cycles(graph, hw, default_inputs(graph, VECTORS))
    assert all(np.asarray(result["cycles"]) < serial), (result["cycles"], serial)


def _quiet_graph(seed: int = 4) -> Graph:
    """A linear layer after a TD max pool of a neuron layer of positive thresholds: an
    all-zero input leaves the neuron layer silent, so the linear layer and the readout
    skip every run (the logits: the bias alone)."""
    rng = np.random.default_rng(seed)
    g = Graph("quiet")
    _spiking(g, (4, 6), hi=7)
    g.add("c", o.Synapse(_weights(rng, 6, 16)), ["codes"])
    n = _neuron(rng, (4, 16), t_fire=7, axis=1)  # exact: `write_vectors` holds
    above = n.thresholds - min(int(n.thresholds.min()), 0) + 1  # a silent input: silent
    g.add("n", o.Neuron(n.sign, above, n.levels, n.scale, n.t_fire), ["c"])
    g.add("cube", o.Reshape((4, 4, 4)), ["n"])
    g.add("p", o.TDMaxPool((2, 2), (2, 2)), ["cube"])                   # [4, 2, 2]
    g.add("flat", o.Reshape((16,)), ["p"])
    g.add("fc", o.Synapse(_weights(rng, 16, 3)), ["flat"])
    return _readout(g, "fc")


def _skipped(graph: Graph, design, x: np.ndarray) -> tuple[set, dict]:
    """The estimate's runs, (engine, step), and those skipped: (engine, step) -> the
    inputs it skips for."""
    model = verilog.estimate._Cycles(design, verilog.estimate._Trace(graph, x))
    return set(model.runs()), model.skipped


@pytest.mark.parametrize("name", ["transformer", "cnn", "quiet"])
def test_silent_runs_skipped(tiny_models, tmp_path, name):
    """One at a time, an engine that is not a neuron layer and does not stream its
    producer's rows is not started at a step when every value it reads is silent
    (inactive, or written with zeros only, or by a skipped engine): snn_ctrl's SKIP and
    `quiet`. On the default vectors and an all-zero input (many silent steps; `quiet`:
    the readout skips every run, its logits the bias alone) every spike count and logit
    equal to the interpreter's in Icarus, the estimate equal to the RTL's count, and that
    count below the estimate of the same design with no run skipped (SKIP empty)."""
    require_tool("iverilog")
    graph = (_quiet_graph() if name == "quiet"
             else snncc.compile(tiny_models[name], T=7).graph)
    x = default_inputs(graph, VECTORS)
    x = np.concatenate([x, np.zeros_like(x[:1])])
    design = verilog.lower(graph)
    runs, skipped = _skipped(graph, design, x)
    assert skipped and np.any(list(skipped.values()), axis=0)[-1], "the zero input skips"
    if name == "quiet":  # every run of the readout skipped on the zero input
        ro = [t for k, t in runs if k == design.readout.index]
        assert ro and all((design.readout.index, t) in skipped
                          and skipped[(design.readout.index, t)][-1] for t in ro)
    verilog.emit(graph, tmp_path / "v", vectors=len(x))
    verilog.write_vectors(graph, tmp_path / "v", x)
    result = verilog.run_simulation(tmp_path / "v", "icarus")
    _assert_bit_exact(result, len(x), graph)
    est = verilog.estimate.cycles(graph, x=x, design=design)["per_input"]
    assert est == result["cycles"]
    design.silence.skip = 0
    whole = verilog.estimate.cycles(graph, x=x, design=design)["per_input"]
    assert all(np.asarray(est) <= whole) and est[-1] < whole[-1], (est, whole)


def _buffer_rams(top: str) -> list[tuple[int, int]]:
    """(depth, width) of every buffer RAM (and twin) the top instantiates."""
    return sorted((int(d), int(w)) for w, d in re.findall(
        r"snn_ram #\(\.WIDTH\((\d+)\), \.DEPTH\((\d+)\), \.AW\(\d+\)\) b\d+_ram\d*", top))


def test_independent_engines_run_at_once(tiny_models, tmp_path, monkeypatch):
    """One at a time, an engine waits only for its producers and for the engines before
    it that read a RAM it reads: the tiny transformer's q, k and v linear layers read
    one spike value through three RAMs (its buffer and two twins, written together) and
    run at once, each streaming the neuron layer's rows. Bit-exact in Icarus, the
    estimate equal to the RTL's count, and that count below the one of the same design
    with one RAM for the three (each waiting for the one before: no twins), also
    bit-exact and equal to its estimate; the resource estimate counts the buffer RAMs
    the top instantiates; lint-clean."""
    require_tool("iverilog")
    graph = snncc.compile(tiny_models["transformer"], T=7).graph
    design = verilog.lower(graph)
    readers: dict[tuple[str, ...], list] = {}
    for e in design.engines:
        if e.module == "snn_conv_rows":
            readers.setdefault(e.reads, []).append(e)
    qkv = next(es for es in readers.values() if len(es) == 3)
    rams, waits = design.rams(), design.waits()
    assert len({frozenset(rams[e.index]) for e in qkv}) == 3
    for e in qkv:
        producer = next(s.producer for s in design.streams if s.engine == e.index)
        assert waits[e.index][1] >> producer & 1
        assert not any(waits[e.index][0] >> j.index & 1 for j in qkv)
    cycles = {}
    for name, twins in (("twins", True), ("shared", False)):
        if not twins:
            monkeypatch.setattr(verilog_design, "TWIN_MAX_BITS", 0)
        summary = verilog.emit(graph, tmp_path / name, vectors=VECTORS)
        result = verilog.run_simulation(tmp_path / name, "icarus")
        _assert_bit_exact(result, VECTORS, graph)
        assert summary["estimate"]["cycles_per_inference"]["per_input"] == result["cycles"]
        cycles[name] = np.asarray(result["cycles"])
        mems = [(depth, width) for m, kind, depth, width in
                estimate.memories(verilog.lower(graph)) if re.fullmatch(r"b\d+(\.\d+)?", m)]
        assert _buffer_rams((tmp_path / name / "rtl" / "snn_top.v").read_text()) == sorted(
            mems)
        assert (summary["buffer_bits"] == sum(d * w for d, w in mems))
    assert all(cycles["twins"] < cycles["shared"]), cycles
    _assert_lint_clean(tmp_path / "twins")


def _residual_graph(seed: int = 8) -> Graph:
    """A residual stream as in a transformer block: x1 = x0 + f1 and x2 = x1 + f2, each
    branch two neuron layers after the neuron layer reading the sum before it (so the
    branch runs at other steps than that layer), then x3 = x2 + x0 (both producers at
    once). At steps 0-6 the linear layer, the three adds and the neuron layers run."""
    rng = np.random.default_rng(seed)
    g = Graph("residual")
    _spiking(g, (6, 8), hi=7)
    g.add("x0", o.Synapse(_weights(rng, 8, 8)), ["codes"])
    last = "x0"
    for i, t in ((1, 7), (2, 21)):
        g.add(f"n{i}", _neuron(rng, (6, 8), t_fire=t, axis=1), [last])
        g.add(f"h{i}", o.Synapse(_weights(rng, 8, 8)), [f"n{i}"])
        g.add(f"m{i}", _neuron(rng, (6, 8), t_fire=t + 7, axis=1), [f"h{i}"])
        g.add(f"f{i}", o.Synapse(_weights(rng, 8, 8)), [f"m{i}"])
        g.add(f"x{i}", o.AddCurrent(), [last, f"f{i}"])
        last = f"x{i}"
    g.add("x3", o.AddCurrent(), ["x2", "x0"])
    g.add("n3", _neuron(rng, (6, 8), levels=3, t_fire=35, axis=1), ["x3"])
    g.add("flat", o.Reshape((48,)), ["n3"])
    g.add("fc", o.Synapse(_weights(rng, 48, 4)), ["flat"])
    return _readout(g, "fc")


def test_add_chain_streams(tmp_path, monkeypatch):
    """One at a time, an add streams the rows of both of its producers (asking for row r
    once both have written it), and reads the sum before it in lockstep with the neuron
    layer reading that sum too (`Design.paired`: one RAM, no twin, neither waiting for the
    other), so a chain of adds costs about one add and a few cycles each. Bit-exact in
    Icarus, the estimate equal to the RTL's count, and that count below the one of the
    same design without the pairs (each add waiting for the neuron layer it shares a RAM
    with), itself bit-exact and equal to its estimate; lint-clean."""
    require_tool("iverilog")
    monkeypatch.setattr(verilog_design, "TWIN_MAX_BITS", 0)  # one RAM a buffer
    graph = _residual_graph()
    design = verilog.lower(graph)
    index = {e.node.name: e.index for e in design.engines}
    assert design.paired == {index["x1"]: index["n1"], index["x2"]: index["n2"]}
    rams, waits = design.rams(), design.waits()
    for add, producers in (("x1", {"x0", "f1"}), ("x2", {"x1", "f2"}), ("x3", {"x2", "x0"})):
        a = index[add]
        assert {s.producer for s in design.streams if s.engine == a} == {
            index[p] for p in producers}
        assert all(waits[a][1] >> index[p] & 1 for p in producers)
        if a in design.paired:
            n = design.paired[a]
            assert rams[a] & rams[n] and not waits[a][0] >> n & 1
    cycles = {}
    for name in ("paired", "waiting"):
        if name == "waiting":
            monkeypatch.setattr(verilog_lower, "_pair", lambda *args: None)
            assert verilog.lower(graph).paired == {}
        summary = verilog.emit(graph, tmp_path / name, vectors=VECTORS)
        result = verilog.run_simulation(tmp_path / name, "icarus")
        _assert_bit_exact(result, VECTORS, graph)
        assert summary["estimate"]["cycles_per_inference"]["per_input"] == result["cycles"]
        cycles[name] = np.asarray(result["cycles"])
    assert all(cycles["paired"] < cycles["waiting"]), cycles
    _assert_lint_clean(tmp_path / "paired")


def _reduce_graph(seed: int = 5) -> Graph:
    """Two ReduceSums of a linear layer's current [12, 5]: over the first axis of a
    [4, 3, 5] view (three output rows, each of four input rows three apart: rows
    q*3 + j, asked for out of the order they are written) and over the lanes (through a
    transpose: twelve single-lane segments a view row, a request every 12 cycles)."""
    rng = np.random.default_rng(seed)
    g = Graph("reduce")
    _spiking(g, (12, 6), hi=7)
    g.add("c1", o.Synapse(_weights(rng, 6, 5)), ["codes"])
    g.add("n1", _neuron(rng, (12, 5), t_fire=6, axis=1), ["c1"])
    g.add("fc", o.Synapse(_weights(rng, 5, 5)), ["n1"])          # [12, 5]
    g.add("cube", o.Reshape((4, 3, 5)), ["fc"])
    g.add("rows", o.ReduceSum((0,)), ["cube"])                    # [3, 5]
    g.add("lanes", o.ReduceSum((1,)), ["fc"])                     # [12]
    g.add("n2", _neuron(rng, (3, 5), levels=4, t_fire=13, axis=1), ["rows"])
    g.add("n3", _neuron(rng, (12,), levels=4, t_fire=13), ["lanes"])
    g.add("flat", o.Reshape((15,)), ["n2"])
    g.add("f2", o.Synapse(_weights(rng, 15, 4)), ["flat"])
    g.add("f3", o.Synapse(_weights(rng, 12, 4)), ["n3"])
    g.add("out", o.AddCurrent(), ["f2", "f3"])
    return _readout(g, "out")


@pytest.mark.parametrize("parallel,pipeline", [(None, False), (1, False), (None, True)],
                         ids=["default", "P1", "pipeline"])
def test_reduce_requests_pipelined(tmp_path, parallel, pipeline):
    """snn_reduce asks for a row every IG cycles (the port's segments), ahead of the rows'
    arrival: several output rows of interleaved input rows, read as the linear layer
    writes them (one at a time, streamed), and a transposed view through a map of
    single-lane segments. Bit-exact in Icarus at the default setting, folded and
    pipelined, the estimate (a run of (NOUT*Q - 1)*IG + the port's latency + 3 cycles
    unstalled) equal to the RTL's count; lint-clean."""
    require_tool("iverilog")
    graph = _reduce_graph()
    hw = parallel_knob.config(graph, parallel, pipeline=pipeline)
    design = verilog.lower(graph, hw)
    reduces = {e.node.name: e for e in design.engines if e.module == "snn_reduce"}
    rows, lanes = dict(reduces["rows"].params), dict(reduces["lanes"].params)
    assert (rows["NOUT"], rows["Q"], lanes["NOUT"], lanes["Q"]) == (3, 4, 1, 5)
    assert lanes["IG"] == 12 and "IG" not in rows  # the identity: a row a cycle
    streamed = {design.engines[s.engine].node.name for s in design.streams}
    assert ("rows" in streamed) == (parallel is None and not pipeline), streamed
    summary = verilog.emit(graph, tmp_path / "v", vectors=VECTORS, hw=hw)
    result = verilog.run_simulation(tmp_path / "v", "icarus")
    _assert_bit_exact(result, VECTORS, graph)
    assert summary["estimate"]["cycles_per_inference"]["per_input"] == result["cycles"]
    _assert_lint_clean(tmp_path / "v")


def _pool_by_hand(reads: np.ndarray, counts: np.ndarray, start: np.ndarray, win: bool,
                  il: bool) -> tuple[np.ndarray, np.ndarray]:
    """snn_td_maxpool's pooling phase a read at a time (its state machine's order): the
    reference for the estimate's running maxima."""
    batch = len(counts)
    ready = np.full((batch,) + reads.shape, -1, np.int64)
    hit = reads >= 0
    ready[:, hit] = counts[:, reads[hit]] + 1
    if not il:
        ready[:] = (counts[:, -1] + 1)[:, None, None]
    writes = np.empty((batch, reads.shape[0]), np.int64)
    at = start + 1
    for j in range(reads.shape[0]):
        if win:
            at = np.maximum(at, ready[:, j].max(axis=1)) + 1
        else:
            for r in range(reads.shape[1]):
                at = np.maximum(at, ready[:, j, r]) + 1
        writes[:, j] = at
        at = at + 1 - win
    return writes, np.maximum(writes[:, -1], counts[:, -1]) + 2


@pytest.mark.parametrize("win", [0, 1])
@pytest.mark.parametrize("il", [0, 1])
def test_pool_estimate_equals_the_pooling_read_by_read(win, il):
    """The estimate's TD max pool outputs (`_Cycles._pool`, running maxima over the reads)
    equal the pooling phase followed read by read, on random windows with padding taps,
    rows counted early and late, and starts late enough to hold the first reads."""
    rng = np.random.default_rng(win * 2 + il)
    for _ in range(20):
        outputs, taps_, rows, batch = rng.integers(1, 7), rng.integers(1, 10), 12, 3
        reads = rng.integers(-1, rows, (outputs, taps_))
        counts = np.sort(rng.integers(0, 60, (batch, rows)), axis=1)
        start = rng.integers(0, 80, batch)
        cycles = SimpleNamespace(tr=SimpleNamespace(batch=batch),
                                 _pool_reads=lambda e, r=reads: r)
        engine = SimpleNamespace(params=[("WIN", win), ("IL", il)])
        got = estimate._Cycles._pool(cycles, engine, 0, start, counts)
        want = _pool_by_hand(reads, counts, start, bool(win), bool(il))
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
