"""Which ONNX ops snncc takes, and what to do about the ones it refuses.

The README's supported-ops table is generated from this module (and a test keeps it in
sync): ``python -m snncc.frontend.support``.
"""

from __future__ import annotations

# op type -> how it is mapped
SUPPORTED: dict[str, str] = {
    "Conv": "spike-driven convolution (the first layer may multiply analog input codes)",
    "Gemm": "MatMul by a constant + bias",
    "MatMul": "by a constant: spike-driven linear; of two activations: TD-MatMul",
    "Add": "bias (constant) or residual add of currents",
    "Sub": "by a constant: bias; of two activations: current difference",
    "Mul": "by a constant: folded into the next threshold",
    "Div": "by a constant: folded into the next threshold",
    "BatchNormalization": "folded into weights or per-channel thresholds",
    "Relu": "absorbed by the following unsigned quantizer",
    "Clip": "between QuantizeLinear and DequantizeLinear (quantizer range), min=0: ReLU, "
            "or (0, top) before QuantizeLinear: the quantizer's top code",
    "MaxPool": "TD-MaxPool on spike counts",
    "AveragePool": "sum pool (spike-driven) + 1/k folded into the threshold",
    "GlobalAveragePool": "spike sum + 1/n folded into the next layer",
    "ReduceMean": "spike sum + 1/n folded into the next layer",
    "ReduceSum": "spike sum",
    "Reshape": "rewiring", "Transpose": "rewiring", "Flatten": "rewiring",
    "Squeeze": "rewiring", "Unsqueeze": "rewiring", "Split": "rewiring",
    "Slice": "rewiring", "Concat": "rewiring", "Gather": "rewiring (constant indices)",
    "Identity": "removed", "Dropout": "removed", "Constant": "folded",
    "Shape": "folded (static shapes)", "Cast": "folded on constants; float->float removed",
    "ConstantOfShape": "folded", "Range": "folded", "Expand": "folded on constants",
    "Softmax": "refused, or NReLU with --replace-softmax (see softmax-to-nrelu)",
    "QuantizeLinear": "with DequantizeLinear: a quantizer (QCDQ, onnxruntime's QDQ)",
    "DequantizeLinear": "with QuantizeLinear: a quantizer; of a constant: quantized weights, "
                        "biases or BN parameters",
    "Quant": "QONNX quantizer (activations and weights)",
    "IntQuant": "QONNX quantizer (activations and weights)",
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
SUPPORTED.update({op: "onnxruntime's QOperator kernel, read as DequantizeLinear -> op -> "
                      "QuantizeLinear (what it computes)" for op in (
    "QLinearConv", "QLinearMatMul", "QLinearAdd", "QLinearMul", "QLinearGlobalAveragePool",
    "QLinearAveragePool", "QGemm")})
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


if __name__ == "__main__":
    print(markdown_table())
