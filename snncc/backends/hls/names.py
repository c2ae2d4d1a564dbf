"""C identifiers for the emitted code, from IR node names."""

from __future__ import annotations

import re


def c_ident(name: str) -> str:
    """A C identifier from an IR name ('/blocks.0/attn/MatMul' -> 'blocks_0_attn_MatMul')."""
    ident = re.sub(r"_+", "_", re.sub(r"[^0-9A-Za-z_]", "_", name)).strip("_")
    return ident if ident and not ident[0].isdigit() else f"n_{ident}"


_NOISE = {"act_quant", "export_handler"}  # exporter scaffolding in Brevitas node names
_QUANTIZERS = {"DequantizeLinear", "QuantizeLinear", "Quant", "IntQuant"}


def short_ident(name: str) -> str:
    """A readable C identifier from an IR node name; the full name stays in comments.

    '/blocks/blocks.0/attn/q_act/act_quant/export_handler/DequantizeLinear_output_0'
    -> 'blocks_0_attn_q_act': drops exporter scaffolding, '_output_N' suffixes, a module
    list before its item ('blocks' before 'blocks.0'), an op name repeated after its own
    node ('MatMul_1/MatMul'), and the quantizer op a neuron came from.
    """
    parts = [re.sub(r"_output_\d+$", "", p) for p in name.split("/") if p]
    parts = [p for p in parts if p not in _NOISE]
    keep: list[str] = []
    for i, p in enumerate(parts):
        if i + 1 < len(parts) and parts[i + 1].startswith(p + "."):
            continue
        if keep and re.fullmatch(re.escape(p) + r"(_\d+)?", keep[-1]):
            continue
        keep.append(p)
    named = [p for p in keep if p not in _QUANTIZERS]
    return c_ident("_".join(named or keep))
