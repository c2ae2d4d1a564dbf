"""Operation counts of an SNN run and the energy estimate against the ANN's MACs.

The counting rules (written out in docs/reports.md), per layer and summed over a batch:

- spike-driven synapse (dense or conv): SOPs = Σ input spikes × fan-out, where a spike's
  fan-out is the number of (output element, weight) pairs it reaches (for a conv, the
  output positions its receptive fields cover, honouring padding, stride and dilation,
  times the output channels of its group). ``sops_effective`` skips zero weights
  (NeuroBench's Eff_ACs).
- analog first layer: MACs = the dense multiply-accumulate count, once per inference.
- TD-MatMul: each spike of S_A(t) adds a row of C_B(t) (M adds), each spike of S_B(t) a
  column of C_A(t-1) (N adds); ``sops_effective`` skips the zero counter entries.
- residual add / sum / sum-pool: the two-operand additions needed, per step, to sum the
  operands that are non-zero at that step (an add with a zero operand is a pass-through).
- TD max-pool: per input spike, one comparison per pooling window that contains it
  (reported; not in the energy, as neuron updates are not).
Energy: ``pj_mac`` per MAC + ``pj_ac`` per accumulate (SOPs and current additions).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from snncc import kernels
from snncc import ops as o
from snncc.ir import Graph, Node
from snncc.metrics.activity import replay


@dataclass
class LayerOps:
    """Operation totals of one layer over a batch of inferences."""

    sops: int = 0  # synaptic accumulates: input spikes x fan-out
    sops_effective: int = 0  # the same, skipping zero weights / zero counter entries
    macs: int = 0  # multiply-accumulates performed (the analog first layer)
    adds: int = 0  # additions of currents (residual adds, sums)
    comparisons: int = 0  # TD max-pool comparisons
    spikes: int = 0  # spikes the layer emitted

    def __iadd__(self, other: LayerOps) -> LayerOps:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self

    @property
    def accumulates(self) -> int:
        """Everything charged at the AC energy."""
        return self.sops + self.adds


@dataclass
class OpCounts:
    """Per-layer operation totals over `samples` inferences."""

    samples: int = 0
    layers: dict[str, LayerOps] = field(default_factory=dict)

    def merge(self, other: OpCounts) -> None:
        self.samples += other.samples
        for name, ops in other.layers.items():
            self.layers.setdefault(name, LayerOps())
            self.layers[name] += ops

    def per_inference(self, name: str) -> dict[str, float]:
        ops = self.layers.get(name, LayerOps())
        return {k: v / max(self.samples, 1) for k, v in asdict(ops).items()}

    def total(self) -> dict[str, float]:
        out = dict.fromkeys(asdict(LayerOps()), 0.0)
        for name in self.layers:
            for k, v in self.per_inference(name).items():
                out[k] += v
        return out


@dataclass(frozen=True)
class EnergyModel:
    """Energy per operation in pJ (default: 45 nm CMOS, Horowitz 2014)."""

    pj_ac: float = 0.9
    pj_mac: float = 4.6

    def snn_pj(self, macs: float, accumulates: float) -> float:
        return self.pj_mac * macs + self.pj_ac * accumulates

    def ann_pj(self, macs: float) -> float:
        return self.pj_mac * macs


# ---------------------------------------------------------------- static counts


def dense_macs(op: o.Op, in_shapes: list[tuple[int, ...]], out_shape: tuple[int, ...]) -> int:
    """MACs of the equivalent ANN layer for one inference (0 for non-MAC layers)."""
    out = int(np.prod(out_shape))
    if isinstance(op, o.Synapse):
        fan_in = op.weight.shape[0] if op.kind == "dense" else int(np.prod(op.weight.shape[1:]))
        return out * int(fan_in)
    if isinstance(op, o.TDMatMul | o.MatMul):
        return out * int(in_shapes[0][-1])
    return 0


def node_dense_macs(graph: Graph, n: Node) -> int:
    return dense_macs(n.op, [graph.node(i).shape for i in n.inputs], n.shape)


# ---------------------------------------------------------------- counting rules


def synapse_sops(op: o.Synapse, counts: np.ndarray) -> tuple[int, int]:
    """(SOPs, effective SOPs) of a spike-driven synapse for input counts [B, ...]."""
    nonzero = (op.weight != 0).astype(np.int64)
    counts = counts.astype(np.int64)
    if op.kind == "dense":
        return int(counts.sum()) * op.weight.shape[1], int(kernels.matmul(counts, nonzero).sum())
    per_group = op.weight.shape[0] // op.group
    ones = np.ones((op.group,) + op.weight.shape[1:], np.int64)
    reach = kernels.conv2d(counts, ones, op.strides, op.pads, op.dilations, op.group)
    eff = kernels.conv2d(counts, nonzero, op.strides, op.pads, op.dilations, op.group)
    return int(reach.sum()) * per_group, int(eff.sum())


def _broadcast_factor(operand: tuple[int, ...], out: tuple[int, ...]) -> int:
    """How many products one operand element takes part in through batch broadcasting."""
    return math.prod(out[:-2]) // max(math.prod(operand[:-2]), 1)


def td_matmul_sops(sa: np.ndarray, sb: np.ndarray) -> tuple[int, int]:
    """(SOPs, effective SOPs) of ΔP(t) = S_A(t)·C_B(t) + C_A(t-1)·S_B(t), trains [T, B, ...]."""
    a, b = sa.shape[2:], sb.shape[2:]
    out = tuple(np.broadcast_shapes(a[:-2], b[:-2])) + (a[-2], b[-1])
    n, m = a[-2], b[-1]
    sops = (_broadcast_factor(a, out) * m * int(sa.sum())
            + _broadcast_factor(b, out) * n * int(sb.sum()))
    ca_prev = (np.cumsum(sa, axis=0) - sa != 0).astype(np.int64)
    cb = (np.cumsum(sb, axis=0) != 0).astype(np.int64)
    fold = (lambda v: v.reshape((-1,) + v.shape[2:]))  # noqa: E731
    eff = (kernels.matmul(fold(sa), fold(cb)).sum()
           + kernels.matmul(fold(ca_prev), fold(sb)).sum())
    return sops, int(eff)


def maxpool_comparisons(op: o.TDMaxPool, counts: np.ndarray) -> int:
    """One comparison per input spike per pooling window that contains the input."""
    return int(kernels.sumpool2d(counts.astype(np.int64), op.kernel, op.strides, op.pads).sum())


def add_current_adds(a: np.ndarray, b: np.ndarray) -> int:
    """Per step, one addition per element where both currents are non-zero."""
    both = np.logical_and(a != 0, b != 0)
    return int(np.count_nonzero(both))


def _merge_adds(nonzero_per_output: np.ndarray) -> int:
    """Σ max(n - 1, 0) over the outputs' non-zero operand counts n."""
    return (int(nonzero_per_output.sum(dtype=np.int64))
            - int(np.count_nonzero(nonzero_per_output)))


def reduce_sum_adds(op: o.ReduceSum, x: np.ndarray) -> int:
    """Per step and output element: (non-zero operands - 1) additions. x is [T, B, ...]."""
    axes = {(a + 2 if a >= 0 else a + x.ndim) for a in op.axes}
    letters = "abcdefghijklmnopqrstuvwxyz"[:x.ndim]
    kept = "".join(c for i, c in enumerate(letters) if i not in axes)
    # einsum: numpy's own sum over a short inner axis is about three times slower
    return _merge_adds(np.einsum(f"{letters}->{kept}", x != 0, dtype=np.int64))


def sum_pool_adds(op: o.SumPool, x: np.ndarray) -> int:
    folded = (x != 0).astype(np.int64).reshape((-1,) + x.shape[2:])
    return _merge_adds(kernels.sumpool2d(folded, op.kernel, op.strides, op.pads))


# ---------------------------------------------------------------- a run


def events(spikes: np.ndarray) -> np.ndarray:
    """Spike events per element and step: 1 for a unit spike, 1 for a signed neuron's -1
    (it reaches the synapses too, which subtract), and one per set line for a number sent
    on weighted lines (multi neurons: each line is a spike; the shift is free)."""
    if spikes.dtype.kind == "b" or spikes.size == 0:
        return spikes
    magnitude = np.abs(spikes.astype(np.int64))
    if magnitude.max() <= 1:
        return magnitude.astype(spikes.dtype) if spikes.dtype.kind == "i" else spikes
    ones = np.zeros(magnitude.shape, np.int64)
    while magnitude.any():  # popcount, a bit at a time (codes are small)
        ones += magnitude & 1
        magnitude >>= 1
    return ones


def layer_ops(n: Node, ins: list[np.ndarray], out: np.ndarray | None) -> LayerOps | None:
    """The operations of node `n` given its per-step operands and result [T, B, ...]
    (`out` is None where no count needs it). Spike operands and results count as
    `events` (a signed spike or a line of a weighted number is one event)."""
    op = n.op
    if isinstance(op, o.Synapse):
        if op.analog:
            batch = ins[0].shape[1]
            return LayerOps(macs=batch * dense_macs(op, [ins[0].shape[2:]], n.shape))
        sops, eff = synapse_sops(op, events(ins[0]).sum(axis=0))
        return LayerOps(sops=sops, sops_effective=eff)
    if isinstance(op, o.TDMatMul):
        sops, eff = td_matmul_sops(*[events(i) for i in ins])
        return LayerOps(sops=sops, sops_effective=eff)
    spikes = 0 if out is None else int(events(out).sum())
    if isinstance(op, o.TDMaxPool):
        return LayerOps(comparisons=maxpool_comparisons(op, events(ins[0]).sum(axis=0)),
                        spikes=spikes)
    if isinstance(op, o.AddCurrent):
        return LayerOps(adds=add_current_adds(*ins))
    if isinstance(op, o.ReduceSum):
        return LayerOps(adds=reduce_sum_adds(op, ins[0]))
    if isinstance(op, o.SumPool):
        return LayerOps(adds=sum_pool_adds(op, ins[0]))
    if isinstance(op, o.Neuron) or isinstance(op, o.SpikeInput) and not op.analog:
        return LayerOps(spikes=spikes)
    return None


def count_ops(graph: Graph, x: np.ndarray, trains: dict[str, np.ndarray]) -> OpCounts:
    """Operation totals of one simulated batch (`trains`: every neuron's spike train)."""
    counts = OpCounts(samples=len(x))

    def visit(n: Node, ins: list[np.ndarray], out: np.ndarray | None) -> None:
        ops = layer_ops(n, ins, out)
        if ops is not None:
            counts.layers[n.name] = ops

    replay(graph, x, trains, visit)
    return counts


def energy_summary(counts: OpCounts, ann_macs: int | None, model: EnergyModel) -> dict:
    """Per-inference energy of the SNN, of the source ANN, and their ratio."""
    total = counts.total()
    return energy_from_totals({k: total[k] for k in ("macs", "sops", "adds", "comparisons")},
                              ann_macs, model)


def energy_from_totals(snn: dict, ann_macs: int | None, model: EnergyModel) -> dict:
    """The energy section of report.json from per-inference operation totals."""
    pj = model.snn_pj(snn["macs"], snn["sops"] + snn["adds"])
    out = {"pj_per_ac": model.pj_ac, "pj_per_mac": model.pj_mac, "snn": {**snn, "pj": pj},
           "ann": None, "ann_over_snn": None}
    if ann_macs is not None:
        ann = model.ann_pj(ann_macs)
        out["ann"] = {"macs": ann_macs, "pj": ann}
        out["ann_over_snn"] = ann / pj if pj > 0 else None
    return out
