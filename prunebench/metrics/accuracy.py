"""Top-1 / top-5 accuracy of a PyTorch model over a stream of labelled batches."""

from __future__ import annotations

from typing import Iterable

import torch
import torch.nn as nn


def topk_correct(logits: torch.Tensor, labels: torch.Tensor) -> tuple[int, int]:
    """(top-1 hits, top-5 hits) for ``logits`` (N×classes) against ``labels`` (N); top-5 is top-k for k < 5 classes."""
    k = min(5, logits.shape[1])
    top = logits.topk(k, dim=1).indices
    hit = top == labels[:, None]
    return int(hit[:, 0].sum()), int(hit.any(dim=1).sum())


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], count: int,
             device: torch.device) -> tuple[float, float]:
    """Top-1 and top-5 accuracy (%) over ``batches`` (``count`` samples expected; the accuracy is over those the batches
    hold: a streamed image that cannot be decoded is left out), in eval mode; the mode is restored."""
    was_training = model.training
    model.eval()
    correct1 = correct5 = seen = 0
    for x, y in batches:
        out = model(x.to(device))
        c1, c5 = topk_correct(out.float().cpu(), y.cpu())
        correct1 += c1
        correct5 += c5
        seen += int(y.numel())
    model.train(was_training)
    n = max(seen if seen else count, 1)
    return 100.0 * correct1 / n, 100.0 * correct5 / n
