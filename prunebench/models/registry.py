"""The model registry: name → how to build it and what may be pruned.

A model file registers a ``ModelSpec``. ``prunable`` returns the names of the layers whose *output* channels a structured
method may remove; everything else (block outputs under option-A shortcuts, the classifier) is protected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch.nn as nn

from prunebench.core.registry import Registry


@dataclass(frozen=True)
class ModelSpec:
    name: str
    build: Callable[[int], nn.Module]          # num_classes -> freshly initialised model
    input_shape: tuple[int, int, int]          # C, H, W of one example
    prunable: Callable[[nn.Module], list[str]]  # module names whose out-channels may be pruned
    family: str                                 # "vgg", "resnet", ... (presets are keyed by family)
    description: str = ""
    prune_rule: str = "only the layers listed by the model's prunable() may be pruned"


MODELS: Registry[ModelSpec] = Registry("model")


def register_model(spec: ModelSpec) -> ModelSpec:
    return MODELS.register(spec.name, spec)


def get_model_spec(name: str) -> ModelSpec:
    return MODELS.get(name)


def build_model(name: str, num_classes: int = 10) -> nn.Module:
    return MODELS.get(name).build(num_classes)


def reinitialize(model: nn.Module) -> nn.Module:
    """Re-apply the model's own init (Scratch-E/B): every registered model defines ``init_weights``."""
    model.init_weights()  # type: ignore[operator]
    return model
