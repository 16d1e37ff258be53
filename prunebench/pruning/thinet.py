"""ThiNet (Luo et al., ICCV 2017): prune layer i by how little its channels matter to layer i+1.

Layer by layer, in forward order, on the *current* (already partly pruned) model: for each prunable layer, capture the
input of its consumer on the calibration batches, sample output locations (``samples_per_image`` per image, one random
output unit each), and write each sampled output as a sum of per-channel contributions ``x̂_c`` (reconstruction.py). The
removed set T grows greedily: add the channel that keeps ``Σ_samples (Σ_{c∈T} x̂_c)²`` smallest, until T holds the
number of channels to remove. Those channels are removed physically through torch-pruning's DependencyGraph. Then (option
``rescale``, default on) the consumer's kept input channels are rescaled by the least-squares ŵ minimising
``‖ŷ − Σ_{c∉T} ŵ_c x̂_c‖²`` (the paper's eq. 6), so that the consumer's output is reconstructed as well as possible.

Not done here: the paper's short fine-tune after each layer (the runner's fine-tune regime follows the whole prune).

Presets (paper-protocol.md §1): ThiNet-30/50/70 for ImageNet ResNet-50 (conv1 and conv2 of every bottleneck, widths per
stage (19,38,76,153) / (32,64,128,256) / (44,89,179,358); block outputs kept) and ThiNet-Conv for VGG-16
(cfg [32,32,M,64,64,M,128×3,M,256×3,M,512×3,M], FC head kept). Conv+linear MACs ↓ (our counting rule) vs the official
counter's FLOPs ↓: ThiNet-30 71.5 % (paper 71.3), ThiNet-50 55.4 % (55.3), ThiNet-70 36.4 % (36.3), VGG ThiNet-Conv 69.0 %
(69.0). ThiNet-GAP/Tiny change the head: they are the models ``vgg16-thinet-gap`` / ``vgg16-thinet-tiny`` (Scratch-E/B).

Forward passes dominate; the block-input cache (feeder.py) makes them ~1.5 calibration passes in all instead of one
per pruned layer. Measured prune times: docs/methods.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from prunebench.core.params import param

from prunebench.pruning.base import layer_order, verify_forward, verify_widths
from prunebench.pruning.feeder import Feeder
from prunebench.pruning.groups import build_graph
from prunebench.pruning.reconstruction import (
    calibration_batches,
    collect,
    find_consumers,
    kept_features,
    out_channels,
    removal_count,
    remove_channels,
    ridge_solve,
    set_weight,
    unit_contributions,
)
from prunebench.pruning.registry import Method, Preset, PruneRequest, register_method



@dataclass(frozen=True)
class ThiNetOptions:
    """Options of ``thinet``: least-squares rescale of the next layer, and sampled locations per image."""

    rescale: bool = param(True, "least-squares rescale of the next layer's kept input channels")
    samples_per_image: int = param(10, "output locations sampled per calibration image", unit="locations")

    def problems(self) -> list[str]:
        """["samples_per_image must be ≥ 1"] if it is not; [] otherwise."""
        return [] if self.samples_per_image >= 1 else ["samples_per_image must be ≥ 1"]


def greedy_removal(gram: torch.Tensor, count: int) -> list[int]:
    """ThiNet's greedy selection on the Gram matrix G = ZᵀZ of per-channel contributions Z (samples × channels).

    Adding channel i to T changes ‖Σ_{c∈T} Z_c‖² by 2·Σ_{t∈T} G[i,t] + G[i,i]; pick the smallest (lowest index on ties).
    """
    gram = gram.cpu()
    acc = torch.zeros(len(gram), dtype=gram.dtype)
    free = torch.ones(len(gram), dtype=torch.bool)
    removed: list[int] = []
    diag = gram.diagonal()
    for _ in range(count):
        value = torch.where(free, 2 * acc + diag, torch.full_like(diag, float("inf")))
        i = int(torch.argmin(value))
        removed.append(i)
        free[i] = False
        acc += gram[:, i]
    return removed


def rescale(z: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Least-squares ŵ over the kept channels reconstructing ŷ = Σ_c Z_c (all channels): one scale per kept channel."""
    y = z.sum(1)
    zs = z[:, keep.to(z.device)]
    return ridge_solve(zs.T @ zs, zs.T @ y)


def prune(request: PruneRequest) -> nn.Module:
    """``thinet`` (Luo et al., ICCV 2017): per layer in forward order, greedily remove the channels contributing least
    to the next layer's sampled outputs, then rescale it. Raises :class:`PrunebenchError` without calibration batches.
    Returns the slimmed model."""
    opts = {"rescale": request.options.rescale, "samples_per_image": request.options.samples_per_image}
    model, batches = request.model, calibration_batches(request.calibration, "thinet")
    targets = request.target_widths()
    gen = torch.Generator().manual_seed(request.seed)
    modules = dict(model.named_modules())
    feeder = Feeder(model, batches)
    dg = build_graph(model, request.example)
    for name in layer_order(model, list(targets)):
        layer = modules[name]
        n = out_channels(layer)
        if not removal_count(name, layer, targets[name]):
            continue
        consumers = find_consumers(dg, model, layer)
        samples = collect([feeder], [layer], [consumers], int(opts["samples_per_image"]), gen)
        zs = [unit_contributions(c, c.flat_weight(), p, units, n)[0] for c, [(p, units)] in zip(consumers, samples)]
        z_all = torch.cat(zs)
        removed = torch.tensor(sorted(greedy_removal(z_all.T @ z_all, n - targets[name])), dtype=torch.long)
        keep = torch.ones(n, dtype=torch.bool)
        keep[removed] = False
        refits = []
        for c, z in zip(consumers, zs):
            w = c.flat_weight().double()
            if opts["rescale"]:
                scale = torch.ones(n, dtype=torch.float64, device=z.device)
                scale[keep.to(z.device)] = rescale(z, keep)
                froot = c.feature_root()
                w = w * torch.where(froot >= 0, scale[froot.clamp_min(0)], torch.ones_like(scale[:1]))
            refits.append(w[:, kept_features(c, removed)])
        remove_channels(dg, layer, removed.tolist(), name)
        for c, w in zip(consumers, refits):
            set_weight(c, w)
    verify_widths(model, targets)
    verify_forward(model, request.example)
    return model


# ------------------------------------------------------------------------------------------------------------ presets
def resnet50_stage_widths(per_stage: tuple[int, int, int, int]):
    """conv1 and conv2 of every bottleneck of stage s get ``per_stage[s]`` channels; block outputs stay whole."""

    def widths(model: nn.Module) -> dict[str, int]:
        targets = {}
        for s, stage in enumerate(("layer1", "layer2", "layer3", "layer4")):
            for b, _ in enumerate(getattr(model, stage)):
                targets[f"{stage}.{b}.conv1"] = per_stage[s]
                targets[f"{stage}.{b}.conv2"] = per_stage[s]
        return targets

    return widths


def vgg_cfg_widths(cfg: list):
    """Feature-conv widths of a VGG from a cfg list ("M" = max-pool, skipped)."""
    convs = [v for v in cfg if v != "M"]

    def widths(model: nn.Module) -> dict[str, int]:
        names = [f"features.{i}" for i, m in enumerate(model.features) if isinstance(m, nn.Conv2d)]
        if len(names) != len(convs):
            raise ValueError(f"cfg has {len(convs)} convs, model {len(names)}")
        return dict(zip(names, convs))

    return widths


THINET_CONV_CFG = [32, 32, "M", 64, 64, "M", 128, 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M"]
SOURCE = "Luo et al. 2017; architectures from Liu et al. 2019's official ImageNet ThiNet models"

PRESETS = (
    Preset("30", "resnet50", "ThiNet-30", resnet50_stage_widths((19, 38, 76, 153)), 0.713, SOURCE),
    Preset("50", "resnet50", "ThiNet-50", resnet50_stage_widths((32, 64, 128, 256)), 0.553, SOURCE),
    Preset("70", "resnet50", "ThiNet-70", resnet50_stage_widths((44, 89, 179, 358)), 0.363, SOURCE),
    Preset("Conv", "vgg16-imagenet", "VGG-16 ThiNet-Conv", vgg_cfg_widths(THINET_CONV_CFG), 0.690, SOURCE),
)

METHOD = register_method(
    Method(
        "thinet",
        prune,
        "Luo et al. 2017: greedily remove the channels whose contributions to the next layer's sampled outputs are "
        "smallest, layer by layer, then least-squares rescale of the next layer",
        PRESETS,
        needs_data=True,
        options=ThiNetOptions,
        widths_from_plan=True,
    )
)
