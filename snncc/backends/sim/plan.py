"""Compiled evaluation of an SNN graph for the interpreter: exact, whole layers at a time.

Both engines run on this. Every value gets a static bound on its magnitude that also
bounds every partial sum a kernel forms while computing it, over its terms and over the
whole time window (``snncc.ranges``, the analysis the HLS and Verilog backends size
their types with; a membrane holds a current's running sum). The bound picks the dtype a
current is computed and held in: float32 below 2**24, float64 below 2**53, int64 above.
Integers in that range are exact in the float type whatever the order of summation, so
float BLAS gives the integer result exactly. Spike counts and spike trains are uint8
(wider past 255 levels). Where a synapse's or a TDMatMul's operands fit 8 bits, its
products run on onnxruntime's integer MatMul instead (``integer``: exact, int32 sums),
several times faster than float BLAS on those shapes.

- ``run_exact``: exact mode in closed form, one pass (each neuron's count is its code).
- ``run_steps``: the step semantics, for any delay policy. Each value is computed over its
  activity window at once, time folded into the batch axis (a synapse is one matrix
  product for all of its steps); a neuron advances its membranes one step at a time and
  fires by the hardware's rule (``kernels.dif_steps``: no closed form, in any delay
  mode), and the TD ops work on spikes and running counts step by step. Two economies
  change no
  number: a current only ever integrated (every neuron it reaches fires after it has
  ended, or it is read out) is computed as its total, one step (by linearity, the sum of
  W·S(t) is W times the sum of S(t)); and a residual stream keeps its branches apart
  (``Sum``) instead of writing out every step between them.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from snncc import kernels
from snncc import ops as o
from snncc.backends.sim import levels
from snncc.backends.sim.integer import IntConv, IntMatMul, IntStacked, operand_type
from snncc.intmath import quantize
from snncc.ir import Graph, Node
from snncc.ranges import value_ranges
from snncc.reference import EVAL
from snncc.schedule import neuron_last_step, total_steps

F32_EXACT, F64_EXACT = 2**24, 2**53


def exact_dtype(bound: int) -> np.dtype:
    """The narrowest of float32, float64, int64 holding every integer up to `bound`."""
    if bound < F32_EXACT:
        return np.dtype(np.float32)
    return np.dtype(np.float64 if bound < F64_EXACT else np.int64)


def count_dtype(bound: int, signed: bool = False) -> np.dtype:
    """The unsigned type of spike counts up to `bound` (signed, for the trains of signed
    neurons, whose spikes are ±1)."""
    if signed:
        return np.dtype(np.int8 if bound <= 0x7F else np.int16 if bound <= 0x7FFF else np.int32)
    return np.dtype(np.uint8 if bound <= 0xFF else np.uint16 if bound <= 0xFFFF else np.uint32)


@dataclass
class Plan:
    """What the kernels need, prepared once per graph."""

    graph: Graph
    order: list[Node]
    bound: dict[str, int] = field(default_factory=dict)
    dtype: dict[str, np.dtype] = field(default_factory=dict)  # how each value is held
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    integer: dict[str, IntMatMul | IntConv] = field(default_factory=dict)  # 8-bit synapses
    stacked: dict[str, IntStacked] = field(default_factory=dict)  # TDMatMul on 8-bit counts
    neurons: dict[str, tuple[np.ndarray | None, list[np.ndarray]]] = field(
        default_factory=dict)  # (sign, per-level thresholds) for the closed form
    affine: dict[str, tuple[np.ndarray, np.ndarray]] = field(
        default_factory=dict)  # (scale, offset): the closed form in one pass, where proved
    dif: dict[str, tuple[np.ndarray | None, list[np.ndarray], int | None]] = field(
        default_factory=dict)  # (sign, thresholds then never, clamp): kernels.dif_steps
    last_use: dict[str, int] = field(default_factory=dict)
    fused: dict[str, Node] = field(default_factory=dict)  # a current -> the neuron alone reading it
    pooled: dict[str, tuple[Node, np.ndarray]] = field(
        default_factory=dict)  # a dense synapse -> (the ReduceSum alone reading it, weights)
    steps: int = 0  # end-to-end time steps
    whole: object = None  # ortgraph.Whole, False if the plan does not lower (built on demand)

    @property
    def readout(self) -> Node:
        (r,) = [n for n in self.order if isinstance(n.op, o.Readout)]
        return r

    def compute_dtype(self, name: str) -> np.dtype:
        return exact_dtype(self.bound[name])


_CACHE: weakref.WeakKeyDictionary[Graph, tuple[tuple[Node, ...], Plan]] = (
    weakref.WeakKeyDictionary())


def build(graph: Graph) -> Plan:
    """The plan of `graph` (cached while the graph's nodes stay the same)."""
    key = tuple(graph.nodes())  # a node is replaced whenever it changes (held: no id reuse)
    cached = _CACHE.get(graph)
    if cached is not None and cached[0] == key:
        return cached[1]
    plan = _build(graph)
    _CACHE[graph] = (key, plan)
    return plan


def _build(graph: Graph) -> Plan:
    plan = Plan(graph, [n for n in graph.topo()], steps=total_steps(graph))
    signed = any(n.op_as(o.Neuron).mode == "signed" for n in graph.ops(o.Neuron))
    ranges = value_ranges(graph)
    for k, n in enumerate(plan.order):
        for i in n.inputs:
            plan.last_use[i] = k
        if isinstance(n.op, o.Input):
            continue
        ins = [plan.bound.get(i, 0) for i in n.inputs]
        plan.bound[n.name] = b = ranges[n.name].bound
        analog = isinstance(n.op, o.SpikeInput) and n.op.analog
        plan.dtype[n.name] = (count_dtype(b, signed) if n.kind == o.CODES and not analog
                              else exact_dtype(b))
        if isinstance(n.op, o.Synapse):
            plan.weights[n.name] = n.op.weight.astype(exact_dtype(b), copy=False)
            _integer_kernel(plan, n, ranges.get(n.inputs[0]))
        if isinstance(n.op, o.TDMatMul):
            _stacked_kernel(plan, n, [ranges.get(i) for i in n.inputs])
        if (neuron := _fusible(plan, n)) is not None:
            plan.fused[n.name] = neuron
        if isinstance(n.op, o.Synapse) and (pool := _poolable(plan, n)) is not None:
            plan.pooled[n.name] = (pool, n.op.weight.astype(exact_dtype(
                ranges[pool.name].bound), copy=False))
        if isinstance(n.op, o.Neuron):
            plan.neurons[n.name] = _neuron_tables(n, ins[0], plan.dtype[n.inputs[0]])
            affine = levels.affine_tables(n.op.thresholds, n.op.sign, ins[0], n.shape,
                                          plan.dtype[n.inputs[0]])
            if affine is not None:
                plan.affine[n.name] = affine
            plan.dif[n.name] = _dif_tables(n, ins[0], plan.neurons[n.name][0])
    return plan


def _integer_kernel(plan: Plan, n: Node, x) -> None:
    """An integer kernel for a synapse whose operands (codes, spikes, or their sums over
    steps) fit 8 bits, if its weights and sums allow one (``integer.IntMatMul``)."""
    op = n.op_as(o.Synapse)
    if x is None:
        return
    lo, hi = min(x.step.lo, x.acc.lo), max(x.step.hi, x.acc.hi)
    operand = operand_type(lo, hi)
    if operand is None:  # not 8 bits: neither kernel fits
        return
    kernel = (IntMatMul.planned(op.weight, lo, hi) if op.kind == "dense"
              else IntConv.planned(op, lo, hi))  # the weights cut once, not to fit and again
    if kernel is not None:
        plan.integer[n.name] = kernel


def _stacked_kernel(plan: Plan, n: Node, xs) -> None:
    """An integer kernel for the closed form of a TDMatMul (counts times counts) whose
    counts fit 8 bits and whose sums fit int32 (``integer.IntStacked``; shifted to uint8
    where int8 is not exact here, its partial sums below terms * 255 * 255 < 2**31)."""
    if None in xs or plan.bound[n.name] >= 2**31:
        return
    a, b = (operand_type(x.acc.lo, x.acc.hi) for x in xs)
    if a is None or b is None:
        return
    kernel = IntStacked(a, b, ((xs[0].acc.lo, xs[0].acc.hi), (xs[1].acc.lo, xs[1].acc.hi)))
    terms = plan.graph.node(n.inputs[0]).shape[-1]
    if any(kernel.shift) and terms * 0xFF * 0xFF >= 2**31:
        return
    plan.stacked[n.name] = kernel


def _neuron_tables(n: Node, bound: int, dtype: np.dtype):
    """(sign or None if all +1, per-level thresholds) in the current's dtype. Thresholds
    beyond the current's reach are clipped to just past it, which changes no comparison."""
    op = n.op_as(o.Neuron)
    sign = None if np.all(op.sign == 1) else op.sign.astype(dtype)
    th = np.clip(op.thresholds, -bound - 1, bound + 1)
    return sign, kernels.level_tables(th, n.shape, dtype)


def _dif_tables(n: Node, bound: int, sign: np.ndarray | None):
    """(sign, rows, clamp) for ``kernels.dif_steps``: the L per-level thresholds and then
    `never`, one past the reach of every membrane. Membranes are compared clipped to
    ±clamp, one past every threshold (no comparison changes), so that the rows and the
    differences between them are exact in a type as narrow as the thresholds allow."""
    op = n.op_as(o.Neuron)
    th = np.clip(op.thresholds, -bound - 1, bound + 1)
    limit = min(int(np.max(np.abs(th), initial=0)) + 1, bound)
    rows = np.concatenate([th, np.full(th.shape[:-1] + (1,), limit + 1, th.dtype)], axis=-1)
    tables = kernels.level_tables(rows, n.shape, exact_dtype(2 * limit + 2))
    return sign, tables, (limit if limit < bound else None)


def _codes(plan: Plan, n: Node, v: np.ndarray) -> np.ndarray:
    """The neuron's count for the integrated current v: #{k : sign*v >= theta_k}."""
    if n.name in plan.affine:
        scale, offset = plan.affine[n.name]
        return kernels.affine_counts(v, scale, offset, n.op_as(o.Neuron).levels,
                                     plan.dtype[n.name])
    sign, th = plan.neurons[n.name]
    if sign is not None:
        v = v * sign
    return kernels.level_counts(v, th, plan.dtype[n.name])


def _batched(xs: list[np.ndarray], lead: int) -> list[np.ndarray]:
    """Operands given equal rank by 1-axes after the `lead` batch axes (per-sample shapes
    broadcast from the right)."""
    rank = max(x.ndim for x in xs)
    return [x.reshape(x.shape[:lead] + (1,) * (rank - x.ndim) + x.shape[lead:]) for x in xs]


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A stack of matrix products; BLAS wants contiguous float operands."""
    if a.dtype.kind == "i":
        return kernels.matmul(a, b)
    return kernels.stacked_matmul(a, b)


def _contiguous(x: np.ndarray, dtype) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=dtype)


def _synapse(plan: Plan, n: Node, x: np.ndarray) -> np.ndarray:
    """The synapse's current for codes or spikes x [B, ...] (B may fold steps in)."""
    op = n.op_as(o.Synapse)
    w = plan.weights[n.name]
    dt = plan.dtype[n.name]
    if dt.kind == "i":
        x = x.astype(np.int64, copy=False)
        if op.kind == "dense":
            return kernels.matmul(x, w)
        return kernels.conv2d(x, w, op.strides, op.pads, op.dilations, op.group)
    if n.name in plan.integer:
        return plan.integer[n.name](x, dt)
    if op.kind == "dense":
        return kernels.dense(_contiguous(x, dt), w)
    return kernels.conv2d_planes(x, w, op.strides, op.pads, op.dilations, op.group, dt)


def _stateless(plan: Plan, n: Node, xs: list[np.ndarray]) -> np.ndarray:
    """Ops whose value at a step depends only on their operands at that step, on arrays
    with one leading batch axis."""
    op = n.op
    dt = plan.dtype[n.name]
    if isinstance(op, o.Synapse):
        return _synapse(plan, n, xs[0])
    if isinstance(op, o.AddCurrent):
        a, b = _batched([x.astype(dt, copy=False) for x in xs], 1)
        return a + b
    if isinstance(op, o.SumPool):
        return kernels.sumpool_planes(xs[0].astype(dt, copy=False), op.kernel, op.strides,
                                      op.pads)
    if isinstance(op, o.ReduceSum | o.Concat):
        xs = [x.astype(dt, copy=False) for x in xs]
    return EVAL[type(op)](n, xs)  # ReduceSum, Reshape, Transpose, Take, Concat


# ---------------------------------------------------------------- exact mode


def run_exact(plan: Plan, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every neuron's code and the readout's input current, in closed form.

    A synapse or TDMatMul whose only reader is a neuron is evaluated together with it,
    a block of samples at a time (``_fused``): its current never goes to memory whole."""
    keep = {n.name for n in plan.order if isinstance(n.op, o.Neuron | o.Readout)}
    values: dict[str, np.ndarray] = {}
    for k, n in enumerate(plan.order):
        if isinstance(n.op, o.Input):
            values[n.name] = x
            continue
        if n.name in values:  # a neuron computed with its current (_fused)
            continue
        xs = [values[i] for i in n.inputs]
        if n.name in plan.fused:
            neuron = plan.fused[n.name]
            values[neuron.name] = _fused(plan, n, neuron, xs)
        elif n.name in plan.pooled:
            pool, w = plan.pooled[n.name]
            values[pool.name] = _pooled(pool, w, xs[0]).astype(plan.dtype[pool.name],
                                                                copy=False)
        elif isinstance(n.op, BLOCKED):
            values[n.name] = _blocked(plan, n, xs)
        else:
            values[n.name] = _exact(plan, n, xs)
        for i in dict.fromkeys(n.inputs):  # an operand read twice (Concat(x, x)) is freed once
            if plan.last_use[i] == k and i not in keep:
                del values[i]
    return values


def _exact(plan: Plan, n: Node, xs: list[np.ndarray]) -> np.ndarray:
    """n's value in exact mode from its operands' (batch first)."""
    op = n.op
    if isinstance(op, o.SpikeInput):
        v = quantize(xs[0], op.scale, op.zero_point, op.lo, op.hi, op.rounding)
    elif isinstance(op, o.Neuron):
        v = _codes(plan, n, xs[0])
    elif isinstance(op, o.TDMatMul) and n.name in plan.stacked:
        a, b = _batched(xs, 1)
        v = plan.stacked[n.name](a, b, plan.dtype[n.name])
    elif isinstance(op, o.TDMatMul):
        dt = plan.dtype[n.name]
        v = _matmul(*_batched([_contiguous(a, dt) for a in xs], 1))
    elif isinstance(op, o.TDMaxPool):
        v = kernels.maxpool_planes(xs[0], op.kernel, op.strides, op.pads)
    elif isinstance(op, o.Readout):
        v = xs[0]
    else:
        v = _stateless(plan, n, xs)
    return v.astype(plan.dtype[n.name], copy=False)


def _poolable(plan: Plan, n: Node) -> Node | None:
    """The ReduceSum that alone reads the dense synapse n over axes other than its
    features (a head over every token, then their sum)."""
    if not isinstance(n.op, o.Synapse) or n.op.kind != "dense":
        return None
    users = plan.graph.users(n.name)
    if len(users) != 1 or not isinstance(users[0].op, o.ReduceSum):
        return None
    rank = len(n.shape)
    if any(a % rank == rank - 1 for a in users[0].op.axes):
        return None
    return users[0]


def _pooled(pool: Node, w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """ReduceSum(x @ w) as ReduceSum(x) @ w, by linearity. Each partial sum of the latter
    is a sum over the reduced axes of partial sums of x @ w, inside the ReduceSum's bound
    (``ranges``: the synapse's times the terms reduced), so `w`'s dtype (the ReduceSum's)
    holds it exactly."""
    op = pool.op_as(o.ReduceSum)
    rank = x.ndim - 1
    axes = tuple(1 + a % rank for a in op.axes)
    summed = np.sum(x, axis=axes, dtype=w.dtype, keepdims=op.keepdims)
    return kernels.dense(np.ascontiguousarray(summed), w)


FUSED_BLOCK = 1 << 19  # current elements a block of samples (fits in L2 with its codes)
SPLIT_BLOCKS = 1 << 18  # elements of a value worth spreading its blocks over the cores


BLOCKED = (o.SpikeInput, o.TDMaxPool, o.AddCurrent)  # sample by sample, element-wise


def _blocked(plan: Plan, n: Node, xs: list[np.ndarray]) -> np.ndarray:
    """n's value (an op that treats each sample alone) a block of samples at a time,
    the blocks spread over the cores."""
    batch = max(len(x) for x in xs)
    per = _per_block(n, batch)
    if per >= batch:
        return _exact(plan, n, xs)
    dt = plan.dtype[n.name]
    out = np.empty((batch,) + n.shape, dt)

    def block(s: int) -> None:
        part = [x if len(x) == 1 else x[s:s + per] for x in xs]
        if isinstance(n.op, o.AddCurrent):  # straight into the output
            a, b = _batched([x.astype(dt, copy=False) for x in part], 1)
            np.add(a, b, out=out[s:s + per])
        else:
            out[s:s + per] = _exact(plan, n, part)

    kernels.parallel(block, list(range(0, batch, per)))
    return out


def _per_block(n: Node, batch: int) -> int:
    """Samples a block: about FUSED_BLOCK of n's elements, and a block for each core if
    the whole is worth a hand-off (SPLIT_BLOCKS elements; else the cores split inside)."""
    size = max(1, int(np.prod(n.shape, dtype=np.int64)))
    cores = kernels.cores() if size * batch >= SPLIT_BLOCKS else 1
    return max(1, min(FUSED_BLOCK // size, -(-batch // cores)))


def _fusible(plan: Plan, n: Node) -> Node | None:
    """The neuron that alone reads n's current, if n is a synapse or a TDMatMul."""
    if not isinstance(n.op, o.Synapse | o.TDMatMul):
        return None
    users = plan.graph.users(n.name)
    if len(users) != 1 or not isinstance(users[0].op, o.Neuron):
        return None
    return users[0]


def _fused(plan: Plan, n: Node, neuron: Node, xs: list[np.ndarray]) -> np.ndarray:
    """The neuron's codes from n's operands, n's current computed and counted a block of
    samples at a time (the same kernels as apart; the blocks spread over the cores)."""
    batch = max(len(x) for x in xs)
    out = np.empty((batch,) + neuron.shape, plan.dtype[neuron.name])
    per = _per_block(n, batch)

    def block(s: int) -> None:
        part = [x if len(x) == 1 else x[s:s + per] for x in xs]
        out[s:s + per] = _codes(plan, neuron, _exact(plan, n, part))

    kernels.parallel(block, list(range(0, batch, per)))
    return out


# ---------------------------------------------------------------- step semantics


@dataclass
class Steps:
    """A value over steps t0 .. t0 + len(data) - 1 (zero at every other step)."""

    t0: int
    data: np.ndarray  # [steps, batch, ...]
    _total: np.ndarray | None = None

    @property
    def t1(self) -> int:
        return self.t0 + len(self.data) - 1

    def total(self) -> np.ndarray:
        """The sum over all its steps (computed once)."""
        if self._total is None:
            self._total = self.data.sum(axis=0, dtype=self.data.dtype)
        return self._total


@dataclass
class Sum:
    """A residual stream: currents added together, each kept over its own window.

    Adding two currents this way copies nothing; parts that every consumer only needs
    the total of (they end before any neuron downstream may fire) are folded into one.
    """

    parts: list[Steps]
    shape: tuple[int, ...]  # [batch, ...] of the sum
    dtype: np.dtype
    _total: np.ndarray | None = None

    @property
    def t0(self) -> int:
        return min(p.t0 for p in self.parts)

    @property
    def t1(self) -> int:
        return max(p.t1 for p in self.parts)

    def total(self) -> np.ndarray:
        if self._total is None:
            self._total = self.total_before(self.t1 + 1)
        return self._total

    def total_before(self, t: int) -> np.ndarray:
        """Everything that arrives before step t."""
        acc = np.zeros(self.shape, self.dtype)
        for p in self.parts:
            if p.t1 < t:
                _add_into(acc, p.total())
            elif p.t0 < t:
                _add_into(acc, p.data[:t - p.t0].sum(axis=0, dtype=p.data.dtype))
        return acc

    def at(self, t: int) -> list[np.ndarray]:
        """What arrives at step t."""
        return [p.data[t - p.t0] for p in self.parts if p.t0 <= t <= p.t1]


Value = Steps | Sum


def _add_into(acc: np.ndarray, x: np.ndarray) -> None:
    """acc += x, x's per-sample shape broadcast from the right behind the batch axis."""
    np.add(acc, _batched([acc, x], 1)[1], out=acc)


def _as_sum(v: Value, shape: tuple[int, ...], dtype) -> Sum:
    return v if isinstance(v, Sum) else Sum([v], shape, np.dtype(dtype))


def _dense(v: Value) -> Steps:
    """A Sum written out over its whole window (for consumers that need every step)."""
    if isinstance(v, Steps):
        return v
    data = np.zeros((v.t1 - v.t0 + 1,) + v.shape, v.dtype)
    for p in v.parts:
        seg = data[p.t0 - v.t0:p.t1 - v.t0 + 1]
        np.add(seg, _batched([seg, p.data], 2)[1], out=seg)
    return Steps(v.t0, data)


LINEAR = (o.Synapse, o.ReduceSum, o.SumPool, o.AddCurrent) + o.LAYOUT_OPS


def horizons(plan: Plan) -> dict[str, float]:
    """Per value: the first step from which a consumer needs it step by step. Before it
    only its total matters: every path from it runs through linear, stateless ops to
    neurons that fire only from then on, or to the readout."""
    graph = plan.graph
    found: dict[str, float] = {}
    for n in reversed(plan.order):
        h = float("inf")
        for u in graph.users(n.name):
            if isinstance(u.op, o.Neuron):
                h = min(h, max(0, u.op.t_fire))
            elif isinstance(u.op, LINEAR):
                h = min(h, found[u.name])
            elif not isinstance(u.op, o.Readout):
                h = 0  # TD ops need every step
        found[n.name] = h
    return found


def _align(values: list[Steps], dtype) -> tuple[int, list[np.ndarray]]:
    """The operands as `dtype`, zero-padded to the union of their windows."""
    t0 = min(v.t0 for v in values)
    t1 = max(v.t1 for v in values)
    out = []
    for v in values:
        d = v.data.astype(dtype, copy=False)
        if v.t0 != t0 or v.t1 != t1:
            full = np.zeros((t1 - t0 + 1,) + d.shape[1:], dtype)
            full[v.t0 - t0:v.t0 - t0 + len(d)] = d
            d = full
        out.append(d)
    return t0, out


def _folded(fn: Callable[[list[np.ndarray]], np.ndarray], t0: int,
            xs: list[np.ndarray]) -> Steps:
    """Apply a batch-first op to [steps, batch, ...] operands, steps folded into batch."""
    steps = len(xs[0])
    out = fn([x.reshape((steps * x.shape[1],) + x.shape[2:]) for x in xs])
    return Steps(t0, out.reshape((steps, out.shape[0] // steps) + out.shape[1:]))


def run_steps(plan: Plan, x: np.ndarray, steps: int, trace: bool = True
              ) -> tuple[dict[str, Steps], dict[str, np.ndarray], np.ndarray | None]:
    """(every neuron's spike train if `trace`, every neuron's count, the readout's
    accumulated current, None without a readout) after `steps` time steps."""
    keep = {n.name for n in plan.order if isinstance(n.op, o.Neuron)} if trace else set()
    horizon = horizons(plan)
    vals: dict[str, Value] = {}
    counts: dict[str, np.ndarray] = {}
    total = None
    batch = len(x)
    for k, n in enumerate(plan.order):
        op = n.op
        if isinstance(op, o.Input):
            continue
        ins = [vals[i] for i in n.inputs if i in vals]
        if isinstance(op, o.SpikeInput):
            vals[n.name] = _input_steps(plan, n, x, steps)
        elif isinstance(op, o.Neuron):
            vals[n.name], counts[n.name] = _neuron_steps(plan, n, ins[0], batch, steps)
        elif isinstance(op, o.Readout):
            total = _as_sum(ins[0], (batch,) + n.shape, plan.compute_dtype(n.name)).total()
        elif isinstance(op, o.AddCurrent):
            vals[n.name] = _add_steps(plan, n, ins, batch, horizon[n.name])
        elif isinstance(op, LINEAR) and max(i.t1 for i in ins) < horizon[n.name]:
            vals[n.name] = _total_steps(plan, n, ins)
        else:
            v = _op_steps(plan, n, [_dense(i) for i in ins])
            vals[n.name] = Steps(v.t0, v.data.astype(plan.dtype[n.name], copy=False))
        for i in n.inputs:
            if plan.last_use.get(i) == k and i not in keep:
                vals.pop(i, None)
    trains = {name: s for name in keep if isinstance(s := vals[name], Steps)}  # all: spikes
    return trains, counts, total


def _add_steps(plan: Plan, n: Node, ins: list[Value], batch: int, horizon: float) -> Sum:
    """Currents meeting in the residual stream: kept apart; the parts that end before
    `horizon` are folded into one step holding their total."""
    shape, dt = (batch,) + n.shape, plan.dtype[n.name]
    parts = [p for v in ins for p in _as_sum(v, shape, dt).parts]
    old = [p for p in parts if p.t1 < horizon]
    if len(old) > 1:
        folded = Sum(old, shape, dt).total()
        parts = [Steps(max(p.t1 for p in old), folded[None], folded)] + [
            p for p in parts if p.t1 >= horizon]
    return Sum(parts, shape, dt)


def _total_steps(plan: Plan, n: Node, ins: list[Value]) -> Steps:
    """A linear, stateless op whose value is only integrated, as one step holding its
    total: by linearity, the sum over steps of W·S(t) is W·(the sum of S(t))."""
    out = _stateless(plan, n, [i.total() for i in ins])
    return Steps(max(i.t1 for i in ins), out.astype(plan.dtype[n.name], copy=False)[None])


def _input_steps(plan: Plan, n: Node, x: np.ndarray, steps: int) -> Steps:
    """Analog (and weighted) codes once at step 0; else code c as spikes at steps 0 .. c-1."""
    op = n.op_as(o.SpikeInput)
    codes = quantize(x, op.scale, op.zero_point, op.lo, op.hi, op.rounding)
    if op.analog or op.weighted:
        return Steps(0, codes.astype(plan.dtype[n.name])[None])
    window = max(1, min(op.hi - op.lo, steps))
    t = np.arange(window).reshape((-1,) + (1,) * codes.ndim)
    return Steps(0, (codes[None] - op.lo > t).astype(plan.dtype[n.name]))


def _op_steps(plan: Plan, n: Node, ins: list[Steps]) -> Steps:
    op = n.op
    dt = plan.dtype[n.name]
    if isinstance(op, o.TDMatMul):
        return _td_matmul_steps(plan.compute_dtype(n.name), ins[0], ins[1],
                                plan.stacked.get(n.name))
    if isinstance(op, o.TDMaxPool):  # out(t) = maxpool(C(t)) - maxpool(C(t-1))
        s = ins[0]
        run = _running(np.zeros((), dt), s.data.astype(dt, copy=False), inclusive=True)
        pooled = _folded(lambda xs: kernels.maxpool_planes(xs[0], op.kernel, op.strides,
                                                           op.pads), s.t0, [run]).data
        return Steps(s.t0, np.diff(pooled, axis=0, prepend=np.zeros_like(pooled[:1])))
    dtype = plan.compute_dtype(n.name) if n.kind != o.CODES else dt
    t0, xs = _align(ins, dtype) if len(ins) > 1 else (ins[0].t0, [ins[0].data])
    return _folded(lambda xs: _stateless(plan, n, xs), t0, xs)


def _window(v: Steps, t0: int, t1: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    """(v's sum over the steps before t0, v over steps t0..t1 with zeros outside), as
    contiguous arrays of `dtype`."""
    before = v.data[:max(0, t0 - v.t0)].sum(axis=0, dtype=dtype)
    out = np.zeros((t1 - t0 + 1,) + v.data.shape[1:], dtype)
    lo, hi = max(t0, v.t0), min(t1, v.t1)
    if lo <= hi:
        out[lo - t0:hi - t0 + 1] = v.data[lo - v.t0:hi - v.t0 + 1]
    return before, out


def _running(start: np.ndarray, steps: np.ndarray, inclusive: bool) -> np.ndarray:
    """start + the running sum of steps[0..t] (or of steps[0..t-1]) for every t."""
    out = np.empty(steps.shape, steps.dtype)
    for t in range(len(steps)):
        prev = start if t == 0 else out[t - 1]
        if inclusive:
            np.add(prev, steps[t], out=out[t])
        elif t == 0:
            out[0] = start
        else:
            np.add(prev, steps[t - 1], out=out[t])
    return out


def _td_matmul_steps(dtype, a: Steps, b: Steps, counts: IntStacked | None = None) -> Steps:
    """ΔP(t) = S_A(t)·C_B(t) + C_A(t-1)·S_B(t), over the steps from the later of the two
    windows' starts (before it one side has no spikes yet) to the end of both.

    While both sides spike it is computed as C_A(t)·C_B(t) - C_A(t-1)·C_B(t-1), the same
    integers with one product per step instead of two; once one side is over, the other
    term is zero and the constant side is shared by all steps. Products of running counts
    go to `counts` (an integer kernel for the counts' range) if given.
    """
    def product(x: np.ndarray, y: np.ndarray, lead: int) -> np.ndarray:
        xy = _batched([x, y], lead)
        return _matmul(*xy) if counts is None else counts(xy[0], xy[1], dtype)

    t0, t1 = max(a.t0, b.t0), max(a.t1, b.t1)
    ca0, sa = _window(a, t0, t1, dtype)
    cb0, sb = _window(b, t0, t1, dtype)
    if a.t1 < t0:  # A is over: C_A·S_B(t)
        return Steps(t0, _matmul(*_batched([ca0[None], sb], 2)))
    if b.t1 < t0:  # B is over: S_A(t)·C_B
        return Steps(t0, _matmul(*_batched([sa, cb0[None]], 2)))
    p = product(_running(ca0, sa, inclusive=True), _running(cb0, sb, inclusive=True), 2)
    for t in range(len(p) - 1, 0, -1):  # P(t) - P(t-1), in place
        np.subtract(p[t], p[t - 1], out=p[t])
    p[0] -= product(ca0, cb0, 1)
    return Steps(t0, p)


STEPPERS = {"if": kernels.dif_steps, "signed": kernels.signed_steps,
            "multi": kernels.multi_steps}


def _neuron_steps(plan: Plan, n: Node, current: Value, batch: int, steps: int
                  ) -> tuple[Steps, np.ndarray]:
    """v += I(t) each step; from t_fire to the last step of its window (clipped to the
    run) the neuron fires by the hardware's rule of its kind (``kernels.dif_steps``,
    ``signed_steps``, ``multi_steps``: every step simulated)."""
    op = n.op_as(o.Neuron)
    first = max(0, op.t_fire)
    stream = _as_sum(current, (batch,) + n.shape, plan.dtype[n.inputs[0]])
    last = min(neuron_last_step(op, first, stream.t1), steps - 1)  # the last step it may fire
    dt = plan.dtype[n.name]
    if last < first:  # it would fire only after the end of the run
        return Steps(first, np.zeros((1, batch) + n.shape, dt)), np.zeros((batch,) + n.shape, dt)
    v = stream.total_before(first)  # the membranes as the firing window opens

    def arrivals(t: int) -> list[np.ndarray]:
        return [_batched([v, a], 1)[1] for a in stream.at(first + t)]

    sign, rows, clamp = plan.dif[n.name]
    step = STEPPERS[op.mode]
    train, count = step(v, rows, last - first + 1, arrivals, sign, clamp, dt)
    if op.mode == "signed":  # net counts are never negative
        count = count.astype(count_dtype(op.levels))
    return Steps(first, train, count), count
