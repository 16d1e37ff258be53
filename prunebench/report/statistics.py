"""The comparisons the paper makes, per pruned model, over seeds: fine-tuned vs Scratch-E vs Scratch-B (and vs a
`reduced` entry matched to the model's cost), each tested against the seed noise by
:func:`prunebench.metrics.seeds.compare_seeds` (Welch's t-test)."""

from __future__ import annotations

from typing import Any

from prunebench.metrics.seeds import Comparison, compare_seeds

PAIRS = (("finetune", "scratch-e"), ("finetune", "scratch-b"), ("scratch-e", "scratch-b"))
TITLES = {"finetune": "Fine-tuned", "scratch-e": "Scratch-E", "scratch-b": "Scratch-B"}


def top1_by_seed(results: dict[str, Any], label: str, regime: str) -> list[float]:
    """Final-epoch top-1 of one (pruned model, regime) variant, one value per seed."""
    return [v["accuracy"]["top1"] for v in results["variants"]
            if v["prune"] and v["prune"]["label"] == label and v["regime"] == regime]


def _reduced_of(results: dict[str, Any], label: str) -> list[str]:
    """Labels of `reduced` entries matched to ``label``'s cost."""
    out = []
    for v in results["variants"]:
        p = v["prune"]
        opts = (p or {}).get("options") or {}
        if p and p["method"] == "reduced" and label in (opts.get("match_macs_of"), opts.get("match_params_of")):
            out.append(p["label"])
    return list(dict.fromkeys(out))


def comparisons(results: dict[str, Any], labels: list[str]) -> list[tuple[str, Comparison]]:
    """(pruned model, comparison) for every pair the paper makes that the run has."""
    out = []
    for label in labels:
        have = {r: top1_by_seed(results, label, r) for r in TITLES}
        for a, b in PAIRS:
            if have[a] and have[b]:
                out.append((label, compare_seeds(have[a], have[b], TITLES[a], TITLES[b])))
        for red in _reduced_of(results, label):
            for r in ("scratch-e", "scratch-b"):
                theirs = top1_by_seed(results, red, r)
                for mine in ("finetune", r):
                    if theirs and have[mine]:
                        out.append((label, compare_seeds(have[mine], theirs, TITLES[mine], f"{red} {TITLES[r]}")))
    return out


def seed_count(results: dict[str, Any]) -> int:
    """Number of distinct seeds among the variants of ``results``."""
    return len({v["seed"] for v in results["variants"]})


def run_id(v: dict[str, Any]) -> str:
    """The id a results.json variant was measured under: its training run's (shared from-scratch runs are measured
    once)."""
    return v.get("run", v["id"])


def find_speedup(results: dict[str, Any], variant: str, reference: str,
                 cell: tuple[str, str, int, int]) -> dict[str, Any] | None:
    """The ``speedups`` entry of ``variant`` against ``reference`` in ``cell`` = (runtime, device, batch, threads)."""
    return next((s for s in results.get("speedups", []) if s["variant"] == variant and s["reference"] == reference
                 and (s["runtime"], s["device"], s["batch"], s["threads"]) == cell), None)
