"""CIFAR ResNet-6n+2 (He et al. 2016) with the parameter-free option-A shortcut, as in Li et al. 2017.

Stem conv3×3→16, three stages of n BasicBlocks (16/32/64 channels, stride 2 at the first block of stages 2–3), global
average pool, Linear(64, nc). Option A: the shortcut subsamples 2× and appends zero channels. Because torch-pruning cannot see
that zero padding, only each block's *first* conv (the inner width) may be pruned.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from prunebench.models.registry import ModelSpec, register_model


class ShortcutA(nn.Module):
    """Option-A shortcut: stride-2 subsampling then zero channels appended (no parameters)."""

    def __init__(self, stride: int, extra_channels: int) -> None:
        super().__init__()
        self.stride = stride
        self.extra_channels = extra_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.extra_channels:
            x = F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))
        return x


class BasicBlock(nn.Module):
    """Two conv3×3-BN layers plus the option-A shortcut (subsample, zero-pad channels): (N, in_planes, H, W) → (N,
    planes, H/stride, W/stride)."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        if stride != 1 or in_planes != planes:
            self.shortcut: nn.Module = ShortcutA(stride, planes - in_planes)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """CIFAR ResNet of depth 6n+2 (He et al. 2016, option-A shortcuts); (N, 3, H, W) → (N, num_classes) logits. Raises
    ``ValueError`` for another depth."""

    def __init__(self, depth: int, num_classes: int = 10) -> None:
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
        n = (depth - 2) // 6
        self.depth = depth
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        planes_in = 16
        stages = []
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for i in range(n):
                blocks.append(BasicBlock(planes_in, planes, stride if i == 0 else 1))
                planes_in = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)
        self.init_weights()

    def blocks(self) -> list[BasicBlock]:
        """Blocks in forward order (block b has conv ids 2b+2, 2b+3 in the paper's numbering)."""
        return [b for stage in (self.layer1, self.layer2, self.layer3) for b in stage]  # type: ignore[union-attr]

    def init_weights(self) -> None:
        """He-normal (fan-out) convs, BN γ=1 β=0, default Linear init — the official CIFAR ResNet code."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
                m.reset_running_stats()
            elif isinstance(m, nn.Linear):
                m.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


OPTION_A_RULE = (
    "option-A (zero-padding) shortcuts allow pruning only the first conv of each block (the inner width); "
    "block outputs, the stem and the classifier stay whole"
)


def resnet_prunable(model: nn.Module) -> list[str]:
    """Only the first conv of each block: option-A shortcuts forbid pruning block outputs."""
    return [n for n, m in model.named_modules() if isinstance(m, BasicBlock) for n in [f"{n}.conv1"]]


def _register(depth: int) -> None:
    name = f"resnet{depth}"
    register_model(
        ModelSpec(name, lambda nc, d=depth: CifarResNet(d, nc), (3, 32, 32), resnet_prunable, "resnet-cifar",
                  f"CIFAR ResNet-{depth}, BasicBlock, option-A shortcut",
                  prune_rule=OPTION_A_RULE)
    )


for _d in (20, 32, 56, 110):
    _register(_d)
