"""results.json (versioned schema): every variant's records gathered into one document.

Schema ``prunebench.results/1``::

    {"schema": "prunebench.results/1", "created": ISO-8601, "environment": {...manifest...}, "config": {...plan...},
     "data": {"name", "train", "test", "num_classes", "input_shape", "skipped_images", "skipped_examples",
              "preprocessing": {"layout", "input_size", "dtype", "color", "resize", "crop", "pixel_scale", "mean", "std"}
              (prunebench.data.eval_preprocessing: exactly what evaluation does to an image; the imagenet recipe's
              resize is {"shorter_side", ...} and its crop {"size", "position"}), "storage" (memory | stream),
              "transforms" (cifar | imagenet)},
     "counting_rule": str,
     "variants": [{"id", "seed", "regime", "regime_kind", "title", "same_architecture",
                   "prune": {method, preset, ratio, round_to, options, name, label, structured} | null,
                   "run" (the training run's key: another entry's shared run, or its own id), "shared_with" (labels),
                   "accuracy": {"top1", "top5", "best_top1", "best_epoch", "onnx_top1", "onnx_top5", "onnx_top1_gap"},
                   "params", "macs", "macs_cross_check", "file_bytes", "onnx": {...checks...},
                   "onnx_metadata": {...} (the prunebench.* metadata_props written into its model.onnx, parsed:
                                    docs/onnx-metadata.md; null for runs measured before it existed),
                   "training": {"epochs", "lr", "wall_s", "precision" (the resolved training arithmetic: fp32 | bf16),
                                "budget", "history_top1"}, "widths",
                   "alignment": {"multiple", "layers", "misaligned", "examples"} (conv/linear widths not ×8),
                   "latency": [{"runtime", "device", "batch", "threads", "n", "median_ms", "iqr_ms", "p90_ms", "p99_ms",
                                "mean_ms", "throughput_ips", "warmup_calls", "warmup_stable", "peak_mem_mb", ...}],
                   "int8": null | {"file", "file_bytes", "checker_ok", "made": {format, calibration, ...},
                            "parity": {"top1_agreement", "p99_logit_error_rel", "max_logit_error_rel",
                                       "tolerance", "ok", "images"},
                            "accuracy": {"top1", "top5", "fp32_top1", "drop_points", "tolerance_points",
                                         "within_tolerance"},
                            "latency": [rows as above, timed in the same interleaved run as the fp32 file]},
                   "fp16": null | {same as int8; accuracy.tolerance_points null}}],
     "speedups": [{"variant", "reference", "runtime", "device", "batch", "threads", "speedup", "ci_low", "ci_high",
                   "ci_level", "theoretical", "efficiency"}]   (see prunebench.bench.harness; ``variant`` / ``reference``
                   ids of quantized files end in ``@int8`` / ``@fp16``: X@int8 has two entries, against the baseline's
                   INT8 file and against X's own fp32 file),
     "skipped": [{"runtime"?, "device", "batch"?, "reason"}],
     "stage": {"key", "kind", "digest", "params"}}   (the report stage's stamp: what the document was computed from)

Accuracy is the **final-epoch** test top-1 (primary); ``best_top1`` (best over epochs, as the paper's code reported) is
kept separately and labelled as such. ``training.history_top1`` is the test top-1 after each epoch (the convergence check
of the report reads the baseline's).

``regime`` is the variant's name: baseline, or what a regime plug-in (prunebench/regimes/) adds — finetune | scratch-e |
scratch-b, and for the opt-in regimes ``lottery`` → lottery-lr0.1, lottery-lr0.01 (original init of the large model, replayed
prune) and random-init-lr0.01 (Scratch-E's fresh init at lr 0.01), whose ``training.budget`` is {"init", "lr"};
``scale-family`` → scale-<f>x (the pruned width profile scaled to f × its MACs, trained from scratch), whose
``training.budget`` is {"rule", "factor", "target_macs", "macs", "rel_error", "multiplier", "clamped"}. A ``reduced``
[[prune]] entry (Crowley et al.'s uniformly thinner net) has no finetune variant; its ``prune.options`` may name the entry
it matches (match_macs_of / match_params_of). ``regime_kind`` names the plug-in that added the variant (``lottery`` for
lottery-lr0.1); ``same_architecture`` is false for variants that are not the entry's pruned architecture (scale family).
All additions to schema 1 are additive.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from prunebench.core import paths
from prunebench.core.environment import manifest
from prunebench.core.io import read_json

if TYPE_CHECKING:
    from prunebench.config import ExperimentConfig

SCHEMA = "prunebench.results/1"
COUNTING_RULE = "MACs of Conv and Linear layers for one image (torch FlopCounterMode / 2); BN, activations, pooling and " \
                "shortcuts not counted"


def collect(out: Path, cfg: "ExperimentConfig", variants: Sequence[dict[str, Any]], data: dict[str, Any]) -> dict[str, Any]:
    """results.json from the records on disk of ``variants`` (the pipeline's variant descriptors)."""
    latency: dict[str, list[dict[str, Any]]] = {}
    skipped: list[dict[str, Any]] = []
    speedups: list[dict[str, Any]] = []
    for seed in cfg.seeds:
        path = paths.seed_dir(out, seed) / paths.LATENCY
        if path.exists():
            rec = read_json(path)
            for row in rec["rows"]:
                latency.setdefault(row["variant"], []).append({k: v for k, v in row.items() if k != "variant"})
            skipped += [s for s in rec["skipped"] if s not in skipped]
            speedups += rec.get("speedups", [])
    records = []
    for v in variants:
        d = out / v["directory"]
        m = read_json(d / paths.MEASURE)
        t = read_json(d / paths.TRAIN)
        q = read_json(d / paths.QUANTIZE) if (d / paths.QUANTIZE).exists() and cfg.export.precisions else {}
        records.append({
            "id": v["key"], "seed": v["seed"], "regime": v["regime"], "regime_kind": v["regime_kind"],
            "title": v["title"], "same_architecture": v["same_architecture"],
            "prune": None if v["spec"] is None else {**v["spec"], "label": v["label"], "structured": v["structured"]},
            "accuracy": {**m["accuracy"], "best_top1": t["best_top1"], "best_epoch": t["best_epoch"]},
            "params": m["counts"]["params"], "macs": m["counts"]["macs"], "macs_cross_check": m["macs_cross_check"],
            "nonzero": m.get("nonzero_counts"),
            "file_bytes": m["onnx"]["file_bytes"], "onnx": m["onnx"], "onnx_metadata": m.get("onnx_metadata"),
            "training": {"epochs": t["epochs"], "lr": t.get("config", {}).get("lr"), "wall_s": t.get("wall_s"),
                         "precision": t.get("precision"),
                         "budget": t.get("budget") or None, "loaded_from": t.get("loaded_from"),
                         "history_top1": [h.get("top1") for h in t.get("history", [])]},
            "widths": m["widths"], "alignment": m.get("alignment"),
            "latency": latency.get(v.get("run_key", v["key"]), []),
            "run": v.get("run_key", v["key"]),
            "shared_with": sorted(w["label"] for w in variants if w is not v and w.get("run_key", w["key"])
                                  == v.get("run_key", v["key"])),
            "prune_cost": None if v["spec"] is None else _prune_cost(paths.entry_dir(out, v["seed"], v["label"])),
            **{p: None if p not in q else {**q[p], "latency": latency.get(paths.precision_key(v.get("run_key", v["key"]), p), [])}
               for p in ("int8", "fp16")},
        })
    return {"schema": SCHEMA, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "environment": manifest(), "config": cfg.to_dict(), "data": data, "counting_rule": COUNTING_RULE,
            "variants": records, "speedups": speedups, "skipped": skipped}


def _prune_cost(pdir: Path) -> dict[str, Any]:
    """What choosing the architecture cost: the prune step, and the method's own training phase (slimming, SSS, SFP)."""
    rec = pdir / paths.PRUNED / paths.PRUNE
    sparse = pdir / paths.SPARSE / paths.TRAIN
    return {"prune_s": read_json(rec).get("seconds") if rec.exists() else None,
            "sparse_train_s": read_json(sparse).get("wall_s") if sparse.exists() else None}


