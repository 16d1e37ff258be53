"""CIFAR PreResNet-164 (He et al. 2016, identity mappings) as network slimming uses it (Liu et al. 2017).

Depth 9n+2 with n = 18 pre-activation bottlenecks per stage: BN-ReLU-conv1×1 (in→p), BN-ReLU-conv3×3 (p→p, the stride),
BN-ReLU-conv1×1 (p→4p), plus the shortcut — identity, or a 1×1 conv *without* BN where the shape changes. Inner widths
p = 16/32/64, so the residual stream is 64/128/256 wide. Stem conv3×3 3→16, final BN-ReLU, global average pool (8×8 on
CIFAR, the paper's ``AvgPool2d(8)``; adaptive so that other input sizes still run), Linear(256, nc). ≈1.70 M parameters.

What may be pruned (``prunable``): each bottleneck's conv1 and conv2 outputs, i.e. the inner width. conv3 and the
shortcut write the residual stream, which every later block reads, so removing one of those channels would remove it from
the whole stage; slimming's channel-selection layer (a 0/1 mask on the BN-ReLU output in front of each block's conv1) is a
per-consumer *mask* that torch-pruning cannot express as a physical prune. See ``prunebench.pruning.network_slimming``.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from prunebench.models.registry import ModelSpec, register_model

EXPANSION = 4


class PreActBottleneck(nn.Module):
    """Pre-activation bottleneck. The sum is *not* followed by a ReLU (``post_activation = False``), so a block whose
    branch is removed (SSS) is exactly its shortcut."""

    post_activation = False

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out_planes = planes * EXPANSION
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=False)
        if stride != 1 or in_planes != out_planes:
            self.shortcut: nn.Module = nn.Conv2d(in_planes, out_planes, 1, stride, bias=False)
        else:
            self.shortcut = nn.Identity()

    def branch_output_params(self) -> list[nn.Parameter]:
        """The last parameters of the residual branch (no BN follows conv3): SSS's scale lives here."""
        return [self.conv3.weight]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        out = self.conv3(F.relu(self.bn3(out)))
        return out + self.shortcut(x)


class PreResNet(nn.Module):
    """CIFAR pre-activation ResNet of depth 9n+2 with bottleneck blocks (He et al. 2016); (N, 3, H, W) → (N,
    num_classes) logits. Raises ``ValueError`` for another depth."""

    def __init__(self, depth: int = 164, num_classes: int = 10) -> None:
        super().__init__()
        if (depth - 2) % 9:
            raise ValueError(f"PreResNet depth must be 9n+2, got {depth}")
        n = (depth - 2) // 9
        self.depth = depth
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        in_planes = 16
        stages = []
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for i in range(n):
                blocks.append(PreActBottleneck(in_planes, planes, stride if i == 0 else 1))
                in_planes = planes * EXPANSION
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.bn = nn.BatchNorm2d(in_planes)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_classes)
        self.init_weights()

    def blocks(self) -> list[nn.Module]:
        """Residual blocks in forward order."""
        return [b for stage in (self.layer1, self.layer2, self.layer3) for b in stage]  # type: ignore[union-attr]

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
        x = self.layer3(self.layer2(self.layer1(x)))
        x = F.relu(self.bn(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


PREACT_RULE = (
    "only the inner convs of each bottleneck (conv1, conv2) may be pruned: conv3 and the 1×1 shortcut write the residual "
    "stream that every later block reads; the paper's channel-selection layer (a per-block mask on conv1's inputs) is not "
    "a physical prune; stem and classifier stay whole"
)


def preresnet_prunable(model: nn.Module) -> list[str]:
    """conv1 and conv2 of every (remaining) bottleneck, in forward order."""
    names = []
    for name, m in model.named_modules():
        if isinstance(m, PreActBottleneck):
            names += [f"{name}.conv1", f"{name}.conv2"]
    return names


def preresnet164(num_classes: int = 10) -> PreResNet:
    """PreResNet-164 (network slimming's CIFAR PreResNet)."""
    return PreResNet(164, num_classes)


register_model(ModelSpec("preresnet164", preresnet164, (3, 32, 32), preresnet_prunable, "preresnet-cifar",
                         "CIFAR PreResNet-164, pre-activation bottlenecks (network slimming)", prune_rule=PREACT_RULE))
