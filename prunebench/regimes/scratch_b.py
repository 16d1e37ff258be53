"""Scratch-B (Liu et al. 2019): the pruned architecture, freshly initialised, trained for the baseline's *compute*:
``epochs = int(E × R)`` with ``R = MACs_base / MACs_pruned`` (nonzero MACs for unstructured masks), lr milestones scaled
with the epochs, no cap unless ``[scratch] b_max_epochs`` (the paper caps only ImageNet). R and the epochs are recorded."""

from __future__ import annotations

from dataclasses import replace

from prunebench.core import paths
from prunebench.core.io import read_json
from prunebench.core.params import to_mapping
from prunebench.regimes.base import Entry, Regime, Start, VariantPlan, fresh_init, register_regime

RULE = "epochs = int(E_base × R), R = MACs_base / MACs_pruned"


def scratch_b_epochs(base_epochs: int, macs_base: int, macs_pruned: int, cap: int | None = None) -> tuple[int, float]:
    """Scratch-B's budget: the same training compute as the baseline, E·R epochs with R = FLOPs_base / FLOPs_pruned.

    Returns (epochs, R), epochs ≥ 1. ``cap`` limits the epochs. ``ValueError`` if ``macs_pruned`` ≤ 0."""
    if macs_pruned <= 0:
        raise ValueError("pruned MACs must be positive")
    r = macs_base / macs_pruned
    epochs = int(base_epochs * r)
    if cap is not None:
        epochs = min(epochs, cap)
    return max(1, epochs), r


def budget_of(entry: Entry) -> tuple[int, float, bool]:
    """(epochs, R, nonzero-MACs counted) from the entry's prune record."""
    rec = read_json(entry.pruned_dir / paths.PRUNE)
    after = rec.get("after_nonzero", rec["after"])   # unstructured: what survives the mask
    epochs, r = scratch_b_epochs(entry.cfg.baseline.epochs, rec["before"]["macs"], after["macs"],
                                 entry.cfg.scratch.b_max_epochs)
    return epochs, r, "after_nonzero" in rec


@register_regime
class ScratchB(Regime):
    """Fresh init, the baseline's compute budget: epochs × MACs ratio."""

    name, title = "scratch-b", "Scratch-B"

    def variants(self, entry: Entry) -> list[VariantPlan]:
        if (entry.pruned_dir / paths.PRUNE).exists():
            estimate: int | None = budget_of(entry)[0]
        elif entry.planned_macs_ratio:
            estimate = scratch_b_epochs(entry.cfg.baseline.epochs, 1_000_000, round(1_000_000 * entry.planned_macs_ratio),
                                        entry.cfg.scratch.b_max_epochs)[0]
        else:
            estimate = None
        return [VariantPlan(self.name, self.name, self.title,
                            {"recipe": to_mapping(entry.cfg.baseline), "rule": RULE, "cap": entry.cfg.scratch.b_max_epochs,
                             "init": "fresh, seed + 1"}, estimate, shareable=True)]

    def start(self, entry: Entry, plan: VariantPlan) -> Start:
        arch, model = fresh_init(entry)
        epochs, r, nonzero = budget_of(entry)
        base = entry.cfg.baseline
        budget = {"rule": RULE, "base_epochs": base.epochs, "R": round(r, 4), "epochs": epochs,
                  "cap": entry.cfg.scratch.b_max_epochs, "macs_counted": "nonzero" if nonzero else "dense"}
        return Start(arch, model, replace(base, epochs=epochs), budget)
