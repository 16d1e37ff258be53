"""Fisher pruning (Theis, Korshunova, Tejani & Huszár 2018; as used by Crowley, Gray & Storkey 2018).

The loss increase from removing channel c is approximated, to second order via the empirical Fisher, by
Δ_c = ½ · mean over the batch of (Σ_hw a·∂L/∂a)², with a the channel's activation. While the network fine-tunes on the
calibration batches, Δ is accumulated for every prunable channel; every ``every`` steps the channel with the smallest
accumulated Δ over *all* prunable layers is removed physically (a torch-pruning DependencyGraph group, so its BN and the
consumers' input slice go too), the optimizer is rebuilt (its parameters were replaced: torch-pruning trap 4) and the
accumulators restart. This repeats until the model's MACs are at or below the target's — the architecture is Fisher's
choice, not uniform; ``options["per_layer"] = true`` instead removes only from layers above their target width until every
layer has exactly it. A layer is never emptied. The target is ``--ratio`` (uniform plan), a widths plan, or ``--preset``
(the paper's L1-norm plans, e.g. ResNet-56-B: its MACs as the budget, or its exact widths with ``per_layer``).

a is taken at the layer's channel *site* (after its BatchNorm, see ``masking``): a channel that is zero there contributes
nothing downstream, and a·∂L/∂a there equals the post-ReLU product. Crowley et al. prune every 100 steps of training; on a
CPU the defaults are ``every`` = 1 step and ``per_removal`` = "auto": the lowest-saliency channels of the moment are removed
n at a time, n = (channels the target plan removes) / ``events`` (64), so a prune costs about 64 fine-tuning steps whatever
the model (``per_removal = 1`` is the one-channel-at-a-time original, ~10× slower on ResNet-56). Fine-tuning: SGD lr
``lr`` (1e-3, the paper protocol's fine-tuning lr), momentum 0.9, ``weight_decay`` 0; calibration batches are cycled.

Measured prune times: docs/methods.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from prunebench.core.errors import PrunebenchError
from prunebench.core.params import param, to_mapping
from prunebench.pruning.base import _out_channels, _out_pruning_fn, layer_order, record_removed, verify_widths
from prunebench.pruning.groups import build_graph
from prunebench.pruning.masking import channel_sites
from prunebench.pruning.l1_norm import PRESETS as L1_PRESETS  # the paper's width plans
from prunebench.pruning.registry import Method, PruneRequest, register_method
from prunebench.pruning.scaling import MacsTracker, cost_of_widths



@dataclass(frozen=True)
class FisherOptions:
    """Options of ``fisher``: removal cadence and size, the fine-tuning recipe while pruning, and the stopping rule."""

    every: int = param(1, "fine-tuning steps between removal events", unit="steps")
    per_removal: int | Literal["auto"] = param(
        "auto", "channels removed per event; auto: the plan's channel count spread over `events` events")
    events: int = param(64, "with per_removal auto: about this many removal events")
    lr: float = param(1e-3, "fine-tuning learning rate while pruning")
    momentum: float = param(0.9, "fine-tuning SGD momentum")
    weight_decay: float = param(0.0, "fine-tuning weight decay")
    per_layer: bool = param(False, "remove only from layers above their target width until every layer has it "
                                   "(default: global, until the plan's MACs)")
    max_steps: int | None = param(None, "stop with an error after this many fine-tuning steps", unit="steps")

    def problems(self) -> list[str]:
        """Out-of-range options (every, events, per_removal), one line each; [] if valid."""
        out = [f"{k} must be ≥ 1" for k in ("every", "events") if getattr(self, k) < 1]
        if self.per_removal != "auto" and self.per_removal < 1:
            out.append("per_removal must be ≥ 1 or \"auto\"")
        return out


DEFAULTS: dict[str, Any] = to_mapping(FisherOptions())


class FisherSaliency:
    """Forward hooks on the channel sites; each backward pass adds ½·mean_n (Σ_hw a·g)² per channel."""

    def __init__(self, model: nn.Module, sites: dict[str, str]) -> None:
        modules = dict(model.named_modules())
        self.model = model
        self.layers = {layer: modules[layer] for layer in sites}
        self.saliency: dict[str, torch.Tensor] = {}
        self.handles = [modules[site].register_forward_hook(self._hook(layer)) for layer, site in sites.items()]
        self.reset()

    def _hook(self, layer: str):
        def hook(module: nn.Module, inputs: Any, out: torch.Tensor) -> None:
            if not out.requires_grad:
                return
            a = out.detach().clone()   # the value as the site produced it (a following in-place ReLU cannot change it)

            def grad_hook(g: torch.Tensor) -> None:
                prod = (a * g).flatten(2).sum(2) if a.dim() > 2 else a * g      # N × C
                self.saliency[layer] += 0.5 * prod.float().pow(2).mean(0).detach()

            out.register_hook(grad_hook)
        return hook

    def reset(self) -> None:
        """Zero the accumulated saliency ({layer: (C,) tensor}, C its current output channels)."""
        self.saliency = {n: torch.zeros(_out_channels(m), device=m.weight.device) for n, m in self.layers.items()}

    def remove(self) -> None:
        """Remove the forward hooks."""
        for h in self.handles:
            h.remove()


def _options(request: PruneRequest) -> dict[str, Any]:
    return to_mapping(request.options)


def channels_per_removal(o: dict[str, Any], dense: dict[str, int], targets: dict[str, int]) -> int:
    """``per_removal``, or "auto": the target plan's channel count spread over about ``events`` removal events."""
    if o["per_removal"] != "auto":
        return int(o["per_removal"])
    planned = sum(max(0, dense[n] - w) for n, w in targets.items())
    return max(1, -(-planned // int(o["events"])))


def prune(request: PruneRequest) -> nn.Module:
    """``fisher``: remove the channel of lowest Fisher saliency (Theis et al. 2018), fine-tuning between removals on the
    calibration batches, until the plan's MACs (or per-layer widths). Raises :class:`PrunebenchError` without
    calibration batches. Returns the slimmed model."""
    o = _options(request)
    model = request.model
    device = next(model.parameters()).device
    batches = [(x.to(device), y.to(device)) for x, y in (request.calibration or [])]
    if not batches:
        raise PrunebenchError("fisher needs calibration batches (pass --data)")
    targets = request.target_widths()
    names = layer_order(model, list(targets))
    modules = dict(model.named_modules())
    shape = tuple(request.example.shape[1:])
    per_layer = bool(o["per_layer"])
    target_macs = None if per_layer else cost_of_widths(model, request.model_name, targets, "macs")
    tracker = MacsTracker(model, shape)

    def width(n: str) -> int:
        return _out_channels(modules[n])

    def done() -> bool:
        if per_layer:
            return all(width(n) <= targets[n] for n in names)
        return tracker.macs() <= target_macs

    per_removal = channels_per_removal(o, {n: _out_channels(modules[n]) for n in names}, targets)
    sites = channel_sites(model, request.example, names)
    dg = build_graph(model, request.example)
    fisher = FisherSaliency(model, sites)
    make_opt = lambda: torch.optim.SGD(model.parameters(), lr=float(o["lr"]), momentum=float(o["momentum"]),  # noqa: E731
                                       weight_decay=float(o["weight_decay"]))
    opt = make_opt()
    was_training = model.training
    step = removals = 0
    try:
        with torch.enable_grad():
            while not done():
                if o["max_steps"] is not None and step >= int(o["max_steps"]):
                    raise PrunebenchError(f"fisher: target not reached within max_steps={o['max_steps']}")
                model.train()
                for _ in range(int(o["every"])):
                    x, y = batches[step % len(batches)]
                    step += 1
                    opt.zero_grad(set_to_none=True)
                    F.cross_entropy(model(x), y).backward()
                    opt.step()
                for _ in range(per_removal):
                    if done():
                        break
                    if not _remove_lowest(model, dg, modules, names, targets, fisher, per_layer):
                        raise PrunebenchError("fisher: every prunable layer is down to one channel; the target is "
                                              "below what this model can reach")
                    removals += 1
                fisher.reset()
                opt = make_opt()   # pruned parameters are new objects: never step a stale optimizer
    finally:
        fisher.remove()
        model.train(was_training)
    if per_layer:
        verify_widths(model, targets)
    request.notes["fisher"] = {"steps": step, "removed_channels": removals,
                               "mode": "per-layer widths" if per_layer else "global, until the target plan's MACs",
                               "target_macs": target_macs, "channels_per_removal": per_removal,
                               "options": {k: o[k] for k in DEFAULTS}}
    return model


def _remove_lowest(model: nn.Module, dg: Any, modules: dict[str, nn.Module], names: list[str],
                   targets: dict[str, int], fisher: FisherSaliency, per_layer: bool) -> bool:
    """Remove the channel with the smallest saliency among eligible layers (ties: earlier layer, lower index)."""
    best: tuple[float, int, int] | None = None
    for order, n in enumerate(names):
        w = _out_channels(modules[n])
        floor = targets[n] if per_layer else 1
        if w <= floor:
            continue
        s = fisher.saliency[n]
        i = int(torch.argmin(s))
        cand = (float(s[i]), order, i)
        if best is None or cand < best:
            best = cand
    if best is None:
        return False
    _, order, idx = best
    name = names[order]
    layer = modules[name]
    group = dg.get_pruning_group(layer, _out_pruning_fn(layer), idxs=[idx])
    if not dg.check_pruning_group(group):
        raise PrunebenchError(f"torch-pruning refused to remove channel {idx} of {name}")
    record_removed(model, group)
    group.prune()
    fisher.saliency[name] = torch.cat([fisher.saliency[name][:idx], fisher.saliency[name][idx + 1:]])
    return True


METHOD = register_method(
    Method(
        "fisher",
        prune,
        "Theis et al. 2018 / Crowley et al. 2018: remove the channel with the lowest accumulated Fisher saliency every K "
        "fine-tuning steps on calibration data, until the target MACs",
        L1_PRESETS,
        needs_data=True,
        options=FisherOptions,
    )
)
