"""Data sets from disk for `simulate --input/--labels`: a large .npy file, or a folder of
shards, read a batch at a time (smaller files go through snncc.runtime.inputs like every
command's).

- ``.npy`` (of more than STREAM_BYTES): memory-mapped, so a batch is read from disk when
  it is simulated and memory stays bounded by the batch, not the data set;
- ``.npz``: the array named `key` (else its only array), read whole (snncc.runtime.inputs);
- a folder: its ``.npy``/``.npz`` shards in sorted name order, one data set (hidden files
  are skipped; anything else is an error). The shards must agree on the shape of one
  sample; a slice of the set reads only the shards it covers (``.npy`` shards
  memory-mapped, an ``.npz`` shard read whole while it is in use).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from snncc.errors import Diagnostic, SnnccError
from snncc.runtime import inputs

SHARD_SUFFIXES = (".npy", ".npz")
STREAM_BYTES = 64 << 20  # .npy files larger than this are memory-mapped
SATURATION_SAMPLE = 4096  # inputs the saturation warning looks at in a streamed data set
SATURATION_CHUNK = 64 << 20  # ... read this many bytes (as float64) at a time


def streamed(path: Path) -> bool:
    """Whether `path` is read a batch at a time: a folder, or a large .npy file."""
    path = Path(path)
    return path.is_dir() or (path.suffix == ".npy" and path.is_file()
                             and path.stat().st_size > STREAM_BYTES)


def open_array(path: Path, option: str, key: str = "x"):
    """The data set at `path` (a file or a folder of shards), as an array-like with
    shape, dtype, len and slicing; .npy files are memory-mapped."""
    path = Path(path)
    if path.is_dir():
        return Shards(path, option, key)
    return _read(path, option, key)


def _fail(option: str, path: Path, message: str, fix: str) -> SnnccError:
    return SnnccError(Diagnostic(message, file=f"{option} {path}", fix=fix))


def _read(path: Path, option: str, key: str) -> np.ndarray:
    """One .npy file's array, memory-mapped; an .npz file's as snncc.runtime.inputs reads it."""
    if path.suffix != ".npy":
        return inputs.load_array(path, option, key)
    inputs.readable_file(path, option, SHARD_SUFFIXES)
    try:
        data = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise _fail(option, path, f"cannot be read as an array of numbers: {e}",
                    "save an array of numbers with numpy.save or numpy.savez") from None
    if not isinstance(data, np.ndarray):
        raise _fail(option, path, "cannot be read as an array of numbers",
                    "save an array of numbers with numpy.save")
    return data


class Shards:
    """The shards of a folder as one array along the first axis (read lazily)."""

    def __init__(self, folder: Path, option: str, key: str = "x"):
        self.folder, self.option, self.key = folder, option, key
        self.files = _shard_files(folder, option)
        self._open: tuple[int, np.ndarray] | None = None
        shapes, dtypes = [], []
        for k, f in enumerate(self.files):
            a = self._shard(k)
            if a.ndim == 0:
                raise _fail(option, f, "holds a single number, not an array of samples",
                            "save one array of samples per shard")
            shapes.append(a.shape)
            dtypes.append(a.dtype)
        for f, s in zip(self.files, shapes, strict=True):
            if s[1:] != shapes[0][1:]:
                raise _fail(option, folder, f"shards differ in the shape of a sample: "
                                            f"{self.files[0].name} has {list(shapes[0])}, "
                                            f"{f.name} has {list(s)}",
                            "give every shard the same shape after the first axis")
        self.sizes = [s[0] for s in shapes]
        self.starts = np.cumsum([0] + self.sizes)
        self.shape = (int(self.starts[-1]),) + tuple(shapes[0][1:])
        self.dtype = np.result_type(*dtypes)
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        whole = self[0:len(self)]
        return whole if dtype is None else whole.astype(dtype)

    def __getitem__(self, index) -> np.ndarray:
        if not isinstance(index, slice):
            return np.asarray(self)[index]
        start, stop, step = index.indices(len(self))
        if step != 1:
            return np.asarray(self)[index]
        parts = []
        for k, (a, b) in enumerate(zip(self.starts[:-1], self.starts[1:], strict=True)):
            lo, hi = max(start, a), min(stop, b)
            if lo < hi:
                parts.append(np.asarray(self._shard(k)[lo - a:hi - a], self.dtype))
        if not parts:
            return np.empty((0,) + self.shape[1:], self.dtype)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _shard(self, k: int) -> np.ndarray:
        """Shard k (the last one used stays open: an .npz shard is read once per pass)."""
        if self._open is None or self._open[0] != k:
            self._open = (k, _read(self.files[k], self.option, self.key))
        return self._open[1]


def _shard_files(folder: Path, option: str) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    others = [p for p in files if p.suffix not in SHARD_SUFFIXES or not p.is_file()]
    if others:
        raise _fail(option, folder, f"the folder holds '{others[0].name}', which is not a "
                                    ".npy/.npz shard",
                    "keep only the data set's shards (.npy or .npz) in the folder")
    if not files:
        raise _fail(option, folder, "the folder has no .npy/.npz shards",
                    "put the data set's shards in it, or pass a .npy/.npz file")
    return files
