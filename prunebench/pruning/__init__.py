"""Pruning methods, one module each, over torch-pruning. Importing this package registers them all: adding a method is
its own module plus one import line below.

``prune_model`` is the one entry point the CLI and the pipeline use to prune; ``sparsity_hooks`` gives a method's
training-phase hooks (network slimming, SSS, soft filter pruning) for the same request.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
import torch.nn as nn

from prunebench.core.errors import PrunebenchError
from prunebench.core.hooks import TrainHooks
from prunebench.pruning import l1_norm  # noqa: F401  (registration)
from prunebench.pruning import greedy_forward  # noqa: F401  (registration)
from prunebench.pruning import fisher  # noqa: F401  (registration)
from prunebench.pruning import reduced  # noqa: F401  (registration)
from prunebench.pruning import network_slimming, soft_filter, sss, weight_level  # noqa: F401  (registration)
from prunebench.pruning import criteria  # noqa: F401  (registration)
from prunebench.pruning import thinet  # noqa: F401  (registration)
from prunebench.pruning import regression  # noqa: F401  (registration)
from prunebench.pruning.base import Architecture, architecture_of, example_for, verify_forward
from prunebench.pruning.registry import METHODS, Method, Preset, PruneRequest, get_method, register_method

__all__ = ["METHODS", "Method", "Preset", "PruneRequest", "get_method", "register_method", "prune_model",
           "make_request", "sparsity_hooks"]


def make_request(
    model: nn.Module,
    model_name: str,
    method: str,
    preset: str | None = None,
    ratio: float | None = None,
    widths: dict[str, int] | None = None,
    round_to: int | None = None,
    calibration: Iterable[tuple[torch.Tensor, torch.Tensor]] | None = None,
    seed: int = 0,
    options: Any = None,
) -> PruneRequest:
    """The request a method sees; ``options`` (a mapping or the method's Options) is parsed and checked here, so a typo
    is an error for every method, before any work."""
    m = get_method(method)
    given = [x for x in (preset, ratio, widths) if x is not None]
    if len(given) != 1:
        raise PrunebenchError("give exactly one of --preset P, --ratio R or a widths plan")
    return PruneRequest(
        model=model,
        model_name=model_name,
        example=example_for(model, model_name),
        preset=m.preset(model_name, preset) if preset is not None else None,
        ratio=ratio,
        widths=widths,
        round_to=round_to,
        calibration=calibration,
        seed=seed,
        options=m.parse_options(options),
    )


def sparsity_hooks(model: nn.Module, model_name: str, method: str, **plan: Any) -> TrainHooks:
    """The method's training-phase hooks for ``model`` (the dense model about to be sparsity-trained), built from the
    same plan (preset / ratio / round_to / options) as its final prune. Error if the method has no such phase."""
    m = get_method(method)
    if m.sparsity is None:
        raise PrunebenchError(f"{method} has no training phase before pruning")
    return m.sparsity(make_request(model, model_name, method, **plan))


def prune_model(model: nn.Module, model_name: str, num_classes: int, method: str,
                **how: Any) -> tuple[nn.Module, Architecture]:
    """Prune ``model`` (in place where the method allows) and return it with its architecture record.

    ``how``: :func:`make_request`'s keywords — exactly one of ``preset`` / ``ratio`` / ``widths``, and ``round_to``,
    ``calibration`` (batches, for data-driven methods), ``seed``, ``options``. Errors: PrunebenchError (one line)."""
    m = get_method(method)
    m.parse_options(how.get("options"))   # option errors first
    if m.needs_data and how.get("calibration") is None:
        raise PrunebenchError(f"{method} needs data to prune: pass --data (e.g. imagefolder:PATH or synthetic)")
    torch.manual_seed(how.get("seed", 0))   # before the example input is drawn: the same seed gives the same prune
    request = make_request(model, model_name, method, **how)
    pruned = m.prune(request)
    verify_forward(pruned, request.example, num_classes)
    arch = architecture_of(
        pruned, model_name, num_classes, method=method,
        preset=request.preset.title if request.preset else None, ratio=request.ratio,
    )
    arch.notes.update(request.notes)
    return pruned, arch
