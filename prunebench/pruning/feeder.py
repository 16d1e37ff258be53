"""Consumer inputs on the calibration batches, recomputing as little of the forward pass as possible.

ThiNet and He et al. prune layer by layer in forward order, each time looking at the *current* model, so a naive
implementation runs the calibration set through the network once per pruned layer. When the model is a verified chain of
segments (``model.blocks()`` for the ResNets, the children of ``model.features`` for VGG: the output of segment i is the
input of segment i+1, nothing else flows between them), the input of the segment holding the pruned layer is cached and
only the segments from there to the consumer are run; moving on to a later layer advances the cache through the segments
already pruned. The chain is checked on the first batch by tensor identity; if it does not hold (or a layer lies outside
the segments) every request falls back to a full forward pass that stops at the consumer.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import torch
import torch.nn as nn


class _Captured(Exception):
    """Raised by the pre-hook once every consumer's input is captured: the rest of the forward is not needed."""


def _run_until(run, modules: Sequence[nn.Module]) -> list[torch.Tensor]:
    got: dict[nn.Module, torch.Tensor] = {}

    def hook(mod: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        got.setdefault(mod, args[0].detach())
        if len(got) == len(modules):
            raise _Captured

    handles = [m.register_forward_pre_hook(hook) for m in modules]
    try:
        with torch.no_grad():
            run()
    except _Captured:
        pass
    finally:
        for h in handles:
            h.remove()
    missing = [m for m in modules if m not in got]
    if missing:
        raise RuntimeError(f"the forward pass never reached {type(missing[0]).__name__}")
    return [got[m] for m in modules]


def _candidates(model: nn.Module) -> list[nn.Module]:
    if callable(getattr(model, "blocks", None)):
        return list(model.blocks())  # type: ignore[operator]
    features = getattr(model, "features", None)
    if isinstance(features, nn.Sequential):
        return list(features.children())
    return []


def chain_segments(model: nn.Module, x: torch.Tensor) -> list[nn.Module]:
    """The model's segments if one forward pass shows them to be a chain (each called once, output i is input i+1)."""
    segments = _candidates(model)
    if len(segments) < 2:
        return []
    seen: list[list[tuple[torch.Tensor, torch.Tensor]]] = [[] for _ in segments]
    handles = [s.register_forward_hook(lambda m, i, o, k=k: seen[k].append((i[0] if i else None, o)))
               for k, s in enumerate(segments)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    if any(len(s) != 1 for s in seen):
        return []
    if any(seen[k][0][1] is not seen[k + 1][0][0] for k in range(len(segments) - 1)):
        return []
    return segments


class Feeder:
    """Inputs of given modules for every calibration batch of one model (eval mode, no grad)."""

    def __init__(self, model: nn.Module, batches: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> None:
        self.model = model
        device = next(model.parameters()).device
        self.batches = [x.to(device) for x, _ in batches]
        with _eval(model):
            self.segments = chain_segments(model, self.batches[0][:1])
        self.owner = {m: k for k, s in enumerate(self.segments) for m in s.modules()}
        self.at: int | None = None            # segment whose input is cached
        self.cache: list[torch.Tensor] = []

    def inputs(self, producer: nn.Module, modules: Sequence[nn.Module]) -> Iterator[list[torch.Tensor]]:
        """For each batch, the inputs of ``modules`` (consumers of ``producer``)."""
        a = self.owner.get(producer)
        ends = [self.owner.get(m) for m in modules]
        with _eval(self.model):
            if a is None or any(e is None or e < a for e in ends):
                for x in self.batches:
                    yield _run_until(lambda x=x: self.model(x), modules)
                return
            self._advance(a)
            span = self.segments[a:max(ends) + 1]  # type: ignore[type-var]
            for h in self.cache:
                yield _run_until(lambda h=h: _chain(span, h.clone()), modules)  # clone: in-place ops must not edit the cache

    def _advance(self, a: int) -> None:
        if self.at is None or a < self.at:
            self.cache = [_run_until(lambda x=x: self.model(x), [self.segments[a]])[0] for x in self.batches]
        elif a > self.at:
            with torch.no_grad():
                self.cache = [_chain(self.segments[self.at:a], h.clone()) for h in self.cache]
        self.at = a


def _chain(segments: Sequence[nn.Module], h: torch.Tensor) -> torch.Tensor:
    for s in segments:
        h = s(h)
    return h


class _eval:
    """Eval mode for the duration (BN uses its running statistics), restored afterwards."""

    def __init__(self, model: nn.Module) -> None:
        self.model, self.was = model, model.training

    def __enter__(self) -> None:
        self.model.eval()

    def __exit__(self, *exc: object) -> None:
        self.model.train(self.was)
