"""Load an ONNX file and check that it is one snncc can read, with clear messages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import numpy_helper

from snncc.errors import Diagnostic, SnnccError, raise_if
from snncc.frontend import external_data

MIN_OPSET, MAX_OPSET = 13, 21
MAX_NODES = 50_000  # a transformer of FPGA size has a few thousand; keeps time bounded
QONNX_DOMAINS = ("qonnx.custom_op.general", "finn.custom_op.general", "onnx.brevitas")


def load_model(path: str | Path) -> onnx.ModelProto:
    """Read `path` (external data included) and check its opset; raise SnnccError if bad."""
    path = Path(path)
    if not path.is_file():
        raise SnnccError(Diagnostic("file not found", file=str(path),
                                    fix="check the path to the .onnx file"))
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, RuntimeWarning, ValueError) as e:
        why = "its protobuf data is damaged" if isinstance(e, DecodeError) else str(e)
        raise SnnccError(Diagnostic(
            f"not a readable ONNX model ({why}); the file may be truncated or not ONNX at all",
            file=str(path), fix="re-export the model")) from None
    except OSError as e:
        raise SnnccError(Diagnostic(f"cannot read the file ({e.strerror or e})", file=str(path),
                                    fix="check the file's permissions")) from None
    if not model.HasField("graph") or _has_broken_text(model):
        what = "no graph found" if not model.HasField("graph") else "names that are not text"
        raise SnnccError(Diagnostic(
            f"not a readable ONNX model ({what}); the file may be damaged or not ONNX at all",
            file=str(path), fix="re-export the model"))
    if not model.graph.node:
        raise SnnccError(Diagnostic("the model's graph is empty (it has no nodes)",
                                    file=str(path), fix="re-export the model with its layers"))
    if len(model.graph.node) > MAX_NODES:
        raise SnnccError(Diagnostic(
            f"the model's graph has {len(model.graph.node)} nodes, more than snncc compiles "
            f"(at most {MAX_NODES})", file=str(path),
            fix="check the export; fold its shape arithmetic (e.g. with onnx-simplifier)"))
    _load_external(model, path)
    _check_opset(model, path)
    return model


def _load_external(model: onnx.ModelProto, path: Path) -> None:
    from onnx.external_data_helper import load_external_data_for_model

    external_data.check(model, path)
    try:
        load_external_data_for_model(model, str(path.parent))
    except Exception as e:  # noqa: BLE001 - onnx's own refusal (ValidationError, OSError)
        raise SnnccError(Diagnostic(f"cannot read external data: {e}", file=str(path),
                                    fix="re-export the model with its data file")) from None


def _check_opset(model: onnx.ModelProto, path: Path) -> None:
    versions = {o.domain or "ai.onnx": o.version for o in model.opset_import}
    v = versions.get("ai.onnx")
    if v is None or not MIN_OPSET <= v <= MAX_OPSET:
        raise SnnccError(Diagnostic(
            f"opset {v} is not supported (snncc reads opsets {MIN_OPSET} to {MAX_OPSET})",
            file=str(path), fix=f"export with opset_version between {MIN_OPSET} and {MAX_OPSET}"))


def _has_broken_text(model: onnx.ModelProto) -> bool:
    """Protobuf hands back bytes, not str, for names that are not valid UTF-8 (damage)."""
    g = model.graph
    texts = [o.domain for o in model.opset_import]
    texts += [v.name for v in (*g.input, *g.output, *g.initializer)]
    for n in g.node:
        texts += [n.op_type, n.domain, n.name, *n.input, *n.output, *(a.name for a in n.attribute)]
    return any(not isinstance(t, str) for t in texts)


def initializers(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Every initializer as an array; SnnccError naming each one whose data is damaged."""
    consts, problems = {}, []
    for t in model.graph.initializer:
        try:
            consts[t.name] = numpy_helper.to_array(t)
        except (ValueError, KeyError, TypeError):
            # numpy_helper's errors for data that does not fit the declared type and shape
            problems.append(Diagnostic(
                f"initializer '{t.name}' cannot be read: its data does not fit its declared type "
                f"{type_name(t.data_type)} and shape {list(t.dims)}",
                fix="re-export the model"))
    raise_if(problems)
    return consts


def real_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """Graph inputs that are not initializers (exporters often list weights as inputs too)."""
    init = {t.name for t in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in init]


def type_name(elem_type: int) -> str:
    """FLOAT, UINT8, ...; the number itself for a type ONNX does not know."""
    try:
        return onnx.TensorProto.DataType.Name(elem_type)
    except ValueError:
        return f"#{elem_type} (not an ONNX type)"
