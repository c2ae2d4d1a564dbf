"""What the hardware backends share: golden vectors from the interpreter, test inputs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from snncc import ops as o
from snncc.backends.sim.engine import run_step
from snncc.ir import Graph
from snncc.reference import EVAL


@dataclass
class Golden:
    """Per input: the input codes, every neuron's spike count, the integer logits."""

    codes: np.ndarray  # [n, *input shape] int64 (what the hardware is fed)
    counts: dict[str, np.ndarray]  # neuron name -> [n, *shape] int64
    logits: np.ndarray  # [n, *out shape] int64 (readout integers, bias included)


def default_inputs(graph: Graph, n: int = 20, seed: int = 0) -> np.ndarray:
    """`n` deterministic float inputs spread over the input quantizer's range."""
    (enc,) = graph.ops(o.SpikeInput)
    rng = np.random.default_rng(seed)
    codes = rng.integers(enc.op.lo, enc.op.hi + 1, (n,) + enc.shape)
    return ((codes - enc.op.zero_point) * enc.op.scale).astype(np.float64)


def golden(graph: Graph, x: np.ndarray) -> Golden:
    """The interpreter's step engine on `x`: the reference every backend must equal."""
    (enc,) = graph.ops(o.SpikeInput)
    result = run_step(graph, x)
    codes = EVAL[o.SpikeInput](enc, [np.asarray(x, np.float64)])
    return Golden(codes, result.counts, result.logits_int)
