"""Regimes: the ways a pruned architecture is trained, as plug-ins.

A regime is one module that subclasses :class:`Regime` and registers it with :func:`register_regime`; the package
``__init__`` imports it (one line). For each [[prune]] entry of a seed a regime declares the *variants* it adds
(``variants``: names, titles and the plan fields each depends on — pure, from the plan), and for each variant how its
training starts (``start``: the architecture, its initial weights and the recipe — run when the stage executes, reading
the pruned model from disk). The pipeline turns every variant into a training stage plus a measure stage and never needs
to know a regime's name. A regime may add a section to report.md (``report_section``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from prunebench.config import ExperimentConfig, PruneSpec, TrainConfig
from prunebench.core import paths
from prunebench.core.registry import Registry
from prunebench.pruning import Method
from prunebench.pruning.base import Architecture, fresh_init_, load_pruned

if TYPE_CHECKING:
    import torch.nn as nn


@dataclass(frozen=True)
class Entry:
    """One [[prune]] entry of one seed, as a regime sees it."""

    cfg: ExperimentConfig
    seed: int
    spec: PruneSpec
    method: Method
    out: Path
    planned_macs_ratio: float | None = None   # pruned / dense MACs where the plan alone fixes the widths (estimates)

    @property
    def base_dir(self) -> Path:
        """The seed's baseline directory."""
        return paths.baseline_dir(self.out, self.seed)

    @property
    def dir(self) -> Path:
        """The entry's directory, ``seed<S>/<label>``."""
        return paths.entry_dir(self.out, self.seed, self.spec.label)

    @property
    def pruned_dir(self) -> Path:
        """Where the entry's pruned model lies (``<entry>/pruned``)."""
        return self.dir / paths.PRUNED


@dataclass(frozen=True)
class VariantPlan:
    """A trained network a regime adds: its directory name, title, and the plan fields its training depends on."""

    name: str                          # directory and results.json ``regime`` value, e.g. "scratch-b", "lottery-lr0.1"
    regime: str                        # the plug-in's name
    title: str
    params: dict[str, Any] = field(default_factory=dict)   # JSON-able; part of the stage digest
    epochs: float | None = None        # for --dry-run; None: known only once the entry is pruned
    same_architecture: bool = True     # False: not the entry's pruned architecture (the scale family's members)
    # True: the training depends only on the pruned architecture, the recipe, the data and the seed (not on inherited
    # weights or kept-channel indices), so entries whose architectures are equal can share one run
    shareable: bool = False


@dataclass
class Start:
    """How a variant's training starts."""

    arch: Architecture
    model: "nn.Module"
    recipe: TrainConfig
    budget: dict[str, Any] = field(default_factory=dict)   # recorded in train.json (e.g. Scratch-B's rule and R)
    note: str = ""                                          # for the log line


class Regime:
    """Base class of a regime plug-in (see the module docstring)."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""

    @property
    def summary(self) -> str:
        """One line for `prunebench list`: the class docstring's first line."""
        return (type(self).__doc__ or "").strip().splitlines()[0].rstrip(".") if type(self).__doc__ else ""

    def variants(self, entry: Entry) -> list[VariantPlan]:
        """The variants this regime adds for ``entry`` ([] for none); pure, from the plan. ``epochs`` may be None while
        the entry is not pruned yet."""
        raise NotImplementedError

    def start(self, entry: Entry, plan: VariantPlan) -> Start:
        """How ``plan``'s training starts: architecture, initial model, recipe, and the budget/note recorded (runs when
        the stage executes, reading the pruned model from disk)."""
        raise NotImplementedError

    def report_section(self, results: dict[str, Any], labels: list[str]) -> list[str]:
        """Markdown lines for report.md (after the main accuracy table); none by default."""
        return []


REGIMES: Registry[Regime] = Registry("regime")


def register_regime(cls: type[Regime]) -> type[Regime]:
    """Class decorator: register one instance of a Regime subclass under its ``name``."""
    REGIMES.register(cls.name, cls())
    return cls


def fresh_init(entry: Entry) -> tuple[Architecture, "nn.Module"]:
    """The pruned architecture with a fresh init (Scratch-E/B), seeded by seed + 1 so that it differs from the baseline's:
    a registered model's own ``init_weights``; a torchvision/timm/user model the factory again, slimmed to the pruned
    widths (``pruning.base.fresh_init_``)."""
    arch, model = load_pruned(entry.pruned_dir, with_weights=False)
    torch.manual_seed(entry.seed + 1)
    fresh_init_(model, arch.model)
    return arch, model


def with_lr(recipe: TrainConfig, lr: float) -> TrainConfig:
    """``recipe`` with learning rate ``lr``."""
    return replace(recipe, lr=lr)
