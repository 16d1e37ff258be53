"""Depth pruning as data: a residual block whose branch is removed becomes its shortcut.

This is module replacement, not channel surgery: no tensor is sliced, the block's shortcut module (identity, option-A
padding, or a projection conv) is kept with its weights under the *same attribute name*, so the state_dict keys of what
remains do not change and an ``Architecture.removed_blocks`` list is enough to rebuild the shallower net.

A block is found through ``model.blocks()`` (every residual model here defines it) and its shortcut through the attribute
``shortcut`` (prunebench's CIFAR nets) or ``downsample`` (torchvision's layout; ``None`` means identity). Post-activation
blocks (``relu(branch + shortcut)``, the default) keep the ReLU, so a block whose branch outputs exactly zero computes the
same function before and after removal; pre-activation blocks declare ``post_activation = False``.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from prunebench.core.errors import PrunebenchError

SHORTCUT_ATTRS = ("shortcut", "downsample")


class BranchRemoved(nn.Module):
    """What is left of a residual block after its residual branch is removed: ``[relu](shortcut(x))``."""

    def __init__(self, attr: str, shortcut: nn.Module, relu: bool) -> None:
        super().__init__()
        self.attr = attr
        self.relu = relu
        setattr(self, attr, shortcut)  # same name as inside the block: its state_dict keys carry over

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = getattr(self, self.attr)(x)
        return F.relu(out) if self.relu else out


def shortcut_of(block: nn.Module) -> tuple[str, nn.Module]:
    """(attribute name, module) of a residual block's shortcut; a ``None`` shortcut is an ``nn.Identity``. Raises
    :class:`PrunebenchError` if ``block`` has none."""
    for attr in SHORTCUT_ATTRS:
        if hasattr(block, attr):
            m = getattr(block, attr)
            return attr, (nn.Identity() if m is None else m)
    raise PrunebenchError(f"{type(block).__name__} has no shortcut/downsample attribute: it is not a residual block")


def residual_blocks(model: nn.Module) -> list[str]:
    """Names of the residual blocks that still have their branch, in forward order."""
    if not hasattr(model, "blocks"):
        raise PrunebenchError(f"{type(model).__name__} has no residual blocks (no blocks() method); depth pruning needs a "
                              "ResNet-style model")
    names = {id(m): n for n, m in model.named_modules()}
    return [names[id(b)] for b in model.blocks() if not isinstance(b, BranchRemoved)]  # type: ignore[operator]


def removed_block_names(model: nn.Module) -> list[str]:
    """Module names of the residual branches replaced by ``BranchRemoved`` (depth pruning)."""
    return [n for n, m in model.named_modules() if isinstance(m, BranchRemoved)]


def remove_blocks(model: nn.Module, names: Sequence[str]) -> nn.Module:
    """Replace each named block by its shortcut (in place). Unknown names or non-blocks are an error."""
    modules = dict(model.named_modules())
    for name in names:
        block = modules.get(name)
        if block is None:
            raise PrunebenchError(f"block {name!r} does not exist in this model; the architecture file does not match it")
        if isinstance(block, BranchRemoved):
            continue
        attr, shortcut = shortcut_of(block)
        parent_name, _, child = name.rpartition(".")
        parent = modules[parent_name] if parent_name else model
        setattr(parent, child, BranchRemoved(attr, shortcut, bool(getattr(block, "post_activation", True))))
    return model
