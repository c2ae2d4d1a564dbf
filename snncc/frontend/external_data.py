"""External data: every tensor's `location` checked before a byte of it is read.

A model may keep its weights in files beside it (``onnx.save(..., save_as_external_data=
True)``). Models arrive from other people, so each location must name a file inside the
model's folder: relative, without ``..``, not a symlink that leads out, present, readable,
and holding the bytes its tensor declares. Every bad location is named in one message.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from pathlib import Path, PurePosixPath, PureWindowsPath

import onnx
from onnx import TensorProto

from snncc.errors import Diagnostic, SnnccError

_FIX_OUTSIDE = ("keep the data files in the model's folder and re-save the model with "
                "onnx.save(model, path, save_as_external_data=True, location='NAME')")
_FIX_MISSING = "copy the weight file(s) into the model's folder"
_FIX_SIZE = "re-export the model with its data file"


def check(model: onnx.ModelProto, path: Path) -> None:
    """Raise one SnnccError naming every unusable external-data location of `model`."""
    by_location: dict[str, list[TensorProto]] = defaultdict(list)
    for t in _external_tensors(model.graph):
        by_location[_info(t).get("location", "")].append(t)
    problems: list[tuple[str, str]] = []  # (what is wrong, the fix)
    for location, tensors in by_location.items():
        problem = _location_problem(location, path.parent)
        if problem:
            shown = repr(location) if location else "location"
            problems.append((f"{shown} {_for(tensors)} {problem[0]}", problem[1]))
        else:
            problems += _size_problems(location, tensors, path.parent)
    if problems:
        fixes = "; ".join(dict.fromkeys(fix for _, fix in problems))
        raise SnnccError(Diagnostic("external data " + "; ".join(w for w, _ in problems),
                                    file=str(path), fix=fixes))


def _external_tensors(graph: onnx.GraphProto):
    """Initializers and constant attributes stored outside the file, subgraphs included."""
    for t in graph.initializer:
        if t.data_location == TensorProto.EXTERNAL:
            yield t
    for node in graph.node:
        for a in node.attribute:
            for t in [a.t, *a.tensors]:
                if t.data_location == TensorProto.EXTERNAL:
                    yield t
            for g in [a.g, *a.graphs]:
                yield from _external_tensors(g)


def _for(tensors: list[TensorProto]) -> str:
    """(tensor 'w') or (tensors 'a', 'b', 'c' and 4 more)."""
    names = [f"'{t.name}'" for t in tensors]
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f"(tensor{'s' if len(names) > 1 else ''} {shown})"


def _info(t: TensorProto) -> dict[str, str]:
    return {e.key: e.value for e in t.external_data}


def _location_problem(location: str, folder: Path) -> tuple[str, str] | None:
    """What is wrong with the file `location` names (None: a readable file in `folder`)."""
    if not location:
        return "is empty", _FIX_SIZE
    if PurePosixPath(location).is_absolute() or PureWindowsPath(location).is_absolute() \
            or PureWindowsPath(location).drive:
        return "is an absolute path, not a file in the model's folder", _FIX_OUTSIDE
    if ".." in PureWindowsPath(location).parts:
        return "points outside the model's folder (..)", _FIX_OUTSIDE
    target = folder / location
    real, home = target.resolve(), folder.resolve()
    if not real.is_relative_to(home):
        return (f"is a symlink to '{real}', outside the model's folder",
                _FIX_OUTSIDE)
    if not real.exists():
        return "not found next to the model", _FIX_MISSING
    if real.is_dir():
        return "is a folder, not a data file", _FIX_MISSING
    if not real.is_file():  # reading a pipe would wait for a writer forever
        return "is not a regular file (a pipe, socket or device)", _FIX_MISSING
    try:
        with open(real, "rb"):
            pass
    except OSError as e:
        return (f"cannot be read ({e.strerror or e})",
                "check the data file's permissions")
    return None


def _size_problems(location: str, tensors: list[TensorProto],
                   folder: Path) -> list[tuple[str, str]]:
    """Each tensor whose offset and length do not fit in the file or its declared size."""
    size = os.path.getsize(folder / location)
    problems = []
    for t in tensors:
        span = _span(_info(t), size)
        if span is None:
            problems.append((f"of tensor '{t.name}' has an offset or length that is not a "
                             "number", _FIX_SIZE))
            continue
        offset, have = span
        need = _declared_bytes(t)
        if offset < 0 or have < 0 or offset + have > size:
            problems.append((f"'{location}' ({size} bytes) is too short for tensor "
                             f"'{t.name}' ({have} bytes from offset {offset})", _FIX_SIZE))
        elif need is not None and need != have:
            problems.append((f"'{location}' gives tensor '{t.name}' {have} bytes; its type "
                             f"{_type_name(t)} and shape {list(t.dims)} need {need}",
                             _FIX_SIZE))
    return problems


def _span(info: dict[str, str], size: int) -> tuple[int, int] | None:
    """(offset, length) of a tensor's bytes in a file of `size` bytes; None if not numbers."""
    try:
        offset = int(info.get("offset", "0"))
        length = int(info["length"]) if "length" in info else size - offset
    except ValueError:
        return None
    return offset, length


def _declared_bytes(t: TensorProto) -> int | None:
    """The bytes a tensor's type and shape need (None for strings, whose size varies)."""
    try:
        dtype = onnx.helper.tensor_dtype_to_np_dtype(t.data_type)
    except KeyError:
        return None
    if t.data_type == TensorProto.STRING:
        return None
    bits = 4 if t.data_type in (TensorProto.INT4, TensorProto.UINT4) else dtype.itemsize * 8
    return (math.prod(t.dims) * bits + 7) // 8


def _type_name(t: TensorProto) -> str:
    try:
        return TensorProto.DataType.Name(t.data_type)
    except ValueError:
        return f"#{t.data_type}"
