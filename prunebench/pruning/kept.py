"""Which original channels a pruned model kept, and the large model's initial weights for exactly those channels.

The prune stage records, per layer, the original indices of the surviving output channels (``kept.json``;
``slim_to_widths`` / ``record_removed`` note them as torch-pruning removes channels). A method that prunes outside those
helpers leaves no record; the indices are then *inferred* by matching the pruned BatchNorm channels (running mean, running
var, γ, β: sliced, never refit) to the source model's, and kept.json says so. ``original_init`` replays the prune on the
baseline's saved initial weights (``init.pt``) with exactly those indices, through the same DependencyGraph — what the
lottery-ticket comparison (Liu et al. 2019 §6, after Frankle & Carbin 2019) trains. Weight-level masks are applied to the
init; depth-pruned blocks are removed first.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from prunebench.core import paths
from prunebench.core.errors import PrunebenchError
from prunebench.core.checkpoint import load_into
from prunebench.core.io import load_state, read_json, write_json
from prunebench.models import build_model
from prunebench.pruning.base import (
    Architecture, example_for, kept_channels, load_arch, prunable_widths, remove_blocks, slim_to_widths,
    verify_widths,
)
from prunebench.pruning.weight_masks import apply_masks, load_masks


def save_kept(directory: Path, pruned: nn.Module, source_state: dict[str, torch.Tensor], arch: Architecture) -> None:
    """kept.json: surviving original channel indices per narrowed layer (recorded, or inferred from BN channels)."""
    kept = kept_channels(pruned)
    dense = prunable_widths(build_model(arch.model, arch.num_classes, arch.input_shape, arch.ignore), arch.model)
    missing = [n for n, w in arch.widths.items() if n not in kept and dense.get(n, w) != w]
    inferred = _infer_from_bn(pruned, source_state, arch, missing) if missing else {}
    write_json(Path(directory) / paths.KEPT, {"kept": {**kept, **inferred}, "inferred": sorted(inferred),
                                       "unknown": sorted(set(missing) - set(inferred))})


def _infer_from_bn(pruned: nn.Module, source: dict[str, torch.Tensor], arch: Architecture,
                   layers: list[str]) -> dict[str, list[int]]:
    """Match each pruned BN channel to the one source channel with identical (running mean, running var, γ, β)."""
    from prunebench.pruning.masking import channel_sites

    sites = channel_sites(pruned, example_for(pruned, arch.model), layers)
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
    arch = load_arch(pruned_dir / paths.ARCH)
    model = build_model(arch.model, arch.num_classes, arch.input_shape, arch.ignore)
    load_into(model, load_state(base_dir / paths.INIT), base_dir / paths.INIT, arch.model)
    remove_blocks(model, arch.removed_blocks)
    record = read_json(pruned_dir / paths.KEPT) if (pruned_dir / paths.KEPT).exists() else {"kept": {}, "unknown": []}
    replay_kept(model, arch, record["kept"])
    if (pruned_dir / paths.MASK).exists():
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
    slim_to_widths(model, example_for(model, arch.model),
                   {n: len(idx) for n, idx in kept.items()}, scores=scores)
    got = kept_channels(model)
    if any(got.get(n, list(range(modules[n].weight.shape[0]))) != idx for n, idx in kept.items()):
        raise RuntimeError("replaying the prune on the initial weights kept different channels (coupled layers?)")
    verify_widths(model, arch.widths)
    return model
