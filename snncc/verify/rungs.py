"""The rungs of the verification ladder: what a rung's result holds (``Rung``), where two
sides first part (``Divergence``) and how it is found, and the comparison of a hardware
simulation with the interpreter. Shared by ``ladder`` and ``hardware``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from snncc import ops as o
from snncc.ir import Graph, layer_names

PASS, FAIL, SKIP, INFO = "pass", "FAIL", "skipped", "reported"
ONNX, INTERPRETER = "onnxruntime ↔ integer reference", "integer reference ↔ interpreter"
RUNGS = 4  # onnxruntime, interpreter, HLS C simulation, RTL simulation
REQUIRE = ("all", "onnx", "hls", "rtl")


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
    name: str = ""  # the layer name (``ir.layer_names``) of `layer`, the IR value

    def describe(self) -> str:
        at = f" at step {self.step}" if self.step is not None else ""
        where = (f"{self.source} [{self.layer}]" if not self.name else self.name
                 if self.name == self.source else f"{self.name} ({self.source})")
        text = (f"{where} sample {self.element[0]} element "
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
    breakdown: Any = field(default=None, repr=False)  # the onnx rung's compare.Agreement

    @property
    def short(self) -> str:
        """The rung's name in the summary: what it checks, without the interpreter side."""
        return self.name.split(" ↔ ")[-1] if self.name != ONNX else "onnxruntime"

    def to_json(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k != "breakdown"}
        d["divergence"] = None if self.divergence is None else {
            **asdict(self.divergence), "element": list(self.divergence.element)}
        if self.breakdown is not None:
            d["onnx"] = self.breakdown.to_json()
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
                     offset: int = 0, sides: tuple[str, str] = ("reference", "interpreter")
                     ) -> Divergence | None:
    """First differing spike of two sets of trains [T, B, ...], layers in topo order."""
    for n in graph.ops(o.Neuron):
        diff = want[n.name] != got[n.name]
        if not diff.any():
            continue
        t = int(np.argmax(diff.reshape(len(diff), -1).any(axis=1)))
        idx = tuple(int(i) for i in np.argwhere(diff[t])[0])
        return Divergence(n.name, n.origin, (idx[0] + offset,) + idx[1:], t,
                          int(want[n.name][t][idx]), int(got[n.name][t][idx]), "spike",
                          sides, layer_names(graph)[n.name])
    return None


def count_divergence(graph: Graph, want: dict[str, np.ndarray], got: dict[str, np.ndarray],
                     sides: tuple[str, str] = ("expected", "got"), offset: int = 0,
                     what: str = "spike count") -> Divergence | None:
    """First differing count [B, ...] of the layers in `got`, in topo order (no time)."""
    for n in graph.ops(o.Neuron):
        if n.name not in got:
            continue
        a, b = np.asarray(want[n.name]), np.asarray(got[n.name]).reshape(want[n.name].shape)
        diff = np.argwhere(a != b)
        if len(diff):
            idx = tuple(int(i) for i in diff[0])
            return Divergence(n.name, n.origin, (idx[0] + offset,) + idx[1:], None,
                              int(a[idx]), int(b[idx]), what, sides, layer_names(graph)[n.name])
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
