"""Make the Brevitas QCDQ exports tests/test_pt2e.py holds to onnxruntime (random weights,
seeded; exporter metadata stripped):

- ``perchannel_q4.onnx``: a CNN with per-channel 8-bit weight scales and 4-bit unsigned
  activations (QuantReLU, 15 levels: exact at -T 15);
- ``signed_q4.onnx``: a residual MLP whose stream is signed 4-bit (QuantIdentity with a
  signed quantizer, codes -8..7) read by 4-bit QuantReLUs. A signed quantizer feeding a
  linear layer directly is refused (its codes are no spike counts; see docs/errors.md);
- ``gap_head_q4.onnx`` and ``mean_head_q4.onnx``: a CNN whose head takes the mean over H
  and W of 4-bit codes, unquantized, into the classifier: ``nn.AdaptiveAvgPool2d(1)``
  (exported as GlobalAveragePool, then Flatten) and ``x.mean(dim=(2, 3))`` (ReduceMean).

    python tests/data/brevitas/generate.py
"""

import warnings
from pathlib import Path

import brevitas.nn as qnn
import onnx
import torch
from brevitas.export import export_onnx_qcdq
from brevitas.quant import (
    Int8ActPerTensorFloat,
    Int8WeightPerChannelFloat,
    Int8WeightPerTensorFloat,
    Uint8ActPerTensorFloat,
)
from torch import nn

HERE = Path(__file__).resolve().parent


class PerChannelQ4(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp = qnn.QuantIdentity(act_quant=Uint8ActPerTensorFloat)
        self.conv1 = qnn.QuantConv2d(1, 6, 3, padding=1, bias=False,
                                     weight_quant=Int8WeightPerChannelFloat)
        self.act1 = qnn.QuantReLU(act_quant=Uint8ActPerTensorFloat, bit_width=4)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = qnn.QuantConv2d(6, 8, 3, padding=1, bias=False,
                                     weight_quant=Int8WeightPerChannelFloat)
        self.act2 = qnn.QuantReLU(act_quant=Uint8ActPerTensorFloat, bit_width=4)
        self.head = qnn.QuantLinear(32, 10, bias=True, weight_quant=Int8WeightPerChannelFloat)

    def forward(self, x):
        x = self.pool(self.act1(self.conv1(self.inp(x))))
        x = self.pool(self.act2(self.conv2(x)))
        return self.head(x.flatten(1))


class SignedQ4(nn.Module):
    """A residual MLP whose stream is quantized to signed 4-bit codes: h = S(fc1(z)),
    out = head(R(h + S(fc2(R(h))))), S signed (codes -8..7), R a 4-bit QuantReLU."""

    def __init__(self):
        super().__init__()
        self.inp = qnn.QuantIdentity(act_quant=Uint8ActPerTensorFloat)
        self.fc1 = qnn.QuantLinear(16, 12, bias=False, weight_quant=Int8WeightPerTensorFloat)
        self.signed1 = qnn.QuantIdentity(act_quant=Int8ActPerTensorFloat, bit_width=4)
        self.act1 = qnn.QuantReLU(act_quant=Uint8ActPerTensorFloat, bit_width=4)
        self.fc2 = qnn.QuantLinear(12, 12, bias=False, weight_quant=Int8WeightPerTensorFloat)
        self.signed2 = qnn.QuantIdentity(act_quant=Int8ActPerTensorFloat, bit_width=4)
        self.act2 = qnn.QuantReLU(act_quant=Uint8ActPerTensorFloat, bit_width=4)
        self.head = qnn.QuantLinear(12, 10, bias=True, weight_quant=Int8WeightPerTensorFloat)

    def forward(self, x):
        h = self.signed1(self.fc1(self.inp(x)))
        h = h + self.signed2(self.fc2(self.act1(h)))
        return self.head(self.act2(h))


class MeanHead(nn.Module):
    """conv3x3(6) -> 4-bit ReLU -> maxpool 2 -> conv3x3(8) -> 4-bit ReLU -> mean over H, W
    -> linear(10): the mean is not quantized again before the head."""

    def __init__(self, pool: bool):
        super().__init__()
        self.inp = qnn.QuantIdentity(act_quant=Uint8ActPerTensorFloat)
        self.conv1 = qnn.QuantConv2d(1, 6, 3, padding=1, bias=True,
                                     weight_quant=Int8WeightPerChannelFloat)
        self.act1 = qnn.QuantReLU(act_quant=Uint8ActPerTensorFloat, bit_width=4)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = qnn.QuantConv2d(6, 8, 3, padding=1, bias=True,
                                     weight_quant=Int8WeightPerChannelFloat)
        self.act2 = qnn.QuantReLU(act_quant=Uint8ActPerTensorFloat, bit_width=4)
        self.mean = nn.AdaptiveAvgPool2d(1) if pool else None
        self.head = qnn.QuantLinear(8, 10, bias=True, weight_quant=Int8WeightPerChannelFloat)

    def forward(self, x):
        x = self.act2(self.conv2(self.pool(self.act1(self.conv1(self.inp(x))))))
        x = self.mean(x).flatten(1) if self.mean is not None else x.mean(dim=(2, 3))
        return self.head(x)


def calibrate(model: nn.Module, shape: tuple[int, ...]) -> None:
    """Let the activation quantizers collect their ranges on random inputs."""
    model.train()
    with torch.no_grad():
        for _ in range(8):
            model(torch.rand(16, *shape))
    model.eval()


def strip(model: onnx.ModelProto) -> None:
    model.doc_string = ""
    del model.metadata_props[:]
    for proto in [model.graph, *model.graph.node, *model.graph.input, *model.graph.output,
                  *model.graph.value_info, *model.graph.initializer]:
        proto.doc_string = ""
        del proto.metadata_props[:]


def export(model: nn.Module, shape: tuple[int, ...], name: str) -> None:
    calibrate(model, shape)
    path = HERE / name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_onnx_qcdq(model, args=torch.zeros(1, *shape), export_path=str(path),
                         opset_version=17, dynamo=False, input_names=["x"],
                         output_names=["logits"])
    m = onnx.load(path)
    strip(m)
    onnx.save(m, path)
    onnx.checker.check_model(str(path), full_check=True)
    print(path, sorted({n.op_type for n in m.graph.node}))


def main() -> None:
    torch.manual_seed(0)
    export(PerChannelQ4(), (1, 8, 8), "perchannel_q4.onnx")
    export(SignedQ4(), (16,), "signed_q4.onnx")
    export(MeanHead(pool=True), (1, 8, 8), "gap_head_q4.onnx")
    export(MeanHead(pool=False), (1, 8, 8), "mean_head_q4.onnx")


if __name__ == "__main__":
    main()
