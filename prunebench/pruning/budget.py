"""Channel scores per prunable group for budget allocation (``prunebench.pruning.allocation``), from a registered
importance method's own torch-pruning criterion.

Supported: ``l1-norm``, ``l2-norm``, ``group-norm``, ``lamp``, ``taylor`` (gradients from calibration batches) and
``random``. Scores are taken on the dense model (Li et al.'s independent strategy), one vector per group root, and the
same scores then decide which channels ``slim_to_widths`` removes, so the allocation and the surgery agree.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Sequence

import torch
import torch.nn as nn

from prunebench.core.errors import PrunebenchError
from prunebench.pruning import criteria, l1_norm
from prunebench.pruning.allocation import Candidate, kept_importance
from prunebench.pruning.base import Importance, _out_channels, _out_pruning_fn
from prunebench.pruning.groups import build_graph

IMPORTANCES: dict[str, Callable[[int], Importance]] = {
    "l1-norm": lambda seed: l1_norm.IMPORTANCE,
    "l2-norm": lambda seed: criteria.l2_importance(),
    "group-norm": lambda seed: criteria.group_norm_importance(),
    "lamp": lambda seed: criteria.lamp_importance(),
    "taylor": lambda seed: criteria.taylor_importance(),
    "random": lambda seed: criteria.SeededRandomImportance(seed),
}
NEEDS_DATA = ("taylor",)


def check_method(method: str) -> None:
    """Raises :class:`PrunebenchError` unless ``method`` can prune to a latency budget (it must score channels)."""
    if method not in IMPORTANCES:
        raise PrunebenchError(f"--method {method} cannot prune to a latency budget; choose one of "
                              f"{', '.join(IMPORTANCES)} (importance-based methods)")


def group_scores(model: nn.Module, example: torch.Tensor, names: Sequence[str], method: str,
                 calibration: Iterable[Any] | None = None, seed: int = 0) -> dict[str, torch.Tensor]:
    """{group root: one score per output channel (≥ 0)} of ``model`` under ``method``'s criterion. Raises
    :class:`PrunebenchError` for an unsupported method or a data-driven one without ``calibration``."""
    check_method(method)
    imp = IMPORTANCES[method](seed)
    modules = dict(model.named_modules())
    if method in NEEDS_DATA:
        criteria.accumulate_gradients(model, calibration)
    try:
        dg = build_graph(model, example)
        out = {}
        with torch.enable_grad():
            for n in names:
                layer = modules[n]
                group = dg.get_pruning_group(layer, _out_pruning_fn(layer), idxs=list(range(_out_channels(layer))))
                s = imp(group)
                if s is None:
                    raise PrunebenchError(f"{method} gave no score for layer {n}")
                out[n] = s.detach().flatten().float().cpu().clamp_min(0)
        return out
    finally:
        if method in NEEDS_DATA:
            model.zero_grad(set_to_none=True)


def budget_options(scores: Mapping[str, Sequence[float] | torch.Tensor],
                   deltas: Mapping[str, Mapping[int, float]]) -> dict[str, list[Candidate]]:
    """{group: candidates} for :func:`prunebench.pruning.allocation.allocate`: each table width of the group with the
    importance it keeps (:func:`kept_importance` of its scores) and its latency delta (milliseconds)."""
    out = {}
    for g, table in deltas.items():
        s = scores[g].tolist() if isinstance(scores[g], torch.Tensor) else list(scores[g])
        out[g] = [Candidate(int(w), kept_importance(s, int(w)), float(d)) for w, d in sorted(table.items())]
    return out
