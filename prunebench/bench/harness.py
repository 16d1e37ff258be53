"""The measurement protocol: variants × runtimes × devices × batch sizes, interleaved, warmed up until stable.

For each (device, batch, runtime) cell:

1. every variant's call is built (an unavailable runtime is recorded in ``skipped`` with its reason, never dropped);
2. each variant is warmed up until the median of its last ``window`` calls is within ``stable_tol`` of the window before
   (at least ``warmup`` calls, at most ``warmup_max`` calls or ``warmup_max_s`` seconds; whether it settled is recorded),
   with peak memory tracked over build + warm-up;
3. one un-recorded priming round, then ``repeats`` rounds A B C | C A B | B C A …, one timed call per variant per round
   (order inside a round a seeded random permutation), so that machine drift (thermal, frequency, a neighbour's job)
   lands on every variant alike; a round budget (``max_cell_s``) may stop early, but never below ``MIN_ROUNDS``;
4. per-call samples are summarised (median, IQR, p90, p99, mean, n, images/s) and each variant's speed-up over its
   reference is a ratio of medians with a paired bootstrap CI over rounds. On CPU the process CPU time of each call is
   summarised too (``cpu_median_ms``): it does not grow when a neighbour steals the core, so on a shared machine it is the
   steadier figure of the work done (with 1 thread it is the latency an idle core would show).

Threads are pinned for the whole measurement (``torch.set_num_threads``; ORT intra-op = threads, inter-op 1, no spinning).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from prunebench.bench import runtimes as rt
from prunebench.bench.latency import LatencyStats, repeats_for, set_torch_threads, summarize
from prunebench.bench.memory import PeakMemory
from prunebench.bench.runtimes import Options, Prepared, Target, Unavailable
from prunebench.core.errors import PrunebenchError, one_line
from prunebench.bench.stats import DEFAULT_BOOTSTRAP, DEFAULT_LEVEL, bootstrap_ratio, median_stable, summarize_ms

MIN_ROUNDS = 10


@dataclass
class HarnessConfig:
    """The latency protocol's settings: batch sizes, threads, runtimes, devices, rounds, warm-up rule (calls;
    ``warmup_max_s`` seconds), optional per-cell time cap (seconds), bootstrap."""

    batch_sizes: tuple[int, ...] = (1,)
    threads: int = 1
    runtimes: tuple[str, ...] = ("pytorch", "onnxruntime")
    devices: tuple[str, ...] = ("cpu", "cuda")
    repeats: int = 50                  # rounds at batch ≤ 8; fewer at large batch (repeats_for), never below 10
    warmup: int = 10                   # minimum warm-up calls per variant
    warmup_max: int = 200
    warmup_max_s: float = 20.0
    window: int = 5
    stable_tol: float = 0.05
    max_cell_s: float | None = None    # stop a cell's rounds after this many seconds (≥ MIN_ROUNDS rounds)
    cudnn_benchmark: bool = True
    n_boot: int = DEFAULT_BOOTSTRAP
    level: float = DEFAULT_LEVEL
    seed: int = 0
    scale_repeats: bool = True         # fewer rounds for large batches (each call is long)
    shuffle_rounds: bool = True        # a seeded random order inside each round (see run_rounds)

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-able dict."""
        return asdict(self)


@dataclass
class Measurement:
    """What a harness run produced: result rows per cell, speed-ups, skipped cells with reasons, settings, and the raw
    per-call samples (seconds) by (variant, runtime, device, batch)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    speedups: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    samples: dict[tuple[str, str, str, int], list[float]] = field(default_factory=dict)  # (variant, rt, dev, batch) → s


def warm_up(timed: Callable[[], float], cfg: HarnessConfig) -> tuple[int, bool]:
    """Call until two consecutive windows agree (see module docstring); returns (calls, settled)."""
    times = [timed()]   # the first call may build an engine (TensorRT) or search conv algorithms: not on the budget
    t_end = time.perf_counter() + cfg.warmup_max_s
    while True:
        if len(times) >= cfg.warmup and median_stable(times, cfg.window, cfg.stable_tol):
            return len(times), True
        if len(times) >= cfg.warmup_max or time.perf_counter() > t_end:
            return len(times), False
        times.append(timed())


def run_rounds(calls: dict[str, Callable[[], float]], rounds: int, max_s: float | None = None,
               cpu: dict[str, list[float]] | None = None, shuffle_seed: int | None = None) -> dict[str, list[float]]:
    """Interleaved rounds: one timed call per variant per round.

    With ``shuffle_seed`` the order inside each round is a fresh (seeded) permutation: a disturbance whose period
    matches the round length (a neighbour's batch loop, a timer tick) would otherwise always hit the same variant.

    ``cpu``, if given, receives each call's process CPU time (``time.process_time``, all threads): unlike wall time it
    does not grow when another process takes the core, so on a shared machine it shows the work a call does.
    """
    for timed in calls.values():   # priming round: the first variant should not pay for the last one's cache state
        timed()
    samples: dict[str, list[float]] = {k: [] for k in calls}
    if cpu is not None:
        cpu.update({k: [] for k in calls})
    names = list(calls)
    rng = np.random.default_rng(shuffle_seed) if shuffle_seed is not None else None
    t0 = time.perf_counter()
    for i in range(rounds):
        order = [names[j] for j in rng.permutation(len(names))] if rng is not None else names
        for name in order:
            timed = calls[name]
            c0 = time.process_time()
            samples[name].append(timed())
            if cpu is not None:
                cpu[name].append(time.process_time() - c0)
        if max_s is not None and i + 1 >= MIN_ROUNDS and time.perf_counter() - t0 > max_s:
            break
    return samples


def plan_cells(cfg: HarnessConfig) -> tuple[list[tuple[str, str]], list[dict[str, Any]]]:
    """(runtime, device) pairs to measure, and the requested ones that cannot exist here (with reasons)."""
    cells, skipped = [], []
    for device in cfg.devices:
        if device not in rt.DEVICES:
            skipped.append({"device": device, "reason": f"unknown device; choose from {', '.join(rt.DEVICES)}"})
    for runtime in cfg.runtimes:
        if runtime not in rt.SUPPORTED:
            skipped.append({"runtime": runtime, "reason": f"unknown runtime; choose from {', '.join(rt.RUNTIMES)}"})
            continue
        devices = [d for d in cfg.devices if d in rt.SUPPORTED[runtime]]
        if not devices:
            skipped.append({"runtime": runtime, "device": ",".join(cfg.devices),
                            "reason": f"{runtime} runs on {', '.join(rt.SUPPORTED[runtime])} only"})
        for device in devices:
            try:
                rt.check(runtime, device)
                cells.append((runtime, device))
            except Unavailable as e:
                skipped.append({"runtime": runtime, "device": device, "reason": str(e)})
    order = {d: i for i, d in enumerate(cfg.devices)}
    cells.sort(key=lambda c: order[c[1]])   # device-major: all CPU cells, then all CUDA cells
    return cells, skipped


def settings(cfg: HarnessConfig) -> dict[str, Any]:
    """What a reader needs to reproduce the figures: threads, warm-up rule, and the GPU math modes in force."""
    s: dict[str, Any] = {**cfg.to_dict(), "torch_threads": torch.get_num_threads(), "timer_cpu": "time.perf_counter",
                         "percentiles": "numpy linear interpolation", "interleaved": True}
    if torch.cuda.is_available():
        s.update({"cudnn_benchmark": cfg.cudnn_benchmark, "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
                  "tf32_cudnn": torch.backends.cudnn.allow_tf32, "cudnn": torch.backends.cudnn.version()})
    return s


def measure(targets: Sequence[Target], cfg: HarnessConfig,
            reference: dict[str, str | Sequence[str]] | None = None,
            log: Callable[[str], None] = lambda s: None) -> Measurement:
    """Measure every target on every available (runtime, device, batch); see the module docstring. ``reference`` maps a
    target id to the id (or ids) its speed-ups are computed against."""
    if not targets:
        raise ValueError("nothing to measure")
    ids = [t.id for t in targets]
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate variant ids: {ids}")
    timed_from: dict[str, str] = {}
    for t in targets:   # one variant, one artifact: a shared file would time one model under two names
        if t.onnx is not None:
            other = timed_from.setdefault(str(Path(t.onnx).resolve()), t.id)
            if other != t.id:
                raise PrunebenchError(f"variants {other} and {t.id} would both be timed from {t.onnx}; give each "
                                      "variant its own file")
    reference = dict(reference or {})
    set_torch_threads(cfg.threads)
    out = Measurement(settings=settings(cfg))
    cells, out.skipped = plan_cells(cfg)
    with tempfile.TemporaryDirectory(prefix="prunebench-bench-") as work:
        opts = Options(cfg.threads, cfg.cudnn_benchmark, Path(work))
        for runtime, device in cells:
            for batch in cfg.batch_sizes:
                _measure_cell(targets, cfg, opts, runtime, device, batch, reference, out, log)
    return out


def _measure_cell(targets: Sequence[Target], cfg: HarnessConfig, opts: Options, runtime: str, device: str, batch: int,
                  reference: dict[str, Any], out: Measurement, log: Callable[[str], None]) -> None:
    prepared: dict[str, Prepared] = {}
    extra: dict[str, dict[str, Any]] = {}
    try:
        for t in targets:
            try:
                with PeakMemory(device, torch_allocator=runtime.startswith("pytorch")) as mem:
                    p = rt.prepare(runtime, t, batch, device, opts)
                    calls, settled = warm_up(p.timed, cfg)
                try:
                    p.check()   # e.g. an ONNX Runtime EP that fell back to the CPU while warming up
                except Unavailable:
                    p.close()
                    raise
            except Unavailable as e:
                out.skipped.append({"runtime": runtime, "device": device, "batch": batch, "variant": t.id,
                                    "reason": str(e)})
                continue
            except rt.run_errors() as e:   # e.g. CUDA out of memory at a large batch
                out.skipped.append({"runtime": runtime, "device": device, "batch": batch, "variant": t.id,
                                    "reason": f"failed: {one_line(str(e))}"})
                continue
            prepared[t.id] = p
            extra[t.id] = {"warmup_calls": calls, "warmup_stable": settled,
                           "peak_mem_mb": None if mem.peak_mb is None else round(mem.peak_mb, 2), "memory": mem.kind,
                           "timer": p.timer, "info": p.info}
        if not prepared:
            return
        rounds = repeats_for(batch, cfg.repeats) if cfg.scale_repeats else cfg.repeats
        cpu: dict[str, list[float]] = {}
        try:
            samples = run_rounds({k: p.timed for k, p in prepared.items()}, rounds, cfg.max_cell_s, cpu,
                                 cfg.seed if cfg.shuffle_rounds else None)
        except rt.run_errors() as e:   # an EP (fallback disabled) or CUDA failing mid-cell: the cell's figures are void
            out.skipped += [{"runtime": runtime, "device": device, "batch": batch, "variant": k,
                             "reason": f"failed while timing: {one_line(str(e))}"} for k in prepared]
            return
    finally:
        for p in prepared.values():
            p.close()
    stats: dict[str, LatencyStats] = {}
    for key, s in samples.items():
        stats[key] = summarize(s, runtime, device, batch, cfg.threads)
        # CPU time per call is a host-side figure: meaningful on CPU, not for a GPU call that waits on the device
        c = summarize_ms(np.asarray(cpu[key]) * 1e3) if device == "cpu" else None
        out.rows.append({"variant": key, **stats[key].to_dict(), **extra[key],
                         "cpu_median_ms": None if c is None else round(c.median_ms, 4),
                         "cpu_iqr_ms": None if c is None else round(c.iqr_ms, 4)})
        out.samples[(key, runtime, device, batch)] = s
    for key, refs in reference.items():
        for ref in ([refs] if isinstance(refs, str) else refs):   # one reference, or several (INT8: dense INT8, own fp32)
            if key not in samples or ref not in samples or key == ref:
                continue
            ci = bootstrap_ratio(samples[ref], samples[key], cfg.n_boot, cfg.level, cfg.seed)
            out.speedups.append({"variant": key, "reference": ref, "runtime": runtime, "device": device, "batch": batch,
                                 "threads": cfg.threads, "speedup": round(ci.ratio, 4), "ci_low": round(ci.low, 4),
                                 "ci_high": round(ci.high, 4), "ci_level": ci.level, "n_boot": ci.n_boot,
                                 "paired": ci.paired, **_theoretical(targets, key, ref, ci.ratio),
                                 **_cpu_speedup(cpu, key, ref, device, cfg)})
    log(f"{runtime}/{device} batch {batch}: " + ", ".join(f"{k} {stats[k].median_ms:.3f} ms" for k in stats))


def _cpu_speedup(cpu: dict[str, list[float]], key: str, ref: str, device: str, cfg: HarnessConfig) -> dict[str, Any]:
    """The same ratio on per-call CPU time (CPU rows only): on a shared machine the wall-clock median can jump between
    "core ours" and "core shared" modes, the CPU time much less (docs/latency.md, reports/latency-repeatability.md)."""
    if device != "cpu" or not cpu.get(key) or not cpu.get(ref):
        return {"cpu_speedup": None, "cpu_ci_low": None, "cpu_ci_high": None}
    ci = bootstrap_ratio(cpu[ref], cpu[key], cfg.n_boot, cfg.level, cfg.seed)
    return {"cpu_speedup": round(ci.ratio, 4), "cpu_ci_low": round(ci.low, 4), "cpu_ci_high": round(ci.high, 4)}


def _theoretical(targets: Sequence[Target], key: str, ref: str, speedup: float) -> dict[str, Any]:
    """MACs ratio (what FLOPs promise) and measured / theoretical (1.0 = every saved MAC became saved time)."""
    by = {t.id: t for t in targets}
    a, b = by[ref].macs, by[key].macs
    if not a or not b:
        return {"theoretical": None, "efficiency": None}
    return {"theoretical": round(a / b, 4), "efficiency": round(speedup / (a / b), 4)}
