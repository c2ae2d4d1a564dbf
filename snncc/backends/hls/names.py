"""C identifiers for the emitted code, from IR node names."""

from __future__ import annotations

import re

# C++ keywords (and main, the testbench's) that a model or layer may be named after
_RESERVED = frozenset((
    "alignas", "alignof", "and", "and_eq", "asm", "auto", "bitand", "bitor", "bool", "break",
    "case", "catch", "char", "char8_t", "char16_t", "char32_t", "class", "compl", "concept",
    "const", "consteval", "constexpr", "constinit", "const_cast", "continue", "co_await",
    "co_return", "co_yield", "decltype", "default", "delete", "do", "double", "dynamic_cast",
    "else", "enum", "explicit", "export", "extern", "false", "float", "for", "friend", "goto",
    "if", "inline", "int", "long", "main", "mutable", "namespace", "new", "noexcept", "not",
    "not_eq", "nullptr", "operator", "or", "or_eq", "private", "protected", "public",
    "register", "reinterpret_cast", "requires", "return", "short", "signed", "sizeof",
    "static", "static_assert", "static_cast", "struct", "switch", "template", "this",
    "thread_local", "throw", "true", "try", "typedef", "typeid", "typename", "union",
    "unsigned", "using", "virtual", "void", "volatile", "wchar_t", "while", "xor", "xor_eq"
))


def c_ident(name: str) -> str:
    """A C identifier from an IR name ('/blocks.0/attn/MatMul' -> 'blocks_0_attn_MatMul');
    never a C++ keyword ('signed' -> 'signed_')."""
    ident = re.sub(r"_+", "_", re.sub(r"[^0-9A-Za-z_]", "_", name)).strip("_")
    ident = ident if ident and not ident[0].isdigit() else f"n_{ident}"
    return f"{ident}_" if ident in _RESERVED else ident


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
