"""Counting MACs and parameters.

Counting rule (the one prunebench reports everywhere): **MACs of Conv and Linear layers only**, one image, measured by
``torch.utils.flop_counter.FlopCounterMode`` at dispatch level (functional ops are seen too) and halved (it counts 2 FLOPs
per multiply-accumulate). Biases, BN, activations, pooling, additions and the option-A shortcut are not counted: BN is folded
into the conv at export, and Li et al. 2017 count conv+FC multiply-adds, so FLOPs reductions match the paper's tables.

Cross-check: torch-pruning's ``count_ops_and_params`` (module hooks) additionally counts BN (2/element), ReLU and pooling
modules and conv biases, so it reads slightly higher; ``cross_check`` reports both and their relative difference.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

# Documented bound between the two counters: BN/ReLU/pool are < 5 % of conv MACs in networks of dense convs. In
# depthwise-separable networks (MobileNetV2: a 3×3 depthwise conv is 9 MACs per element, the BN + ReLU6 around it
# 3 ops) they are a larger share: 5.4 % (CIFAR MobileNetV2) and 6.5 % (ImageNet) were measured, bounded at 10 %.
CROSS_CHECK_MAX_REL_DIFF = 0.05
CROSS_CHECK_MAX_REL_DIFF_DEPTHWISE = 0.10


def cross_check_bound(model: nn.Module) -> float:
    """The documented counter-agreement bound for ``model`` (a fraction): 10 % with a depthwise conv, else 5 %."""
    depthwise = any(isinstance(m, nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels for m in model.modules())
    return CROSS_CHECK_MAX_REL_DIFF_DEPTHWISE if depthwise else CROSS_CHECK_MAX_REL_DIFF


@dataclass(frozen=True)
class Counts:
    """MACs (conv + linear, one image) and parameter count of a model."""

    macs: int
    params: int

    def to_dict(self) -> dict[str, int]:
        """``{"macs": ..., "params": ...}``."""
        return {"macs": self.macs, "params": self.params}


def _example(model: nn.Module, input_shape: tuple[int, ...]) -> torch.Tensor:
    p = next(model.parameters())
    return torch.zeros((1, *input_shape), dtype=p.dtype, device=p.device)


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Conv + Linear MACs for one image (see module docstring)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(_example(model, input_shape))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops()) // 2


def count_params(model: nn.Module) -> int:
    """Number of parameter elements of ``model``."""
    return sum(p.numel() for p in model.parameters())


def count(model: nn.Module, input_shape: tuple[int, ...]) -> Counts:
    """:class:`Counts` of ``model`` for one input of ``input_shape`` (C, H, W)."""
    return Counts(count_macs(model, input_shape), count_params(model))


def count_nonzero(model: nn.Module, input_shape: tuple[int, ...]) -> Counts:
    """MACs and params that survive an unstructured mask: each conv/linear counts output positions × nonzero weights."""
    positions: dict[nn.Module, int] = {}
    hooks = []

    def _hook(mod: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        channels = mod.out_channels if isinstance(mod, nn.Conv2d) else mod.out_features
        positions[mod] = out[0].numel() // channels  # spatial positions (1 for a Linear) of one image

    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            hooks.append(m.register_forward_hook(_hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(_example(model, input_shape))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    macs = sum(pos * int(m.weight.count_nonzero().item()) for m, pos in positions.items())
    params = sum(int(p.count_nonzero().item()) for p in model.parameters())
    return Counts(macs, params)


def cross_check(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, float]:
    """Primary (FlopCounterMode conv+linear) vs torch-pruning's hook counter; both in MACs."""
    import torch_pruning as tp

    primary = count_macs(model, input_shape)
    was_training = model.training
    try:
        secondary, _ = tp.utils.count_ops_and_params(model, _example(model, input_shape))
    finally:
        model.train(was_training)
    return {"primary_macs": primary, "torch_pruning_macs": int(secondary),
            "rel_diff": abs(int(secondary) - primary) / max(primary, 1)}
