"""Make pt2e_cnn.onnx: a small CNN quantized by PyTorch 2 export quantization (PT2E) with
the XNNPACK quantizer (8-bit: per-channel symmetric int8 weights, int8 activations with
the ReLU fused into the quantizer before it), exported to ONNX by the torch exporter
(dynamo), exporter metadata stripped. tests/test_pt2e.py compiles it and holds it to
onnxruntime.

    pip install -e '.[train]'    # torch 2.13.0 and torchao 0.18.0 (PT2E and the XNNPACK
    python tests/data/pt2e/generate.py  # quantizer left torch.ao for torchao)

With torch 2.13.0+cpu and torchao 0.18.0 it writes the committed file byte for byte.
"""

from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn
from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
from torchao.testing.pt2e._xnnpack_quantizer import (
    XNNPACKQuantizer,
    get_symmetric_quantization_config,
)

HERE = Path(__file__).resolve().parent


class SmallCNN(nn.Module):
    """x [1, 1, 8, 8] -> conv3x3(8) -> ReLU -> maxpool 2 -> conv3x3(12) -> ReLU -> mean over
    the 4x4 map -> linear(10)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 12, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Linear(12, 10)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv1(x)))
        x = torch.relu(self.conv2(x))
        return self.head(x.mean(dim=(2, 3)))


def strip(model: onnx.ModelProto) -> None:
    """Drop doc strings and metadata (stack traces, source locations)."""
    model.doc_string = ""
    del model.metadata_props[:]
    for proto in [model.graph, *model.graph.node, *model.graph.input, *model.graph.output,
                  *model.graph.value_info, *model.graph.initializer]:
        proto.doc_string = ""
        del proto.metadata_props[:]


def main() -> None:
    torch.manual_seed(0)
    model = SmallCNN().eval()
    example = (torch.zeros(1, 1, 8, 8),)
    graph = torch.export.export(model, example).module()
    quantizer = XNNPACKQuantizer().set_global(
        get_symmetric_quantization_config(is_per_channel=True))
    prepared = prepare_pt2e(graph, quantizer)
    rng = np.random.default_rng(0)
    for _ in range(32):  # calibration: random images
        prepared(torch.from_numpy(rng.uniform(0, 1, (1, 1, 8, 8)).astype(np.float32)))
    converted = convert_pt2e(prepared)
    path = HERE / "pt2e_cnn.onnx"
    torch.onnx.export(converted, example, str(path), dynamo=True, input_names=["x"],
                      output_names=["logits"], opset_version=18)
    m = onnx.load(path)  # the weights, if the exporter wrote them beside it, back inside
    strip(m)
    Path(f"{path}.data").unlink(missing_ok=True)
    onnx.save(m, path, save_as_external_data=False)
    onnx.checker.check_model(str(path), full_check=True)
    print(path, sorted({n.op_type for n in m.graph.node}))


if __name__ == "__main__":
    main()
