"""Latency primitives of the harness: the per-cell statistics record (median, IQR, p90, p99, mean, n, throughput =
batch / median), thread pinning and the rounds rule. The protocol itself lives in ``prunebench.bench.harness``; see
docs/latency.md.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from prunebench.bench.stats import summarize_ms


@dataclass
class LatencyStats:
    """One cell's reported statistics: median, IQR, p90, p99 and mean per call (milliseconds), n, and throughput
    (images/s = batch / median)."""

    runtime: str
    device: str
    batch: int
    threads: int
    n: int
    median_ms: float
    iqr_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    throughput_ips: float

    def to_dict(self) -> dict[str, object]:
        """The statistics as a JSON-able dict."""
        return asdict(self)


def summarize(samples_s: list[float], runtime: str, device: str, batch: int, threads: int) -> LatencyStats:
    """Per-call seconds → the reported statistics (milliseconds; see ``prunebench.bench.stats``)."""
    s = summarize_ms(np.asarray(samples_s, dtype=np.float64) * 1e3)
    return LatencyStats(runtime, device, batch, threads, s.n, round(s.median_ms, 4), round(s.iqr_ms, 4),
                        round(s.p90_ms, 4), round(s.p99_ms, 4), round(s.mean_ms, 4),
                        round(batch / (s.median_ms / 1e3), 2))


def set_torch_threads(threads: int) -> None:
    """``torch.set_num_threads(threads)``."""
    torch.set_num_threads(threads)


def repeats_for(batch: int, base: int) -> int:
    """Fewer repeats for large batches (each call is long), never fewer than 10."""
    return max(10, base // max(1, batch // 8))
