"""The kernels' thread pool: one thread per CPU the process may use, each kept on its own
CPU (snncc.kernels._pin), unless SNNCC_PIN_THREADS=0."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBE = """
import json, os, threading, time
from snncc import kernels
seen = {}
def probe(i):
    time.sleep(0.05)  # both threads busy at once: each item on its own worker
    seen[threading.current_thread().name] = sorted(os.sched_getaffinity(0))
kernels.parallel(probe, list(range(2 * kernels.cores())))
print(json.dumps({"cores": kernels.cores(), "process": sorted(os.sched_getaffinity(0)),
                  "threads": seen}))
"""

needs_affinity = pytest.mark.skipif(not hasattr(os, "sched_setaffinity"),
                                    reason="no CPU affinity on this system")


def _probe(cpus: list[int], **env: str) -> dict:
    """The pool's threads' CPU sets in a fresh process limited to `cpus`."""
    code = f"import os; os.sched_setaffinity(0, {set(cpus)!r})\n" + PROBE
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, **env}).stdout
    return json.loads(out)


@needs_affinity
def test_pool_threads_pinned_one_per_cpu():
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("one CPU: nothing to spread")  # CI machines have 2
    got = _probe(cpus[:2])
    assert got["cores"] == 2  # the process's CPUs, not the machine's
    sets = sorted(got["threads"].values())
    assert sets == [[cpus[0]], [cpus[1]]]


@needs_affinity
def test_pool_follows_the_process_affinity():
    cpu = sorted(os.sched_getaffinity(0))[-1]
    got = _probe([cpu])
    assert got["cores"] == 1
    assert got["threads"] == {"MainThread": [cpu]}  # one CPU: on the calling thread


@needs_affinity
def test_pinning_switched_off():
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("one CPU: nothing to spread")
    got = _probe(cpus[:2], SNNCC_PIN_THREADS="0")
    assert got["cores"] == 2
    assert sorted(got["threads"].values()) == [cpus[:2], cpus[:2]]
