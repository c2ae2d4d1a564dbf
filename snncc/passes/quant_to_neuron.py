"""quant-to-neuron: lower the quantized ANN to integer SNN ops.

Every value is tracked as one of
- ``Codes``: spike counts q with real value ``scale*q + offset``;
- ``Cur``: an integer current I with real value ``a*I + b``;
and every quantizer on a current becomes a neuron whose level thresholds are exact
integers on I (``intmath.level_thresholds``), ties rounded as the source model rounds.

Linear layers on spikes become synapses. Their integer weights are the quantized weight
codes where that is exact (a = weight scale * input scale * the following BN/affine
multiplier, per output channel). Currents that meet other currents in the residual
stream, or reach the readout, need one common unit: their synapses use fixed point,
``W_int = round(W_real * s_in * m * 2^F)`` with ``a = 2^-F``. Unless ``frac_bits`` is
given, F is chosen so that the worst-case sum of those roundings stays below 1/65536 of the
finest quantizer step that reads them (within the 31-bit weight bound). (1/4096 before: on
a 12-block DeiT-family model float64 put one boundary case on onnxruntime's side of
snncc's, bench/boundary_float64.py; two bits more already agree with float64.) That
rounding is the one admissible source of disagreement with the float model (DESIGN §3).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from math import ceil, log2
from typing import Any, NoReturn

import numpy as np

from snncc import ops as o
from snncc.errors import Diagnostic, SnnccError
from snncc.intmath import compress, level_thresholds, to_fixed
from snncc.ir import Graph, Node
from snncc.passes._rewrite import full_rank, per_axis_only, single_user
from snncc.passes.base import Pass, PassResult, register
from snncc.reference import EVAL

STREAM_WEIGHT_BITS = 20  # float weights outside the stream: the largest becomes ~2**20
STREAM_ERROR = 2.0**-16  # worst-case fixed-point error, as a fraction of the finest step


@dataclass(frozen=True)
class Codes:
    node: str
    scale: np.ndarray
    offset: np.ndarray
    hi: int
    analog: bool = False
    lo: int = 0

    @property
    def peak(self) -> int:
        """The largest magnitude a code takes."""
        return max(abs(self.lo), abs(self.hi), 1)


@dataclass(frozen=True)
class Cur:
    node: str
    a: np.ndarray
    b: np.ndarray
    bound: int  # |I| <= bound
    fused: frozenset[str] = frozenset()  # Affine nodes already folded into `a`


@dataclass(frozen=True)
class Flt:
    node: str


Val = Codes | Cur | Flt


class Refuse(Exception):
    """This node cannot be lowered; a diagnostic has been recorded."""


@register
@dataclass(frozen=True)
class QuantToNeuron(Pass):
    name = "quant-to-neuron"
    T: int = 7
    frac_bits: int | None = None

    def run(self, graph: Graph) -> PassResult:
        if any(isinstance(n.op, o.SNN_OPS[:7]) for n in graph.topo()):
            return PassResult(graph, False)
        lowering = Lowering(graph, self.T, self.frac_bits)
        return PassResult(lowering.run(), True)


@dataclass
class Lowering:
    src: Graph
    T: int
    frac_bits: int | None
    out: Graph = field(init=False)
    vals: dict[str, Val] = field(default_factory=dict)
    problems: list[Diagnostic] = field(default_factory=list)
    stream: set[str] = field(default_factory=set)
    node: Node | None = None

    def __post_init__(self):
        self.out = Graph(self.src.name)
        self.out.meta = dict(self.src.meta)

    def run(self) -> Graph:
        self.stream = _stream_synapses(self.src)
        F = self.frac_bits if self.frac_bits is not None else self._auto_frac_bits()
        self.F = F
        poisoned: set[str] = set()
        for n in self.src.topo():
            if any(i in poisoned for i in n.inputs):
                poisoned.add(n.name)
                continue
            self.node = n
            try:
                self.vals[n.name] = self._lower(n)
            except Refuse:
                poisoned.add(n.name)
        for name in self.src.outputs:
            if name not in poisoned:
                self._readout(name)
        if self.problems:
            raise SnnccError(self.problems)
        self.out.inputs = list(self.src.inputs)
        self.out.meta.update(frac_bits=F, T=self.T)
        self.out.prune()
        return self.out

    # ------------------------------------------------------------ helpers
    @property
    def current(self) -> Node:
        """The node being lowered."""
        assert self.node is not None, "no node is being lowered"
        return self.node

    def refuse(self, message: str, fix: str) -> NoReturn:
        n = self.current
        self.problems.append(Diagnostic(message, n.origin, n.op.name, fix))
        raise Refuse

    def emit(self, op: o.Op, inputs: list[str], suffix: str = "") -> str:
        n = self.current
        name = self.out.fresh(n.name + suffix)
        self.out.add(name, op, inputs, origin=n.origin)
        return name

    def arr(self, c: np.ndarray | float, name: str | None = None) -> np.ndarray:
        """A constant compressed and given the full per-sample rank of `name`'s value."""
        shape = self.out.node(name).shape if name else self.current.shape
        return compress(full_rank(np.broadcast_to(np.asarray(c, np.float64),
                                                  np.broadcast_shapes(np.shape(c), shape)),
                                  len(shape)))

    def _auto_frac_bits(self) -> int:
        """F with sum(fan-in * top code) * 2^-(F+1) <= STREAM_ERROR * the finest step that
        reads the stream, and the largest stream weight within 31 bits."""
        if not self.stream:
            return 16
        g = self.src
        steps = [float(np.min(q.scale)) for q in _readers(g, self.stream)]
        finest = min(steps, default=1.0)
        error_units, peak = 0, 0.0
        for name in self.stream:
            n = g.node(name)
            op = n.op
            if isinstance(op, o.QuantAct):  # codes enter the stream through s in fixed point
                error_units += max(abs(op.lo - op.zero_point), abs(op.hi - op.zero_point))
                peak = max(peak, float(np.max(op.scale)))
                continue
            w = _layer_weight(n)
            fan_in = w.values.size // (w.values.shape[-1] if isinstance(op, o.Dense)
                                       else w.values.shape[0])
            q = _source_quant(g, n.inputs[0])
            top = max(abs(q.lo), abs(q.hi)) if q else 1
            error_units += fan_in * top
            scale = float(np.max(q.scale)) if q else 1.0
            peak = max(peak, float(np.max(np.abs(w.real()))) * scale)
        wanted = ceil(log2(error_units / (2 * STREAM_ERROR * finest)))
        return max(0, min(wanted, 31 - ceil(log2(peak)) if peak else wanted))

    def _lower(self, n: Node) -> Val:
        handler = LOWER.get(type(n.op))
        if handler is None:
            self.refuse(f"{n.op.name} cannot be made spike-driven", "remove or rewrite it")
        return handler(self, n, [self.vals[i] for i in n.inputs])

    # ------------------------------------------------------------ readout
    def _readout(self, name: str) -> None:
        v = self.vals[name]
        n = self.node = self.src.node(name)
        if isinstance(v, Codes):
            try:
                v = _as_current(self, v, stream=True)
            except Refuse:
                return
        if not isinstance(v, Cur) or np.size(np.unique(v.a)) != 1:
            self.problems.append(Diagnostic(
                "the model output must be a current in one unit (logits of a linear layer)",
                n.origin, n.op.name, "end the model with a Linear layer"))
            return
        scale = float(np.ravel(v.a)[0])
        offset = self.arr(v.b, v.node)
        bias = to_fixed(offset / scale, 0)
        out = self.emit(o.Readout(scale, offset, bias), [v.node], "/readout")
        self.out.outputs.append(out)


# ---------------------------------------------------------------- stream analysis

_PASS_THROUGH = (o.Affine, o.BatchNorm, o.ReduceSum, o.SumPool, o.Add, o.Sub) + o.LAYOUT_OPS


def _stream_synapses(graph: Graph) -> set[str]:
    """Dense/Conv nodes whose current meets other currents or reaches an output, and the
    quantizers whose codes do."""
    seeds = list(graph.outputs)
    for n in graph.ops(o.Add, o.Sub):
        seeds += n.inputs
    found, seen = set(), set()
    while seeds:
        name = seeds.pop()
        if name in seen:
            continue
        seen.add(name)
        n = graph.node(name)
        if isinstance(n.op, o.Dense | o.Conv | o.QuantAct):
            found.add(name)
        elif isinstance(n.op, _PASS_THROUGH):
            seeds += n.inputs
    return found


def _readers(graph: Graph, stream: set[str]) -> list[o.QuantAct]:
    """The quantizers that read stream currents."""
    found: list[o.QuantAct] = []
    seen: set[str] = set()
    todo = list(stream)
    while todo:
        name = todo.pop()
        for u in graph.users(name):
            if u.name in seen:
                continue
            seen.add(u.name)
            if isinstance(u.op, o.QuantAct):
                found.append(u.op)
            elif isinstance(u.op, _PASS_THROUGH + (o.Relu,)):
                todo.append(u.name)
    return found


def _source_quant(graph: Graph, name: str) -> o.QuantAct | None:
    """The quantizer whose codes reach `name` through rewiring and pooling."""
    n = graph.node(name)
    while not isinstance(n.op, o.QuantAct):
        if not isinstance(n.op, o.LAYOUT_OPS + (o.MaxPool, o.Relu, o.Affine)) or not n.inputs:
            return None
        n = graph.node(n.inputs[0])
    return n.op


def _layer_weight(n: Node) -> o.Weight:
    """The weight of a Dense or Conv node."""
    op = n.op
    if not isinstance(op, o.Dense | o.Conv):
        raise TypeError(f"{n.name} is {op.name}, not Dense or Conv")
    return op.weight


# ---------------------------------------------------------------- lowering rules

Rule = Callable[["Lowering", Node, Sequence[Val]], Val]
LOWER: dict[type, Rule] = {}


def lowers(*kinds: type) -> Callable[[Rule], Rule]:
    def register_rule(fn: Rule) -> Rule:
        for k in kinds:
            LOWER[k] = fn
        return fn
    return register_rule


@lowers(o.Input)
def _input(lw: Lowering, n: Node, xs: Sequence[Val]) -> Val:
    lw.out.add(n.name, o.Input(), origin=n.origin, shape=n.shape, kind=o.FLOAT)
    return Flt(n.name)


@lowers(o.QuantAct)
def _quant_act(lw: Lowering, n: Node, xs: Sequence[Val]) -> Val:
    x, op = xs[0], n.op_as(o.QuantAct)
    if isinstance(x, Flt):
        return _encode_input(lw, n, x)
    if isinstance(x, Codes):
        if (np.array_equal(x.scale, lw.arr(op.scale, x.node)) and not np.any(x.offset)
                and op.spikeable and op.hi >= x.hi):
            return x
        x = _as_current(lw, x, stream=False)  # requantized: the codes become a current
    if not op.spikeable and _needs_spikes(lw.src, n.name):
        lw.refuse(f"signed or zero-point quantizer (codes {op.lo}..{op.hi}, zero point "
                  f"{op.zero_point}) where spikes are needed",
                  _QOPERATOR_RELU if lw.src.meta.get("qoperator") else
                  "use an unsigned quantizer with zero point 0 after a ReLU")
    _check_levels(lw, op)
    if not op.spikeable:
        return _signed_requantize(lw, n, x)
    sign, theta = level_thresholds(x.a, x.b, lw.arr(op.scale, x.node), op.zero_point,
                                   op.lo, op.hi, op.rounding)
    theta = np.clip(theta, -x.bound, x.bound + 1)
    sign, theta = _compress_neuron(sign, theta)
    neuron = o.Neuron(sign, theta, op.levels, lw.arr(op.scale, x.node))
    return Codes(lw.emit(neuron, [x.node]), neuron.scale, lw.arr(0.0, x.node), op.hi)


_SPIKE_READERS = (o.Dense, o.Conv, o.MatMul, o.MaxPool)
_QOPERATOR_RELU = ("onnxruntime's QOperator quantizer removes a ReLU that follows a quantized op "
                   "and hands its users the op's codes, signed here: quantize with "
                   "quant_format=QuantFormat.QDQ, which keeps the ReLU")


def _needs_spikes(graph: Graph, name: str) -> bool:
    """Does a layer that reads spikes read this value (through rewiring and scaling)?"""
    todo, seen = [name], set()
    while todo:
        for u in graph.users(todo.pop()):
            if isinstance(u.op, _SPIKE_READERS):
                return True
            if isinstance(u.op, o.LAYOUT_OPS + (o.Affine, o.BatchNorm)) and u.name not in seen:
                seen.add(u.name)
                todo.append(u.name)
    return False


def _check_levels(lw: Lowering, op: o.QuantAct) -> None:
    """The real cause when a quantizer needs more spikes than T, and both fixes. (A signed
    one needs as many as it has levels on either side of its zero point.)"""
    need = max(op.hi - max(op.zero_point, op.lo), min(op.zero_point, op.hi) - op.lo)
    if need <= lw.T:
        return
    bits = ceil(log2(op.levels + 1))
    lw.refuse(f"{bits}-bit activations: {op.levels} levels > T = {lw.T}",
              f"use --calibrate DATA (requantizes to T levels) or -T {op.levels}")


def _signed_requantize(lw: Lowering, n: Node, x: Cur) -> Cur:
    """A quantizer with signed codes (or a zero point inside its range) on a current: its
    value s*(q - zp) becomes two neurons, one counting the levels above the zero point
    and one those below, whose spikes add +1 and -1 (or s in fixed point, in the residual
    stream) to a current again. Exact: no spike carries a sign."""
    op = n.op_as(o.QuantAct)
    scale = lw.arr(op.scale, x.node)
    sign, theta = level_thresholds(x.a, x.b, scale, op.zero_point, op.lo, op.hi, op.rounding)
    theta = np.clip(theta, -x.bound, x.bound + 1)

    def at_least(c: int) -> np.ndarray:  # q >= c  iff  sign*I >= this
        if c <= op.lo:
            return np.full(theta.shape[:-1], -x.bound)
        return theta[..., c - op.lo - 1] if c <= op.hi else np.full(theta.shape[:-1],
                                                                     x.bound + 1)

    zp = op.zero_point
    up = [at_least(zp + k) for k in range(1, op.hi - zp + 1)]  # q - zp >= k
    down = [1 - at_least(zp - k + 1) for k in range(1, zp - op.lo + 1)]  # zp - q >= k
    parts, bound = [], 0
    for side, table, polarity in (("/pos", up, 1), ("/neg", down, -1)):
        if not table:
            continue
        sg, th = _compress_neuron(polarity * sign, np.stack(table, axis=-1))
        spikes = lw.emit(o.Neuron(sg, th, len(table), scale), [x.node], side)
        syn, a, w = _identity_synapse(lw, spikes, scale, n.name in lw.stream, polarity)
        parts.append(syn)
        bound = max(bound, w * len(table))
    node = parts[0] if len(parts) == 1 else lw.emit(o.AddCurrent(), parts, "/current")
    return Cur(node, lw.arr(a, node), lw.arr(0.0, node), bound)


def _as_current(lw: Lowering, x: Codes, stream: bool) -> Cur:
    """Spike codes as a current (to requantize them, or to add them to the stream)."""
    if x.analog:
        lw.refuse("requantizes the analog input codes",
                  "feed the quantized input straight to the first layer")
    node, a, w = _identity_synapse(lw, x.node, x.scale, stream, 1)
    return Cur(node, lw.arr(a, node), lw.arr(x.offset, node), w * x.peak)


def _identity_synapse(lw: Lowering, src: str, scale, stream: bool, polarity: int):
    """(node, unit, largest weight): each spike adds polarity*1 to its own element's
    current (unit: the spike's scale), or polarity*scale in fixed point in the stream."""
    shape = lw.out.node(src).shape
    if stream:
        s = _along(scale, shape, len(shape) - 1)
        if s is None:
            lw.refuse("a quantizer whose scale varies along more than the last axis feeds "
                      "the residual stream", "use per-tensor activation quantizers")
        w, a = to_fixed(np.broadcast_to(s, shape[-1:]), lw.F), 2.0**-lw.F
    else:
        w, a = np.ones(shape[-1], np.int64), scale
    syn = o.Synapse(np.diag(polarity * w).astype(np.int64), "dense")
    return lw.emit(syn, [src], "/synapse"), a, int(np.max(np.abs(w)))


def _compress_neuron(sign: np.ndarray, theta: np.ndarray):
    both = np.concatenate([sign[..., None].astype(np.int64), theta], axis=-1)
    columns = both.shape[-1]
    both = compress(both)
    # compress the neuron axes only: one column per level stays even when all are equal
    both = np.broadcast_to(both, both.shape[:-1] + (columns,))
    return both[..., 0].astype(np.int8), both[..., 1:].astype(np.int64)


def _encode_input(lw: Lowering, n: Node, x: Flt) -> Codes:
    op = n.op_as(o.QuantAct)
    analog = not op.spikeable or op.levels > lw.T
    scale = lw.arr(op.scale, x.node)
    enc = o.SpikeInput(scale, op.zero_point, op.lo, op.hi, op.rounding, analog)
    return Codes(lw.emit(enc, [x.node], "/encode"), scale,
                 lw.arr(-scale * op.zero_point, x.node), op.hi, analog, op.lo)


@lowers(o.Relu)
def _relu(lw: Lowering, n: Node, xs: Sequence[Val]) -> Val:
    x = xs[0]
    if isinstance(x, Codes) and np.all(x.offset >= 0) and np.all(x.scale > 0):
        return x
    lw.refuse("ReLU without a quantizer after it cannot be spiked",
              "follow the ReLU by an unsigned quantizer (quantized ReLU)")


@lowers(o.Affine, o.BatchNorm)
def _affine(lw: Lowering, n: Node, xs: Sequence[Val]) -> Val:
    x = xs[0]
    op = n.op
    mul, add = (op.mul, op.add) if isinstance(op, o.Affine) else n.op_as(o.BatchNorm).as_affine(
        len(n.shape))
    if isinstance(x, Codes):
        return Codes(x.node, lw.arr(x.scale * mul), lw.arr(x.offset * mul + add), x.hi, x.analog)
    if isinstance(x, Cur):
        if n.name in x.fused:
            return Cur(x.node, x.a, lw.arr(x.b * mul + add), x.bound)
        return Cur(x.node, lw.arr(x.a * mul), lw.arr(x.b * mul + add), x.bound)
    lw.refuse("scales the unquantized input", "quantize the input first")


def _fusable_affine(lw: Lowering, n: Node, out_axis: int) -> Node | None:
    """The Affine right after a Dense/Conv, if its multiplier is per output channel."""
    user = single_user(lw.src, n.name)
    if user is None or not isinstance(user.op, o.Affine):
        return None
    if not per_axis_only(user.op.mul, len(n.shape), out_axis):
        return None
    return user


@lowers(o.Dense, o.Conv)
def _linear(lw: Lowering, n: Node, xs: Sequence[Val]) -> Val:
    x = xs[0]
    if not isinstance(x, Codes):
        lw.refuse("a linear layer reads an activation that is not quantized (not spikes)",
                  "put a quantized ReLU (unsigned quantizer) before the layer")
    dense = isinstance(n.op, o.Dense)
    rank = len(n.shape)
    out_axis = rank - 1 if dense else 0
    in_axis = len(lw.src.node(n.inputs[0]).shape) - 1 if dense else 0
    fuser = _fusable_affine(lw, n, out_axis)
    fuse = fuser.op_as(o.Affine) if fuser else None
    m = _per_channel(full_rank(fuse.mul, rank) if fuse else np.ones(()), n.shape, out_axis)
    s_in = _along(x.scale, lw.src.node(n.inputs[0]).shape, in_axis)
    w = _layer_weight(n)
    if (n.name not in lw.stream and w.scale is not None and s_in is not None
            and np.size(np.unique(s_in)) == 1):  # exact: the weight codes themselves
        wscale = _per_channel(full_rank(w.scale, w.values.ndim), w.values.shape,
                              w.values.ndim - 1 if dense else 0)
        w_int = w.values.astype(np.int64)
        a = wscale * float(np.ravel(s_in)[0]) * m
    else:
        real = w.real() * _in_factor(x, n, dense, lw)
        real = real * (m if dense else m.reshape(-1, 1, 1, 1))
        F = lw.F if n.name in lw.stream else _local_bits(real)
        if float(np.max(_fan_in_abs(real, dense), initial=0)) * x.peak * 2.0**F >= 2.0**62:
            lw.refuse(f"{F} fraction bits make this layer's fixed-point currents overflow "
                      "64-bit integers", "pass a smaller --frac-bits (or leave it automatic)")
        w_int = to_fixed(real, F)
        a = np.full(n.shape[out_axis], 2.0**-F)
    syn = o.Synapse(w_int, "dense" if dense else "conv", analog=x.analog, **(
        {} if dense else _conv_window(n.op_as(o.Conv))))
    node = lw.emit(syn, [x.node])
    a_full = a.reshape((-1,) + (1,) * (rank - 1 - out_axis))
    offset_current = EVAL[type(n.op)](n, [np.broadcast_to(x.offset, (1,) + lw.src.node(
        n.inputs[0]).shape)])[0] if np.any(x.offset) else np.zeros(())
    if fuse is not None:
        offset_current = offset_current * full_rank(fuse.mul, rank)
    bound = int(np.max(_fan_in_abs(w_int, dense))) * x.peak
    fused = frozenset({fuser.name}) if fuser is not None else frozenset()
    return Cur(node, lw.arr(a_full, node), lw.arr(offset_current, node), bound, fused)


def _conv_window(op: o.Conv) -> dict[str, Any]:
    """A Conv's window, as the Synapse's keyword arguments."""
    return dict(strides=op.strides, pads=op.pads, dilations=op.dilations, group=op.group)


def _per_channel(c: np.ndarray, shape: o.Shape, axis: int) -> np.ndarray:
    """The values of a constant along `axis` (which it varies along only)."""
    values = _along(c, shape, axis)
    if values is None:
        raise AssertionError("constant varies along more than one axis")
    return values


def _along(c: np.ndarray, shape: o.Shape, axis: int) -> np.ndarray | None:
    """The values of a constant along `axis` (None if it varies along another axis)."""
    rank = len(shape)
    c = full_rank(c, rank)
    if not per_axis_only(c, rank, axis):
        return None
    full = np.broadcast_to(c, tuple(1 if i != axis % rank else shape[axis] for i in range(rank)))
    return full.ravel().astype(np.float64)


def _in_factor(x: Codes, n: Node, dense: bool, lw: Lowering) -> np.ndarray:
    """The input scale as a factor on the weight's input axis."""
    in_shape = lw.src.node(n.inputs[0]).shape
    s = _along(x.scale, in_shape, len(in_shape) - 1 if dense else 0)
    if s is None:
        lw.refuse("input scale varies along more than the channel axis",
                  "use per-tensor or per-channel activation quantizers")
    if dense:
        return s.reshape(-1, 1)
    conv = n.op_as(o.Conv)
    group_in = conv.weight.values.shape[1]
    if np.size(np.unique(s)) == 1:
        return np.full((1, group_in, 1, 1), s[0])
    if conv.group != 1:
        lw.refuse("per-channel input scale into a grouped conv", "use a per-tensor quantizer")
    return s.reshape(1, -1, 1, 1)


def _local_bits(real: np.ndarray) -> int:
    peak = float(np.max(np.abs(real), initial=0))
    return 16 if peak == 0 else STREAM_WEIGHT_BITS - ceil(log2(peak))


def _fan_in_abs(w: np.ndarray, dense: bool) -> np.ndarray:
    return np.abs(w).sum(axis=0) if dense else np.abs(w).reshape(w.shape[0], -1).sum(axis=1)


@lowers(o.Add, o.Sub)
def _add(lw: Lowering, n: Node, xs: Sequence[Val]) -> Val:
    a, b = (_as_current(lw, v, stream=True) if isinstance(v, Codes) else v for v in xs)
    if isinstance(n.op, o.Sub) or not (isinstance(a, Cur) and isinstance(b, Cur)):
        lw.refuse("only currents (outputs of linear layers) can be added",
                  "add the branches before their quantizers (the residual stream)")
    if not (np.size(np.unique(a.a)) == 1 and np.array_equal(np.unique(a.a), np.unique(b.a))):
        lw.refuse(f"the two branches have different units ({_unit_mismatch(lw, a, b)})",
                  "quantize the branch first")
    node = lw.emit(o.AddCurrent(), [a.node, b.node])
    return Cur(node, lw.arr(a.a, node), lw.arr(a.b + b.b, node), a.bound + b.bound)


def _unit_mismatch(lw: Lowering, a: Cur, b: Cur) -> str:
    """Why two currents to be added are not in the stream's one fixed-point unit."""
    if any(isinstance(lw.out.node(v.node).op, o.MatMul) for v in (a, b)):
        return "a product of spikes feeds the residual stream without a quantizer"
    return ("a layer's current is scaled (BatchNorm, Mul, Div) after the layer and also "
            "feeds another branch unscaled, or is scaled per channel")


@lowers(o.MatMul)
def _matmul(lw: Lowering, n: Node, xs: Sequence[Val]) -> Val:
    a, b = xs
    if not (isinstance(a, Codes) and isinstance(b, Codes)) or a.analog or b.analog:
        lw.refuse("a product of two activations needs both quantized to spikes",
                  "put an unsigned quantizer (quantized ReLU) on both operands")
    if np.any(a.offset) or np.any(b.offset):
        lw.refuse("a product of spike tensors with an offset", "remove the offset")
    sa, sb = full_rank(a.scale, len(lw.out.node(a.node).shape)), full_rank(
        b.scale, len(lw.out.node(b.node).shape))
    if sa.shape[-1] != 1 or sb.shape[-2] != 1:
        lw.refuse("operand scales vary along the summed axis", "use per-tensor quantizers")
    node = lw.emit(o.MatMul(), [a.node, b.node])
    k = lw.out.node(a.node).shape[-1]
    return Cur(node, lw.arr(sa * sb, node), lw.arr(0.0, node), k * a.hi * b.hi)


@lowers(o.MaxPool)
def _maxpool(lw: Lowering, n: Node, xs: Sequence[Val]) -> Val:
    x = xs[0]
    if not isinstance(x, Codes) or x.analog:
        lw.refuse("max-pooling of a value that is not spikes", "quantize before the MaxPool")
    s, off = full_rank(x.scale, 3), full_rank(x.offset, 3)
    if np.any(s <= 0) or s.shape[1:] != (1, 1) or off.shape[1:] != (1, 1):
        lw.refuse("max-pool input scale varies inside a window", "use per-channel quantizers")
    node = lw.emit(n.op, [x.node])
    return Codes(node, lw.arr(s, node), lw.arr(off, node), x.hi)


@lowers(o.ReduceSum, o.SumPool)
def _sum(lw: Lowering, n: Node, xs: Sequence[Val]) -> Val:
    x = xs[0]
    if isinstance(x, Flt) or isinstance(x, Codes) and x.analog:
        lw.refuse("sums a value that is not spikes or a current", "quantize it first")
    unit, off = (x.scale, x.offset) if isinstance(x, Codes) else (x.a, x.b)
    in_shape = lw.src.node(n.inputs[0]).shape
    unit_out = _summed_unit(unit, in_shape, n.op)
    if unit_out is None:
        lw.refuse("the summed values have different units", "use per-channel quantizers")
    node = lw.emit(n.op, [x.node])
    summed_off = EVAL[type(n.op)](n, [np.broadcast_to(off, (1,) + in_shape)])[0]
    count = int(np.prod(in_shape)) // int(np.prod(n.shape))
    if isinstance(n.op, o.SumPool):
        count = n.op.kernel[0] * n.op.kernel[1]
    bound = (x.peak if isinstance(x, Codes) else x.bound) * count
    return Cur(node, lw.arr(unit_out, node), lw.arr(summed_off, node), bound)


def _summed_unit(unit, in_shape, op) -> np.ndarray | None:
    """The unit of a sum: the operands' unit, which must not vary along the summed axes."""
    u = full_rank(unit, len(in_shape))
    if isinstance(op, o.SumPool):
        return u if u.shape[1:] == (1, 1) else None
    axes = tuple(sorted(a % len(in_shape) for a in op.axes))
    if any(u.shape[a] != 1 for a in axes):
        return None
    return u if op.keepdims else np.squeeze(u, axis=axes)


@lowers(*o.LAYOUT_OPS)
def _layout(lw: Lowering, n: Node, xs: Sequence[Val]) -> Val:
    kinds = {type(x) for x in xs}
    if len(kinds) != 1 or Flt in kinds:
        lw.refuse("rewires values of different kinds together", "quantize them alike")
    node = lw.emit(n.op, [x.node for x in xs])

    def moved(attr: str) -> np.ndarray:
        full = [np.broadcast_to(getattr(x, attr), (1,) + lw.src.node(i).shape)
                for x, i in zip(xs, n.inputs, strict=True)]
        return lw.arr(EVAL[type(n.op)](n, full)[0], node)

    codes = [x for x in xs if isinstance(x, Codes)]
    if codes:
        if any(c.analog for c in codes):
            lw.refuse("rewires the analog input", "feed the input straight to the first layer")
        return Codes(node, moved("scale"), moved("offset"), max(c.hi for c in codes))
    return Cur(node, moved("a"), moved("b"), max(c.bound for c in xs if isinstance(c, Cur)))
