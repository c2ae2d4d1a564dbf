"""Integer matrix products for the interpreter: onnxruntime's MatMulInteger (8-bit
operands, int32 sums) on spike counts, faster than float BLAS (bench/int_kernels.py).

A synapse's weights are cut into signed 8-bit digits, w = sum_j 256**j * d_j with every
d_j in -128..127, one product per digit; the digits' products are combined exactly in
float64. It applies where every operand fits 8 bits (counts 0..255, or -128..127 for
signed neurons) and no product's partial sum can leave int32; otherwise the plan keeps
float BLAS. Each product runs in a one-node onnxruntime session built from the weights
(the model's bytes are written here: importing `onnx` costs a second at start-up).

Not every machine's 8-bit kernels sum exactly (``exact_int8``, ``pairs``): onnxruntime's
x86 uint8 x int8 kernel without VNNI sums pairs of products in int16, saturating, and its
ARM one without the dot product instructions in int16, wrapping. A product that could
leave int16 there takes its weights as uint8 (d + 128, a zero point of 128) instead: the
uint8 x uint8 kernels widen to 16 bits and sum in int32 everywhere.
"""

from __future__ import annotations

import functools
import os
import platform
import sys
import threading

import numpy as np

from snncc import kernels
from snncc.errors import Diagnostic, SnnccError

MAX_DIGITS = 4  # more digits than this and float64 BLAS is as fast
WIDE_TERMS = 128  # below this many terms, combining digits costs more than it saves
SCALED_TERMS = 32  # below this many terms, float64 BLAS is as fast as two products and a combine
CONV_TERMS = 64  # below this many terms per output, float BLAS on [O, terms] x [terms,
#                  pixels] beats an 8-bit im2col
_INT32 = 2**31
_U8 = np.dtype(np.uint8)
_I8 = np.dtype(np.int8)
_COMBINE = 1 << 14  # elements per block when combining digits (L1/L2-sized)

# ONNX TensorProto data types
_UINT8, _INT8, _INT32_TYPE = 2, 3, 6


# ---------------------------------------------------------------- which 8-bit form is exact

PAIRS: str | None = None  # the kernels' pair sums, for tests: else SNNCC_INT8_PAIRS, else
#                           this machine's (``pairs``)
_HAZARDS = {"exact": (), "saturating": ("x86",), "wrapping": ("arm",),
            "any": ("x86", "arm")}


def pairs() -> str:
    """How this machine's onnxruntime sums pairs of 8-bit products with an int8 operand:
    "exact" (x86 with VNNI, ARM with the dot product instructions: no 16-bit step),
    "saturating" (other x86: int16, saturating, an int8 activation flipped to a + 128),
    "wrapping" (other ARM: int16, wrapping, a uint8 activation flipped to a - 128) or
    "any" (neither known: both). `PAIRS`, else the environment's SNNCC_INT8_PAIRS, sets it
    (a test forces "saturating" on a VNNI machine)."""
    setting = PAIRS or os.environ.get("SNNCC_INT8_PAIRS", "")
    if not setting:
        return _machine()
    if setting not in _HAZARDS:
        raise SnnccError(Diagnostic(
            f"SNNCC_INT8_PAIRS={setting!r} is not a known way to sum 8-bit products",
            fix=f"set it to one of {', '.join(_HAZARDS)}, or unset it to read the CPU's"))
    return setting


@functools.cache
def _machine() -> str:
    """`pairs` of this CPU, from its flags (Linux: /proc/cpuinfo), as onnxruntime's MLAS
    picks its uint8 x int8 kernel: with AVX-512 (F, BW, DQ, VL) the VNNI one only with
    avx512_vnni, else with avx_vnni; on ARM the dot product one with asimddp."""
    arch = platform.machine().lower()
    flags = _cpu_flags()
    if arch in ("x86_64", "amd64", "i386", "i686", "x86"):
        if flags is None:
            return "saturating"
        if {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= flags:
            return "exact" if "avx512_vnni" in flags else "saturating"
        return "exact" if "avx_vnni" in flags else "saturating"
    if arch in ("aarch64", "arm64"):
        if sys.platform == "darwin":  # Apple's ARM cores all have the dot product
            return "exact"
        return "exact" if flags is not None and "asimddp" in flags else "wrapping"
    return "any"


def _cpu_flags() -> frozenset[str] | None:
    """The first "flags" (x86) or "Features" (ARM) line of /proc/cpuinfo, or None."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return frozenset(value.split())
    except OSError:
        return None
    return None


def exact_int8(a_type: np.dtype, a_lo: int, a_hi: int, b_lo: int, b_hi: int) -> bool:
    """Whether onnxruntime's MatMulInteger of A (`a_type`, values a_lo..a_hi) by int8 B
    (b_lo..b_hi) is exact on this machine (`pairs`): every sum of two products, with A
    as the kernel holds it (x86 flips int8 A to uint8, a + 128; ARM uint8 A to int8,
    a - 128), stays in int16. (uint8 B is exact everywhere: those kernels widen to 16
    bits and sum in int32.)"""
    for hazard in _HAZARDS[pairs()]:
        if hazard == "x86":
            shift = 0 if np.dtype(a_type) == _U8 else 0x80
        else:
            shift = -0x80 if np.dtype(a_type) == _U8 else 0
        lo, hi = a_lo + shift, a_hi + shift
        ends = (lo * b_lo, lo * b_hi, hi * b_lo, hi * b_hi)
        if 2 * max(ends) > 0x7FFF or 2 * min(ends) < -0x8000:
            return False
    return True


def operand_range(x_type: np.dtype, reach: int) -> tuple[int, int]:
    """The values an 8-bit operand of `x_type` up to |x| <= reach may take."""
    if np.dtype(x_type) == _U8:
        return 0, min(reach, 0xFF)
    return -min(reach, 0x80), min(reach, 0x7F)


def digits(w: np.ndarray) -> list[np.ndarray]:
    """Signed base-256 digits of the integer array w (low first), each int8."""
    rest = w.astype(np.int64)
    out = []
    while True:
        low = (rest + 128) % 256 - 128
        out.append(low.astype(np.int8))
        rest = (rest - low) // 256
        if not rest.any():
            return out


def scaled(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(a, m, e) with w = a * m + e exactly, a and e int8 [K, N] and m a positive integer
    per column (int64 [N]), or None.

    Fixed-point weights that came from 8-bit ones, w = round(q * s) with q in -128..127
    and a real scale s per output, have such a split: with m = round(s), a = q and
    e = round(q * (s - m)), |e| <= 64.5. q is not known here; m is sought as the largest
    |w| of the column over a = 128, 127, ... (its q is often the largest 8-bit value),
    a = round(w / m), and a column is split once every a and e fit 8 bits.
    """
    w = np.asarray(w, np.int64)
    if w.ndim != 2 or w.size == 0:
        return None
    top = np.abs(w).max(axis=0)
    m = np.zeros(w.shape[1], np.int64)
    m[top <= 127] = 1
    for a in range(128, 63, -1):
        todo = np.flatnonzero(m == 0)
        if not len(todo):
            break
        mt = np.maximum(1, (top[todo] + a // 2) // a)
        q = np.floor_divide(w[:, todo] + mt // 2, mt)  # round(w / m), ties up
        e = w[:, todo] - q * mt
        ok = ((q.min(axis=0) >= -128) & (q.max(axis=0) <= 127)
              & (e.min(axis=0) >= -128) & (e.max(axis=0) <= 127))
        m[todo[ok]] = mt[ok]
    if np.any(m == 0):
        return None
    q = np.floor_divide(w + m // 2, m)
    return q.astype(np.int8), m, (w - q * m).astype(np.int8)


def operand_type(lo: int, hi: int) -> np.dtype | None:
    """The 8-bit type holding every operand value in lo..hi, or None."""
    if lo >= 0 and hi <= 0xFF:
        return np.dtype(np.uint8)
    if lo >= -0x80 and hi <= 0x7F:
        return np.dtype(np.int8)
    return None


class IntMatMul:
    """x [M, K] @ w [K, N] for 8-bit x, exact, as float64 (or `dtype`).

    The weights are cut into 8-bit factors, one product each (one session, one output a
    factor, so that each is a contiguous [M, N] array), combined in cache-sized blocks:
    `scaled` weights as (x @ a) * m + x @ e (two products whatever their width); other
    wide weights as base-256 digits, two digits into one int32 first (d_j + 256*d_(j+1))
    where `reach`, the largest |x|, keeps that in int32, then the pairs in float64.

    A factor whose int8 product is not exact on this machine (``exact_int8`` for x in
    `x_range`) is taken as uint8 (d + 128, a zero point of 128: `unsigned`); int8 x then
    goes in as x + 128 (uint8, a zero point of 128: `shift`) to every product.
    """

    def __init__(self, w: np.ndarray, x_type: np.dtype, reach: int | None = None,
                 factors: tuple[list[np.ndarray], np.ndarray | None] | None = None,
                 x_range: tuple[int, int] | None = None):
        self.x_type = np.dtype(x_type)
        self.k, self.n = w.shape
        if reach is None:
            reach = 0xFF if self.x_type == np.uint8 else 0x80
        cut, self.scale = factors if factors is not None else _factors(w, reach)
        self.digits = len(cut)
        self.cut = cut  # the 8-bit factors (ortgraph writes them into its model)
        self.pairs = 257 * 128 * reach * max(self.k, 1) < _INT32
        self.x_range = x_range if x_range is not None else operand_range(self.x_type, reach)
        self.unsigned, self.shift = _forms(cut, self.x_type, self.x_range)
        assert _sums_fit(self.k, self.x_type, self.x_range, self.unsigned, self.shift)
        self._session = None
        self._opening = threading.Lock()

    @property
    def session(self):
        """The products' session, opened on first use: the whole-graph session
        (``ortgraph``) writes `cut` into its own model and never needs this one."""
        with self._opening:
            if self._session is None:
                self._session = _open(self.model())
            return self._session

    def model(self) -> bytes:
        """The products' ONNX model: y_j = MatMulInteger(x, factor j), each factor int8,
        or uint8 (d + 128) with a zero point of 128 where `unsigned`; x of x_type, or
        uint8 (x + 128) with a zero point of 128 where `shift`."""
        ws = [(_UINT8, _unsigned(d).tobytes()) if u else (_INT8, d.tobytes())
              for d, u in zip(self.cut, self.unsigned, strict=True)]
        x_code = _UINT8 if self.shift else _code(self.x_type)
        return _model(x_code, ws, self.k, self.n, self.shift)

    @staticmethod
    def fits(w: np.ndarray, lo: int, hi: int) -> bool:
        """Whether x in lo..hi times w can run here: 8-bit x, few products (one, or
        `scaled` weights, or up to MAX_DIGITS digits over WIDE_TERMS terms), int32 sums."""
        return _fitting_factors(w, lo, hi) is not None

    @classmethod
    def planned(cls, w: np.ndarray, lo: int, hi: int) -> IntMatMul | None:
        """The kernel for x in lo..hi, or None where it does not fit (`fits`); the
        weights are cut once (`scaled` costs a pass over w per candidate scale)."""
        factors = _fitting_factors(w, lo, hi)
        if factors is None:
            return None
        x_type = operand_type(lo, hi)
        assert x_type is not None
        return cls(w, x_type, max(abs(lo), abs(hi)), factors, (lo, hi))

    def __call__(self, x: np.ndarray, dtype) -> np.ndarray:
        x2 = np.ascontiguousarray(x.reshape(-1, self.k), self.x_type)
        out = np.empty((len(x2), self.n), dtype)

        def rows(r: tuple[int, int]) -> None:
            self.product(x2[r[0]:r[1]], out[r[0]:r[1]])

        kernels.parallel(rows, kernels.split_rows(len(x2), x2.size * self.n))
        return out.reshape(x.shape[:-1] + (self.n,))

    def product(self, x2: np.ndarray, out: np.ndarray) -> None:
        """out [M, N] = x2 [M, K] (contiguous, of x_type) @ w."""
        if self.shift:  # int8 x as x + 128 in uint8 (its zero point 128: `model`)
            x2 = x2.view(np.uint8) ^ np.uint8(0x80)
        ys = self.session.run(None, {"x": x2})
        if self.digits == 1:
            np.copyto(out, ys[0], casting="unsafe")
            return
        if self.scale is not None and out.dtype == np.float64:  # (x @ a) * m + x @ e
            np.multiply(ys[0], self.scale, out=out)
            np.add(out, ys[1], out=out)
            return
        step = max(1, _COMBINE // self.n)
        for r in range(0, len(out), step):  # cache-sized blocks of rows
            parts = [y[r:r + step] for y in ys]
            if self.scale is not None:
                acc = parts[0] * self.scale
                acc += parts[1]
                np.copyto(out[r:r + step], acc, casting="unsafe")
                continue
            if self.pairs:  # d_j + 256*d_(j+1), exact in int32
                parts = [_pair(parts[j:j + 2]) for j in range(0, len(parts), 2)]
            base = 65536.0 if self.pairs else 256.0
            acc = parts[-1].astype(np.float64)
            for part in reversed(parts[:-1]):  # high first: acc*base + part
                acc *= base
                acc += part
            np.copyto(out[r:r + step], acc, casting="unsafe")


def _factors(w: np.ndarray, reach: int) -> tuple[list[np.ndarray], np.ndarray | None]:
    """(8-bit factors, scale or None): w's `scaled` split (a, e; m as float64) where w has
    more than two base-256 digits and the split is exact for |x| <= reach, else the
    digits."""
    cut = digits(w)
    if len(cut) > 2 and (split := _scaled(w, reach)) is not None:
        return [split[0], split[2]], split[1].astype(np.float64)
    return cut, None


def _fitting_factors(w: np.ndarray, lo: int, hi: int
                     ) -> tuple[list[np.ndarray], np.ndarray | None] | None:
    """`_factors(w, reach)` where `IntMatMul.fits` holds, else None."""
    x_type = operand_type(lo, hi)
    if w.ndim != 2 or w.size == 0 or x_type is None:
        return None
    reach = max(abs(lo), abs(hi))
    if w.shape[0] * reach * 128 >= _INT32:
        return None
    found = _some_factors(w, reach)
    if found is None or not _sums_fit(w.shape[0], x_type, (lo, hi),
                                      *_forms(found[0], x_type, (lo, hi))):
        return None
    return found


def _some_factors(w: np.ndarray, reach: int
                  ) -> tuple[list[np.ndarray], np.ndarray | None] | None:
    """One product, or `scaled` weights, or up to MAX_DIGITS digits over WIDE_TERMS
    terms, or None."""
    cut = digits(w)
    if len(cut) == 1:
        return cut, None
    if len(cut) > 2 and w.shape[0] >= SCALED_TERMS and (split := _scaled(w, reach)) is not None:
        return [split[0], split[2]], split[1].astype(np.float64)
    if len(cut) <= MAX_DIGITS and w.shape[0] >= WIDE_TERMS:
        # _factors' answer: a split exact here was found above (K >= SCALED_TERMS)
        return cut, None
    return None


def _forms(cut: list[np.ndarray], x_type: np.dtype, x_range: tuple[int, int]
           ) -> tuple[list[bool], bool]:
    """(per factor: uint8 weights with a zero point, not int8; x shifted to uint8): the
    int8 form where ``exact_int8`` holds, else the unsigned one. Shifted int8 x is
    uint8 in every product, so every factor goes unsigned with it."""
    unsigned = [d.size > 0 and not exact_int8(x_type, *x_range, int(d.min()), int(d.max()))
                for d in cut]
    if np.dtype(x_type) == _I8 and any(unsigned):
        return [True] * len(cut), True
    return unsigned, False


def _sums_fit(k: int, x_type: np.dtype, x_range: tuple[int, int], unsigned: list[bool],
              shift: bool) -> bool:
    """Whether an unsigned product's partial sums stay in int32 (x' up to 255 or |x|,
    the weights up to 255); the int8 ones are bounded by the plan's K * |x| * 128."""
    if not any(unsigned):
        return True
    top = 0xFF if shift else max(abs(x_range[0]), abs(x_range[1]))
    return k * top * 0xFF < _INT32


def _unsigned(d: np.ndarray) -> np.ndarray:
    """int8 d as d + 128 in uint8 (for a zero point of 128)."""
    return d.view(np.uint8) ^ np.uint8(0x80)


def _scaled(w: np.ndarray, reach: int):
    """`scaled(w)` where (x @ a) * m + x @ e stays exact in float64 for |x| <= reach."""
    split = scaled(w)
    if split is None or w.shape[0] * reach * 128 * (int(split[1].max()) + 1) >= 2**53:
        return None
    return split


def _pair(parts: list[np.ndarray]) -> np.ndarray:
    """low + 256*high of one or two int32 digit products."""
    if len(parts) == 1:
        return parts[0]
    high = parts[1] * 256
    high += parts[0]
    return high


class IntConv:
    """Grouped 2-D convolution of 8-bit x [B, C, H, W] by w [O, C/group, kh, kw], exact:
    im2col in 8 bits (channels last), one `IntMatMul` per group."""

    def __init__(self, op, x_type: np.dtype, reach: int | None = None,
                 mats: list[IntMatMul] | None = None):
        self.op, self.x_type = op, np.dtype(x_type)
        o, cg = op.weight.shape[:2]
        self.og = o // op.group
        self.mats = mats if mats is not None else [
            IntMatMul(_group_terms(op.weight, op.group, g), x_type, reach)
            for g in range(op.group)]

    @classmethod
    def planned(cls, op, lo: int, hi: int) -> IntConv | None:
        """The kernel for x in lo..hi, or None where it does not fit (`fits`), each
        group's weights cut once."""
        if op.weight[0].size < CONV_TERMS:
            return None
        mats = []
        for g in range(op.group):
            mat = IntMatMul.planned(_group_terms(op.weight, op.group, g), lo, hi)
            if mat is None:
                return None
            mats.append(mat)
        return cls(op, mats[0].x_type, max(abs(lo), abs(hi)), mats)

    @staticmethod
    def fits(op, lo: int, hi: int) -> bool:
        if op.weight[0].size < CONV_TERMS:
            return False
        return all(IntMatMul.fits(_group_terms(op.weight, op.group, g), lo, hi)
                   for g in range(op.group))

    def __call__(self, x: np.ndarray, dtype) -> np.ndarray:
        op = self.op
        (kh, kw), (sh, sw), (dh, dw) = op.weight.shape[2:], op.strides, op.dilations
        t, left, bottom, r = op.pads
        b, c = x.shape[:2]
        # channels last, so that im2col copies runs of C bytes
        x8 = np.zeros((b, x.shape[2] + t + bottom, x.shape[3] + left + r, c), self.x_type)
        x8[:, t:t + x.shape[2], left:left + x.shape[3]] = x.transpose(0, 2, 3, 1)
        ekh, ekw = dh * (kh - 1) + 1, dw * (kw - 1) + 1
        win = np.lib.stride_tricks.sliding_window_view(x8, (ekh, ekw), axis=(1, 2))
        win = win[:, ::sh, ::sw, :, ::dh, ::dw]  # [B, OH, OW, C, kh, kw]
        oh, ow = win.shape[1:3]
        cg = c // op.group
        out = np.empty((b, op.weight.shape[0], oh, ow), dtype)
        per = max(1, kernels.IM2COL // max(1, cg * kh * kw * oh * ow))
        per = max(1, min(per, -(-b // kernels.cores())))

        def block(job) -> None:
            g, s = job
            blk = win[s:s + per, :, :, g * cg:(g + 1) * cg].transpose(0, 1, 2, 4, 5, 3)
            cols = np.ascontiguousarray(blk).reshape(-1, cg * kh * kw)
            y = np.empty((len(cols), self.og), dtype)
            self.mats[g].product(cols, y)
            np.copyto(out[s:s + per, g * self.og:(g + 1) * self.og],
                      y.reshape(len(blk), oh, ow, self.og).transpose(0, 3, 1, 2))

        kernels.parallel(block, [(g, s) for g in range(op.group) for s in range(0, b, per)])
        return out


class IntStacked:
    """a @ b for stacks of 8-bit matrices (both operands variable, equal rank, leading
    axes broadcast), exact where every partial sum fits int32: onnxruntime's
    MatMulInteger, split over the cores along the first axis. Where int8 b is not exact
    on this machine (``exact_int8`` over `ranges`, each operand's values), each int8
    operand goes in as x + 128 in uint8 with a zero point of 128 (`shift`)."""

    def __init__(self, a_type: np.dtype, b_type: np.dtype,
                 ranges: tuple[tuple[int, int], tuple[int, int]] | None = None):
        self.types = np.dtype(a_type), np.dtype(b_type)
        a_range, b_range = ranges or tuple(operand_range(t, 0xFF) for t in self.types)
        risky = self.types[1] == _I8 and not exact_int8(self.types[0], *a_range, *b_range)
        self.shift = tuple(risky and t == _I8 for t in self.types)
        self._session = None
        self._opening = threading.Lock()

    @property
    def session(self):
        """The session, opened on first use (the whole-graph session never needs it)."""
        with self._opening:
            if self._session is None:
                self._session = _open(self.model())
            return self._session

    def model(self) -> bytes:
        codes = [_UINT8 if s else _code(t) for t, s in zip(self.types, self.shift, strict=True)]
        return _model2(codes[0], codes[1], *self.shift)

    def __call__(self, a: np.ndarray, b: np.ndarray, dtype) -> np.ndarray:
        a = np.ascontiguousarray(a, self.types[0])
        b = np.ascontiguousarray(b, self.types[1])
        if self.shift[0]:  # x + 128 in uint8 (its zero point 128: `model`)
            a = a.view(np.uint8) ^ np.uint8(0x80)
        if self.shift[1]:
            b = b.view(np.uint8) ^ np.uint8(0x80)
        lead = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        out = np.empty(lead + (a.shape[-2], b.shape[-1]), dtype)
        if not lead or out.size == 0:
            np.copyto(out, self.session.run(None, {"a": a, "b": b})[0], casting="unsafe")
            return out
        pick = lambda m, r: m if m.shape[0] == 1 else m[r[0]:r[1]]  # noqa: E731

        def part(r: tuple[int, int]) -> None:
            y = self.session.run(None, {"a": pick(a, r), "b": pick(b, r)})[0]
            np.copyto(out[r[0]:r[1]], y, casting="unsafe")

        kernels.parallel(part, kernels.split_rows(lead[0], out.size * a.shape[-1]))
        return out


def _group_terms(w: np.ndarray, group: int, g: int) -> np.ndarray:
    """Group g's weights as [kh*kw*C/group terms (channels fastest), O/group outputs]."""
    og = w.shape[0] // group
    return w[g * og:(g + 1) * og].transpose(0, 2, 3, 1).reshape(og, -1).T


def _code(t: np.dtype) -> int:
    return _UINT8 if t == np.uint8 else _INT8


def _open(model: bytes):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # the kernels split rows over the cores themselves
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


# ---------------------------------------------------------------- a one-node ONNX model
# y = MatMulInteger(x [m, k], w [k, n]) as protobuf bytes (onnx.proto's field numbers).


def _varint(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def _field(num: int, value: bytes | str | int) -> bytes:
    if isinstance(value, int):
        return _varint(num << 3) + _varint(value)
    data = value.encode() if isinstance(value, str) else value
    return _varint(num << 3 | 2) + _varint(len(data)) + data


def _value_info(name: str, elem: int, dims: list[int | str] | None) -> bytes:
    tensor_type = _field(1, elem)
    if dims is not None:
        shape = b"".join(_field(1, _field(2 if isinstance(d, str) else 1, d)) for d in dims)
        tensor_type += _field(2, shape)
    return _field(1, name) + _field(2, _field(1, tensor_type))


def _model(x_code: int, ws: list[tuple[int, bytes]], k: int, n: int, x_zero: bool) -> bytes:
    """y_j = MatMulInteger(x, w_j) for each factor's weights w_j (type code, bytes): uint8
    ones with a zero point of 128, and x's too with `x_zero`."""
    graph = b""
    for j, (code, data) in enumerate(ws):
        zeros = ["z" if x_zero else "", "z"] if code == _UINT8 else []
        node = (b"".join(_field(1, i) for i in ["x", f"w{j}", *zeros]) + _field(2, f"y{j}")
                + _field(4, "MatMulInteger"))
        weight = (_field(1, k) + _field(1, n) + _field(2, code) + _field(8, f"w{j}")
                  + _field(9, data))
        graph += _field(1, node) + _field(5, weight)
    if x_zero or any(code == _UINT8 for code, _ in ws):
        graph += _field(5, _zero_point("z"))
    graph += _field(2, "synapse") + _field(11, _value_info("x", x_code, ["m", k]))
    for j in range(len(ws)):
        graph += _field(12, _value_info(f"y{j}", _INT32_TYPE, ["m", n]))
    return _wrap(graph)


def _model2(a_code: int, b_code: int, a_zero: bool = False, b_zero: bool = False) -> bytes:
    """y = MatMulInteger(a, b), both inputs of any (broadcasting) shape, each with a zero
    point of 128 where asked."""
    zeros = ["z" if a_zero else "", "z" if b_zero else ""] if a_zero or b_zero else []
    node = (b"".join(_field(1, i) for i in ["a", "b", *zeros]) + _field(2, "y")
            + _field(4, "MatMulInteger"))
    graph = _field(1, node) + _field(2, "td_matmul")
    if zeros:
        graph += _field(5, _zero_point("z"))
    graph += (_field(11, _value_info("a", a_code, None))
              + _field(11, _value_info("b", b_code, None))
              + _field(12, _value_info("y", _INT32_TYPE, None)))
    return _wrap(graph)


def _zero_point(name: str) -> bytes:
    """A uint8 scalar 128 (a TensorProto)."""
    return _field(2, _UINT8) + _field(8, name) + _field(9, b"\x80")


def _wrap(graph: bytes) -> bytes:
    opset = _field(1, "") + _field(2, 17)
    return _field(1, 8) + _field(8, opset) + _field(7, graph)
