"""Latency: how long one inference call takes on a real runtime, measured so that noise shows instead of hiding.

Protocol: threads pinned (``torch.set_num_threads``; ONNX Runtime intra-op = threads, inter-op = 1, sequential, spinning
off), warm-up calls first, then per-call wall-clock samples (``time.perf_counter``; CUDA calls synchronised). Variants of one
experiment are measured **interleaved** (A B C A B C …) so that machine drift hits all alike. Reported: median, IQR, p90,
p99, mean, n, and throughput (batch / median). Unavailable runtimes are reported as skipped with the reason.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

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
    ms = np.asarray(samples_s) * 1e3
    q25, q50, q75, q90, q99 = np.percentile(ms, [25, 50, 75, 90, 99])
    return LatencyStats(runtime, device, batch, threads, len(ms), round(float(q50), 4), round(float(q75 - q25), 4),
                        round(float(q90), 4), round(float(q99), 4), round(float(ms.mean()), 4),
                        round(batch / (float(q50) / 1e3), 2))


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
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=so, providers=[provider])


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
        return False, "onnxruntime is not installed (pip install 'prunebench[cpu]' or '[gpu]')"
    return True, ""


def repeats_for(batch: int, base: int) -> int:
    """Fewer repeats for large batches (each call is long), never fewer than 10."""
    return max(10, base // max(1, batch // 8))
