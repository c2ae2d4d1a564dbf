"""`snncc inspect`: what the frontend found in a model, and whether it can be spiked.

Runs the frontend and the conversion passes up to quant-to-neuron without writing
anything, collecting every diagnostic (one per offending node) instead of stopping at the
first.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from snncc import ops as o
from snncc.compiler import check_window
from snncc.errors import Diagnostic, SnnccError
from snncc.frontend.importer import InputShape, import_onnx
from snncc.frontend.loader import load_model
from snncc.frontend.support import UNSPIKEABLE
from snncc.frontend.validate import node_name
from snncc.ir import Graph
from snncc.passes.pipeline import Options, default_pipeline, run_pipeline, up_to_neurons
from snncc.passes.softmax_to_nrelu import SoftmaxToNRelu


@dataclass
class Verdict:
    file: str
    onnx_ops: dict[str, int] = field(default_factory=dict)
    inputs: list[dict] = field(default_factory=list)
    outputs: list[dict] = field(default_factory=list)
    quantizers: list[dict] = field(default_factory=list)
    structure: dict[str, int] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    min_T: int | None = None

    @property
    def convertible(self) -> bool:
        return not self.diagnostics

    def to_json(self) -> dict:
        return {"file": self.file, "convertible": self.convertible, "min_T": self.min_T,
                "onnx_ops": self.onnx_ops, "inputs": self.inputs, "outputs": self.outputs,
                "quantizers": self.quantizers, "structure": self.structure,
                "diagnostics": [d.to_json() for d in self.diagnostics]}


def inspect_model(path: str | Path, T: int = 7, replace_softmax: bool = False,
                  input_shape: InputShape = None) -> Verdict:
    """The verdict on `path`; raises only if the file cannot be read at all or T is bad."""
    T = check_window(T)
    model = load_model(path)
    v = Verdict(str(path), dict(sorted(Counter(
        n.op_type for n in model.graph.node).items())))
    onnx_ops = {node_name(n, k): n.op_type for k, n in enumerate(model.graph.node)}
    try:
        graph = import_onnx(path, input_shape)
    except SnnccError as e:
        # the frontend stops before the passes; a refused Softmax is theirs to report
        softmax = [] if replace_softmax else [
            _softmax_refusal(name, str(path)) for name, op in onnx_ops.items()
            if op == "Softmax"]
        v.diagnostics = _in_node_order(e.diagnostics + softmax, list(onnx_ops))
        return v
    _describe(v, graph)
    v.diagnostics = [_as_onnx_op(d, onnx_ops) for d in
                     _conversion_diagnostics(graph, T, replace_softmax, str(path))]
    return v


def _softmax_refusal(node: str, file: str) -> Diagnostic:
    why, fix = UNSPIKEABLE["Softmax"]
    return Diagnostic(f"Softmax {why}", node, "Softmax", fix, file)


def _in_node_order(found: list[Diagnostic], order: list[str]) -> list[Diagnostic]:
    """Diagnostics sorted by their node's place in the model (graph-level ones first)."""
    place = {name: k for k, name in enumerate(order)}
    return sorted(found, key=lambda d: place.get(d.node or "", -1))


def _as_onnx_op(d: Diagnostic, onnx_ops: dict[str, str]) -> Diagnostic:
    """Name the user's ONNX op, not the stand-in inspect put there (a Softmax it replaced
    by NReLU to look further is still a Softmax to the user)."""
    op = onnx_ops.get(d.node or "", d.op)
    return d if op == d.op else Diagnostic(d.message, d.node, op, d.fix, d.file)


def _describe(v: Verdict, graph: Graph) -> None:
    for name in graph.inputs:
        v.inputs.append({"name": name, "shape": ["batch", *graph.node(name).shape]})
    for name in graph.outputs:
        v.outputs.append({"name": name, "shape": ["batch", *graph.node(name).shape]})
    levels = []
    for n in graph.ops(o.QuantAct):
        op = n.op_as(o.QuantAct)
        scale = np.ravel(op.scale)
        v.quantizers.append({
            "node": n.origin, "levels": op.levels, "codes": [op.lo, op.hi],
            "zero_point": op.zero_point, "rounding": op.rounding.value,
            "scale": float(scale[0]) if scale.size == 1 else [float(scale.min()),
                                                               float(scale.max())],
            "input": any(isinstance(graph.node(i).op, o.Input) for i in n.inputs)})
        if not v.quantizers[-1]["input"]:
            levels.append(op.levels)
    products = graph.ops(o.MatMul)
    v.structure = {
        "quantizers": len(v.quantizers),
        "linear_layers": len(graph.ops(o.Dense, o.Conv)),
        "attention_products": len(products),
        "heads": max((int(np.prod(n.shape[:-2])) for n in products), default=0),
        "tokens": max((n.shape[-2] for n in products), default=0),
        "residual_adds": len(graph.ops(o.Add)),
        "blocks": len(products) // 2,
        "max_pools": len(graph.ops(o.MaxPool)),
    }
    v.min_T = max(levels, default=None)


def _conversion_diagnostics(graph: Graph, T: int, replace_softmax: bool,
                            file: str) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    if not replace_softmax:
        found += [Diagnostic(d.message, d.node, d.op, d.fix, file)
                  for d in _softmax_diagnostics(graph)]
    passes = up_to_neurons(default_pipeline(Options(T=T, replace_softmax=True)))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run_pipeline(graph.copy(), passes)
    except SnnccError as e:
        found += [Diagnostic(d.message, d.node, d.op, d.fix, file) for d in e.diagnostics]
    return found


def _softmax_diagnostics(graph: Graph) -> list[Diagnostic]:
    try:
        SoftmaxToNRelu(False).run(graph.copy())
    except SnnccError as e:
        return e.diagnostics
    return []
