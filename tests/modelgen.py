"""Small conversion-oriented models in QCDQ form, built with onnx.helper for the tests.

Scales are chosen from a sample batch (each quantizer's clip at a percentile of what it
sees, so codes spread over 0..L) by running the model built so far in onnxruntime;
``po2=True`` rounds every scale to a power of two (where rounding ties are common).
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper


class Builder:
    def __init__(self, name: str, input_shape: tuple[int, ...], seed: int = 0,
                 po2: bool = False, opset: int = 17, dynamic_batch: bool = True):
        self.name, self.rng, self.po2, self.opset = name, np.random.default_rng(seed), po2, opset
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.shape = input_shape
        batch = "N" if dynamic_batch else 1
        self.input = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, *input_shape])
        self.sample = self.rng.uniform(0, 1, (32, *input_shape)).astype(np.float32)
        self.dynamic_batch = dynamic_batch
        self._k = 0

    # ------------------------------------------------------------ plumbing
    def fresh(self, base: str) -> str:
        self._k += 1
        return f"{base}_{self._k}"

    def const(self, value, base: str = "c") -> str:
        name = self.fresh(base)
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], base: str | None = None, **attrs) -> str:
        out = self.fresh(base or op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=f"/{out}/{op}", **attrs))
        return out

    def run(self, name: str) -> np.ndarray:
        model = self.model([name], check=False)
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        if self.dynamic_batch:
            return sess.run(None, {"x": self.sample})[0]
        return np.concatenate([sess.run(None, {"x": s[None]})[0] for s in self.sample])

    def model(self, outputs: list[str], check: bool = True) -> onnx.ModelProto:
        outs = [helper.make_empty_tensor_value_info(o) for o in outputs]
        g = helper.make_graph(self.nodes, self.name, [self.input], outs, self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", self.opset)])
        m.ir_version = 8
        if check:
            inferred = {v.name: v for v in onnx.shape_inference.infer_shapes(m).graph.value_info}
            for k, o in enumerate(outputs):
                m.graph.output[k].CopyFrom(inferred[o])
            onnx.checker.check_model(m)
        return m

    def _scale(self, top: float, levels: int) -> float:
        """A power of two, or a float off any exact ratio with the data (as trained
        scales are)."""
        s = max(top, 1e-6) / levels
        if self.po2:
            return float(2.0 ** np.round(np.log2(s)))
        return float(np.float32(s * self.rng.uniform(0.93, 1.07)))

    # ------------------------------------------------------------ layers
    def quant(self, x: str, levels: int = 7, relu: bool = True, signed: bool = False,
              percentile: float = 99.0) -> str:
        """(Relu ->) QuantizeLinear -> Clip -> DequantizeLinear, scale from the sample."""
        if relu:
            x = self.node("Relu", [x])
        v = self.run(x)
        top = float(np.percentile(np.abs(v) if signed else np.maximum(v, 0), percentile))
        s = self.const(np.float32(self._scale(top, levels)), "scale")
        dtype = np.int8 if signed else np.uint8
        zp = self.const(dtype(0), "zp")
        q = self.node("QuantizeLinear", [x, s, zp])
        lo, hi = (-levels, levels) if signed else (0, levels)
        q = self.node("Clip", [q, self.const(dtype(lo), "lo"), self.const(dtype(hi), "hi")])
        return self.node("DequantizeLinear", [q, s, zp], "act")

    def input_quant(self, bits: int = 8) -> str:
        levels = 2**bits - 1
        s = self.const(np.float32(self._scale(1.0, levels)), "scale")
        zp = self.const(np.uint8(0), "zp")
        q = self.node("QuantizeLinear", ["x", s, zp])
        if bits < 8:
            q = self.node("Clip", [q, self.const(np.uint8(0), "lo"),
                                   self.const(np.uint8(levels), "hi")])
        return self.node("DequantizeLinear", [q, s, zp], "xq")

    def weight(self, shape: tuple[int, ...], per_channel_axis: int | None = None) -> str:
        w = self.rng.integers(-127, 128, shape).astype(np.int8)
        fan_in = int(np.prod(shape)) // shape[per_channel_axis or 0] if len(shape) > 2 else shape[0]
        base = 1.0 / (64 * np.sqrt(fan_in))
        if per_channel_axis is None:
            scale = np.float32(self._scale(base * 7, 7))
            return self.node("DequantizeLinear", [self.const(w, "w"), self.const(scale, "ws")],
                             "wq")
        scale = np.array([self._scale(base * 7 * self.rng.uniform(.5, 2), 7)
                          for _ in range(shape[per_channel_axis])], np.float32)
        return self.node("DequantizeLinear", [self.const(w, "w"), self.const(scale, "ws"),
                                              self.const(np.zeros(len(scale), np.int8), "wz")],
                         "wq", axis=per_channel_axis)

    def conv(self, x: str, cin: int, cout: int, k: int = 3, pad: int = 1, stride: int = 1,
             bias: bool = True, per_channel: bool = False) -> str:
        w = self.weight((cout, cin, k, k), 0 if per_channel else None)
        ins = [x, w] + ([self.const(self.rng.normal(0, .1, cout).astype(np.float32), "b")]
                        if bias else [])
        return self.node("Conv", ins, pads=[pad] * 4, strides=[stride] * 2,
                         kernel_shape=[k, k])

    def bn(self, x: str, channels: int) -> str:
        r = self.rng
        params = [r.uniform(.5, 1.5, channels), r.normal(0, .2, channels),
                  r.normal(0, .2, channels), r.uniform(.5, 1.5, channels)]
        names = [self.const(p.astype(np.float32), "bn") for p in params]
        return self.node("BatchNormalization", [x, *names], epsilon=1e-5)

    def linear(self, x: str, din: int, dout: int, bias: bool = True, gemm: bool = False) -> str:
        if gemm:
            w = self.weight((dout, din))
            b = [self.const(self.rng.normal(0, .1, dout).astype(np.float32), "b")] if bias else []
            return self.node("Gemm", [x, w, *b], transB=1)
        y = self.node("MatMul", [x, self.weight((din, dout))])
        if bias:
            y = self.node("Add", [y, self.const(self.rng.normal(0, .1, dout).astype(np.float32))])
        return y

    def token_bn(self, x: str, channels: int) -> str:
        """BatchNorm1d over [B, N, D] the PyTorch way: between two Transposes."""
        t = self.node("Transpose", [x], perm=[0, 2, 1])
        return self.node("Transpose", [self.bn(t, channels)], perm=[0, 2, 1])

    def reshape(self, x: str, shape: list[int]) -> str:
        return self.node("Reshape", [x, self.const(np.array(shape, np.int64), "shape")])

    def transpose(self, x: str, perm: list[int]) -> str:
        return self.node("Transpose", [x], perm=perm)

    def mul(self, x: str, c: float) -> str:
        return self.node("Mul", [x, self.const(np.float32(c))])

    def maxpool(self, x: str, k: int, stride: int, pad: int = 0) -> str:
        return self.node("MaxPool", [x], kernel_shape=[k, k], strides=[stride] * 2,
                         pads=[pad] * 4)

    def add(self, a: str, b: str) -> str:
        return self.node("Add", [a, b])

    def matmul(self, a: str, b: str) -> str:
        return self.node("MatMul", [a, b])

    def mean(self, x: str, axes: list[int]) -> str:
        return self.node("ReduceMean", [x], axes=axes, keepdims=0)


# ---------------------------------------------------------------- models


def tiny_cnn(seed: int = 0, po2: bool = False) -> onnx.ModelProto:
    """Analog input -> conv+BN -> Q -> maxpool -> conv -> Q -> flatten -> linear."""
    b = Builder("tiny_cnn", (1, 8, 8), seed, po2)
    x = b.input_quant()
    x = b.quant(b.bn(b.conv(x, 1, 4), 4))
    x = b.maxpool(x, 2, 2)
    x = b.quant(b.bn(b.conv(x, 4, 6, per_channel=True), 6))
    x = b.maxpool(x, 3, 1, 1)
    x = b.node("Flatten", [x], axis=1)
    return b.model([b.linear(x, 6 * 16, 10, gemm=True)])


def tiny_transformer(seed: int = 0, po2: bool = False, tokens: int = 8, dim: int = 8,
                     heads: int = 2, blocks: int = 1, spike_input: bool = False
                     ) -> onnx.ModelProto:
    """Tokens -> [Q(X) -> q,k,v -> NReLU attention -> proj+BN -> residual; MLP] x blocks
    -> Q -> mean -> head."""
    b = Builder("tiny_transformer", (tokens, dim), seed, po2)
    x = b.input_quant(bits=3 if spike_input else 8)
    stream = b.token_bn(b.linear(x, dim, dim), dim)
    return b.model([_encoder(b, stream, tokens, dim, heads, blocks)])


def tiny_vit(seed: int = 0, po2: bool = False, channels: int = 4, dim: int = 8,
             heads: int = 2, blocks: int = 2, spike_input: bool = False,
             overlap_pool: bool = False) -> onnx.ModelProto:
    """A conv tokenizer with max pooling (8x8 image -> conv+BN -> Q -> maxpool 2x2 ->
    conv+BN -> Q [-> maxpool 3x3 stride 1] -> 16 tokens) -> linear -> the encoder blocks
    of `tiny_transformer`, residual adds and all -> Q -> mean -> head."""
    b = Builder("tiny_vit", (1, 8, 8), seed, po2)
    x = b.input_quant(bits=3 if spike_input else 8)
    x = b.maxpool(b.quant(b.bn(b.conv(x, 1, channels), channels)), 2, 2)
    x = b.quant(b.bn(b.conv(x, channels, dim, per_channel=True), dim))
    if overlap_pool:
        x = b.maxpool(x, 3, 1, 1)
    tokens = b.transpose(b.reshape(x, [0, dim, 16]), [0, 2, 1])
    stream = b.token_bn(b.linear(tokens, dim, dim), dim)
    return b.model([_encoder(b, stream, 16, dim, heads, blocks)])


def _encoder(b: Builder, stream: str, tokens: int, dim: int, heads: int, blocks: int) -> str:
    """[Q(X) -> q,k,v -> NReLU attention -> proj+BN -> residual; MLP] x blocks -> Q ->
    mean -> head: the logits."""
    dh = dim // heads
    for _ in range(blocks):
        z = b.quant(stream)
        qkv = []
        for _k in range(3):
            t = b.quant(b.token_bn(b.linear(z, dim, dim, bias=False), dim))
            t = b.transpose(b.reshape(t, [0, tokens, heads, dh]), [0, 2, 1, 3])
            qkv.append(t)
        q, k, v = qkv
        s = b.matmul(q, b.transpose(k, [0, 1, 3, 2]))
        a = b.quant(b.mul(s, 1.0 / (tokens * np.sqrt(dh))))
        o = b.quant(b.matmul(a, v), relu=False)
        o = b.reshape(b.transpose(o, [0, 2, 1, 3]), [0, tokens, dim])
        stream = b.add(stream, b.token_bn(b.linear(o, dim, dim), dim))
        h = b.quant(b.token_bn(b.linear(b.quant(stream), dim, 2 * dim), 2 * dim))
        stream = b.add(stream, b.token_bn(b.linear(h, 2 * dim, dim), dim))
    pooled = b.mean(b.quant(stream), [1])
    return b.linear(pooled, dim, 10)


def tiny_mlp(seed: int = 0, sizes: tuple[int, ...] = (64, 128, 64, 32, 10)) -> onnx.ModelProto:
    """Analog input (a flat vector) -> [linear -> Q] x (len(sizes) - 2) -> linear: an MLP
    whose weights dominate its memory (the shape FPGA flows put in block RAM)."""
    b = Builder("tiny_mlp", (sizes[0],), seed)
    x = b.input_quant()
    for din, dout in zip(sizes[:-2], sizes[1:-1], strict=True):
        x = b.quant(b.linear(x, din, dout, gemm=True))
    return b.model([b.linear(x, sizes[-2], sizes[-1], gemm=True)])
