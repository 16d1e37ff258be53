"""ImageNet VGG-16 without batch norm (torchvision's layout), ThiNet's two re-headed VGG-16s and the VGG-11-BN of network
slimming.

``vgg16-imagenet``: 13 conv3×3 (+bias) → ReLU, five max-pools, adaptive avg-pool 7, FC 25088-4096-4096-nc with dropout 0.5 —
the model ThiNet and He et al. 2017 prune (paper-protocol.md §2). Subclasses ``torchvision.models.VGG`` with the arguments
``torchvision.models.vgg16(weights=None)`` uses, so state_dicts match torchvision's.

ThiNet-GAP and ThiNet-Tiny are not reachable by channel pruning: they *replace* the 25088-4096-4096 head by global average
pooling and one FC (Luo et al. 2017, Table 4). They are registered as their own architectures, ``vgg16-thinet-gap`` and
``vgg16-thinet-tiny``, so that they can be trained from scratch (Scratch-E/B) as Liu et al. did.

``vgg11-bn``: the network Liu et al. 2017 (network slimming) and Liu et al. 2019 prune on ImageNet — VGG-11 (Simonyan &
Zisserman 2015, configuration A) with BN after every conv (+bias) and a head of FC 25088-4096-4096-nc with **BatchNorm1d**
after both 4096 layers and no dropout, as in the official rethinking-network-pruning ImageNet slimming model. Init as there:
convs He-normal over fan-out, every BN γ = 0.5 β = 0, Linear N(0, 0.01). The only addition is an adaptive average pool to
7×7 before the head (the identity at 224×224; it lets the network run on other input sizes). Slimming prunes every conv
and both 4096-wide FC layers (their BN1d γ): those are its prunable layers.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torchvision.models.vgg import VGG, make_layers

from prunebench.models.registry import ModelSpec, register_model
from prunebench.models.vgg_cifar import vgg_init_

Cfg = list  # list[int | str], "M" = max-pool 2

VGG16_CFG: Cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
# Luo et al. 2017 / the official rethinking-network-pruning ThiNet models: no final max-pool, 14×14 into the pool.
THINET_GAP_CFG: Cfg = [32, 32, "M", 64, 64, "M", 128, 128, 128, "M", 256, 256, 256, "M", 512, 512, 512]
THINET_TINY_CFG: Cfg = [16, 16, "M", 32, 32, "M", 64, 64, 64, "M", 128, 128, 128, "M", 128, 128, 256]

RULE = "feature convs only; the classifier stays whole"


class ImageNetVGG(VGG):
    """torchvision's VGG-16 (no BN) plus ``init_weights``."""

    def __init__(self, num_classes: int = 1000, cfg: Cfg | None = None) -> None:
        super().__init__(make_layers(cfg or VGG16_CFG, batch_norm=False), num_classes=num_classes, init_weights=True)

    def init_weights(self) -> None:
        """torchvision's VGG init: convs He-normal over fan-out, zero biases, Linear N(0, 0.01)."""
        vgg_init_(self)


class GapVGG(nn.Module):
    """VGG features, a 14×14 average pool (kernel 14, stride 2 as in the official code) and one FC."""

    def __init__(self, cfg: Cfg, num_classes: int = 1000) -> None:
        super().__init__()
        self.features = make_layers(cfg, batch_norm=False)
        self.pool = nn.AvgPool2d(14, stride=2)
        self.classifier = nn.Linear(int([v for v in cfg if v != "M"][-1]), num_classes)
        self.init_weights()

    def init_weights(self) -> None:
        """torchvision's VGG init: convs He-normal over fan-out, zero biases, Linear N(0, 0.01)."""
        vgg_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


def feature_convs(model: nn.Module) -> list[str]:
    """Every conv of ``features`` (forward order); the classifier never."""
    return [f"features.{n}" for n, m in model.features.named_children() if isinstance(m, nn.Conv2d)]


register_model(ModelSpec("vgg16-imagenet", lambda nc: ImageNetVGG(nc), (3, 224, 224), feature_convs, "vgg-imagenet",
                         "ImageNet VGG-16 (no BN), FC 25088-4096-4096 with dropout (torchvision layout)", prune_rule=RULE))
register_model(ModelSpec("vgg16-thinet-gap", lambda nc: GapVGG(THINET_GAP_CFG, nc), (3, 224, 224), feature_convs,
                         "vgg-imagenet", "ThiNet-GAP (Luo et al. 2017): thinned VGG-16, avg-pool 14, FC 512→nc",
                         prune_rule=RULE))
register_model(ModelSpec("vgg16-thinet-tiny", lambda nc: GapVGG(THINET_TINY_CFG, nc), (3, 224, 224), feature_convs,
                         "vgg-imagenet", "ThiNet-Tiny (Luo et al. 2017): thinned VGG-16, avg-pool 14, FC 256→nc",
                         prune_rule=RULE))


VGG11_CFG: Cfg = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]


class SlimmingVGG11(nn.Module):
    """VGG-11 with BN in features and head (network slimming's ImageNet model)."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.features = make_layers(VGG11_CFG, batch_norm=True)
        self.avgpool = nn.AdaptiveAvgPool2d(7)
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.BatchNorm1d(4096), nn.ReLU(True),
            nn.Linear(4096, 4096), nn.BatchNorm1d(4096), nn.ReLU(True),
            nn.Linear(4096, num_classes),
        )
        self.init_weights()

    def init_weights(self) -> None:
        """Convs He-normal (fan-out, zero bias), BN2d/BN1d γ = 0.5 β = 0 (fresh statistics), Linear N(0, 0.01)
        (:func:`prunebench.models.vgg_cifar.vgg_init_`)."""
        vgg_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def slimming_vgg_layers(model: nn.Module) -> list[str]:
    """Every feature conv and both 4096-wide FC layers (forward order); the last FC never."""
    return feature_convs(model) + ["classifier.0", "classifier.3"]


register_model(ModelSpec("vgg11-bn", lambda nc: SlimmingVGG11(nc), (3, 224, 224), slimming_vgg_layers, "vgg11-bn",
                         "ImageNet VGG-11-BN with BN1d FC head (network slimming, Liu et al. 2017)",
                         prune_rule="feature convs and both 4096-wide FC layers; the last FC stays whole"))
