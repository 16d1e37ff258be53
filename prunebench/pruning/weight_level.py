"""Weight-level magnitude pruning (Han et al., NIPS 2015), one shot: one global |w| threshold over all conv weights.

Prune: sort |w| of every Conv2d weight together (the classifier is kept, as in the paper's code), threshold = element
floor(total·r) of the sorted list, mask = |w| > threshold, pruned weights set to zero. The model keeps its dense shapes
(``structured=False``): its MACs, ONNX file and latency on dense runtimes do not change — only the *nonzero* counts do,
which is what the runner records (``prunebench.metrics.flops.count_nonzero``) and uses for Scratch-B's budget. The mask is
saved as ``mask.pt`` (``prunebench.pruning.weight_masks``).

Regimes (``regime_hooks``): gradients are multiplied by the mask after every backward and the weights re-masked after
every step (momentum and weight decay would otherwise revive them), in fine-tune, Scratch-E and Scratch-B. Scratch
re-initialisation follows the paper's code: He-normal with std √(2/n), n = (surviving weights of the layer) / C_in, times
the mask. The hooks detect a scratch regime by the runner's fresh init (weights outside the mask are nonzero); a caller
that wants to keep particular weights (a lottery-ticket reset) must apply the mask first (``weight_masks.apply_masks``).

Measured prune times: docs/methods.md.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from prunebench.core.errors import PrunebenchError
from prunebench.core.hooks import TrainHooks
from prunebench.pruning.registry import Method, PruneRequest, register_method
from prunebench.pruning.weight_masks import apply_masks, density, load_masks


def conv_weights(model: nn.Module) -> dict[str, nn.Parameter]:
    """{"<layer>.weight": parameter} of every Conv2d."""
    return {f"{n}.weight": m.weight for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}


def global_magnitude_masks(model: nn.Module, percent: float) -> tuple[dict[str, torch.Tensor], float]:
    """{conv weight: |w| > t}, t = sorted(all conv |w|)[floor(total·percent)]."""
    if not 0.0 <= percent < 1.0:
        raise PrunebenchError(f"--ratio for weight-level is the fraction of conv weights removed, in [0, 1); got {percent}")
    weights = conv_weights(model)
    allw = torch.cat([w.detach().abs().flatten().float().cpu() for w in weights.values()])
    threshold = float(torch.kthvalue(allw, int(allw.numel() * percent) + 1).values)
    return {k: (w.detach().abs() > threshold).cpu() for k, w in weights.items()}, threshold


def prune(request: PruneRequest) -> nn.Module:
    """``weight-level`` (Han et al., NIPS 2015): zero the conv weights below one global |w| threshold; shapes stay
    dense. Raises :class:`PrunebenchError` without ``--ratio``. Returns the masked model."""
    if request.ratio is None:
        raise PrunebenchError("weight-level prunes individual weights: give --ratio R (fraction of conv weights removed); "
                              "it has no width presets")
    masks, threshold = global_magnitude_masks(request.model, request.ratio)
    apply_masks(request.model, masks)
    request.notes.update({"weight_level": {
        "percent": request.ratio, "threshold": threshold, "rule": "keep |w| > sorted(all conv |w|)[floor(total·percent)]",
        "conv_weights": sum(m.numel() for m in masks.values()), "kept": sum(int(m.sum()) for m in masks.values()),
        "density": round(density(masks), 6),
        "layer_density": {k: round(float(m.float().mean()), 4) for k, m in masks.items()},
        "dense_runtime_note": "masks only: dense shapes, ONNX file and dense-runtime latency unchanged",
    }})
    return request.model


def scratch_init(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """The paper's scratch init for masked layers: N(0, √(2/n)), n = surviving weights / C_in, times the mask."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, mask in masks.items():
            w = params[name]
            n = float(mask.sum()) / w.shape[1]
            if n > 0:
                w.normal_(0.0, math.sqrt(2.0 / n))
    apply_masks(model, masks)


def _is_fresh(model: nn.Module, masks: dict[str, torch.Tensor]) -> bool:
    params = dict(model.named_parameters())
    return any(bool((params[k].detach().cpu()[~m] != 0).any()) for k, m in masks.items())


class MaskHooks(TrainHooks):
    """Keep masked weights at exactly zero: gradients masked after backward, weights re-masked after the step."""

    def __init__(self, masks: dict[str, torch.Tensor], scratch: bool) -> None:
        self.masks = masks
        self.scratch = scratch
        self._on: dict[str, tuple[nn.Parameter, torch.Tensor]] = {}
        self._model_id = -1

    def _resolve(self, model: nn.Module) -> dict[str, tuple[nn.Parameter, torch.Tensor]]:
        first = next(iter(self._on.values()), None)
        if id(model) != self._model_id or (first is not None and first[0].device != first[1].device):
            params = dict(model.named_parameters())
            self._on = {k: (params[k], m.to(device=params[k].device, dtype=params[k].dtype)) for k, m in self.masks.items()}
            self._model_id = id(model)
        return self._on

    def after_backward(self, model: nn.Module) -> None:
        for p, m in self._resolve(model).values():
            if p.grad is not None:
                p.grad.mul_(m)

    def after_step(self, model: nn.Module) -> None:
        with torch.no_grad():
            for p, m in self._resolve(model).values():
                p.mul_(m)

    def state(self) -> dict[str, Any]:
        return {"masked_layers": len(self.masks), "density": round(density(self.masks), 6),
                "init": "paper scratch init (He-normal over surviving fan) x mask" if self.scratch else "inherited"}


def regime_hooks(model: nn.Module, pruned_dir: Any) -> MaskHooks:
    """Masks from ``pruned_dir/mask.pt``; a freshly re-initialised model (Scratch-E/B) gets the paper's masked init."""
    masks = load_masks(Path(pruned_dir))
    fresh = _is_fresh(model, masks)
    if fresh:
        scratch_init(model, masks)
    else:
        apply_masks(model, masks)
    return MaskHooks(masks, fresh)


METHOD = register_method(
    Method(
        "weight-level",
        prune,
        "Han et al. 2015: one global |w| threshold over all conv weights (--ratio = fraction removed); masks, dense shapes",
        (),
        structured=False,
        regime_hooks=regime_hooks,
    )
)
