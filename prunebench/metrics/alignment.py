"""Channel alignment: how many layers of a slimmed model have output widths that fast kernels dislike.

GEMM/conv kernels (Tensor Cores, oneDNN/MLAS blocking) work on channel tiles of 8 or 16; a layer slimmed from 64 to 57 channels
saves 11 % of its MACs but often runs at the speed of 64 (padding) or worse (a slower fallback kernel). Counting such layers
next to measured speed-ups shows when pruning lost its gains to alignment; ``round_to`` (``prunebench prune --round-to 8``,
``round_to`` in a ``[[prune]]`` entry) rounds kept widths up to a multiple to avoid it.

Rule: every Conv/Linear (ONNX: Conv/Gemm/MatMul) whose **output** width is not a multiple of ``multiple`` counts as misaligned;
the classifier (the last layer, whose width is the number of classes) is excluded because no pruning can change it.
"""

from __future__ import annotations

from typing import Any

import torch.nn as nn

DEFAULT_MULTIPLE = 8


def summary(widths: dict[str, int], multiple: int = DEFAULT_MULTIPLE) -> dict[str, Any]:
    """How many of ``widths`` (layer → output width) are not multiples of ``multiple`` (with up to 8 examples)."""
    bad = {n: w for n, w in widths.items() if w % multiple}
    return {"multiple": multiple, "layers": len(widths), "misaligned": len(bad),
            "examples": dict(list(bad.items())[:8])}


def misaligned_layers(model: nn.Module, multiple: int = DEFAULT_MULTIPLE) -> dict[str, Any]:
    """Conv/Linear output widths of a PyTorch model (classifier excluded) that are not multiples of ``multiple``."""
    widths = {n: (m.out_channels if isinstance(m, nn.Conv2d) else m.out_features)
              for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    if widths:
        widths.pop(list(widths)[-1])   # the classifier: defined last in every registered model
    return summary(widths, multiple)
