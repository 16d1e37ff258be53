"""Has the baseline converged? A baseline still improving when its training stops makes every comparison with a variant
trained longer (Scratch-B's budget is E × R epochs; fine-tuning continues the unfinished training) favour that variant —
not the paper's setting, whose baselines are trained to the end of a full schedule.

Rule: over the last ``WINDOW`` (10 %) of the baseline's epochs — at least one epoch — its test top-1 rose by more than
``RISE_POINTS`` percentage points (final epoch minus the epoch ``k`` before it). The threshold keeps the evaluation noise
of a converged run (a few tenths of a point between late epochs at a small learning rate) from raising the warning.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

WINDOW = 0.10
RISE_POINTS = 0.3
RULE = (f"test top-1 rose by more than {RISE_POINTS:g} points over the last {100 * WINDOW:.0f} % of the baseline's "
        "epochs (at least one epoch)")


@dataclass(frozen=True)
class Convergence:
    """Outcome of :func:`check`: epochs, window (epochs), top-1 at its start and the end (%), the rise (points), and
    whether it converged (None: too little history)."""

    epochs: int
    window: int              # epochs looked back
    start_top1: float | None  # top-1 ``window`` epochs before the end
    final_top1: float | None
    rise: float | None       # final − start, points
    converged: bool | None   # None: not enough history (a loaded checkpoint, one epoch)

    def to_dict(self) -> dict[str, Any]:
        """The outcome as a JSON-able dict."""
        return asdict(self)


def check(history_top1: Sequence[float | None], window: float = WINDOW, threshold: float = RISE_POINTS) -> Convergence:
    """Apply the module's rule to per-epoch test top-1 figures (None where an epoch was not evaluated)."""
    h = [x for x in history_top1 if x is not None and math.isfinite(x)]
    epochs = len(history_top1)
    k = max(1, math.ceil(window * epochs))
    if len(h) != epochs or epochs < k + 1:
        return Convergence(epochs, k, None, h[-1] if h else None, None, None)
    start, final = h[-1 - k], h[-1]
    rise = final - start
    return Convergence(epochs, k, start, final, rise, not rise > threshold)


def warning_lines(results: dict[str, Any]) -> list[str]:
    """Markdown: a warning paragraph when any seed's baseline has not converged (empty otherwise)."""
    vs = results["variants"]
    bad = []
    for v in vs:
        if v["regime"] != "baseline":
            continue
        c = check(v["training"].get("history_top1") or [])
        if c.converged is False:
            bad.append((v, c))
    if not bad:
        return []
    parts = [f"seed {v['seed']}: {c.start_top1:.2f} → {c.final_top1:.2f} % over epochs {c.epochs - c.window}→"
             f"{c.epochs} (+{c.rise:.2f})" for v, c in bad]
    base_epochs = bad[0][1].epochs
    longer = sorted({f"{v['title']} ({v['training']['epochs']} epochs)" for v in vs
                     if v["regime"] != "baseline" and v["seed"] == bad[0][0]["seed"]
                     and (v["training"]["epochs"] or 0) > base_epochs})
    favoured = (f" Variants trained longer than its {base_epochs} epochs — {', '.join(longer)} — are favoured by "
                "every comparison with it, and fine-tuning continues its unfinished training." if longer else
                " Fine-tuning continues its unfinished training.")
    return [f"> **Warning: the baseline has not converged** — its test top-1 was still rising when training stopped "
            f"({'; '.join(parts)}).{favoured} This is not the paper's setting (baselines trained to the end of a "
            f"full schedule): train the baseline longer before reading the comparison. Rule: {RULE}.", ""]
