"""CIFAR DenseNet-40 (Huang et al. 2017), k = 12, as network slimming uses it (Liu et al. 2017).

Stem conv3×3 3→24, three dense blocks of 12 layers each (BN-ReLU-conv3×3 in→12, output concatenated to the input),
transitions BN-ReLU-conv1×1 without compression (168→168, 312→312) then 2×2 average pooling, final BN-ReLU, global average
pool (8×8 on CIFAR; adaptive so that other input sizes still run), Linear(456, nc). Widths 24→168→312→456, ≈1.06 M parameters.

What may be pruned: every conv's output (stem, growth convs, transitions). Through the concatenation a removed channel
disappears from *every* later consumer (torch-pruning trap 11) — unlike slimming's channel-selection layer, which masks a
channel for one consumer only. See ``prunebench.pruning.network_slimming`` for what that changes.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from prunebench.models.registry import ModelSpec, register_model


class DenseLayer(nn.Module):
    """BN-ReLU-conv3×3 producing ``growth`` channels, concatenated to its input: (N, C, H, W) → (N, C + growth, H,
    W)."""

    def __init__(self, in_planes: int, growth: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(in_planes)
        self.conv = nn.Conv2d(in_planes, growth, 3, 1, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.conv(F.relu(self.bn(x)))], 1)


class Transition(nn.Module):
    """BN-ReLU-conv1×1 then 2×2 average pooling: (N, C_in, H, W) → (N, C_out, H/2, W/2)."""

    def __init__(self, in_planes: int, out_planes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(in_planes)
        self.conv = nn.Conv2d(in_planes, out_planes, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(self.conv(F.relu(self.bn(x))), 2)


class DenseNet(nn.Module):
    """CIFAR DenseNet (Huang et al. 2017) of depth 3n+4 and growth rate ``growth``, no compression; (N, 3, H, W) → (N,
    num_classes) logits. Raises ``ValueError`` for another depth."""

    def __init__(self, depth: int = 40, growth: int = 12, num_classes: int = 10) -> None:
        super().__init__()
        if (depth - 4) % 3:
            raise ValueError(f"DenseNet depth must be 3n+4, got {depth}")
        n = (depth - 4) // 3
        self.depth = depth
        planes = 2 * growth
        self.conv1 = nn.Conv2d(3, planes, 3, 1, 1, bias=False)
        stages: list[nn.Module] = []
        for b in range(3):
            layers = []
            for _ in range(n):
                layers.append(DenseLayer(planes, growth))
                planes += growth
            stages.append(nn.Sequential(*layers))
            if b < 2:
                stages.append(Transition(planes, planes))  # compression 1: no channel reduction
        self.dense1, self.trans1, self.dense2, self.trans2, self.dense3 = stages
        self.bn = nn.BatchNorm2d(planes)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(planes, num_classes)
        self.init_weights()

    def init_weights(self) -> None:
        """The slimming code's init: conv N(0, √(2/(k²·C_out))), BN γ=0.5 β=0, Linear PyTorch's default."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / n))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 0.5)
                nn.init.zeros_(m.bias)
                m.reset_running_stats()
            elif isinstance(m, nn.Linear):
                m.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = self.trans1(self.dense1(x))
        x = self.trans2(self.dense2(x))
        x = F.relu(self.bn(self.dense3(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


DENSE_RULE = (
    "every conv output (stem, growth convs, transitions) may be pruned; through the concatenation a removed channel "
    "leaves every later consumer (not only one, as slimming's channel-selection mask does); the classifier stays whole"
)


def densenet_prunable(model: nn.Module) -> list[str]:
    """Every conv, in forward order."""
    return [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def densenet40(num_classes: int = 10) -> DenseNet:
    """DenseNet-40 with k = 12 (network slimming's CIFAR DenseNet)."""
    return DenseNet(40, 12, num_classes)


register_model(ModelSpec("densenet40", densenet40, (3, 32, 32), densenet_prunable, "densenet-cifar",
                         "CIFAR DenseNet-40 (k=12, no compression; network slimming)", prune_rule=DENSE_RULE))
