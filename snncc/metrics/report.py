"""report.json: per layer and per model figures of a compiled SNN.

`compile_report` gives what is known without running the model (shapes, thresholds,
delays, memory, dense MACs, time steps); `simulation_report` adds what a run measured
(firing rates, operation counts, energy, accuracy, onnxruntime agreement). The rules
behind every figure are in docs/reports.md.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from snncc import ops as o
from snncc.intmath import signed_bits, unsigned_bits
from snncc.ir import Graph, Node, layer_names
from snncc.metrics.energy import (
    EnergyModel,
    OpCounts,
    energy_from_totals,
    energy_summary,
    node_dense_macs,
)
from snncc.schedule import Timing, timeline, windows
from snncc.version import __version__

LAYER_OPS = (o.SpikeInput, o.Synapse, o.TDMatMul, o.TDMaxPool, o.MatMul, o.MaxPool,
             o.AddCurrent, o.Neuron, o.Readout, o.ReduceSum, o.SumPool)


def layer_kind(n: Node) -> str:
    if isinstance(n.op, o.Neuron):
        return {"if": "dif-neuron", "signed": "signed-neuron", "multi": "multi-neuron"}[
            n.op.mode]
    if isinstance(n.op, o.Synapse):
        return ("analog-" if n.op.analog else "spike-") + n.op.kind
    return {o.SpikeInput: "input", o.TDMatMul: "td-matmul", o.TDMaxPool: "td-maxpool",
            o.AddCurrent: "residual-add", o.Readout: "readout",
            o.ReduceSum: "sum", o.SumPool: "sum-pool"}.get(type(n.op), n.op.name.lower())


def _max_count(graph: Graph, name: str) -> int:
    """The most spikes a codes value can carry (its producer's L)."""
    n = graph.node(name)
    if isinstance(n.op, o.Neuron):
        return n.op.levels
    if isinstance(n.op, o.SpikeInput):
        return n.op.hi - n.op.lo
    return max(_max_count(graph, i) for i in n.inputs)


def _state_bits(graph: Graph, n: Node) -> int | None:
    """Bits of run-time state one inference needs (membranes, counters); None: stateless."""
    size = int(np.prod(n.shape))
    if isinstance(n.op, o.Neuron):
        th = n.op.thresholds
        return size * (signed_bits(int(th.min()) - 1, int(th.max()) + 1)
                       + unsigned_bits(n.op.levels))
    if isinstance(n.op, o.TDMatMul):  # the counters C_A and C_B
        return sum(int(np.prod(graph.node(i).shape)) * unsigned_bits(_max_count(graph, i))
                   for i in n.inputs)
    if isinstance(n.op, o.TDMaxPool):  # input counters and the previous window maxima
        bits = unsigned_bits(_max_count(graph, n.inputs[0]))
        return (int(np.prod(graph.node(n.inputs[0]).shape)) + size) * bits
    return None


def _weight_bits(n: Node) -> tuple[int, int] | None:
    """(constants, bits) of the layer's constant memory: weights, threshold tables."""
    if isinstance(n.op, o.Synapse):
        w = n.op.weight
        return int(w.size), int(w.size) * signed_bits(int(w.min(initial=0)), int(w.max(initial=0)))
    if isinstance(n.op, o.Neuron):
        th = n.op.thresholds
        return int(th.size), int(th.size) * signed_bits(int(th.min()), int(th.max()))
    return None


def _neuron_fields(n: Node, inputs: Timing) -> dict:
    """Delay: steps from the onset of the input (every branch feeding it under way)."""
    op = n.op_as(o.Neuron)
    theta = op.uniform_theta()
    return {"neurons": int(np.prod(n.shape)), "levels": op.levels, "t_fire": op.t_fire,
            "delay": op.t_fire - inputs.onset,
            "threshold": theta if theta is not None else "table"}


def layers(graph: Graph) -> list[dict]:
    """One row per layer: "name" its layer name (``ir.layer_names``), "node" the IR node,
    "source" the ONNX node it came from."""
    timing = timeline(graph)
    win = {k: (t.t0, t.t1) for k, t in timing.items()}
    names = layer_names(graph)
    rows = []
    for n in graph.topo():
        if not isinstance(n.op, LAYER_OPS):
            continue
        row = {"name": names[n.name], "node": n.name, "kind": layer_kind(n),
               "source": n.origin,
               "shape": list(n.shape), "window": list(win[n.name]),
               "dense_macs": node_dense_macs(graph, n)}
        if isinstance(n.op, o.Neuron):
            row.update(_neuron_fields(n, timing[n.inputs[0]]))
        weights = _weight_bits(n)
        if weights is not None:
            row.update(weights=weights[0], weight_bits=weights[1])
        state = _state_bits(graph, n)
        if state is not None:
            row["state_bits"] = state
        rows.append(row)
    return rows


def pipeline_interval(graph: Graph) -> int:
    """Steps between inputs in a layer-pipelined implementation: the longest activity
    window of any value (each layer handles one input per window; see docs/reports.md)."""
    return max((t1 - t0 + 1 for t0, t1 in windows(graph).values()), default=1)


def compile_report(compiled) -> dict:
    g = compiled.graph
    rows = layers(g)
    return {
        "snncc_version": __version__, "source": g.meta.get("source"),
        "source_path": str(Path(compiled.source).resolve()) if compiled.source else None,
        "T": compiled.T,
        "delay": compiled.delay, "neuron": g.meta.get("neuron", "if"),
        "latency": g.meta.get("latency"), "steps": compiled.steps,
        "pipeline_interval": pipeline_interval(g),
        "neuron_layers_on_path": compiled.neuron_layers, "frac_bits": g.meta.get("frac_bits"),
        "calibration": g.meta.get("calibration"), "nrelu": g.meta.get("nrelu", []),
        "passes": [{"name": t.name, "seconds": round(t.seconds, 6), "changed": t.changed}
                   for t in compiled.timings],
        "memory": {"weight_bits": sum(r.get("weight_bits", 0) for r in rows),
                   "state_bits": sum(r.get("state_bits", 0) for r in rows)},
        "ann_macs": _ann_macs(compiled.source, compiled.input_shape),
        "layers": rows,
        "names": {name: g.node(node).origin for node, name in layer_names(g).items()},
        "targets": {},
    }


def _ann_macs(source: Path | None, sample: tuple[int, ...]) -> dict | None:
    """The source ONNX model's MACs, if the model is at hand."""
    from snncc.errors import SnnccError
    from snncc.metrics.macs import ann_macs

    if source is None or not Path(source).is_file():
        return None
    try:
        return ann_macs(source, sample).to_json()
    except SnnccError:
        return None


# ---------------------------------------------------------------- after a simulation


def simulation_report(compiled, base: dict | None, counts: OpCounts, rates: dict[str, float],
                      summary: dict, energy: EnergyModel | None = None,
                      rasters: dict | None = None) -> dict:
    """`base` (the compile report, or a fresh one) with what a run measured.

    `summary` is what `simulate` printed (inputs, steps, accuracy, onnx, conversion_error).
    """
    report = copy.deepcopy(base) if base else compile_report(compiled)
    names = layer_names(compiled.graph)
    for row in report["layers"]:
        name = row.get("node", row["name"])  # a report from before layer names: IR names
        if name in counts.layers:
            row.update(counts.per_inference(name))
        if name in rates:
            row["firing_rate"] = rates[name]
            row["spikes_per_neuron"] = rates[name] * row["levels"]
    ann = (report.get("ann_macs") or {}).get("total")
    energy = energy or EnergyModel()
    report["simulation"] = {**summary, "energy": energy_summary(counts, ann, energy),
                            "rasters": relabel(rasters or {}, names)}
    for key in ("firing_rates", "conversion_error"):
        if summary.get(key) is not None:
            report["simulation"][key] = relabel(summary[key], names)
    if summary.get("onnx"):  # --compare-onnx per layer: "name" the layer, "node" the IR
        onnx = report["simulation"]["onnx"] = copy.deepcopy(summary["onnx"])
        for la in onnx["layers"]:
            la.update(name=names.get(la["name"], la["name"]), node=la["name"])
    return report


def relabel(by_node: dict, names: dict[str, str]) -> dict:
    """A dict by IR node name keyed by layer name instead (other keys as they are)."""
    return {names.get(k, k): v for k, v in by_node.items()}


def reprice(report: dict, energy: EnergyModel) -> bool:
    """Recompute the energy section for other pJ/op figures; True if it changed."""
    sim = report.get("simulation")
    if not sim:
        return False
    old = sim["energy"]
    if (old["pj_per_ac"], old["pj_per_mac"]) == (energy.pj_ac, energy.pj_mac):
        return False
    snn = {k: old["snn"][k] for k in ("macs", "sops", "adds", "comparisons")}
    sim["energy"] = energy_from_totals(snn, (report.get("ann_macs") or {}).get("total"), energy)
    return True


def read_report(path: Path) -> dict | None:
    """A report.json, or None if there is none (or it is unreadable, or not an object)."""
    try:
        report = json.loads(Path(path).read_text())
    except (OSError, ValueError, RecursionError):
        return None
    return report if isinstance(report, dict) else None


@contextmanager
def atomic_file(path: Path, what: str = "report") -> Iterator[Path]:
    """Yield a temporary file beside `path` to write; move it over `path` once complete.

    A reader never sees half a file, and a failed or interrupted write removes the
    temporary file and leaves a previous `path` exactly as it was.
    """
    from snncc.errors import Diagnostic, SnnccError

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        yield tmp
        tmp.replace(path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise SnnccError(Diagnostic(f"cannot write the {what} ({e.strerror or e})",
                                    file=str(path), fix="choose a writable path")) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_report(report: dict, path: Path) -> None:
    """Write atomically: a reader never sees half a report."""
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(report, indent=2, default=_jsonable) + "\n")


def _jsonable(v):
    if isinstance(v, np.integer | np.floating):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    raise TypeError(f"not JSON serializable: {type(v).__name__}")
