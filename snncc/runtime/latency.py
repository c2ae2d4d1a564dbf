"""``--latency STEPS``: per-layer DIF delays chosen from calibration data so that the SNN
stays as close to the quantized ANN as it can within an end-to-end step budget.

The exact model (every neuron fires once its input window has closed) is the reference:
its spike counts are the integer quantized ANN's codes. A neuron with delay d fires from
d steps after the onset of its input (the step from which every branch feeding it is
under way; see schedule.py). Delays cost steps only on the longest path, and the step
engine tells, on the calibration inputs, how many codes and decisions each choice keeps.

For unit-spike (``if``) neurons the search is a hill climb over per-layer delays: it
starts from the largest delay common to all layers that fits the budget, then adds one
step to one layer's delay at a time, keeping the move that agrees best with the exact
model (argmax decisions first, then the fraction of identical codes over all layers),
until no move helps or fits. Each round tries the first CANDIDATES neurons (in graph
order) whose counts differ from exact mode's (every one that differs, on models of up to
CANDIDATES neurons), for at most MAX_ROUNDS rounds: the search costs a bounded number of step-engine
runs whatever the depth. Signed neurons take back early spikes, so for them only the
start matters: the delay policy that agrees best when every firing window is cut at the
budget (``t_last``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from snncc import ops as o
from snncc.backends.sim.engine import SimResult, run_fast, run_step
from snncc.errors import Diagnostic, SnnccError
from snncc.ir import Graph
from snncc.passes.insert_dif import InsertDif
from snncc.schedule import neuron_layers_on_path, total_steps

MAX_SAMPLES = 256  # calibration inputs the search simulates (the first ones)
CANDIDATES = 32  # neurons tried per round: the first ones whose counts differ from exact's
MAX_ROUNDS = 40  # rounds of the hill climb (one delay step added per round)


@dataclass(frozen=True)
class Score:
    decisions: float  # argmax identical to the exact model
    codes: float  # spike counts identical to the exact model, over every neuron

    def key(self) -> tuple[float, float]:
        return (self.decisions, self.codes)


def with_delays(graph: Graph, delays: dict[str, int], neuron: str | None = None) -> Graph:
    """A copy of the exact-mode `graph` with per-neuron delays."""
    neuron = neuron or str(graph.meta.get("neuron", "if"))
    g = graph.copy()
    return InsertDif("exact", neuron, tuple(sorted(delays.items()))).run(g).graph


def cut_at(graph: Graph, budget: int) -> Graph:
    """`graph` with every neuron's firing window ended by step budget-1 (the run is cut)."""
    for n in graph.ops(o.Neuron):
        op = n.op_as(o.Neuron)
        if op.t_last < 0 or op.t_last > budget - 1:
            graph.replace_op(n.name, o.Neuron(op.sign, op.thresholds, op.levels, op.scale,
                                              op.t_fire, op.mode, budget - 1))
    return graph


def _fit_signed(graph: Graph, budget: int, x: np.ndarray, exact: SimResult,
                report: Callable[[int, int], None]) -> Graph:
    """Signed neurons correct early spikes, so the question is only when to start: the
    delay policy (none, or N steps after each input's onset) that agrees best with the
    exact model when the run is cut at `budget` steps."""
    found: tuple[Score, str | int, Graph] | None = None
    policies: list[str | int] = ["none", 0, 1, 2, 3]
    for k, policy in enumerate(policies, start=1):
        g = cut_at(InsertDif(policy, "signed").run(graph.copy()).graph, budget)
        if total_steps(g) <= budget:
            s = score(run_step(g, x), exact)
            if found is None or s.key() > found[0].key():
                found = (s, policy, g)
        report(k, len(policies))
    assert found is not None  # "none" always fits a budget of at least the shortest run
    best, policy, fitted = found
    fitted.meta["latency"] = {
        "budget": budget, "steps": total_steps(fitted), "samples": len(x),
        "delay": policy, "decision_agreement": best.decisions, "code_agreement": best.codes}
    return fitted


def score(result: SimResult, exact: SimResult) -> Score:
    same = [np.mean(result.counts[k] == exact.counts[k]) for k in exact.counts]
    return Score(float(np.mean(result.predictions == exact.predictions)),
                 float(np.mean(same)) if same else 1.0)


def _t_fire(graph: Graph, name: str) -> int:
    return graph.node(name).op_as(o.Neuron).t_fire


def fit(graph: Graph, budget: int, data: np.ndarray,
        progress: Callable[[int, int], None] | None = None) -> Graph:
    """The exact-mode `graph` with delays chosen for `budget` end-to-end steps."""
    x = np.asarray(data, np.float64)[:MAX_SAMPLES]
    names = [n.name for n in graph.ops(o.Neuron)]
    shortest = total_steps(with_delays(graph, dict.fromkeys(names, 0), "if"))
    if budget < shortest:
        raise SnnccError(Diagnostic(
            f"--latency {budget} is too small for this model: with no delay at all its "
            f"{_layers(neuron_layers_on_path(graph))} on the longest path and their spike "
            f"windows take {shortest} steps end to end",
            fix=f"pass --latency {shortest} or more (exact mode takes {total_steps(graph)})"))
    exact = run_fast(graph, x)
    report = progress or (lambda done, total: None)
    if graph.meta.get("neuron") == "signed":
        return _fit_signed(graph, budget, x, exact, report)
    delays = dict.fromkeys(names, uniform_delay(graph, names, budget))
    best, result = _evaluate(graph, delays, x, exact)
    rounds = min(MAX_ROUNDS, 2 * len(names))
    for k in range(1, rounds + 1):
        report(k, rounds)
        move = _best_move(graph, _first_wrong(names, result, exact), delays, budget, x,
                          exact, best)
        if move is None:
            break
        delays, best, result = move
    report(1, 1)
    fitted = with_delays(graph, delays)
    fitted.meta["latency"] = {
        "budget": budget, "steps": total_steps(fitted), "samples": len(x),
        "delays": {k: delays[k] for k in names}, "decision_agreement": best.decisions,
        "code_agreement": best.codes}
    return fitted


def _layers(k: int) -> str:
    return f"{k} neuron layer{'' if k == 1 else 's'}"


def uniform_delay(graph: Graph, names: list[str], budget: int) -> int:
    """The largest delay common to every neuron that fits the budget (no larger than the
    one that already makes every neuron exact)."""
    d = 0
    while d < total_steps(graph):
        wider = with_delays(graph, dict.fromkeys(names, d + 1))
        if total_steps(wider) > budget or total_steps(wider) == total_steps(
                with_delays(graph, dict.fromkeys(names, d))):
            break
        d += 1
    return d


def _evaluate(graph: Graph, delays: dict[str, int], x: np.ndarray, exact: SimResult
              ) -> tuple[Score, SimResult]:
    result = run_step(with_delays(graph, delays), x)
    return score(result, exact), result


def _first_wrong(names: list[str], result: SimResult, exact: SimResult) -> list[str]:
    """The first CANDIDATES neurons (in graph order) whose counts differ from exact mode's:
    errors are fixed where they start, since a deep layer's differences are mostly its
    inputs' (the search tries only these each round)."""
    return [k for k in names if np.any(result.counts[k] != exact.counts[k])][:CANDIDATES]


def _best_move(graph: Graph, names: list[str], delays: dict[str, int], budget: int,
               x: np.ndarray, exact: SimResult, current: Score
               ) -> tuple[dict[str, int], Score, SimResult] | None:
    """The single +1 change of one layer's delay that fits and agrees best, if it helps."""
    found: tuple[dict[str, int], Score, SimResult] | None = None
    now = with_delays(graph, delays)
    for name in names:
        trial = {**delays, name: delays[name] + 1}
        g = with_delays(graph, trial)
        if total_steps(g) > budget or _t_fire(g, name) == _t_fire(now, name):
            continue  # over budget, or capped at exact already
        r = run_step(g, x)
        s = score(r, exact)
        if s.key() > (found[1] if found else current).key():
            found = (trial, s, r)
    return found
