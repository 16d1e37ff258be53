"""L1-norm filter pruning (Li et al., ICLR 2017): per layer, remove the filters with the smallest Σ|w|.

One shot on the trained baseline with predefined per-layer rates; scores are the root filter's own L1 norm
(torch-pruning ``MagnitudeImportance(p=1, group_reduction="first", normalizer=None)``), all taken before any layer is pruned
(the paper's *independent* strategy). Measured prune times: docs/methods.md.

Presets (paper-protocol.md §1): VGG-16-A prunes conv1 to 32 and conv8–13 to 256. CIFAR ResNets number every conv in forward
order with the stem as 1, so block b's first conv has id 2b+2; only those are pruned (option-A), each stage at its own rate,
except the skipped (sensitive) ids; kept = floor(C·(1−rate)). ImageNet ResNet-34-A/B use the same numbering without the
downsample convs over four stages (conv+linear MACs ↓ 15.4 % / 24.1 % measured vs the paper's 15.5 % / 24.2 %).
"""

from __future__ import annotations

import torch.nn as nn
import torch_pruning as tp

from prunebench.pruning.base import keep_count, prunable_widths, slim_to_widths
from prunebench.pruning.registry import Method, Preset, PruneRequest, register_method

IMPORTANCE = tp.importance.MagnitudeImportance(p=1, group_reduction="first", normalizer=None)


def vgg16_a(model: nn.Module) -> dict[str, int]:
    """conv1 64→32 and conv8–13 512→256 (cfg [32,64,M,128,128,M,256×3,M,256×3,M,256×3])."""
    convs = list(prunable_widths(model, "vgg16").items())
    targets = {name: width for name, width in convs}
    targets[convs[0][0]] = 32
    for name, _ in convs[7:13]:
        targets[name] = 256
    return targets


def resnet_cifar_preset(skip: set[int], rates: tuple[float, float, float]) -> "callable":
    """Per-stage rates on block conv1s (conv id 2b+2), leaving the ids in ``skip`` whole."""

    def widths(model: nn.Module) -> dict[str, int]:
        blocks = model.blocks()  # type: ignore[operator]
        per_stage = len(blocks) // 3
        targets = {}
        for b, block in enumerate(blocks):
            name = _block_conv1_name(model, block)
            conv_id = 2 * b + 2
            c = block.conv1.out_channels
            targets[name] = c if conv_id in skip else keep_count(c, rates[b // per_stage])
        return targets

    return widths


def resnet34_preset(skip: set[int], rates: tuple[float, float, float, float]) -> "callable":
    """ImageNet ResNet-34: the same numbering without the downsample convs (block b's conv1 has id 2b+2), four stages."""

    def widths(model: nn.Module) -> dict[str, int]:
        targets = {}
        b = 0
        for stage, layer in enumerate((model.layer1, model.layer2, model.layer3, model.layer4)):  # type: ignore[attr-defined]
            for block in layer:
                c = block.conv1.out_channels
                targets[_block_conv1_name(model, block)] = c if 2 * b + 2 in skip else keep_count(c, rates[stage])
                b += 1
        return targets

    return widths


RESNET34_SKIP = {2, 8, 14, 16, 26, 28, 30, 32}  # first block of stage 1, first+last of stages 2-3, all of stage 4


def _block_conv1_name(model: nn.Module, block: nn.Module) -> str:
    for name, m in model.named_modules():
        if m is block.conv1:
            return name
    raise LookupError("block not in model")


PRESETS = (
    Preset("A", "vgg16", "VGG-16-A", vgg16_a, 0.342, "Li et al. 2017 Table 1"),
    Preset("A", "resnet56", "ResNet-56-A", resnet_cifar_preset({16, 20, 38, 54}, (0.1, 0.1, 0.1)), 0.104, "Li et al. 2017"),
    Preset("B", "resnet56", "ResNet-56-B", resnet_cifar_preset({16, 18, 20, 34, 38, 54}, (0.6, 0.3, 0.1)), 0.276,
           "Li et al. 2017"),
    Preset("A", "resnet110", "ResNet-110-A", resnet_cifar_preset({36}, (0.5, 0.0, 0.0)), 0.159, "Li et al. 2017"),
    Preset("B", "resnet110", "ResNet-110-B", resnet_cifar_preset({36, 38, 74}, (0.5, 0.4, 0.3)), 0.386, "Li et al. 2017"),
    Preset("A", "resnet34", "ResNet-34-A", resnet34_preset(RESNET34_SKIP, (0.3, 0.3, 0.3, 0.0)), 0.155, "Li et al. 2017"),
    Preset("B", "resnet34", "ResNet-34-B", resnet34_preset(RESNET34_SKIP, (0.5, 0.6, 0.4, 0.0)), 0.242, "Li et al. 2017"),
)


def prune(request: PruneRequest) -> nn.Module:
    """``l1-norm`` (Li et al., ICLR 2017): slim each layer to the plan's width, removing the filters of smallest Σ|w|
    (torch-pruning). Returns the slimmed model."""
    return slim_to_widths(request.model, request.example, request.target_widths(), importance=IMPORTANCE)


METHOD = register_method(
    Method(
        "l1-norm",
        prune,
        "Li et al. 2017: remove the filters with the smallest L1 norm, per layer, at predefined rates",
        PRESETS,
        widths_from_plan=True,
    )
)
