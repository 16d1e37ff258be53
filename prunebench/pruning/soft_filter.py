"""Soft filter pruning (He et al., IJCAI 2018): zero the weakest filters every epoch, keep training them, remove at the end.

Sparsity phase (``sparsity`` hooks, used by ``prunebench run``): after every epoch, in every prunable conv, the filters
with the smallest L2 norm are set to zero — as many as the final prune will remove, C − floor(C·(1−r)) for ratio r (the
same widths every other method gets at that ratio; SFP's own code zeroes int(C·r), which differs by one channel when C·r is
not an integer). Zeroed filters keep receiving gradients and may grow back; the next epoch re-selects. The widths come
from the request's ``--ratio`` (and ``round_to``), the same request the final prune gets.

Prune: remove the lowest-L2 filters of every prunable layer to the target widths via ``slim_to_widths`` (after SFP
training those are exactly the zeroed ones; on a plain model this is L2-norm filter pruning).

Deviation: SFP zeroes every conv (stem and both convs of each block). Option-A CIFAR ResNets allow only each block's
conv1 to be *removed* (the zero-padded shortcut forbids pruning block outputs, torch-pruning trap 5), so only those are
zeroed here too — zeroing filters that are never removed would only handicap the network.

Measured prune times: docs/methods.md.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from prunebench.core.errors import PrunebenchError
from prunebench.core.hooks import TrainHooks
from prunebench.pruning.base import round_widths, slim_to_widths, uniform_widths
from prunebench.pruning.registry import Method, PruneRequest, register_method


def l2_scores(model: nn.Module, names: list[str]) -> dict[str, torch.Tensor]:
    """L2 norm of each output filter (weight and bias) of the named layers."""
    modules = dict(model.named_modules())
    out = {}
    for name in names:
        layer = modules[name]
        w = layer.weight.detach().flatten(1).float()
        sq = w.pow(2).sum(1)
        if getattr(layer, "bias", None) is not None:
            sq = sq + layer.bias.detach().float().pow(2)
        out[name] = sq.sqrt().cpu()
    return out


def zero_weakest(model: nn.Module, widths: dict[str, int]) -> int:
    """Zero the C − width lowest-L2 filters of every layer in ``widths``; returns how many filters were zeroed."""
    modules = dict(model.named_modules())
    scores = l2_scores(model, list(widths))
    total = 0
    with torch.no_grad():
        for name, keep in widths.items():
            layer = modules[name]
            n = layer.weight.shape[0] - keep
            if n <= 0:
                continue
            idx = torch.sort(scores[name], stable=True).indices[:n].to(layer.weight.device)
            layer.weight[idx] = 0
            if getattr(layer, "bias", None) is not None:
                layer.bias[idx] = 0
            total += n
    return total


def prune(request: PruneRequest) -> nn.Module:
    """``soft-filter``: remove the filters of lowest L2 norm (the ones SFP training zeroed) to the plan's widths.
    Returns the slimmed model."""
    targets = request.target_widths()
    scores = l2_scores(request.model, list(targets))
    request.notes.update({"soft_filter": {"criterion": "lowest L2 filter norm (the ones SFP training zeroed)",
                                          "zero_filters": {n: int((s == 0).sum()) for n, s in scores.items()}}})
    return slim_to_widths(request.model, request.example, targets, scores=scores)


class SoftFilterHooks(TrainHooks):
    """Soft filter pruning's training hooks (He et al., IJCAI 2018): zero the weakest filters (to ``widths``) after
    every epoch."""

    def __init__(self, widths: dict[str, int]) -> None:
        self.widths = widths
        self.zeroed_last_epoch = 0
        self.epochs = 0

    def after_epoch(self, model: nn.Module, epoch: int) -> None:
        self.zeroed_last_epoch = zero_weakest(model, self.widths)
        self.epochs += 1

    def state(self) -> dict[str, Any]:
        return {"epochs_zeroed": self.epochs, "filters_zeroed_per_epoch": self.zeroed_last_epoch, "widths": self.widths}


def sparsity(request: PruneRequest) -> SoftFilterHooks:
    """Per-epoch zeroing toward the widths the final prune will keep (``--ratio``, rounded to ``round_to``)."""
    if request.ratio is None:
        raise PrunebenchError("soft-filter training needs --ratio (presets are not defined for soft-filter)")
    widths = uniform_widths(request.model, request.model_name, float(request.ratio))
    if request.round_to:
        widths = round_widths(widths, request.round_to, {n: m.out_channels for n, m in request.model.named_modules()
                                                         if n in widths})
    return SoftFilterHooks(widths)


METHOD = register_method(
    Method(
        "soft-filter",
        prune,
        "He et al. 2018 (SFP): zero the lowest-L2 filters after every training epoch, keep updating them, remove at the end",
        (),
        sparsity=sparsity,
        widths_from_plan=True,
    )
)
