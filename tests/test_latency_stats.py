"""The harness's statistics and protocol pieces on known inputs (no timing assertions)."""

import numpy as np
import pytest
import torch

from prunebench.bench import runtimes as rt
from prunebench.bench.harness import HarnessConfig, plan_cells, run_rounds, warm_up
from prunebench.bench.latency import repeats_for, summarize
from prunebench.bench.stats import (
    bootstrap_ratio, coefficient_of_variation, median_stable, ratio_of_medians, summarize_ms,
)


def test_summary_of_known_samples():
    s = summarize_ms(list(range(1, 101)))          # 1 … 100 ms
    assert s.n == 100 and s.median_ms == 50.5 and s.min_ms == 1
    assert s.q25_ms == pytest.approx(25.75) and s.q75_ms == pytest.approx(75.25) and s.iqr_ms == pytest.approx(49.5)
    assert s.p90_ms == pytest.approx(90.1) and s.p99_ms == pytest.approx(99.01) and s.mean_ms == 50.5


def test_latency_stats_from_seconds():
    st = summarize([0.002, 0.004, 0.003, 0.1], "onnxruntime", "cpu", 8, 1)   # one outlier
    assert st.n == 4 and st.median_ms == 3.5 and st.throughput_ips == round(8 / 0.0035, 2)
    assert st.mean_ms == pytest.approx(27.25)   # the mean is dragged by the outlier, the median is not
    assert set(st.to_dict()) >= {"runtime", "device", "batch", "threads", "median_ms", "iqr_ms", "p90_ms", "p99_ms"}


def test_summary_rejects_empty():
    with pytest.raises(ValueError):
        summarize_ms([])


def test_bootstrap_ci_contains_the_true_ratio():
    """Log-normal samples with medians 3 ms and 2 ms: true ratio 1.5. The 95 % CI must cover it in (nearly) every
    replication and exclude 1.0 (a real speed-up is detected)."""
    covered = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        a = 3.0 * rng.lognormal(0.0, 0.15, 60)
        b = 2.0 * rng.lognormal(0.0, 0.15, 60)
        ci = bootstrap_ratio(a, b, n_boot=1000, seed=seed)
        assert ci.low <= ci.ratio <= ci.high and ci.low > 1.0 and ci.paired
        covered += ci.low <= 1.5 <= ci.high
    assert covered >= 34   # ≥ 85 % of 40 at a nominal 95 %


def test_paired_bootstrap_cancels_common_drift():
    """Both variants slow down together (drift); pairing by round keeps the ratio's CI tight."""
    drift = np.linspace(1.0, 2.0, 50)
    noise = np.random.default_rng(0).normal(1.0, 0.01, 50)
    a, b = 4.0 * drift * noise, 2.0 * drift
    paired = bootstrap_ratio(a, b, seed=1)
    unpaired = bootstrap_ratio(a, b, seed=1, paired=False)
    assert paired.low <= 2.0 <= paired.high
    assert (paired.high - paired.low) < (unpaired.high - unpaired.low) / 3


def test_bootstrap_validates_inputs():
    with pytest.raises(ValueError):
        bootstrap_ratio([], [1.0])
    with pytest.raises(ValueError):
        bootstrap_ratio([1.0, 2.0], [1.0], paired=True)
    assert not bootstrap_ratio([1.0, 2.0, 3.0], [1.0]).paired
    assert ratio_of_medians([2, 4, 6], [1, 2, 3]) == 2.0


def test_coefficient_of_variation():
    assert coefficient_of_variation([10.0]) == 0.0
    assert coefficient_of_variation([9.0, 10.0, 11.0]) == pytest.approx(0.1)


def test_warm_up_stops_when_the_median_settles():
    times = iter([5.0, 4.0, 3.0, 2.0, 1.5] + [1.0] * 100)
    cfg = HarnessConfig(warmup=3, window=5, stable_tol=0.05, warmup_max=100)
    calls, settled = warm_up(lambda: next(times), cfg)
    # call 13: median of calls 9–13 (1.0) equals the median of calls 4–8 (2, 1.5, 1, 1, 1 → 1.0); at 12 it was 1.5
    assert settled and calls == 13
    assert median_stable([1.0] * 10, 5, 0.0) and not median_stable([1.0] * 9, 5, 0.5)


def test_warm_up_gives_up_at_the_cap_and_says_so():
    times = iter(range(1, 1000))   # never settles: grows by a lot every call
    calls, settled = warm_up(lambda: float(next(times)) ** 3, HarnessConfig(warmup=1, warmup_max=30, stable_tol=0.01))
    assert calls == 30 and not settled


def test_rounds_are_interleaved():
    order = []
    calls = {k: (lambda k=k: order.append(k) or 0.001) for k in "ABC"}
    samples = run_rounds(calls, rounds=4)
    assert order == list("ABC") * 5         # one priming round, then 4 recorded rounds, A B C A B C …
    assert {k: len(v) for k, v in samples.items()} == {"A": 4, "B": 4, "C": 4}


def test_shuffled_rounds_still_hold_every_variant_once_per_round():
    order = []
    calls = {k: (lambda k=k: order.append(k) or 0.001) for k in "ABC"}
    cpu = {}
    samples = run_rounds(calls, rounds=20, cpu=cpu, shuffle_seed=0)
    rounds = [order[i:i + 3] for i in range(3, len(order), 3)]          # after the priming round
    assert all(sorted(r) == list("ABC") for r in rounds) and len(rounds) == 20
    assert len({tuple(r) for r in rounds}) > 1                           # the order does change
    assert {k: len(v) for k, v in cpu.items()} == {"A": 20, "B": 20, "C": 20} == {k: len(v) for k, v in samples.items()}


def test_repeats_scale_down_for_large_batches_but_never_below_ten():
    assert repeats_for(1, 50) == 50 and repeats_for(64, 50) == 10 and repeats_for(16, 50) == 25


def test_unavailable_runtimes_are_reported_with_reasons():
    cfg = HarnessConfig(runtimes=("pytorch", "onnxruntime", "onnxruntime-trt", "pytorch-cudagraph", "tvm"),
                        devices=("cpu", "cuda"))
    cells, skipped = plan_cells(cfg)
    assert ("pytorch", "cpu") in cells and ("onnxruntime", "cpu") in cells
    reasons = {(s.get("runtime"), s.get("device")): s["reason"] for s in skipped}
    assert "unknown runtime" in reasons[("tvm", None)]
    if not torch.cuda.is_available():
        assert reasons[("pytorch", "cuda")].startswith("no CUDA device visible to torch")
        assert ("pytorch-cudagraph", "cuda") in reasons
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert "onnxruntime-gpu" in reasons[("onnxruntime", "cuda")]
        assert "TensorrtExecutionProvider" in reasons[("onnxruntime-trt", "cuda")]
    # every requested (runtime, device) is either measured or skipped with a reason: nothing silently dropped
    for runtime in cfg.runtimes:
        for device in cfg.devices:
            if runtime in rt.SUPPORTED and device in rt.SUPPORTED[runtime]:
                assert (runtime, device) in cells or (runtime, device) in reasons


def test_cpu_only_runtime_request_on_cpu_is_explained():
    _, skipped = plan_cells(HarnessConfig(runtimes=("onnxruntime-e2e",), devices=("cpu",)))
    assert skipped == [{"runtime": "onnxruntime-e2e", "device": "cpu", "reason": "onnxruntime-e2e runs on cuda only"}]


def test_bare_onnx_target_has_no_pytorch_model():
    with pytest.raises(rt.Unavailable, match="no PyTorch model"):
        rt.prepare("pytorch", rt.Target("x", (3, 8, 8), onnx=None, model=None), 1, "cpu", rt.Options())
