"""The integer reference against onnxruntime on the source model, code by code.

onnxruntime runs with graph optimizations off: its QDQ fusions would replace the model's
float arithmetic by integer kernels with their own requantization, which is not what the
ONNX file says.

Every neuron replaced a quantizer whose output tensor has the neuron's name in the ONNX
graph; onnxruntime is asked for those tensors, which are turned back into codes
(value / scale), and compared with the integer reference's codes. Differences are counted
per layer and located (first sample, element); the argmax decisions are compared too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from snncc import ops as o
from snncc.compiler import CompiledModel
from snncc.errors import Diagnostic, SnnccError


@dataclass
class LayerAgreement:
    name: str
    total: int
    differing: int
    first: tuple[int, ...] | None = None  # (sample, *element index)
    ort_code: int | None = None
    snn_code: int | None = None

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
        total = sum(layer.total for layer in self.layers)
        return 1.0 - sum(layer.differing for layer in self.layers) / max(total, 1)

    @property
    def decision_agreement(self) -> float:
        return 1.0 - self.differing_decisions / max(self.decisions, 1)

    def to_json(self) -> dict:
        return {"code_agreement": self.code_agreement,
                "decision_agreement": self.decision_agreement,
                "decisions": self.decisions, "differing_decisions": self.differing_decisions,
                "layers": [{"name": a.name, "total": a.total, "differing": a.differing,
                            "first": a.first, "onnx_code": a.ort_code, "snn_code": a.snn_code}
                           for a in self.layers]}


def run_onnx(path: str | Path, x: np.ndarray, names: list[str]) -> list[np.ndarray]:
    """onnxruntime on `path` with `names` as extra outputs (one sample at a time if the
    export baked the batch into its shapes)."""
    import onnxruntime as ort

    model = onnx.load(str(path))
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
        raise SnnccError(Diagnostic(f"onnxruntime cannot run the model: {e}", file=str(path),
                                    fix="check the model in onnxruntime")) from None
    inp = sess.get_inputs()[0]
    wanted = [model.graph.output[0].name] + names
    x32 = x.astype(np.float32)
    try:
        return [np.asarray(v) for v in sess.run(wanted, {inp.name: x32})]
    except Exception:  # noqa: BLE001 - fixed batch of 1: run sample by sample
        runs = [sess.run(wanted, {inp.name: x32[i:i + 1]}) for i in range(len(x32))]
        return [np.concatenate([r[k] for r in runs]) for k in range(len(wanted))]


def compare_onnx(model: CompiledModel, onnx_path: str | Path, x: np.ndarray) -> Agreement:
    """Integer reference vs onnxruntime: codes of every neuron, and argmax decisions."""
    x = model.check_input(x)
    neurons = model.graph.ops(o.Neuron)
    outs = run_onnx(onnx_path, x, [n.name for n in neurons])
    ref = model.reference(x)
    result = Agreement()
    for n, value in zip(neurons, outs[1:], strict=True):
        ort_codes = np.rint(value.reshape((len(x),) + n.shape) / n.op.scale).astype(np.int64)
        snn = ref[n.name]
        diff = np.argwhere(ort_codes != snn)
        layer = LayerAgreement(n.name, snn.size, len(diff))
        if len(diff):
            first = tuple(int(i) for i in diff[0])
            layer.first, layer.ort_code, layer.snn_code = first, int(ort_codes[first]), int(
                snn[first])
        result.layers.append(layer)
    (readout,) = model.graph.ops(o.Readout)
    ort_pred = outs[0].reshape(len(x), -1).argmax(axis=1)
    snn_pred = ref[readout.name].reshape(len(x), -1).argmax(axis=1)
    result.decisions = len(x)
    result.differing_decisions = int(np.sum(ort_pred != snn_pred))
    return result
