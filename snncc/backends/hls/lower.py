"""Lower the SNN IR to a Project: one Layer (kernel calls, constants, state) per node.

Every number the emitted code holds is computed here or in ``layers`` (the rule for each
op): sizes, integer types (from the value ranges), weight layouts, index tables,
activity windows, pragma factors.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from snncc import ops as o
from snncc.backends.hls import pragmas
from snncc.backends.hls.design import Buffer, Call, Const, Layer, Project
from snncc.backends.hls.names import c_ident, short_ident
from snncc.backends.parallel import HwConfig, rows
from snncc.intmath import c_int_type
from snncc.ir import Graph, Node, layer_names
from snncc.ranges import LINES, SIGNED, UNIT, ValueRange, value_ranges
from snncc.schedule import total_steps, windows

SPIKE = "snn::spike_t"
CODED_HEADER = "snn_spike_codes.h"  # kernels for signed spikes and weighted lines
_CARRY = {UNIT: "spikes (0/1)", SIGNED: "signed spikes (-1/0/+1)",
          LINES: "numbers on weighted lines"}  # what a value of each spike kind holds
CODED_KERNELS = frozenset({
    "encode_weighted", "dense_ternary", "conv_ternary", "dense_lines", "conv_lines",
    "dif_ternary", "dif_multi", "td_maxpool_codes", "td_matmul_ternary", "td_matmul_lines"})
Rule = Callable[["Lowering", Node, Layer], None]  # lowers one node into its Layer


def size_of(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape, dtype=np.int64))


def _int_type(values: np.ndarray) -> str:
    return c_int_type(int(values.min(initial=0)), int(values.max(initial=0)))


class Lowering:
    """The state of one lowering: identifiers, value buffers, calls and what they touch."""

    def __init__(self, graph: Graph, rules: dict[type, Rule], hw: HwConfig | None = None):
        self.graph = graph
        self.rules = rules
        self.hw = hw  # the parallelism knob; None: pragmas.MAX_LANES everywhere
        self.rows = rows(graph) if hw is not None else {}  # neuron layers' row lanes
        self.lanes: dict[str, int] = {}  # the unroll factor of each synapse and neuron layer
        self.ranges = value_ranges(graph)
        self.names = layer_names(graph)  # what the testbench calls each neuron layer
        self.win = windows(graph)
        self.idents: set[str] = set()
        self.vals: dict[str, Buffer] = {}
        self.values: list[Buffer] = []
        self.kinds: set[str] = set()  # the spike kinds of the values
        self.layers: list[Layer] = []
        (enc,) = graph.ops(o.SpikeInput)
        spikes = enc.op_as(o.SpikeInput)
        self.input = Buffer("codes", c_int_type(min(spikes.lo, 0), spikes.hi), size_of(enc.shape),
                            "input codes")
        self.neurons: list[dict] = []
        self.logit_t = ""

    # ------------------------------------------------------------ helpers
    def synapse_lanes(self, n: Node, loop: int) -> int:
        """Unroll factor of synapse `n`'s output loop of `loop` iterations: its largest
        divisor up to the knob's lanes for the layer (the Verilog engine's), else up to
        pragmas.MAX_LANES."""
        f = pragmas.lanes(loop, pragmas.MAX_LANES if self.hw is None else self.hw.lanes(n))
        self.lanes[n.name] = f
        return f

    def neuron_lanes(self, n: Node, inner: int) -> int:
        """Unroll factor of neuron layer `n`'s loop over its neurons: the knob's neurons
        per cycle for the layer (the Verilog engine's NP; they divide the layer's size),
        else the largest divisor of the `inner` run of one threshold table up to
        pragmas.MAX_LANES."""
        f = (pragmas.lanes(inner) if self.hw is None else
             self.hw.neuron_lanes(n, self.rows[n.name]))
        self.lanes[n.name] = f
        return f

    def ident(self, name: str) -> str:
        base = ident = short_ident(name)
        k = 2
        while ident in self.idents:
            ident, k = f"{base}_{k}", k + 1
        self.idents.add(ident)
        return ident

    def value(self, n: Node, layer: Layer, prefix: str | None = None,
              rng: ValueRange | None = None, size: int | None = None) -> Buffer:
        """A new flat buffer for (one step of) a value of `n`."""
        rng = rng or self.ranges[n.name]
        ctype = SPIKE if rng.binary else c_int_type(rng.step.lo, rng.step.hi)
        self.kinds.add(rng.spikes)
        prefix = prefix or ("spk" if rng.spikes else "code" if n.kind == o.CODES else "cur")
        buf = Buffer(f"{prefix}_{layer.ident}", ctype, size or size_of(n.shape),
                     f"{layer.ident} {list(n.shape)}")
        self.values.append(buf)
        return buf

    def call(self, layer: Layer, kernel: str, targs: list, args: list[Buffer | Const | str],
             window: tuple[int, int], writes: Buffer | None = None) -> Call:
        c = Call(kernel, [str(a) for a in targs],
                 [a if isinstance(a, str) else a.name for a in args], window,
                 reads=[a for a in args if isinstance(a, Buffer) and a is not writes],
                 writes=writes)
        layer.calls.append(c)
        return c

    def const(self, layer: Layer, prefix: str, values: np.ndarray, comment: str,
              ctype: str | None = None, partition: str = "") -> Const:
        values = np.asarray(values)
        c = Const(f"{prefix}_{layer.ident}", ctype or _int_type(values), values, comment,
                  partition)
        layer.consts.append(c)
        return c

    def state(self, layer: Layer, prefix: str, ctype: str, size: int, comment: str,
              partition: str = "") -> Buffer:
        buf = Buffer(f"{prefix}_{layer.ident}", ctype, size, comment, partition, reset=True)
        layer.state.append(buf)
        return buf

    def gate(self, n: Node) -> tuple[int, int]:
        """The steps at which `n`'s kernel runs: its inputs' window, and for a neuron on
        until its last possible spike."""
        if isinstance(n.op, o.Neuron):
            return self.win[n.inputs[0]][0], self.win[n.name][1]
        if isinstance(n.op, o.Readout):
            return self.win[n.inputs[0]]
        return self.win[n.name]

    @staticmethod
    def bank(buf: Buffer, clause: str) -> None:
        """The first kernel to ask (the producer) banks the buffer."""
        if not buf.partition:
            buf.partition = clause

    # ------------------------------------------------------------ the whole graph
    def run(self) -> Project:
        for n in self.graph.topo():
            if isinstance(n.op, o.Input):
                continue
            layer = Layer(n.name, self.ident(n.name), n.origin, "")
            self.rules[type(n.op)](self, n, layer)
            layer.header = layer.ident if layer.consts else ""
            self.layers.append(layer)
        self._close_windows()
        return self._project()

    def _close_windows(self) -> None:
        """Zero a value before its first write if it is read earlier, and after its last
        write if it is read later (consumers then read zeros, as in the step engine)."""
        calls = [c for layer in self.layers for c in layer.calls]
        for buf in self.values:
            writers = [c for c in calls if c.writes is buf]
            readers = [c for c in calls if any(b is buf for b in c.reads)]
            if not writers or not readers:
                continue
            start = min(c.window[0] for c in writers)
            end = max(c.window[1] for c in writers)
            buf.reset = min(c.window[0] for c in readers) < start
            if max(c.window[1] for c in readers) > end:
                last = [c for c in writers if c.window[1] == end][-1]
                assert last.close is None, "a call closes at most one buffer"
                last.close = buf
        steps = total_steps(self.graph)
        for c in calls:
            point = c.window[0] == c.window[1]
            c.first = c.window[0] if c.window[0] > 0 or point else None
            c.last = c.window[1] if c.window[1] < steps - 1 or point else None
            c.close_at = c.window[1] + 1
        for c in calls:  # the input port is only read while it is presented
            assert all(b is not self.input or c.window[1] <= self._input_end()
                       for b in c.reads), "analog input read after step 0"

    def _input_end(self) -> int:
        (enc,) = self.graph.ops(o.SpikeInput)
        return self.win[enc.name][1]

    def _project(self) -> Project:
        (enc,) = self.graph.ops(o.SpikeInput)
        spikes = enc.op_as(o.SpikeInput)
        (ro,) = self.graph.ops(o.Readout)
        levels = max((n["levels"] for n in self.neurons), default=1)
        total = sum(n["size"] for n in self.neurons)
        logits = Buffer("logits", self.logit_t, size_of(ro.shape), "integer logits")
        counts = Buffer("spike_counts", c_int_type(0, levels), max(total, 1))
        name = c_ident(self.graph.name)
        kernels = {c.kernel for layer in self.layers for c in layer.calls}
        names = [b.name for b in self.values] + [
            x.name for layer in self.layers for x in layer.state] + [
            c.name for layer in self.layers for c in layer.consts]
        assert len(set(names)) == len(names), "two arrays share a C name"
        return Project(
            model=name, source=str(self.graph.meta.get("source", self.graph.name)),
            steps=total_steps(self.graph), input=self.input, input_lo=spikes.lo,
            input_hi=spikes.hi, logits=logits, counts=counts, layers=self.layers,
            values=[b for b in self.values if b is not self.input], neuron_table=self.neurons,
            headers=[CODED_HEADER] if kernels & CODED_KERNELS else [],
            spikes=", ".join(_CARRY[k] for k in (UNIT, SIGNED, LINES) if k in self.kinds)
            or _CARRY[UNIT],
            typedefs={"input_t": self.input.ctype, "logit_t": logits.ctype,
                      "count_t": counts.ctype}, lanes=self.lanes)

