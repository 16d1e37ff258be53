"""Greedy forward selection (Ye, Gong, Nie, Zhou, Klivans & Liu, ICML 2020): grow each layer from nothing.

L1-norm and slimming *eliminate* channels from the full layer; Ye et al. *select* them: visit the prunable layers from input
to output; each starts from an empty channel set S; on a fresh mini-batch, draw at most ``candidates`` (paper: 50) unselected
channels at random, tentatively add each, and keep the one whose addition gives the lowest loss; stop when the
layer-restricted network's accuracy on the training (here: calibration) batches is ≥ ``tolerance`` (paper 0.98) × that of the
network before this layer was restricted, or when the layer reaches its width bound; fine-tune briefly, next layer. The
paper's MobileNetV2 run fine-tunes 0.1 epoch between layers; here ``ft_steps`` calibration batches (default 2) at lr 2.5e-3,
weight decay 4e-5 (the paper's values).

The restriction is a 0/1 mask at the layer's channel *site* (after its BatchNorm: exactly what removing the channel does,
see ``masking``); candidates are scored in batched passes over only the downstream part of the network. At the end the
selected channels (scored by selection order) are kept physically through ``slim_to_widths``; the masked and the slimmed
network compute the same function.

Budget: ``--ratio``/``--preset`` (the paper's L1-norm plans)/widths give an **upper bound** on each layer's kept width (so
MACs fall at least as much as asked); the tolerance may stop a layer earlier (a tolerance above 1 can never be met, so
every layer grows to its bound: the way to put greedy-forward at a FLOPs target). Options: ``candidates`` (50), ``tolerance`` (0.98), ``ft_steps`` (2),
``ft_lr`` (2.5e-3), ``ft_weight_decay`` (4e-5), ``chunk`` (candidate masks per batched pass; default 512 // batch size),
``skip_first`` / ``skip_last`` (0 / 0: layers at either end left whole).

MobileNetV2 as Ye et al. ran it (``--model mobilenetv2`` or ``mobilenetv2-imagenet``, options ``skip_first = 2, skip_last =
2``): their 35 masked layers are the hidden and the output channels of each of the 17 inverted-residual blocks and the last
conv, visited input → output, skipping the first two and the last two. Here the layers are the automatically found groups
(25): the 17 hidden (expansion) groups — the stem's channels are block 1's hidden ones — and the last conv as theirs, but
the output channels of the blocks of one stage are *one* group (the residual adds tie them; Ye et al. mask them per block),
so 7 output groups instead of 17; skipping 2 + 2 leaves 21. Other differences: calibration batches instead of fresh
ImageNet mini-batches of 128, ``ft_steps`` batches instead of 0.1 epoch between layers, and the final 150-epoch fine-tune
is the runner's fine-tune regime.

Measured prune times: docs/methods.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from prunebench.core.errors import PrunebenchError
from prunebench.core.params import param, to_mapping
from prunebench.pruning.base import _out_channels, layer_order, slim_to_widths
from prunebench.pruning.masking import TailEvaluator, channel_sites, site_masks
from prunebench.pruning.l1_norm import PRESETS as L1_PRESETS  # the paper's width plans
from prunebench.pruning.registry import Method, PruneRequest, register_method



@dataclass(frozen=True)
class GreedyForwardOptions:
    """Options of ``greedy-forward``: candidates per step, stopping tolerance, fine-tuning between layers, layers left
    whole."""

    candidates: int = param(50, "unselected channels drawn per selection step (the paper's 50)")
    tolerance: float = param(0.98, "stop a layer when accuracy ≥ tolerance × the unrestricted network's; above 1 every "
                                   "layer grows to its width bound")
    ft_steps: int = param(2, "fine-tuning steps after each layer", unit="batches")
    ft_lr: float = param(2.5e-3, "fine-tuning learning rate between layers")
    ft_weight_decay: float = param(4e-5, "fine-tuning weight decay between layers")
    chunk: int | None = param(None, "candidate masks per batched pass (default 512 // batch size)")
    skip_first: int = param(0, "prunable layers (forward order) left whole at the input end; Ye et al. skip 2 on "
                               "MobileNetV2", unit="layers")
    skip_last: int = param(0, "prunable layers left whole at the output end; Ye et al. skip 2 on MobileNetV2",
                           unit="layers")

    def problems(self) -> list[str]:
        """Out-of-range options (candidates, skip_first, skip_last, chunk), one line each; [] if valid."""
        out = [f"{k} must be ≥ 1" for k in ("candidates",) if getattr(self, k) < 1]
        out += [f"{k} must be ≥ 0" for k in ("skip_first", "skip_last") if getattr(self, k) < 0]
        return out + (["chunk must be ≥ 1"] if self.chunk is not None and self.chunk < 1 else [])


DEFAULTS: dict[str, Any] = to_mapping(GreedyForwardOptions())


def _options(request: PruneRequest) -> dict[str, Any]:
    return to_mapping(request.options)


def _batches(request: PruneRequest, device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    batches = [(x.to(device), y.to(device)) for x, y in (request.calibration or [])]
    if not batches:
        raise PrunebenchError("greedy-forward needs calibration batches (pass --data)")
    return batches


@torch.no_grad()
def _accuracy(ev: TailEvaluator, caches: list[Any], batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    correct = total = 0
    for cache, (_, y) in zip(caches, batches):
        correct += int((ev.logits(cache).argmax(1) == y).sum())
        total += y.numel()
    return correct / max(total, 1)


@torch.no_grad()
def _candidate_losses(ev: TailEvaluator, site_mask: Any, base: torch.Tensor, cands: list[int], cache: Any,
                      y: torch.Tensor, chunk: int) -> torch.Tensor:
    """Mini-batch loss of S ∪ {c} for every candidate c, ``chunk`` candidates per batched pass."""
    losses = []
    for i in range(0, len(cands), chunk):
        part = cands[i:i + chunk]
        m = base.repeat(len(part), 1)
        m[torch.arange(len(part)), torch.tensor(part)] = 1.0
        site_mask.mask = m
        out = ev.logits(cache, len(part))
        losses.append(F.cross_entropy(out.float(), y.repeat(len(part)), reduction="none").view(len(part), -1).mean(1))
    return torch.cat(losses)


def _finetune(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]], steps: int, lr: float, wd: float,
              start: int) -> None:
    if steps <= 0:
        return
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=wd)  # fresh: parameters may be new
    model.train()
    for s in range(steps):
        x, y = batches[(start + s) % len(batches)]
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()


def select_channels(request: PruneRequest) -> dict[str, list[int]]:
    """{layer: selected channel indices, in selection order}. The model's weights change only by the fine-tuning."""
    o = _options(request)
    model = request.model
    device = next(model.parameters()).device
    batches = _batches(request, device)
    bounds = request.target_widths()
    ordered = layer_order(model, list(bounds))
    names = ordered[int(o["skip_first"]): len(ordered) - int(o["skip_last"])]   # skipped layers stay whole
    sites = channel_sites(model, request.example, names)
    modules = dict(model.named_modules())
    gen = torch.Generator().manual_seed(request.seed)
    chunk = int(o["chunk"] or max(1, 512 // batches[0][1].numel()))
    selected: dict[str, list[int]] = {}
    stopped_by_tolerance: list[str] = []
    step = 0
    was_training = model.training
    model.eval()
    with site_masks(model, sites) as masks:
        for n, name in enumerate(names):
            channels = _out_channels(modules[name])
            site = masks[name]
            ev = TailEvaluator(model, sites[name])
            site.mask = None
            caches = [ev.prepare(x) for x, _ in batches]          # upstream of the site: fixed while this layer grows
            full = _accuracy(ev, caches, batches)
            mask = torch.zeros(channels, device=device)
            chosen: list[int] = []
            while len(chosen) < min(bounds[name], channels):
                i = step % len(batches)
                step += 1
                pool = [c for c in range(channels) if mask[c] == 0]
                if len(pool) > o["candidates"]:
                    pick = torch.randperm(len(pool), generator=gen)[: int(o["candidates"])].sort().values
                    pool = [pool[j] for j in pick.tolist()]
                losses = _candidate_losses(ev, site, mask, pool, caches[i], batches[i][1], chunk)
                best = pool[int(torch.argmin(losses))]                 # ties: the lowest index
                chosen.append(best)
                mask[best] = 1.0
                site.mask = mask
                if _accuracy(ev, caches, batches) >= o["tolerance"] * full:
                    stopped_by_tolerance.append(name)
                    break
            site.mask = mask
            selected[name] = chosen
            if n + 1 < len(names):
                _finetune(model, batches, int(o["ft_steps"]), float(o["ft_lr"]), float(o["ft_weight_decay"]), step)
    model.train(was_training)
    request.notes["greedy_forward"] = {
        "selection_steps": step, "layers": len(names), "skipped": [n for n in ordered if n not in names],
        "stopped_by_tolerance": len(stopped_by_tolerance),
        "at_width_bound": len(names) - len(stopped_by_tolerance), "options": {k: o[k] for k in DEFAULTS if k != "chunk"}}
    return selected


def prune(request: PruneRequest) -> nn.Module:
    """``greedy-forward``: keep the channels :func:`select_channels` picks (Ye et al., ICML 2020), in selection order.
    Returns the slimmed model."""
    selected = select_channels(request)
    modules = dict(request.model.named_modules())
    scores = {}
    for name, chosen in selected.items():
        s = torch.zeros(_out_channels(modules[name]))
        s[torch.tensor(chosen, dtype=torch.long)] = torch.arange(len(chosen), 0, -1, dtype=torch.float32)
        scores[name] = s
    return slim_to_widths(request.model, request.example, {n: len(c) for n, c in selected.items()}, scores=scores)


METHOD = register_method(
    Method(
        "greedy-forward",
        prune,
        "Ye et al. 2020: per layer, grow the channel set greedily (lowest mini-batch loss) until accuracy is within "
        "tolerance; --ratio/--preset bound the width",
        L1_PRESETS,
        needs_data=True,
        options=GreedyForwardOptions,
    )
)
