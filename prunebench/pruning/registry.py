"""The method registry: a method is data (name, presets, summary) plus one small function over torch-pruning."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

import torch
import torch.nn as nn

from prunebench.errors import PrunebenchError
from prunebench.models import get_model_spec
from prunebench.pruning.base import prunable_widths, round_widths, uniform_widths
from prunebench.registry import Registry

if TYPE_CHECKING:
    from prunebench.training import TrainHooks


@dataclass(frozen=True)
class Preset:
    """A paper configuration: the per-layer widths one method produces for one model."""

    name: str                                         # short name used on the CLI, e.g. "B"
    model: str                                        # registered model it applies to
    title: str                                        # the paper's name, e.g. "ResNet-56-B"
    widths: Callable[[nn.Module], dict[str, int]]     # dense model -> target widths
    paper_macs_reduction: float | None = None         # fraction, from the paper's table
    source: str = ""


@dataclass
class PruneRequest:
    """Everything a method may use. Exactly one of preset / ratio / widths says how much to prune."""

    model: nn.Module                                  # the trained dense model; slimmed in place
    model_name: str
    example: torch.Tensor
    preset: Preset | None = None
    ratio: float | None = None
    widths: Mapping[str, int] | None = None           # an explicit per-layer plan (e.g. a scaled width profile)
    round_to: int | None = None
    calibration: Iterable[tuple[torch.Tensor, torch.Tensor]] | None = None  # batches for data-driven methods
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)  # filled by the method; prune_model copies it to Architecture.notes

    def target_widths(self) -> dict[str, int]:
        """The width plan, checked against what the model allows, rounded to ``round_to`` if asked."""
        original = prunable_widths(self.model, self.model_name)
        if self.preset is not None:
            targets = self.preset.widths(self.model)
        elif self.widths is not None:
            targets = dict(self.widths)
        elif self.ratio is not None:
            targets = uniform_widths(self.model, self.model_name, self.ratio)
        else:
            raise PrunebenchError("say how much to prune: --preset P or --ratio R")
        check_prunable(self.model_name, original, targets)
        return round_widths(targets, self.round_to, original)


def check_prunable(model_name: str, allowed: Mapping[str, int], targets: Mapping[str, int]) -> None:
    bad = [n for n, w in targets.items() if n not in allowed and w is not None]
    if bad:
        rule = get_model_spec(model_name).prune_rule
        raise PrunebenchError(f"layer {bad[0]!r} of {model_name} may not be pruned: {rule}")


@dataclass(frozen=True)
class Method:
    name: str
    prune: Callable[[PruneRequest], nn.Module]        # returns the slimmed model (usually request.model itself)
    summary: str
    presets: tuple[Preset, ...] = ()
    needs_data: bool = False                          # uses request.calibration
    structured: bool = True                           # False: masks only, dense shapes (weight-level)
    cost: str = ""                                    # measured time to prune ResNet-56 on the 2-core CPU
    # Optional training phase *before* pruning (network slimming's sparsity training, SSS, soft filter pruning): the
    # runner trains the dense model from the baseline's initial weights with these hooks and the baseline recipe, in
    # <label>/sparse/, then prunes that model instead of the plain baseline. Signature: (model, options) -> TrainHooks.
    sparsity: Callable[[nn.Module, dict[str, Any]], "TrainHooks"] | None = None
    # Optional hooks during fine-tune / Scratch-E / Scratch-B (weight-level: keep masked weights at zero).
    # Signature: (model, pruned_dir) -> TrainHooks; pruned_dir holds what prune() saved.
    regime_hooks: Callable[[nn.Module, Any], "TrainHooks"] | None = None

    def preset(self, model_name: str, name: str) -> Preset:
        for p in self.presets:
            if p.model == model_name and name in (p.name, p.title):
                return p
        have = [p.name for p in self.presets if p.model == model_name]
        if have:
            raise PrunebenchError(f"{self.name} has no preset {name!r} for {model_name}; choose one of: {', '.join(have)}")
        models = sorted({p.model for p in self.presets}) or ["none"]
        raise PrunebenchError(
            f"{self.name} has no presets for {model_name} (presets exist for: {', '.join(models)}); use --ratio R instead"
        )


METHODS: Registry[Method] = Registry("pruning method")


def register_method(method: Method) -> Method:
    return METHODS.register(method.name, method)


def get_method(name: str) -> Method:
    return METHODS.get(name)
