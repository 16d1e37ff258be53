"""ImageNet ResNet-18 / ResNet-34 / ResNet-50 (He et al. 2016), exactly torchvision's layout (7×7 stem, max-pool, [3,4,6,3] stages, 64–512 wide).

The classes subclass ``torchvision.models.ResNet`` with the same arguments ``torchvision.models.resnet18/34/50(weights=None)``
use, so state_dicts are interchangeable with torchvision's (a test pins that), and add what the registry needs:
``init_weights()`` (torchvision's init, re-applied for Scratch-E/B) and ``blocks()``.

What may be pruned follows the papers that prune these nets (Li et al. 2017 for ResNet-34; ThiNet and He et al. 2017 for
ResNet-50): only the *inner* convs of each residual block — conv1 of a BasicBlock, conv1 and conv2 of a Bottleneck. Block
outputs (which the identity shortcuts add to), downsample convs, the stem and the classifier stay whole.
"""

from __future__ import annotations

import torch.nn as nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from prunebench.models.registry import ModelSpec, register_model

LAYOUTS: dict[str, tuple[type[nn.Module], list[int]]] = {
    "resnet18": (BasicBlock, [2, 2, 2, 2]),
    "resnet34": (BasicBlock, [3, 4, 6, 3]),
    "resnet50": (Bottleneck, [3, 4, 6, 3]),
}

INNER_RULE = (
    "only the inner convs of each residual block (conv1 of a BasicBlock, conv1+conv2 of a Bottleneck) may be pruned; "
    "block outputs, downsample convs, the stem and the classifier stay whole"
)


class ImageNetResNet(ResNet):
    """torchvision's ResNet (no weights) plus ``init_weights`` and ``blocks``."""

    def __init__(self, arch: str, num_classes: int = 1000) -> None:
        block, layers = LAYOUTS[arch]
        super().__init__(block, layers, num_classes=num_classes)  # what torchvision.models.<arch>(weights=None) builds
        self.arch = arch

    def blocks(self) -> list[nn.Module]:
        """Residual blocks in forward order."""
        return [b for stage in (self.layer1, self.layer2, self.layer3, self.layer4) for b in stage]

    def init_weights(self) -> None:
        """torchvision's init: convs He-normal over fan-out, BN γ=1 β=0 (fresh running stats), the fc PyTorch's default."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
                m.reset_running_stats()
            elif isinstance(m, nn.Linear):
                m.reset_parameters()


def inner_convs(model: nn.Module) -> list[str]:
    """conv1 of each BasicBlock; conv1 and conv2 of each Bottleneck (forward order)."""
    names = []
    for name, m in model.named_modules():
        if isinstance(m, BasicBlock):
            names.append(f"{name}.conv1")
        elif isinstance(m, Bottleneck):
            names += [f"{name}.conv1", f"{name}.conv2"]
    return names


def _register(arch: str, depth: int, kind: str) -> None:
    register_model(
        ModelSpec(arch, lambda nc, a=arch: ImageNetResNet(a, nc), (3, 224, 224), inner_convs, "resnet-imagenet",
                  f"ImageNet ResNet-{depth} (torchvision layout, {kind})", prune_rule=INNER_RULE,
                  weights_enum=f"ResNet{depth}_Weights")
    )


_register("resnet18", 18, "BasicBlock")
_register("resnet34", 34, "BasicBlock")
_register("resnet50", 50, "Bottleneck")
