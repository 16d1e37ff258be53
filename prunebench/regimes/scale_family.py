"""Crowley, Gray & Storkey 2018, "prune once, get a family": the pruned model's per-layer width profile scaled by one
multiplier to other budgets — ``[scratch] scale_factors`` × the pruned model's MACs (default 0.5, 0.75, 1.25), the
multiplier found by bisection on MACs, widths clamped to [1, dense] — each member trained from scratch with the Scratch-E
recipe. Variants ``scale-0.5x`` etc.; train.json's ``budget`` records target and achieved MACs. Only structured methods
have a width profile: for masks (weight-level) the regime adds nothing."""

from __future__ import annotations

from typing import Any

import torch
from tabulate import tabulate

from prunebench.core import paths
from prunebench.core.io import read_json
from prunebench.core.params import to_mapping
from prunebench.metrics.seeds import mean_std_text
from prunebench.models import build_model
from prunebench.pruning.base import Architecture, build_architecture, load_arch, remove_blocks
from prunebench.pruning.scaling import solve_multiplier
from prunebench.regimes.base import Entry, Regime, Start, VariantPlan, register_regime

RULE = "widths = clamp(round(m × pruned widths), 1, dense), m by bisection on MACs; Scratch-E recipe"


@register_regime
class ScaleFamily(Regime):
    """The pruned width profile rescaled to [scratch] scale_factors × its MACs, each from scratch."""

    name, title = "scale-family", "Scale family"

    def variants(self, entry: Entry) -> list[VariantPlan]:
        if not entry.method.structured:
            return []
        recipe = entry.cfg.baseline
        return [VariantPlan(f"scale-{f:g}x", self.name, f"Scale family {f:g}×",
                            {"recipe": to_mapping(recipe), "factor": f, "rule": RULE}, recipe.epochs,
                            same_architecture=False, shareable=True)
                for f in entry.cfg.scratch.scale_factors]

    def start(self, entry: Entry, plan: VariantPlan) -> Start:
        factor = plan.params["factor"]
        arch = load_arch(entry.pruned_dir / paths.ARCH)
        pruned_macs = read_json(entry.pruned_dir / paths.PRUNE)["after"]["macs"]
        dense = build_model(arch.model, arch.num_classes, arch.input_shape, arch.ignore)
        remove_blocks(dense, arch.removed_blocks)
        sol = solve_multiplier(dense, arch.model, arch.widths, factor * pruned_macs, "macs")
        farch = Architecture(arch.model, arch.num_classes, sol.widths, method=arch.method, preset=None, ratio=None,
                             notes={"scale_family": {"of": entry.spec.label, "factor": factor}},
                             removed_blocks=list(arch.removed_blocks), input_shape=arch.input_shape,
                             ignore=list(arch.ignore))
        torch.manual_seed(entry.seed + 1)
        model = build_architecture(farch)   # fresh init (Scratch-E)
        budget = {"rule": RULE, "factor": factor, "target_macs": int(factor * pruned_macs), "macs": sol.cost,
                  "rel_error": round(sol.rel_error, 5), "multiplier": round(sol.multiplier, 5), "clamped": sol.clamped}
        note = (f"MACs {sol.cost / 1e6:.2f}M (target {factor * pruned_macs / 1e6:.2f}M), from scratch")
        return Start(farch, model, entry.cfg.baseline, budget, note)

    def report_section(self, results: dict[str, Any], labels: list[str]) -> list[str]:
        vs = results["variants"]
        rows = []
        for label in labels:
            members = [v for v in vs if v["prune"] and v["prune"]["label"] == label and v["regime"].startswith("scale-")]
            for regime in dict.fromkeys(v["regime"] for v in members):
                group = [v for v in members if v["regime"] == regime]
                b = group[0]["training"]["budget"] or {}
                rows.append([label, f"{b.get('factor', '?')}×", f"{b.get('target_macs', 0) / 1e6:.2f}M",
                             f"{group[0]['macs'] / 1e6:.2f}M", f"{100 * b.get('rel_error', 0):.1f} %"
                             + (" (clamped)" if b.get("clamped") else ""), f"{group[0]['params'] / 1e6:.3f}M",
                             mean_std_text([v["accuracy"]["top1"] for v in group])])
        if not rows:
            return []
        return ["## Scale family (pruned profile rescaled, trained from scratch; top-1 %, final epoch)", "",
                tabulate(rows, headers=["Pruned model", "Factor", "Target MACs", "MACs", "Off target", "Params", "Top-1"],
                         tablefmt="github"), ""]
