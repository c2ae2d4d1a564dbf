"""What the user hands the CLI, checked before any work: path options, arrays, labels, numbers.

Every problem names the option and the file (``--input x.npy: file not found``) and says
what to do. Arrays are read through `snncc.arrayfile`, so a crafted file costs bounded
memory; ONNX files through the frontend's loader, external data checked first.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

from snncc import arrayfile
from snncc.errors import Diagnostic, SnnccError

ARRAYS = (".npy", ".npz")


def _fail(option: str, path: Path, message: str, fix: str) -> SnnccError:
    return SnnccError(Diagnostic(message, file=f"{option} {path}", fix=fix))


# ---------------------------------------------------------------- files to read


def readable_file(path: Path, option: str, suffixes: tuple[str, ...]) -> Path:
    """`path` is an existing, readable file; a folder gets a did-you-mean if it can."""
    if path.is_dir():
        raise _fail(option, path, "is a folder, not a file", _folder_fix(path, option, suffixes))
    if not path.exists():
        raise _fail(option, path, "file not found", "check the path")
    if not path.is_file():  # reading a pipe would wait for a writer forever
        raise _fail(option, path, "is not a regular file (a pipe, socket or device)",
                    "pass a file")
    try:
        with open(path, "rb"):
            pass
    except OSError as e:
        raise _fail(option, path, f"cannot read the file ({e.strerror or e})",
                    "check the file's permissions") from None
    return path


def _folder_fix(folder: Path, option: str, suffixes: tuple[str, ...]) -> str:
    try:
        found = sorted(p for p in folder.iterdir() if p.suffix in suffixes and p.is_file())
    except OSError:
        found = []
    if len(found) == 1:
        return f"did you mean {option} {found[0]}?"
    return f"pass a {' or '.join(suffixes)} file"


def onnx_file(path: Path, option: str) -> Path:
    """An ONNX model snncc can read (external data checked), for --compare-onnx/--onnx."""
    from snncc.frontend.loader import load_model

    readable_file(path, option, (".onnx",))
    try:
        load_model(path)
    except SnnccError as e:
        raise SnnccError(replace(d, file=_relabel(d.file, path, option))
                         for d in e.diagnostics) from None
    return path


def _relabel(file: str, path: Path, option: str) -> str:
    return f"{option} {path}" if file in ("", str(path)) else file


def load_array(path: Path, option: str, key: str = "x") -> np.ndarray:
    """An array from .npy, or from .npz (key `key`, else its only array)."""
    readable_file(path, option, ARRAYS)
    try:
        data = arrayfile.read(path)
    except arrayfile.ArrayFileError as e:
        raise _fail(option, path, f"cannot be read as an array of numbers: {e}",
                    "save an array of numbers with numpy.save or numpy.savez") from None
    if not isinstance(data, dict):
        return data
    if key in data:
        return data[key]
    if len(data) == 1:
        return next(iter(data.values()))
    raise _fail(option, path, f"has arrays {sorted(data)} and no '{key}'",
                f"name the array '{key}'")


# ---------------------------------------------------------------- files to write


def output_file(path: Path | None, option: str, suffix: str | None) -> None:
    """Before any work: `path` can be created (its folder exists; it is not a folder) and
    has the suffix of what is written there."""
    if path is None:
        return
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        example = path / f"{option.lstrip('-')}{suffix or ''}"
        raise _fail(option, path, "is a folder, not a file", f"name a file, e.g. {option} "
                                                             f"{example}")
    if not parent.is_dir():
        raise _fail(option, path, f"folder '{parent}' does not exist",
                    "choose a file in an existing folder")
    if suffix and path.suffix != suffix:
        raise _fail(option, path, f"snncc writes a {suffix} file here, not "
                                  f"{path.suffix or 'one without a suffix'}",
                    f"name it {path.with_suffix(suffix).name}")


def output_folder(path: Path, option: str) -> None:
    """An output folder may not be a symlink: snncc would write where it leads."""
    if path.is_symlink():
        raise _fail(option, path, f"is a symlink to '{os.readlink(path)}'; snncc writes "
                                  "only into a real folder", "choose another folder with -o")


# ---------------------------------------------------------------- values


def positive(value: float, option: str, example: str) -> None:
    """A number option that must be positive and finite (energies, batch sizes)."""
    if not (math.isfinite(value) and value > 0):
        raise SnnccError(Diagnostic(f"{option} must be positive, not {value}",
                                    fix=f"e.g. {option} {example}"))


def labels(y: np.ndarray, path: Path, option: str, inputs: int, classes: int) -> np.ndarray:
    """Labels as int64: numbers, whole, one per input, each a class 0..classes-1."""
    y = np.asarray(y)
    if y.dtype.kind not in "biuf":
        raise _fail(option, path, f"labels have dtype {y.dtype}, not numbers",
                    f"pass class numbers 0..{classes - 1}")
    if y.ndim == 2 and y.shape[0] == inputs and y.shape[1] == classes > 1:
        raise _fail(option, path, f"labels have shape {list(y.shape)}, one row of {classes} "
                                  "per input (one-hot?)",
                    "pass one class number per input: y.argmax(axis=1)")
    y = y.reshape(-1)
    if len(y) != inputs:
        raise _fail(option, path, f"{len(y)} labels for {inputs} inputs",
                    "pass one label per input")
    whole = np.isfinite(y) & (y == np.round(y)) if y.dtype.kind == "f" else np.ones(len(y), bool)
    if not whole.all():
        k = int(np.argmin(whole))
        raise _fail(option, path, f"label {y[k]} (at index {k}) is not a whole number",
                    f"pass class numbers 0..{classes - 1}")
    outside = np.flatnonzero((y < 0) | (y >= classes))
    if len(outside):
        k = int(outside[0])
        raise _fail(option, path, f"{len(outside)} label(s) outside the model's classes "
                                  f"0..{classes - 1} (first {y[k]:g} at index {k})",
                    f"pass class numbers 0..{classes - 1}")
    return y.astype(np.int64)


def classes(model) -> int:
    """How many classes the model's readout tells apart (the argmax runs over all)."""
    from snncc import ops as o

    (readout,) = model.graph.ops(o.Readout)
    return math.prod(readout.shape)


def saturation(model, x: np.ndarray, path: Path) -> list[str]:
    """A warning per input quantizer that `x` drives far outside its range (by more than
    an eighth of the range: mis-scaled inputs, not a quantizer that clips the top of the
    data by design), saying how many values saturate."""
    return saturation_of(model, lambda: iter([x]), path)


def saturation_of(model, chunks: Callable[[], Iterator[np.ndarray]], path: Path
                  ) -> list[str]:
    """`saturation` of the inputs that `chunks()` yields a part at a time (it is called
    a second time, to count the saturated values, only if some value lies far out)."""
    from snncc import ops as o

    notes = []
    for n in model.graph.ops(o.SpikeInput):
        op = n.op
        lo, hi = (op.lo - op.zero_point) * op.scale, (op.hi - op.zero_point) * op.scale
        margin = (hi - lo) / 8
        if not any(np.any((x > hi + margin) | (x < lo - margin))
                   for x in map(_float64, chunks())):
            continue  # (the codes, below, are worked out only for a warning)
        above = below = size = 0
        for x in map(_float64, chunks()):
            raw = op.rounding.apply(x / op.scale) + op.zero_point
            above, below = above + int(np.sum(raw > op.hi)), below + int(np.sum(raw < op.lo))
            size += x.size
        notes.append(f"{path}: {above + below} of {size} input values "
                     f"({(above + below) / size:.2%}) lie outside the range "
                     f"{np.min(lo):.4g}..{np.max(hi):.4g} of the input quantizer (node "
                     f"'{n.name}') and saturate ({above} above, {below} below); scale the "
                     "inputs as the model was trained")
    return notes


def _float64(x) -> np.ndarray:
    return np.asarray(x, np.float64)
