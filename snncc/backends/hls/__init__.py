"""The HLS C++ backend: a Vitis HLS project in the layout hls4ml users know.

``check(graph)`` lists what cannot be emitted; ``emit(graph, out_dir)`` writes
``firmware/`` (the top function, ``snn_kernels.h``, ``weights/``), the C++ testbench with
``tb_data/`` golden vectors from the interpreter, ``build_prj.tcl`` and a ``Makefile``
whose ``csim`` target builds and runs the testbench with plain g++.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from snncc import ops as o
from snncc.backends.common import default_inputs, golden
from snncc.backends.hls.check import check
from snncc.backends.hls.layers import lower
from snncc.backends.hls.write import render, write, write_tb_data
from snncc.backends.parallel import HwConfig
from snncc.errors import raise_if
from snncc.ir import Graph

__all__ = ["check", "emit", "N_TEST_INPUTS", "NEURON_MODES"]

N_TEST_INPUTS = 20  # golden vectors written to tb_data/
NEURON_MODES = ("if", "signed", "multi")  # unit spikes, ±1 spikes, numbers on weighted lines


def emit(graph: Graph, out_dir: Path, inputs: np.ndarray | None = None,
         hw: HwConfig | None = None) -> dict:
    """Write the HLS project into `out_dir`; returns a summary for report.json.

    `inputs` (float, batch first) are the testbench's inputs; by default
    N_TEST_INPUTS deterministic inputs spread over the input quantizer's range. `hw`, the
    parallelism knob (`snncc.backends.parallel`), sets the unroll factors of the synapses'
    output loops and of the neuron layers' loops ("parallel" in the summary: each one's
    lanes by ONNX node, as the Verilog target's).
    """
    raise_if(check(graph))
    project = lower(graph, hw)
    x = default_inputs(graph, N_TEST_INPUTS) if inputs is None else np.asarray(inputs)
    (enc,) = graph.ops(o.SpikeInput)
    (ro,) = graph.ops(o.Readout)
    files = render(project, enc.shape, ro.shape)
    out_dir = Path(out_dir)
    write(out_dir, files)
    write_tb_data(out_dir, project, golden(graph, x))
    analog = [n.origin for n in graph.ops(o.Synapse) if n.op_as(o.Synapse).analog]
    return {
        "top": project.model,
        "steps": project.steps,
        "files": sorted(files),
        "test_inputs": len(x),
        "interface": {"codes": [project.typedefs["input_t"], project.input.size],
                      "logits": [project.typedefs["logit_t"], project.logits.size],
                      "spike_counts": [project.typedefs["count_t"], project.counts.size]},
        "spike_counts_layout": [
            {k: n[k] for k in ("layer", "name", "ident", "origin", "offset", "size")}
            for n in project.neuron_table],
        "kernel_calls": sum(len(layer.calls) for layer in project.layers),
        "parallel": {graph.node(k).origin: f for k, f in project.lanes.items()},
        "mac_layers": analog,
        "rom_bits": sum(_bits(c.ctype) * c.values.size
                        for layer in project.layers for c in layer.consts),
        "state_bits": sum(_bits(b.ctype) * b.size
                          for layer in project.layers for b in layer.state),
    }


def _bits(ctype: str) -> int:
    return 1 if ctype == "bool" else int(ctype.removeprefix("int").removesuffix("_t"))
