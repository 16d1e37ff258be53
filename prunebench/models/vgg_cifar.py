"""CIFAR VGG with batch norm, as in Li et al. 2017 / Liu et al. 2019 (official rethinking-network-pruning code).

conv3x3 (pad 1, no bias) → BN → ReLU per entry, "M" = max-pool 2; no final max-pool: a 2×2 average pool takes the 2×2 map to
1×1. Two heads exist in the paper's lineages: the L1-norm one (Linear(c,512)-BN1d-ReLU-Linear(512,nc), used for VGG-16) and the
network-slimming one (Linear(c,nc), used for VGG-19).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from prunebench.models.registry import ModelSpec, register_model

CFGS: dict[str, list[int | str]] = {
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512],
}



def vgg_init_(model: nn.Module) -> None:
    """The VGG init of the official rethinking / network-slimming code and of torchvision, in place: convs He-normal over
    fan-out (std sqrt(2 / (k·k·out))) with zero bias, BatchNorm γ = 0.5, β = 0 with fresh statistics, Linear N(0, 0.01)
    with zero bias."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            nn.init.constant_(m.weight, 0.5)
            nn.init.zeros_(m.bias)
            m.reset_running_stats()
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)

class VGG(nn.Module):
    """CIFAR VGG with BN (``cfg``: widths and "M" max-pools) and an ``mlp`` or ``linear`` head; (N, 3, 32, 32) → (N,
    num_classes) logits. Raises ``ValueError`` for another head."""

    def __init__(self, cfg: list[int | str], num_classes: int = 10, head: str = "mlp") -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c_in, int(v), 3, padding=1, bias=False), nn.BatchNorm2d(int(v)), nn.ReLU(inplace=True)]
                c_in = int(v)
        self.features = nn.Sequential(*layers)
        self.pool = nn.AvgPool2d(2)
        if head == "mlp":
            self.classifier = nn.Sequential(
                nn.Linear(c_in, 512), nn.BatchNorm1d(512), nn.ReLU(inplace=True), nn.Linear(512, num_classes)
            )
        elif head == "linear":
            self.classifier = nn.Sequential(nn.Linear(c_in, num_classes))
        else:
            raise ValueError(f"unknown VGG head {head!r}")
        self.init_weights()

    def init_weights(self) -> None:
        """Official init (:func:`vgg_init_`)."""
        vgg_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def vgg_prunable(model: nn.Module) -> list[str]:
    """Every feature conv; the classifier never."""
    return [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def vgg16(num_classes: int = 10) -> VGG:
    """VGG-16 with the L1-norm paper's MLP head (Li et al. 2017)."""
    return VGG(CFGS["vgg16"], num_classes, head="mlp")


def vgg19(num_classes: int = 10) -> VGG:
    """VGG-19 with network slimming's linear head (Liu et al. 2017)."""
    return VGG(CFGS["vgg19"], num_classes, head="linear")


register_model(ModelSpec("vgg16", vgg16, (3, 32, 32), vgg_prunable, "vgg", "CIFAR VGG-16-BN, L1-norm head (Li et al.)",
                        prune_rule="feature convs only; the classifier stays whole"))
register_model(ModelSpec("vgg19", vgg19, (3, 32, 32), vgg_prunable, "vgg", "CIFAR VGG-19-BN, slimming head (Liu et al.)",
                        prune_rule="feature convs only; the classifier stays whole"))
