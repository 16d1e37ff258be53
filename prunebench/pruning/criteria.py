"""Baselines from torch-pruning's own criteria: random, l2-norm, taylor, lamp, group-norm.

Each is one importance (a small class or a configured torch-pruning one) plugged into the same exact-width slimming as
``l1-norm``: the width plan comes from ``request.target_widths()`` (a ratio, an explicit plan, or an L1-norm preset's widths —
the presets are shared so that every criterion can be compared at the paper's architectures), and ``slim_to_widths`` removes
the lowest-scored channels of each layer, scores taken on the unpruned model. torch-pruning importances score the *root*
channels of a group (the pruned layer's outputs), aggregating every coupled layer through the group's ``root_idxs``.

- ``random``: uniform scores from a generator seeded by the request's seed — the honest floor every method must beat.
- ``l2-norm``: the root filter's own L2 norm (``MagnitudeImportance(p=2, group_reduction="first")``), Li et al. with p=2.
- ``taylor``: Molchanov et al. 2019, |w·∂L/∂w| summed over the group, gradients accumulated over the calibration batches
  (eval mode, so BN statistics are untouched); needs data.
- ``lamp``: Lee et al. 2021, LAMP-normalised squared magnitudes averaged over the group. LAMP is a monotone transform within
  a layer, so at fixed per-layer widths it removes *exactly* the channels ``group-norm`` removes (checked on ResNet-56).
  Its point is the allocation across layers: LAMP scores are comparable between layers, so with ``--ratio`` (option
  ``allocation="global"``, the default there) channels are removed where the scores are globally lowest (each layer keeps
  at least one) until the model costs the uniform plan's MACs (``budget="macs"``, the default: the same FLOPs target as
  the per-layer methods; ``scaling.global_widths_at_cost``). ``budget="channels"`` instead removes the uniform plan's
  channel *count*; MACs then differ (−35 % instead of −50 % on ResNet-56 at ``--ratio 0.5``: LAMP takes channels from
  the cheap early layers first). With a preset or an explicit widths plan the widths are kept (``allocation="layer"``).
- ``group-norm``: DepGraph's group criterion (Fang et al. 2023): squared L2 over the *whole* group — the filter, its BN and
  the consumer's input slice (``GroupMagnitudeImportance(p=2)``; torch-pruning 1.6.1 has no ``GroupNormImportance``).

Measured prune times: docs/methods.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch_pruning as tp

from prunebench.core.errors import PrunebenchError
from prunebench.core.params import param
from prunebench.pruning.base import (
    Importance, _out_channels, _out_pruning_fn, channel_multiples, prunable_widths, round_widths, slim_to_widths,
)
from prunebench.pruning.groups import build_graph
from prunebench.pruning.l1_norm import PRESETS as L1_PRESETS
from prunebench.pruning.registry import Method, PruneRequest, register_method
from prunebench.pruning.scaling import cost_of_widths, drop_lowest, global_order, global_widths_at_cost


@dataclass(frozen=True)
class LampOptions:
    """Options of ``lamp``: global or per-layer allocation, and the budget (MACs or channels) of a global one."""

    allocation: Literal["global", "layer"] | None = param(
        None, "global: channels go where LAMP is globally lowest; layer: keep the plan's per-layer widths (default: "
              "global with --ratio, layer with a preset or widths plan)")
    budget: Literal["macs", "channels"] = param(
        "macs", "with global allocation, remove channels until the uniform plan's MACs (macs) or its channel count "
                "(channels)")


class SeededRandomImportance(tp.importance.RandomImportance):
    """Uniform random scores from a private generator: the same seed removes the same channels."""

    def __init__(self, seed: int) -> None:
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, group: Any, **kwargs: Any) -> torch.Tensor:
        return torch.rand(len(group[0].idxs), generator=self.generator)


def l2_importance() -> Importance:
    """torch-pruning's ``MagnitudeImportance(p=2)`` on the root layer's filters only (no group reduction, no
    normalizer)."""
    return tp.importance.MagnitudeImportance(p=2, group_reduction="first", normalizer=None)


def lamp_importance() -> Importance:
    """torch-pruning's ``LAMPImportance(p=2)`` (Lee et al., ICLR 2021: layer-adaptive magnitude-based pruning)."""
    return tp.importance.LAMPImportance(p=2)


def group_norm_importance() -> Importance:
    """torch-pruning's ``GroupMagnitudeImportance(p=2)``: L2 norm over every coupled parameter of a group (Fang et al.,
    DepGraph, CVPR 2023)."""
    return tp.importance.GroupMagnitudeImportance(p=2)


def taylor_importance() -> Importance:
    """torch-pruning's ``GroupTaylorImportance`` (needs gradients accumulated on the model)."""
    return tp.importance.GroupTaylorImportance()


def accumulate_gradients(model: nn.Module, calibration: Any) -> int:
    """Sum the cross-entropy gradients of every calibration batch into ``.grad`` (eval mode); returns the image count."""
    if calibration is None:
        raise PrunebenchError("taylor needs data: pass --data (e.g. imagefolder:PATH or synthetic)")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    model.zero_grad(set_to_none=True)
    seen = 0
    with torch.enable_grad():
        for x, y in calibration:
            x, y = x.to(device), y.to(device)
            F.cross_entropy(model(x), y, reduction="sum").backward()
            seen += len(y)
    model.train(was_training)
    if not seen:
        raise PrunebenchError("taylor got no calibration images; pass --data with at least one batch")
    return seen


def _slim(request: PruneRequest, importance: Importance) -> nn.Module:
    return slim_to_widths(request.model, request.example, request.target_widths(), importance=importance)


def prune_random(request: PruneRequest) -> nn.Module:
    """``random``: slim to the plan's widths removing channels chosen at random (seeded by ``request.seed``). Returns
    the slimmed model."""
    return _slim(request, SeededRandomImportance(request.seed))


def prune_l2(request: PruneRequest) -> nn.Module:
    """``l2-norm``: slim to the plan's widths removing the filters of lowest L2 norm. Returns the slimmed model."""
    return _slim(request, l2_importance())


def lamp_scores(model: nn.Module, example: torch.Tensor, names: list[str]) -> dict[str, torch.Tensor]:
    """{layer: LAMP score per output channel}, each over the layer's whole torch-pruning group."""
    modules = dict(model.named_modules())
    imp = lamp_importance()
    dg = build_graph(model, example)
    with torch.enable_grad():
        groups = {n: dg.get_pruning_group(modules[n], _out_pruning_fn(modules[n]),
                                          idxs=list(range(_out_channels(modules[n])))) for n in names}
    return {n: imp(g).detach().flatten().float().cpu() for n, g in groups.items()}


def lamp_global_widths(model: nn.Module, example: torch.Tensor, targets: dict[str, int]) -> dict[str, int]:
    """Remove Σ(current − target) channels where the LAMP scores are globally lowest, at least one kept per layer."""
    scores = lamp_scores(model, example, list(targets))
    current = {name: len(s) for name, s in scores.items()}
    return drop_lowest(global_order(scores), current, sum(current[n] - w for n, w in targets.items()))


def prune_lamp(request: PruneRequest) -> nn.Module:
    """``lamp``: LAMP scores (Lee et al., ICLR 2021) decide which channels go, globally at the plan's MACs or channel
    count, or per layer at the plan's widths. Returns the slimmed model; the allocation lands in ``request.notes``."""
    targets = request.target_widths()
    default = "global" if request.preset is None and request.widths is None else "layer"
    allocation = request.options.allocation or default
    budget = request.options.budget
    if allocation == "global":
        original = prunable_widths(request.model, request.model_name)
        if budget == "macs":  # the plan's MACs, not its channel count: one FLOPs target shared with per-layer methods
            target = cost_of_widths(request.model, request.model_name, targets)
            sol = global_widths_at_cost(request.model, request.model_name,
                                        lamp_scores(request.model, request.example, list(targets)), target)
            request.notes["lamp"] = {"budget": "macs", "target_macs": int(target), "macs": sol.cost,
                                     "channels_removed": sum(original.values()) - sum(sol.widths.values()),
                                     "clamped": sol.clamped}
            targets = sol.widths
        else:
            targets = lamp_global_widths(request.model, request.example, targets)
        targets = round_widths(targets, request.round_to, original, channel_multiples(request.model, request.model_name))
    return slim_to_widths(request.model, request.example, targets, importance=lamp_importance())


def prune_group_norm(request: PruneRequest) -> nn.Module:
    """``group-norm``: slim to the plan's widths removing the lowest group L2 norms (torch-pruning). Returns the slimmed
    model."""
    return _slim(request, group_norm_importance())


def prune_taylor(request: PruneRequest) -> nn.Module:
    """``taylor``: first-order Taylor importance |w·∂L/∂w| (Molchanov et al., CVPR 2019; torch-pruning) from gradients
    accumulated on the calibration batches. Returns the slimmed model; gradients are cleared."""
    accumulate_gradients(request.model, request.calibration)
    try:
        return _slim(request, taylor_importance())
    finally:
        request.model.zero_grad(set_to_none=True)  # no stale (and mis-shaped) gradients leave this function


for _method in (
    Method("random", prune_random, "random channels per layer (seeded): the floor every criterion must beat", L1_PRESETS,
           widths_from_plan=True),
    Method("l2-norm", prune_l2, "remove the filters with the smallest L2 norm, per layer (torch-pruning magnitude, p=2)",
           L1_PRESETS, widths_from_plan=True),
    Method("taylor", prune_taylor, "Molchanov et al. 2019: group |w·dL/dw| on calibration batches, per layer", L1_PRESETS,
           needs_data=True, widths_from_plan=True),
    Method("lamp", prune_lamp, "Lee et al. 2021: LAMP scores over the group; with --ratio channels go where LAMP is "
           "globally lowest until the uniform plan's MACs (presets keep their widths)", L1_PRESETS,
           options=LampOptions),
    Method("group-norm", prune_group_norm, "DepGraph (Fang et al. 2023): L2 norm over the whole dependency group, per layer",
           L1_PRESETS, widths_from_plan=True),
):
    register_method(_method)
