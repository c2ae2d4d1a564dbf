"""Simulation on a Ray cluster (the optional extra ``snncc[cluster]``).

The inputs are cut into batches in order. Each Ray worker is an actor that loads the
model once (model.snn's bytes, shipped once through Ray's object store, so no worker
needs the file or ONNX) and simulates the batches it is handed; the driver keeps a few
batches in flight per worker, reads the next batch only then (so a memory-mapped input is
read a batch at a time), and merges the results in input order. A batch's result is a
function of the batch alone and the merge adds integers, so the result equals the local
run's exactly. A worker that dies is replaced by a new one (which loads the model again)
and its batches are run again there; a batch's result does not depend on where it ran.

Addresses: ``local`` starts a Ray instance on this machine (or reuses the one this process
is connected to); ``auto`` joins the cluster in ``RAY_ADDRESS`` (Ray's convention) or the
one ``ray start`` left on this machine; ``HOST:PORT`` (or ``ray://HOST:PORT``) joins that
cluster. An address that does not answer within a few seconds is an error, not a hang.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from snncc.errors import Diagnostic, SnnccError

CONNECT_TIMEOUT = 5.0  # seconds to wait for a cluster's address to answer
IN_FLIGHT = 2  # batches queued per worker
MAX_DEATHS = 3  # worker deaths per worker before a run gives up
KILL_ONCE: Path | None = None  # tests: the first batch to find this file missing dies


def _ray():
    try:
        import ray
    except ImportError:
        raise SnnccError(Diagnostic("--ray needs Ray, which is not installed",
                                    fix="pip install 'snncc[cluster]'")) from None
    return ray


def _address(address: str) -> str | None:
    """The host:port to join (None: start a local instance)."""
    if address == "local":
        return None
    if address == "auto":
        found = os.environ.get("RAY_ADDRESS") or _local_head()
        if not found:
            raise SnnccError(Diagnostic(
                "--ray auto: RAY_ADDRESS is not set and no Ray cluster was started on this "
                "machine", fix="set RAY_ADDRESS=HOST:PORT, run `ray start --head`, or pass "
                "--ray local"))
        return found
    return address


def _local_head() -> str | None:
    """The address `ray start --head` recorded on this machine, if any."""
    try:
        return Path("/tmp/ray/ray_current_cluster").read_text().strip() or None
    except OSError:
        return None


def _reachable(address: str) -> None:
    """Raise a clear error unless something listens at the address (Ray itself would
    retry for minutes)."""
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    why = None
    if not host or not port.isdigit():
        why = "it is not HOST:PORT"
    else:
        try:
            socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT).close()
        except OSError as e:
            why = e.strerror or str(e) or type(e).__name__
    if why is not None:
        raise SnnccError(Diagnostic(
            f"cannot reach the Ray cluster at '{address}' ({why})",
            fix="check the address (the head node's GCS port, 6379 by default) and that "
                "the cluster is up (`ray status`), or pass --ray local"))


def connect(address: str, cpus: int | None = None):
    """Ray, connected to the cluster at `address` (see the module docstring)."""
    ray = _ray()
    if ray.is_initialized():
        return ray
    target = _address(address)
    if target is None:
        ray.init(num_cpus=cpus or os.cpu_count(), include_dashboard=False,
                 log_to_driver=False, configure_logging=False)
        return ray
    _reachable(target)
    try:
        ray.init(address=target, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, TimeoutError, ValueError) as e:
        raise SnnccError(Diagnostic(f"cannot join the Ray cluster at '{target}' ({e})",
                                    fix="check the address and `ray status` there")) from None
    return ray


class Worker:
    """One Ray actor: the model, loaded once by `loader` (from model.snn's bytes, checks
    and all), and the batches it is given."""

    def __init__(self, snn: bytes, loader: Callable[[Path], Any],
                 kill_once: Path | None = None):
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "model.snn").write_bytes(snn)
            self.model = loader(Path(tmp) / "model.snn")
        self.kill_once = kill_once

    def run(self, job: Callable[..., Any], x: np.ndarray, options: dict) -> Any:
        self._maybe_die()
        return job(self.model, x, **options)

    def _maybe_die(self) -> None:
        if self.kill_once is not None and not self.kill_once.exists():
            self.kill_once.touch()
            os._exit(1)  # as a crashed or killed worker process would


def workers_of(ray, model_ref, loader, count: int | None) -> list:
    """The actors: one per CPU of the cluster (or `count`), each loading the model once."""
    n = count or max(1, int(ray.cluster_resources().get("CPU", 1)))
    return [_actor(ray, model_ref, loader) for _ in range(n)]


def _actor(ray, model_ref, loader):
    return ray.remote(num_cpus=1)(Worker).remote(model_ref, loader, KILL_ONCE)


def run_batches(snn: bytes, loader: Callable[[Path], Any], parts: Iterator[np.ndarray],
                address: str, job: Callable[..., Any], options: Callable[[int], dict],
                progress: Callable[[int], None] | None = None,
                workers: int | None = None) -> list:
    """``job(model, batch, **options(k))`` for every batch k of `parts`, on Ray workers
    that load the model from `snn` with `loader`; the results in input order.
    `progress(n)` as a batch of n inputs is done. A batch whose worker died goes to a new
    worker. `job` and `loader` must be importable functions (Ray ships them by name)."""
    ray = connect(address)
    model_ref = ray.put(snn)
    actors = workers_of(ray, model_ref, loader, workers)
    todo = enumerate(parts)
    pending: dict = {}  # object ref -> (batch, its size, its input, worker slot, worker)
    results: dict[int, object] = {}
    free = [slot for slot in range(len(actors)) for _ in range(IN_FLIGHT)]
    deaths = 0

    def submit(k: int, size: int, xb, slot: int) -> None:
        pending[actors[slot].run.remote(job, xb, options(k))] = (k, size, xb, slot,
                                                                 actors[slot])

    try:
        while True:
            while free:
                item = next(todo, None)
                if item is None:
                    break
                k, xb = item
                submit(k, len(xb), ray.put(xb), free.pop())
            if not pending:
                break
            done, _ = ray.wait(list(pending), num_returns=1)
            k, size, xb, slot, actor = pending.pop(done[0])
            try:
                results[k] = _get(ray, done[0])
            except ray.exceptions.RayActorError:
                deaths += 1
                if deaths > MAX_DEATHS * len(actors):
                    raise SnnccError(Diagnostic(
                        f"Ray workers died {deaths} times", fix="see the Ray logs of the "
                        "cluster (`ray logs`); a worker may run out of memory: try a smaller "
                        "--batch-size")) from None
                if actors[slot] is actor:  # not yet replaced (by its other batches)
                    actors[slot] = _actor(ray, model_ref, loader)
                submit(k, size, xb, slot)
                continue
            free.append(slot)
            if progress:
                progress(size)
    finally:
        for a in actors:
            ray.kill(a)
    return [results[k] for k in range(len(results))]


def _get(ray, ref):
    """A batch's result; a snncc error raised in a worker is raised here as itself."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as e:
        cause = getattr(e, "cause", None)
        if isinstance(cause, SnnccError):
            raise SnnccError(*cause.diagnostics) from None
        raise
