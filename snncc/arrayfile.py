""".npy and .npz files read without trusting them.

Every size a file declares (the zip directory's, each array header's shape) is checked
against the bytes that are really there before anything is allocated, so a crafted file
costs at most a bounded amount of memory: a .npy file its own size, an .npz archive at most
``max(INFLATION_FREE, INFLATION_RATIO x its size)``. Pickles and object arrays are refused.
Problems are `ArrayFileError`s whose text says what is wrong; callers name the file and
the fix.
"""

from __future__ import annotations

import math
import os
import zipfile
import zlib
from pathlib import Path
from typing import IO

import numpy as np
from numpy.lib import format as npy

INFLATION_RATIO = 100  # an archive may inflate to 100 times its size on disk ...
INFLATION_FREE = 64 << 20  # ... or to 64 MiB, whichever is more
_HEADER_LIMIT = 1 << 16  # numpy's own limit on an array header's length


class ArrayFileError(ValueError):
    """The file is not a .npy/.npz this reader accepts; the text says why."""


def read(path: str | Path) -> np.ndarray | dict[str, np.ndarray]:
    """A .npy file's array, or an .npz file's arrays by name (told apart by content)."""
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic.startswith(b"PK"):
        return read_npz(path)
    if magic == b"\x93NUMPY":
        return read_npy(path)
    if magic.startswith(b"\x80"):
        raise ArrayFileError("it is a Python pickle, which snncc does not load")
    raise ArrayFileError("it is neither .npy nor .npz")


def read_npy(path: str | Path) -> np.ndarray:
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        shape, dtype, offset = _header(f)
        _check_size(shape, dtype, size - offset)
        f.seek(0)
        return _read_array(f)


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
            _check_inflation(infos, os.path.getsize(path))
            return {_key(i.filename): _member(z, i) for i in infos}
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as e:
        # what zipfile and zlib raise for damaged archives (RuntimeError: encrypted,
        # NotImplementedError: a compression or flag zipfile does not read)
        raise ArrayFileError(type(e).__name__) from None
    except OSError as e:
        raise ArrayFileError(e.strerror or type(e).__name__) from None


def _check_inflation(infos: list[zipfile.ZipInfo], size: int) -> None:
    total = sum(i.file_size for i in infos)
    limit = max(INFLATION_FREE, INFLATION_RATIO * size)
    if total > limit:
        raise ArrayFileError(
            f"its {size} bytes would inflate to {total} bytes, more than snncc reads "
            f"({INFLATION_RATIO} times the file's size or {INFLATION_FREE >> 20} MiB)")
    names = [i.filename for i in infos]
    if len(set(names)) != len(names):
        raise ArrayFileError("it holds two arrays of the same name")


def _member(z: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    with z.open(info) as f:
        shape, dtype, offset = _header(f, f"array '{_key(info.filename)}'")
        _check_size(shape, dtype, info.file_size - offset, f"array '{_key(info.filename)}'")
    with z.open(info) as f:
        return _read_array(f)


def _header(f: IO[bytes], what: str = "the array") -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, bytes before the data) from an array header; pickles refused."""
    try:
        version = npy.read_magic(f)
        read_header = {(1, 0): npy.read_array_header_1_0,
                       (2, 0): npy.read_array_header_2_0}.get(version)
        if read_header is None:
            raise ArrayFileError(f"{what} has .npy format version {version}")
        shape, _, dtype = read_header(f, max_header_size=_HEADER_LIMIT)
    except (ValueError, EOFError, SyntaxError) as e:
        if isinstance(e, ArrayFileError):
            raise
        raise ArrayFileError(f"{what} has a damaged header ({e})") from None
    if dtype.hasobject:
        raise ArrayFileError(f"{what} holds Python objects (dtype {dtype}), which need "
                             "pickle to load")
    return tuple(shape), dtype, f.tell()


def _check_size(shape: tuple[int, ...], dtype: np.dtype, present: int,
                what: str = "the array") -> None:
    declared = math.prod(shape) * dtype.itemsize
    if declared != present:
        raise ArrayFileError(f"{what} declares shape {list(shape)} of {dtype} "
                             f"({declared} bytes) but holds {present} bytes")


def _read_array(f: IO[bytes]) -> np.ndarray:
    try:
        return npy.read_array(f, allow_pickle=False)
    except (ValueError, EOFError) as e:
        raise ArrayFileError(f"its data is damaged ({e})") from None


def _key(name: str) -> str:
    return name[:-4] if name.endswith(".npy") else name
