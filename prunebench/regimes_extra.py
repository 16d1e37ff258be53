"""Two more ways to train a pruned architecture: the lottery-ticket comparison and Crowley et al.'s scale family.

``lottery`` (Liu et al. 2019 §6, after Frankle & Carbin 2019): the pruned architecture (or weight mask) trained from the
*original* initialisation of the large model — the very weights those surviving channels had before the baseline was
trained — versus a fresh random init, at lr 0.1 and 0.01 (the paper's comparison). Variants, each with the baseline recipe
(Scratch-E epochs and schedule) and only the initial lr changed:

    lottery-lr0.1        original init, lr 0.1
    lottery-lr0.01       original init, lr 0.01
    random-init-lr0.01   fresh init (the same one Scratch-E uses), lr 0.01   — Scratch-E itself is random init at lr 0.1

The original init is rebuilt by *replaying* the prune on ``seed*/baseline/init.pt``: the prune stage records, per layer, the
original indices of the surviving output channels (``kept.json``; ``slim_to_widths`` / ``record_removed`` note them as
torch-pruning removes channels), and the replay slims the dense init with exactly those indices through the same
DependencyGraph. A method that prunes outside those helpers leaves no record; the prune stage then *infers* the indices by
matching the pruned BatchNorm channels (running mean, running var, γ, β: sliced, never refit) to the source model's, and
says so in kept.json. Weight-level masks (``mask.pt``) are applied to the init. Depth-pruned blocks are removed first.

``scale-family`` (Crowley, Gray & Storkey 2018, "prune once, get a family"): the pruned model's per-layer width profile is
scaled by one multiplier to other budgets — ``[scratch] scale_factors`` × the pruned model's MACs (default 0.5, 0.75, 1.25),
the multiplier found by bisection on MACs, widths clamped to [1, dense] — and each member is trained from scratch with the
Scratch-E recipe. Variants ``scale-0.5x`` etc.; train.json's ``budget`` records target and achieved MACs. Only structured
methods have a width profile; for masks (weight-level) the regime is skipped with a log line.

``reduced`` entries (Crowley's uniformly thinner baseline) are trained only from scratch: they have no inherited weights to
fine-tune, so the runner skips their fine-tune regime.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn

from prunebench.errors import PrunebenchError
from prunebench.io import load_state, read_json, write_json
from prunebench.models import build_model, reinitialize
from prunebench.pruning import get_method
from prunebench.pruning.base import (
    Architecture, build_architecture, example_inputs, kept_channels, load_arch, prunable_widths, remove_blocks,
    save_pruned, slim_to_widths, verify_widths,
)
from prunebench.training import TrainConfig, train

if TYPE_CHECKING:
    from prunebench.config import PruneSpec
    from prunebench.runner import Runner, Variant

LOTTERY = (("lottery-lr0.1", "original", 0.1), ("lottery-lr0.01", "original", 0.01),
           ("random-init-lr0.01", "random", 0.01))
SCRATCH_ONLY_METHODS = frozenset({"reduced"})
DEFAULT_SCALE_FACTORS = (0.5, 0.75, 1.25)
KEPT_FILE = "kept.json"


# ------------------------------------------------------------------------------------------------ surviving channels
def save_kept(directory: Path, pruned: nn.Module, source_state: dict[str, torch.Tensor], arch: Architecture) -> None:
    """kept.json: surviving original channel indices per narrowed layer (recorded, or inferred from BN channels)."""
    kept = kept_channels(pruned)
    dense = prunable_widths(build_model(arch.model, arch.num_classes), arch.model)
    missing = [n for n, w in arch.widths.items() if n not in kept and dense.get(n, w) != w]
    inferred = _infer_from_bn(pruned, source_state, arch, missing) if missing else {}
    write_json(directory / KEPT_FILE, {"kept": {**kept, **inferred}, "inferred": sorted(inferred),
                                       "unknown": sorted(set(missing) - set(inferred))})


def _infer_from_bn(pruned: nn.Module, source: dict[str, torch.Tensor], arch: Architecture,
                   layers: list[str]) -> dict[str, list[int]]:
    """Match each pruned BN channel to the one source channel with identical (running mean, running var, γ, β)."""
    from prunebench.pruning.masking import channel_sites

    sites = channel_sites(pruned, example_inputs(arch.model, next(pruned.parameters()).device), layers)
    state = pruned.state_dict()
    out: dict[str, list[int]] = {}
    for layer in layers:
        site = sites[layer]
        keys = [f"{site}.{k}" for k in ("running_mean", "running_var", "weight", "bias")]
        if site == layer or not all(k in state and k in source for k in keys):
            continue
        src = torch.stack([source[k].float().cpu() for k in keys], 1)
        mine = torch.stack([state[k].float().cpu() for k in keys], 1)
        idx = []
        for row in mine:
            hit = torch.nonzero((src == row).all(1)).flatten()
            if hit.numel() != 1:
                break
            idx.append(int(hit))
        if len(idx) == mine.shape[0] and idx == sorted(set(idx)):
            out[layer] = idx
    return out


def original_init(base_dir: Path, pruned_dir: Path) -> tuple[Architecture, nn.Module]:
    """The pruned architecture carrying the large model's *initial* weights for every surviving channel/weight."""
    arch = load_arch(pruned_dir / "arch.json")
    model = build_model(arch.model, arch.num_classes)
    model.load_state_dict(load_state(base_dir / "init.pt"))
    remove_blocks(model, arch.removed_blocks)
    record = read_json(pruned_dir / KEPT_FILE) if (pruned_dir / KEPT_FILE).exists() else {"kept": {}, "unknown": []}
    replay_kept(model, arch, record["kept"])
    if (pruned_dir / "mask.pt").exists():
        from prunebench.pruning.weight_masks import apply_masks, load_masks

        apply_masks(model, load_masks(pruned_dir))
    return arch, model


def replay_kept(model: nn.Module, arch: Architecture, kept: dict[str, list[int]]) -> nn.Module:
    """Slim ``model`` (dense shapes, e.g. the saved init) keeping exactly the ``kept`` original channel indices."""
    dense = prunable_widths(model, arch.model)
    narrowed = [n for n, w in arch.widths.items() if dense.get(n, w) != w]
    unknown = [n for n in narrowed if n not in kept]
    if unknown:
        raise PrunebenchError(
            f"the lottery regime needs the surviving channel indices of {unknown[0]} (and {len(unknown) - 1} more), but "
            f"{arch.method} did not record them: prune through slim_to_widths or call base.record_removed before each "
            "group.prune()")
    modules = dict(model.named_modules())
    scores = {}
    for n, idx in kept.items():
        s = torch.zeros(modules[n].weight.shape[0])
        s[torch.tensor(idx, dtype=torch.long)] = 1.0
        scores[n] = s
    slim_to_widths(model, example_inputs(arch.model, next(model.parameters()).device),
                   {n: len(idx) for n, idx in kept.items()}, scores=scores)
    got = kept_channels(model)
    if any(got.get(n, list(range(modules[n].weight.shape[0]))) != idx for n, idx in kept.items()):
        raise RuntimeError("replaying the prune on the initial weights kept different channels (coupled layers?)")
    verify_widths(model, arch.widths)
    return model


# ------------------------------------------------------------------------------------------------ runner stages
def run_extra_regime(runner: "Runner", regime: str, seed: int, spec: "PruneSpec", base_dir: Path,
                     pdir: Path) -> list["Variant"]:
    if regime == "lottery":
        return lottery(runner, seed, spec, base_dir, pdir)
    if regime == "scale-family":
        return scale_family(runner, seed, spec, pdir)
    raise PrunebenchError(f"unknown regime {regime!r}")


def lottery(runner: "Runner", seed: int, spec: "PruneSpec", base_dir: Path, pdir: Path) -> list["Variant"]:
    from prunebench.runner import Variant, _asdict

    out = []
    for name, init, lr in LOTTERY:
        d = pdir / name
        out.append(Variant(seed, name, d, spec))
        if not runner._stage(d / "train.json"):
            runner.log(f"[seed {seed}] {spec.label} {name}: done, skipped")
            continue
        arch, model = original_init(base_dir, pdir / "pruned")
        if init == "random":
            torch.manual_seed(seed + 1)   # the same fresh init as Scratch-E
            reinitialize(model)
        tcfg = TrainConfig(**{**_asdict(runner.cfg.baseline), "lr": lr})
        method = get_method(spec.method)
        hooks = method.regime_hooks(model, pdir / "pruned") if method.regime_hooks is not None else None
        runner.log(f"[seed {seed}] {spec.label} {name}: {init} init, {tcfg.epochs} epochs at lr {lr}")
        res = train(model, runner.data, tcfg, runner.device, seed, d / "last.pt", desc=f"{spec.label} {name}",
                    hooks=hooks)
        _save(runner, d, arch, model, res, tcfg, {"init": "original (baseline init.pt, replayed prune)"
                                                  if init == "original" else "random (as Scratch-E)", "lr": lr})
    return out


def scale_factors(runner: "Runner") -> tuple[float, ...]:
    return tuple(getattr(runner.cfg.scratch, "scale_factors", DEFAULT_SCALE_FACTORS))


def scale_family(runner: "Runner", seed: int, spec: "PruneSpec", pdir: Path) -> list["Variant"]:
    from prunebench.pruning.scaling import solve_multiplier
    from prunebench.runner import Variant

    method = get_method(spec.method)
    if not method.structured:
        runner.log(f"[seed {seed}] {spec.label} scale-family: skipped ({spec.method} prunes weights, not widths)")
        return []
    out = []
    for factor in scale_factors(runner):
        name = f"scale-{factor:g}x"
        d = pdir / name
        out.append(Variant(seed, name, d, spec))
        if not runner._stage(d / "train.json"):
            runner.log(f"[seed {seed}] {spec.label} {name}: done, skipped")
            continue
        arch = load_arch(pdir / "pruned" / "arch.json")
        pruned_macs = read_json(pdir / "pruned" / "prune.json")["after"]["macs"]
        dense = build_model(arch.model, arch.num_classes)
        remove_blocks(dense, arch.removed_blocks)
        sol = solve_multiplier(dense, arch.model, arch.widths, factor * pruned_macs, "macs")
        farch = Architecture(arch.model, arch.num_classes, sol.widths, method=arch.method, preset=None, ratio=None,
                             notes={"scale_family": {"of": spec.label, "factor": factor}},
                             removed_blocks=list(arch.removed_blocks))
        torch.manual_seed(seed + 1)
        model = build_architecture(farch)   # fresh init (Scratch-E)
        tcfg = runner.cfg.baseline
        budget = {"rule": "widths = clamp(round(m × pruned widths), 1, dense), m by bisection on MACs; Scratch-E recipe",
                  "factor": factor, "target_macs": int(factor * pruned_macs), "macs": sol.cost,
                  "rel_error": round(sol.rel_error, 5), "multiplier": round(sol.multiplier, 5), "clamped": sol.clamped}
        runner.log(f"[seed {seed}] {spec.label} {name}: MACs {sol.cost / 1e6:.2f}M (target "
                   f"{factor * pruned_macs / 1e6:.2f}M), {tcfg.epochs} epochs from scratch")
        res = train(model, runner.data, tcfg, runner.device, seed, d / "last.pt", desc=f"{spec.label} {name}")
        _save(runner, d, farch, model, res, tcfg, budget)
    return out


def _save(runner: "Runner", d: Path, arch: Architecture, model: nn.Module, res: Any, tcfg: TrainConfig,
          budget: dict[str, Any]) -> None:
    from prunebench import distributed as dist
    from prunebench.runner import _asdict

    if dist.is_main():
        save_pruned(d, arch, model)
        write_json(d / "train.json", res.to_dict() | {"config": _asdict(tcfg), "budget": budget})
        (d / "last.pt").unlink(missing_ok=True)
