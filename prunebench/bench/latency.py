"""Latency primitives: the per-cell statistics record and simple CPU calls.

The full protocol (all runtimes incl. CUDA events / IOBinding / TensorRT, warm-up until stable, interleaved rounds, peak
memory, bootstrap CIs for speed-ups) lives in ``prunebench.bench.harness``; this module keeps the small building blocks it
shares with older callers: ``LatencyStats``/``summarize`` (median, IQR, p90, p99, mean, n, throughput = batch / median),
thread pinning, ``ort_session`` and the plain ``measure_interleaved`` loop. See docs/latency.md.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from prunebench.bench.runtimes import session_options
from prunebench.bench.stats import summarize_ms

Call = Callable[[], object]


@dataclass
class LatencyStats:
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
        return asdict(self)


def summarize(samples_s: list[float], runtime: str, device: str, batch: int, threads: int) -> LatencyStats:
    """Per-call seconds → the reported statistics (milliseconds; see ``prunebench.bench.stats``)."""
    s = summarize_ms(np.asarray(samples_s, dtype=np.float64) * 1e3)
    return LatencyStats(runtime, device, batch, threads, s.n, round(s.median_ms, 4), round(s.iqr_ms, 4),
                        round(s.p90_ms, 4), round(s.p99_ms, 4), round(s.mean_ms, 4),
                        round(batch / (s.median_ms / 1e3), 2))


def set_torch_threads(threads: int) -> None:
    torch.set_num_threads(threads)


def torch_call(model: nn.Module, batch: int, input_shape: tuple[int, ...], device: torch.device) -> Call:
    model = model.to(device).eval()
    x = torch.randn(batch, *input_shape, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def call() -> object:
        with torch.inference_mode():
            out = model(x)
        sync()
        return out

    return call


def ort_session(path: str | Path, threads: int, provider: str = "CPUExecutionProvider"):
    """A session with pinned, fair threading (see ``runtimes.session_options``) on one provider."""
    import onnxruntime as ort

    return ort.InferenceSession(str(path), sess_options=session_options(threads), providers=[provider])


def ort_call(path: str | Path, batch: int, input_shape: tuple[int, ...], threads: int,
             provider: str = "CPUExecutionProvider") -> Call:
    sess = ort_session(path, threads, provider)
    name = sess.get_inputs()[0].name
    x = np.random.default_rng(0).standard_normal((batch, *input_shape), dtype=np.float32)

    def call() -> object:
        return sess.run(None, {name: x})

    return call


def measure_interleaved(calls: dict[str, Call], warmup: int, repeats: int,
                        min_warmup_s: float = 0.0) -> dict[str, list[float]]:
    """Per-call seconds for each named call, measured round-robin so that drift affects every variant alike."""
    for call in calls.values():
        t_end = time.perf_counter() + min_warmup_s
        for i in range(max(warmup, 1)):
            call()
        while time.perf_counter() < t_end:
            call()
    samples: dict[str, list[float]] = {k: [] for k in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            t0 = time.perf_counter()
            call()
            samples[name].append(time.perf_counter() - t0)
    return samples


def ort_available() -> tuple[bool, str]:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False, "onnxruntime is not installed (pip install 'prunebench[cpu]' or 'prunebench[gpu]')"
    return True, ""


def repeats_for(batch: int, base: int) -> int:
    """Fewer repeats for large batches (each call is long), never fewer than 10."""
    return max(10, base // max(1, batch // 8))
