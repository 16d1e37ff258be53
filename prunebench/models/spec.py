"""What the registry knows of a model (``ModelSpec``) and what a built model remembers it was built for (``Binding``).

A ``ModelSpec`` with ``prunable=None`` has no hand-written rule: its prunable layers are found automatically from
torch-pruning's dependency graph (``prunebench.pruning.groups``) — the case of every ``torchvision:``/``timm:``/user model.

A built model carries a :class:`Binding` (number of classes, the C×H×W input it was built for, the layers the user
protected with ``--ignore``) as a plain attribute, like the kept-channel record of ``pruning.base``. Tracing, counting and
rebuilding read it (``input_shape_of``), so a model built for 32×32 CIFAR images is traced and counted at 32×32 even when its
registered default is 224×224; ``arch.json`` records the same fields, so a pruned model rebuilds without guessing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch.nn as nn

BINDING_ATTR = "_prunebench_binding"
AUTO_RULE = ("found automatically: every coupled group rooted at a Conv/Linear, except the classifier, --ignore layers "
             "and channels torch-pruning cannot map (`prunebench prune --explain` lists them)")


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: its builder (num_classes → fresh model), default input shape (C, H, W), prunable layers
    (None: automatic), family, and where it comes from."""

    name: str
    build: Callable[[int], nn.Module]          # num_classes -> freshly initialised model
    input_shape: tuple[int, int, int]          # C, H, W of one example (the default; a run uses its data's)
    prunable: Callable[[nn.Module], list[str]] | None  # module names whose out-channels may be pruned; None: automatic
    family: str                                 # "vgg", "resnet", ... (presets are keyed by family)
    description: str = ""
    prune_rule: str = "only the layers listed by the model's prunable() may be pruned"
    source: str = "registered"                  # registered | torchvision | timm | factory
    weights_enum: str | None = None             # torchvision: the weights enum's name (e.g. "ResNet18_Weights")


@dataclass(frozen=True)
class Binding:
    """What a built model was built for."""

    num_classes: int
    input_shape: tuple[int, int, int]
    ignore: tuple[str, ...] = ()


def bind(model: nn.Module, binding: Binding) -> nn.Module:
    """Attach ``binding`` to ``model`` (outside its state_dict) and return the model."""
    model.__dict__[BINDING_ATTR] = binding   # not a parameter/buffer: never in the state_dict
    return model


def binding_of(model: nn.Module) -> Binding | None:
    """The :class:`Binding` attached to ``model`` by :func:`bind`, or None."""
    return model.__dict__.get(BINDING_ATTR)
