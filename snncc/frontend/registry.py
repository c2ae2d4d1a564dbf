"""A table of op handlers by ONNX op type, each with the line the README's supported-ops
table gives it (``becomes``). ``handlers`` and ``quantizers`` each fill one; ``support``
joins them into the tables the importer dispatches on and the README shows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import onnx

from snncc.frontend.context import Context

HandlerFn = Callable[[Context, onnx.NodeProto], None]


@dataclass(frozen=True)
class Handler:
    """How one ONNX op type on an activation is imported, and what it becomes."""

    run: HandlerFn
    becomes: str


class HandlerTable(dict[str, Handler]):
    """op type -> handler."""

    def handles(self, **becomes: str) -> Callable[[HandlerFn], HandlerFn]:
        """Register the decorated function for each op type given, with its README line:
        ``@handles(Relu="absorbed by the following unsigned quantizer")``."""
        def register(fn: HandlerFn) -> HandlerFn:
            for op_type, line in becomes.items():
                assert op_type not in self, f"two handlers for {op_type}"
                self[op_type] = Handler(fn, line)
            return fn
        return register
