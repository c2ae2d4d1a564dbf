"""Write the hostile-input corpus beside this script: `python tests/data/hostile/make.py`.

Crafted files that a compiler reading other people's models must refuse with one message,
bounded memory and nothing written (tests/test_hostile.py runs each through the CLI). All
are tiny; the bombs use bzip2, which packs gigabytes of zeros into a few hundred bytes.
Two cases are made by the test itself instead, being too large or machine-specific to
keep here: a graph of 100,000 nodes (`many_nodes`) and an output folder that is a symlink.

Rerun after a change to the model.snn format (the .snn files embed it).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))  # tests/: the good model of test_bad_input

from test_bad_input import mlp  # noqa: E402

BOMB = 3_600_000_000  # bytes a bomb's member claims to inflate to (3.6 GB)


# ---------------------------------------------------------------- ONNX


def external(folder: Path, locations: dict[str, str]) -> None:
    """model.onnx with its weights in weights.bin; `locations` re-points some tensors."""
    folder.mkdir()
    onnx.save(mlp(), folder / "model.onnx", save_as_external_data=True,
              location="weights.bin", size_threshold=0)
    model = onnx.load(folder / "model.onnx", load_external_data=False)
    for t in model.graph.initializer:
        for entry in t.external_data:
            if entry.key == "location" and t.name in locations:
                entry.value = locations[t.name]
    onnx.save(model, folder / "model.onnx")


def symlink_out(folder: Path) -> None:
    external(folder, {"fc2_weight": "link.bin"})
    os.symlink("/etc/passwd", folder / "link.bin")


def short_data(folder: Path) -> None:
    external(folder, {})
    with open(folder / "weights.bin", "r+b") as f:
        f.truncate(100)  # fc1_weight needs 128 bytes, fc2_weight 96 after it


def tensor_size(path: Path) -> None:
    """fc1_weight declares [4, 8] float (128 bytes) but holds 12."""
    model = mlp()
    t = next(t for t in model.graph.initializer if t.name == "fc1_weight")
    t.raw_data = t.raw_data[:12]
    onnx.save(model, path)


def fold_bomb(path: Path, op: str, shape: list[int]) -> None:
    """A constant of `shape` made by `op` (ConstantOfShape or Expand) and added to x."""
    one = numpy_helper.from_array(np.ones(1, np.float32), "one")
    dims = numpy_helper.from_array(np.array(shape, np.int64), "dims")
    inputs = ["dims"] if op == "ConstantOfShape" else ["one", "dims"]
    nodes = [helper.make_node(op, inputs, ["c"], name="big_constant"),
             helper.make_node("Add", ["x", "c"], ["y"], name="add")]
    graph = helper.make_graph(nodes, "bomb", [helper.make_tensor_value_info("x", 1, ["N", 4])],
                              [helper.make_tensor_value_info("y", 1, ["N", 4])], [one, dims])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def many_nodes(path: Path, n: int = 100_000) -> None:
    """A chain of `n` Relu nodes (made by the test: about 1.5 MB)."""
    nodes = [helper.make_node("Relu", [f"t{i}"], [f"t{i + 1}"]) for i in range(n)]
    graph = helper.make_graph(nodes, "many", [helper.make_tensor_value_info("t0", 1, ["N", 4])],
                              [helper.make_tensor_value_info(f"t{n}", 1, ["N", 4])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


# ---------------------------------------------------------------- model.snn


def good_snn() -> dict[str, np.ndarray]:
    """The arrays of MLP compiled to model.snn."""
    import snncc
    from snncc.backends.sim import artifact

    with tempfile.TemporaryDirectory() as tmp:
        onnx.save(mlp(), Path(tmp) / "mlp.onnx")
        data = artifact.to_bytes(snncc.compile(Path(tmp) / "mlp.onnx").graph)
    with np.load(io.BytesIO(data)) as z:
        return {k: z[k] for k in z.files}


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def zeros_member(z: zipfile.ZipFile, name: str, header_shape: tuple[int, ...], size: int) -> None:
    """A member that starts with an int64 array header of `header_shape` and holds `size`
    bytes (zeros after the header)."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<i8", "fortran_order": False,
                                                  "shape": header_shape})
    chunk = bytes(1 << 24)
    with z.open(entry(name, z.compression), "w", force_zip64=True) as f:
        f.write(header.getvalue())
        left = size - len(header.getvalue())
        while left > 0:
            f.write(chunk[:left])
            left -= len(chunk)


def snn_with(path: Path, arrays: dict[str, np.ndarray], member: str | None = None,
             header_shape: tuple[int, ...] = (), size: int = 0) -> None:
    """model.snn of `arrays`, with `member` replaced by a bzip2 bomb of `size` bytes."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_BZIP2) as z:
        for key, value in arrays.items():
            if key == member:
                zeros_member(z, f"{key}.npy", header_shape, size)
            else:
                z.writestr(entry(f"{key}.npy", z.compression), npy_bytes(value))


def entry(name: str, compression: int) -> zipfile.ZipInfo:
    """A zip entry dated 1980 like numpy's, so that the files are the same on every run."""
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = compression
    return info


def snn_manifest_disagrees(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """fc1's weight is [5, 8] where its input has 4 values."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for key, value in arrays.items():
            if key == _weight_of(arrays, "fc1"):
                value = np.zeros((5, 8), np.int64)
            z.writestr(entry(f"{key}.npy", z.compression), npy_bytes(value))


def _weight_of(arrays: dict[str, np.ndarray], origin: str) -> str:
    manifest = json.loads(bytes(arrays["__manifest__"]).decode())
    node = next(n for n in manifest["nodes"] if n["origin"] == origin and "weight" in n["attrs"])
    return node["attrs"]["weight"]["tensor"]


def deep_manifest(path: Path) -> None:
    """A manifest of arrays nested 100,000 deep (json.loads runs out of stack)."""
    text = ("[" * 100_000 + "]" * 100_000).encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(entry("__manifest__.npy", z.compression), npy_bytes(np.frombuffer(text,
                                                                                 np.uint8)))


# ---------------------------------------------------------------- input arrays


def huge_header(path: Path) -> None:
    """A .npy whose header declares 10^12 float64 values; 16 bytes of data follow."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False,
                                                  "shape": (10**6, 10**6)})
    path.write_bytes(header.getvalue() + bytes(16))


def npz_bomb(path: Path) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_BZIP2) as z:
        zeros_member(z, "x.npy", (BOMB // 8 - 16,), BOMB)


def main() -> None:
    for p in HERE.iterdir():
        if p.name not in ("make.py", ".gitattributes", "__pycache__"):
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    external(HERE / "traversal", {"fc1_weight": "../../../etc/hostname"})
    external(HERE / "absolute", {"fc1_weight": "/etc/passwd", "fc2_weight": "/etc/passwd"})
    symlink_out(HERE / "symlink")
    short_data(HERE / "short-data")
    tensor_size(HERE / "tensor-size.onnx")
    fold_bomb(HERE / "constant-of-shape.onnx", "ConstantOfShape", [10**11])
    fold_bomb(HERE / "expand.onnx", "Expand", [10**8, 4])
    arrays = good_snn()
    snn_with(HERE / "bomb.snn", arrays, _weight_of(arrays, "fc1"), (BOMB // 8 - 16,), BOMB)
    snn_with(HERE / "inflated.snn", arrays, _weight_of(arrays, "fc1"), (4, 8), 10 << 20)
    snn_manifest_disagrees(HERE / "manifest.snn", arrays)
    deep_manifest(HERE / "deep.snn")
    np.save(HERE / "object.npy", np.array([{"a": 1}] * 4, dtype=object), allow_pickle=True)
    (HERE / "pickle.npy").write_bytes(pickle.dumps(np.zeros((2, 4))))
    huge_header(HERE / "huge-header.npy")
    npz_bomb(HERE / "bomb.npz")


if __name__ == "__main__":
    main()
