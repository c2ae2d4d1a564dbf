"""The hardware rungs of `snncc verify`: HLS C simulation and RTL simulation.

(Placeholder until the backends land: both rungs report 'skipped'.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from snncc.verify import SKIP, Rung


def hardware_rungs(build: Path, model, x: np.ndarray, golden: dict, rtl_simulator: str,
                   bar) -> list[Rung]:
    rungs = []
    if (build / "hls").is_dir():
        rungs.append(Rung("interpreter ↔ HLS C simulation", SKIP, detail="not implemented"))
    if (build / "verilog").is_dir():
        rungs.append(Rung("interpreter ↔ RTL simulation", SKIP, detail="not implemented"))
    return rungs
