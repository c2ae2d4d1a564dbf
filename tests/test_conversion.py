"""The numerics contract (DESIGN §3): the SNN equals the integer reference, the integer
reference agrees with onnxruntime, the two engines agree, spike-driven layers only add.
``assert_exact`` (conftest) runs the step engine with the closed form forbidden."""

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import modelgen
import snncc
from conftest import assert_exact
from snncc import ops as o
from snncc.metrics.compare import compare_onnx
from snncc.reference import evaluate


def inputs(model: snncc.CompiledModel, n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (n,) + model.input_shape)


@pytest.mark.parametrize("name", ["cnn", "cnn_po2", "transformer", "transformer_po2",
                                  "transformer_spiking_input"])
def test_exact_mode_is_bit_exact(tiny_models, name):
    model = snncc.compile(tiny_models[name], T=7)
    assert_exact(model, inputs(model, 24))


@pytest.mark.parametrize("name", ["cnn", "transformer", "cnn_po2", "transformer_po2"])
def test_integer_reference_agrees_with_onnxruntime(tiny_models, name):
    model = snncc.compile(tiny_models[name], T=7)
    agreement = compare_onnx(model, tiny_models[name], inputs(model, 200, seed=7))
    assert agreement.code_agreement >= 0.999
    assert agreement.decision_agreement >= 0.999


architectures = st.fixed_dictionaries({
    "tokens": st.sampled_from([4, 6, 8]), "dim": st.sampled_from([4, 8]),
    "heads": st.sampled_from([1, 2]), "blocks": st.integers(1, 2), "po2": st.booleans(),
    "spike_input": st.booleans(), "seed": st.integers(0, 10_000)})


@settings(max_examples=8, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(arch=architectures)
def test_random_transformers_are_bit_exact(tmp_path, arch):
    path = tmp_path / "random.onnx"
    onnx.save(modelgen.tiny_transformer(**arch), path)
    model = snncc.compile(path, T=7)
    assert_exact(model, inputs(model, 8, seed=arch["seed"]))


@settings(max_examples=6, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), po2=st.booleans())
def test_random_cnns_are_bit_exact(tmp_path, seed, po2):
    path = tmp_path / "random.onnx"
    onnx.save(modelgen.tiny_cnn(seed=seed, po2=po2), path)
    model = snncc.compile(path, T=7)
    assert_exact(model, inputs(model, 8, seed=seed))


vits = st.fixed_dictionaries({
    "channels": st.sampled_from([2, 4]), "dim": st.sampled_from([4, 8]),
    "heads": st.sampled_from([1, 2]), "blocks": st.integers(2, 3), "po2": st.booleans(),
    "spike_input": st.booleans(), "overlap_pool": st.booleans(),
    "seed": st.integers(0, 10_000)})


@settings(max_examples=10, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(arch=vits)
def test_random_conv_tokenizer_transformers_are_bit_exact(tmp_path, arch):
    """Conv tokenizer with max pooling, then several attention blocks with residual adds."""
    path = tmp_path / "random.onnx"
    onnx.save(modelgen.tiny_vit(**arch), path)
    model = snncc.compile(path, T=7)
    kinds = {type(n.op) for n in model.graph.topo()}
    assert {o.TDMaxPool, o.TDMatMul, o.AddCurrent, o.Neuron} <= kinds
    assert_exact(model, inputs(model, 8, seed=arch["seed"]))


def test_larger_t_than_levels_is_still_exact(tiny_models):
    model = snncc.compile(tiny_models["transformer"], T=15)
    assert_exact(model, inputs(model, 8))


def test_low_latency_policies_report_conversion_error(tiny_models):
    from snncc.app.simulate import conversion_error

    exact = snncc.compile(tiny_models["transformer"], T=7)
    x = inputs(exact, 32)
    assert all(e == 0 for e in conversion_error(
        exact, x, exact.simulate(x, engine="step").counts).values())
    fast = snncc.compile(tiny_models["transformer"], T=7, delay="none")
    assert fast.steps < exact.steps
    errors = conversion_error(fast, x, fast.simulate(x, engine="step").counts)
    # the attention product's current is back-loaded: a plain IF neuron misses spikes
    assert max(errors.values()) > 0.01
    one = snncc.compile(tiny_models["transformer"], T=7, delay=1)
    assert exact.steps > one.steps > fast.steps


def test_fast_engine_refuses_non_exact_mode(tiny_models):
    model = snncc.compile(tiny_models["cnn"], T=7, delay="none")
    with pytest.raises(snncc.errors.SnnccError, match="the fast engine computes exact mode"):
        model.simulate(inputs(model, 2), engine="fast")


def test_spike_driven_layers_only_add(tiny_models):
    """Only an input layer whose input has more than T levels may multiply."""
    for name in ("cnn", "transformer", "transformer_spiking_input"):
        g = snncc.compile(tiny_models[name], T=7).graph
        for n in g.topo():
            assert isinstance(n.op, o.SNN_OPS + (o.Input,)), n.op.name
            if isinstance(n.op, o.Synapse) and n.op.analog:
                src = g.node(n.inputs[0])
                assert isinstance(src.op, o.SpikeInput) and src.op.analog
                assert src.op.hi - src.op.lo > 7
        spiking = name == "transformer_spiking_input"
        assert any(n.op.analog for n in g.ops(o.Synapse)) is not spiking


def test_batch_one_export_simulates_any_batch(tmp_path):
    path = tmp_path / "b1.onnx"
    b = modelgen.Builder("b1", (1, 8, 8), seed=2, dynamic_batch=False)
    x = b.quant(b.bn(b.conv(b.input_quant(), 1, 4), 4))
    x = b.reshape(b.maxpool(x, 2, 2), [1, 64])  # batch 1 baked into the shape
    onnx.save(b.model([b.linear(x, 64, 10)]), path)
    model = snncc.compile(path, T=7)
    batch = inputs(model, 5)
    whole = model.simulate(batch).logits
    for i in range(5):
        assert np.array_equal(model.simulate(batch[i:i + 1]).logits, whole[i:i + 1])
    assert compare_onnx(model, path, batch).decision_agreement == 1.0


def test_artifact_round_trip_needs_no_onnx(tmp_path, tiny_models):
    model = snncc.compile(tiny_models["transformer"], T=7)
    model.save(tmp_path / "model.snn")
    loaded = snncc.load(tmp_path / "model.snn")
    x = inputs(model, 6)
    assert np.array_equal(loaded.simulate(x).logits_int, model.simulate(x).logits_int)
    assert loaded.T == 7 and loaded.delay == "exact" and loaded.steps == model.steps
    for n in model.graph.topo():  # every array back in its own type (stored narrowed)
        for key, value in n.op.attrs().items():
            if isinstance(value, np.ndarray):
                back = getattr(loaded.graph.node(n.name).op, key)
                assert back.dtype == value.dtype and np.array_equal(back, value), n.name
    with np.load(tmp_path / "model.snn") as stored:
        weights = [stored[k] for k in stored.files if k.endswith(".weight")]
    assert weights and all(w.dtype.itemsize < 8 for w in weights)


def test_readout_logits_are_in_the_models_units(tiny_models):
    model = snncc.compile(tiny_models["transformer_po2"], T=7)
    x = inputs(model, 16)
    from snncc.metrics.compare import run_onnx

    ort_logits = run_onnx(tiny_models["transformer_po2"], x, [])[0]
    # power-of-two scales: every logit is on onnxruntime's float32 grid, exactly
    assert np.array_equal(model.simulate(x).logits.astype(np.float32), ort_logits)


def test_integer_reference_follows_its_definition(tiny_models):
    """Every neuron fed by a dense synapse from codes: its code is #{k : sign·I >= θ_k} of
    the current I = codes · W, computed here in Python integers (no kernel, no BLAS)."""
    model = snncc.compile(tiny_models["transformer"], T=7)
    x = inputs(model, 3)
    g, ref = model.graph, model.reference(x)
    codes = {**{n.name: ref[n.name] for n in g.ops(o.Neuron)},  # by IR value, as syn.inputs
             **{n.name: evaluate(g, {g.inputs[0]: x})[n.name] for n in g.ops(o.SpikeInput)}}
    checked = []
    for n in g.ops(o.Neuron):
        syn = g.node(n.inputs[0])
        if not isinstance(syn.op, o.Synapse) or syn.inputs[0] not in codes:
            continue
        current = codes[syn.inputs[0]].astype(np.int64).astype(object) @ syn.op.weight.astype(
            object)
        shape = current.shape + (n.op.levels,)
        th = np.broadcast_to(n.op.thresholds.astype(object), shape)
        sign = np.broadcast_to(n.op.sign.astype(object), current.shape)
        want = ((sign * current)[..., None] >= th).sum(axis=-1)
        assert np.array_equal(ref[n.name], want.astype(np.int64)), n.name
        checked.append(n.name)
    assert len(checked) == 5  # the analog first layer, Q, K, V and the MLP's hidden layer


def test_fraction_bits_that_overflow_are_refused(tiny_models):
    with pytest.raises(snncc.errors.SnnccError,
                       match="62 fraction bits make this layer's fixed-point currents overflow"):
        snncc.compile(tiny_models["transformer"], T=7, frac_bits=62)
    small = snncc.compile(tiny_models["transformer"], T=7, frac_bits=12)
    assert small.graph.meta["frac_bits"] == 12


def _float32_ties(scale: float, n: int) -> np.ndarray:
    """n float32 inputs in [0, 1] whose quotient by `scale` rounds to another code in
    float32 than in exact arithmetic (float64 division of two float32 numbers rounds as the
    exact quotient): the float32 quotient lands on or across a tie."""
    s = np.float32(scale)
    x = ((np.arange(255) + 0.5) * np.float64(s)).astype(np.float32)
    x = x[(x <= 1) & (np.rint(x / s) != np.rint(x.astype(np.float64) / np.float64(s)))]
    assert len(x) >= n
    return x[:n]


def test_input_codes_at_a_float32_tie_are_explained(tiny_models, monkeypatch):
    """The input quantizer is compared too: codes onnxruntime rounds differently because it
    divides x by the scale in float32 are boundary cases (the later differences on their
    samples downstream), not unexplained ones; any other input code that differs is."""
    import snncc.metrics.compare as compare

    model = snncc.compile(tiny_models["cnn"], T=7)
    (enc,) = model.graph.ops(snncc.ops.SpikeInput)
    x = inputs(model, 16, seed=3).astype(np.float32)
    planted = [(k, 0, k % 8, (3 * k) % 8) for k in range(0, 16, 2)]
    for where, value in zip(planted, _float32_ties(float(np.ravel(enc.op.scale)[0]), 8),
                            strict=True):
        x[where] = value
    a = compare_onnx(model, tiny_models["cnn"], x)
    layer = a.layers[0]
    assert layer.encodes_input and layer.total == x.size
    assert layer.differing == layer.at_boundary == len(planted) and layer.first == planted[0]
    assert a.unexplained == 0
    neurons = a.layers[1:]
    assert a.code_agreement == 1 - sum(la.differing for la in neurons) / sum(
        la.total for la in neurons)

    true_codes = compare._input_codes

    def one_more(model, x):  # a planted bug: one input code off, far from any tie
        codes = true_codes(model, x)
        codes[enc.name][1, 0, 4, 4] += 1
        return codes

    monkeypatch.setattr(compare, "_input_codes", one_more)
    a = compare_onnx(model, tiny_models["cnn"], x)
    assert a.layers[0].unexplained == 1 and a.layers[0].first_unexplained == (1, 0, 4, 4)
