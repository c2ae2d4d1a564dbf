"""Write a Project as files: jinja2 templates for the code, plain text for tb_data/."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import jinja2
import numpy as np

from snncc.backends.common import Golden, decimal_cells, write_int_lines
from snncc.backends.hls.design import Project

PART = "xcvu9p-flga2104-2L-e"  # the default part of build_prj.tcl (a Virtex UltraScale+)
CLOCK_PERIOD_NS = 5.0
_WRAP = 96  # characters per line of a constant array
_INLINE = 48  # a 1-D array this short (as text) stays on its declaration's line


def c_dims(values: np.ndarray) -> str:
    """'[4][3][3]' for a [4, 3, 3] array."""
    return "".join(f"[{d}]" for d in np.shape(values))


def c_init(values: np.ndarray, indent: int = 0) -> str:
    """A C brace initializer of an integer (or bool) array, wrapped and indented: as many
    items a line as fit the widest of them (so the columns line up)."""
    values = np.asarray(values)
    if values.ndim == 0 or values.size == 0:
        return _c_init_empty(values, indent)
    leaf = indent + 4 * (values.ndim - 1)
    rows = _leaf_inits(values.reshape(-1, values.shape[-1]), leaf)
    for d in reversed(range(values.ndim - 1)):  # brace the rows of each outer dimension
        pad, k = " " * (indent + 4 * d + 4), values.shape[d]
        close = "\n" + " " * (indent + 4 * d) + "}"
        rows = ["{\n" + ",\n".join(pad + r for r in rows[i:i + k]) + close
                for i in range(0, len(rows), k)]
    return rows[0]


def _leaf_inits(rows: np.ndarray, indent: int) -> list[str]:
    """`c_init` of every row of rows [r, m] (m > 0) at `indent`, formatted at numpy speed:
    each item a fixed-width cell (its literal, then what follows it: ", ", a line break,
    or nothing at a row's end), NUL-padded; the NULs then squeezed out and the pad put
    after each line break."""
    pad = " " * (indent + 4)
    cells, size = _literals(rows)  # [r, m, width + 2], [r, m]
    inline = size.sum(1) + 2 * (rows.shape[1] - 1) <= _INLINE
    per = np.maximum(1, (_WRAP - len(pad) + 1) // (size.max(1) + 2))
    after = np.where(~inline[:, None]
                     & (np.arange(1, rows.shape[1] + 1) % per[:, None] == 0), 2, 1)
    after[:, -1] = 0  # 0: the row's end, 1: ", ", 2: ",\n" and the pad
    cells[..., -2] = np.array([0, ord(","), ord(",")], np.uint8)[after]
    cells[..., -1] = np.array([0, ord(" "), ord("\n")], np.uint8)[after]
    text = cells[cells != 0].tobytes().decode("ascii").replace("\n", "\n" + pad)
    ends = np.cumsum(size.sum(1) + np.array([0, 2, 2 + len(pad)])[after].sum(1)).tolist()
    close = "\n" + " " * indent + "}"
    return [("{" + text[a:b] + "}") if one else ("{\n" + pad + text[a:b] + close)
            for a, b, one in zip([0] + ends[:-1], ends, inline.tolist(), strict=True)]


def _literals(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`decimal_cells` of an integer array, true/false for a bool one; each with two
    bytes after it."""
    if values.dtype == np.bool_:
        table = np.frombuffer(b"false\0\0" + b"\0true\0\0", np.uint8).reshape(2, 7)
        return table[values.astype(np.intp)], np.where(values, 4, 5)
    return decimal_cells(values.astype(np.int64), 2)


def _c_init_empty(values: np.ndarray, indent: int) -> str:
    """`c_init` of an array of nothing (a 0-d array fails: it has no rows)."""
    if values.ndim == 1:
        return "{}"
    inner = [" " * (indent + 4) + _c_init_empty(sub, indent + 4) for sub in values]
    return "{\n" + ",\n".join(inner) + "\n" + " " * indent + "}"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("snncc", "templates/hls"),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             trim_blocks=True, lstrip_blocks=True, autoescape=False)
    env.filters["c_dims"] = c_dims
    env.filters["c_init"] = c_init
    env.filters["c_str"] = c_str
    return env


def c_str(text: str) -> str:
    """A C string literal's contents: backslashes and quotes escaped."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _guard(*parts: str) -> str:
    return "_".join(p.upper() for p in parts) + "_H_"


def render(p: Project, input_shape: tuple[int, ...], output_shape: tuple[int, ...]
           ) -> dict[str, str]:
    """Every source file of the project: relative path -> text."""
    env = _environment()
    files = {
        f"firmware/{p.model}.h": env.get_template("top.h.j2").render(
            p=p, guard=_guard(p.model), input_shape=list(input_shape),
            output_shape=list(output_shape)),
        f"firmware/{p.model}.cpp": env.get_template("top.cpp.j2").render(p=p),
        "firmware/snn_kernels.h": resources.files("snncc").joinpath(
            "templates/hls/snn_kernels.h").read_text(),
        f"{p.model}_test.cpp": env.get_template("test.cpp.j2").render(p=p),
        "build_prj.tcl": env.get_template("build_prj.tcl.j2").render(
            p=p, part=PART, clock_period=CLOCK_PERIOD_NS),
        "Makefile": env.get_template("Makefile.j2").render(p=p),
    }
    for header in p.headers:
        files[f"firmware/{header}"] = resources.files("snncc").joinpath(
            f"templates/hls/{header}").read_text()
    weights = env.get_template("weights.h.j2")
    for layer in p.layers:
        if layer.header:
            files[f"firmware/weights/{layer.header}.h"] = weights.render(
                layer=layer, guard=_guard("snncc", layer.header))
    return files


def write_tb_data(out_dir: Path, p: Project, gold: Golden) -> None:
    """The golden vectors under `out_dir`/tb_data: one input per line, integers
    separated by spaces."""
    n = len(gold.codes)
    counts = [gold.counts[layer["name"]].reshape(n, -1) for layer in p.neuron_table]
    folder = out_dir / "tb_data"
    folder.mkdir(parents=True, exist_ok=True)
    write_int_lines(folder / "tb_input_codes.dat", [gold.codes])
    write_int_lines(folder / "tb_spike_counts.dat", counts)
    write_int_lines(folder / "tb_output_logits.dat", [gold.logits])


def write(out_dir: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
