"""Fine-tuning (Li et al. 2017; Liu et al. 2019's "fine-tuned"): the pruned model keeps its inherited weights and trains
with a small constant learning rate (``[finetune]``: 40 epochs at lr 0.001 by default). Methods without inherited
weights (``scratch_only``, e.g. ``reduced``) get no fine-tuned variant."""

from __future__ import annotations

from dataclasses import replace

from prunebench.config import ExperimentConfig, TrainConfig
from prunebench.core.params import to_mapping
from prunebench.pruning.base import load_pruned
from prunebench.regimes.base import Entry, Regime, Start, VariantPlan, register_regime


def finetune_config(base: TrainConfig, epochs: int = 40, lr: float = 0.001) -> TrainConfig:
    """``base`` with the fine-tuning epochs and a constant lr (no milestones): the paper's 40 epochs at 0.001."""
    return replace(base, epochs=epochs, lr=lr, milestones=())


def finetune_recipe(cfg: ExperimentConfig) -> TrainConfig:
    """The baseline recipe with the plan's [finetune] epochs and constant lr."""
    return finetune_config(cfg.baseline, cfg.finetune.epochs, cfg.finetune.lr)


@register_regime
class Finetune(Regime):
    """Inherited weights, constant small lr ([finetune])."""

    name, title = "finetune", "Fine-tuned"

    def variants(self, entry: Entry) -> list[VariantPlan]:
        if entry.method.scratch_only:
            return []
        recipe = finetune_recipe(entry.cfg)
        return [VariantPlan(self.name, self.name, self.title, {"recipe": to_mapping(recipe)}, recipe.epochs)]

    def start(self, entry: Entry, plan: VariantPlan) -> Start:
        arch, model = load_pruned(entry.pruned_dir, with_weights=True)
        return Start(arch, model, finetune_recipe(entry.cfg))
