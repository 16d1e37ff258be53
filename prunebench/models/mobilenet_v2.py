"""MobileNetV2 (Sandler, Howard, Zhu, Zhmoginov & Chen, CVPR 2018), the network Ye et al. 2020 prune by greedy forward
selection — ImageNet layout and a CIFAR layout.

Both subclass ``torchvision.models.MobileNetV2`` (width 1.0, inverted residuals with expansion 6, ReLU6, dropout 0.2 before
the classifier), so ``mobilenetv2-imagenet`` state_dicts are interchangeable with ``torchvision.models.mobilenet_v2``'s.
``mobilenetv2`` is the usual CIFAR adaptation: stride 1 in the stem conv and in the first block of the 24-channel stage
(32×32 inputs end at 4×4 instead of 1×1); everything else is the ImageNet network.

Prune rule: automatic (``prunebench.pruning.groups``): each block's expansion channels (the depthwise conv follows them),
the output channels of each stage (one coupled group: the residual adds tie the blocks of a stage together), the stem and
the last 1×1 conv (1280); the classifier never.
"""

from __future__ import annotations

import torch.nn as nn
from torchvision.models.mobilenetv2 import MobileNetV2

from prunebench.models.spec import AUTO_RULE, ModelSpec
from prunebench.models.registry import register_model

# t (expansion), c (channels), n (blocks), s (stride of the first block)
IMAGENET_SETTING = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 2],
                    [6, 320, 1, 1]]
CIFAR_SETTING = [[1, 16, 1, 1], [6, 24, 2, 1], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 2],
                 [6, 320, 1, 1]]


class MobileNetV2Net(MobileNetV2):
    """torchvision's MobileNetV2 plus ``init_weights``; ``cifar=True``: stride-1 stem and stride-1 24-channel stage."""

    def __init__(self, num_classes: int = 1000, cifar: bool = False) -> None:
        super().__init__(num_classes=num_classes, inverted_residual_setting=CIFAR_SETTING if cifar else IMAGENET_SETTING)
        if cifar:
            self.features[0][0].stride = (1, 1)

    def init_weights(self) -> None:
        """torchvision's init: convs He-normal over fan-out (zero bias), BN γ=1 β=0 (fresh statistics), Linear N(0, 0.01)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
                if isinstance(m, nn.BatchNorm2d):
                    m.reset_running_stats()
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)


register_model(ModelSpec("mobilenetv2", lambda nc: MobileNetV2Net(nc, cifar=True), (3, 32, 32), None, "mobilenetv2",
                         "MobileNetV2 (Sandler et al. 2018), CIFAR layout: stride-1 stem and 24-channel stage",
                         AUTO_RULE))
register_model(ModelSpec("mobilenetv2-imagenet", lambda nc: MobileNetV2Net(nc), (3, 224, 224), None, "mobilenetv2",
                         "MobileNetV2 (Sandler et al. 2018), ImageNet layout (torchvision's; Ye et al. 2020 prune it)",
                         AUTO_RULE, weights_enum="MobileNet_V2_Weights"))
