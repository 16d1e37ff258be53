"""The model registry: name → how to build it and what may be pruned.

A model file registers a ``ModelSpec``. ``prunable`` returns the names of the layers whose *output* channels a structured
method may remove; everything else (block outputs under option-A shortcuts, the classifier) is protected.

Besides registered names, ``get_model_spec`` resolves ``torchvision:NAME``, ``timm:NAME``, ``path/to/file.py:factory``
and ``package.module:factory`` (``prunebench.models.external``); their prunable layers are found automatically.
"""

from __future__ import annotations

from typing import Sequence

import torch.nn as nn

from prunebench.core.registry import Registry
from prunebench.models.spec import Binding, ModelSpec, bind, binding_of

__all__ = ["MODELS", "ModelSpec", "Binding", "register_model", "get_model_spec", "build_model", "reinitialize",
           "input_shape_of", "num_classes_of", "ignored_of", "is_external"]

MODELS: Registry[ModelSpec] = Registry("model")


def register_model(spec: ModelSpec) -> ModelSpec:
    """Register ``spec`` under its name and return it. Raises ``ValueError`` if the name is taken."""
    return MODELS.register(spec.name, spec)


def is_external(name: str) -> bool:
    """``torchvision:…``, ``timm:…`` or a user factory (``file.py:fn``, ``package.module:fn``) rather than a registered name."""
    return ":" in name and name not in MODELS


def get_model_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of ``name``: a registered model, or an external ``torchvision:`` / ``timm:`` / factory
    name resolved. Raises :class:`PrunebenchError` for an unknown name."""
    if is_external(name):
        from prunebench.models.external import resolve

        return resolve(name)
    return MODELS.get(name)


def build_model(name: str, num_classes: int = 10, input_shape: Sequence[int] | None = None,
                ignore: Sequence[str] = ()) -> nn.Module:
    """A freshly initialised model (the current torch RNG), bound to ``num_classes`` and ``input_shape`` (C, H, W; default:
    the spec's); ``ignore`` names layers the user protects from pruning."""
    spec = get_model_spec(name)
    model = spec.build(num_classes)
    shape = tuple(int(d) for d in (input_shape or spec.input_shape))
    return bind(model, Binding(int(num_classes), shape, tuple(ignore)))  # type: ignore[arg-type]


def input_shape_of(model: nn.Module, name: str | None = None) -> tuple[int, int, int]:
    """The C×H×W input ``model`` was built for; without a binding, the spec's default."""
    b = binding_of(model)
    if b is not None:
        return b.input_shape
    if name is None:
        raise ValueError("the model has no binding; pass its name")
    return get_model_spec(name).input_shape


def num_classes_of(model: nn.Module) -> int | None:
    """The class count ``model`` was built for, or None if it carries no binding."""
    b = binding_of(model)
    return b.num_classes if b is not None else None


def ignored_of(model: nn.Module) -> tuple[str, ...]:
    """The layers ``model`` was built to leave unpruned (``--ignore``); () if it carries no binding."""
    b = binding_of(model)
    return b.ignore if b is not None else ()


def reinitialize(model: nn.Module) -> nn.Module:
    """Re-apply the model's own init (Scratch-E/B): every registered model defines ``init_weights``. Models without one
    (torchvision, timm, user factories) are re-initialised by ``prunebench.pruning.base.fresh_init_`` instead."""
    model.init_weights()  # type: ignore[operator]
    return model
