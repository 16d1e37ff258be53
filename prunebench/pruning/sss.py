"""Sparse structure selection (Huang & Wang, ECCV 2018), depth pruning: blocks whose scale reaches zero lose their branch.

The scale of a residual block's branch. SSS multiplies each branch's output by a learnable λ_b and drives the λ to zero
with a sparse penalty (APG). The last layer of every branch here is already a per-channel affine map — the final BN
(γ, β) of a post-activation block, conv3's weight in a pre-activation bottleneck — so λ_b·(that affine) *is* that affine:
we carry the scale inside it, s_b = RMS of those parameters θ_b, instead of adding a parameter the model definition does
not have. Checkpoints stay plain state_dicts of the unmodified model, a resumed run loses nothing, and a block with
s_b = 0 outputs exactly zero on its branch, so it *is* its shortcut.

Sparsity phase (``sparsity`` hooks): the penalty μ·Σ_b N_b·s_b (= μ·Σ_b √N_b·‖θ_b‖₂, a group lasso with the usual √size
weights) is added as a subgradient after every backward pass, so the optimizer's lr schedule and momentum apply to it and a
plain SGD step lowers every s_b by lr·μ (μ = ``options["lambda"]``, default 1e-3). Subgradient steps oscillate around
zero instead of landing on it, so after each step a block with s_b < ``options["zero_below"]`` (default 1e-3) is set to
exactly zero and stays there — the proximal (soft-threshold) step of APG, without its momentum extrapolation. Deviation
from the paper: no separate APG optimizer for the scales (hooks cannot see the lr) and zeros are absorbing.

Prune: ``--ratio r`` removes the int(r·B) blocks with the smallest scale (B = blocks with a branch; ties → earlier block),
and always every block whose scale is exactly zero (it computes nothing). The block is replaced by its shortcut
(``prunebench.pruning.blocks``); ``Architecture.removed_blocks`` lists them and Scratch-E/B rebuild the shallower net.
Presets (ResNet-50, the SSS paper's unit configs, paper-protocol.md §1): per stage (a, b), a = blocks keeping their branch,
b = the stage's first (projection) block keeps its branch; which identity blocks go is decided by the scales.
SSS GFLOPs: ResNet-50 4.09 → ResNet-41 3.47, ResNet-32 2.82, ResNet-26 2.33 (−15.2 / −31.1 / −43.0 %).

Measured prune times: docs/methods.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn as nn

from prunebench.core.errors import PrunebenchError
from prunebench.core.hooks import TrainHooks
from prunebench.core.params import param
from prunebench.pruning.base import prunable_widths
from prunebench.pruning.blocks import remove_blocks, residual_blocks
from prunebench.pruning.registry import Method, Preset, PruneRequest, register_method

MU_DEFAULT = 1e-3
ZERO_BELOW_DEFAULT = 1e-3


@dataclass(frozen=True)
class SSSOptions:
    """Options of ``sss``: the penalty μ on block scales during sparsity training, and the zeroing threshold."""

    mu: float = param(MU_DEFAULT, "μ of the block-scale penalty during sparsity training", key="lambda")
    zero_below: float = param(ZERO_BELOW_DEFAULT, "a block scale below this after a step is set to zero for good")

    def problems(self) -> list[str]:
        """Negative lambda or zero_below, one line each; [] if valid."""
        return [f"{k} must be ≥ 0" for k, v in (("lambda", self.mu), ("zero_below", self.zero_below)) if v < 0]


def branch_params(block: nn.Module) -> list[nn.Parameter]:
    """The branch's last affine parameters: where the block's scale lives."""
    if hasattr(block, "branch_output_params"):
        return list(block.branch_output_params())  # type: ignore[operator]
    bn = getattr(block, "bn3", None) if hasattr(block, "conv3") else getattr(block, "bn2", None)
    if not isinstance(bn, nn.BatchNorm2d) or not bn.affine:
        raise PrunebenchError(f"{type(block).__name__}: cannot find the branch's last BatchNorm; SSS needs one")
    return [bn.weight, bn.bias]


def block_scale(block: nn.Module) -> float:
    """s_b = RMS of the branch's last affine parameters (0 exactly when the branch outputs zero)."""
    ps = branch_params(block)
    n = sum(p.numel() for p in ps)
    return math.sqrt(sum(float(p.detach().double().pow(2).sum()) for p in ps) / n)


def block_scales(model: nn.Module) -> dict[str, float]:
    """{residual block: its branch scale s_b}."""
    modules = dict(model.named_modules())
    return {name: block_scale(modules[name]) for name in residual_blocks(model)}


# --------------------------------------------------------------------------------------------------------- prune
def _lowest(scales: dict[str, float], names: list[str], count: int) -> list[str]:
    order = sorted(range(len(names)), key=lambda i: (scales[names[i]], i))  # ties: the earlier block first
    return [names[i] for i in order[:max(0, count)]]


def blocks_for_ratio(scales: dict[str, float], ratio: float) -> list[str]:
    """The blocks to remove: the lowest-scale fraction ``ratio`` of them, plus every block whose scale is zero. Raises
    :class:`PrunebenchError` for a ratio outside [0, 1)."""
    if not 0.0 <= ratio < 1.0:
        raise PrunebenchError(f"--ratio for sss is the fraction of residual blocks removed, in [0, 1); got {ratio}")
    names = list(scales)
    chosen = set(_lowest(scales, names, int(ratio * len(names) + 1e-9)))
    chosen |= {n for n in names if scales[n] == 0.0}
    return [n for n in names if n in chosen]


def prune(request: PruneRequest) -> nn.Module:
    """``sss`` (Huang & Wang, ECCV 2018): remove the residual branches of lowest scale (a preset's count, or a fraction
    ``ratio``). Raises :class:`PrunebenchError` for a widths plan. Returns the model, branches removed."""
    model = request.model
    if request.widths is not None:
        raise PrunebenchError("sss prunes depth (whole blocks), not widths: use --ratio R (fraction of blocks) or a preset")
    scales = block_scales(model)
    if request.preset is not None:
        removed = UNIT_CONFIGS[request.preset.title](model, scales)
    else:
        removed = blocks_for_ratio(scales, float(request.ratio))  # type: ignore[arg-type]
    remove_blocks(model, removed)
    request.notes.update({"sss": {
        "criterion": "block scale s_b = RMS of the branch's last affine params; lowest removed, zeros always",
        "blocks_before": len(scales), "blocks_removed": len(removed), "removed": removed,
        "scales": {n: round(s, 6) for n, s in scales.items()},
    }})
    return model


# --------------------------------------------------------------------------------------------------------- presets
def _stages(model: nn.Module) -> list[list[str]]:
    names = {id(m): n for n, m in model.named_modules()}
    return [[names[id(b)] for b in stage] for stage in (model.layer1, model.layer2, model.layer3, model.layer4)]


def unit_config(units: tuple[tuple[int, bool], ...]) -> Callable[[nn.Module, dict[str, float]], list[str]]:
    """Blocks to remove for per-stage (a = blocks keeping their branch, b = the first block keeps it)."""

    def removed(model: nn.Module, scales: dict[str, float]) -> list[str]:
        out: list[str] = []
        for stage, (a, first_keeps) in zip(_stages(model), units):
            first, rest = stage[0], stage[1:]
            if not first_keeps:
                out.append(first)
            keep_rest = a - (1 if first_keeps else 0)
            if not 0 <= keep_rest <= len(rest):
                raise PrunebenchError(f"unit config {units} does not fit this model's stages")
            out += _lowest(scales, rest, len(rest) - keep_rest)
        return out

    return removed


SSS_SOURCE = "Huang & Wang 2018 (SSS) ResNet-50 units; rethinking-network-pruning ImageNet sss configs"
UNIT_CONFIGS: dict[str, Callable[[nn.Module, dict[str, float]], list[str]]] = {
    "ResNet-41": unit_config(((0, False), (4, True), (6, True), (3, True))),
    "ResNet-32": unit_config(((1, False), (4, True), (4, True), (1, True))),
    "ResNet-26": unit_config(((0, False), (2, False), (5, False), (1, True))),
}
PRESETS = tuple(
    Preset(title, "resnet50", title, lambda m: prunable_widths(m, "resnet50"), reduction, SSS_SOURCE)
    for title, reduction in (("ResNet-41", 1 - 3.47 / 4.09), ("ResNet-32", 1 - 2.82 / 4.09), ("ResNet-26", 1 - 2.33 / 4.09))
)


# --------------------------------------------------------------------------------------------------------- sparsity
class SSSHooks(TrainHooks):
    """Group-lasso subgradient on each block's scale after backward; scales under ``zero_below`` snap to 0 and stay."""

    def __init__(self, blocks: list[str], mu: float, zero_below: float) -> None:
        self.blocks = blocks
        self.mu = mu
        self.zero_below = zero_below
        self.dead: set[str] = set()
        self._params: dict[str, list[nn.Parameter]] = {}
        self._model_id = -1

    def _resolve(self, model: nn.Module) -> dict[str, list[nn.Parameter]]:
        if id(model) != self._model_id:
            modules = dict(model.named_modules())
            self._params = {n: branch_params(modules[n]) for n in self.blocks}
            self._model_id = id(model)
        return self._params

    def after_backward(self, model: nn.Module) -> None:
        with torch.no_grad():
            for name, ps in self._resolve(model).items():
                if name in self.dead:
                    for p in ps:
                        if p.grad is not None:
                            p.grad.zero_()
                    continue
                norm = torch.sqrt(sum(p.pow(2).sum() for p in ps))
                if norm == 0:
                    continue
                scale = self.mu * math.sqrt(sum(p.numel() for p in ps)) / norm  # ∂(μ√N‖θ‖)/∂θ = μ√N θ/‖θ‖
                for p in ps:
                    if p.grad is not None:
                        p.grad.add_(p * scale)

    def after_step(self, model: nn.Module) -> None:
        with torch.no_grad():
            for name, ps in self._resolve(model).items():
                n = sum(p.numel() for p in ps)
                rms = math.sqrt(float(sum(p.pow(2).sum() for p in ps)) / n)
                if name in self.dead or rms < self.zero_below:
                    self.dead.add(name)
                    for p in ps:
                        p.zero_()

    def state(self) -> dict[str, Any]:
        out: dict[str, Any] = {"lambda": self.mu, "zero_below": self.zero_below, "blocks": len(self.blocks),
                               "zero_blocks": sorted(self.dead)}
        if self._params:
            out["scales"] = {n: round(math.sqrt(float(sum(p.detach().pow(2).sum() for p in ps)) /
                                                sum(p.numel() for p in ps)), 6) for n, ps in self._params.items()}
        return out


def sparsity(request: PruneRequest) -> SSSHooks:
    """Hooks for SSS training: options ``lambda`` (μ) and ``zero_below``."""
    return SSSHooks(residual_blocks(request.model), request.options.mu, request.options.zero_below)


METHOD = register_method(
    Method(
        "sss",
        prune,
        "Huang & Wang 2018: sparse scale on each residual block; zero-scale blocks become their shortcut "
        "(--ratio = fraction of blocks removed)",
        PRESETS,
        options=SSSOptions,
        sparsity=sparsity,
    )
)
