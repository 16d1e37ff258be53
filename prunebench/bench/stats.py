"""Robust summaries of latency samples and bootstrap confidence intervals for speed-ups (numpy only).

Why medians and percentiles, not mean ± std: per-call latency on a shared machine is right-skewed (a scheduler hiccup adds
milliseconds, nothing subtracts them), so the mean moves with every outlier while the median does not. Percentiles use
numpy's default linear interpolation (``np.percentile(..., method="linear")``).

Speed-ups are ratios of medians. Their uncertainty comes from a percentile bootstrap: resample the per-call samples with
replacement, recompute the ratio, take the central ``level`` interval. Variants measured interleaved are *paired* (round i of
A ran next to round i of B), so by default whole rounds are resampled together, which keeps drift common to both sides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

DEFAULT_BOOTSTRAP = 2000
DEFAULT_LEVEL = 0.95


@dataclass(frozen=True)
class Summary:
    """Order statistics of one sample set, in milliseconds."""

    n: int
    median_ms: float
    q25_ms: float
    q75_ms: float
    iqr_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float


def summarize_ms(samples_ms: Sequence[float]) -> Summary:
    """Order statistics (n, median, quartiles, IQR, p90, p99, mean, min) of per-call times in milliseconds. Raises
    ``ValueError`` for no samples."""
    ms = np.asarray(samples_ms, dtype=np.float64)
    if ms.size == 0:
        raise ValueError("no samples to summarise")
    q25, q50, q75, q90, q99 = np.percentile(ms, [25, 50, 75, 90, 99])
    return Summary(int(ms.size), float(q50), float(q25), float(q75), float(q75 - q25), float(q90), float(q99),
                   float(ms.mean()), float(ms.min()))


def ratio_of_medians(numerator: Sequence[float], denominator: Sequence[float]) -> float:
    """median(numerator) / median(denominator) (both in the same unit)."""
    return float(np.median(numerator) / np.median(denominator))


@dataclass(frozen=True)
class RatioCI:
    """median(numerator) / median(denominator) with a bootstrap interval."""

    ratio: float
    low: float
    high: float
    level: float
    n_boot: int
    paired: bool

    def to_dict(self) -> dict[str, float | int | bool]:
        """The ratio and its interval (4 decimals), level, bootstrap size and whether it was paired, as a dict."""
        return {"ratio": round(self.ratio, 4), "ci_low": round(self.low, 4), "ci_high": round(self.high, 4),
                "ci_level": self.level, "n_boot": self.n_boot, "paired": self.paired}


def bootstrap_ratio(numerator: Sequence[float], denominator: Sequence[float], n_boot: int = DEFAULT_BOOTSTRAP,
                    level: float = DEFAULT_LEVEL, seed: int = 0, paired: bool | None = None) -> RatioCI:
    """Percentile-bootstrap CI of median(numerator)/median(denominator).

    ``paired`` (default: when both have the same length) resamples the same indices on both sides, as is right for samples
    taken in interleaved rounds; otherwise each side is resampled independently.
    """
    a = np.asarray(numerator, dtype=np.float64)
    b = np.asarray(denominator, dtype=np.float64)
    if a.size == 0 or b.size == 0:
        raise ValueError("bootstrap needs samples on both sides")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if paired is None:
        paired = a.size == b.size
    if paired and a.size != b.size:
        raise ValueError("paired bootstrap needs equally many samples on both sides")
    rng = np.random.default_rng(seed)
    ia = rng.integers(0, a.size, size=(n_boot, a.size))
    ib = ia if paired else rng.integers(0, b.size, size=(n_boot, b.size))
    ratios = np.median(a[ia], axis=1) / np.median(b[ib], axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(ratios, [alpha, 1.0 - alpha])
    return RatioCI(ratio_of_medians(a, b), float(low), float(high), level, n_boot, bool(paired))


def coefficient_of_variation(values: Sequence[float]) -> float:
    """Sample standard deviation (ddof=1) over the mean; 0 for a single value."""
    v = np.asarray(values, dtype=np.float64)
    if v.size < 2:
        return 0.0
    return float(v.std(ddof=1) / v.mean())


def median_stable(times: Sequence[float], window: int, tol: float) -> bool:
    """True when the median of the last ``window`` values is within ``tol`` (relative) of the window before it.

    The warm-up stop rule: caches, allocator arenas, cuDNN/ORT algorithm search and CPU frequency all settle during the
    first calls; once two consecutive windows agree, further warm-up no longer changes what is measured.
    """
    if window < 1 or len(times) < 2 * window:
        return False
    last = float(np.median(times[-window:]))
    prev = float(np.median(times[-2 * window:-window]))
    return abs(last - prev) <= tol * prev
