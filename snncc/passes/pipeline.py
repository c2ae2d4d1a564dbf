"""The pass pipeline: the default list of passes, and the driver that runs them.

The driver verifies the IR after every pass and can print it (``--print-after-all``),
dump it to a folder (``--dump-dir``) and time each pass (``--time-passes``). A pass that
breaks the IR or fails unexpectedly is reported as a PassError naming it and the passes
that ran before it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from snncc.errors import PassError, SnnccError
from snncc.ir import Graph, print_graph, verify
from snncc.passes.absorb_relu import AbsorbRelu
from snncc.passes.base import Pass
from snncc.passes.calibrate_thresholds import CalibrateThresholds
from snncc.passes.canonicalize import Canonicalize
from snncc.passes.fold_batchnorm import FoldBatchNorm
from snncc.passes.insert_dif import InsertDif
from snncc.passes.quant_to_neuron import QuantToNeuron
from snncc.passes.softmax_to_nrelu import SoftmaxToNRelu
from snncc.passes.temporal_decomposition import TemporalDecomposition


@dataclass(frozen=True)
class Options:
    """What a user chooses at compile time."""

    T: int = 7
    delay: str | int = "exact"
    replace_softmax: bool = False
    calibrate: np.ndarray | None = field(default=None, compare=False)
    frac_bits: int | None = None
    neuron: str = "if"
    calibration: str = "mse"           # how calibrate-thresholds clips (passes/_clipping.py)
    per_channel: bool = True           # per-channel calibrated scales where they fold
    bias_correction: bool = False      # calibrated quantizers keep the float means


def default_pipeline(opts: Options) -> tuple[Pass, ...]:
    """The conversion, read top to bottom."""
    calibrate = () if opts.calibrate is None else (CalibrateThresholds(
        opts.calibrate, opts.T, opts.calibration, opts.per_channel, opts.bias_correction),)
    return (
        FoldBatchNorm(),                        # BN -> affine, into float weights where exact
        SoftmaxToNRelu(opts.replace_softmax),   # refuse or replace Softmax; NReLU scale inside
        Canonicalize(),                         # one form for every exporter's layout
        *calibrate,                             # quantizers chosen from data (float models)
        AbsorbRelu(),                           # ReLUs that unsigned quantizers make redundant
        QuantToNeuron(opts.T, opts.frac_bits),  # integer synapses, neurons, exact thresholds
        TemporalDecomposition(),                # products and max-pools of spikes, per step
        InsertDif(opts.delay, opts.neuron),     # neuron kinds; delays from the policy
    )


def up_to_neurons(passes: Sequence[Pass]) -> tuple[Pass, ...]:
    """The passes of `passes` up to and including QuantToNeuron: what decides whether a
    model converts at all (``snncc inspect``'s verdict runs them)."""
    k = next(i for i, p in enumerate(passes) if isinstance(p, QuantToNeuron))
    return tuple(passes[:k + 1])


@dataclass
class PassTiming:
    name: str
    seconds: float
    changed: bool
    nodes: int


def run_pipeline(graph: Graph, passes: Sequence[Pass], *,
                 print_after: Callable[[str, str], None] | None = None,
                 dump_dir: Path | None = None) -> tuple[Graph, list[PassTiming]]:
    """Run `passes` in order, verifying after each; returns the graph and the timings."""
    verify(graph)
    timings: list[PassTiming] = []
    if dump_dir is not None:
        dump_dir.mkdir(parents=True, exist_ok=True)
        (dump_dir / "00-import.snnir").write_text(print_graph(graph) + "\n")
    for k, p in enumerate(passes, start=1):
        start = time.perf_counter()
        try:
            result = p.run(graph)
            verify(result.graph)
        except SnnccError as e:
            if isinstance(e, PassError) or _is_user_error(e):
                raise
            raise _pass_error(p, timings, str(e)) from e
        except Exception as e:  # noqa: BLE001 - a bug in a pass: name it
            raise _pass_error(p, timings, f"{type(e).__name__}: {e}") from e
        graph = result.graph
        timings.append(PassTiming(p.name, time.perf_counter() - start, result.changed,
                                  len(graph)))
        text = print_graph(graph) if print_after or dump_dir else ""
        if print_after:
            print_after(p.name, text)
        if dump_dir is not None:
            (dump_dir / f"{k:02d}-{p.name}.snnir").write_text(text + "\n")
    return graph, timings


def _is_user_error(e: SnnccError) -> bool:
    """Diagnostics about the user's model (they name a node and say what to do)."""
    return all(d.fix for d in e.diagnostics)


def _pass_error(p: Pass, timings: list[PassTiming], detail: str) -> PassError:
    before = ", ".join(t.name for t in timings) or "none"
    from snncc.errors import Diagnostic

    return PassError(Diagnostic(f"internal error in pass '{p.name}' (passes run before it: "
                                f"{before}): {detail}",
                                fix="please report this with the model and --debug output"))
