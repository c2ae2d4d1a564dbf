"""Write a Project as files: jinja2 templates for the code, plain text for tb_data/."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import jinja2
import numpy as np

from snncc.backends.common import Golden, int_lines
from snncc.backends.hls.design import Project

PART = "xcvu9p-flga2104-2L-e"  # the default part of build_prj.tcl (a Virtex UltraScale+)
CLOCK_PERIOD_NS = 5.0
_WRAP = 96  # characters per line of a constant array
_INLINE = 48  # a 1-D array this short (as text) stays on its declaration's line


def c_dims(values: np.ndarray) -> str:
    """'[4][3][3]' for a [4, 3, 3] array."""
    return "".join(f"[{d}]" for d in np.shape(values))


def _literals(values: np.ndarray) -> list[str]:
    """C literals of a 1-D integer or bool array."""
    if values.dtype == np.bool_:
        return ["true" if v else "false" for v in values.tolist()]
    return list(map(str, values.astype(np.int64).tolist()))


def c_init(values: np.ndarray, indent: int = 0) -> str:
    """A C brace initializer of an integer (or bool) array, wrapped and indented: as many
    items a line as fit the widest of them (so the columns line up)."""
    values = np.asarray(values)
    pad = " " * (indent + 4)
    if values.ndim == 1:
        items = _literals(values)
        text = ", ".join(items)
        if len(text) <= _INLINE:
            return "{" + text + "}"
        width = max(map(len, items)) + 2
        per = max(1, (_WRAP - len(pad) + 1) // width)
        lines = [pad + ", ".join(items[k:k + per]) for k in range(0, len(items), per)]
        return "{\n" + ",\n".join(lines) + "\n" + " " * indent + "}"
    inner = [pad + c_init(sub, indent + 4) for sub in values]
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


def tb_data(p: Project, gold: Golden) -> dict[str, bytes]:
    """The golden vectors: one input per line, integers separated by spaces."""
    n = len(gold.codes)
    counts = [gold.counts[layer["name"]].reshape(n, -1) for layer in p.neuron_table]
    return {"tb_data/tb_input_codes.dat": int_lines([gold.codes]),
            "tb_data/tb_spike_counts.dat": int_lines(counts),
            "tb_data/tb_output_logits.dat": int_lines([gold.logits])}


def write(out_dir: Path, files: dict[str, str] | dict[str, bytes]) -> None:
    for rel, text in files.items():
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
