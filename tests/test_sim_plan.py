"""The fast paths against straightforward definitions: vectorized level thresholds against
exact rationals, the canonicalize cursor against the restart-from-the-top driver, the
interpreter's float kernels against the integer ones, the vectorized DIF step kernel
against a neuron-by-neuron loop, and the layer-by-layer step engine against a literal
step-by-step simulation under every delay policy, with the closed form out of its reach."""

from fractions import Fraction

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import modelgen
import snncc
from conftest import EXAMPLE, closed_form_forbidden
from snncc import intmath, kernels, reference
from snncc import ops as o
from snncc.backends.sim import integer, levels, plan
from snncc.frontend.importer import import_onnx
from snncc.intmath import Rounding, _boundary, _level_conditions, level_thresholds
from snncc.ir import print_graph
from snncc.passes import canonicalize
from snncc.passes.fold_batchnorm import FoldBatchNorm
from snncc.passes.softmax_to_nrelu import SoftmaxToNRelu
from snncc.reference import EVAL

RNG = np.random.default_rng(0)


# ---------------------------------------------------------------- level thresholds


def rational_thresholds(a, b, s, zp, lo, hi, rounding):
    """Every (row, level) through exact rational arithmetic."""
    conditions = [_level_conditions(k, zp, rounding) for k in range(lo + 1, hi + 1)]
    rows = []
    for ar, br, sr in zip(a, b, s, strict=True):
        bounds = [_boundary(Fraction(ar), Fraction(br), y * Fraction(sr), strict)
                  for y, strict in conditions]
        rows.append((bounds[0][0], [theta for _, theta in bounds]))
    return rows


def values(n: int) -> np.ndarray:
    """Power-of-two, float32 and wide-range magnitudes, either sign, some zeros."""
    kind = RNG.integers(0, 3, n)
    v = np.where(kind == 0, 2.0 ** RNG.integers(-20, 5, n),
                 np.where(kind == 1, RNG.uniform(1e-4, 4, n).astype(np.float32),
                          RNG.standard_normal(n) * 10 ** RNG.uniform(-6, 6, n)))
    return np.where(RNG.random(n) < 0.3, -v, v)


@pytest.mark.parametrize("rounding", list(Rounding))
def test_vectorized_thresholds_equal_rationals_ties_included(rounding):
    n = 400
    a = values(n)
    a[:10] = 0
    b = np.where(RNG.random(n) < 0.3, 0.0, values(n))
    tie = RNG.random(n) < 0.4  # boundaries exactly on integers (ties under rounding)
    b[tie] = RNG.integers(-50, 50, tie.sum()) * a[tie] / 2
    s = np.abs(values(n))
    s[tie] = np.abs(a[tie]) * 2.0 ** RNG.integers(-3, 3, tie.sum())
    s[s == 0] = 0.5
    for zp, lo, hi in [(0, 0, 7), (1, 0, 15), (-2, -4, 3)]:
        sign, theta = level_thresholds(a, b, s, zp, lo, hi, rounding)
        want = rational_thresholds(a, b, s, zp, lo, hi, rounding)
        assert sign.tolist() == [w[0] for w in want]
        assert theta.tolist() == [w[1] for w in want]


# ---------------------------------------------------------------- canonicalize cursor


def restart_driver(graph) -> bool:
    """The first rule at the first node in topological order, restarting every time."""
    def step() -> bool:
        for n in graph.topo():
            for rule in canonicalize._RULES:
                if rule(graph, n):
                    return True
        return False

    changed = False
    while step():
        changed = True
    return changed


@pytest.mark.parametrize("blocks", [1, 2, 3])
@pytest.mark.parametrize("po2", [False, True])
def test_canonicalize_cursor_rewrites_like_restarting(tmp_path, blocks, po2):
    path = tmp_path / "m.onnx"
    onnx.save(modelgen.tiny_transformer(blocks=blocks, po2=po2, seed=blocks), path)
    graph = import_onnx(path)
    for p in (FoldBatchNorm(), SoftmaxToNRelu()):
        graph = p.run(graph).graph
    naive, fast = graph.copy(), graph.copy()
    assert restart_driver(naive) == canonicalize.Canonicalize().run(fast).changed
    assert print_graph(naive) == print_graph(fast)
    assert naive.names() == fast.names()


# ---------------------------------------------------------------- kernels


def test_float_kernels_equal_integer_kernels():
    x = RNG.integers(0, 8, (5, 6, 9, 9))
    w = RNG.integers(-127, 128, (8, 3, 3, 3))
    want = kernels.conv2d(x, w, (2, 1), (1, 0, 1, 2), (1, 1), 2)
    got = kernels.conv2d_planes(x.astype(np.uint8), w, (2, 1), (1, 0, 1, 2), (1, 1), 2,
                                np.float32)
    assert np.array_equal(got, want)
    for pads in [(0, 0, 0, 0), (1, 1, 1, 1)]:
        assert np.array_equal(kernels.maxpool_planes(x.astype(np.uint8), (3, 3), (1, 1), pads),
                              kernels.maxpool2d(x, (3, 3), (1, 1), pads))
        assert np.array_equal(kernels.sumpool_planes(x, (2, 2), (2, 2), pads),
                              kernels.sumpool2d(x, (2, 2), (2, 2), pads))
    a, b = RNG.integers(0, 8, (4, 3, 5, 6)), RNG.integers(0, 8, (1, 3, 6, 2))
    assert np.array_equal(kernels.stacked_matmul(a.astype(np.float32), b.astype(np.float32)),
                          a @ b)


@pytest.mark.parametrize("scale", [1, 2**13 + 1, 2**29 - 3])  # 1, 2 and 4 weight digits
@pytest.mark.parametrize("x_range", [(0, 7), (0, 255), (-128, 127)])
def test_integer_kernels_equal_exact_products(scale, x_range):
    lo, hi = x_range
    w = RNG.integers(-127, 128, (40, 9)) * scale + RNG.integers(-scale // 2, scale // 2 + 1,
                                                                 (40, 9))
    assert integer.IntMatMul.fits(w, lo, hi) == (scale == 1 or len(w) >= integer.WIDE_TERMS)
    x = RNG.integers(lo, hi + 1, (3, 70, 40))
    dtype = np.float32 if scale == 1 else np.float64
    got = integer.IntMatMul(w, integer.operand_type(lo, hi))(x, dtype)
    assert got.dtype == dtype and np.array_equal(got, x @ w)
    wc = RNG.integers(-127, 128, (8, 4, 3, 3)) * scale
    xc = RNG.integers(lo, hi + 1, (5, 8, 9, 10))
    for strides, pads, dilations, group in [((1, 1), (1, 1, 1, 1), (1, 1), 1),
                                            ((2, 1), (1, 0, 2, 1), (1, 2), 2)]:
        op = o.Synapse(wc if group == 2 else np.concatenate([wc, wc], axis=1), kind="conv",
                       strides=strides, pads=pads, dilations=dilations, group=group)
        want = kernels.conv2d(xc, op.weight, strides, pads, dilations, group)
        got = integer.IntConv(op, integer.operand_type(lo, hi))(xc, np.float64)
        assert np.array_equal(got, want)
    a, b = RNG.integers(lo, hi + 1, (4, 3, 5, 16)), RNG.integers(lo, hi + 1, (1, 3, 16, 7))
    t = integer.operand_type(lo, hi)
    assert np.array_equal(integer.IntStacked(t, t)(a, b, np.float64), a @ b)


@pytest.mark.parametrize("reach", [7, 255])
def test_integer_digit_pairs_at_the_edge_of_int32(reach):
    """Every digit -128 (or 127) and every operand at its reach, over the most terms for
    which two digits still combine in int32 (and one more, where they must not): the
    product equals the exact one."""
    x_lo = 0
    for terms, pairs in [(2**31 // (257 * 128 * reach), True),
                         (2**31 // (257 * 128 * reach) + 1, False)]:
        low, high = (sum(d * 256**j for j in range(4)) for d in (-128, 127))  # all digits
        w = np.array([[low, 127 * (1 + 256 + 65536)]] * terms, np.int64)
        w[::3, 1] = high
        mat = integer.IntMatMul(w, integer.operand_type(x_lo, reach), reach)
        assert mat.digits == 4 and mat.pairs == pairs
        x = np.full((3, terms), reach)
        x[1, ::5] = 0
        got = mat(x, np.float64)
        assert np.array_equal(got, x @ w)


@pytest.mark.parametrize("x_range", [(0, 7), (0, 255), (-128, 127)])
def test_scaled_weights_take_two_products_and_stay_exact(x_range):
    """Fixed-point weights made from 8-bit ones (round(q * s), a real scale a column from
    about 2**3 to 2**28, q at -128 and 127 too) split into a * m + e with 8-bit a and e:
    the split rebuilds them, the kernel takes two products instead of five digits, and
    its result is the exact product; weights from no 8-bit matrix are not split."""
    lo, hi = x_range
    q = RNG.integers(-128, 128, (300, 12))
    q[0], q[1] = -128, 127
    s = 2.0 ** RNG.uniform(3, 28, 12)
    s[0] = 2.0**28 - 0.5  # the largest scale, not an integer
    w = np.rint(q * s).astype(np.int64)
    a, m, e = integer.scaled(w)
    assert np.array_equal(a.astype(np.int64) * m + e, w)
    assert integer.IntMatMul.fits(w, lo, hi)
    mat = integer.IntMatMul(w, integer.operand_type(lo, hi), max(abs(lo), abs(hi)))
    assert mat.digits == 2 and len(integer.digits(w)) == 5  # past MAX_DIGITS, too
    x = RNG.integers(lo, hi + 1, (2, 9, 300))
    x[0, 0] = hi
    assert np.array_equal(mat(x, np.float64), x @ w)
    noise = RNG.integers(-2**29, 2**29, (300, 12))
    assert integer.scaled(noise) is None
    assert np.array_equal(integer.IntMatMul(noise, np.dtype(np.uint8), 7)(x % 8, np.float64),
                          (x % 8) @ noise)


def test_integer_digits_rebuild_the_weights():
    w = np.array([0, 1, -1, 127, 128, -128, -129, 2**40 + 5, -(2**40) - 5])
    d = integer.digits(w)
    assert all(x.dtype == np.int8 for x in d)
    assert np.array_equal(sum(x.astype(np.int64) * 256**j for j, x in enumerate(d)), w)


@settings(max_examples=30, deadline=None)
@given(shape=st.sampled_from([(3, 7), (2, 4, 5), (2, 3, 4, 4), (1, 200_000)]),
       per=st.sampled_from(["tensor", "first", "last"]), levels=st.integers(1, 9))
def test_level_counts_equal_the_definition(shape, per, levels):
    v = RNG.integers(-50, 50, shape).astype(np.float32)
    sample = shape[1:]
    th_shape = {"tensor": (), "first": (sample[0],) + (1,) * (len(sample) - 1),
                "last": sample[-1:]}[per]
    th = np.sort(RNG.integers(-40, 40, th_shape + (levels,)), axis=-1)
    got = kernels.level_counts(v, kernels.level_tables(th, sample, np.float32))
    assert np.array_equal(got, np.sum(v[..., None] >= th, axis=-1))


def quantizer_tables(rng, bound: int, n_levels: int, channels: int):
    """(sign, thresholds) of a per-channel uniform quantizer on currents in [-bound,
    bound] (``intmath.level_thresholds``: every rounding, either sign, steps that are no
    integer), its levels spread over the range with some beyond it."""
    a = rng.choice([-1.0, 1.0], channels) * rng.uniform(0.5, 2, channels)
    s = np.abs(a) * bound * rng.uniform(0.1, 0.4, channels) / n_levels
    b = rng.uniform(-0.5, 0.5, channels) * bound * np.abs(a)
    lo = -int(rng.integers(0, n_levels + 1))
    return level_thresholds(a, b, s, 0, lo, lo + n_levels, rng.choice(list(Rounding)))


def boundary_currents(th: np.ndarray, sign: np.ndarray, bound: int, rng) -> np.ndarray:
    """[N, C]: for each channel the currents at, just below and just above each of its
    thresholds, the ends of the range and random ones (as v, sign applied back)."""
    s = np.concatenate([th - 2, th - 1, th, th + 1, np.full((len(th), 2), [-bound, bound]),
                        rng.integers(-bound, bound + 1, (len(th), 64))], axis=1)
    return (np.clip(s, -bound, bound) * sign[:, None]).T


@pytest.mark.parametrize("dtype,bound", [(np.float32, 3_000), (np.float32, 2**24 - 1),
                                         (np.float64, 2**24), (np.float64, 2**45)])
@pytest.mark.parametrize("n_levels", [1, 7, 15, 63])
def test_affine_counts_equal_the_level_count_at_every_boundary(dtype, bound, n_levels):
    """The one-pass count, at the widest ranges the plan gives float32 and far into
    float64: proved for quantizer thresholds, and then equal to the integer formula at
    every threshold, one either side, the range's ends and random currents."""
    rng = np.random.default_rng(n_levels + bound % 97)
    sign, th = quantizer_tables(rng, bound, n_levels, 24)
    tables = levels.affine_tables(th, sign, bound, (24,), dtype)
    assert tables is not None  # the proof goes through on quantizer thresholds
    v = boundary_currents(th, sign, bound, rng)
    got = kernels.affine_counts(v.astype(dtype), *tables, n_levels, np.uint8)
    assert np.array_equal(got, intmath.codes_from_thresholds(v, sign, th))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_levels=st.integers(1, 9), linear=st.booleans(),
       signed=st.booleans(), bound=st.sampled_from([1, 40, 700]))
def test_affine_counts_proved_means_exact_on_every_current(seed, n_levels, linear, signed,
                                                           bound):
    """Every integer current of the range, thresholds from quantizers or arbitrary
    (non-decreasing, ties, beyond the range): wherever the plan proves the one-pass form,
    it equals the level count everywhere, not only at the points the proof looks at."""
    rng = np.random.default_rng(seed)
    if linear:
        sign, th = quantizer_tables(rng, bound, n_levels, 5)
    else:
        th = np.sort(rng.integers(-bound - 3, bound + 4, (5, n_levels)), axis=-1)
        sign = rng.choice([-1, 1], 5) if signed else np.ones(5, np.int8)
    tables = levels.affine_tables(th, sign, bound, (5,), np.float32)
    if linear:
        assert tables is not None
    if tables is None:
        return
    v = np.repeat(np.arange(-bound, bound + 1)[:, None], 5, axis=1)
    got = kernels.affine_counts(v.astype(np.float32), *tables, n_levels, np.uint8)
    assert np.array_equal(got, intmath.codes_from_thresholds(v, sign, th))


def test_affine_proof_refuses_a_formula_wrong_anywhere_in_range():
    """A scale a hair too large drifts off the count only near the end of the range; an
    offset a third of a level off is wrong at the thresholds: the proof refuses both,
    and the thresholds that no line fits (one step twice another) get no tables."""
    bound = 100_000
    sign, th = quantizer_tables(np.random.default_rng(5), bound, 7, 1)
    (x0,), (delta,) = levels._line(np.clip(th, -bound - 1, bound + 1), bound)
    scale, offset = np.array([sign[0] / delta]), np.array([1 - x0 / delta])
    assert levels._proved(th, sign, scale, offset, bound, np.dtype(np.float64))
    far = np.array([sign[0] / delta * (1 + 3 / bound)])
    v = np.arange(-bound, bound + 1, dtype=np.float64) * sign[0]
    wrong = np.empty(v.shape, np.int64)
    kernels.affine_levels(v, far, offset, 7, wrong)
    assert not np.array_equal(wrong, intmath.codes_from_thresholds(v, sign[0], th[0]))
    assert not levels._proved(th, sign, far, offset, bound, np.dtype(np.float64))
    assert not levels._proved(th, sign, scale, offset + 1 / 3, bound, np.dtype(np.float64))
    bent = np.array([[0, 10, 30, 50]])
    assert levels.affine_tables(bent, np.ones(1), 100, (1,), np.float32) is None


def literal_dif(v0, th, sign, arrivals, steps):
    """One neuron after the other, one step after the other: v += I(t); the n-th spike
    fires when n < L and sign*v >= th[n] (snn_kernels.h ``dif_fire``)."""
    trains = np.zeros((steps,) + v0.shape, np.int64)
    th = np.broadcast_to(th, v0.shape + th.shape[-1:])
    sign = np.broadcast_to(sign, v0.shape)
    for i in np.ndindex(v0.shape):
        v, n = int(v0[i]), 0
        for t in range(steps):
            v += sum(int(np.broadcast_to(a, v0.shape)[i]) for a in arrivals[t])
            if n < th.shape[-1] and int(sign[i]) * v >= int(th[i][n]):
                trains[(t,) + i] = 1
                n += 1
    return trains


@settings(max_examples=40, deadline=None)
@given(shape=st.sampled_from([(3, 5), (2, 3, 4), (5, 2, 2, 3)]),
       per=st.sampled_from(["tensor", "first", "last"]), levels=st.integers(1, 8),
       steps=st.integers(1, 8), arriving=st.floats(0, 0.6), signed=st.booleans(),
       clamp=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_dif_steps_equal_a_neuron_by_neuron_loop(shape, per, levels, steps, arriving,
                                                 signed, clamp, seed):
    """Every delay's situation: currents still arriving while the neurons fire (so some
    fire again after a silent step), signs, ties in the tables, runs cut short."""
    rng = np.random.default_rng(seed)
    sample = shape[1:]
    th_shape = {"tensor": (), "first": (sample[0],) + (1,) * (len(sample) - 1),
                "last": sample[-1:]}[per]
    th = np.sort(rng.integers(-12, 30, th_shape + (levels,)), axis=-1)
    sign = rng.choice([-1, 1], sample) if signed else np.ones(sample, np.int64)
    v0 = rng.integers(-20, 40, shape)
    arrivals = [[rng.integers(-6, 9, shape)] if rng.random() < arriving else []
                for _ in range(steps)]
    want = literal_dif(v0, th, sign, arrivals, steps)
    bound = 40 + 9 * steps
    limit = 31 if clamp else bound  # one past every threshold: clipping changes nothing
    rows = np.concatenate([th, np.full(th.shape[:-1] + (1,), limit + 1)], axis=-1)
    trains, counts = kernels.dif_steps(
        v0.astype(np.float32), kernels.level_tables(rows, sample, np.float32), steps,
        lambda t: [a.astype(np.float32) for a in arrivals[t]],
        None if not signed else sign.astype(np.float32), 31 if clamp else None)
    assert trains.dtype == counts.dtype == np.uint8
    assert np.array_equal(trains, want)
    assert np.array_equal(counts, want.sum(axis=0))


def test_dif_steps_past_255_levels_count_wider():
    rng = np.random.default_rng(1)
    th = np.sort(rng.integers(0, 400, (3, 300)), axis=-1)
    v0 = rng.integers(0, 500, (2, 3))
    arrivals = [[np.full((2, 3), 2)] if t % 3 == 0 else [] for t in range(300)]
    rows = np.concatenate([th, np.full((3, 1), 2000)], axis=-1)
    trains, counts = kernels.dif_steps(
        v0.astype(np.float32), kernels.level_tables(rows, (3,), np.float32), 300,
        lambda t: [a.astype(np.float32) for a in arrivals[t]], dtype=np.uint16)
    want = literal_dif(v0, th, np.ones(3, np.int64), arrivals, 300)
    assert counts.dtype == np.uint16 and counts.max() > 255
    assert np.array_equal(trains, want) and np.array_equal(counts, want.sum(axis=0))


# ---------------------------------------------------------------- step engine


def literal_steps(graph, x):
    """Every node at every step, one step after the other (the definition)."""
    p = plan.build(graph)
    state, counts, acc = {}, {}, {}
    for t in range(p.steps):
        now = {}
        for n in p.order:
            op = n.op
            if isinstance(op, o.Input):
                continue
            ins = [now.get(i) for i in n.inputs]
            if isinstance(op, o.SpikeInput):
                codes = EVAL[o.SpikeInput](n, [x])
                now[n.name] = (codes if t == 0 else None) if op.analog else (
                    (codes - op.lo > t).astype(np.int64))
                continue
            shapes = [(len(x),) + graph.node(i).shape for i in n.inputs]
            full = [np.zeros(s, np.int64) if i is None else i
                    for i, s in zip(ins, shapes, strict=True)]
            if isinstance(op, o.Neuron):
                v = acc.setdefault(n.name, np.zeros((len(x),) + n.shape, np.int64))
                c = counts.setdefault(n.name, np.zeros((len(x),) + n.shape, np.int64))
                v += full[0]
                if not op.t_fire <= t < op.t_fire + op.levels:
                    continue
                th = np.broadcast_to(op.thresholds, v.shape + (op.levels,))
                level = np.minimum(c, op.levels - 1)[..., None]  # the next spike's level
                theta = np.take_along_axis(th, level, axis=-1)[..., 0]
                fire = (c < op.levels) & (op.sign * v >= theta)
                c += fire
                now[n.name] = fire.astype(np.int64)
            elif isinstance(op, o.TDMatMul):
                ca, cb = state.setdefault(n.name, [np.zeros(s, np.int64) for s in shapes])
                out = kernels.matmul(*_equal_rank([ca, full[1]]))
                cb += full[1]
                now[n.name] = out + kernels.matmul(*_equal_rank([full[0], cb]))
                ca += full[0]
            elif isinstance(op, o.TDMaxPool):
                run, prev = state.setdefault(n.name, [np.zeros(shapes[0], np.int64), 0])
                run += full[0]
                m = kernels.maxpool2d(run, op.kernel, op.strides, op.pads)
                now[n.name], state[n.name][1] = m - prev, m
            elif isinstance(op, o.Readout):
                acc[n.name] = acc.get(n.name, 0) + full[0]
            elif isinstance(op, o.AddCurrent):
                a, b = _equal_rank(full)
                now[n.name] = a + b
            else:
                now[n.name] = EVAL[type(op)](n, full)
    (r,) = [n for n in p.order if isinstance(n.op, o.Readout)]
    return counts, acc[r.name] + r.op.bias


def _equal_rank(xs):
    rank = max(x.ndim for x in xs)
    return [x.reshape(x.shape[:1] + (1,) * (rank - x.ndim) + x.shape[1:]) for x in xs]


@pytest.mark.parametrize("delay", ["exact", 0, 2, "none"])
@pytest.mark.parametrize("name", ["cnn", "transformer", "transformer_spiking_input"])
def test_step_engine_equals_a_literal_simulation(tiny_models, name, delay, monkeypatch):
    model = snncc.compile(tiny_models[name], T=9, delay=delay)
    x = RNG.uniform(0, 1, (6,) + model.input_shape)
    counts, logits = literal_steps(model.graph, x)
    with closed_form_forbidden():
        got = model.simulate(x, engine="step", trace=True)
    for n in model.graph.ops(o.Neuron):
        assert np.array_equal(got.counts[n.name], counts[n.name]), n.name
        assert np.array_equal(got.trains[n.name].sum(axis=0), counts[n.name]), n.name
    assert np.array_equal(got.logits_int, logits)
    if delay == "exact":
        for whole in ("0", "1"):  # the numpy path, and the plan as one onnxruntime session
            monkeypatch.setenv("SNNCC_ORT_GRAPH", whole)
            fast = model.simulate(x, engine="fast")
            assert all(np.array_equal(fast.counts[k], counts[k]) for k in counts), whole
            assert np.array_equal(fast.logits_int, logits), whole


@pytest.mark.parametrize("block", [1, 10**9])
def test_fused_currents_and_neurons_equal_the_reference(tiny_models, monkeypatch, block):
    """Synapses and TDMatMuls evaluated with the neuron that alone reads them, one sample
    a block (spread over the cores, as the input quantizer, the max pools and the adds
    are) or all at once, and the head summed over the tokens
    before its product: every code and the logits are the integer reference's."""
    monkeypatch.setenv("SNNCC_ORT_GRAPH", "0")  # the numpy path (ortgraph: one session)
    monkeypatch.setattr(plan, "FUSED_BLOCK", block)
    monkeypatch.setattr(plan, "SPLIT_BLOCKS", 0 if block == 1 else 10**9)
    model = snncc.compile(tiny_models["transformer"], T=7)
    p = plan.build(model.graph)
    assert {type(n.op) for n in model.graph.ops(o.Synapse, o.TDMatMul)
            if n.name in p.fused} == {o.Synapse, o.TDMatMul}
    assert p.pooled
    x = RNG.uniform(0, 1, (7,) + model.input_shape)
    ref = model.reference(x)
    got = model.simulate(x, engine="fast")
    for n in model.graph.ops(o.Neuron):
        assert np.array_equal(got.counts[n.name], ref[n.name]), n.name
    (readout,) = model.graph.ops(o.Readout)
    assert np.array_equal(got.logits_int, ref[readout.name])


@pytest.mark.parametrize("factors", ["digits", "scaled"])
@pytest.mark.parametrize("name", ["cnn", "transformer"])
def test_engines_on_integer_kernels_equal_a_literal_simulation(tiny_models, name, factors,
                                                                monkeypatch):
    """Every synapse whose operands fit 8 bits on onnxruntime's integer products, however
    few its terms and many its weight digits (cut into base-256 digits, or into an 8-bit
    matrix times a scale a column plus an 8-bit rest): both engines still exact."""
    monkeypatch.setenv("SNNCC_ORT_GRAPH", "0")  # the numpy path (test_sim_ortgraph: one session)
    monkeypatch.setattr(integer, "WIDE_TERMS", 0)
    monkeypatch.setattr(integer, "SCALED_TERMS", 0)
    monkeypatch.setattr(integer, "CONV_TERMS", 0)
    monkeypatch.setattr(integer, "MAX_DIGITS", 8)
    if factors == "digits":
        monkeypatch.setattr(integer, "scaled", lambda w: None)
    model = snncc.compile(tiny_models[name], T=9)
    p = plan.build(model.graph)
    assert p.stacked or name == "cnn"
    mats = [k for m in p.integer.values()
            for k in (m.mats if isinstance(m, integer.IntConv) else [m])]
    assert any(k.digits > 1 for k in mats)
    assert any(k.scale is not None for k in mats) == (factors == "scaled")
    x = RNG.uniform(0, 1, (6,) + model.input_shape)
    counts, logits = literal_steps(model.graph, x)
    for engine in ("fast", "step"):
        got = model.simulate(x, engine=engine)
        assert all(np.array_equal(got.counts[k], counts[k]) for k in counts), engine
        assert np.array_equal(got.logits_int, logits), engine


@pytest.mark.parametrize("name", ["transformer", "cnn_po2", "digits"])
def test_step_engine_needs_no_closed_form(tiny_models, name):
    """With every closed form made to raise, the fast engine fails and the step
    engine still runs and equals the integer reference: its counts are simulated."""
    if name == "digits":
        model = snncc.compile(EXAMPLE / "digits_vit_qcdq.onnx", T=7)
        x = np.load(EXAMPLE / "digits_test.npz")["x"][:8]
    else:
        model = snncc.compile(tiny_models[name], T=7)
        x = RNG.uniform(0, 1, (8,) + model.input_shape)
    ref = model.reference(x)
    with closed_form_forbidden():
        with pytest.raises(AssertionError, match="a closed form was used: engine.run_fast"):
            model.simulate(x, engine="fast")
        got = model.simulate(x, engine="step", trace=True)
    for n in model.graph.ops(o.Neuron):
        assert np.array_equal(got.counts[n.name], ref[n.name]), n.name
        assert np.array_equal(got.trains[n.name].sum(axis=0), ref[n.name]), n.name
    (readout,) = model.graph.ops(o.Readout)
    assert np.array_equal(got.logits_int, ref[readout.name])
    assert np.mean(ref[n.name] > 0) > 0.05  # the codes are not all zero


PLANTED = {  # a step engine taking each neuron's count from a closed form
    "kernels.level_counts": lambda p, n, v: plan._codes(p, n, v),
    "intmath.codes_from_thresholds": lambda p, n, v: intmath.codes_from_thresholds(
        v, n.op.sign, n.op.thresholds),
    "a name imported into plan": lambda p, n, v: plan.codes_from_thresholds(
        v, n.op.sign, n.op.thresholds),
    "reference EVAL[Neuron]": lambda p, n, v: reference.EVAL[o.Neuron](n, [v]),
    "reference._neuron": lambda p, n, v: reference._neuron(n, [v]),
}


@pytest.mark.parametrize("form", list(PLANTED))
def test_closed_form_ban_catches_a_step_engine_that_uses_one(tiny_models, monkeypatch, form):
    """A step engine whose counts come from a closed form agrees with the reference (it
    would pass every exactness check) until the ban is on: then it fails, naming it."""
    model = snncc.compile(tiny_models["transformer"], T=7)
    x = RNG.uniform(0, 1, (3,) + model.input_shape)
    monkeypatch.setattr(plan, "codes_from_thresholds", intmath.codes_from_thresholds,
                        raising=False)
    original = plan._neuron_steps

    def planted(p, n, current, batch, steps):
        train, _ = original(p, n, current, batch, steps)
        total = plan._as_sum(current, (batch,) + n.shape, p.dtype[n.inputs[0]]).total()
        return train, np.asarray(PLANTED[form](p, n, total)).astype(p.dtype[n.name])

    monkeypatch.setattr(plan, "_neuron_steps", planted)
    ref = model.reference(x)
    got = model.simulate(x, engine="step")
    assert all(np.array_equal(got.counts[k], ref[k]) for k in got.counts)
    with closed_form_forbidden(), pytest.raises(AssertionError,
                                                match="^a closed form was used: "):
        model.simulate(x, engine="step")


def test_a_plan_is_rebuilt_when_a_node_is_rewired():
    """The plan cache is checked by the graph's nodes: a node keeping its op but reading
    other values gets a new plan (a key of the ops alone kept the stale one)."""
    from test_measure import overlapping_residual

    g = overlapping_residual()
    model = snncc.CompiledModel(g)
    x = np.random.default_rng(4).integers(0, 4, (20, 4)).astype(np.float64)
    first = plan.build(g)
    assert plan.build(g) is first
    before = model.simulate(x).counts["n1"]
    g.replace_op("add", g.node("add").op, ("fc1", "fc1"))  # the same op, other operands
    assert plan.build(g) is not first
    after = model.simulate(x).counts["n1"]
    assert np.array_equal(after, model.reference(x)["n1"]) and not np.array_equal(after, before)
