"""The training-phase protocol between pruning methods and the training loop.

A method that acts during training (network slimming's L1 on BN scales, SSS's sparse block scales, soft filter pruning's
per-epoch zeroing, weight-level masks) returns a :class:`TrainHooks`; the loop calls it at fixed points. The loop never
imports a method and a method never imports the loop — the same contract as Torch-Pruning's sparse pruners, which expose
``regularize(model)`` for the user's own loop to call between ``backward()`` and ``step()``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch.nn as nn


class TrainHooks:
    """No-ops by default; a method subclasses it and overrides what it needs."""

    def after_backward(self, model: "nn.Module") -> None:
        """Between ``loss.backward()`` and ``optimizer.step()``: add penalty gradients (``regularize``), mask gradients."""

    def after_step(self, model: "nn.Module") -> None:
        """After ``optimizer.step()``: re-apply masks, clamp scales."""

    def after_epoch(self, model: "nn.Module", epoch: int) -> None:
        """After each epoch (0-based index): soft-filter zeroing, schedules."""

    def state(self) -> dict[str, Any]:
        """Anything the method wants recorded in train.json (e.g. final sparsity)."""
        return {}
