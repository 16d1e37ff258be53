"""Accuracy of an exported ONNX model on the test split (PyTorch accuracy: ``prunebench.metrics.accuracy``).

The ONNX figure must agree with PyTorch's: the runner records both and the fraction of identical top-1 predictions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from prunebench.data import DataBundle, Split, eval_batches
from prunebench.export.session import cpu_session
from prunebench.metrics.accuracy import topk_correct

# Tie-breaking between near-equal logits may flip a prediction; anything beyond this many points is a real disagreement.
MAX_TOP1_GAP_POINTS = 0.1


def onnx_accuracy(path: str | Path, data: DataBundle, split: Split, threads: int = 1,
                  batch_size: int = 256) -> dict[str, float]:
    """Top-1 / top-5 (%) of the ONNX file at ``path`` on ``split``, ONNX Runtime CPU with ``threads`` threads."""
    sess = cpu_session(path, threads)
    name = sess.get_inputs()[0].name
    c1 = c5 = seen = 0
    for x, y in eval_batches(data, split, batch_size):
        out = torch.from_numpy(np.asarray(sess.run(None, {name: x.numpy()})[0]))
        a, b = topk_correct(out, y)
        c1, c5, seen = c1 + a, c5 + b, seen + int(y.numel())
    n = max(seen, 1)   # a streamed image that cannot be decoded is left out
    return {"top1": 100.0 * c1 / n, "top5": 100.0 * c5 / n}
