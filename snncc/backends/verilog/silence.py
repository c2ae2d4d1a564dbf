"""One at a time: silent runs skipped (`Silence`, docs/verilog.md "Silent runs skipped").

Per value read by an engine that is not a neuron layer, a live bit (`live<bit>`, its bit
of the schedule's `active` vector): cleared at each step's start and set when its buffer
is written with a non-zero word (a spike train: a neuron layer's or a TD max pool's) or,
for a current, once its engine has started (`on<k>`) and sees one of its inputs live.
An engine sees an input as possibly non-zero when the schedule says it is active and it
is live; streaming its producer's rows (it starts with it, before any row is written),
when that producer was not skipped. Every engine but a neuron layer (its membrane may
fire on a silent input) and an engine streaming a producer's rows (it cannot know) is
skipped when every input it reads is silent as it would start (`quiet`). Pure functions
of the lowered engines: the lowering gives every value they read an activity bit.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .design import Buffer, Engine, Silence, Stream

NEVER = "1'b0"
SPIKE_WRITERS = ("snn_neuron", "snn_td_maxpool")  # their buffers hold spike trains


def skippable(engines: list[Engine], streams: list[Stream]) -> list[bool]:
    """Per engine: it may be skipped (snn_ctrl's SKIP)."""
    streamed = {s.engine for s in streams}
    return [e.module != "snn_neuron" and e.index not in streamed for e in engines]


def silence(engines: list[Engine], buffers: dict[str, Buffer], streams: list[Stream],
            sights: list[tuple[int, Buffer, str]], bits: dict[str, int]) -> Silence:
    """The top's live bits, the engines' validity inputs (`sights`: engine, buffer, net)
    and snn_ctrl's `quiet`; `bits`: the schedule's activity bit of each value that has
    one (every value an engine that is not a neuron layer reads among them)."""
    skip = skippable(engines, streams)
    streamed = {(s.engine, s.buffer.index): s for s in streams}
    writer = {e.node.name: e for e in engines}
    live = {v: f"live{bits[v]}" for v in buffers if v in bits and v in writer}

    def bit(v: str) -> str:
        return f"active[{bits[v]}]"

    def data(v: str) -> str:  # the value is active and live (the input codes: active)
        return f"{bit(v)} && {live[v]}" if v in live else bit(v)

    def seen(k: int, b: Buffer) -> str:
        s = streamed.get((k, b.index))
        if s is None:
            return data(b.node.name)
        return f"{bit(b.node.name)} && !skipped[{s.producer}]" if skip[s.producer] else bit(
            b.node.name)

    nets = [(net, seen(k, b)) for k, b, net in sights]
    quiet = [NEVER if not (skip[e.index] and e.reads) else
             "!(" + " || ".join(f"({seen(e.index, buffers[v])})" for v in e.reads) + ")"
             for e in engines]
    conds = {reg: (reg, _condition(writer[v], buffers[v], data), buffers[v].name)
             for v, reg in live.items()}
    kept = [conds[reg] for reg in _used([x for _, x in nets] + quiet, conds)]
    ons = sorted({int(k) for _, c, _ in kept for k in re.findall(r"\bon(\d+)\b", c)})
    mask = sum(1 << k for k, on in enumerate(skip) if on)
    return Silence(mask, kept, nets, quiet, ons)


def _condition(e: Engine, b: Buffer, data: Callable[[str], str]) -> str:
    """Verilog: what sets the live bit of `b`, written by engine e."""
    if e.module in SPIKE_WRITERS:
        return f"{b.name}_we && |{b.name}_wdata"
    terms = " || ".join(f"({data(v)})" for v in e.reads) or NEVER
    return f"(start[{e.index}] || on{e.index}) && ({terms})"


def _used(exprs: list[str], conds: dict[str, tuple[str, str, str]]) -> list[str]:
    """The live bits `exprs` read, and those their conditions read, in `conds`' order."""
    todo = re.findall(r"live\d+", " ".join(exprs))
    used: set[str] = set()
    while todo:
        reg = todo.pop()
        if reg not in used:
            used.add(reg)
            todo += re.findall(r"live\d+", conds[reg][1])
    return [reg for reg in conds if reg in used]
