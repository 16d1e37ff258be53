"""Network slimming (Liu et al., ICCV 2017): L1 on BN scaling factors while training, then one global |γ| threshold.

Sparsity phase (``sparsity`` hooks, used by ``prunebench run`` before pruning): after every backward pass add λ·sign(γ) to
the gradient of every affine BatchNorm2d (the subgradient of λΣ|γ|; the official ``updateBN``). λ defaults per model family as in the
paper: 1e-4 for VGG, 1e-5 for PreResNet, DenseNet and everything else; ``options["lambda"]`` overrides it.

Prune: each prunable layer's output channel gets a score, |γ| of the BN that normalises it (torch-pruning's
``BNScaleImportance`` on the layer's group with ``normalizer=None``; max over the BNs when there are several, see
DenseNet below). As in the official vggprune/resprune/denseprune scripts, |γ| of *every* BatchNorm2d is sorted together
and the threshold is the element at floor(total·percent); a prunable channel is kept iff its score is **strictly
greater**. BN channels that fall under the threshold but cannot be removed physically (below) are counted in the percent
and reported (``population_under_threshold`` in the notes), never silently re-assigned to removable layers. A layer whose
channels all fall under the threshold keeps its one largest-|γ| channel (the official code would empty it and crash);
``Architecture.notes`` says how many layers hit that floor. The per-layer keep sets are computed here and passed as explicit
scores to ``slim_to_widths`` — never as a global torch-pruning step, which silently keeps such a layer whole (trap 7).
On an untrained net all γ are equal (0.5 or 1), nothing is strictly greater, and every layer hits the floor: slimming needs
the sparsity phase (the notes say so).

What is physically removed, per model (torch-pruning removes a channel from the layer, its BN and every consumer):
- VGG-19: every conv output, as in the paper (its 70 % preset: all 16 BNs in one threshold).
- PreResNet-164: each bottleneck's conv1/conv2 outputs (scores = bn2/bn3 γ). The paper also thresholds each block's bn1
  (and the final BN) and masks conv1's *inputs* with a channel-selection layer; those channels belong to the residual
  stream that every block reads, so they cannot be removed for one consumer: they count in the percent but stay. The
  paper's reduction includes those conv1-input savings, so ours is smaller for the same γ.
- DenseNet-40: every conv output (stem, growth, transitions). A growth channel feeds the BN of every later layer through
  the concatenation; the paper masks it per consumer, torch-pruning can only remove it from all consumers at once (trap
  11). Its score is therefore the *max* |γ| over its consumers (removed only where every consumer would drop it); the
  percent counts the per-consumer BN entries, as the paper does.
- CIFAR ResNets (option A): only block conv1 outputs (scores = bn1 γ); the stem and block-output BNs count in the percent.

FLOPs vs the paper (Liu et al. 2017 Table 1, CIFAR-10, as recalled — not checked against the paper here): VGG-19 70 %
−51.0 %, PreResNet-164 40 % −23.7 %, DenseNet-40 40 % −28.4 %. Checked source: the official PyTorch README
(Eric-mingjie/network-slimming) gives params 20.04M → 2.25M (VGG-19 70 %), 1.71M → 1.45M / 1.12M (PreResNet-164 40 / 60
%), 1.07M → 0.69M / 0.49M (DenseNet-40 40 / 60 %). At a fixed percent the result depends entirely on *where* the small γ
are, i.e. on the sparsity training (160 epochs, impossible on this CPU). Range the threshold produces here (every BN2d's γ
ordered deepest-layers-first … i.i.d. … shallowest-first; conv+linear MACs): VGG-19 70 % −40.4 … −91.3 … −94.7 % (params
2.89 / 1.82 / 5.26M); PreResNet-164 40 % −21.4 … −50.2 … −61.1 %; DenseNet-40 40 % −8.3 … −8.3 … −51.6 %. The paper's
FLOPs figures and VGG-19's 2.25M params lie inside, near the deep-first end (a sparsity-trained net shrinks its deep,
wide layers first). ``reports/network-slimming/`` has the full table and the script that makes it;
``tests/test_network_slimming.py`` checks the threshold logic exactly on hand-set γ and the VGG-19 range.

Budget: ``--ratio`` is the paper's percent of channels. To compare slimming with per-layer methods at one FLOPs target,
``options["budget"] = "macs"`` keeps the same lowest-|γ|-first order but removes exactly as many channels as bring the
model to the MACs of the uniform plan at ``--ratio`` (``scaling.global_widths_at_cost``; the floor of one channel holds).

Measured prune times: docs/methods.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn as nn
import torch_pruning as tp

from prunebench.core.errors import PrunebenchError
from prunebench.core.hooks import TrainHooks
from prunebench.core.params import param
from prunebench.models import get_model_spec
from prunebench.pruning.base import (
    _out_channels, _out_pruning_fn, channel_multiples, example_for, prunable_layers, round_widths,
    slim_to_widths,
)
from prunebench.pruning.groups import build_graph
from prunebench.pruning.registry import Method, Preset, PruneRequest, register_method
from prunebench.pruning.scaling import cost_of_widths, global_widths_at_cost

LAMBDA = {"vgg": 1e-4, "preresnet-cifar": 1e-5, "densenet-cifar": 1e-5}
LAMBDA_DEFAULT = 1e-5
BUDGETS = ("percent", "macs")  # --ratio as the paper's percent of channels, or as the uniform plan's MACs


@dataclass(frozen=True)
class SlimmingOptions:
    """Options of ``network-slimming``: the budget (the paper's percent of BN channels, or the uniform plan's MACs) and
    λ."""

    budget: Literal["percent", "macs"] = param(
        "percent", "percent: --ratio is the paper's share of all BN channels under one global |γ| threshold; macs: remove "
                   "lowest-|γ| channels until the uniform plan's MACs at --ratio")
    lam: float | None = param(None, "λ of the L1 penalty on BN γ during sparsity training (default: 1e-4 for VGG, "
                                    "1e-5 otherwise, as in the paper)", key="lambda")

    def problems(self) -> list[str]:
        """["lambda must be ≥ 0, ..."] for a negative λ; [] otherwise."""
        return [] if self.lam is None or self.lam >= 0 else [f"lambda must be ≥ 0, got {self.lam}"]
SCORE = tp.importance.BNScaleImportance(group_reduction="max", normalizer=None)


# --------------------------------------------------------------------------------------------------------- scores
def _groups(model: nn.Module, model_name: str, example: torch.Tensor | None = None) -> dict[str, Any]:
    """torch-pruning group (all channels) of every prunable layer; the model's train/eval mode is restored."""
    example = example if example is not None else example_for(model, model_name)
    modules = dict(model.named_modules())
    was_training = model.training
    try:
        names = prunable_layers(model, model_name)
        dg = build_graph(model, example)
        return {n: dg.get_pruning_group(modules[n], _out_pruning_fn(modules[n]), idxs=list(range(_out_channels(modules[n]))))
                for n in names}
    finally:
        model.train(was_training)


def channel_scores(model: nn.Module, model_name: str, example: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """{prunable layer: |γ| per output channel} (max over the BNs normalising the channel)."""
    scores = {}
    for name, group in _groups(model, model_name, example).items():
        s = SCORE(group)
        if s is None:
            raise PrunebenchError(f"layer {name} of {model_name} has no BatchNorm after it: network slimming scores "
                                  "channels by BN γ; use another method for this model")
        scores[name] = s.detach().float().cpu()
    return scores


# --------------------------------------------------------------------------------------------------------- threshold
def population_bns(model: nn.Module) -> dict[str, nn.BatchNorm2d]:
    """Every affine BatchNorm2d: the set the official scripts penalise (updateBN) and sort for the threshold."""
    return {n: m for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d) and m.affine}


def bn_population(model: nn.Module) -> torch.Tensor:
    """|γ| of every BN in ``population_bns``: what the percent counts."""
    return torch.cat([m.weight.detach().abs().flatten().float().cpu() for m in population_bns(model).values()])


def global_threshold(scores: dict[str, torch.Tensor], percent: float,
                     population: torch.Tensor | None = None) -> tuple[dict[str, int], dict[str, Any]]:
    """Widths from one threshold: keep score > sorted(population)[floor(N·percent)], at least one channel per layer.

    ``population`` (default: the scores themselves) is what the percent counts; the paper counts every BN channel, also
    those (residual-stream inputs, per-consumer DenseNet entries) that cannot be removed physically."""
    if not 0.0 <= percent < 1.0:
        raise PrunebenchError(f"network slimming percent must be in [0, 1), got {percent}")
    allv = torch.cat([s.flatten() for s in scores.values()])
    pop = allv if population is None else population.flatten()
    ordered = torch.sort(pop).values
    threshold = float(ordered[int(pop.numel() * percent)])
    widths, floor = {}, []
    for name, s in scores.items():
        kept = int((s > threshold).sum())
        if kept == 0:
            kept = 1  # never empty a layer: keep its largest |γ| (slim_to_widths keeps the top score)
            floor.append(name)
        widths[name] = kept
    after = sum(widths.values())
    notes = {
        "percent": percent, "threshold": threshold, "rule": "keep |γ| > sorted(all BN |γ|)[floor(total·percent)]",
        "population": int(pop.numel()), "population_under_threshold": int((pop <= threshold).sum()),
        "channels_before": int(allv.numel()), "channels_after": after,
        "removed_fraction": round(1 - after / allv.numel(), 6),
        "tied_at_threshold": int((allv == threshold).sum()),
        "floor_layers": len(floor), "floor_layer_names": floor,
    }
    if len(floor) == len(scores):
        notes["warning"] = ("every layer hit the one-channel floor: all |γ| are (nearly) equal, as in an untrained net; "
                            "network slimming needs its sparsity-training phase")
    return widths, notes


def slimming_widths(model: nn.Module, model_name: str, percent: float) -> dict[str, int]:
    """{prunable layer: width} left by removing the lowest ``percent`` of all BN channels under one global |γ|
    threshold."""
    return global_threshold(channel_scores(model, model_name), percent, bn_population(model))[0]


def _percent_of(preset: Preset) -> float:
    return float(preset.name.rstrip("%")) / 100.0


def prune(request: PruneRequest) -> nn.Module:
    """``network-slimming`` (Liu et al., ICCV 2017): remove the channels of lowest BN |γ| under one global threshold (or
    down to the uniform plan's MACs). Raises :class:`PrunebenchError` for budget ``macs`` without a ratio. Returns the
    slimmed model."""
    scores = channel_scores(request.model, request.model_name, request.example)
    if request.widths is not None:  # an explicit plan (e.g. a scaled width profile): remove the lowest |γ| to reach it
        return slim_to_widths(request.model, request.example, request.target_widths(), scores=scores)
    budget = request.options.budget
    if budget == "macs":  # the uniform plan's MACs at --ratio: one FLOPs target shared with per-layer methods
        if request.ratio is None:
            raise PrunebenchError("network-slimming budget = \"macs\" needs --ratio (the uniform plan whose MACs to match)")
        target = cost_of_widths(request.model, request.model_name, request.target_widths())
        sol = global_widths_at_cost(request.model, request.model_name, scores, target)
        widths = sol.widths
        before = sum(s.numel() for s in scores.values())
        removed = before - sum(widths.values())
        notes = {"budget": "macs", "target_macs": int(target), "macs": sol.cost, "clamped": sol.clamped,
                 "channels_before": before, "channels_removed": removed, "removed_fraction": round(removed / before, 6),
                 "floor_layers": sum(1 for n, w in widths.items() if w == 1 and scores[n].numel() > 1)}
    else:
        percent = request.ratio if request.ratio is not None else _percent_of(request.preset)  # type: ignore[arg-type]
        widths, notes = global_threshold(scores, percent, bn_population(request.model))
    if request.round_to:
        widths = round_widths(widths, request.round_to, {n: s.numel() for n, s in scores.items()},
                              channel_multiples(request.model, request.model_name))
    request.notes.update({"network_slimming": notes})
    return slim_to_widths(request.model, request.example, widths, scores=scores)


# --------------------------------------------------------------------------------------------------------- sparsity
class SlimmingHooks(TrainHooks):
    """λ·sign(γ) added to the gradient of the scored BNs after every backward (L1 on the scaling factors)."""

    def __init__(self, bn_names: list[str], lam: float) -> None:
        self.bn_names = bn_names
        self.lam = lam
        self._bns: list[nn.Module] = []
        self._model_id = -1

    def _resolve(self, model: nn.Module) -> list[nn.Module]:
        if id(model) != self._model_id:
            modules = dict(model.named_modules())
            self._bns = [modules[n] for n in self.bn_names]
            self._model_id = id(model)
        return self._bns

    def after_backward(self, model: nn.Module) -> None:
        with torch.no_grad():
            for bn in self._resolve(model):
                if bn.weight.grad is not None:
                    bn.weight.grad.add_(torch.sign(bn.weight), alpha=self.lam)

    def state(self) -> dict[str, Any]:
        if not self._bns:
            return {"lambda": self.lam, "bns": len(self.bn_names)}
        g = torch.cat([bn.weight.detach().abs().flatten().cpu() for bn in self._bns])
        return {"lambda": self.lam, "bns": len(self.bn_names), "gamma_median": float(g.median()),
                "gamma_below_1e-2": round(float((g < 1e-2).float().mean()), 4)}


def default_lambda(model_name: str | None, model: nn.Module) -> float:
    """λ of the sparsity penalty by model family (1e-4 for VGG, 1e-5 otherwise, as in Liu et al. 2017)."""
    if model_name is not None:
        return LAMBDA.get(get_model_spec(model_name).family, LAMBDA_DEFAULT)
    from prunebench.models.vgg_cifar import VGG

    return LAMBDA["vgg"] if isinstance(model, VGG) else LAMBDA_DEFAULT


def sparsity(request: PruneRequest) -> SlimmingHooks:
    """Hooks for the sparsity-training phase: λ·sign(γ) on every affine BatchNorm2d — the official ``updateBN`` rule, and
    the same set the threshold's percent counts (``bn_population``). λ is option ``lambda``, else the paper's value for
    the model's family."""
    model = request.model
    lam = request.options.lam if request.options.lam is not None else default_lambda(request.model_name, model)
    return SlimmingHooks(list(population_bns(model)), float(lam))


# --------------------------------------------------------------------------------------------------------- presets
def _preset(percent: str, model: str, title: str, paper: float | None, source: str) -> Preset:
    p = float(percent.rstrip("%")) / 100.0
    return Preset(percent, model, title, lambda m, name=model, p=p: slimming_widths(m, name, p), paper, source)


NS = "Liu et al. 2017 Table 1 (CIFAR-10); percent of BN channels under the global threshold"
PRESETS = (
    _preset("70%", "vgg19", "VGG-19 70%", 0.510, NS),
    _preset("40%", "preresnet164", "PreResNet-164 40%", 0.237, NS),
    _preset("60%", "preresnet164", "PreResNet-164 60%", 0.449, NS),
    _preset("40%", "densenet40", "DenseNet-40 40%", 0.284, NS),
    _preset("60%", "densenet40", "DenseNet-40 60%", None, "Liu et al. 2019 Table 4 (the slimming paper reports 40/70 %)"),
)

METHOD = register_method(
    Method(
        "network-slimming",
        prune,
        "Liu et al. 2017: L1 on BN γ during training, then one global |γ| threshold (--ratio = percent of channels)",
        PRESETS,
        options=SlimmingOptions,
        sparsity=sparsity,
    )
)
