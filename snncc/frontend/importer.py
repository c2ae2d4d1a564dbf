"""ONNX -> canonical IR: the driver. Checks the graph, adds the inputs, then imports the
nodes in order: constants are folded (``folding``), quantizer forms become one ``QuantAct``
each or a quantized ``Weight`` (``quantizers``), every other op goes to its handler
(``handlers``, by the ``registry``). Shape arithmetic that exporters leave behind is folded
(the batch axis is taken as 1 while folding, and must stay axis 0). Problems are collected,
one per offending node, and raised together.
"""

from __future__ import annotations

from pathlib import Path

import onnx

from snncc import ops
from snncc.errors import Diagnostic, SnnccError, raise_if
from snncc.frontend.context import Context, Skip
from snncc.frontend.folding import fold
from snncc.frontend.loader import QONNX_DOMAINS, initializers, load_model, real_inputs, type_name
from snncc.frontend.qoperator import has_qoperator, to_qdq
from snncc.frontend.support import HANDLERS, QONNX_HANDLERS, SUPPORTED, UNSPIKEABLE
from snncc.frontend.validate import check_schemas, check_structure, node_name
from snncc.ir import Graph

InputShape = tuple[int, ...] | dict[str, tuple[int, ...]] | None


def import_onnx(path: str | Path, input_shape: InputShape = None) -> Graph:
    """Load `path` and translate it into the canonical IR.

    `input_shape` pins the shape of one sample (batch excluded) where the model leaves
    dimensions free: a tuple for a model with one input, or a dict by input name.
    """
    model = load_model(path)
    qoperator = has_qoperator(model)
    if qoperator:
        model, _ = to_qdq(model)
    try:
        graph = Importer(model, str(path), input_shape).run()
    except SnnccError as e:
        raise e.with_file(str(path)) from None
    if qoperator:
        graph.meta["qoperator"] = True
    return graph


class Importer(Context):
    """One import: the checks, the inputs, the nodes in order, the outputs."""

    def __init__(self, model: onnx.ModelProto, path: str, input_shape: InputShape = None):
        super().__init__(model, path)
        self.input_shape = input_shape

    def run(self) -> Graph:
        self.env.update(initializers(self.model))
        order = self._check_graph()
        refused = self._check_op_types()
        poisoned = self._add_inputs()
        for k in order:
            node = self.model.graph.node[k]
            if not node.name:
                node.name = node_name(node, k)
            if k in refused or any(i in poisoned for i in node.input if i):
                poisoned.update(node.output)
                continue
            self.node = node
            try:
                self._import(node)
            except Skip:
                poisoned.update(node.output)
        self._add_outputs(poisoned)
        if self.problems:
            raise SnnccError(self.problems)
        self.graph.prune()
        return self.graph

    def _check_graph(self) -> list[int]:
        """Structure and schemas; the node order to import in. Raises if the graph is
        malformed (the handlers rely on what the ONNX spec promises about a node)."""
        g = self.model.graph
        problems, order = check_structure(g)
        opset = next(o.version for o in self.model.opset_import if o.domain in ("", "ai.onnx"))
        raise_if(problems + check_schemas(g, opset, set(SUPPORTED)))
        return order

    def _check_op_types(self) -> set[int]:
        """Record one diagnostic per node of an op snncc refuses; their indices."""
        refused: set[int] = set()
        for k, node in enumerate(self.model.graph.node):
            if node.domain in QONNX_DOMAINS and node.op_type in ("Quant", "IntQuant"):
                continue
            if node.domain not in ("", "ai.onnx") or node.op_type not in SUPPORTED:
                why, fix = UNSPIKEABLE.get(node.op_type, (
                    "is not an op snncc can convert",
                    "rewrite it with the supported ops (see the README's table)"))
                if node.op_type == "Softmax":
                    continue  # a pass decides: refused unless --replace-softmax
                refused.add(k)
                self.problems.append(Diagnostic(f"{node.op_type} {why}", node_name(node, k),
                                                node.op_type, fix))
        return refused

    def _add_inputs(self) -> set[str]:
        """Add the graph inputs; the names of those that failed."""
        inputs = real_inputs(self.model)
        pins = self._pins([vi.name for vi in inputs])
        failed: set[str] = set()
        for vi in inputs:
            failed.add(vi.name)
            t = vi.type.tensor_type
            if t.elem_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16,
                                   onnx.TensorProto.DOUBLE):
                self.note(f"input '{vi.name}' has element type {type_name(t.elem_type)}, "
                          "not float", "export the model with a float input", node=vi.name,
                          op="Input")
                continue
            shape = self._input_shape(vi, pins.get(vi.name))
            if shape is not None:
                self.env[vi.name] = self.graph.add(vi.name, ops.Input(), origin=vi.name,
                                                   shape=shape, kind=ops.FLOAT)
                self.graph.inputs.append(vi.name)
                failed.discard(vi.name)
        return failed

    def _pins(self, names: list[str]) -> dict[str, tuple[int, ...]]:
        """--input-shape per input name (an unnamed shape pins the only input)."""
        given = self.input_shape
        if given is None:
            return {}
        if not isinstance(given, dict):
            if len(names) != 1:
                raise SnnccError(Diagnostic(
                    f"the model has {len(names)} inputs ({', '.join(names) or 'none'}); an "
                    "unnamed --input-shape fits a model with one", fix="name the input: "
                    f"--input-shape {names[0] if names else 'x'}=1,8,8"))
            return {names[0]: tuple(given)}
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise SnnccError(Diagnostic(
                f"--input-shape names {unknown}, which the model does not take as inputs "
                f"(its inputs: {', '.join(names) or 'none'})", fix="use the input's name"))
        return {k: tuple(v) for k, v in given.items()}

    def _input_shape(self, vi: onnx.ValueInfoProto, pin: tuple[int, ...] | None
                     ) -> tuple[int, ...] | None:
        """One sample's shape: the model's, with free dimensions pinned; None if it fails."""
        t = vi.type.tensor_type
        dims: list[int | str] = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                                 for d in t.shape.dim]
        where = dict(node=vi.name, op="Input")
        if t.HasField("shape") and not dims:
            self.note(f"input '{vi.name}' is a scalar; snncc needs [batch, ...]",
                      "export with a batch axis", **where)
            return None
        if dims and isinstance(dims[0], int) and dims[0] != 1:
            self.note(f"input '{vi.name}' has a fixed batch of {dims[0]}",
                      "export with a dynamic batch axis or a batch of 1", **where)
            return None
        if pin is not None:
            if t.HasField("shape") and len(dims) != len(pin) + 1:
                self.note(f"input '{vi.name}' has {len(dims) - 1} dimension(s) besides the "
                          f"batch; --input-shape gives {len(pin)}",
                          "give the shape of one sample, without the batch", **where)
                return None
            fixed = [(k, d, p) for k, (d, p) in enumerate(zip(dims[1:], pin, strict=False), start=1)
                     if isinstance(d, int) and d > 0 and d != p]
            if fixed:
                k, d, p = fixed[0]
                self.note(f"input '{vi.name}' fixes dimension {k} to {d}; --input-shape says "
                          f"{p}", f"use --input-shape {','.join(map(str, dims[1:]))}"
                          if all(isinstance(d, int) for d in dims[1:]) else
                          f"use {d} for dimension {k}", **where)
                return None
            return pin
        if not t.HasField("shape"):
            self.note(f"input '{vi.name}' has no shape",
                      "pin the shape of one sample with --input-shape, e.g. "
                      "--input-shape 1,8,8", **where)
            return None
        free = [d for d in dims[1:] if not isinstance(d, int) or d <= 0]
        if not dims or free:
            example = ",".join(str(d) if isinstance(d, int) and d > 0 else f"<{d}>"
                               for d in dims[1:]) or "1,8,8"
            self.note(f"input '{vi.name}' has shape {dims}: dimension(s) "
                      f"{', '.join(map(str, free)) or 'batch'} are not fixed",
                      f"pin them with --input-shape {example} (the shape of one sample), or "
                      "export with a static example input", **where)
            return None
        return tuple(int(d) for d in dims[1:])

    def _add_outputs(self, poisoned: set[str]) -> None:
        for o in self.model.graph.output:
            if o.name in poisoned:
                continue
            v = self.env.get(o.name)
            if not isinstance(v, str):
                self.note(f"output '{o.name}' is not computed from the input",
                          "remove constant outputs", node=o.name, op="Output")
                continue
            self.graph.outputs.append(v)

    def _import(self, node: onnx.NodeProto) -> None:
        if node.domain in QONNX_DOMAINS:
            qonnx = QONNX_HANDLERS.get(node.op_type)
            if qonnx is None:
                self.fail(f"QONNX {node.op_type} is not supported", "use Quant")
            return qonnx.run(self, node)
        handler = HANDLERS.get(node.op_type)
        keeps_quantization = node.op_type in ("Shape", "DequantizeLinear")
        if not keeps_quantization and all(self.is_const(i) for i in node.input if i):
            return fold(self, node)
        if handler is None:
            self.fail(f"{node.op_type} on an activation is not supported",
                      "see the README's supported-ops table")
        handler.run(self, node)

