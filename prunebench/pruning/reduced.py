"""``reduced``: the same network made uniformly thinner, trained from scratch — Crowley et al. 2018's baseline.

Crowley, Gray & Storkey ("A Closer Look at Structured Pruning for Neural Network Compression", 2018) found that a network
*reduced* uniformly to the pruned one's parameter or FLOP count and trained from scratch often beats the pruned-and-tuned
one. This method ignores the weights entirely: every prunable layer keeps round(m·C) of its C channels (at least one), with
the single multiplier m found by bisection so the model costs what was asked, and the result is re-initialised with the
model's own init (so "fine-tuning" it would mean nothing: the runner trains `reduced` only in the scratch regimes).

How much (exactly one, as for every method):
- ``--ratio R``: R is the **cost reduction** (not a channel rate): 0.5 → half the dense MACs (``options["match"] =
  "params"``: half the parameters);
- ``--preset P`` (the paper's L1-norm width plans, e.g. ResNet-56-B) or an explicit widths plan: the cost of that plan;
- in a ``prunebench run`` plan, ``options = {match_macs_of = "<label>"}`` (or ``match_params_of``) on a ``method =
  "reduced"`` entry makes the runner read that entry's pruned MACs (params) from its prune.json: the comparison at equal
  cost, shown next to it in the report.

Depth reduction (Crowley's "shallower" variant) is not implemented: widths only.

Measured prune times: docs/methods.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn

from prunebench.metrics import flops
from prunebench.core.errors import PrunebenchError
from prunebench.core.params import param
from prunebench.pruning.base import fresh_init_, prunable_widths, slim_to_widths
from prunebench.pruning.l1_norm import PRESETS as L1_PRESETS  # the paper's width plans
from prunebench.pruning.registry import Method, PruneRequest, register_method
from prunebench.pruning.scaling import cost_of_widths, solve_multiplier


@dataclass(frozen=True)
class ReducedOptions:
    """Options of ``reduced``: the cost matched (MACs or params) and, in a plan, the entry whose cost to match."""

    match: Literal["macs", "params"] = param("macs", "the cost that --ratio (or the plan's cost) fixes")
    match_macs_of: str | None = param(None, "in a plan: the label of an earlier entry whose pruned MACs to match")
    match_params_of: str | None = param(None, "in a plan: the label of an earlier entry whose pruned params to match")

    def problems(self) -> list[str]:
        """["give one of ..."] if both match_macs_of and match_params_of are given; [] otherwise."""
        if self.match_macs_of and self.match_params_of:
            return ["give one of match_macs_of and match_params_of"]
        return []


def target_cost(request: PruneRequest, metric: str) -> float:
    """The MACs / params the reduced model must have."""
    dense = flops.count(request.model, tuple(request.example.shape[1:]))
    full = dense.macs if metric == "macs" else dense.params
    if request.preset is None and request.widths is None and request.ratio is not None:
        if not 0.0 < request.ratio < 1.0:
            raise PrunebenchError(f"reduced: --ratio is the {metric} reduction and must be in (0, 1), got {request.ratio}")
        return (1.0 - request.ratio) * full
    return float(cost_of_widths(request.model, request.model_name, request.target_widths(), metric))


def prune(request: PruneRequest) -> nn.Module:
    """``reduced`` (Crowley et al. 2018): every prunable width scaled by one multiplier to the target MACs or params,
    freshly initialised (seeded by ``request.seed``). Returns the thinner model."""
    metric = request.options.match
    target = target_cost(request, metric)
    profile = prunable_widths(request.model, request.model_name)
    sol = solve_multiplier(request.model, request.model_name, profile, target, metric)
    model = slim_to_widths(request.model, request.example, sol.widths)   # keeps the first channels: weights are ignored
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(request.seed)
        fresh_init_(model, request.model_name)
    return model


METHOD = register_method(
    Method(
        "reduced",
        prune,
        "Crowley et al. 2018: uniformly thinner network at the same MACs/params (--ratio = cost reduction), from scratch",
        L1_PRESETS,
        needs_data=False,
        options=ReducedOptions,
        scratch_only=True,
    )
)
