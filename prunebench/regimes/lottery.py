"""The lottery-ticket comparison (Liu et al. 2019 §6, after Frankle & Carbin 2019).

The pruned architecture (or weight mask) trained from the large model's *original* initialisation — the very weights the
surviving channels had before the baseline was trained, rebuilt by replaying the prune on ``init.pt``
(``prunebench.pruning.kept``) — versus a fresh random init, at lr 0.1 and 0.01. Each variant uses the baseline recipe
(Scratch-E's epochs and schedule) with only the initial lr changed:

    lottery-lr0.1        original init, lr 0.1
    lottery-lr0.01       original init, lr 0.01
    random-init-lr0.01   fresh init (the same one Scratch-E uses), lr 0.01   — Scratch-E itself is random init at lr 0.1
"""

from __future__ import annotations

from typing import Any

from tabulate import tabulate

from prunebench.core.params import to_mapping
from prunebench.metrics.seeds import mean_std_text
from prunebench.pruning.kept import original_init
from prunebench.regimes.base import Entry, Regime, Start, VariantPlan, fresh_init, register_regime, with_lr

VARIANTS = (("lottery-lr0.1", "original", 0.1, "Lottery init, lr 0.1"),
            ("lottery-lr0.01", "original", 0.01, "Lottery init, lr 0.01"),
            ("random-init-lr0.01", "random", 0.01, "Random init, lr 0.01"))


@register_regime
class Lottery(Regime):
    """Original init of the large model (replayed prune) vs random init, at lr 0.1 and 0.01."""

    name, title = "lottery", "Lottery ticket vs random init"

    def variants(self, entry: Entry) -> list[VariantPlan]:
        recipe = entry.cfg.baseline
        return [VariantPlan(name, self.name, title, {"recipe": to_mapping(with_lr(recipe, lr)), "init": init},
                            recipe.epochs, shareable=init == "random") for name, init, lr, title in VARIANTS]

    def start(self, entry: Entry, plan: VariantPlan) -> Start:
        _, init, lr, _ = next(v for v in VARIANTS if v[0] == plan.name)
        if init == "random":
            arch, model = fresh_init(entry)   # the same fresh init as Scratch-E
        else:
            arch, model = original_init(entry.base_dir, entry.pruned_dir)
        budget = {"init": "original (baseline init.pt, replayed prune)" if init == "original" else "random (as Scratch-E)",
                  "lr": lr}
        return Start(arch, model, with_lr(entry.cfg.baseline, lr), budget, f"{init} init")

    def report_section(self, results: dict[str, Any], labels: list[str]) -> list[str]:
        vs = results["variants"]

        def acc(label: str, variant: str) -> str:
            return mean_std_text([v["accuracy"]["top1"] for v in vs if v["prune"] and v["prune"]["label"] == label
                                  and v["regime"] == variant])

        rows = [[label, acc(label, "lottery-lr0.1"), acc(label, "scratch-e"), acc(label, "lottery-lr0.01"),
                 acc(label, "random-init-lr0.01")]
                for label in labels
                if any(v["prune"] and v["prune"]["label"] == label and v["regime"].startswith("lottery-") for v in vs)]
        if not rows:
            return []
        return ["## Lottery ticket vs random initialisation (top-1 %, final epoch)", "",
                "Original init = the large model's initial weights of the surviving channels (weight-level: × mask), "
                "replayed from the prune; random init at lr 0.1 is Scratch-E. Same recipe otherwise.", "",
                tabulate(rows, headers=["Pruned model", "Original init, lr 0.1", "Random init, lr 0.1 (Scratch-E)",
                                        "Original init, lr 0.01", "Random init, lr 0.01"], tablefmt="github"), ""]
