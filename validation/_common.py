"""Helpers shared by the validation scripts."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "out"


def relative_deviation(theory, simulation, name: str) -> np.ndarray:
    """Per replica: max over checkpoints and components of |theory - sim|, over the stat's scale."""
    th, sm = getattr(theory.train, name), getattr(simulation.train, name)
    if th.shape[0] == 1 and sm.shape[0] > 1:
        th = np.broadcast_to(th, sm.shape)
    scale = np.abs(sm).max()
    return np.abs(th - sm).reshape(sm.shape[0], -1).max(1) / scale


def fit_exponent(ds, values) -> float:
    """Slope of log(values) against log(d)."""
    return float(np.polyfit(np.log(ds), np.log(values), 1)[0])


def arg(i: int, default):
    return type(default)(sys.argv[i]) if len(sys.argv) > i else default
