"""Scratch-E (Liu et al. 2019): the pruned architecture, freshly initialised, trained with the baseline's recipe for the
baseline's number of epochs."""

from __future__ import annotations

from prunebench.core.params import to_mapping
from prunebench.regimes.base import Entry, Regime, Start, VariantPlan, fresh_init, register_regime


@register_regime
class ScratchE(Regime):
    """Fresh init, the baseline's recipe and epochs."""

    name, title = "scratch-e", "Scratch-E"

    def variants(self, entry: Entry) -> list[VariantPlan]:
        recipe = entry.cfg.baseline
        return [VariantPlan(self.name, self.name, self.title, {"recipe": to_mapping(recipe), "init": "fresh, seed + 1"},
                            recipe.epochs, shareable=True)]

    def start(self, entry: Entry, plan: VariantPlan) -> Start:
        arch, model = fresh_init(entry)
        return Start(arch, model, entry.cfg.baseline)
