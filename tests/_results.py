"""A hand-made results.json document (schema prunebench.results/1) for report tests: every figure chosen by the test."""

from __future__ import annotations

from typing import Any, Sequence

REGIMES = ("finetune", "scratch-e", "scratch-b")


def _latency(runtime: str, batch: int, ms: float) -> dict[str, Any]:
    return {"runtime": runtime, "device": "cpu", "batch": batch, "threads": 1, "n": 30, "median_ms": ms,
            "iqr_ms": ms / 20, "p90_ms": ms * 1.1, "p99_ms": ms * 1.2, "mean_ms": ms, "throughput_ips": batch / ms * 1e3,
            "warmup_calls": 5, "warmup_stable": True, "peak_mem_mb": 1.0, "cpu_median_ms": ms, "cpu_iqr_ms": ms / 20}


def _variant(seed: int, regime: str, top1: float, history: Sequence[float], int8_top1: float | None,
             label: str = "l1-norm-r0.5") -> dict[str, Any]:
    base = regime == "baseline"
    key = f"seed{seed}/baseline" if base else f"seed{seed}/{label}/{regime}"
    macs = 40_000_000 if base else 20_000_000
    ms = 1.0 if base else 0.7
    v = {"id": key, "seed": seed, "regime": regime, "regime_kind": regime, "title": {"baseline": "Baseline",
         "finetune": "Fine-tuned", "scratch-e": "Scratch-E", "scratch-b": "Scratch-B"}[regime],
         "same_architecture": True,
         "prune": None if base else {"method": "l1-norm", "preset": None, "ratio": 0.5, "round_to": None, "options": {},
                                     "name": None, "label": label, "structured": True},
         "accuracy": {"top1": top1, "top5": 90.0, "best_top1": max(history), "best_epoch": len(history),
                      "onnx_top1": top1, "onnx_top5": 90.0, "onnx_top1_gap": 0.0},
         "params": 270_000 if base else 136_000, "macs": macs, "macs_cross_check": {}, "nonzero": None,
         "file_bytes": 1_170_000 if base else 630_000,
         "onnx": {"ok": True, "max_abs_diff": 2e-6, "slim_ok": True, "opset": 20},
         "training": {"epochs": len(history), "lr": 0.1, "wall_s": 1.0,
                      "budget": {"epochs": 11, "R": 1.978} if regime == "scratch-b" else None, "loaded_from": None,
                      "history_top1": list(history)},
         "widths": {}, "alignment": {"multiple": 8, "layers": 19, "misaligned": 0, "examples": []},
         "latency": [_latency("onnxruntime", 1, ms), _latency("onnxruntime", 64, ms * 50)],
         "prune_cost": None if base else {"prune_s": 0.02, "sparse_train_s": None}, "int8": None, "fp16": None}
    if int8_top1 is not None:
        v["int8"] = {"file": "model.int8.onnx", "file_bytes": v["file_bytes"] // 3, "checker_ok": True,
                     "made": {"format": "QDQ", "weights": "int8, per output channel, symmetric",
                              "activations": "uint8, per tensor, asymmetric (U8S8)", "calibrator": "Entropy",
                              "calibration_images": 256, "calibration_sample": "fixed random sample",
                              "preprocess": "quant_pre_process", "library": "onnxruntime quantize_static"},
                     "parity": {"top1_agreement": 0.97, "p99_logit_error_rel": 0.006, "max_logit_error_rel": 0.07,
                                "ok": True, "images": 2000,
                                "tolerance": {"min_top1_agreement": 0.9, "p99_logit_error_rel": 0.05}},
                     "accuracy": {"top1": int8_top1, "top5": 90.0, "fp32_top1": top1,
                                  "drop_points": round(top1 - int8_top1, 4), "tolerance_points": 1.0,
                                  "within_tolerance": top1 - int8_top1 <= 1.0},
                     "latency": [_latency("onnxruntime", 1, ms / 2.5), _latency("onnxruntime", 64, ms * 20)]}
    return v


def make_results(accuracy: dict[str, Sequence[float]], baseline_history: Sequence[float] = (40, 60, 70, 71, 71.1, 71.2),
                 int8_drop: float | None = None) -> dict[str, Any]:
    """``accuracy``: regime → one final top-1 per seed (``baseline`` included); every seed's baseline has
    ``baseline_history``; with ``int8_drop`` every variant has an INT8 file that lost that many points."""
    seeds = list(range(len(accuracy["baseline"])))
    variants, speedups = [], []
    for s in seeds:
        for regime in ("baseline", *REGIMES):
            top1 = accuracy[regime][s]
            epochs = {"baseline": len(baseline_history), "finetune": 2, "scratch-e": len(baseline_history),
                      "scratch-b": 11}[regime]
            hist = list(baseline_history) if regime == "baseline" else [top1 - 1] * (epochs - 1) + [top1]
            v = _variant(s, regime, top1, hist, None if int8_drop is None else top1 - int8_drop)
            variants.append(v)
            if regime != "baseline" and s == 0:
                for batch in (1, 64):
                    speedups.append({"variant": v["id"], "reference": "seed0/baseline", "runtime": "onnxruntime",
                                     "device": "cpu", "batch": batch, "threads": 1, "speedup": 1.43, "ci_low": 1.36,
                                     "ci_high": 1.5, "ci_level": 0.95, "theoretical": 2.0, "efficiency": 0.71})
    return {"schema": "prunebench.results/1", "created": "2026-11-30T00:00:00+00:00",
            "environment": {"cpu": "Test CPU", "cpu_count": 2, "platform": "Linux", "python": "3.11",
                            "versions": {"torch": "2.x", "torch-pruning": "1.6.1", "onnxruntime": "1.x"},
                            "git_commit": "abc1234", "cuda_available": False, "onnxruntime_providers": ["CPU"]},
            "config": {"model": "resnet20", "data": "synthetic", "seeds": seeds, "baseline": {"epochs": 6},
                       "finetune": {"epochs": 2, "lr": 0.001},
                       "bench": {"threads": 1, "batch_sizes": [1, 64], "warmup": 5, "repeats": 30}},
            "data": {"name": "synthetic", "train": 8000, "test": 2000, "num_classes": 10, "input_shape": [3, 32, 32]},
            "counting_rule": "conv + linear MACs", "variants": variants, "speedups": speedups,
            "skipped": [{"runtime": "pytorch", "device": "cuda", "reason": "no CUDA device visible to torch"}]}
