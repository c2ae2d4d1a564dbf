"""The pass base class. A pass is a frozen dataclass with a kebab-case ``name`` (its CLI name)
whose fields are its options; ``run(graph) -> PassResult(graph, changed)``.

Passes register themselves in ``REGISTRY`` (importing ``snncc.passes.pipeline`` loads them all).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from snncc.ir import Graph


@dataclass(frozen=True)
class PassResult:
    graph: Graph
    changed: bool


@dataclass(frozen=True)
class Pass:
    name: ClassVar[str] = ""

    def run(self, graph: Graph) -> PassResult:
        raise NotImplementedError


REGISTRY: dict[str, type[Pass]] = {}


def register(cls: type[Pass]) -> type[Pass]:
    if not cls.name or cls.name in REGISTRY:
        raise ValueError(f"pass name {cls.name!r} missing or taken")
    REGISTRY[cls.name] = cls
    return cls
