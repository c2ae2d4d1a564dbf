"""Generate the DeiT-tiny-scale benchmark model: the digits architecture, grown up.

The same conversion-oriented transformer as ``examples/digits_vit`` (its blocks are
imported from that training script), at DeiT-tiny scale by default: 12 blocks, width 192,
3 heads, MLP ratio 4, 196 tokens from a 224x224 RGB image, 1000 classes. The tokenizer
has four Conv3x3 -> BN -> quantized ReLU -> MaxPool(2) stages (224 -> 14), then a 1x1
Conv -> BN to the width. Activations are unsigned 3-bit, weights signed 8-bit, the input
unsigned 8-bit (Brevitas float scales).

The weights are random, not trained: PyTorch's initialization, then a few forward passes
in train mode on random images calibrate the BatchNorm statistics and Brevitas's
activation scales, so every scale is realistic. The model is exported like the digits
model (Brevitas ``export_onnx_qcdq``, batch 1, opset 17, metadata stripped).

Every size is a flag, so the benchmarks can generate the whole family. Needs the
``train`` extra (torch, brevitas).

    python examples/deit_tiny/generate.py [--depth 12] [--width 192] [--tokens 196]
                                          [--heads W/64] [--out bench/models]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "digits_vit"))
import train as digits  # noqa: E402  (the digits model's building blocks)

SEED = 0
PATCH = 16  # four 2x down-samplings
STAGES = 4
CALIB_PASSES = 8  # batches of random images for BN statistics and activation scales
CALIB_BATCH = 4


@dataclass(frozen=True)
class Config:
    """The sizes of one model of the family."""

    depth: int = 12
    width: int = 192
    tokens: int = 196
    heads: int = 3
    mlp_ratio: int = 4
    classes: int = 1000

    def __post_init__(self):
        side = math.isqrt(self.tokens)
        if side * side != self.tokens:
            raise ValueError(f"--tokens must be a square (a side x side map), not {self.tokens}")
        if self.width % self.heads or self.width % 2**STAGES:
            raise ValueError(f"--width {self.width} must be a multiple of --heads and of 16")

    @property
    def image(self) -> int:
        return math.isqrt(self.tokens) * PATCH

    @property
    def dims(self) -> digits.Dims:
        return digits.Dims(self.tokens, self.width, self.heads, self.width * self.mlp_ratio)

    @property
    def stem(self) -> list[int]:
        """Channels of the tokenizer stages: width/8, width/4, width/2, width."""
        return [self.width // 2 ** (STAGES - 1 - k) for k in range(STAGES)]

    @property
    def filename(self) -> str:
        return f"deit_d{self.depth}_w{self.width}_t{self.tokens}_h{self.heads}_qcdq.onnx"


class DeitTiny(nn.Module):
    """Conv tokenizer (4 stages) -> blocks -> ReLU, token mean, linear classifier."""

    def __init__(self, layers: digits.QuantLayers, cfg: Config):
        super().__init__()
        self.input_quant = layers.input_quant()
        stages: list[nn.Module] = []
        cin = 3
        for cout in cfg.stem:
            stages += [layers.conv(cin, cout, 3, padding=1), nn.BatchNorm2d(cout),
                       layers.act(), nn.MaxPool2d(2)]
            cin = cout
        stages += [layers.conv(cin, cfg.width, 1), nn.BatchNorm2d(cfg.width)]
        self.tokenizer = nn.Sequential(*stages)
        self.blocks = nn.Sequential(*(digits.Block(layers, cfg.dims) for _ in range(cfg.depth)))
        self.head_act = layers.act()
        self.head = layers.linear(cfg.width, cfg.classes, bias=True)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        x = self.tokenizer(self.input_quant(img)).flatten(2).transpose(1, 2)
        x = self.blocks(x)
        return self.head(self.head_act(x).mean(dim=1))


def images(n: int, size: int, gen: torch.Generator) -> torch.Tensor:
    """Random RGB images in [0, 1] with some spatial structure (smoothed noise)."""
    coarse = torch.rand(n, 3, size // 8, size // 8, generator=gen)
    smooth = nn.functional.interpolate(coarse, size=(size, size), mode="bilinear")
    return (0.7 * smooth + 0.3 * torch.rand(n, 3, size, size, generator=gen)).clamp(0, 1)


@torch.no_grad()
def build(cfg: Config) -> nn.Module:
    """Initialize, then calibrate on random images: BatchNorm statistics (train mode, true
    averages) and activation scales (Brevitas calibration mode); returns it in eval mode."""
    from brevitas.graph.calibrate import calibration_mode

    torch.manual_seed(SEED)
    model = DeitTiny(digits.QUANT_LAYERS["float"], cfg)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = None  # a cumulative average over the calibration batches
    gen = torch.Generator().manual_seed(SEED)
    model.train()
    with calibration_mode(model):
        for _ in range(CALIB_PASSES):
            model(images(CALIB_BATCH, cfg.image, gen))
    return model.eval()


def export(model: nn.Module, cfg: Config, path: Path) -> None:
    """QCDQ export by the digits model's path, then strip metadata and check."""
    from brevitas.export import export_onnx_qcdq

    example = torch.zeros(1, 3, cfg.image, cfg.image)
    export_onnx_qcdq(model, args=example, export_path=str(path), opset_version=digits.OPSET,
                     dynamo=False, input_names=["input"], output_names=["logits"])
    digits.clean_onnx(path, external=False)


def generate(cfg: Config, out: Path, force: bool = False) -> Path:
    """The model file for `cfg` in `out`, generated unless it is there already."""
    path = out / cfg.filename
    if path.exists() and not force:
        return path
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)
    model = build(cfg)
    tmp = path.with_suffix(".tmp.onnx")
    export(model, cfg, tmp)
    tmp.replace(path)
    return path


def parse_args(argv: list[str] | None = None) -> tuple[Config, Path, bool]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--depth", type=int, default=12, help="transformer blocks")
    parser.add_argument("--width", type=int, default=192, help="embedding width")
    parser.add_argument("--tokens", type=int, default=196,
                        help="tokens (a square; the image side is 16 * sqrt(tokens))")
    parser.add_argument("--heads", type=int, default=None, help="heads (default: width / 64)")
    parser.add_argument("--mlp-ratio", type=int, default=4)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("bench/models"), help="cache folder")
    parser.add_argument("--force", action="store_true", help="regenerate even if cached")
    args = parser.parse_args(argv)
    heads = args.heads or max(1, args.width // 64)
    cfg = Config(args.depth, args.width, args.tokens, heads, args.mlp_ratio, args.classes)
    return cfg, args.out, args.force


def main() -> None:
    cfg, out, force = parse_args()
    start = time.perf_counter()
    path = generate(cfg, out, force)
    print(f"{path} ({path.stat().st_size / 2**20:.1f} MiB, {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
