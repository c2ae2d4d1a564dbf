"""Simulation on a Ray cluster (issue 14): a local cluster on 127.0.0.1 with two CPUs,
started once for the module (bounded in time) and stopped at the end. Everything a run
returns equals the local run's exactly, a killed worker's batch is retried, and an
address that does not answer is one clear error."""

import json
import re
import signal
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

import snncc
from conftest import IN_CI
from snncc.app.cli import app
from snncc.metrics.measure import measure
from snncc.runtime import cluster

runner = CliRunner()
START_TIMEOUT = 120  # seconds for the local cluster to come up


def cli(*args, env=None):
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200", **(env or {})})


@pytest.fixture(scope="module")
def ray_cluster():
    try:
        import ray
    except ImportError:
        if IN_CI:
            pytest.fail("ray is not installed (make setup installs snncc[cluster])")
        pytest.skip("ray is not installed (pip install 'snncc[cluster]')")

    def too_slow(*_):
        raise TimeoutError(f"the local Ray cluster did not start within {START_TIMEOUT} s")

    before = signal.signal(signal.SIGALRM, too_slow)
    signal.alarm(START_TIMEOUT)
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 _node_ip_address="127.0.0.1", object_store_memory=100 * 2**20)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, before)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def build(tmp_path_factory, tiny_models):
    folder = tmp_path_factory.mktemp("ray")
    assert cli("compile", tiny_models["transformer"], "-o", folder / "b").exit_code == 0
    model = snncc.load(folder / "b" / "model.snn")
    x = np.random.default_rng(7).uniform(0, 1, (23,) + model.input_shape)
    np.save(folder / "x.npy", x)
    np.save(folder / "y.npy", np.arange(23) % 10)
    return folder


def test_api_results_equal_the_local_run(ray_cluster, build):
    model = snncc.load(build / "b" / "model.snn")
    x = np.load(build / "x.npy")
    local = model.simulate(x)
    done = []
    remote = model.simulate(x, ray="local", batch_size=5, progress=done.append)
    assert np.array_equal(remote.logits, local.logits)
    assert np.array_equal(remote.logits_int, local.logits_int)
    assert remote.counts.keys() == local.counts.keys()
    assert all(np.array_equal(remote.counts[k], local.counts[k]) for k in local.counts)
    assert sorted(done) == [3, 5, 5, 5, 5]
    m_local, m_remote = measure(model, x), measure(model, x, ray="local", batch_size=4)
    assert m_remote.counts == m_local.counts and m_remote.spikes == m_local.spikes
    assert m_remote.rasters == m_local.rasters


def test_command_with_ray_writes_the_local_report(ray_cluster, build, tmp_path):
    args = ("simulate", build / "b" / "model.snn", "--input", build / "x.npy", "--labels",
            build / "y.npy")
    res = cli(*args, "--report", tmp_path / "local.json", "--output", tmp_path / "local.npz")
    assert res.exit_code == 0, res.output
    res = cli(*args, "--report", tmp_path / "ray.json", "--output", tmp_path / "ray.npz",
              "--ray", "local", "--batch-size", "6", "--ray-workers", "2",
              env={"TTY_COMPATIBLE": "1"})
    assert res.exit_code == 0, res.output
    frames = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", res.stderr).replace("\r", "\n")
    assert re.search(r"simulating on Ray \(batches\) .* 4/4", frames), frames[-500:]
    local, remote = (json.loads((tmp_path / f).read_text()) for f in ("local.json", "ray.json"))
    assert remote == local
    a, b = np.load(tmp_path / "local.npz"), np.load(tmp_path / "ray.npz")
    assert all(np.array_equal(a[k], b[k]) for k in a.files)


def test_a_killed_worker_batch_is_retried(ray_cluster, build, tmp_path, monkeypatch):
    model = snncc.load(build / "b" / "model.snn")
    x = np.load(build / "x.npy")
    marker = tmp_path / "killed"
    monkeypatch.setattr(cluster, "KILL_ONCE", marker)
    m = measure(model, x, ray="local", batch_size=4)
    assert marker.exists()  # a worker process did die
    local = measure(model, x)
    assert np.array_equal(m.logits_int, local.logits_int)
    assert m.counts == local.counts and m.spikes == local.spikes


def test_unreachable_address_is_one_clear_error(build):
    proc = subprocess.run([sys.executable, "-m", "snncc", "simulate", build / "b" / "model.snn",
                           "--input", build / "x.npy", "--ray", "127.0.0.1:1"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: cannot reach the Ray cluster at '127.0.0.1:1'")
    assert "Traceback" not in proc.stderr and len(proc.stderr.splitlines()) == 1


def test_auto_joins_ray_address_or_says_what_to_do(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.5:6379")
    assert cluster._address("auto") == "10.0.0.5:6379"
    assert cluster._address("local") is None
    monkeypatch.delenv("RAY_ADDRESS")
    monkeypatch.setattr(cluster, "_local_head", lambda: None)
    with pytest.raises(cluster.SnnccError) as e:
        cluster._address("auto")
    assert e.value.diagnostics[0].render() == (
        "--ray auto: RAY_ADDRESS is not set and no Ray cluster was started on this machine. "
        "Fix: set RAY_ADDRESS=HOST:PORT, run `ray start --head`, or pass --ray local")
