"""One error family for everything a user can get wrong.

A `Diagnostic` names where the problem is (file, node, op), what is wrong and what to do.
`SnnccError` carries one or more of them; the CLI prints them and exits 1.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Diagnostic:
    """One user-facing problem: where, what, and the fix."""

    message: str
    node: str = ""
    op: str = ""
    fix: str = ""
    file: str = ""

    def render(self) -> str:
        where = ": ".join(p for p in (self.file, self._node_part()) if p)
        text = f"{where}: {self.message}" if where else self.message
        return f"{text}. Fix: {self.fix}" if self.fix else text

    def _node_part(self) -> str:
        if self.node and self.op:
            return f"node '{self.node}' ({self.op})"
        return f"node '{self.node}'" if self.node else ""

    def to_json(self) -> dict[str, str]:
        return {"file": self.file, "node": self.node, "op": self.op,
                "message": self.message, "fix": self.fix}


class SnnccError(Exception):
    """A problem with the user's input; never a bug in snncc."""

    def __init__(self, diagnostics: Diagnostic | str | Iterable[Diagnostic]):
        if isinstance(diagnostics, str):
            diagnostics = [Diagnostic(diagnostics)]
        elif isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics: list[Diagnostic] = list(diagnostics)
        super().__init__("\n".join(d.render() for d in self.diagnostics))

    def with_file(self, file: str) -> SnnccError:
        """The same diagnostics, each naming `file` if it named none."""
        return SnnccError(
            Diagnostic(d.message, d.node, d.op, d.fix, d.file or file) for d in self.diagnostics
        )


class PassError(SnnccError):
    """A pass failed; the message names it and the passes that ran before it."""


def raise_if(diagnostics: list[Diagnostic]) -> None:
    """Collect-then-raise: raise once with every problem found."""
    if diagnostics:
        raise SnnccError(diagnostics)
