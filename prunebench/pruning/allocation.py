"""Per-group widths under a latency budget: a multiple-choice knapsack (pure: numbers in, widths out; numpy only).

Each prunable group offers candidate widths, each with the importance it keeps and the latency it is predicted to add
or save against the dense model (a *delta*, milliseconds; negative = faster). Exactly one candidate per group is
chosen so that ``dense + Σ delta ≤ budget`` and the kept importance Σ is largest (HALP, Shen et al. 2022, solves the
same problem with a latency lookup table).

Solved exactly by dynamic programming over a discretised latency axis: every group's deltas are shifted by their own
minimum (so costs are ≥ 0 and the slack is ``budget − dense − Σ min delta``), costs are rounded **up** to ``bins``
steps of the slack (a chosen plan never exceeds the budget the table predicts; it may leave up to one step per group
unused), then the classic table ``best[b]`` = most importance with cost ≤ b is built group by group. Work is
O(groups × candidates × bins). When even the narrowest plan misses the budget, the fastest plan is returned with
``feasible=False``.

Kept importance of a group at width w (:func:`kept_importance`) is the sum of its w largest channel scores after the
group's scores are divided by their mean, so a group's full importance equals its channel count and criteria whose
scale differs between layers (L1 norms) stay comparable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np


@dataclass(frozen=True)
class Candidate:
    """One width a group may take: channels, kept importance (≥ 0, unitless), predicted latency delta vs the dense model
    (milliseconds, negative = faster)."""

    width: int
    importance: float
    delta_ms: float


@dataclass
class Allocation:
    """The chosen width per group, its kept importance, its predicted latency (dense + Σ delta, milliseconds) and
    whether it meets the budget (False: the fastest plan, which still misses it)."""

    widths: dict[str, int]
    importance: float
    predicted_ms: float
    budget_ms: float
    feasible: bool
    choice: dict[str, Candidate] = field(default_factory=dict)


def kept_importance(scores: Sequence[float], width: int) -> float:
    """Σ of the ``width`` largest scores after dividing by their mean (so all channels kept = channel count). Raises
    ``ValueError`` for a width outside 0..len(scores) or negative scores."""
    s = np.asarray(scores, dtype=np.float64)
    if not 0 <= width <= s.size:
        raise ValueError(f"width {width} outside 0..{s.size}")
    if np.any(s < 0):
        raise ValueError("scores must be ≥ 0")
    mean = s.mean() if s.size else 0.0
    if mean <= 0:
        return float(width)   # all-zero scores: every channel counts the same
    return float(np.sort(s)[::-1][:width].sum() / mean)


def allocate(options: Mapping[str, Sequence[Candidate]], dense_ms: float, budget_ms: float,
             bins: int = 2000) -> Allocation:
    """The candidate per group that keeps the most importance with ``dense_ms + Σ delta ≤ budget_ms`` (exact up to the
    cost rounding described in the module docstring). Raises ``ValueError`` for a group without candidates or
    ``bins < 1``."""
    if bins < 1:
        raise ValueError("bins must be ≥ 1")
    names = list(options)
    for n in names:
        if not options[n]:
            raise ValueError(f"group {n} has no candidate widths")
    mins = {n: min(c.delta_ms for c in options[n]) for n in names}
    fastest = {n: max((c for c in options[n] if c.delta_ms == mins[n]), key=lambda c: c.importance) for n in names}
    slack = budget_ms - dense_ms - sum(mins.values())
    if slack < 0:
        return _result(fastest, dense_ms, budget_ms, feasible=False)
    if slack == 0:
        return _result(fastest, dense_ms, budget_ms, feasible=True)
    step = slack / bins
    neg = -np.inf
    best = np.zeros(bins + 1)                      # most importance with total cost ≤ b (b in steps)
    picks: list[np.ndarray] = []                   # per group: candidate index chosen at each b
    for n in names:
        new = np.full(bins + 1, neg)
        pick = np.full(bins + 1, -1, dtype=np.int64)
        for i, c in enumerate(options[n]):
            cost = math.ceil((c.delta_ms - mins[n]) / step - 1e-9)
            if cost > bins:
                continue
            shifted = np.full(bins + 1, neg)
            shifted[cost:] = best[:bins + 1 - cost] + c.importance
            better = shifted > new
            new[better] = shifted[better]
            pick[better] = i
        best = new
        picks.append(pick)
    b = int(np.argmax(best))   # best is non-decreasing in b; argmax = the cheapest plan at the optimum
    chosen: dict[str, Candidate] = {}
    for n, pick in zip(reversed(names), reversed(picks)):
        c = options[n][int(pick[b])]
        chosen[n] = c
        b -= math.ceil((c.delta_ms - mins[n]) / step - 1e-9)
    return _result({n: chosen[n] for n in names}, dense_ms, budget_ms, feasible=True)


def _result(choice: Mapping[str, Candidate], dense_ms: float, budget_ms: float, feasible: bool) -> Allocation:
    return Allocation({n: c.width for n, c in choice.items()}, float(sum(c.importance for c in choice.values())),
                      float(dense_ms + sum(c.delta_ms for c in choice.values())), float(budget_ms), feasible,
                      dict(choice))


def brute_force(options: Mapping[str, Sequence[Candidate]], dense_ms: float, budget_ms: float) -> Allocation:
    """The exact optimum by enumerating every combination (tests and tiny tables only: the work is the product of the
    candidate counts). Ties keep the first combination found."""
    import itertools

    names = list(options)
    best: tuple[float, tuple[Candidate, ...]] | None = None
    for combo in itertools.product(*(options[n] for n in names)):
        if dense_ms + sum(c.delta_ms for c in combo) <= budget_ms + 1e-12:
            value = sum(c.importance for c in combo)
            if best is None or value > best[0] + 1e-12:
                best = (value, combo)
    if best is None:
        fastest = {n: min(options[n], key=lambda c: c.delta_ms) for n in names}
        return _result(fastest, dense_ms, budget_ms, feasible=False)
    return _result(dict(zip(names, best[1])), dense_ms, budget_ms, feasible=True)
