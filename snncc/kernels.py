"""Numpy kernels shared by the float evaluator, the integer reference and the interpreter.

All take a leading batch axis. Integer inputs give exact integer results: products go
through float64 BLAS only when every partial sum is exactly representable (< 2**53).
"""

from __future__ import annotations

import contextlib
import os

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

_EXACT = 2.0**53


def _exact_float(a: np.ndarray, b: np.ndarray, k: int) -> bool:
    bound = float(np.max(np.abs(a), initial=0)) * float(np.max(np.abs(b), initial=0)) * k
    return bound < _EXACT


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b; exact for integers."""
    if a.dtype.kind != "i" or b.dtype.kind != "i":
        return np.matmul(a, b)
    if _exact_float(a, b, a.shape[-1]):
        return np.rint(np.matmul(a.astype(np.float64), b.astype(np.float64))).astype(np.int64)
    return np.matmul(a, b)


def _pad(x: np.ndarray, pads, value) -> np.ndarray:
    t, l, b, r = pads
    if not any(pads):
        return x
    return np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)), constant_values=value)


def _windows(x: np.ndarray, kernel, strides, dilations=(1, 1)) -> np.ndarray:
    """[B, C, OH, OW, kh, kw] views of the (already padded) input."""
    kh, kw = kernel
    dh, dw = dilations
    ekh, ekw = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    win = sliding_window_view(x, (ekh, ekw), axis=(2, 3))
    return win[:, :, :: strides[0], :: strides[1], ::dh, ::dw]


def conv2d(x: np.ndarray, w: np.ndarray, strides, pads, dilations, group: int) -> np.ndarray:
    """Grouped 2-D convolution, x [B, C, H, W], w [O, C/group, kh, kw]; exact for integers."""
    win = _windows(_pad(x, pads, 0), w.shape[2:], strides, dilations)
    b, c, oh, ow = win.shape[:4]
    o, cg = w.shape[:2]
    og = o // group
    outs = []
    for g in range(group):
        cols = win[:, g * cg:(g + 1) * cg].transpose(0, 2, 3, 1, 4, 5).reshape(b * oh * ow, -1)
        wg = w[g * og:(g + 1) * og].reshape(og, -1).T
        outs.append(matmul(cols, wg).reshape(b, oh, ow, og))
    return np.concatenate(outs, axis=-1).transpose(0, 3, 1, 2)


def maxpool2d(x: np.ndarray, kernel, strides, pads) -> np.ndarray:
    low = -np.inf if x.dtype.kind == "f" else np.iinfo(np.int64).min
    win = _windows(_pad(x, pads, low), kernel, strides)
    return win.max(axis=(-2, -1))


def sumpool2d(x: np.ndarray, kernel, strides, pads) -> np.ndarray:
    win = _windows(_pad(x, pads, 0), kernel, strides)
    return win.sum(axis=(-2, -1))


# ---------------------------------------------------------------- exact float kernels
# The interpreter's compiled plans (backends/sim/plan.py) hold integers in float32 or
# float64 arrays where every value and partial sum is below 2**24 or 2**53, so these are
# exact; they aim at throughput (one BLAS call per layer, cache-sized chunks).

_CHUNK = 1 << 17  # elements per chunk of the element-wise kernels (fits in L2)
_IM2COL = 1 << 22  # elements of one im2col block


_SPLIT = 1 << 22  # multiply-adds worth handing a share to each core


# ---------------------------------------------------------------- threads
# Inside `single_blas_thread` numpy's OpenBLAS runs one thread and the kernels split their
# work over a pool of their own: one hand-off per layer instead of one per BLAS call (on a
# busy machine, OpenBLAS's own threads wait for each other at every small product).

_EXECUTOR = None
_BLAS = None  # (get, set) thread-count functions of numpy's OpenBLAS, or False
_SINGLE = False  # inside single_blas_thread()


def _allowed() -> list[int]:
    """The CPUs this process may run on (its affinity, where the system tells it)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


# asked once: each call reads /sys (about 15 µs, hundreds a batch); the CPUs the process
# may use, not the machine's (a container's or `taskset`'s share)
_CPU_SET = _allowed()
_CPUS = max(1, len(_CPU_SET))
PIN_ENV = "SNNCC_PIN_THREADS"  # "0": the kernels' threads go where the system puts them


def _workers() -> int:
    return _CPUS


def _pool_executor():
    """Threads for the kernels (numpy and onnxruntime release the GIL in their loops),
    each kept on a CPU of its own (`_pin`)."""
    global _EXECUTOR
    if _EXECUTOR is None:
        import itertools
        from concurrent.futures import ThreadPoolExecutor

        _EXECUTOR = ThreadPoolExecutor(max_workers=_workers(),
                                       thread_name_prefix="snncc-kernels",
                                       initializer=_pin, initargs=(itertools.count(),))
    return _EXECUTOR


def _pin(order) -> None:
    """Keep the pool's n-th thread on the process's n-th CPU. Unpinned, a worker woken for
    a short share of a batch (the digits ViT's: 4 ms) is often placed on the CPU of the
    thread that woke it, beside the other worker, and the two shares run one after the
    other (on an idle 2-core machine the digits ViT's whole-graph session took 7.1 ms a
    batch of 256 unpinned, 4.1 ms pinned, 7.0 ms on one thread; with one core busy, 8 ms
    either way: BENCHMARKS.md). SNNCC_PIN_THREADS=0 leaves the threads unpinned."""
    if os.environ.get(PIN_ENV, "1") == "0" or not hasattr(os, "sched_setaffinity"):
        return
    cpu = _CPU_SET[next(order) % len(_CPU_SET)]
    with contextlib.suppress(OSError):  # a CPU taken away since: left where it is
        os.sched_setaffinity(0, {cpu})  # 0: the calling thread, on Linux


def parallel(fn, items: list) -> None:
    """fn(item) for every item, over the cores (in turn when called from one of them)."""
    if len(items) < 2 or _workers() == 1 or _in_worker():
        for item in items:
            fn(item)
    else:
        list(_pool_executor().map(fn, items))


def _in_worker() -> bool:
    import threading

    return threading.current_thread().name.startswith("snncc-kernels")


def _openblas():
    """numpy's OpenBLAS thread-count functions (found among the loaded libraries)."""
    global _BLAS
    if _BLAS is None:
        _BLAS = False
        try:
            import ctypes

            with open("/proc/self/maps") as f:
                maps = f.read().splitlines()
            libs = {ln.split()[-1] for ln in maps if "openblas" in ln.lower() and ".so" in ln}
            for path in sorted(libs):
                lib = ctypes.CDLL(path)
                for stem in ("scipy_openblas", "openblas"):
                    for suffix in ("64_", ""):
                        get = getattr(lib, f"{stem}_get_num_threads{suffix}", None)
                        put = getattr(lib, f"{stem}_set_num_threads{suffix}", None)
                        if get is not None and put is not None:
                            _BLAS = (get, put)
                            return _BLAS
        except OSError:
            pass
    return _BLAS or None


class single_blas_thread:  # noqa: N801 - used as a context manager
    """Run numpy's OpenBLAS single-threaded inside; the kernels split work themselves.
    Does nothing if numpy's BLAS is not an OpenBLAS this can reach."""

    def __enter__(self):
        global _SINGLE
        blas = _openblas()
        self.before = None
        if blas is not None and not _SINGLE:
            self.before = blas[0]()
            blas[1](1)
            _SINGLE = True
        return self

    def __exit__(self, *exc):
        global _SINGLE
        if self.before is not None:
            _openblas()[1](self.before)
            _SINGLE = False


class small_pages:  # noqa: N801 - used as a context manager
    """Inside, numpy does not ask the kernel for transparent huge pages on large arrays.
    For arrays written only here and there (spike trains [T, batch, ...] of which each
    layer fills its few firing steps), each page touched would otherwise be zeroed 2 MiB
    at a time: on DeiT-tiny that is most of a traced step-engine run's system time. Does
    nothing if this numpy lacks the switch."""

    def __enter__(self):
        self.before = None
        switch = getattr(getattr(np, "_core", None), "multiarray", None)
        switch = getattr(switch, "_set_madvise_hugepage", None)
        if switch is not None:
            self.switch = switch
            self.before = switch(False)
        return self

    def __exit__(self, *exc):
        if self.before is not None:
            self.switch(self.before)


def _ranges(n: int, work: int) -> list[tuple[int, int]]:
    """[0, n) in one piece per core if `work` is worth splitting (and kernels may)."""
    parts = min(n, _workers()) if _SINGLE and work >= _SPLIT else 1
    edges = [n * k // parts for k in range(parts + 1)]
    return [(a, b) for a, b in zip(edges, edges[1:], strict=False) if b > a]


IM2COL = _IM2COL
windows = _windows
pad = _pad


def cores() -> int:
    return _workers()


def split_rows(n: int, work: int) -> list[tuple[int, int]]:
    """[0, n) in one piece per core if `work` multiply-adds are worth splitting."""
    return _ranges(n, work)


def dense(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """x [..., K] @ w [K, M] as one matrix product (x and w of one dtype)."""
    lead = x.shape[:-1]
    x2 = x.reshape(-1, x.shape[-1])
    out = np.empty((len(x2), w.shape[1]), np.result_type(x, w))
    parallel(lambda r: np.matmul(x2[r[0]:r[1]], w, out=out[r[0]:r[1]]),
             _ranges(len(x2), x2.size * w.shape[1]))
    return out.reshape(lead + (w.shape[1],))


def stacked_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b for stacks of float matrices (broadcast leading axes), split over the cores
    along the first one."""
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    shape = np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + (a.shape[-2], b.shape[-1])
    out = np.empty(shape, np.result_type(a, b))
    if not shape[:-2] or out.size == 0:
        return np.matmul(a, b, out=out)
    a = a.reshape((1,) * (len(shape) - a.ndim) + a.shape)
    b = b.reshape((1,) * (len(shape) - b.ndim) + b.shape)
    pick = lambda m, r: m if m.shape[0] == 1 else m[r[0]:r[1]]  # noqa: E731
    parallel(lambda r: np.matmul(pick(a, r), pick(b, r), out=out[r[0]:r[1]]),
             _ranges(shape[0], out.size * a.shape[-1]))
    return out


def conv2d_planes(x: np.ndarray, w: np.ndarray, strides, pads, dilations, group: int,
                  dtype) -> np.ndarray:
    """Grouped 2-D convolution into a contiguous [B, O, OH, OW] array of `dtype`.

    Per block of samples: im2col [b, C/g*kh*kw, OH*OW] (converted to `dtype` while it is
    gathered) and one stacked matrix product with the [O/g, C/g*kh*kw] weights.
    """
    w = w.astype(dtype, copy=False)
    win = _windows(_pad(x, pads, 0), w.shape[2:], strides, dilations)
    b, c, oh, ow, kh, kw = win.shape
    o, cg = w.shape[:2]
    og = o // group
    out = np.empty((b, o, oh * ow), dtype)
    per = max(1, _IM2COL // max(1, cg * kh * kw * oh * ow))
    if _SINGLE:
        per = max(1, min(per, -(-b // _workers())))

    def block(job) -> None:
        g, s = job
        wg = w[g * og:(g + 1) * og].reshape(og, -1)
        blk = win[s:s + per, g * cg:(g + 1) * cg].transpose(0, 1, 4, 5, 2, 3)
        cols = np.ascontiguousarray(blk, dtype).reshape(len(blk), cg * kh * kw, oh * ow)
        np.matmul(wg, cols, out=out[s:s + per, g * og:(g + 1) * og])

    parallel(block, [(g, s) for g in range(group) for s in range(0, b, per)])
    return out.reshape(b, o, oh, ow)


def _pool(x: np.ndarray, kernel, strides, pads, fill, combine) -> np.ndarray:
    """Pooling as a fold of shifted copies of the whole (padded) array, one axis after the
    other: kw - 1 then kh - 1 passes over contiguous memory (not kh*kw passes of short,
    strided rows), then the windows' corners picked at the strides."""
    x = np.ascontiguousarray(_pad(x, pads, fill))
    (kh, kw), (sh, sw) = kernel, strides
    b, c, h, w = x.shape
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    if oh <= 0 or ow <= 0:
        raise AssertionError("an empty window")
    flat = x.reshape(-1)
    for taps, step in ((kw, 1), (kh, w)):  # along each row, then down each column
        reach = (taps - 1) * step
        if reach == 0:
            continue
        out = np.empty_like(flat)  # a window's start holds its result; the tail no window
        out[len(flat) - reach:] = fill
        head = out[:len(flat) - reach]
        head[...] = flat[:len(head)]
        for j in range(1, taps):
            combine(head, flat[j * step:j * step + len(head)], out=head)
        flat = out
    return np.ascontiguousarray(flat.reshape(b, c, h, w)[:, :, :sh * (oh - 1) + 1:sh,
                                                          :sw * (ow - 1) + 1:sw])


def maxpool_planes(x: np.ndarray, kernel, strides, pads) -> np.ndarray:
    """Max pooling of [B, C, H, W] (any dtype; padding never wins)."""
    low = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
    return _pool(x, kernel, strides, pads, low, np.maximum)


def sumpool_planes(x: np.ndarray, kernel, strides, pads) -> np.ndarray:
    """Sum pooling of [B, C, H, W] in x's dtype (exact for integers in range)."""
    return _pool(x, kernel, strides, pads, 0, np.add)


def level_tables(thresholds: np.ndarray, sample: tuple[int, ...], dtype) -> list[np.ndarray]:
    """Thresholds [..., L] as L contiguous arrays (one per level) for `level_counts`.

    Each broadcasts against the per-sample shape; small per-channel tables are written out
    to the whole sample, so that the compares run over long contiguous rows.
    """
    levels = thresholds.shape[-1]
    th = thresholds.astype(dtype, copy=False)
    th = th.reshape((1,) * (len(sample) + 1 - th.ndim) + th.shape)
    if th[..., 0].size > 1 and int(np.prod(sample, dtype=np.int64)) <= _CHUNK:
        th = np.broadcast_to(th, tuple(sample) + (levels,))
    return [np.ascontiguousarray(th[..., k]) for k in range(levels)]


def level_counts(v: np.ndarray, levels: list[np.ndarray], dtype=np.uint8) -> np.ndarray:
    """``#{k : v >= levels[k]}`` per element of v [B, ...], as `dtype`.

    `levels` (from `level_tables`: non-decreasing, v's dtype) broadcast against the
    per-sample shape. Counted in cache-sized chunks (L compare-and-add passes each),
    spread over the cores.
    """
    out = np.zeros(v.shape, dtype)
    size = int(np.prod(v.shape[1:], dtype=np.int64))
    block = _CHUNK if v.size < 2 * _CHUNK else max(_CHUNK // 4, min(
        _CHUNK, v.size // (2 * _workers())))

    def count(chunk) -> None:
        sl, ts = chunk
        vc, oc = v[sl], out[sl]
        mask = np.empty(vc.shape, np.bool_)
        for t in ts:
            np.greater_equal(vc, t, out=mask)
            np.add(oc, mask.view(np.uint8), out=oc)

    parallel(count, list(_chunks(v.shape, size, levels, block)))
    return out


def affine_counts(v: np.ndarray, scale: np.ndarray, offset: np.ndarray, levels: int,
                  dtype=np.uint8) -> np.ndarray:
    """``clip(v*scale + offset, 0, levels)`` rounded down, per element of v [B, ...], as
    `dtype`: a neuron's level count in one pass where the plan has proved it equal to
    ``level_counts`` over the current's whole range (``backends.sim.levels``).

    `scale` and `offset` are tables of v's dtype (``affine_tables``) broadcast against the
    per-sample shape. Computed as ``affine_levels`` does, in cache-sized chunks spread
    over the cores (a multiply, an add, a clip and a truncating cast: four passes instead
    of L compare-and-add pairs).
    """
    out = np.empty(v.shape, dtype)
    size = int(np.prod(v.shape[1:], dtype=np.int64))
    block = _CHUNK if v.size < 2 * _CHUNK else max(_CHUNK // 4, min(
        _CHUNK, v.size // (2 * _workers())))

    def count(chunk) -> None:
        sl, (m, q) = chunk
        affine_levels(v[sl], m, q, levels, out[sl])

    parallel(count, list(_chunks(v.shape, size, [scale, offset], block)))
    return out


def affine_levels(v: np.ndarray, scale, offset, levels: int, out: np.ndarray) -> None:
    """out = trunc(clip(v*scale + offset, 0, levels)): each step a correctly rounded (or
    exact) float operation, so the result is a non-decreasing function of v when scale
    > 0 (non-increasing when < 0) whatever the array layout. The plan's proof rests on
    that and evaluates this same function."""
    t = np.multiply(v, scale)
    np.add(t, offset, out=t)
    np.clip(t, 0, levels, out=t)
    np.copyto(out, t, casting="unsafe")  # non-negative: truncation is the floor


def _chunks(shape, size: int, th: list[np.ndarray], block: int):
    """(index, thresholds) pairs covering [B, ...] in blocks of about `block` elements:
    several samples at once if they are small, else slices along the first sample axis."""
    if size <= block or len(shape) == 1:
        per = max(1, block // max(size, 1))
        for s in range(0, shape[0], per):
            yield np.s_[s:s + per], th
        return
    rows = max(1, block // max(1, size // shape[1]))
    for b in range(shape[0]):
        for r in range(0, shape[1], rows):
            yield np.s_[b, r:r + rows], [t[r:r + rows] if t.shape[0] > 1 else t for t in th]


# ---------------------------------------------------------------- DIF neurons, step by step


def dif_steps(v: np.ndarray, rows: list[np.ndarray], steps: int, arrivals=None,
              sign: np.ndarray | None = None, clamp: int | None = None,
              dtype=np.uint8) -> tuple[np.ndarray, np.ndarray]:
    """DIF neurons v [B, ...] simulated one firing step after the other, as the hardware
    does (``snn_neuron.v``, ``dif_fire`` in ``snn_kernels.h``). At step t of the window:

        v += I(t);  fire = sign*v >= rows[count];  count += fire

    `v` holds the membranes as the window opens (updated in place); `rows` are the L
    per-level thresholds (non-decreasing, each broadcasting against the per-sample shape)
    and then one that no membrane reaches, so that a neuron that has sent L spikes never
    fires again (the ``count < L`` rule). `arrivals(t)` gives the currents arriving at
    step t, each of v's rank. sign*v is compared in the rows' dtype, clipped to
    ±`clamp` if given (beyond every threshold but the last row: no comparison changes).
    Returns (spike trains [steps, B, ...], counts [B, ...]), both of `dtype`.

    Each neuron's next threshold rows[count] is kept in an array and advanced when it
    fires: a neuron that fired at every step so far (count = t) moves on by
    rows[t+1] - rows[t], an element-wise add; any other that fires (possible only once
    its membrane has moved) has it gathered from the table. In cache-sized blocks of
    samples, spread over the cores.
    """
    trains = np.empty((steps,) + v.shape, dtype)
    counts = np.zeros(v.shape, dtype)
    if steps <= 0 or v.size == 0:
        return trains, counts
    table = _DifTable(rows, v.shape[1:])
    chunk = _CHUNK if v.size < 2 * _CHUNK else max(_CHUNK // 4, min(
        _CHUNK, v.size // (2 * _workers())))  # as level_counts
    per = max(1, chunk // table.size)

    def block(s: int) -> None:
        sl = np.s_[s:s + per]

        def arriving(t: int) -> list[np.ndarray]:
            return [a if a.shape[0] == 1 else a[sl] for a in arrivals(t)] if arrivals else []

        _dif_block(v[sl], table, trains[:, sl], counts[sl], arriving, sign, clamp)

    parallel(block, list(range(0, len(v), per)))
    return trains, counts


class _DifTable:
    """The thresholds of `dif_steps`: rows, their differences, and (made when first
    needed) the whole [L+1, sample] table flattened for gathers."""

    def __init__(self, rows: list[np.ndarray], sample: tuple[int, ...]):
        self.rows = rows
        self.deltas = [b - a for a, b in zip(rows, rows[1:], strict=False)]
        self.sample, self.size = sample, max(1, int(np.prod(sample, dtype=np.int64)))
        self._flat: np.ndarray | None = None

    @property
    def flat(self) -> np.ndarray:
        if self._flat is None:
            self._flat = np.stack([np.broadcast_to(r, self.sample) for r in self.rows]
                                  ).reshape(-1)
        return self._flat


def _dif_block(v: np.ndarray, table: _DifTable, trains: np.ndarray, count: np.ndarray,
               arriving, sign, clamp) -> None:
    """`dif_steps` on a block of samples (contiguous arrays, batch first)."""
    dt = table.rows[0].dtype
    alias = sign is None and clamp is None and v.dtype == dt  # sign*v is v itself
    sv = v if alias else np.empty(v.shape, dt)
    nxt = np.empty(v.shape, dt)
    nxt[...] = table.rows[0]
    moved = np.empty(v.shape, dt)
    fire = np.empty(v.shape, np.bool_)
    moving = False  # some current arrived since the window opened
    for t in range(len(trains)):
        came = arriving(t)
        for a in came:
            np.add(v, a, out=v)
        if (t == 0 or came) and not alias:
            _signed(v, sign, clamp, sv)
        moving = moving or bool(came)
        if trains.dtype == np.uint8:
            fire = trains[t].view(np.bool_)
        np.greater_equal(sv, nxt, out=fire)  # the rule: sign*v >= rows[count]
        if trains.dtype != np.uint8:
            trains[t] = fire
        np.add(count, fire, out=count, casting="unsafe")
        if t + 1 == len(trains):
            break
        leading = t < len(table.deltas)  # a neuron may have fired at every step so far
        if leading:
            np.multiply(fire, table.deltas[t], out=moved)  # rows[t] -> rows[t+1]
            np.add(nxt, moved, out=nxt)
        if moving or not leading:
            _gather_lagging(nxt, fire, count, t, table)


def _signed(v: np.ndarray, sign, clamp, out: np.ndarray) -> None:
    """out = sign*v (clipped to ±clamp), in out's dtype."""
    s = v if sign is None else v * sign
    if clamp is None:
        np.copyto(out, s, casting="unsafe")
    else:
        np.clip(s, -clamp, clamp, out=out, casting="unsafe")


def _gather_lagging(nxt: np.ndarray, fire: np.ndarray, count: np.ndarray, t: int,
                    table: _DifTable) -> None:
    """Neurons that fired at step t with fewer than t earlier spikes: their next threshold
    is not rows[t+1], so it is looked up. (While no current arrives, a neuron that did
    not fire keeps its membrane and its threshold, so it cannot fire later: no lag.)"""
    full = count == t + 1  # fired now and at every step before
    if np.count_nonzero(full) == np.count_nonzero(fire):
        return
    hit = np.flatnonzero(fire & ~full)
    flat_count = count.reshape(-1)[hit].astype(np.intp)
    nxt.reshape(-1)[hit] = table.flat[flat_count * table.size + hit % table.size]


# ---------------------------------------------------------------- signed and multi neurons


def _table(rows: list[np.ndarray], v: np.ndarray) -> np.ndarray:
    """The L+1 threshold rows of `dif_steps` as one [L+1, B-broadcast sample] array."""
    return np.stack([np.broadcast_to(r, v.shape[1:]) for r in rows])


def _membrane(v: np.ndarray, sign, clamp, dt) -> np.ndarray:
    out = np.empty(v.shape, dt)
    _signed(v, sign, clamp, out)
    return out


def signed_steps(v: np.ndarray, rows: list[np.ndarray], steps: int, arrivals=None,
                 sign: np.ndarray | None = None, clamp: int | None = None,
                 dtype=np.int8) -> tuple[np.ndarray, np.ndarray]:
    """Signed DIF neurons (``--neuron signed``), one step after the other, as the hardware
    does. At step t of the window, with n the net count so far:

        v += I(t);  +1 if n < L and sign*v >= θ_n;  else -1 if n > 0 and sign*v < θ_(n-1)

    (`rows` as for `dif_steps`: θ_0..θ_(L-1), then one no membrane reaches). A negative
    spike takes back the last one when the membrane has fallen below the threshold that
    spike crossed. Returns (spike trains [steps, B, ...] of ±1 and 0, net counts), both of
    the signed `dtype`.
    """
    trains = np.zeros((steps,) + v.shape, dtype)
    count = np.zeros(v.shape, np.intp)
    if steps <= 0 or v.size == 0:
        return trains, count.astype(dtype)
    table = _table(rows, v)
    levels = len(rows) - 1
    lead = (slice(None),) + tuple(np.indices(v.shape[1:], sparse=True))
    for t in range(steps):
        for a in arrivals(t) if arrivals else []:
            np.add(v, a, out=v)
        sv = _membrane(v, sign, clamp, table.dtype)
        up_th = table[(np.minimum(count, levels),) + lead[1:]]
        down_th = table[(np.maximum(count - 1, 0),) + lead[1:]]
        up = (count < levels) & (sv >= up_th)
        down = ~up & (count > 0) & (sv < down_th)
        step = up.astype(np.intp) - down
        count += step
        trains[t] = step
    return trains, count.astype(dtype)


def multi_steps(v: np.ndarray, rows: list[np.ndarray], steps: int, arrivals=None,
                sign: np.ndarray | None = None, clamp: int | None = None,
                dtype=np.uint8) -> tuple[np.ndarray, np.ndarray]:
    """Multi-threshold neurons (``--neuron multi``), one step after the other, as the
    hardware does: a bank of L comparators, one per level, and the count so far. At step t
    of the window:

        v += I(t);  e = #{k >= count : sign*v >= θ_k};  count += e

    and e goes out as one binary number on ⌈log2(L+1)⌉ weighted lines (`rows` as for
    `dif_steps`; the last, unreachable row is not a level). Returns (the numbers sent at
    each step [steps, B, ...], counts), both of `dtype`.
    """
    trains = np.zeros((steps,) + v.shape, dtype)
    count = np.zeros(v.shape, dtype)
    if steps <= 0 or v.size == 0:
        return trains, count
    dt = rows[0].dtype
    for t in range(steps):
        for a in arrivals(t) if arrivals else []:
            np.add(v, a, out=v)
        sv = _membrane(v, sign, clamp, dt)
        reached = np.zeros(v.shape, dtype)
        for k, theta in enumerate(rows[:-1]):  # the comparator bank
            reached += (sv >= theta) & (count <= k)
        count += reached
        trains[t] = reached
    return trains, count


def window_taps(out: int, size: int, k: int, stride: int, pad: int, dilation: int = 1
                ) -> np.ndarray:
    """[out, k]: the input position ``i = o*stride - pad + j*dilation`` that tap j of output
    position o reads along one axis, or -1 where it falls in the padding. The one statement
    of a window's reach, which both hardware backends encode in their tables."""
    i = (np.arange(out)[:, None] * stride - pad + np.arange(k)[None, :] * dilation)
    return np.where((i >= 0) & (i < size), i, -1).astype(np.int64)
