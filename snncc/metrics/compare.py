"""The integer reference against onnxruntime on the source model, code by code.

onnxruntime runs with graph optimizations off: its QDQ fusions would replace the model's
float arithmetic by integer kernels with their own requantization, which is not what the
ONNX file says.

Every neuron replaced a quantizer whose output tensor has the neuron's name in the ONNX
graph; onnxruntime is asked for those tensors, which are turned back into codes
(value / scale), and compared with the integer reference's codes. Differences are counted
per layer and located (first sample, element); the argmax decisions are compared too.

Each differing code is also explained, from onnxruntime's value at the quantizer's input:
- *at a level boundary*: that value lies within `BOUNDARY` of a step from a rounding
  boundary of the quantizer, where the fixed-point residual sums (error under 1/65536 of a
  step) or onnxruntime's float32 arithmetic can tip it either way;
- *downstream*: an earlier layer already differs on the same sample, so the inputs differ;
- anything else is *unexplained*, which would be a bug.

The model's input quantizer is compared the same way (before every layer, so that a
sample whose input codes differ makes its later differences downstream), with a narrower
boundary: snncc divides the float32 input by the scale in float64, which rounds exactly
like the exact quotient, and onnxruntime in float32, so an input code may differ only
where x/scale lies within float32's precision (`INPUT_TIE` relative) of a rounding
boundary. Its codes are not counted in the share of identical codes, which is over the
neuron layers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from snncc import ops as o
from snncc.compiler import CompiledModel
from snncc.errors import Diagnostic, SnnccError
from snncc.frontend.qoperator import has_qoperator, to_qdq
from snncc.frontend.validate import node_name

CHUNK = 256  # inputs per onnxruntime run: a step of the progress bar, a bound on memory
BOUNDARY = 2.0**-10  # in quantizer steps: the fixed-point budget (2^-16) and float32 slack
INPUT_TIE = 2.0**-22  # relative to x/scale: two float32 roundings (the division's, x's)
_TO_NEAREST = {"ROUND", "HALF_EVEN", "HALF_UP", "HALF_DOWN"}  # QONNX modes with .5 bounds


@dataclass
class LayerAgreement:
    name: str
    total: int
    differing: int
    first: tuple[int, ...] | None = None  # (sample, *element index)
    ort_code: int | None = None
    snn_code: int | None = None
    at_boundary: int = 0  # differing codes whose input sits on a rounding boundary
    downstream: int = 0  # differing codes on samples an earlier layer already differs on
    nearest: float | None = None  # the largest distance to a boundary among at_boundary
    first_unexplained: tuple[int, ...] | None = None  # (sample, *element) of the first
    unexplained_codes: tuple[int, int] | None = None  # its (onnxruntime, reference) codes
    neuron: str = ""  # the SNN neuron that computes it (a signed one: the first of two)
    encodes_input: bool = False  # the model's input quantizer (SpikeInput), not a neuron

    @property
    def unexplained(self) -> int:
        return self.differing - self.at_boundary - self.downstream

    @property
    def agreement(self) -> float:
        return 1.0 - self.differing / max(self.total, 1)


@dataclass
class Agreement:
    layers: list[LayerAgreement] = field(default_factory=list)
    decisions: int = 0
    differing_decisions: int = 0

    @property
    def code_agreement(self) -> float:
        """The share of identical codes over the neuron layers (not the input's)."""
        neurons = [layer for layer in self.layers if not layer.encodes_input]
        total = sum(layer.total for layer in neurons)
        return 1.0 - sum(layer.differing for layer in neurons) / max(total, 1)

    @property
    def decision_agreement(self) -> float:
        return 1.0 - self.differing_decisions / max(self.decisions, 1)

    @property
    def unexplained(self) -> int:
        return sum(layer.unexplained for layer in self.layers)

    def to_json(self) -> dict:
        return {"code_agreement": self.code_agreement,
                "decision_agreement": self.decision_agreement,
                "decisions": self.decisions, "differing_decisions": self.differing_decisions,
                "unexplained": self.unexplained,
                "layers": [{"name": a.name, "total": a.total, "differing": a.differing,
                            "first": a.first, "onnx_code": a.ort_code, "snn_code": a.snn_code,
                            "at_boundary": a.at_boundary, "downstream": a.downstream,
                            "unexplained": a.unexplained, "boundary_distance": a.nearest,
                            "first_unexplained": a.first_unexplained,
                            "input": a.encodes_input}
                           for a in self.layers]}


def _load(source: str | Path | onnx.ModelProto, external: bool = True) -> onnx.ModelProto:
    if isinstance(source, onnx.ModelProto):
        return source
    return onnx.load(str(source), load_external_data=external)


def run_onnx(path: str | Path | onnx.ModelProto, x: np.ndarray, names: list[str],
             progress: Callable[[int], None] | None = None,
             file: str | Path | None = None) -> list[np.ndarray]:
    """onnxruntime on `path` (a file or a loaded model, then `file` is its file) with
    `names` as extra outputs, CHUNK inputs per run (one at a time if the export baked the
    batch into its shapes); `progress(k)` after each run."""
    import onnxruntime as ort

    model = onnx.ModelProto()
    model.CopyFrom(_load(path))
    present = {o_.name for o_ in model.graph.output}
    for name in names:
        if name not in present:
            model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 3
    try:
        sess = ort.InferenceSession(model.SerializeToString(), opts,
                                    providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - onnxruntime's own refusal
        raise SnnccError(Diagnostic(f"onnxruntime cannot run the model: {e}",
                                    file=str(file or path),
                                    fix="check the model in onnxruntime")) from None
    inp = sess.get_inputs()[0]
    wanted = [model.graph.output[0].name] + names
    x32 = x.astype(np.float32)
    try:
        runs, size = [_run_chunk(sess, wanted, inp.name, x32[:CHUNK], progress)], CHUNK
    except Exception:  # noqa: BLE001 - fixed batch of 1: run sample by sample
        runs, size = [], 1
    runs += [_run_chunk(sess, wanted, inp.name, x32[i:i + size], progress)
             for i in range(len(runs) * size, len(x32), size)]
    return [np.concatenate([np.asarray(r[k]) for r in runs]) for k in range(len(wanted))]


def _run_chunk(sess, wanted: list[str], name: str, x: np.ndarray,
               progress: Callable[[int], None] | None) -> list:
    out = sess.run(wanted, {name: x})
    if progress:
        progress(len(x))
    return out


def quantizer_inputs(path: str | Path | onnx.ModelProto) -> dict[str, tuple[str, bool]]:
    """For each quantizer's output tensor: its input tensor, and whether it rounds to
    nearest (level boundaries at half steps) rather than down or up (at whole steps)."""
    graph = _load(path, external=False).graph
    producer = {out: node for node in graph.node for out in node.output}
    found = {}
    for node in graph.node:
        if node.op_type == "DequantizeLinear":
            q = producer.get(node.input[0])
            while q is not None and q.op_type == "Clip":
                q = producer.get(q.input[0])
            if q is not None and q.op_type == "QuantizeLinear":
                found[node.output[0]] = (q.input[0], True)
        elif node.op_type in ("Quant", "IntQuant"):
            mode = next((a.s.decode().upper() for a in node.attribute
                         if a.name == "rounding_mode"), "ROUND")
            found[node.output[0]] = (node.input[0], mode in _TO_NEAREST)
    return found


def boundary_distance(value: np.ndarray, scale: np.ndarray, to_nearest: bool) -> np.ndarray:
    """How far value/scale lies from the nearest rounding boundary, in steps."""
    z = np.asarray(value, np.float64) / scale - (0.5 if to_nearest else 0.0)
    return np.abs(z - np.rint(z))


@dataclass(frozen=True)
class _Probe:
    """One quantizer of the ONNX model as the SNN computes it: its code is the sum of the
    named neurons' counts with their signs (a signed quantizer has two: the levels above
    its zero point and those below)."""

    name: str
    shape: tuple[int, ...]
    scale: np.ndarray
    parts: tuple[tuple[str, int], ...]
    zero_point: int = 0  # the input's codes carry it (a neuron's count does not)
    encodes_input: bool = False


def _probes(model: CompiledModel, pre: dict) -> list[_Probe]:
    found, seen = [], set()
    for n in model.graph.ops(o.SpikeInput):  # first: its differences make later ones downstream
        base, op = n.name.removesuffix("/encode"), n.op_as(o.SpikeInput)
        if base in pre:
            found.append(_Probe(base, n.shape, op.scale, ((n.name, 1),), op.zero_point, True))
    for n in model.graph.ops(o.Neuron):
        base = n.name.removesuffix("/pos").removesuffix("/neg")
        if base not in pre or base in seen:
            continue
        seen.add(base)
        if base == n.name:
            found.append(_Probe(base, n.shape, n.op_as(o.Neuron).scale, ((base, 1),)))
            continue
        parts = tuple((f"{base}/{side}", sign) for side, sign in (("pos", 1), ("neg", -1))
                      if f"{base}/{side}" in model.graph)
        found.append(_Probe(base, n.shape, n.op_as(o.Neuron).scale, parts))
    return found


def _in_qdq_form(path: str | Path) -> tuple[str | Path | onnx.ModelProto, dict]:
    """The model itself, or (onnxruntime's QOperator format) its QDQ form as snncc reads
    it, with the map from that form's quantizers to the source's integer tensors."""
    if not has_qoperator(_load(path, external=False)):
        return path, {}
    return to_qdq(_load(path))


def compare_onnx(model: CompiledModel, onnx_path: str | Path, x: np.ndarray,
                 progress: Callable[[int], None] | None = None) -> Agreement:
    """Integer reference vs onnxruntime: codes of every neuron, and argmax decisions; each
    differing code explained (see the module docstring). `progress(k)` as onnxruntime
    gets through the inputs.

    A model in onnxruntime's QOperator format is compared on its kernels' integer output
    tensors (codes minus the zero point); the values before rounding, which explain a
    difference, come from its QDQ form. A calibrated QOperator build is compared with its
    QDQ form, into which the calibrated quantizers go."""
    x = model.check_input(x)
    qdq, codes_of = _in_qdq_form(onnx_path)
    source, feed = calibrated_source(model, onnx_path, qdq)
    if (model.graph.meta.get("calibration") or {}).get("sites"):
        codes_of = {}
    pre = quantizer_inputs(source)
    probes = _probes(model, pre)
    # a QOperator kernel's output is an integer tensor of the source model: its codes
    wanted = [codes_of.get(p.name, (p.name, 0))[0] for p in probes]
    fed = {_load(source, external=False).graph.input[0].name}  # what run_onnx feeds
    extra = list(dict.fromkeys(pre[p.name][0] for p in probes
                               if pre[p.name][0] not in wanted and pre[p.name][0] not in fed))
    if codes_of:  # the values before rounding exist only in the QDQ form
        outs = run_onnx(onnx_path, feed(x), wanted, progress)
        inner = list(dict.fromkeys(pre[p.name][0] for p in probes if pre[p.name][0] not in fed))
        pre_values = dict(zip(inner, run_onnx(source, feed(x), inner, file=onnx_path)[1:],
                              strict=True))
    else:
        outs = run_onnx(source, feed(x), wanted + extra, progress, file=onnx_path)
        pre_values = dict(zip(wanted + extra, outs[1:], strict=True))
    pre_values.update(dict.fromkeys(fed, feed(x).astype(np.float32)))  # as onnxruntime got it
    ref, encoded = model.reference(x), _input_codes(model, x)
    result = Agreement()
    differs = np.zeros(len(x), bool)  # samples on which an earlier layer differs
    for p, value in zip(probes, outs[1:1 + len(probes)], strict=True):
        shape = (len(x),) + p.shape
        if p.name in codes_of:
            ort_codes = value.reshape(shape).astype(np.int64) - codes_of[p.name][1]
        else:
            ort_codes = np.rint(value.reshape(shape) / p.scale).astype(np.int64)
        snn = np.asarray(sum(sign * (encoded[name] if name in encoded else ref[name])
                             for name, sign in p.parts)) - p.zero_point
        diff = np.argwhere(ort_codes != snn)
        layer = LayerAgreement(p.name, snn.size, len(diff), neuron=p.parts[0][0],
                               encodes_input=p.encodes_input)
        if len(diff):
            first = tuple(int(i) for i in diff[0])
            layer.first, layer.ort_code, layer.snn_code = first, int(ort_codes[first]), int(
                snn[first])
            _explain(layer, diff, differs, p, pre, pre_values, shape, ort_codes, snn)
            differs[diff[:, 0]] = True
        result.layers.append(layer)
    (readout,) = model.graph.ops(o.Readout)
    ort_pred = outs[0].reshape(len(x), -1).argmax(axis=1)
    snn_pred = ref[readout.name].reshape(len(x), -1).argmax(axis=1)
    result.decisions = len(x)
    result.differing_decisions = int(np.sum(ort_pred != snn_pred))
    return result


def _input_codes(model: CompiledModel, x: np.ndarray) -> dict[str, np.ndarray]:
    """The input quantizer's codes as the SNN encodes them (snncc's definition)."""
    from snncc.reference import EVAL

    return {n.name: EVAL[o.SpikeInput](n, [np.asarray(x, np.float64)])
            for n in model.graph.ops(o.SpikeInput)}


def _explain(layer: LayerAgreement, diff: np.ndarray, differs: np.ndarray, n: _Probe,
             pre: dict,
             pre_values: dict, shape: tuple[int, ...], ort_codes: np.ndarray,
             snn: np.ndarray) -> None:
    """Sort one layer's differing codes into at a boundary / downstream / unexplained, and
    locate the first unexplained one."""
    index = tuple(diff.T)
    near = np.zeros(len(diff), bool)
    if n.name in pre:
        name, to_nearest = pre[n.name]
        scale = np.broadcast_to(n.scale, shape)[index]
        value = pre_values[name].reshape(shape)[index]
        dist = boundary_distance(value, scale, to_nearest)
        near = dist <= (np.abs(value / scale) * INPUT_TIE if n.encodes_input else BOUNDARY)
        if near.any():
            layer.nearest = float(dist[near].max())
    layer.at_boundary = int(near.sum())
    upstream = differs[diff[:, 0]]
    layer.downstream = int(np.sum(~near & upstream))
    unexplained = np.flatnonzero(~near & ~upstream)
    if len(unexplained):
        first = tuple(int(i) for i in diff[unexplained[0]])
        layer.first_unexplained = first
        layer.unexplained_codes = (int(ort_codes[first]), int(snn[first]))


# ---------------------------------------------------------------- calibrated builds


def calibrated_source(model: CompiledModel, onnx_path: str | Path,
                      base: str | Path | onnx.ModelProto | None = None
                      ) -> tuple[onnx.ModelProto, Callable[[np.ndarray], np.ndarray]]:
    """The source model as the build quantizes it, and what to feed it for an input x.

    A build compiled with ``--calibrate`` has quantizers the source does not
    (``graph.meta["calibration"]["sites"]``). A calibrated activation quantizer is put
    into the source as QuantizeLinear → Clip → DequantizeLinear with its scale and levels,
    on the float value it quantizes (a ReLU's output, or a requantized quantizer's input),
    its output named as the neuron it became, so that it is compared like any quantizer of
    the source. A calibrated input quantizer is applied by snncc's own definition
    (``reference``, float64) and its values fed in: in float32 onnxruntime would round
    the inputs on a tie differently (8-bit images of 17 grey levels sit on ties). A
    quantizer the calibration removed (one that fed no spikes) gives way to its input, and
    so do the source's quantizers that repeat a removed or requantized one (the build
    dropped them as no-ops before calibrating).
    `base` is the model to start from if not the file (a QOperator model's QDQ form)."""
    source = onnx.ModelProto()
    source.CopyFrom(_load(onnx_path if base is None else base))
    calibration = model.graph.meta.get("calibration") or {}
    if calibration.get("quantizers") and "sites" not in calibration:
        raise SnnccError(Diagnostic(
            "this build was calibrated by an older snncc, which did not record where its "
            "quantizers sit in the source model", file=str(onnx_path),
            fix="compile it again with --calibrate"))
    sites = calibration.get("sites") or []
    feed: Callable[[np.ndarray], np.ndarray] = _identity
    pre = quantizer_inputs(source)
    made = {n.output[0]: node_name(n, k) for k, n in enumerate(source.graph.node) if n.output}
    tensor_of = {name: out for out, name in made.items()}
    for site in sites:
        if site["kind"] == "input":
            feed = _quantized_input(model)
            continue
        if site["kind"] in ("drop", "requantize"):  # the repeats went with it (canonicalize)
            for out in _repeats(source.graph, site["value"])[1:]:
                _bypass_quantizer(source.graph, out, pre[out][0])
        if site["kind"] == "drop":
            _bypass_quantizer(source.graph, site["value"], pre[site["value"]][0])
            continue
        value, out, q = _site_tensors(model, site, pre, tensor_of, str(onnx_path))
        if site["kind"] == "requantize":  # the source's own quantizer, its output renamed
            _rename_output(source.graph, out, f"{out}/uncalibrated")
        else:  # the source's consumers of the float value read the quantized one
            for node in source.graph.node:
                node.input[:] = [out if i == value else i for i in node.input]
        _insert_quantizer(source.graph, value, out, *q)
    return source, feed


_KEEP_CODES = {"Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "MaxPool", "Slice",
               "Gather", "Identity"}


def _repeats(graph: onnx.GraphProto, out: str) -> list[str]:
    """A quantizer's output and those of the quantizers that repeat it after rewiring
    (same scale and zero point: onnxruntime's quantizer puts one after every Transpose),
    which the build dropped along with it (canonicalize)."""
    from onnx import numpy_helper

    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    producer = {o_: n for n in graph.node for o_ in n.output}

    def params(dq_out: str) -> tuple | None:
        q = producer.get(producer[dq_out].input[0])
        while q is not None and q.op_type == "Clip":
            q = producer.get(q.input[0])
        if q is None or q.op_type != "QuantizeLinear":
            return None
        return tuple(np.ravel(consts.get(i, np.nan)).tolist() for i in q.input[1:3])

    users: dict[str, list[onnx.NodeProto]] = {}
    for n in graph.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    found, todo, key = [out], [out], params(out)
    while todo:
        for n in users.get(todo.pop(), []):
            if n.op_type in _KEEP_CODES | {"QuantizeLinear", "Clip"}:
                todo.append(n.output[0])
            elif n.op_type == "DequantizeLinear" and params(n.output[0]) == key:
                found.append(n.output[0])
                todo.append(n.output[0])
    return found


def _bypass_quantizer(graph: onnx.GraphProto, out: str, value: str) -> None:
    """The DequantizeLinear that makes `out` becomes Identity(value): no quantizer."""
    from onnx import helper

    k = next(k for k, node in enumerate(graph.node) if out in node.output)
    graph.node[k].CopyFrom(helper.make_node("Identity", [value], [out], name=f"{out}/bypass"))


def _identity(x: np.ndarray) -> np.ndarray:
    return x


def _quantized_input(model: CompiledModel) -> Callable[[np.ndarray], np.ndarray]:
    """x → the values of its codes under the build's input quantizer."""
    from snncc.reference import EVAL

    (enc,) = model.graph.ops(o.SpikeInput)
    op = enc.op_as(o.SpikeInput)
    return lambda x: op.scale * (EVAL[o.SpikeInput](enc, [np.asarray(x, np.float64)])
                                 - op.zero_point)


def _rename_output(graph: onnx.GraphProto, old: str, new: str) -> None:
    for node in graph.node:
        node.output[:] = [new if t == old else t for t in node.output]


def _site_tensors(model: CompiledModel, site: dict, pre: dict, tensor_of: dict, file: str):
    """(the source's float tensor, the name of the quantized one, (scale, lo, hi, rounding))
    of one calibrated activation quantizer."""
    g = model.graph
    known = site["node"] in g.names()
    if not known and "scale" not in site or site["kind"] == "relu" and site["origin"] not in (
            tensor_of) or site["kind"] == "requantize" and site["value"] not in pre:
        raise SnnccError(Diagnostic(
            f"cannot find where the calibrated quantizer {site['node']} sits in the source "
            "model", file=file, fix="compare with the ONNX file the build was compiled from"))
    value = tensor_of[site["origin"]] if site["kind"] == "relu" else pre[site["value"]][0]
    shift = _site_constant(site, "shift")
    scale = g.node(site["node"]).op_as(o.Neuron).scale if known else _site_constant(site, "scale")
    assert scale is not None  # checked above: a site the graph lacks carries its scale
    if np.size(scale) > 1:  # per channel: every axis of the sample, for the channel's index
        scale = np.asarray(scale).reshape((1,) * (site["rank"] - np.ndim(scale))
                                          + np.shape(scale))
    return value, site["node"], (scale, 0, site["levels"], site["rounding"], shift)


def _site_constant(site: dict, key: str) -> np.ndarray | None:
    """A calibrated site's per-channel constant (scale, or the bias-correction shift)
    shaped to broadcast against the value's sample (channel axis ``site["axis"]``)."""
    from snncc.passes.calibrate_thresholds import channel_axis

    c = site.get(key)
    if c is None:
        return None
    c = np.asarray(c, np.float64)
    rank = site.get("rank")
    if c.size == 1 or rank is None:
        return c.reshape(()) if c.size == 1 else c
    axis = channel_axis(rank)
    return c.reshape((-1,) + (1,) * (rank - 1 - axis))


def _insert_quantizer(graph: onnx.GraphProto, value: str, out: str, scale, lo: int,
                      hi: int, rounding: str, shift: np.ndarray | None = None) -> None:
    """value (+ shift) → QuantizeLinear → Clip(lo, hi) → DequantizeLinear → out, the new
    nodes right after value's producer; a per-channel scale (shaped to broadcast against
    the sample) quantizes along its axis, the shift is a calibrated bias correction."""
    from onnx import helper, numpy_helper

    from snncc.intmath import Rounding

    if rounding != Rounding.HALF_EVEN.value:
        raise SnnccError(Diagnostic(f"the calibrated quantizer {out} rounds {rounding}, "
                                    "which QuantizeLinear cannot", fix="calibrate with "
                                    "quantizers that round half to even"))
    zp_type = np.uint8 if lo >= 0 else np.int8
    scale = np.asarray(scale)
    axis: dict[str, Any] = {} if scale.size == 1 else {"axis": 1 + next(
        i for i, d in enumerate(scale.shape) if d > 1)}
    per = (lambda v: np.ravel(v)) if axis else (lambda v: np.ravel(v)[0])
    consts = {f"{out}/scale": per(scale).astype(np.float32),
              f"{out}/zero_point": per(np.zeros(scale.shape, zp_type)),
              f"{out}/lo": zp_type(lo), f"{out}/hi": zp_type(hi)}
    chain, src = [], value
    if shift is not None:
        consts[f"{out}/shift"] = np.asarray(shift, np.float32)
        chain.append(helper.make_node("Add", [value, f"{out}/shift"], [f"{out}/shifted"]))
        src = f"{out}/shifted"
    graph.initializer.extend(numpy_helper.from_array(np.asarray(v), k) for k, v in consts.items())
    chain += [helper.make_node("QuantizeLinear", [src, f"{out}/scale", f"{out}/zero_point"],
                               [f"{out}/q"], **axis),
              helper.make_node("Clip", [f"{out}/q", f"{out}/lo", f"{out}/hi"], [f"{out}/clip"]),
              helper.make_node("DequantizeLinear", [f"{out}/clip", f"{out}/scale",
                                                    f"{out}/zero_point"], [out], **axis)]
    at = next((k + 1 for k, node in enumerate(graph.node) if value in node.output), 0)
    for k, node in enumerate(chain):
        graph.node.insert(at + k, node)
