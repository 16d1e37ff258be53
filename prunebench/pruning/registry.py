"""The method registry: a method is data (name, presets, summary, typed options) plus one small function over
torch-pruning. A method module defines its function, its ``Options`` dataclass and calls :func:`register_method`; the
package ``__init__`` imports it (the one registration line)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import torch
import torch.nn as nn

from prunebench.core.errors import PrunebenchError
from prunebench.core.hooks import TrainHooks
from prunebench.core.params import from_mapping
from prunebench.core.registry import Registry
from prunebench.models import get_model_spec
from prunebench.pruning.base import channel_multiples, prunable_widths, round_widths, uniform_widths


@dataclass(frozen=True)
class NoOptions:
    """The method takes no options."""


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
    example: torch.Tensor                             # one input of the shape the model was built for (its binding)
    preset: Preset | None = None
    ratio: float | None = None
    widths: Mapping[str, int] | None = None           # an explicit per-layer plan (e.g. a scaled width profile)
    round_to: int | None = None
    calibration: Iterable[tuple[torch.Tensor, torch.Tensor]] | None = None  # batches for data-driven methods
    seed: int = 0
    options: Any = field(default_factory=NoOptions)   # an instance of the method's Options dataclass
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
        return round_widths(targets, self.round_to, original, channel_multiples(self.model, self.model_name))


def check_prunable(model_name: str, allowed: Mapping[str, int], targets: Mapping[str, int]) -> None:
    """Raises :class:`PrunebenchError` if ``targets`` names a layer not in ``allowed`` (the model's prune rule, or
    ``--ignore``)."""
    bad = [n for n, w in targets.items() if n not in allowed and w is not None]
    if bad:
        rule = get_model_spec(model_name).prune_rule
        raise PrunebenchError(f"layer {bad[0]!r} of {model_name} may not be pruned: {rule} (or it is under --ignore)")


@dataclass(frozen=True)
class Method:
    """A registered pruning method: its prune function, summary, presets, options dataclass, and optional training-phase
    hooks."""

    name: str
    prune: Callable[[PruneRequest], nn.Module]        # returns the slimmed model (usually request.model itself)
    summary: str
    presets: tuple[Preset, ...] = ()
    needs_data: bool = False                          # uses request.calibration
    structured: bool = True                           # False: masks only, dense shapes (weight-level)
    options: type = NoOptions                         # dataclass of the method's options (core.params.param fields)
    scratch_only: bool = False                        # no inherited weights (reduced): trained only from scratch
    # The pruned widths follow from the plan alone (request.target_widths(): a ratio's or a preset's per-layer widths,
    # rounded), not from weights or data: entries of such methods with equal widths share their from-scratch runs.
    widths_from_plan: bool = False
    # Optional training phase *before* pruning (network slimming's sparsity training, SSS, soft filter pruning): the
    # runner trains the dense model from the baseline's initial weights with these hooks and the baseline recipe, in
    # <label>/sparse/, then prunes that model instead of the plain baseline. It gets the same request as prune() (its
    # model is the one about to be trained, without calibration data).
    sparsity: Callable[[PruneRequest], TrainHooks] | None = None
    # Optional hooks during fine-tune / Scratch-E / Scratch-B (weight-level: keep masked weights at zero).
    # Signature: (model, pruned_dir) -> TrainHooks; pruned_dir holds what prune() saved.
    regime_hooks: Callable[[nn.Module, Any], TrainHooks] | None = None

    def parse_options(self, raw: Mapping[str, Any] | Any | None) -> Any:
        """``raw`` (a plan's ``options`` table, CLI ``--option`` pairs) as this method's Options; an unknown or
        mistyped key is a one-line error listing the valid ones."""
        if raw is None:
            return self.options()
        if isinstance(raw, self.options):
            return raw
        if raw and not dataclasses.fields(self.options):
            raise PrunebenchError(f"{self.name} takes no options, got {', '.join(map(repr, raw))}; remove them")
        try:
            opts = from_mapping(self.options, raw, what=f"{self.name} options", noun="option")
        except PrunebenchError as e:
            raise PrunebenchError(f"{e} (meanings: prunebench list --method {self.name})") from None
        check = getattr(opts, "problems", None)
        problems = check() if check else []
        if problems:
            raise PrunebenchError(f"{self.name} options: {'; '.join(problems)}")
        return opts

    def preset(self, model_name: str, name: str) -> Preset:
        """The preset ``name`` (or its paper title) for ``model_name``. Raises :class:`PrunebenchError` listing the
        presets there are."""
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
    """Register ``method`` under its name and return it. Raises ``ValueError`` if the name is taken."""
    return METHODS.register(method.name, method)


def get_method(name: str) -> Method:
    """The registered :class:`Method` called ``name``. Raises :class:`PrunebenchError` listing the known ones."""
    return METHODS.get(name)
