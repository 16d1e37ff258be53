"""Figures over seeds: how a mean over repeated runs is written (and, later, compared)."""

from __future__ import annotations

import statistics
from typing import Sequence


def mean_std_text(values: Sequence[float]) -> str:
    """``—`` for none, the value for one seed, ``mean ± std`` (sample std) for several."""
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"
