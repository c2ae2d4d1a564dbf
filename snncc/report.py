"""report.json: per layer and per model figures of a compiled SNN."""

from __future__ import annotations

import numpy as np

from snncc import __version__
from snncc import ops as o
from snncc.intmath import signed_bits, unsigned_bits
from snncc.ir import Graph, Node
from snncc.schedule import windows

LAYER_OPS = (o.SpikeInput, o.Synapse, o.TDMatMul, o.TDMaxPool, o.MatMul, o.MaxPool,
             o.AddCurrent, o.Neuron, o.Readout, o.ReduceSum, o.SumPool)


def layer_kind(n: Node) -> str:
    if isinstance(n.op, o.Synapse):
        return ("analog-" if n.op.analog else "spike-") + n.op.kind
    return {o.SpikeInput: "input", o.TDMatMul: "td-matmul", o.TDMaxPool: "td-maxpool",
            o.AddCurrent: "residual-add", o.Neuron: "dif-neuron", o.Readout: "readout",
            o.ReduceSum: "sum", o.SumPool: "sum-pool"}.get(type(n.op), n.op.name.lower())


def layers(graph: Graph) -> list[dict]:
    win = windows(graph)
    rows = []
    for n in graph.topo():
        if not isinstance(n.op, LAYER_OPS):
            continue
        row = {"name": n.name, "kind": layer_kind(n), "source": n.origin,
               "shape": list(n.shape), "window": list(win[n.name])}
        if isinstance(n.op, o.Neuron):
            theta = n.op.uniform_theta()
            th = n.op.thresholds
            row.update(neurons=int(np.prod(n.shape)), levels=n.op.levels, t_fire=n.op.t_fire,
                       threshold=theta if theta is not None else "table",
                       state_bits=int(np.prod(n.shape)) * (
                           signed_bits(int(th.min()) - 1, int(th.max()) + 1)
                           + unsigned_bits(n.op.levels)))
        if isinstance(n.op, o.Synapse):
            w = n.op.weight
            bits = signed_bits(int(w.min(initial=0)), int(w.max(initial=0)))
            row.update(weights=int(w.size), weight_bits=int(w.size) * bits)
        rows.append(row)
    return rows


def compile_report(compiled) -> dict:
    g = compiled.graph
    return {
        "snncc_version": __version__, "source": g.meta.get("source"), "T": compiled.T,
        "delay": compiled.delay, "steps": compiled.steps,
        "neuron_layers_on_path": compiled.neuron_layers, "frac_bits": g.meta.get("frac_bits"),
        "calibration": g.meta.get("calibration"), "nrelu": g.meta.get("nrelu", []),
        "passes": [{"name": t.name, "seconds": round(t.seconds, 6), "changed": t.changed}
                   for t in compiled.timings],
        "layers": layers(g), "targets": {},
    }
