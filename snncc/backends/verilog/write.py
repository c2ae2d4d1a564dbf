"""Write a lowered design as files: RTL, memory images, testbench, Makefile, Yosys script.

The jinja2 templates (``snncc/templates/verilog/``) only format; every number and name
they print is computed in `lower.py`. The engine library (``rtl/*.v``) is copied as is.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import resources
from pathlib import Path

import jinja2
import numpy as np

from snncc import ops as o
from snncc.backends.common import Golden
from snncc.version import __version__

from .design import Design, addr_bits, hex_text, op_of

TOP = "rtl/snn_top.v"
TESTBENCH = "tb/snn_tb.v"
PLACES = "tb/places.hex"
VECTORS = "tb/vectors"


def _library() -> resources.abc.Traversable:
    return resources.files("snncc") / "templates" / "verilog" / "rtl"


def library_files() -> list[str]:
    """The engine library, as paths under verilog/ (sorted: a stable file list)."""
    return sorted(f"rtl/{f.name}" for f in _library().iterdir() if f.name.endswith(".v"))


def _vparam(value: int | str) -> str:
    return f'"{value}"' if isinstance(value, str) else str(int(value))


def _zext(net: str, bits: int, width: int) -> str:
    """`net` (of `bits` bits) zero-extended to `width` bits, as a Verilog expression."""
    return net if bits == width else f"{{{{{width - bits}{{1'b0}}}}, {net}}}"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("snncc", "templates/verilog"),
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
    env.filters["vparam"] = _vparam
    env.filters["zext"] = _zext
    return env


def _context(d: Design) -> dict:
    enc = d.input_buffer.node
    meta = d.graph.meta
    return {
        "d": d, "version": __version__, "source": meta.get("source", d.graph.name),
        "T": meta.get("T", "?"), "delay": meta.get("delay", "exact"),
        "inb": d.input_buffer, "n_in": d.input_buffer.layout.size,
        "in_shape": ",".join(map(str, enc.shape)),
        "in_lane_bits": addr_bits(d.input_buffer.lanes),
        "out_row_bits": addr_bits(d.readout_layout.rows),
        "out_lane_bits": addr_bits(d.readout_layout.lanes),
        "neurons": sum(p.neurons for p in d.probes),
        "kinds": sorted({op_of(n, o.Neuron).mode for n in d.graph.ops(o.Neuron)}) or ["if"],
        # the controller: one for the whole design, or pipelined a sequencer per engine
        "rtl": [TOP] + [f for f in library_files()
                        if f != ("rtl/snn_ctrl.v" if d.pipelined else "rtl/snn_flow.v")],
    }


def _places(d: Design) -> list[np.ndarray]:
    """(row, lane) of every probed neuron, layer after layer, in logical order: the text,
    a probe at a time."""
    lane_bits, bits = d.probe_lane_bits, d.probe_row_bits + d.probe_lane_bits
    parts = []
    for p in d.probes:
        places = p.places().astype(np.int64)
        parts.append(hex_text((places[:, 0] << lane_bits) | places[:, 1], bits))
    return parts if sum(t.size for t in parts) else [np.frombuffer(b"\n", np.uint8)]


def _write_parts(path: Path, parts: Iterable[np.ndarray]) -> None:
    """The byte arrays one after the other into `path` (no copy of the whole)."""
    with open(path, "wb") as f:
        for part in parts:
            f.write(part.data)


def write_design(d: Design, out: Path) -> list[str]:
    """Write every file of the design under `out`; returns their paths relative to it."""
    env = _environment()
    context = _context(d)
    texts = {
        TOP: env.get_template("snn_top.v.j2").render(context),
        TESTBENCH: env.get_template("snn_tb.v.j2").render(context),
        "Makefile": env.get_template("Makefile.j2").render(context),
        "synth/synth.ys": env.get_template("synth.ys.j2").render(context),
        "synth/xilinx.ys": env.get_template("xilinx.ys.j2").render(context),
        "synth/hierarchy.ys": env.get_template("hierarchy.ys.j2").render(context),
        **({"mem/schedule.hex": "\n".join(d.schedule) + "\n"} if d.schedule else {}),
        **d.files,
    }
    for path in library_files():
        texts[path] = (_library() / Path(path).name).read_text()
    for path, text in texts.items():
        (out / path).parent.mkdir(parents=True, exist_ok=True)
        (out / path).write_text(text)
    _write_parts(out / PLACES, _places(d))
    return sorted([*texts, PLACES])


def write_vectors(d: Design, gold: Golden, out: Path) -> int:
    """The testbench's golden vectors (from the interpreter) under `out`/tb/vectors:
    input codes and logits in logical order, spike counts layer after layer in logical
    order (tb/places.hex says where each neuron sits)."""
    folder = out / VECTORS
    folder.mkdir(parents=True, exist_ok=True)
    n = len(gold.codes)
    counts = [np.asarray(gold.counts[p.node.name]).reshape(n, -1) for p in d.probes]
    (folder / "count.txt").write_text(f"{n}\n")
    _write_parts(folder / "codes.hex", [hex_text(gold.codes, d.code_bits)])
    _write_parts(folder / "counts.hex", (hex_text(c[r], d.count_bits)  # input by input
                                         for r in range(n) for c in counts))
    _write_parts(folder / "logits.hex", [hex_text(np.asarray(gold.logits), d.logit_bits)])
    return n


def engine_lanes(module: str, p: dict) -> int | None:
    """The lanes per cycle of an engine the parallelism knob sets (None for the others):
    a synapse's output lanes, a neuron layer's neurons, a TD-MatMul's summed terms (all K
    of an output row, or one event)."""
    if module == "snn_dense":
        return int(p.get("P", p["M"]))
    if module in ("snn_conv", "snn_conv_rows"):
        return int(p.get("P", p["O"]))
    if module == "snn_neuron":
        return int(p.get("NP", p["D"]))
    if module == "snn_td_matmul_rows":
        return int(p["K"])
    if module == "snn_td_matmul":
        return 1
    return None


def summary(d: Design, files: list[str]) -> dict:
    """What report.json records about the emitted design."""
    layers = []
    for e in d.engines:
        params = {k: v for k, v in e.params if not isinstance(v, str)}
        lanes = engine_lanes(e.module, params)
        layers.append({"engine": e.name, "module": e.module, "node": e.node.name,
                       "origin": e.node.origin, "params": params}
                      | ({"lanes": lanes} if lanes is not None else {}))
    buffers = [{"name": b.name, "node": b.node.name, "rows": b.rows, "lanes": b.lanes,
                "bits": b.width} for b in d.buffers]
    enc = d.input_buffer.node
    return {
        "top": "snn_top", "files": files, "steps": d.steps, "engines": len(d.engines),
        **({"pipeline": {"levels": max(d.levels, default=0) + 1, "in_flight": d.in_flight,
                         "banks": {b.name: [c.banks for c in b.copies]
                                   for b in d.buffers if b.copies}}}
           if d.pipelined else {}),
        "layers": layers, "buffers": buffers,
        "buffer_bits": sum(b.rows * b.word * (sum(c.banks for c in b.copies) if d.pipelined
                                              else 1 + len(b.twins)) for b in d.buffers),
        "ports": {"identity": sum(p.params[0][1] == 0 for p in d.ports),
                  "mapped": sum(p.params[0][1] != 0 for p in d.ports)},
        "input": {"codes": d.input_buffer.layout.size, "bits": d.code_bits,
                  "spiking": d.input_spiking, "shape": list(enc.shape)},
        "logits": {"count": d.logits, "bits": d.logit_bits},
        "probes": [p.node.name for p in d.probes],  # IR nodes, in the order of LAYER lines
        "probe_layers": [p.name for p in d.probes],
        "analog_first_layer": any(isinstance(e.node.op, o.Synapse) and e.node.op.analog
                                  for e in d.engines),
    }
