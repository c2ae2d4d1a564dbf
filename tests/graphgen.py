"""Random QCDQ graphs built by construction from snncc's supported ops, for the fuzzer.

A graph is grown from a plan: a list of layer names with two small integers each. Each
layer is applied only if it fits the value at hand (its shape, and whether it is a
*current* — the float output of an op — or *codes* — the output of a quantizer, spikes in
the SNN); one that does not fit is skipped. So every graph is what an exporter could
write: spike-driven layers read codes, quantizers sit where currents must become spikes,
shapes are legal. Scales come from a sample batch run through onnxruntime (modelgen).

`Defect`s turn a legal graph into one snncc must refuse, each with the message it must
give.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper

from modelgen import Builder

# layer name -> what it needs: "codes", "current" or "any"; and the shapes it takes
LAYERS = {
    "conv": "codes", "dense": "codes", "gemm": "codes", "attention": "codes",
    "maxpool": "codes", "avgpool": "codes", "gap": "codes", "mean": "codes",
    "concat": "codes", "slice": "codes", "transpose": "any", "tokens": "any",
    "flatten": "any", "bn": "current", "scale": "any", "bias": "current",
    "residual": "current", "signed": "current", "quant": "current", "relu": "current",
}


# what may read the analog input codes (more levels than T): only a first layer that
# multiplies them; nothing may rewire or requantize them before it
ANALOG = {"conv", "dense", "gemm", "attention"}


@dataclass(frozen=True)
class Plan:
    """Everything that decides one graph."""

    kind: str  # "spatial" [C, H, W], "tokens" [N, D] or "flat" [D]
    dims: tuple[int, ...]
    input_bits: int  # 8: an analog input; fewer: spikes at the input
    T: int
    layers: tuple[tuple[str, int, int], ...]
    classes: int = 3
    po2: bool = False
    float_weights: bool = False
    seed: int = 0
    neuron: str = "if"
    float_model: bool = False  # no quantizers (ReLUs where they would be): --calibrate
    qdq8: bool = False  # 8-bit quantizers as onnxruntime's quantizer writes them (T = 255)


@dataclass
class Value:
    name: str
    shape: tuple[int, ...]  # one sample's
    kind: str  # "codes", "current" or "analog" (the input's codes, more levels than T)
    signed: bool = False  # the output of a signed quantizer (no spikes may be read from it)


@dataclass
class Net:
    """A Builder plus what the graph holds so far."""

    b: Builder
    plan: Plan
    cur: Value
    seen: list[Value] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)

    def set(self, name: str, shape: tuple[int, ...], kind: str, signed: bool = False) -> None:
        self.cur = Value(name, tuple(shape), kind, signed)
        self.seen.append(self.cur)

    def levels(self, a: int) -> int:
        """A quantizer's top code: at most T (exact mode needs L <= T)."""
        return min([1, 3, 7, 15][a % 4], self.plan.T)


def build(plan: Plan) -> tuple[onnx.ModelProto, list[str]]:
    """The ONNX model of `plan` and the layers applied (the others did not fit)."""
    kind = FloatBuilder if plan.float_model else QdqBuilder if plan.qdq8 else Builder
    b = kind("fuzz", plan.dims, plan.seed, plan.po2)
    x = b.input_quant(plan.input_bits)
    net = Net(b, plan, Value(x, plan.dims, "analog" if plan.input_bits == 8 else "codes"))
    net.seen.append(net.cur)
    for layer, a, c in plan.layers:
        bridge(net, layer, a, c)
        if fits(net, layer) and APPLY[layer](net, a, c) is not False:
            net.applied.append(layer)
    head(net)
    return b.model([net.cur.name]), net.applied


class FloatBuilder(Builder):
    """The float twin of a QCDQ graph, as the PyTorch exporter writes it: no quantizers;
    a ReLU where an unsigned quantizer would be (the activation `--calibrate` quantizes),
    nothing where a signed one would be."""

    def input_quant(self, bits: int = 8) -> str:
        return "x"

    def quant(self, x: str, levels: int = 7, relu: bool = True, signed: bool = False,
              percentile: float = 99.0) -> str:
        return x if signed else self.node("Relu", [x], "act")


class QdqBuilder(Builder):
    """8-bit quantizers as onnxruntime's static quantizer writes them (QDQ format): no
    Clip; after a ReLU uint8 with zero point 0 or int8 with zero point -128 (unsigned
    either way); signed: int8 with zero point 0 or uint8 with zero point 128 (a zero point
    inside the range: two neurons)."""

    def run(self, name: str) -> np.ndarray:
        """onnxruntime without graph optimizations (its QDQ fusions, QLinearAveragePool
        among them, refuse some 8-bit ranges)."""
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        model = self.model([name], check=False)
        sess = ort.InferenceSession(model.SerializeToString(), opts,
                                    providers=["CPUExecutionProvider"])
        return sess.run(None, {"x": self.sample})[0]

    def quant(self, x: str, levels: int = 7, relu: bool = True, signed: bool = False,
              percentile: float = 99.0) -> str:
        if relu:
            x = self.node("Relu", [x])
        v = self.run(x)
        top = float(np.percentile(np.abs(v) if signed else np.maximum(v, 0), percentile))
        flip = self.rng.integers(2) == 1
        if signed:
            s, zp = self._scale(top, 127), np.uint8(128) if flip else np.int8(0)
        else:
            s, zp = self._scale(top, 255), np.int8(-128) if flip else np.uint8(0)
        scale, zero = self.const(np.float32(s), "scale"), self.const(zp, "zp")
        q = self.node("QuantizeLinear", [x, scale, zero])
        return self.node("DequantizeLinear", [q, scale, zero], "act")


def fits(net: Net, layer: str) -> bool:
    need = LAYERS[layer]
    cur = net.cur
    if cur.kind == "analog" and layer not in ANALOG:
        return False
    if need == "codes" and (cur.kind not in ("codes", "analog") or cur.signed):
        return False
    if need == "current" and cur.kind != "current":
        return False
    rank = len(cur.shape)
    shapes = {"conv": 3, "maxpool": 3, "avgpool": 3, "gap": 3, "tokens": 3, "flatten": 3,
              "attention": 2, "mean": 2, "transpose": 2, "gemm": 1}
    return shapes.get(layer, rank) == rank


def bridge(net: Net, layer: str, a: int, c: int) -> None:
    """What an exporter would put before `layer` where the value at hand is of the wrong
    kind: a first layer after the analog input, a quantizer before a layer that reads
    spikes, a synapse layer before one that takes a current."""
    for _ in range(2):  # analog input -> first layer -> quantizer at most
        cur, need = net.cur, LAYERS[layer]
        first = "conv" if len(cur.shape) == 3 else "dense"
        if cur.kind == "analog" and layer not in ANALOG:
            APPLY[first](net, a, c)
            net.applied.append(first)
        elif need == "codes" and (cur.kind == "current" or cur.signed):
            _quant(net, a, c)
            net.applied.append("quant")
        elif need == "current" and cur.kind == "codes" and APPLY[first](net, a, c) is not False:
            net.applied.append(first)


def head(net: Net) -> None:
    """Codes (quantized here if needed) -> flattened or pooled -> the logits."""
    if net.cur.kind == "current" or net.cur.signed:
        _quant(net, 2, 0)
    if net.cur.kind == "analog":
        return _dense(net, net.plan.classes, 1, out=net.plan.classes)
    if len(net.cur.shape) == 3:
        _flatten(net, 0, 0)
    elif len(net.cur.shape) == 2 and net.plan.seed % 2:
        _mean(net, 0, 0)
    _dense(net, net.plan.classes, 1, out=net.plan.classes)


# ---------------------------------------------------------------- layers


def _weight(net: Net, shape: tuple[int, ...], per_channel: bool) -> str:
    b = net.b
    if net.plan.float_weights:
        fan_in = int(np.prod(shape[1:])) if len(shape) > 2 else shape[0]
        return b.const(b.rng.normal(0, 1 / np.sqrt(fan_in), shape).astype(np.float32), "w")
    return b.weight(shape, 0 if per_channel else None)


def _conv(net: Net, a: int, c: int) -> None:
    cin, h, w = net.cur.shape
    cout, k = 1 + a % 4, 1 + 2 * (c % 2)
    stride = 2 if c >= 2 and min(h, w) >= 3 else 1
    pad = k // 2 if a % 3 else 0
    if min(h, w) + 2 * pad < k:
        return False
    wname = _weight(net, (cout, cin, k, k), per_channel=a % 2 == 1)
    ins = [net.cur.name, wname]
    if c % 3:
        ins.append(net.b.const(net.b.rng.normal(0, .1, cout).astype(np.float32), "b"))
    y = net.b.node("Conv", ins, pads=[pad] * 4, strides=[stride] * 2, kernel_shape=[k, k])
    oh, ow = ((d + 2 * pad - k) // stride + 1 for d in (h, w))
    net.set(y, (cout, oh, ow), "current")


def _dense(net: Net, a: int, c: int, out: int | None = None) -> None:
    din = net.cur.shape[-1]
    dout = out or 1 + a % 8
    y = net.b.node("MatMul", [net.cur.name, _weight(net, (din, dout), False)])
    if c % 2:
        y = net.b.node("Add", [y, net.b.const(net.b.rng.normal(0, .1, dout).astype(np.float32))])
    net.set(y, (*net.cur.shape[:-1], dout), "current")


def _gemm(net: Net, a: int, c: int) -> None:
    din, dout = net.cur.shape[0], 1 + a % 8
    w = _weight(net, (dout, din), False)
    ins = [net.cur.name, w] + [net.b.const(net.b.rng.normal(0, .1, dout).astype(np.float32))
                               ] * (c % 2)
    net.set(net.b.node("Gemm", ins, transB=1, alpha=[1.0, 0.5][c // 2 % 2]), (dout,), "current")


def _attention(net: Net, a: int, c: int) -> None:
    """NReLU attention: q, k, v quantized, A = Q(ReLU(q kᵀ)/N), Q(A v); one or two heads."""
    b, (n, d) = net.b, net.cur.shape
    heads = 2 if a % 2 and d % 2 == 0 else 1
    z, dh = net.cur.name, d // heads
    qkv = []
    for _ in range(3):
        t = b.quant(b.linear(z, d, d, bias=bool(c % 2)), levels=net.levels(a + 1))
        if heads > 1:
            t = b.transpose(b.reshape(t, [0, n, heads, dh]), [0, 2, 1, 3])
        qkv.append(t)
    q, k, v = qkv
    s = b.matmul(q, b.transpose(k, [0, 1, 3, 2] if heads > 1 else [0, 2, 1]))
    att = b.quant(b.mul(s, 1.0 / (n * np.sqrt(dh))), levels=net.levels(a + 2))
    o = b.quant(b.matmul(att, v), levels=net.levels(a), relu=False)
    if heads > 1:
        o = b.reshape(b.transpose(o, [0, 2, 1, 3]), [0, n, d])
    net.set(o, (n, d), "codes")


def _maxpool(net: Net, a: int, c: int) -> None:
    ch, h, w = net.cur.shape
    k = 2 + a % 2
    stride, pad = (1, 1) if k == 3 and c % 2 else (k if min(h, w) >= k else 1, 0)
    if min(h, w) + 2 * pad < k:
        return False
    y = net.b.maxpool(net.cur.name, k, stride, pad)
    net.set(y, (ch, *((d + 2 * pad - k) // stride + 1 for d in (h, w))), "codes")


def _avgpool(net: Net, a: int, c: int) -> None:
    ch, h, w = net.cur.shape
    if min(h, w) < 2:
        return False
    y = net.b.node("AveragePool", [net.cur.name], kernel_shape=[2, 2], strides=[2, 2])
    net.set(y, (ch, h // 2, w // 2), "current")


def _gap(net: Net, a: int, c: int) -> None:
    y = net.b.node("GlobalAveragePool", [net.cur.name])
    net.set(y, (net.cur.shape[0], 1, 1), "current")


def _mean(net: Net, a: int, c: int) -> None:
    """The mean over tokens (or, one time in two, over features, kept)."""
    n, d = net.cur.shape
    if c % 2:
        y = net.b.node("ReduceMean", [net.cur.name], axes=[2], keepdims=1)
        return net.set(y, (n, 1), "current")
    net.set(net.b.mean(net.cur.name, [1]), (d,), "current")


def _concat(net: Net, a: int, c: int) -> None:
    cur = net.cur
    others = [v for v in net.seen if v.kind == "codes" and not v.signed
              and v.shape[:-1] == cur.shape[:-1] and len(v.shape) == len(cur.shape)]
    other = others[a % len(others)]
    axis = -1 if c % 2 else len(cur.shape)
    y = net.b.node("Concat", [cur.name, other.name], axis=axis)
    net.set(y, (*cur.shape[:-1], cur.shape[-1] + other.shape[-1]), "codes")


def _slice(net: Net, a: int, c: int) -> None:
    last = net.cur.shape[-1]
    if last < 2:
        return False
    start, stop = (0, last // 2) if c % 2 else (last // 2, last)
    b = net.b
    ins = [net.cur.name, b.const(np.array([start], np.int64)),
           b.const(np.array([stop], np.int64)), b.const(np.array([-1], np.int64))]
    net.set(b.node("Slice", ins), (*net.cur.shape[:-1], stop - start), "codes")


def _transpose(net: Net, a: int, c: int) -> None:
    n, d = net.cur.shape
    net.set(net.b.transpose(net.cur.name, [0, 2, 1]), (d, n), net.cur.kind, net.cur.signed)


def _tokens(net: Net, a: int, c: int) -> None:
    ch, h, w = net.cur.shape
    t = net.b.transpose(net.b.reshape(net.cur.name, [0, ch, h * w]), [0, 2, 1])
    net.set(t, (h * w, ch), net.cur.kind, net.cur.signed)


def _flatten(net: Net, a: int, c: int) -> None:
    y = net.b.node("Flatten", [net.cur.name], axis=1)
    net.set(y, (int(np.prod(net.cur.shape)),), net.cur.kind, net.cur.signed)


def _bn(net: Net, a: int, c: int) -> None:
    shape = net.cur.shape
    if len(shape) == 2:
        y = net.b.token_bn(net.cur.name, shape[1])
    else:
        y = net.b.bn(net.cur.name, shape[0])
    net.set(y, shape, "current")


def _scale(net: Net, a: int, c: int) -> None:
    """Mul or Div by a positive constant (a scalar, or one a feature)."""
    shape = net.cur.shape
    factor = net.b.rng.uniform(0.5, 2.0, shape[-1] if c % 2 else ()).astype(np.float32)
    y = net.b.node("Div" if a % 2 else "Mul", [net.cur.name, net.b.const(factor)])
    net.set(y, shape, "current")


def _bias(net: Net, a: int, c: int) -> None:
    shape = net.cur.shape
    bias = net.b.rng.normal(0, .1, shape[-1] if c % 2 else ()).astype(np.float32)
    y = net.b.node("Sub" if a % 3 == 0 else "Add", [net.cur.name, net.b.const(bias)])
    net.set(y, shape, "current")


def _residual(net: Net, a: int, c: int) -> None:
    """The residual stream: this current plus an earlier one of the same shape."""
    cur = net.cur
    others = [v for v in net.seen if v.kind == "current" and v.shape == cur.shape
              and v.name != cur.name]
    if not others:
        return False
    other = others[a % len(others)]
    net.set(net.b.add(other.name, cur.name) if c % 2 else net.b.add(cur.name, other.name),
            cur.shape, "current")


def _signed(net: Net, a: int, c: int) -> None:
    """A signed quantizer on a current (int8, codes -L..L): two neurons, +1 and -1 spikes
    back into a current; nothing may read spikes from it."""
    y = net.b.quant(net.cur.name, levels=net.levels(a), relu=False, signed=True)
    net.set(y, net.cur.shape, "current", signed=True)


def _quant(net: Net, a: int, c: int) -> None:
    y = net.b.quant(net.cur.name, levels=net.levels(a), relu=c % 2 == 1,
                    percentile=[99.0, 90.0, 100.0][c % 3])
    net.set(y, net.cur.shape, "codes")


def _relu(net: Net, a: int, c: int) -> None:
    """A ReLU and the unsigned quantizer that must follow it (a ReLU on a current alone
    cannot be spiked, so nothing else may read it)."""
    y = net.b.quant(net.cur.name, levels=net.levels(a), relu=True)
    net.set(y, net.cur.shape, "codes")


APPLY = {"conv": _conv, "dense": _dense, "gemm": _gemm, "attention": _attention,
         "maxpool": _maxpool, "avgpool": _avgpool, "gap": _gap, "mean": _mean,
         "concat": _concat, "slice": _slice, "transpose": _transpose, "tokens": _tokens,
         "flatten": _flatten, "bn": _bn, "scale": _scale, "bias": _bias,
         "residual": _residual, "signed": _signed, "quant": _quant, "relu": _relu}
assert set(APPLY) == set(LAYERS)


# ---------------------------------------------------------------- defects


@dataclass(frozen=True)
class Defect:
    """A change that makes a legal graph one snncc must refuse: `apply` edits the model
    in place and returns the name of the node the message must name ("" for none);
    `message` is a fragment the refusal must contain."""

    name: str
    message: str


def _first(model: onnx.ModelProto, op: str) -> onnx.NodeProto | None:
    return next((n for n in model.graph.node if n.op_type == op), None)


def _insert_after(model: onnx.ModelProto, node: onnx.NodeProto, new: onnx.NodeProto) -> None:
    """`new` reads node's output; everything that read it reads new's."""
    out = node.output[0]
    for n in model.graph.node:
        for i, name in enumerate(n.input):
            if name == out:
                n.input[i] = new.output[0]
    for o in model.graph.output:
        if o.name == out:
            o.name = new.output[0]
    nodes = list(model.graph.node)
    nodes.insert(nodes.index(node) + 1, new)
    del model.graph.node[:]
    model.graph.node.extend(nodes)


def unsupported_op(model: onnx.ModelProto, a: int) -> str:
    """An op snncc cannot spike, after the first DequantizeLinear of an activation."""
    deq = [n for n in model.graph.node if n.op_type == "DequantizeLinear"
           and n.input[0] not in {t.name for t in model.graph.initializer}]
    node = deq[a % len(deq)]
    op = ["Sin", "Tanh", "Erf", "Exp", "Sigmoid"][a % 5]
    new = helper.make_node(op, [node.output[0]], [f"{op.lower()}_out"], name=f"/planted/{op}")
    _insert_after(model, node, new)
    return new.name


def softmax(model: onnx.ModelProto, a: int) -> str:
    """A Softmax on a quantized activation (without --replace-softmax)."""
    deq = [n for n in model.graph.node if n.op_type == "DequantizeLinear"
           and n.input[0] not in {t.name for t in model.graph.initializer}]
    node = deq[a % len(deq)]
    new = helper.make_node("Softmax", [node.output[0]], ["softmax_out"], name="/planted/Softmax",
                           axis=-1)
    _insert_after(model, node, new)
    return new.name


def levels_above_T(model: onnx.ModelProto, a: int) -> str:
    """An activation quantizer's top code raised past T (compiled at T = 7): its Clip's
    max to 15."""
    producer = {out: n for n in model.graph.node for out in n.output}
    consts = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    clips = [n for n in model.graph.node if n.op_type == "Clip" and len(n.input) == 3
             and producer[n.input[0]].input[0] != "x"  # not the input's (analog at 15)
             and consts[n.input[1]] == 0]  # unsigned: levels 0..15
    clip = clips[a % len(clips)]
    top = next(t for t in model.graph.initializer if t.name == clip.input[2])
    top.CopyFrom(onnx.numpy_helper.from_array(np.asarray(15, np.uint8), top.name))
    return ""


def product_of_activations(model: onnx.ModelProto, a: int) -> str:
    """An element-wise Mul of two activations."""
    deq = [n for n in model.graph.node if n.op_type == "DequantizeLinear"
           and n.input[0] not in {t.name for t in model.graph.initializer}]
    node = deq[a % len(deq)]
    new = helper.make_node("Mul", [node.output[0], node.output[0]], ["square_out"],
                           name="/planted/Mul")
    _insert_after(model, node, new)
    return new.name


def dynamic_quantization(model: onnx.ModelProto, a: int) -> str:
    """The first MatMul by a constant weight as quantize_dynamic writes it."""
    node = _first(model, "MatMul")
    x = node.input[0]
    dq = helper.make_node("DynamicQuantizeLinear", [x], ["xq", "xs", "xz"],
                          name="/planted/DynamicQuantizeLinear")
    nodes = list(model.graph.node)
    nodes.insert(nodes.index(node), dq)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return dq.name


def ceil_mode_pool(model: onnx.ModelProto, a: int) -> str:
    node = _first(model, "MaxPool")
    node.attribute.append(helper.make_attribute("ceil_mode", 1))
    return node.name


def constant_on_the_left(model: onnx.ModelProto, a: int) -> str:
    """MatMul(W, x) where the weight comes first."""
    node = _first(model, "MatMul")
    node.input[0], node.input[1] = node.input[1], node.input[0]
    return node.name


def division_by_zero(model: onnx.ModelProto, a: int) -> str:
    """A Div by a constant zero after an activation."""
    deq = [n for n in model.graph.node if n.op_type == "DequantizeLinear"
           and n.input[0] not in {t.name for t in model.graph.initializer}]
    node = deq[a % len(deq)]
    zero = onnx.numpy_helper.from_array(np.float32(0.0), "planted_zero")
    model.graph.initializer.append(zero)
    new = helper.make_node("Div", [node.output[0], zero.name], ["div_out"], name="/planted/Div")
    _insert_after(model, node, new)
    return new.name


def gemm_trans_a(model: onnx.ModelProto, a: int) -> str:
    node = _first(model, "Gemm")
    node.attribute.append(helper.make_attribute("transA", 1))
    return node.name


def float_activation(model: onnx.ModelProto, a: int) -> str:
    """A quantizer before a linear layer taken out: the layer reads a float activation
    (a float model needs --calibrate)."""
    g = model.graph
    consts = {t.name for t in g.initializer}
    producer = {out: n for n in g.node for out in n.output}

    def weight(name: str) -> bool:
        return name in consts or name in producer and producer[name].input[0] in consts

    def quantizer(dq: str) -> onnx.NodeProto:
        q = producer[producer[dq].input[0]]
        return producer[q.input[0]] if q.op_type == "Clip" else q

    # (not one after a mean: a linear layer may read a mean of spikes, it sums them)
    means = ("ReduceMean", "GlobalAveragePool", "AveragePool")
    readers = [n for n in g.node if n.op_type in ("Conv", "MatMul", "Gemm")
               and weight(n.input[1]) and n.input[0] in producer
               and producer[n.input[0]].op_type == "DequantizeLinear"
               and getattr(producer.get(quantizer(n.input[0]).input[0]), "op_type", "") not in
               means]
    node = readers[a % len(readers)]
    q = quantizer(node.input[0])
    node.input[0] = q.input[0]
    return ""  # the layer, the ReLU left without a quantizer, or a signed quantizer before


# name -> (edit, a fragment of the message; what it needs in the graph)
DEFECTS = {
    "unsupported_op": (unsupported_op, "", None),
    "softmax": (softmax, "Softmax", None),
    "levels_above_T": (levels_above_T, "15 levels > T = 7", "Clip"),
    "product_of_activations": (product_of_activations,
                               "Mul of two activations cannot be spiked", None),
    "dynamic_quantization": (dynamic_quantization, "DynamicQuantizeLinear", "MatMul"),
    "ceil_mode_pool": (ceil_mode_pool, "ceil_mode pooling is not supported", "MaxPool"),
    "constant_on_the_left": (constant_on_the_left,
                             "MatMul with a constant on the left is not supported", "MatMul"),
    "division_by_zero": (division_by_zero, "division by zero", None),
    "gemm_trans_a": (gemm_trans_a, "Gemm with transA is not supported", "Gemm"),
    "float_activation": (float_activation, "", "MatMul"),
}
