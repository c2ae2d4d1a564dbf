"""Physical layouts of the values in hardware, and the views engines read them through.

A buffered value is stored in a RAM whose words are rows of lanes: the value's elements
are ordered by the axis permutation `perm` (row-major) and grouped into rows of `lanes`
elements; engines process one row (all lanes) at a time. Convolution-family values are
stored channels-last, so that a row is every channel of one pixel; everything else keeps
its logical order with the last axis as the lanes.

An engine reads an input through a *view*: for every lane of every row it wants, the
buffer element that holds it. Layout ops (Reshape, Transpose, Take) and broadcasting
only change the view, never the data; `segments` finds the widest runs of consecutive
buffer lanes a view is made of, which is what the port hardware (snn_port) reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from snncc import ops as o
from snncc.ir import Graph
from snncc.reference import EVAL

CHANNELS_LAST = (1, 2, 0)
BUFFERED = (o.SpikeInput, o.Synapse, o.TDMatMul, o.TDMaxPool, o.AddCurrent, o.Neuron,
            o.ReduceSum)


@dataclass(frozen=True)
class Layout:
    """Elements ordered by `perm` of the logical axes, `lanes` of them per row."""

    shape: tuple[int, ...]
    perm: tuple[int, ...]
    lanes: int

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def rows(self) -> int:
        return self.size // self.lanes

    def positions(self) -> np.ndarray:
        """For every logical element, its physical flat index (row * lanes + lane)."""
        phys_shape = tuple(self.shape[p] for p in self.perm)
        flat = np.arange(self.size, dtype=np.int64).reshape(phys_shape)
        return flat.transpose(np.argsort(self.perm))

    def arrange(self, logical: np.ndarray) -> np.ndarray:
        """A logical-shaped array in this layout's order, as [rows, lanes]."""
        return logical.transpose(self.perm).reshape(self.rows, self.lanes)


def chunked(layout: Layout, lanes: int) -> Layout:
    """`layout` stored `lanes` lanes a word (a divisor of its lanes): row r's lanes in
    words r * chunks + c, the shape of a folded engine's output (narrow and deep: block
    RAM or LUTRAM rather than wide words of flip-flops)."""
    assert layout.lanes % lanes == 0, (layout, lanes)
    return Layout(layout.shape, layout.perm, lanes)


def natural(shape: tuple[int, ...], perm: tuple[int, ...] | None = None) -> Layout:
    """Rows of the last (permuted) axis."""
    shape = tuple(shape) or (1,)
    perm = tuple(range(len(shape))) if perm is None else perm
    return Layout(shape, perm, shape[perm[-1]])


def reduction_axes(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[list[int], list[int]]:
    """(reduced, kept) axes of a ReduceSum over `axes` of `shape`."""
    red = sorted({a % len(shape) for a in axes})
    return red, [a for a in range(len(shape)) if a not in red]


def reduced(in_shape: tuple[int, ...], axes: tuple[int, ...], out_shape: tuple[int, ...]
            ) -> Layout:
    """A ReduceSum's output: the kept axes in order, the last kept axis as lanes."""
    _, kept = reduction_axes(in_shape, axes)
    lanes = in_shape[kept[-1]] if kept else 1
    shape = tuple(out_shape) or (1,)
    return Layout(shape, tuple(range(len(shape))), lanes)


def reduce_view(in_shape: tuple[int, ...], axes: tuple[int, ...]) -> Layout:
    """How a ReduceSum reads its input: reduced axes first, then the kept axes, so that
    input row q*NOUT + j is the q-th term of output row j."""
    red, kept = reduction_axes(in_shape, axes)
    lanes = in_shape[kept[-1]] if kept else 1
    return Layout(tuple(in_shape), tuple(red + kept), lanes)


def resolve(graph: Graph, name: str) -> tuple[str, np.ndarray]:
    """The buffered value that `name` reads, and for every element of `name` the logical
    flat index of the element of that value it is."""
    n = graph.node(name)
    if isinstance(n.op, BUFFERED):
        return name, np.arange(max(int(np.prod(n.shape)), 1), dtype=np.int64).reshape(
            n.shape or (1,))
    if not isinstance(n.op, o.Reshape | o.Transpose | o.Take):
        raise AssertionError(f"no buffer behind {type(n.op).__name__} {name}")
    src, idx = resolve(graph, n.inputs[0])
    return src, EVAL[type(n.op)](n, [idx[None]])[0]


def assign_layouts(graph: Graph) -> dict[str, Layout]:
    """The physical layout of every buffered value: channels-last for the values that
    convolutions and pooling produce (and the neurons that follow them); the logical
    order, last axis as lanes, for everything else."""
    layouts: dict[str, Layout] = {}
    for n in graph.topo():
        if not isinstance(n.op, BUFFERED):
            continue
        perm: tuple[int, ...] | None = None
        if isinstance(n.op, o.ReduceSum):
            layouts[n.name] = reduced(graph.node(n.inputs[0]).shape, n.op.axes, n.shape)
            continue
        if isinstance(n.op, o.TDMaxPool) or (isinstance(n.op, o.Synapse)
                                            and n.op.kind == "conv"):
            perm = CHANNELS_LAST
        elif isinstance(n.op, o.Neuron | o.AddCurrent):
            direct = [layouts[i] for i in n.inputs if i in layouts]
            if (len(direct) == len(n.inputs) and all(d.shape == n.shape for d in direct)
                    and len({d.perm for d in direct}) == 1):
                perm = direct[0].perm
        layouts[n.name] = natural(n.shape, perm)
    return layouts


@dataclass(frozen=True)
class View:
    """How an engine reads a value: view row r, segment g (S lanes) is buffer row
    `rows[r, g]` from lane `offsets[r, g]` on. `chunked`: the view's rows are the
    buffer's words in order, G (a power of two, at least 2) whole words a row (a buffer
    written in chunks of a row, `chunked`): view row r is words {r, 0} .. {r, G - 1},
    addressed without a table."""

    vrows: int
    vlanes: int
    segment: int  # S
    rows: np.ndarray  # [vrows, G]
    offsets: np.ndarray  # [vrows, G]
    identity: bool
    chunked: bool = False

    @property
    def segments(self) -> int:
        return self.vlanes // self.segment


def view_of(graph: Graph, layouts: dict[str, Layout], value: str,
            wanted: Layout) -> tuple[str, View]:
    """The buffer behind `value` and the view of it an engine wanting `wanted` (a layout
    of `value`'s logical shape, or of a broadcast of it) reads."""
    src, index = resolve(graph, value)
    buf = layouts[src]
    phys = buf.positions().ravel()[index]  # logical element of value -> buffer position
    phys = np.broadcast_to(phys.reshape(np.shape(phys) or (1,)), wanted.shape)
    return src, segments(wanted.arrange(phys), buf)


def segments(view: np.ndarray, buf: Layout) -> View:
    """Split every view row into the fewest equal runs of consecutive buffer lanes."""
    vrows, vlanes = view.shape
    for s in sorted((d for d in range(1, vlanes + 1) if vlanes % d == 0), reverse=True):
        runs = view.reshape(vrows, vlanes // s, s)
        start = runs[..., :1]
        contiguous = np.all(runs == start + np.arange(s)) and np.all(
            start // buf.lanes == (start + s - 1) // buf.lanes)
        if contiguous:
            rows, offsets = start[..., 0] // buf.lanes, start[..., 0] % buf.lanes
            identity = (s == vlanes == buf.lanes and vrows == buf.rows
                        and np.array_equal(rows[:, 0], np.arange(vrows)))
            g = vlanes // s
            in_order = (s == buf.lanes and g > 1 and g & (g - 1) == 0
                        and vrows * g == buf.rows
                        and np.array_equal(rows.ravel(), np.arange(vrows * g)))
            return View(vrows, vlanes, s, rows, offsets, bool(identity), bool(in_order))
    raise AssertionError("a single lane is always a run")

