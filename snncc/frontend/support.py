"""Which ONNX ops snncc takes, and what to do about the ones it refuses.

The README's supported-ops table is generated from the handlers' own lines (and a test
keeps it in sync): ``make docs`` rewrites it (``write_readme``).
"""

from __future__ import annotations

from snncc.frontend import handlers, quantizers
from snncc.frontend.folding import FOLDED_ONLY
from snncc.frontend.qoperator import QOPERATOR_BECOMES, QOPERATOR_KERNELS
from snncc.frontend.registry import Handler

# op type (ONNX's default domain) -> its handler
HANDLERS: dict[str, Handler] = {**handlers.TABLE, **quantizers.TABLE}
# op type (a QONNX domain) -> its handler
QONNX_HANDLERS: dict[str, Handler] = dict(quantizers.QONNX)

# op type -> how it is mapped: the handlers' lines, the ops only ever folded, and
# onnxruntime's QOperator kernels (rewritten to QDQ before the import)
SUPPORTED: dict[str, str] = {
    **{op: h.becomes for op, h in (HANDLERS | QONNX_HANDLERS).items()},
    **FOLDED_ONLY,
    **{op: QOPERATOR_BECOMES for op in QOPERATOR_KERNELS},
}

# op type -> (why it cannot be spiked, the rewrite that fixes it)
UNSPIKEABLE: dict[str, tuple[str, str]] = {
    "LayerNormalization": ("normalizes by a per-token statistic, which needs division at run time",
                           "replace LayerNorm with BatchNorm after the Linear and retrain"),
    "Gelu": ("is a smooth non-linearity with no spike-count equivalent",
             "replace GELU with ReLU followed by a quantizer and retrain"),
    "Erf": ("is part of an exact GELU, a smooth non-linearity",
            "replace GELU with ReLU followed by a quantizer and retrain"),
    "Exp": ("needs exponentiation at run time",
            "replace softmax with NReLU (ReLU(x)/N) and retrain"),
    "Tanh": ("is a smooth non-linearity", "replace it with a quantized ReLU and retrain"),
    "Sigmoid": ("is a smooth non-linearity", "replace it with a quantized ReLU and retrain"),
    "HardSwish": ("multiplies an activation by itself", "use a quantized ReLU and retrain"),
    "Sqrt": ("needs a square root at run time", "fold it into constants or remove it"),
    "Pow": ("raises an activation to a power", "remove it; spike counts only add"),
    "ReduceMax": ("takes a maximum over an activation that is not a pooling window",
                  "use MaxPool on quantized activations"),
    "Softmax": ("needs exponentiation and division at run time",
                "train with NReLU (ReLU(x)/N), or pass --replace-softmax to swap it in "
                "(accuracy changes unless the model was trained with NReLU)"),
}

_QOPERATOR = ("is onnxruntime's QOperator format with a requantization per input, which "
              "snncc does not read")
_TO_QDQ = ("quantize with quantize_static(..., quant_format=QuantFormat.QDQ): the same "
           "quantization as QuantizeLinear/DequantizeLinear pairs, which snncc reads exactly")
_DYNAMIC = ("is dynamic quantization: the activation's scale is computed from each input at "
            "run time, and a neuron's thresholds must be fixed at compile time")
_TO_STATIC = ("quantize statically with calibration data: quantize_static(..., "
              "quant_format=QuantFormat.QDQ)")
UNSPIKEABLE.update({
    "QLinearConcat": (_QOPERATOR, _TO_QDQ),
    "QLinearLeakyRelu": ("passes negative values on (a signed activation)",
                         "use ReLU followed by a quantizer and retrain"),
    "QLinearSigmoid": ("is a smooth non-linearity", "replace it with a quantized ReLU and retrain"),
})
UNSPIKEABLE.update({op: (_DYNAMIC, _TO_STATIC) for op in (
    "MatMulInteger", "ConvInteger", "DynamicQuantizeLinear")})


def markdown_table() -> str:
    """The supported-ops table as it appears in the README."""
    rows = ["| ONNX op | becomes |", "|---|---|"]
    rows += [f"| {op} | {how} |" for op, how in sorted(SUPPORTED.items())]
    rows += ["", "| refused op | why | fix |", "|---|---|---|"]
    rows += [f"| {op} | {why} | {fix} |" for op, (why, fix) in sorted(UNSPIKEABLE.items())]
    return "\n".join(rows)


START, END = "<!-- ops-table -->\n", "\n<!-- /ops-table -->"


def readme_table(text: str) -> str:
    """The ops table between the README's markers."""
    return text[text.index(START) + len(START):text.index(END)]


def write_readme(path: str = "README.md") -> None:
    """Rewrite the README's ops table from the code (``make docs``)."""
    from pathlib import Path

    readme = Path(path)
    text = readme.read_text()
    readme.write_text(text.replace(START + readme_table(text) + END,
                                   START + markdown_table() + END))


if __name__ == "__main__":
    print(markdown_table())
