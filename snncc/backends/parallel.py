"""The parallelism knob: how many output lanes a layer's engine handles per cycle.

A synapse (linear or convolution layer) adds one weight row per input event; its engine
does that `lanes` outputs at a time, `outputs / lanes` cycles an event. Fewer lanes make
fewer adders and narrower, deeper weight memories (block-RAM shaped); all lanes (the
default) take one cycle an event. The legal values of a layer with M outputs are the
divisors P of M with M / P a power of two (the weight memory is then addressed by
{input, chunk} without arithmetic): M = 64 takes 64, 32, .., 1; M = 10 takes 10 and 5.

A neuron layer updates `lanes` neurons a cycle: its values are stored as rows of D lanes
(the Verilog layout, `verilog.layout`), and its legal values are those of a layer of D
outputs (D = 32 takes 32, 16, .., 1), the neurons a row then taking D / lanes cycles.

`--parallel N` sets every layer to its largest legal value up to N (its smallest if none
is); `--hw-config hw.json` names layers by their ONNX node or by their layer name (the
names the layer tables show: "source" and "name") and gives each an exact legal value:

    {"parallel": 8, "layers": {"/blocks/blocks.0/fc1/linear/MatMul": 16, "/act_17": 4}}

A full-width linear or conv layer of unit spikes or analog codes (the Verilog engine
snn_conv_rows) also takes E input channels a cycle, an adder tree of E terms per output
lane: by default the largest E with C / E a power of two and E times its weight bits at
most TREE_INPUT_BITS (with `--parallel N`, E times the outputs at most N too); the
config's "inputs" gives a layer its own E (fewer channels a cycle: a smaller tree and
ROM word, more cycles), one of those same divisors:

    {"inputs": {"/tokenizer/tokenizer.4/Conv": 4}}

Walking its spikes (snn_conv_rows reading through an identity port, a dense layer as a 1x1
conv), such an engine takes V of a row's non-silent channel groups a cycle (a copy of its
weight ROM per slot, per output lane a tree of V*E terms): by default the largest V up
to WALK_EVENTS with V*E times its weight bits at most WALK_TREE_BITS and V at most its
groups (C / E); with `--parallel N`, one (its settings keep their engines). The
config's "events" gives a full-width linear or conv layer of unit spikes or analog codes
its own V, 1 to EVENTS_MAX (more than its groups walks no faster; a layer that does not
walk its spikes, read through a map, takes no V and ignores it):

    {"events": {"/blocks/blocks.0/fc2/linear/MatMul": 2}}

snn_dense (a full-width linear layer of unit spikes read through a map) takes V events
a cycle by the same rule and entry (K groups of one input). The HLS target has no
counterpart for E or V (its kernels loop over the inputs).

A TD max pool reads every tap of an output's window a cycle (a copy of its count RAM
per tap, for windows of at most POOL_TAPS_AT_ONCE taps) by default and with `--parallel
N` for N at least its channels times its taps; otherwise a tap a cycle.

A TD-MatMul summing over K terms takes K (all of an output row's terms a cycle: the row
engine, snn_td_matmul_rows, for unit spikes only) or 1 (one event a cycle: snn_td_matmul);
the global value picks K when it reaches K. The HLS target has one TD-MatMul kernel.

The same numbers set the HLS target's unroll and partition factors (a synapse's output
loop, a neuron layer's loop over its neurons), so both targets describe the same machine.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from snncc import ops as o
from snncc.errors import Diagnostic, SnnccError
from snncc.ir import Graph, Node, layer_names

CONFIG_KEYS = ("parallel", "layers", "inputs", "events", "in_flight")
# A full-width synapse engine takes as many input channels a cycle as keep its adder
# tree's weight bits per output lane at most this (snn_conv_rows)
TREE_INPUT_BITS = 128
# A walking snn_conv_rows takes up to this many non-silent channel groups a cycle by
# default (`HwConfig.walk_events`), a config's "events" up to EVENTS_MAX
WALK_EVENTS = 4
# ... as many as keep the terms its slots add a lane (V times E times the weight bits) at
# most this: a layer of wide weights (the residual stream's) gets a second slot
WALK_TREE_BITS = 256
EVENTS_MAX = 8
POOL_TAPS_AT_ONCE = 9  # a TD max pool's window read at once: copies of its count RAM
IN_FLIGHT = range(1, 17)  # legal inferences in flight of a pipelined Verilog design
LISTED = 12  # an unknown name's message lists all layers up to this many, else close ones


@dataclass(frozen=True)
class HwConfig:
    """The knob: a global bound on the lanes and exact per-layer values (by IR node, as
    `config` resolves the names a config gives); `pipeline`: the Verilog engines of
    different layers run concurrently (a wavefront over the time steps, docs/verilog.md),
    at the cost of banked value buffers; `in_flight`: then, the inferences loaded and not
    yet sent, at most, which also sizes the banks (more: a shorter initiation interval,
    more buffer memory)."""

    parallel: int | None = None
    layers: dict[str, int] = field(default_factory=dict)
    pipeline: bool = False
    inputs: dict[str, int] = field(default_factory=dict)  # a config's E, by IR node
    events: dict[str, int] = field(default_factory=dict)  # a config's V, by IR node
    in_flight: int = 6  # the fewest with the bundled ViT's interval <= 2,000 (docs)

    def lanes(self, n: Node) -> int:
        """Output lanes per cycle of synapse `n` (all of them by default)."""
        return self._lanes(n, outputs(n))

    def neuron_lanes(self, n: Node, d: int) -> int:
        """Neurons per cycle of neuron layer `n`, whose rows have `d` lanes (`rows`): its
        config value, else the global value's largest legal one (all `d` without it)."""
        return self._lanes(n, d)

    def _lanes(self, n: Node, m: int) -> int:
        if n.name in self.layers:
            return self.layers[n.name]
        if self.parallel is None:
            return m
        legal = legal_lanes(m)
        return max([p for p in legal if p <= self.parallel], default=legal[0])

    def channels(self, n: Node, c: int, ww: int) -> list[int]:
        """The input channels E full-width synapse `n`, of C = `c` inputs a row and
        `ww`-bit weights, may take a cycle (snn_conv_rows), descending: C / E a power of
        two, an adder tree of at most TREE_INPUT_BITS weight bits a lane ([] when it
        runs folded: the event engines)."""
        if self.lanes(n) != outputs(n):
            return []
        return [c >> j for j in range(c.bit_length())
                if c % (1 << j) == 0 and (c >> j) * ww <= TREE_INPUT_BITS]

    def walk_events(self, n: Node, groups: int, bits: int, analog: bool) -> int:
        """The non-silent channel groups V synapse `n`'s engine takes a cycle when it
        walks its spikes (snn_conv_rows through an identity port, `groups` = C / E groups
        of `bits` = E times its weight bits a row): its config value, else by default
        the largest V up to WALK_EVENTS with V * `bits` at most WALK_TREE_BITS and V at
        most `groups` (unit spikes; `analog` codes: 1, a multiplier a term); 1 with
        `--parallel N`."""
        if n.name in self.events:
            return self.events[n.name]
        if self.parallel is not None or analog:
            return 1
        return max(1, min(WALK_EVENTS, groups, WALK_TREE_BITS // max(1, bits)))

    def pool_taps(self, c: int, taps: int) -> int:
        """The taps a TD max pool of `c` channels and a `taps`-tap window reads a cycle:
        all of them (a copy of its count RAM each) by default and with `--parallel N` for
        N >= c * taps, up to POOL_TAPS_AT_ONCE; otherwise one."""
        if taps > POOL_TAPS_AT_ONCE:
            return 1
        return taps if self.parallel is None or c * taps <= self.parallel else 1

    def td_rows(self, n: Node, k: int) -> bool:
        """Whether TD-MatMul `n`, summing over `k`, takes all of them in a cycle (an output
        row a cycle, snn_td_matmul_rows, if its operands are unit spikes) rather than one
        event a cycle: its config value `k`, else by default and when the global value
        allows `k` lanes."""
        if n.name in self.layers:
            return self.layers[n.name] == k
        return self.parallel is None or self.parallel >= k

    def record(self, graph: Graph) -> dict[str, int]:
        """Every knob-able layer's lanes, by ONNX node in topological order (for
        report.json): a synapse's output lanes, a neuron layer's neurons per cycle, a
        TD-MatMul's terms per cycle (K: the row engine, or 1)."""
        d, sums = rows(graph), td_sums(graph)
        out = {}
        for n in graph.topo():
            if isinstance(n.op, o.Synapse):
                out[n.origin] = self.lanes(n)
            elif isinstance(n.op, o.Neuron):
                out[n.origin] = self.neuron_lanes(n, d[n.name])
            elif isinstance(n.op, o.TDMatMul):
                k, unit = sums[n.name]
                out[n.origin] = k if unit and self.td_rows(n, k) else 1
        return out


DEFAULT = HwConfig()


def outputs(n: Node) -> int:
    """The output lanes of synapse `n`: a dense layer's outputs, a convolution's output
    channels."""
    assert isinstance(n.op, o.Synapse), n.name
    return int(n.op.weight.shape[1] if n.op.kind == "dense" else n.op.weight.shape[0])


def rows(graph: Graph) -> dict[str, int]:
    """The lanes D of a row of each neuron layer's values, by IR node (the Verilog layout,
    which the HLS target follows so that both update the same neurons per cycle)."""
    from snncc.backends.verilog.layout import assign_layouts

    layouts = assign_layouts(graph)
    return {n.name: layouts[n.name].lanes for n in graph.ops(o.Neuron)}


def td_sums(graph: Graph) -> dict[str, tuple[int, bool]]:
    """Of each TD-MatMul, by IR node: the K terms it sums, and whether its operands are
    unit spikes (the row engine then takes all K a cycle)."""
    from snncc.backends.verilog.layout import resolve
    from snncc.backends.verilog.spikes import SpikeFormat
    from snncc.ranges import value_ranges

    ranges = value_ranges(graph)
    return {n.name: (int(graph.node(n.inputs[0]).shape[-1]),
                     all(SpikeFormat.of(ranges[resolve(graph, v)[0]].step).unit
                         for v in n.inputs))
            for n in graph.ops(o.TDMatMul)}


def legal_lanes(m: int) -> list[int]:
    """Lanes a layer of `m` outputs takes, ascending: P | m with m / P a power of two."""
    legal, p = [m], m
    while p % 2 == 0:
        p //= 2
        legal.append(p)
    return sorted(legal)


def _listing(values: list[int]) -> str:
    return ", ".join(map(str, values))


def check_parallel(value: int | None, option: str = "--parallel") -> None:
    """A global value must be a whole number of lanes, at least 1."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                              or value < 1):
        raise SnnccError(Diagnostic(
            f"{option} {value!r} is not a number of output lanes per cycle",
            fix=f"use an integer of at least 1 (each layer takes its largest legal value up "
                f"to it), e.g. {option} 8"))


def check_in_flight(value: int | None, option: str = "--in-flight",
                    example: str = "--in-flight 6") -> None:
    """Inferences in flight: a whole number from IN_FLIGHT."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                              or value not in IN_FLIGHT):
        raise SnnccError(Diagnostic(
            f"{option} {value!r} is not a legal number of inferences in flight",
            fix=f"use an integer from {IN_FLIGHT.start} to {IN_FLIGHT.stop - 1} (more: a "
                f"shorter initiation interval and more buffer memory), e.g. {example}"))


def read_config(path: Path) -> dict:
    """The raw hw.json (shape-checked, layer names not yet): refused before compiling."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise SnnccError(Diagnostic("the hardware config does not exist", file=str(path),
                                    fix="pass an existing JSON file to --hw-config")) from None
    except (OSError, UnicodeDecodeError) as e:
        raise SnnccError(Diagnostic(f"cannot read the hardware config: {e}", file=str(path),
                                    fix="pass a readable JSON file to --hw-config")) from None
    except json.JSONDecodeError as e:
        raise SnnccError(Diagnostic(f"the hardware config is not JSON: {e.msg} at line "
                                    f"{e.lineno}, column {e.colno}", file=str(path),
                                    fix='write e.g. {"layers": {"/fc1/MatMul": 4}}')) from None
    example = 'e.g. {"parallel": 8, "layers": {"/fc1/MatMul": 4}}'
    if not isinstance(data, dict) or set(data) - set(CONFIG_KEYS):
        extra = sorted(set(data) - set(CONFIG_KEYS)) if isinstance(data, dict) else []
        what = f"unknown keys {extra}" if extra else "not a JSON object"
        raise SnnccError(Diagnostic(f"the hardware config has {what}; it takes the keys "
                                    f"{', '.join(CONFIG_KEYS)}", file=str(path), fix=example))
    if "parallel" in data:
        check_parallel(data["parallel"], f"{path}: \"parallel\"")
    if not isinstance(data.get("inputs", {}), dict):
        raise SnnccError(Diagnostic('the hardware config\'s "inputs" is not an object of '
                                    'ONNX node names to input channels per cycle',
                                    file=str(path), fix='write e.g. {"inputs": '
                                    '{"/conv2/Conv": 4}}'))
    if not isinstance(data.get("events", {}), dict):
        raise SnnccError(Diagnostic('the hardware config\'s "events" is not an object of '
                                    'ONNX node names to input events per cycle',
                                    file=str(path), fix='write e.g. {"events": '
                                    '{"/fc2/MatMul": 2}}'))
    if "in_flight" in data:
        check_in_flight(data["in_flight"], f"{path}: \"in_flight\"", '"in_flight": 6')
    layers = data.get("layers", {})
    if not isinstance(layers, dict):
        raise SnnccError(Diagnostic('the hardware config\'s "layers" is not an object of '
                                    'ONNX node names to lanes', file=str(path), fix=example))
    return data


@dataclass(frozen=True)
class _Knob:
    """A knob-able layer: its IR node, its legal values and names."""

    node: Node
    legal: list[int]
    unit: str  # what a value counts, per cycle
    why: str  # why those values are legal
    name: str  # its layer name (what `snncc report` shows)


def _knob(n: Node, name: str, d: dict[str, int], sums: dict[str, tuple[int, bool]]) -> _Knob:
    if isinstance(n.op, o.Synapse):
        m = outputs(n)
        return _Knob(n, legal_lanes(m), "output lanes",
                     f"divisors of its {m} outputs by a power of two", name)
    if isinstance(n.op, o.Neuron):
        return _Knob(n, legal_lanes(d[n.name]), "neurons",
                     f"divisors of its {d[n.name]} neurons a row by a power of two", name)
    k, unit = sums[n.name]
    if not unit or k == 1:
        return _Knob(n, [1], "terms", "one event a cycle: its operands are not unit spikes"
                     if not unit else "it sums one term", name)
    return _Knob(n, [1, k], "terms", f"1: one event a cycle; {k}: all {k} terms of an "
                 "output row", name)


def _knobs(graph: Graph) -> tuple[list[_Knob], dict[str, list[_Knob]]]:
    """The knob-able layers in topological order (synapses, neuron layers, TD-MatMuls),
    and the names a config may give them: each one's ONNX node and its layer name."""
    names, d, sums = layer_names(graph), rows(graph), td_sums(graph)
    layers = [_knob(n, names[n.name], d, sums) for n in graph.topo()
              if isinstance(n.op, o.Synapse | o.Neuron | o.TDMatMul)]
    by_name: dict[str, list[_Knob]] = {}
    for k in layers:
        for key in dict.fromkeys((k.node.origin, k.name)):
            by_name.setdefault(key, []).append(k)
    return layers, by_name


_KINDS = "linear, conv, neuron or TD-MatMul"


def _unknown(name: str, layers: list[_Knob], by_name: dict[str, list[_Knob]],
             source: str, kinds: str = _KINDS, values: str = "lanes",
             knob: str = "a parallelism knob") -> Diagnostic:
    """An unknown layer name: every layer of a small model, else the closest names, with
    their legal `values`."""
    if len(layers) <= LISTED:
        shown = [(k.name, k) for k in layers]
    else:
        close = difflib.get_close_matches(name, list(by_name), n=6, cutoff=0.5)
        shown = [(c, by_name[c][0]) for c in close]
    listing = "; ".join(f"{c} ({_listing(k.legal) or 'none'})" for c, k in shown)
    if len(layers) <= LISTED:
        fix = f"name one of the {kinds} layers (legal {values}): {listing}"
    else:
        fix = (f"name a {kinds} layer by its ONNX node or layer name (`snncc "
               "report` lists them)" + (f"; the closest (legal {values}): {listing}"
                                        if listing else ""))
    return Diagnostic(f"no layer with {knob} is named {name!r}", file=source, fix=fix)


def config(graph: Graph, parallel: int | None = None, raw: dict | None = None,
           source: str = "hw.json", pipeline: bool = False,
           in_flight: int | None = None) -> HwConfig:
    """The knob for `graph`: `parallel` (the command line's) over the config's global
    value, and the config's layers (by ONNX node or layer name), each checked against the
    graph. Every problem is raised at once, with the legal values."""
    check_parallel(parallel)
    check_in_flight(in_flight)
    raw = raw or {}
    knob_layers, by_name = _knobs(graph)
    problems = []
    layers: dict[str, int] = {}
    for name, value in raw.get("layers", {}).items():
        if name not in by_name:
            problems.append(_unknown(name, knob_layers, by_name, source))
            continue
        for k in by_name[name]:  # one layer (or several sharing an ONNX node)
            if isinstance(value, bool) or not isinstance(value, int) or value not in k.legal:
                problems.append(Diagnostic(
                    f"{value!r} {k.unit} per cycle is not a legal value for this layer", name,
                    file=source, fix=f"use one of {_listing(k.legal)} ({k.why})"))
                break
            layers[k.node.name] = value
    flight = in_flight if in_flight is not None else raw.get("in_flight", HwConfig.in_flight)
    hw = HwConfig(parallel if parallel is not None else raw.get("parallel"), layers,
                  pipeline, in_flight=flight)
    inputs, events = (_per_synapse(e, graph, hw, raw.get(e.key, {}), knob_layers, by_name,
                                   source, problems) for e in (INPUTS, EVENTS))
    if problems:
        raise SnnccError(problems)
    return replace(hw, inputs=inputs, events=events) if inputs or events else hw


def synapse_inputs(graph: Graph) -> dict[str, tuple[int, int, bool]]:
    """Of each synapse, by IR node: the inputs C of a row (a conv's input channels, a
    linear layer's inputs), its weights' bits, and whether it reads unit spikes or
    analog codes (what snn_conv_rows takes)."""
    from snncc.backends.verilog.layout import resolve
    from snncc.backends.verilog.spikes import SpikeFormat
    from snncc.intmath import signed_bits
    from snncc.ranges import value_ranges

    ranges = value_ranges(graph)
    out = {}
    for n in graph.ops(o.Synapse):
        op = n.op
        assert isinstance(op, o.Synapse)
        c = int(op.weight.shape[0] if op.kind == "dense" else graph.node(n.inputs[0]).shape[0])
        unit = op.analog or SpikeFormat.of(ranges[resolve(graph, n.inputs[0])[0]].step).unit
        out[n.name] = (c, signed_bits(int(op.weight.min()), int(op.weight.max())), unit)
    return out


@dataclass(frozen=True)
class _Entry:
    """A per-synapse entry of the config beside "layers": its key, what it counts, and
    its legal values for a layer (`legal(c, ww, hw, n)`: [] when the layer takes none)."""

    key: str
    what: str  # "input channels", "input events"
    verb: str  # what a full-width layer does that a folded one does not
    rule: str  # the legal values, said in the fix
    legal: Callable[[int, int, HwConfig, Node], list[int]]


INPUTS = _Entry("inputs", "input channels", "takes several input channels a cycle",
                "divisors of its {c} inputs by a power of two, at most "
                f"{TREE_INPUT_BITS} weight bits a lane",
                lambda c, ww, hw, n: sorted(hw.channels(n, c, ww)))
EVENTS = _Entry("events", "input events", "walks several events a cycle",
                "its non-silent channel groups walked a cycle, a copy of its weight ROM "
                "each", lambda c, ww, hw, n: list(range(1, EVENTS_MAX + 1))
                if hw.channels(n, c, ww) else [])


def _per_synapse(entry: _Entry, graph: Graph, hw: HwConfig, raw: dict,
                 knob_layers: list[_Knob], by_name: dict[str, list[_Knob]], source: str,
                 problems: list[Diagnostic]) -> dict[str, int]:
    """The config's `entry` ("inputs": input channels a cycle; "events": non-silent
    channel groups walked a cycle) of full-width linear and conv layers, by IR node, each
    checked against the layer and the lanes `hw` gives it (its problems added to
    `problems`)."""
    if not raw:
        return {}
    synapses = synapse_inputs(graph)

    def legal(k: _Knob) -> _Knob:
        c, ww, unit = synapses[k.node.name]
        return replace(k, legal=entry.legal(c, ww, hw, k.node) if unit else [])

    mine = {key: [legal(k) for k in ks if k.node.name in synapses]
            for key, ks in by_name.items()}
    mine = {key: ks for key, ks in mine.items() if ks}
    out = {}
    for name, value in raw.items():
        found = mine.get(name, [])
        if not found:
            problems.append(_unknown(name, [legal(k) for k in knob_layers
                                            if k.node.name in synapses], mine, source,
                                     "linear or conv", f"{entry.what} a cycle",
                                     f"{entry.what} per cycle"))
            continue
        for k in found:
            n = k.node
            c, _, unit = synapses[n.name]
            if not k.legal:
                why = ("its input spikes are not unit spikes: it takes one event a cycle"
                       if not unit else f"its engine runs folded ({hw.lanes(n)} of "
                       f"{outputs(n)} output lanes): only a full-width layer {entry.verb}")
                problems.append(Diagnostic(
                    f"{entry.what} per cycle cannot be set for this layer: {why}", name,
                    file=source, fix=f'remove it from "{entry.key}"' + (
                        f' or give it all {outputs(n)} lanes in "layers"' if unit else "")))
                break
            if isinstance(value, bool) or not isinstance(value, int) or value not in k.legal:
                problems.append(Diagnostic(
                    f"{value!r} {entry.what} per cycle is not a legal value for this layer",
                    name, file=source,
                    fix=f"use one of {_listing(k.legal)} ({entry.rule.format(c=c)})"))
                break
            out[n.name] = value
    return out
