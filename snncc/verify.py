"""`snncc verify`: one ladder from ONNX to RTL on the same inputs.

Each rung compares two neighbours and names the first divergence:

1. onnxruntime ↔ integer reference: activation codes, layer by layer (the time step is
   where the two codes' spike trains part: ``t_fire + min(code_a, code_b)``). Reported
   with its agreement; fails below 99.9 % (DESIGN §3: fixed-point residual sums and
   float32 rounding are the admissible differences).
2. integer reference ↔ interpreter: the step engine's spike trains against the trains
   expanded from the reference codes, step by step; in exact mode they must be equal.
3. interpreter ↔ HLS C simulation and ↔ RTL simulation: per-layer spike counts and
   integer logits, equal bit for bit (see snncc.hwrungs for how they are run).

The first divergence of a rung is the earliest layer in topological order that differs,
then the earliest step, then the first (sample, element).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from snncc import ops as o
from snncc.backends.sim.engine import run_fast, run_step
from snncc.ir import Graph

ONNX_MIN_AGREEMENT = 0.999
CHUNK = 32
PASS, FAIL, SKIP, INFO = "pass", "FAIL", "skipped", "reported"


@dataclass
class Divergence:
    """Where two rungs first part: layer, (sample, *element), time step, both values."""

    layer: str
    source: str
    element: tuple[int, ...]
    step: int | None
    expected: int
    got: int
    what: str  # "code", "spike", "count", "logit"
    sides: tuple[str, str] = ("expected", "got")  # where `expected` and `got` come from

    def describe(self) -> str:
        at = f" at step {self.step}" if self.step is not None else ""
        text = (f"{self.source} [{self.layer}] sample {self.element[0]} element "
                f"{list(self.element[1:])}{at}: {self.what} {self.sides[0]} {self.expected}, "
                f"{self.sides[1]} {self.got}")
        if self.step is None:
            text += f" (no time step: this rung compares {self.what}s over the whole run)"
        return text


@dataclass
class Rung:
    name: str
    status: str  # PASS, FAIL, SKIP or INFO
    agreement: float | None = None
    detail: str = ""
    divergence: Divergence | None = None
    figures: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        d = asdict(self)
        d["divergence"] = None if self.divergence is None else {
            **asdict(self.divergence), "element": list(self.divergence.element)}
        return d


def _earlier(a: Divergence | None, b: Divergence | None, order: dict[str, int]):
    if a is None or b is None:
        return a or b
    ka = (order[a.layer], a.step if a.step is not None else -1)
    kb = (order[b.layer], b.step if b.step is not None else -1)
    return a if ka <= kb else b


def _layer_order(graph: Graph) -> dict[str, int]:
    return {n.name: k for k, n in enumerate(graph.topo())}


# ---------------------------------------------------------------- divergences


def train_divergence(graph: Graph, want: dict[str, np.ndarray], got: dict[str, np.ndarray],
                     offset: int = 0) -> Divergence | None:
    """First differing spike of two sets of trains [T, B, ...], layers in topo order."""
    for n in graph.ops(o.Neuron):
        diff = want[n.name] != got[n.name]
        if not diff.any():
            continue
        t = int(np.argmax(diff.reshape(len(diff), -1).any(axis=1)))
        idx = tuple(int(i) for i in np.argwhere(diff[t])[0])
        return Divergence(n.name, n.origin, (idx[0] + offset,) + idx[1:], t,
                          int(want[n.name][t][idx]), int(got[n.name][t][idx]), "spike",
                          ("reference", "interpreter"))
    return None


def count_divergence(graph: Graph, want: dict[str, np.ndarray], got: dict[str, np.ndarray],
                     sides: tuple[str, str] = ("expected", "got")) -> Divergence | None:
    """First differing count [B, ...] of the layers in `got`, in topo order (no time)."""
    for n in graph.ops(o.Neuron):
        if n.name not in got:
            continue
        a, b = np.asarray(want[n.name]), np.asarray(got[n.name]).reshape(want[n.name].shape)
        diff = np.argwhere(a != b)
        if len(diff):
            idx = tuple(int(i) for i in diff[0])
            return Divergence(n.name, n.origin, idx, None, int(a[idx]), int(b[idx]),
                              "spike count", sides)
    return None


def logit_divergence(want: np.ndarray, got: np.ndarray, readout: str,
                     sides: tuple[str, str] = ("expected", "got"),
                     offset: int = 0) -> Divergence | None:
    got = np.asarray(got).reshape(want.shape)
    diff = np.argwhere(want != got)
    if not len(diff):
        return None
    idx = tuple(int(i) for i in diff[0])
    return Divergence(readout, readout, (idx[0] + offset,) + idx[1:], None, int(want[idx]),
                      int(got[idx]), "integer logit", sides)


# ---------------------------------------------------------------- rungs


def onnx_rung(model, onnx_path: Path | None, x: np.ndarray,
              progress: Callable[[int], None] | None = None) -> Rung:
    name = "onnxruntime ↔ integer reference"
    if onnx_path is None:
        return Rung(name, SKIP, detail="no ONNX model (pass --onnx)")
    from snncc.compare import compare_onnx

    a = compare_onnx(model, onnx_path, x, progress=progress)
    div = None
    for layer in a.layers:
        if layer.first is None or layer.ort_code is None or layer.snn_code is None:
            continue
        n = model.graph.node(layer.name)
        ort, snn = int(layer.ort_code), int(layer.snn_code)
        step = n.op.t_fire + min(ort, snn) if model.delay == "exact" else None
        div = Divergence(layer.name, n.origin, tuple(layer.first), step, ort, snn, "code",
                         ("onnxruntime", "reference"))
        break
    status = PASS if a.code_agreement >= ONNX_MIN_AGREEMENT else FAIL
    detail = (f"codes {a.code_agreement:.4%}, argmax {a.decision_agreement:.2%} "
              f"({a.decisions - a.differing_decisions}/{a.decisions}); needs >= "
              f"{ONNX_MIN_AGREEMENT:.1%} of codes")
    return Rung(name, status, a.code_agreement, detail, div)


def _equal_counts(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> tuple[int, int]:
    """(equal, total) over the neuron layers of `b`."""
    return (sum(int(np.sum(a[k] == b[k])) for k in b), sum(int(b[k].size) for k in b))


def _golden(parts: list) -> dict:
    return {"counts": {k: np.concatenate([p.counts[k] for p in parts]) for k in parts[0].counts},
            "logits": np.concatenate([p.logits_int for p in parts])}


def _chunk_divergence(graph: Graph, ref, step, offset: int) -> Divergence | None:
    div = train_divergence(graph, ref.trains, step.trains, offset)
    if div is None and not np.array_equal(ref.logits_int, step.logits_int):
        (r,) = graph.ops(o.Readout)
        div = logit_divergence(ref.logits_int, step.logits_int, r.name,
                               ("reference", "interpreter"), offset)
    return div


def interpreter_rung(model, x: np.ndarray,
                     progress: Callable[[int], None] | None = None) -> tuple[Rung, dict]:
    """Step engine vs the trains expanded from the reference codes; also returns the step
    engine's counts and integer logits (the golden values of the hardware rungs)."""
    name, g, exact = "integer reference ↔ interpreter", model.graph, model.delay == "exact"
    order = _layer_order(g)
    div, parts, equal, total = None, [], 0, 0
    for start in range(0, len(x), CHUNK):
        chunk = x[start:start + CHUNK]
        step = run_step(g, chunk, trace=exact)
        if exact:
            ref = run_fast(g, chunk, trace=True)
            div = _earlier(div, _chunk_divergence(g, ref, step, start), order)
            same = _equal_counts(ref.counts, step.counts)
        else:
            same = _equal_counts(model.reference(chunk), step.counts)
        equal, total = equal + same[0], total + same[1]
        step.trains = None
        parts.append(step)
        if progress:
            progress(len(chunk))
    agreement = equal / max(total, 1)
    if not exact:
        detail = (f"delay {model.delay}: not exact by design; {agreement:.2%} of spike counts "
                  "equal the reference codes (the rest is conversion error)")
        return Rung(name, INFO, agreement, detail), _golden(parts)
    detail = ("spike trains identical at every step" if div is None
              else f"{agreement:.4%} of spike counts equal")
    return Rung(name, PASS if div is None else FAIL, agreement, detail, div), _golden(parts)


def hardware_rung(name: str, side: str, graph: Graph, golden: dict, got: dict) -> Rung:
    """Compare a hardware simulation's per-layer counts and logits with the interpreter's.

    `got` is {"counts": {layer: [B, ...]}, "logits": [B, ...], "figures": {...}}; layers
    the hardware does not report are not compared.
    """
    sides = ("interpreter", side)
    counts = got.get("counts", {})
    div = count_divergence(graph, golden["counts"], counts, sides)
    (r,) = graph.ops(o.Readout)
    if got.get("logits") is not None:
        div = _earlier(div, logit_divergence(golden["logits"], got["logits"], r.name, sides),
                       _layer_order(graph))
    compared = [k for k in counts if k in golden["counts"]]
    equal = sum(int(np.sum(golden["counts"][k] == np.asarray(counts[k]).reshape(
        golden["counts"][k].shape))) for k in compared)
    total = sum(golden["counts"][k].size for k in compared)
    what = f"{len(compared)} neuron layers" + (" and logits" if "logits" in got else "")
    detail = f"{what} identical" if div is None else f"{what} compared"
    return Rung(name, PASS if div is None else FAIL, equal / total if total else None,
                detail, div, got.get("figures", {}))


def passed(rungs: list[Rung]) -> bool:
    return all(r.status != FAIL for r in rungs)


# ---------------------------------------------------------------- the ladder


def _source_onnx(report: dict | None) -> Path | None:
    path = (report or {}).get("source_path")
    return Path(path) if path and Path(path).is_file() else None


def run_ladder(build: Path, x: np.ndarray, console, onnx_path: Path | None = None,
               rtl_simulator: str = "auto", file: str = "") -> bool:
    """Run every rung that is built and whose tools are present; print the results, record
    them in build/report.json, and return False on a forbidden divergence."""
    import snncc
    from snncc.hwrungs import hardware_rungs
    from snncc.report import read_report, write_report
    from snncc.simulate import progress_bar, progress_step

    model = snncc.load(build / "model.snn")
    x = model.check_input(x, file=file)
    report = read_report(build / "report.json")
    onnx_path = onnx_path or _source_onnx(report)
    with progress_bar(console) as bar:
        with progress_step(bar, "onnxruntime", len(x)) as advance:
            rungs = [onnx_rung(model, onnx_path, x, advance)]
        with progress_step(bar, "interpreter (step engine)", len(x)) as advance:
            rung, golden = interpreter_rung(model, x, advance)
        rungs.append(rung)
        rungs += hardware_rungs(build, model, x, golden, rtl_simulator, bar)
    print_rungs(console, rungs)
    if report is not None:
        report["verify"] = {"inputs": len(x), "rungs": [r.to_json() for r in rungs]}
        write_report(report, build / "report.json")
    return passed(rungs)


def print_rungs(console, rungs: list[Rung]) -> None:
    from rich.table import Table

    t = Table("rung", "result", "agreement", "detail", title="verification ladder")
    style = {PASS: "green", FAIL: "bold red", SKIP: "dim", INFO: "yellow"}
    for r in rungs:
        agreement = "" if r.agreement is None else f"{r.agreement:.4%}"
        t.add_row(r.name, f"[{style[r.status]}]{r.status}[/]", agreement, r.detail)
    console.print(t)
    for r in rungs:
        for key, value in r.figures.items():
            console.print(f"{r.name}: {key} {value}", markup=False)
        if r.divergence is not None:
            console.print(f"{r.name}: first divergence at {r.divergence.describe()}",
                          markup=False)
    failed = [r.name for r in rungs if r.status == FAIL]
    if failed:
        console.print("verify: [bold red]FAILED[/] (" + "; ".join(failed) + ")")
    elif any(r.status == INFO for r in rungs):
        console.print("verify: [green]every rung held to equality agrees[/] (conversion "
                      "error reported, not checked)")
    else:
        console.print("verify: [green]all rungs agree[/]")
