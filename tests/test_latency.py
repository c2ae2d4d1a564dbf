"""Low latency: neuron kinds (if, signed, multi), delays counted from the input's onset,
and the --latency budget. Each kind's step engine is held to a literal per-neuron loop of
its rule and to the integer reference; the budget to its step count and its recorded
agreement to a fresh measurement."""

import json
import subprocess
import sys

import numpy as np
import pytest

import snncc
from snncc import kernels
from snncc import ops as o
from snncc.runtime.latency import MAX_SAMPLES
from snncc.schedule import neuron_layers_on_path, total_steps


def rng(seed=0):
    return np.random.default_rng(seed)


# ---------------------------------------------------------------- the rules, literally


def literal_signed(v0, arrivals, thresholds, steps):
    """One neuron, step by step, in plain Python: the signed rule of ops.Neuron."""
    v, count, train = int(v0), 0, []
    for t in range(steps):
        v += int(arrivals[t]) if t < len(arrivals) else 0
        if count < len(thresholds) and v >= thresholds[count]:
            spike = 1
        elif count > 0 and v < thresholds[count - 1]:
            spike = -1
        else:
            spike = 0
        count += spike
        train.append(spike)
    return train, count


def literal_multi(v0, arrivals, thresholds, steps):
    """One neuron, step by step: the multi-threshold rule (levels still owed, at once)."""
    v, count, train = int(v0), 0, []
    for t in range(steps):
        v += int(arrivals[t]) if t < len(arrivals) else 0
        e = sum(1 for k in range(count, len(thresholds)) if v >= thresholds[k])
        count += e
        train.append(e)
    return train, count


@pytest.mark.parametrize("kind", ["signed", "multi"])
def test_kernels_follow_the_rule_step_by_step(kind):
    """kernels.signed_steps / multi_steps against the literal loop, neuron by neuron, on
    currents of both signs that arrive over several steps."""
    g = rng(1)
    batch, width, levels, steps = 6, 5, 7, 12
    th = np.sort(g.integers(-20, 60, (width, levels)), axis=-1)
    v0 = g.integers(-10, 10, (batch, width))
    cur = g.integers(-25, 30, (steps, batch, width))
    never = np.full((width, 1), 10**6)
    rows = kernels.level_tables(np.concatenate([th, never], axis=-1), (width,), np.float64)
    step_fn = kernels.signed_steps if kind == "signed" else kernels.multi_steps
    dtype = np.int8 if kind == "signed" else np.uint8
    trains, counts = step_fn(v0.astype(np.float64), rows, steps,
                             lambda t: [cur[t].astype(np.float64)], None, None, dtype)
    literal = literal_signed if kind == "signed" else literal_multi
    negatives = 0
    for b in range(batch):
        for i in range(width):
            train, count = literal(v0[b, i], cur[:, b, i], list(th[i]), steps)
            assert list(trains[:, b, i]) == train and counts[b, i] == count
            negatives += train.count(-1)
    if kind == "signed":
        assert negatives > 0  # the rule's other half was exercised


# ---------------------------------------------------------------- whole models


MODELS = ["transformer", "cnn", "transformer_spiking_input"]


def sample(model, n=16, seed=0):
    return rng(seed).uniform(0, 1, (n,) + model.input_shape)


@pytest.mark.parametrize("name", MODELS)
def test_multi_is_exact_in_one_step_a_layer(name, tiny_models):
    model = snncc.compile(tiny_models[name], T=7, neuron="multi")
    x = sample(model)
    ref = model.reference(x)
    step = model.simulate(x, engine="step")
    fast = model.simulate(x, engine="fast", trace=True)
    for layer, codes in ref.items():
        if layer in step.counts:
            np.testing.assert_array_equal(step.counts[layer], codes.astype(np.int64), layer)
    np.testing.assert_array_equal(step.logits_int, fast.logits_int)
    # end to end: one step per neuron layer on the longest path, and one for the readout
    assert model.steps == neuron_layers_on_path(model.graph) + 1
    traced = model.simulate(x, engine="step", trace=True)
    for layer, train in fast.trains.items():  # every code in one step, at t_fire
        np.testing.assert_array_equal(traced.trains[layer], train, layer)
        assert np.count_nonzero(train.sum(axis=(1,) + tuple(range(2, train.ndim)))) <= 1


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("delay", ["none", 0, 1, "exact"])
def test_signed_settles_to_the_code_under_any_delay(name, delay, tiny_models):
    model = snncc.compile(tiny_models[name], T=7, neuron="signed", delay=delay)
    x = sample(model, seed=2)
    ref = model.reference(x)
    result = model.simulate(x, engine="step", trace=True)
    for layer in result.counts:
        np.testing.assert_array_equal(result.counts[layer], ref[layer].astype(np.int64), layer)
        # the net count of the spike train is the count
        net = result.trains[layer].astype(np.int64).sum(axis=0)
        np.testing.assert_array_equal(net, result.counts[layer].astype(np.int64), layer)
    if delay == "none" and name != "cnn":
        assert any((t.astype(np.int8) < 0).any() for t in result.trains.values())


def test_if_with_delays_counts_from_the_onset(tiny_models):
    """--delay N: each neuron fires N steps after every branch that feeds it is under way,
    never later than exact mode."""
    exact = snncc.compile(tiny_models["transformer"], T=7)
    one = snncc.compile(tiny_models["transformer"], T=7, delay=1)
    assert one.steps < exact.steps
    for n in one.graph.ops(o.Neuron):
        assert n.op.t_fire <= exact.graph.node(n.name).op.t_fire


# ---------------------------------------------------------------- --latency


def test_latency_stays_within_budget_and_records_what_it_measured(tiny_models):
    path = tiny_models["transformer"]
    exact = snncc.compile(path, T=7)
    shortest = snncc.compile(path, T=7, delay="none").steps
    budget = (shortest + exact.steps) // 2
    calib = rng(5).uniform(0, 1, (64,) + exact.input_shape)
    model = snncc.compile(path, T=7, latency=budget, calibrate=calib)
    assert model.steps <= budget and total_steps(model.graph) == model.steps
    fitted = model.graph.meta["latency"]
    assert fitted["budget"] == budget and fitted["steps"] == model.steps
    assert fitted["samples"] == min(len(calib), MAX_SAMPLES)
    delays = fitted["delays"]
    assert sorted(delays) == sorted(n.name for n in model.graph.ops(o.Neuron))
    # the recorded agreement is what a fresh run on the same inputs measures
    mine = model.simulate(calib, engine="step")
    ref = exact.simulate(calib)
    assert fitted["decision_agreement"] == float(np.mean(mine.predictions == ref.predictions))
    same = [np.mean(mine.counts[k] == ref.counts[k]) for k in ref.counts]
    assert fitted["code_agreement"] == pytest.approx(float(np.mean(same)), abs=1e-12)
    # and it is no worse than firing at each onset with no delay at all
    zero = snncc.compile(path, T=7, delay=0).simulate(calib, engine="step")
    zero_same = np.mean([np.mean(zero.counts[k] == ref.counts[k]) for k in ref.counts])
    assert (fitted["decision_agreement"], fitted["code_agreement"]) >= (
        float(np.mean(zero.predictions == ref.predictions)), float(zero_same))


def test_signed_latency_cuts_the_run_at_the_budget(tiny_models):
    """Signed neurons under --latency: every firing window ends by the budget; the chosen
    start is the best of the policies tried, and its recorded agreement is re-measured."""
    path = tiny_models["transformer"]
    exact = snncc.compile(path, T=7)
    budget = snncc.compile(path, T=7, delay="none").steps  # the shortest a budget may be
    calib = rng(6).uniform(0, 1, (48,) + exact.input_shape)
    model = snncc.compile(path, T=7, neuron="signed", latency=budget, calibrate=calib)
    assert model.steps == budget
    assert all(n.op.t_last == budget - 1 for n in model.graph.ops(o.Neuron))
    fitted = model.graph.meta["latency"]
    mine = model.simulate(calib, engine="step", trace=True)
    ref = exact.simulate(calib)
    assert fitted["decision_agreement"] == float(np.mean(mine.predictions == ref.predictions))
    same = [np.mean(mine.counts[k] == ref.counts[k]) for k in ref.counts]
    assert fitted["code_agreement"] == pytest.approx(float(np.mean(same)), abs=1e-12)
    assert {t.shape[0] for t in mine.trains.values()} == {budget}  # the run ends there
    # a cut run of the same policy without --latency, by hand, agrees with it
    by_hand = snncc.compile(path, T=7, neuron="signed", delay=fitted["delay"])
    from snncc.backends.sim.engine import run_step
    cut = run_step(by_hand.graph, calib.astype(np.float64), steps=budget)
    np.testing.assert_array_equal(cut.logits_int, mine.logits_int)


def run(*args, cwd):
    return subprocess.run([sys.executable, "-m", "snncc", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.mark.parametrize(("args", "message"), [
    (["--latency", "0"], "--latency must be a positive number of steps, not 0. Fix: e.g. "
                         "--latency 28 (4 T at T = 7)"),
    (["--neuron", "foo"], "unknown neuron kind 'foo'. Fix: use one of if, signed, multi"),
    (["--latency", "20"], "--latency needs inputs to choose the delays on. Fix: pass "
                          "--calibrate DATA (a few hundred inputs)"),
    (["--latency", "2", "--calibrate", "c.npy"],
     "{path}: --latency 2 is too small for this model: with no delay at all its {layers} "
     "neuron layers on "
     "the longest path and their spike windows take {shortest} steps end to end. Fix: pass "
     "--latency {shortest} or more (exact mode takes {exact})"),
    (["--neuron", "multi", "--delay", "2"],
     "--neuron multi sends each code in one step once its input is complete; --delay 2 does "
     "not apply to it. Fix: leave --delay out (multi is exact), or use --neuron if|signed"),
    (["--neuron", "multi", "--latency", "20", "--calibrate", "c.npy"],
     "--neuron multi is exact in one step a layer; --latency does not apply to it. Fix: "
     "leave --latency out, or use --neuron if|signed"),
    (["--delay", "1", "--latency", "20", "--calibrate", "c.npy"],
     "--latency chooses the delays itself; --delay 1 contradicts it. Fix: pass one of "
     "--latency, --delay"),
])
def test_bad_latency_options(args, message, tmp_path, tiny_models):
    path = tiny_models["transformer"]
    exact = snncc.compile(path, T=7)
    shortest = snncc.compile(path, T=7, delay="none").steps
    np.save(tmp_path / "c.npy", rng().uniform(0, 1, (8,) + exact.input_shape))
    proc = run("compile", path, "-o", "out", *args, cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    expected = message.format(shortest=shortest, exact=exact.steps, path=path,
                              layers=neuron_layers_on_path(exact.graph))
    assert proc.stderr == f"error: {expected}\n"
    assert not (tmp_path / "out").exists()


def test_latency_through_the_command(tmp_path, tiny_models):
    path = tiny_models["transformer"]
    x = rng(7).uniform(0, 1, (24,) + snncc.compile(path, T=7).input_shape)
    np.save(tmp_path / "c.npy", x)
    proc = run("compile", path, "--latency", 12, "--calibrate", "c.npy", "-o", "b",
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert report["delay"] == "per-layer" and report["steps"] <= 12
    assert report["latency"]["budget"] == 12 and report["neuron"] == "if"
    assert "latency: " in proc.stdout and "of 12 steps" in proc.stdout
    proc = run("simulate", "b/model.snn", "--input", "c.npy", cwd=tmp_path)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr


@pytest.mark.parametrize("delay", ["none", "0", "1", "4", "20", "1000"])
def test_every_delay_value_compiles_and_simulates(delay, tmp_path, tiny_models):
    """Every --delay value through the commands a user runs: exit 0, no traceback."""
    path = tiny_models["transformer"]
    np.save(tmp_path / "x.npy", rng(3).uniform(0, 1, (6,) + snncc.compile(path).input_shape))
    proc = run("compile", path, "--delay", delay, "-o", "b", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    proc = run("simulate", "b/model.snn", "--input", "x.npy", cwd=tmp_path)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr


# ---------------------------------------------------------------- sweep


def test_sweep_points_are_what_each_setting_gives(tmp_path, tiny_models):
    """Every point of the sweep equals a compile + simulate of the setting it names."""
    from snncc.app.sweep import run_sweep

    path = tiny_models["transformer"]
    exact = snncc.compile(path, T=7)
    x = rng(8).uniform(0, 1, (12,) + exact.input_shape)
    y = exact.simulate(x).predictions[::-1].copy()  # labels the model gets partly wrong
    shortest = snncc.compile(path, T=7, delay="none").steps
    result = run_sweep(path, x, y, T=7, budgets=[shortest, shortest + 7])
    kinds = [(p["kind"], p["steps"]) for p in result["points"]]
    layers = neuron_layers_on_path(exact.graph)
    assert kinds[:2] == [("exact", exact.steps), ("multi", layers + 1)]
    assert [k for k, _ in kinds[2:]] == ["if", "signed", "if", "signed"]
    for p in result["points"]:
        assert p["steps"] <= (exact.steps if p["kind"] in ("exact", "multi") else
                              max(result["budgets"]))
    by_hand = {"exact": exact, "multi": snncc.compile(path, T=7, neuron="multi")}
    for p in result["points"][:2]:
        r = by_hand[p["kind"]].simulate(x)
        assert p["accuracy"] == float(np.mean(r.predictions == y))
        assert p["decision_agreement"] == 1.0 and p["code_agreement"] == 1.0
    signed = result["points"][3]  # without --calibrate: fire at once, cut at the budget
    assert signed["setting"] == f"--neuron signed --delay none, cut at {shortest}"
    from snncc.backends.sim.engine import run_step

    m = snncc.compile(path, T=7, neuron="signed", delay="none")
    r = run_step(m.graph, x.astype(np.float64), steps=shortest)
    assert signed["accuracy"] == float(np.mean(r.predictions == y))


def test_sweep_command_writes_points_and_page(tmp_path, tiny_models):
    path = tiny_models["transformer"]
    x = rng(9).uniform(0, 1, (8,) + snncc.compile(path).input_shape)
    np.save(tmp_path / "x.npy", x)
    shortest = snncc.compile(path, T=7, delay="none").steps
    proc = run("sweep", path, "--input", "x.npy", "--budgets", str(shortest), "--json",
               "s.json", "--html", "s.html", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "s.json").read_text())
    assert [p["kind"] for p in result["points"]] == ["exact", "multi", "if", "signed"]
    page = (tmp_path / "s.html").read_text()
    assert page.count("<svg") == 2 and "end-to-end steps" in page
    # the HTML report shows the curve
    assert run("compile", path, "-o", "b", cwd=tmp_path).returncode == 0
    assert run("simulate", "b/model.snn", "--input", "x.npy", cwd=tmp_path).returncode == 0
    proc = run("report", "b", "--html", "r.html", "--sweep", "s.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Accuracy and operations against end-to-end steps" in (tmp_path / "r.html").read_text()
    proc = run("report", "b", "--html", "r2.html", "--sweep", "x.npy", cwd=tmp_path)
    assert proc.returncode == 1 and proc.stdout == "" and not (tmp_path / "r2.html").exists()
    assert proc.stderr.startswith("error: x.npy: --sweep: not the points of `snncc sweep "
                                  "--json`")
    proc = run("sweep", path, "--input", "x.npy", "--budgets", "0,7", cwd=tmp_path)
    assert proc.returncode == 1 and proc.stderr == (
        "error: --budgets must be positive step counts separated by commas, not '0,7'. "
        "Fix: e.g. --budgets 7,14,21,28\n")


# ---------------------------------------------------------------- operations


@pytest.mark.parametrize("kind", ["multi", "signed"])
def test_spike_events_are_counted_per_line_and_per_signed_spike(kind, tiny_models):
    """SOPs of a spike-driven dense synapse = its input's spike events x fan-out: a -1
    spike is an event (the synapse subtracts), a number on weighted lines is one event
    per set line."""
    from snncc.metrics.measure import measure

    delay = "none" if kind == "signed" else "exact"
    model = snncc.compile(tiny_models["transformer"], T=7, neuron=kind, delay=delay)
    x = sample(model, n=6, seed=4)
    traced = model.simulate(x, engine="step", trace=True)
    counted = measure(model, x, engine="step").counts.layers
    checked, unusual = 0, 0
    for n in model.graph.ops(o.Synapse):
        src = n.inputs[0]
        if n.op.analog or n.op.kind != "dense" or src not in traced.trains:
            continue
        train = traced.trains[src].astype(np.int64)
        if kind == "multi":
            per = np.vectorize(lambda v: bin(int(v)).count("1"))(train)
            unusual += train.max() > 1  # numbers, not unit spikes
        else:
            per = np.abs(train)
            unusual += train.min() == -1
        assert counted[n.name].sops == int(per.sum()) * n.op.weight.shape[1], n.name
        checked += 1
    assert checked > 0 and unusual > 0
