"""``model.snn``: the compiled SNN as one self-contained, versioned file.

A zip archive (numpy ``.npz``) holding ``manifest.json`` (snncc version, format, T, delay
policy, the graph: nodes, ops, attributes) and every integer/real tensor by key. Loading
needs no ONNX. A file from another format version, or a damaged one, is a clear error.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from snncc import arrayfile
from snncc import ops as o
from snncc.errors import Diagnostic, SnnccError
from snncc.intmath import Rounding
from snncc.ir import FrozenGraph, Graph, Node
from snncc.version import __version__

FORMAT = "snncc-snn"
FORMAT_VERSION = 1
MAX_ELEMENTS = 1 << 28  # of one value per sample; larger is damage, not a model
_OPS = {cls.__name__: cls for cls in (o.Input,) + o.SNN_OPS + (o.MatMul, o.MaxPool)}


def to_bytes(graph: Graph) -> bytes:
    """The artifact's bytes."""
    tensors: dict[str, np.ndarray] = {}
    nodes = []
    for k, n in enumerate(graph.topo()):
        attrs: dict[str, object] = {}
        for key, value in n.op.attrs().items():
            if isinstance(value, np.ndarray):
                ref = f"n{k}.{key}"
                tensors[ref] = _narrow(value)
                entry = {"tensor": ref}
                if tensors[ref].dtype != value.dtype:
                    entry["dtype"] = value.dtype.name
                attrs[key] = entry
            elif isinstance(value, Enum):
                attrs[key] = {"enum": value.value}
            else:
                attrs[key] = list(value) if isinstance(value, tuple) else value
        nodes.append({"name": n.name, "op": n.op.name, "inputs": list(n.inputs),
                      "shape": list(n.shape), "kind": n.kind, "origin": n.origin,
                      "attrs": attrs})
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "snncc_version": __version__,
                "name": graph.name, "inputs": graph.inputs, "outputs": graph.outputs,
                "meta": _jsonable(graph.meta), "nodes": nodes}
    buf = io.BytesIO()
    arrays: dict[str, Any] = {"__manifest__": np.frombuffer(
        json.dumps(manifest, sort_keys=True).encode(), np.uint8), **tensors}
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def _narrow(a: np.ndarray) -> np.ndarray:
    """An integer array in the narrowest integer type holding it (8-bit weights held as
    int64 are 8x the bytes to compress); the manifest keeps the type it is read back as."""
    if a.dtype.kind not in "iu" or a.size == 0:
        return a
    lo, hi = int(a.min()), int(a.max())
    for t in (np.int8, np.int16, np.int32):
        if np.iinfo(t).min <= lo and hi <= np.iinfo(t).max:
            return a.astype(t) if np.dtype(t).itemsize < a.dtype.itemsize else a
    return a


def save(graph: Graph, path: str | Path) -> None:
    """Write model.snn (its folder is created if missing)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(to_bytes(graph))


def load(path: str | Path, frozen: bool = False) -> Graph:
    """Read a model.snn; raise SnnccError if it is not one this snncc can run. `frozen`:
    as a read-only ``FrozenGraph`` (to be run: no networkx)."""
    path = Path(path)
    if not path.is_file():
        raise SnnccError(Diagnostic("file not found", file=str(path),
                                    fix="pass the model.snn written by `snncc compile`"))
    try:
        tensors = arrayfile.read_npz(path)
        manifest = json.loads(bytes(tensors.pop("__manifest__")).decode())
    except (arrayfile.ArrayFileError, KeyError, ValueError, RecursionError) as e:
        # KeyError: no manifest; ValueError: a manifest that is not JSON text;
        # RecursionError: JSON nested deeper than Python's stack
        why = (str(e) if isinstance(e, arrayfile.ArrayFileError) else
               "its manifest nests deeper than snncc reads" if isinstance(e, RecursionError)
               else type(e).__name__)
        raise SnnccError(Diagnostic(f"not a readable model.snn ({why})", file=str(path),
                                    fix="recompile the model with `snncc compile`")) from None
    if not isinstance(manifest, dict):
        raise SnnccError(Diagnostic("model.snn is damaged (its manifest is not a JSON object)",
                                    file=str(path), fix="recompile the model"))
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise SnnccError(Diagnostic(
            f"model.snn format {manifest.get('format')} v{manifest.get('format_version')} "
            f"(written by snncc {manifest.get('snncc_version')}) is not {FORMAT} "
            f"v{FORMAT_VERSION} (snncc {__version__})", file=str(path),
            fix="recompile the model with this snncc"))
    problem = _manifest_problem(manifest)
    if problem:
        raise SnnccError(Diagnostic(f"model.snn is damaged ({problem})", file=str(path),
                                    fix="recompile the model"))
    try:
        return _graph(manifest, tensors, frozen)
    except (KeyError, TypeError, ValueError, SnnccError) as e:
        # SnnccError: the IR verifier's findings (the manifest disagrees with its arrays)
        why = "; ".join(d.render() for d in e.diagnostics) if isinstance(
            e, SnnccError) else f"{type(e).__name__}: {e}"
        raise SnnccError(Diagnostic(f"model.snn is damaged ({why})", file=str(path),
                                    fix="recompile the model")) from None


_NODE_KEYS = {"name": str, "op": str, "inputs": list, "shape": list, "kind": str,
              "origin": str, "attrs": dict}
_TOP_KEYS = {"name": str, "inputs": list, "outputs": list, "meta": dict, "nodes": list}


def _manifest_problem(manifest: dict) -> str:
    """What is wrong with the manifest's structure ('' if nothing): keys, types, order."""
    for key, kind in _TOP_KEYS.items():
        if not isinstance(manifest.get(key), kind):
            return f"manifest entry '{key}' is missing or not a {kind.__name__}"
    defined: set[str] = set()
    for k, nd in enumerate(manifest["nodes"]):
        bad = [key for key, kind in _NODE_KEYS.items()
               if not isinstance(nd, dict) or not isinstance(nd.get(key), kind)]
        if bad:
            return f"node {k} has no valid {', '.join(bad)}"
        if nd["op"] not in _OPS:
            return f"node '{nd['name']}' has unknown op {nd['op']!r}"
        if any(not _is_int(d) or d < 1 for d in nd["shape"]) \
                or math.prod(nd["shape"]) > MAX_ELEMENTS:
            return f"node '{nd['name']}' has shape {nd['shape']}"
        if any(i not in defined for i in nd["inputs"]):
            return f"node '{nd['name']}' reads values not defined before it"
        defined.add(nd["name"])
    if any(not isinstance(n, str) or n not in defined
           for n in manifest["inputs"] + manifest["outputs"]):
        return "the graph's inputs or outputs name no node"
    return ""


def _graph(manifest: dict, tensors: dict[str, np.ndarray], frozen: bool) -> Graph:
    nodes = []
    for nd in manifest["nodes"]:
        cls = _OPS[nd["op"]]
        fields = {f.name: f for f in dataclasses.fields(cls)}
        attrs: dict[str, Any] = {}  # each checked against its field's type by _attr
        for key, value in nd["attrs"].items():
            try:
                attrs[key] = _attr(str(fields[key].type), value, tensors)
            except (KeyError, ValueError) as e:
                raise ValueError(f"node '{nd['name']}' attribute '{key}': {e}") from None
        nodes.append(Node(nd["name"], cls(**attrs), tuple(nd["inputs"]), tuple(nd["shape"]),
                          nd["kind"], nd["origin"] or nd["name"]))
    g: Graph = FrozenGraph(manifest["name"], nodes, manifest["inputs"], manifest["outputs"],
                           manifest["meta"])
    if not frozen:
        g = g.copy()
    from snncc.ir import verify

    verify(g)
    _check_arrays_fit(g)
    return g


def _check_arrays_fit(g: Graph) -> None:
    """Per-element arrays (scales, offsets, biases) broadcast to their node's shape."""
    for n in g.topo():
        for key in ("scale", "offset", "bias"):
            value = getattr(n.op, key, None)
            if not isinstance(value, np.ndarray):
                continue
            try:
                fits = math.prod(np.broadcast_shapes(value.shape, n.shape)) == math.prod(n.shape)
            except ValueError:
                fits = False
            if not fits:
                raise ValueError(f"node '{n.name}': {key} of shape {list(value.shape)} does "
                                 f"not fit its shape {list(n.shape)}")


def _attr(kind: str, value: object, tensors: dict[str, np.ndarray]) -> object:
    """An op attribute from the manifest, checked against the field's type `kind`."""
    if kind == "np.ndarray":
        ref = value.get("tensor") if isinstance(value, dict) else None
        if ref not in tensors or tensors[ref].dtype.kind not in "biuf":
            raise ValueError(f"{value!r} is not a numeric tensor of the file")
        wide = value.get("dtype") if isinstance(value, dict) else None
        if wide is None:
            return tensors[ref]
        if wide not in ("int16", "int32", "int64") or tensors[ref].dtype.kind != "i":
            raise ValueError(f"{value!r}: a stored integer tensor widens to int16, int32 "
                             "or int64 only")
        return tensors[ref].astype(wide)
    if kind == "Rounding":
        enum: Any = value.get("enum") if isinstance(value, dict) else None  # checked by Rounding
        return Rounding(enum)
    if kind.startswith("tuple["):
        arity = None if "..." in kind else kind.count(",") + 1
        if not isinstance(value, list) or arity not in (None, len(value)) or not all(
                _is_int(v) for v in value):
            raise ValueError(f"{value!r} is not {kind}")
        return tuple(value)
    checks = {"int": _is_int, "bool": lambda v: isinstance(v, bool),
              "str": lambda v: isinstance(v, str),
              "float": lambda v: (_is_int(v) or isinstance(v, float)) and np.isfinite(v)}
    if not checks[kind](value):
        raise ValueError(f"{value!r} is not {kind}")
    return value


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _jsonable(meta: dict) -> dict:
    return json.loads(json.dumps(meta, default=lambda v: v.tolist() if isinstance(
        v, np.ndarray) else str(v)))
