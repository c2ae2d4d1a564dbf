"""Train and export the bundled digits example: a tiny conversion-oriented transformer.

The model follows the CSDformer "tailored transformer": a convolutional tokenizer,
pre-activation blocks with BatchNorm after every linear layer, NReLU attention
``Q(ReLU(q @ k^T / (N * sqrt(d_h))))`` and no LayerNorm, GELU or softmax. In the
quantized models every activation is an unsigned 3-bit ReLU and every weight a signed
8-bit per-tensor integer.

It is trained on scikit-learn's bundled 8x8 digits. The plain-float twin (same graph,
no quantizers) is trained first; each Brevitas QAT variant (``--scales float`` and/or
``po2``) is then fine-tuned from the twin's weights. Every model is exported to ONNX,
exporter metadata is stripped, and every file is checked and run on the test split.

    python examples/digits_vit/train.py [--out DIR] [--epochs N] [--qat-epochs N]
                                        [--scales {float,po2} ...]
"""

import argparse
import math
import random
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import brevitas
import brevitas.nn as qnn
import numpy as np
import onnx
import onnxruntime as ort
import torch
from brevitas.export import export_onnx_qcdq, export_qonnx
from brevitas.quant import (
    Int8WeightPerTensorFixedPoint,
    Int8WeightPerTensorFloat,
    Uint8ActPerTensorFixedPoint,
    Uint8ActPerTensorFloat,
)
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.transformation.infer_shapes import InferShapes
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

SEED = 0
OPSET = 17
TOKENS = 16  # 4x4 feature map after the tokenizer
DIM = 32
HEADS = 2
HEAD_DIM = DIM // HEADS
MLP_HIDDEN = 64
CLASSES = 10
ACT_BITS = 3
CALIB_SIZE = 200
BATCH_SIZE = 32
EXTERNAL_DATA = "model.onnx.data"


# --------------------------------------------------------------------------- data


@dataclass
class Split:
    x: torch.Tensor  # float32 [n, 1, 8, 8], values in [0, 1]
    y: torch.Tensor  # int64 [n]


def load_data() -> tuple[Split, Split]:
    """Return the stratified (train, test) split of scikit-learn's digits."""
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    train = Split(torch.from_numpy(x_tr), torch.from_numpy(y_tr))
    return train, Split(torch.from_numpy(x_te), torch.from_numpy(y_te))


def save_data(out: Path, train: Split, test: Split) -> None:
    """Write the test split and the calibration set (the first training images)."""
    np.savez_compressed(out / "digits_test.npz", x=test.x.numpy(), y=test.y.numpy())
    np.savez_compressed(out / "digits_calib.npz", x=train.x[:CALIB_SIZE].numpy())


# --------------------------------------------------------------------------- layers


class FloatLayers:
    """Plain PyTorch building blocks: the float twin."""

    def input_quant(self) -> nn.Module:
        return nn.Identity()

    def conv(self, cin: int, cout: int, kernel: int, padding: int = 0) -> nn.Module:
        return nn.Conv2d(cin, cout, kernel, padding=padding, bias=False)

    def linear(self, fin: int, fout: int, bias: bool = False) -> nn.Module:
        return nn.Linear(fin, fout, bias=bias)

    def act(self) -> nn.Module:
        return nn.ReLU()


@dataclass(frozen=True)
class QuantLayers:
    """Brevitas building blocks with the given weight and activation quantizers.

    Quantizers return plain (dequantized) tensors, so matmuls, reshapes and the token
    mean see ordinary tensors; the exported quantize/dequantize nodes are the same.
    """

    weight_quant: type
    act_quant: type

    def input_quant(self) -> nn.Module:
        return qnn.QuantIdentity(act_quant=self.act_quant)  # unsigned 8-bit

    def conv(self, cin: int, cout: int, kernel: int, padding: int = 0) -> nn.Module:
        return qnn.QuantConv2d(
            cin, cout, kernel, padding=padding, bias=False, weight_quant=self.weight_quant
        )

    def linear(self, fin: int, fout: int, bias: bool = False) -> nn.Module:
        return qnn.QuantLinear(fin, fout, bias=bias, weight_quant=self.weight_quant)

    def act(self) -> nn.Module:
        return qnn.QuantReLU(act_quant=self.act_quant, bit_width=ACT_BITS)


Layers = FloatLayers | QuantLayers
LABELS = {"twin": "float twin", "float": "QAT, float scales", "po2": "QAT, po2 scales"}
QUANT_LAYERS = {
    "float": QuantLayers(Int8WeightPerTensorFloat, Uint8ActPerTensorFloat),
    "po2": QuantLayers(Int8WeightPerTensorFixedPoint, Uint8ActPerTensorFixedPoint),
}


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class Dims:
    """Sizes of the transformer blocks (the defaults are the digits model's)."""

    tokens: int = TOKENS
    dim: int = DIM
    heads: int = HEADS
    mlp_hidden: int = MLP_HIDDEN

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads


DIGITS = Dims()


class LinearBN(nn.Module):
    """Token-wise linear layer, then BatchNorm1d over channels, on [B, N, D]."""

    def __init__(self, layers: Layers, fin: int, fout: int):
        super().__init__()
        self.linear = layers.linear(fin, fout)
        self.bn = nn.BatchNorm1d(fout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.linear(x).transpose(1, 2)).transpose(1, 2)


def split_heads(x: torch.Tensor, dims: Dims = DIGITS) -> torch.Tensor:
    """[B, N, D] -> [B, heads, N, d_h]."""
    return x.reshape(-1, dims.tokens, dims.heads, dims.head_dim).transpose(1, 2)


def merge_heads(x: torch.Tensor, dims: Dims = DIGITS) -> torch.Tensor:
    """[B, heads, N, d_h] -> [B, N, D]."""
    return x.transpose(1, 2).reshape(-1, dims.tokens, dims.dim)


class Attention(nn.Module):
    """Multi-head NReLU attention on quantized, non-negative q, k and v."""

    def __init__(self, layers: Layers, dims: Dims = DIGITS):
        super().__init__()
        self.dims = dims
        self.q, self.k, self.v = (LinearBN(layers, dims.dim, dims.dim) for _ in range(3))
        self.q_act, self.k_act, self.v_act = (layers.act() for _ in range(3))
        self.attn_act = layers.act()
        self.out_act = layers.act()
        self.proj = LinearBN(layers, dims.dim, dims.dim)
        # NReLU: 1 / (N sqrt(d_h))
        self.attn_scale = 1.0 / (dims.tokens * math.sqrt(dims.head_dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        q = split_heads(self.q_act(self.q(z)), self.dims)
        k = split_heads(self.k_act(self.k(z)), self.dims)
        v = split_heads(self.v_act(self.v(z)), self.dims)
        a = self.attn_act(torch.matmul(q, k.transpose(-2, -1)) * self.attn_scale)
        o = self.out_act(torch.matmul(a, v))
        return self.proj(merge_heads(o, self.dims))


class Block(nn.Module):
    """Pre-activation transformer block; residuals stay on the real-valued stream."""

    def __init__(self, layers: Layers, dims: Dims = DIGITS):
        super().__init__()
        self.attn_in = layers.act()
        self.attn = Attention(layers, dims)
        self.mlp_in = layers.act()
        self.fc1 = LinearBN(layers, dims.dim, dims.mlp_hidden)
        self.mlp_act = layers.act()
        self.fc2 = LinearBN(layers, dims.mlp_hidden, dims.dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_in(x))
        return x + self.fc2(self.mlp_act(self.fc1(self.mlp_in(x))))


class DigitsViT(nn.Module):
    """Conv tokenizer -> 2 blocks -> ReLU, token mean, linear classifier."""

    def __init__(self, layers: Layers):
        super().__init__()
        self.input_quant = layers.input_quant()
        self.tokenizer = nn.Sequential(
            layers.conv(1, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            layers.act(),
            nn.MaxPool2d(2),  # 8x8 -> 4x4
            layers.conv(16, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            layers.act(),
            nn.MaxPool2d(3, stride=1, padding=1),
            layers.conv(32, DIM, 1),
            nn.BatchNorm2d(DIM),
        )
        self.blocks = nn.Sequential(Block(layers), Block(layers))
        self.head_act = layers.act()
        self.head = layers.linear(DIM, CLASSES, bias=True)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        x = self.tokenizer(self.input_quant(img)).flatten(2).transpose(1, 2)
        x = self.blocks(x)
        return self.head(self.head_act(x).mean(dim=1))


# --------------------------------------------------------------------------- training


def seed_everything() -> None:
    random.seed(SEED)
    np.random.seed(SEED)
    torch.manual_seed(SEED)


def fit(model: nn.Module, data: Split, epochs: int, lr: float) -> None:
    """Adam with a cosine schedule over seeded shuffles; leaves the model in eval mode."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * math.ceil(len(data.y) / BATCH_SIZE)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    gen = torch.Generator().manual_seed(SEED)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(data.y), generator=gen).split(BATCH_SIZE):
            loss = nn.functional.cross_entropy(model(data.x[idx]), data.y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()


def train_twin(data: Split, epochs: int) -> nn.Module:
    seed_everything()
    model = DigitsViT(FloatLayers())
    fit(model, data, epochs, lr=3e-3)
    return model


def train_quant(scales: str, twin: nn.Module, data: Split, epochs: int) -> nn.Module:
    """QAT fine-tuning from the twin; activation scales start from batch statistics."""
    seed_everything()
    model = DigitsViT(QUANT_LAYERS[scales])
    missing, unexpected = model.load_state_dict(twin.state_dict(), strict=False)
    assert not unexpected and all("quant" in key for key in missing), (missing, unexpected)
    fit(model, data, epochs, lr=1e-3)
    return model


@torch.no_grad()
def torch_logits(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    return model.eval()(x).numpy()


def accuracy(logits: np.ndarray, y: torch.Tensor) -> float:
    return float((logits.argmax(axis=1) == y.numpy()).mean())


# --------------------------------------------------------------------------- export


@dataclass(frozen=True)
class Export:
    path: str  # relative to the output folder
    model: str  # "twin", or the QAT variant's scales: "float" / "po2"
    kind: str  # "qcdq", "qonnx", "torchscript" or "dynamo"


EXPORTS = (
    Export("digits_vit_qcdq.onnx", "float", "qcdq"),
    Export("digits_vit_qonnx.onnx", "float", "qonnx"),
    Export("digits_vit_po2_qcdq.onnx", "po2", "qcdq"),
    Export("digits_vit_float.onnx", "twin", "torchscript"),
    Export("digits_vit_float_dynamo/model.onnx", "twin", "dynamo"),
)


def export_onnx(model: nn.Module, kind: str, path: Path) -> None:
    """Export with batch size 1; only the TorchScript twin gets a dynamic batch."""
    example = torch.zeros(1, 1, 8, 8)
    inputs, outputs = ["input"], ["logits"]
    if kind in ("qcdq", "qonnx"):
        export = export_onnx_qcdq if kind == "qcdq" else export_qonnx
        export(
            model,
            args=example,
            export_path=str(path),
            opset_version=OPSET,
            dynamo=False,
            input_names=inputs,
            output_names=outputs,
        )
    elif kind == "torchscript":
        with warnings.catch_warnings():  # the TorchScript exporter is deprecated
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                model,
                (example,),
                str(path),
                dynamo=False,
                opset_version=OPSET,
                input_names=inputs,
                output_names=outputs,
                dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            )
    elif kind == "dynamo":
        path.parent.mkdir(exist_ok=True)
        torch.onnx.export(
            model,
            (example,),
            str(path),
            dynamo=True,
            external_data=True,
            verbose=False,
            input_names=inputs,
            output_names=outputs,
        )
    else:
        raise ValueError(kind)


def strip_metadata(model: onnx.ModelProto) -> None:
    """Drop exporter doc strings and metadata (stack traces, source locations)."""
    model.doc_string = ""
    del model.metadata_props[:]
    graph = model.graph
    graph.doc_string = ""
    del graph.metadata_props[:]
    for node in graph.node:
        node.doc_string = ""
        del node.metadata_props[:]
    for proto in [*graph.input, *graph.output, *graph.value_info, *graph.initializer]:
        proto.doc_string = ""
        del proto.metadata_props[:]


def clean_onnx(path: Path, external: bool) -> None:
    """Strip metadata in place, re-save (weights external if asked) and check."""
    model = onnx.load(path)
    assert not model.functions, "strip_metadata only walks the main graph"
    strip_metadata(model)
    if external:
        (path.parent / EXTERNAL_DATA).unlink()
        onnx.save(model, path, save_as_external_data=True, location=EXTERNAL_DATA)
    else:
        onnx.save(model, path)
    onnx.checker.check_model(str(path), full_check=True)


# --------------------------------------------------------------------------- checks


def ort_logits(path: Path, x: torch.Tensor) -> np.ndarray:
    """Run an ONNX file in onnxruntime, one sample at a time if the batch is fixed."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3  # Brevitas keeps initializers as graph inputs: ORT warns
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    batches = x.split(1) if inp.shape[0] == 1 else [x]
    return np.concatenate([sess.run(None, {inp.name: b.numpy()})[0] for b in batches])


def qonnx_logits(path: Path, x: torch.Tensor) -> np.ndarray:
    """Run a QONNX file with qonnx's reference executor (Quant is not an ORT op).

    The exported reshapes keep the batch as -1, so the declared batch of 1 is widened
    in memory to run the whole split in one call.
    """
    model = ModelWrapper(str(path))
    del model.graph.value_info[:]
    for value in (model.graph.input[0], model.graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_value = len(x)
    with warnings.catch_warnings():  # qonnx's shape checks misread the -1 reshapes
        warnings.simplefilter("ignore")
        model = model.transform(InferShapes())
        result = execute_onnx(model, {model.graph.input[0].name: x.numpy()})
    return result[model.graph.output[0].name]


def op_counts(path: Path) -> dict[str, int]:
    model = onnx.load(path, load_external_data=False)
    return dict(sorted(Counter(node.op_type for node in model.graph.node).items()))


# --------------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent,
        help="output folder (default: this script's folder)",
    )
    parser.add_argument("--epochs", type=int, default=40, help="float twin epochs")
    parser.add_argument("--qat-epochs", type=int, default=20, help="QAT fine-tuning epochs")
    parser.add_argument(
        "--scales",
        nargs="+",
        choices=sorted(QUANT_LAYERS),
        default=["float", "po2"],
        help="QAT variants: float scales and/or power-of-two scales",
    )
    return parser.parse_args()


class Log:
    """Lines for train_log.txt (kept deterministic: no timings) echoed to stdout."""

    def __init__(self):
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        print(line, flush=True)
        self.lines.append(line)

    def save(self, path: Path) -> None:
        path.write_text("\n".join(self.lines) + "\n")


def train_models(
    args: argparse.Namespace, train: Split, test: Split, log: Log
) -> dict[str, nn.Module]:
    """Train the twin, then the requested QAT variants; log torch test accuracy."""
    models = {}
    for name in ["twin", *args.scales]:
        start = time.perf_counter()
        if name == "twin":
            models[name] = train_twin(train, args.epochs)
        else:
            models[name] = train_quant(name, models["twin"], train, args.qat_epochs)
        acc = accuracy(torch_logits(models[name], test.x), test.y)
        log(f"{LABELS[name]}: torch test accuracy {acc:.4f}")
        print(f"    trained in {time.perf_counter() - start:.0f} s")
    return models


def export_and_check(out: Path, models: dict[str, nn.Module], test: Split, log: Log) -> None:
    """Export, clean and run every file; compare logits with PyTorch and QCDQ with QONNX."""
    outputs = {}
    for exp in EXPORTS:
        if exp.model not in models:
            continue
        path = out / exp.path
        export_onnx(models[exp.model], exp.kind, path)
        clean_onnx(path, external=exp.kind == "dynamo")
        run = qonnx_logits if exp.kind == "qonnx" else ort_logits
        outputs[exp.path] = logits = run(path, test.x)
        diff = np.abs(logits - torch_logits(models[exp.model], test.x)).max()
        runner = "qonnx" if exp.kind == "qonnx" else "onnxruntime"
        log(
            f"{exp.path}: {runner} test accuracy {accuracy(logits, test.y):.4f}, "
            f"max |logit - torch| {diff:.1e}"
        )
        print(f"    ops: {op_counts(path)}")
    if {"digits_vit_qcdq.onnx", "digits_vit_qonnx.onnx"} <= outputs.keys():
        diff = np.abs(outputs["digits_vit_qcdq.onnx"] - outputs["digits_vit_qonnx.onnx"]).max()
        log(f"QCDQ vs QONNX: max |logit difference| {diff:.1e}")


def main() -> None:
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    start = time.perf_counter()

    train, test = load_data()
    save_data(args.out, train, test)
    log = Log()
    log(
        f"torch {torch.__version__}, brevitas {brevitas.__version__}, "
        f"onnxruntime {ort.__version__}; seed {SEED}"
    )
    log(
        f"epochs: float twin {args.epochs}, QAT fine-tuning {args.qat_epochs} "
        f"(Adam, batch {BATCH_SIZE}); train {len(train.y)} / test {len(test.y)} images"
    )
    models = train_models(args, train, test, log)
    export_and_check(args.out, models, test, log)
    log.save(args.out / "train_log.txt")
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
