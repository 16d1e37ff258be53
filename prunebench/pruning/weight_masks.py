"""Unstructured masks as data: which weights of a dense-shaped model are pruned (weight-level pruning).

A mask is a plain ``{parameter name: bool tensor}`` saved as ``mask.pt`` next to the pruned model (loadable with
``torch.load(weights_only=True)``). An unstructured method zeroes the weights it prunes, so the mask of a freshly pruned
model is exactly "weight ≠ 0" for the layers that have zeros; it is saved at prune time so that later stages (which may
train those zeros away) can re-apply it.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from prunebench.core import paths
from prunebench.core.checkpoint import state_dict_of
from prunebench.core.io import load_state, save_state

MASK_FILE = paths.MASK


def weight_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """{'<layer>.weight': weight ≠ 0} for every Conv2d/Linear weight that has at least one zero."""
    out = {}
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nz = m.weight.detach() != 0
            if not bool(nz.all()):
                out[f"{name}.weight"] = nz.cpu()
    return out


def save_masks(directory: str | Path, model: nn.Module) -> Path:
    """Save ``model``'s zero masks (:func:`weight_masks`) to ``directory``/mask.pt; returns the path."""
    return save_state(Path(directory) / MASK_FILE, weight_masks(model))


def load_masks(directory: str | Path) -> dict[str, torch.Tensor]:
    """The saved masks; a directory without ``mask.pt`` falls back to the zeros of its ``model.pt``."""
    directory = Path(directory)
    if (directory / MASK_FILE).exists():
        return {k: v.bool() for k, v in state_dict_of(load_state(directory / MASK_FILE), directory / MASK_FILE).items()}
    state = state_dict_of(load_state(directory / paths.MODEL), directory / paths.MODEL)
    return {k: v != 0 for k, v in state.items() if k.endswith(".weight") and v.dim() > 1 and not bool((v != 0).all())}


def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Multiply each named parameter by its mask in place (masks: {parameter name: 0/1 tensor of its shape})."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, mask in masks.items():
            p = params[name]
            p.mul_(mask.to(device=p.device, dtype=p.dtype))


def density(masks: dict[str, torch.Tensor]) -> float:
    """Fraction of mask entries that are 1 (kept weights), over all masks."""
    total = sum(m.numel() for m in masks.values())
    return float(sum(int(m.sum()) for m in masks.values())) / max(total, 1)
