"""``model.snn``: the compiled SNN as one self-contained, versioned file.

A zip archive (numpy ``.npz``) holding ``manifest.json`` (snncc version, format, T, delay
policy, the graph: nodes, ops, attributes) and every integer/real tensor by key. Loading
needs no ONNX. A file from another format version, or a damaged one, is a clear error.
"""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from enum import Enum
from pathlib import Path

import numpy as np

from snncc import __version__
from snncc import ops as o
from snncc.errors import Diagnostic, SnnccError
from snncc.intmath import Rounding
from snncc.ir import Graph

FORMAT = "snncc-snn"
FORMAT_VERSION = 1
_OPS = {cls.__name__: cls for cls in (o.Input,) + o.SNN_OPS + (o.MatMul, o.MaxPool)}


def to_bytes(graph: Graph) -> bytes:
    """The artifact's bytes."""
    tensors: dict[str, np.ndarray] = {}
    nodes = []
    for k, n in enumerate(graph.topo()):
        attrs = {}
        for key, value in n.op.attrs().items():
            if isinstance(value, np.ndarray):
                ref = f"n{k}.{key}"
                tensors[ref] = value
                attrs[key] = {"tensor": ref}
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
    np.savez_compressed(buf, __manifest__=np.frombuffer(
        json.dumps(manifest, sort_keys=True).encode(), np.uint8), **tensors)
    return buf.getvalue()


def save(graph: Graph, path: str | Path) -> None:
    Path(path).write_bytes(to_bytes(graph))


def load(path: str | Path) -> Graph:
    """Read a model.snn; raise SnnccError if it is not one this snncc can run."""
    path = Path(path)
    if not path.is_file():
        raise SnnccError(Diagnostic("file not found", file=str(path),
                                    fix="pass the model.snn written by `snncc compile`"))
    try:
        with np.load(path, allow_pickle=False) as z:
            manifest = json.loads(bytes(z["__manifest__"]).decode())
            tensors = {k: z[k] for k in z.files if k != "__manifest__"}
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as e:
        raise SnnccError(Diagnostic(f"not a readable model.snn ({type(e).__name__})",
                                    file=str(path),
                                    fix="recompile the model with `snncc compile`")) from None
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise SnnccError(Diagnostic(
            f"model.snn format {manifest.get('format')} v{manifest.get('format_version')} "
            f"(written by snncc {manifest.get('snncc_version')}) is not {FORMAT} "
            f"v{FORMAT_VERSION} (snncc {__version__})", file=str(path),
            fix="recompile the model with this snncc"))
    try:
        return _graph(manifest, tensors)
    except (KeyError, TypeError, ValueError) as e:
        raise SnnccError(Diagnostic(f"model.snn is damaged ({type(e).__name__}: {e})",
                                    file=str(path), fix="recompile the model")) from None


def _graph(manifest: dict, tensors: dict[str, np.ndarray]) -> Graph:
    g = Graph(manifest["name"])
    for nd in manifest["nodes"]:
        cls = _OPS[nd["op"]]
        fields = {f.name: f for f in dataclasses.fields(cls)}
        attrs = {}
        for key, value in nd["attrs"].items():
            if isinstance(value, dict) and "tensor" in value:
                attrs[key] = tensors[value["tensor"]]
            elif isinstance(value, dict) and "enum" in value:
                attrs[key] = Rounding(value["enum"])
            elif isinstance(value, list) and "tuple" in str(fields[key].type):
                attrs[key] = tuple(value)
            else:
                attrs[key] = value
        g.add(nd["name"], cls(**attrs), nd["inputs"], origin=nd["origin"],
              shape=tuple(nd["shape"]), kind=nd["kind"])
    g.inputs, g.outputs, g.meta = manifest["inputs"], manifest["outputs"], manifest["meta"]
    from snncc.ir import verify

    verify(g)
    return g


def _jsonable(meta: dict) -> dict:
    return json.loads(json.dumps(meta, default=lambda v: v.tolist() if isinstance(
        v, np.ndarray) else str(v)))
