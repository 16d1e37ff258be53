"""Figures over seeds: how a mean over repeated runs is written, and whether two of them differ beyond seed noise.

A figure over ``n`` seeds is written ``mean ± std (n=N)`` (sample standard deviation, ``ddof=1``); one seed is the bare
value — a ``±`` over one number would claim a spread nobody measured.

Two variants (fine-tuned vs Scratch-E, say) are compared with **Welch's t-test** (``scipy.stats.ttest_ind`` with
``equal_var=False``: unequal variances, unpaired — each variant's seeds are independent trainings) at two-sided
``ALPHA = 0.05``, one test per comparison, no correction for the several comparisons of a report. The verdict is the
name of the higher-mean variant when p < ALPHA, else ``indistinguishable`` — which means the difference did not exceed
the seed noise with this many seeds, not that the two are equal (with 3 seeds a test detects only large differences).
With fewer than 2 seeds on either side there is no test: the verdict is ``one seed`` and nothing is significant.
Seeds with zero spread on both sides (identical accuracies) give no t statistic: equal means are indistinguishable,
different ones a win for the higher mean (no noise was seen at all).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from typing import Any, Sequence

ALPHA = 0.05
INDISTINGUISHABLE = "indistinguishable"
ONE_SEED = "one seed"
METHOD = "Welch's t-test (scipy.stats.ttest_ind, equal_var=False), two-sided, α = 0.05 per comparison"


def mean_std_text(values: Sequence[float], digits: int = 2, show_n: bool = True) -> str:
    """``—`` for none, the bare value for one seed, ``mean ± std (n=N)`` (sample std) for several."""
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    text = f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"
    return text + (f" (n={len(values)})" if show_n else "")


@dataclass(frozen=True)
class Comparison:
    """Whether variant ``a`` and variant ``b`` differ beyond seed noise (see the module docstring)."""

    a: str
    b: str
    n_a: int
    n_b: int
    mean_a: float | None
    mean_b: float | None
    difference: float | None     # mean_a − mean_b
    p_value: float | None        # None: no test (one seed, or no spread at all)
    verdict: str                 # a | b | "indistinguishable" | "one seed"

    @property
    def significant(self) -> bool:
        """True if the verdict names a winner (neither indistinguishable nor one seed)."""
        return self.verdict not in (INDISTINGUISHABLE, ONE_SEED)

    def to_dict(self) -> dict[str, Any]:
        """The comparison as a JSON-able dict, with ``significant``."""
        return asdict(self) | {"significant": self.significant}


def compare_seeds(a: Sequence[float], b: Sequence[float], name_a: str = "a", name_b: str = "b",
                  alpha: float = ALPHA) -> Comparison:
    """Welch's t-test of two variants' per-seed figures (``a``, ``b``); the verdict names the winner or says
    ``indistinguishable`` / ``one seed``. ``ValueError`` when ``alpha`` is not in (0, 1)."""
    from scipy import stats

    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    a, b = [float(x) for x in a], [float(x) for x in b]
    mean_a = statistics.mean(a) if a else None
    mean_b = statistics.mean(b) if b else None
    diff = None if mean_a is None or mean_b is None else mean_a - mean_b
    if len(a) < 2 or len(b) < 2:
        return Comparison(name_a, name_b, len(a), len(b), mean_a, mean_b, diff, None, ONE_SEED)
    winner = name_a if diff > 0 else name_b
    if statistics.pvariance(a) == 0 and statistics.pvariance(b) == 0:
        return Comparison(name_a, name_b, len(a), len(b), mean_a, mean_b, diff, None,
                          INDISTINGUISHABLE if diff == 0 else winner)
    p = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
    verdict = winner if math.isfinite(p) and p < alpha else INDISTINGUISHABLE
    return Comparison(name_a, name_b, len(a), len(b), mean_a, mean_b, diff, p if math.isfinite(p) else None, verdict)
