"""Scaling a width profile to a compute budget: the shared arithmetic of ``reduced`` and the ``scale-family`` regime.

Crowley et al. 2018 compare a pruned network with the *same* network made uniformly thinner at equal cost, and note that a
pruned width profile can be rescaled to other budgets ("prune once, get a family"). Both need: widths(m) = clamp(round(m ·
profile), 1, dense) and the multiplier m whose MACs (or params) hit a target. Cost is monotone in m, so bisection finds it;
every candidate is built and counted for real (dense model → ``slim_to_widths`` → ``flops.count``), the same counting rule
as every other number in prunebench, so no separate formula can drift from it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Mapping

import torch
import torch.nn as nn

from prunebench.metrics import flops
from prunebench.core.errors import PrunebenchError
from prunebench.models import input_shape_of
from prunebench.pruning.base import example_for, prunable_widths, slim_to_widths
from prunebench.pruning.groups import build_graph

METRICS = ("macs", "params")


def scale_widths(profile: Mapping[str, int], dense: Mapping[str, int], m: float) -> dict[str, int]:
    """The profile scaled by ``m``, each layer rounded and clamped to [1, its dense width]."""
    return {n: max(1, min(dense[n], int(round(m * w)))) for n, w in profile.items()}


def cost_of_widths(model: nn.Module, model_name: str, widths: Mapping[str, int], metric: str = "macs") -> int:
    """MACs or params of ``model`` slimmed to ``widths`` (a throw-away copy; ``model`` is untouched)."""
    copy_ = copy.deepcopy(model)
    slim_to_widths(copy_, example_for(model, model_name), widths)
    c = flops.count(copy_, input_shape_of(model, model_name))
    return c.macs if metric == "macs" else c.params


class WidthCost:
    """MACs and params of the model at any width plan, from layer shapes alone (no copy, no forward per query).

    One DependencyGraph trace says which prunable layer sets each conv/linear/BN's output and input channel count; a
    layer's MACs are (output positions) × (weight elements), its params the weight (+ bias) elements and 2 per BN channel.
    Everything else is a constant offset measured on the dense model. ``exact`` is False when the model has parts this
    cannot describe (grouped convs, other parametrised modules); callers then count built copies instead."""

    def __init__(self, model: nn.Module, model_name: str) -> None:
        from prunebench.pruning.base import _out_pruning_fn

        shape = input_shape_of(model, model_name)
        modules = dict(model.named_modules())
        self.dense = prunable_widths(model, model_name)
        # module -> [(prunable layer, how many of the module's channels each of that layer's channels accounts for)]
        self.out_of: dict[nn.Module, list[tuple[str, float]]] = {}
        self.in_of: dict[nn.Module, list[tuple[str, float]]] = {}
        self.exact = True
        dg = build_graph(model, example_for(model, model_name))
        for name in self.dense:
            layer = modules[name]
            group = dg.get_pruning_group(layer, _out_pruning_fn(layer), idxs=list(range(self.dense[name])))
            for dep, idxs in group.items:
                mod = dep.target.module
                if isinstance(mod, (nn.Conv2d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d)):
                    side = self.out_of if dg.is_out_channel_pruning_fn(dep.handler) else self.in_of
                    side.setdefault(mod, []).append((name, len(idxs) / self.dense[name]))
        self.layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d))]
        if any(isinstance(m, nn.Conv2d) and m.groups != 1 for m in self.layers):
            self.exact = False
        self.positions = MacsTracker(model, shape).positions
        self.shapes = {m: self._dense_shape(m) for m in self.layers}
        real = flops.count(model, shape)
        mine = self._count(self.dense)
        self.offset = (real.macs - mine[0], real.params - mine[1])

    @staticmethod
    def _dense_shape(m: nn.Module) -> tuple[int, int]:
        if isinstance(m, nn.Conv2d):
            return m.out_channels, m.in_channels
        if isinstance(m, nn.Linear):
            return m.out_features, m.in_features
        return m.num_features, m.num_features

    def _count(self, widths: Mapping[str, int]) -> tuple[int, int]:
        macs = params = 0
        for m in self.layers:
            out, inp = self.shapes[m]   # each removed channel of a layer feeding a side removes `per` of its channels
            out += round(sum((widths[n] - self.dense[n]) * per for n, per in self.out_of.get(m, ())))
            inp += round(sum((widths[n] - self.dense[n]) * per for n, per in self.in_of.get(m, ())))
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                params += 2 * out if m.affine else 0
                continue
            k = m.weight[0, 0].numel() if isinstance(m, nn.Conv2d) else 1
            weights = out * inp * k
            macs += self.positions.get(m, 0) * weights
            params += weights + (out if m.bias is not None else 0)
        return macs, params

    def __call__(self, widths: Mapping[str, int], metric: str = "macs") -> int:
        full = {**self.dense, **widths}
        macs, params = self._count(full)
        return macs + self.offset[0] if metric == "macs" else params + self.offset[1]


@dataclass(frozen=True)
class Solution:
    """One width multiplier's outcome: the multiplier, its widths, the cost reached (MACs or params), the target, and
    whether the target was out of reach (clamped)."""

    multiplier: float
    widths: dict[str, int]
    cost: int            # achieved MACs or params
    target: float
    clamped: bool        # the target lies outside what the profile can reach (result is the nearest end)

    @property
    def rel_error(self) -> float:
        """|cost − target| / target (target floored at 1)."""
        return abs(self.cost - self.target) / max(self.target, 1.0)


def solve_multiplier(model: nn.Module, model_name: str, profile: Mapping[str, int], target: float,
                     metric: str = "macs", iterations: int = 24) -> Solution:
    """Bisection on m so that the scaled profile costs as close to ``target`` as the integer widths allow.

    ``model`` is the dense model (its prunable widths are the upper clamp). Returns the candidate whose cost is nearest the
    target (ties: the cheaper one)."""
    if metric not in METRICS:
        raise PrunebenchError(f"match must be one of {', '.join(METRICS)}, got {metric!r}")
    dense = prunable_widths(model, model_name)
    missing = [n for n in profile if n not in dense]
    if missing:
        raise PrunebenchError(f"width profile names {missing[0]!r}, which {model_name} cannot prune")
    cache: dict[tuple[int, ...], int] = {}
    fast = WidthCost(model, model_name)

    def cost(m: float) -> tuple[dict[str, int], int]:
        w = scale_widths(profile, dense, m)
        key = tuple(w.values())
        if key not in cache:
            cache[key] = fast(w, metric) if fast.exact else cost_of_widths(model, model_name, w, metric)
        return w, cache[key]

    sol = _bisect(cost, target, max(dense[n] / max(w, 1) for n, w in profile.items()) + 1.0, iterations)
    if fast.exact:
        real = cost_of_widths(model, model_name, sol.widths, metric)   # the shape model must agree with the counter
        if real != sol.cost:
            fast.exact = False
            cache.clear()
            sol = _bisect(cost, target, max(dense[n] / max(w, 1) for n, w in profile.items()) + 1.0, iterations)
    return sol


def _bisect(cost, target: float, top: float, iterations: int) -> Solution:
    """Bisection on the multiplier over [0, top]; the nearest candidate to ``target`` wins (ties: the cheaper)."""

    lo = 0.0
    hi = top   # every layer clamped at its dense width
    w_lo, c_lo = cost(lo)
    w_hi, c_hi = cost(hi)
    if target <= c_lo or target >= c_hi:
        m, w, c = (lo, w_lo, c_lo) if target <= c_lo else (hi, w_hi, c_hi)
        return Solution(m, w, c, target, clamped=True)
    best = min(((lo, w_lo, c_lo), (hi, w_hi, c_hi)), key=lambda t: (abs(t[2] - target), t[2]))
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        w, c = cost(mid)
        if (abs(c - target), c) < (abs(best[2] - target), best[2]):
            best = (mid, w, c)
        if c == target:
            break
        if c < target:
            lo = mid
        else:
            hi = mid
        if cost(lo)[0] == cost(hi)[0]:
            break
    return Solution(best[0], best[1], best[2], target, clamped=False)


GLOBAL_BUDGETS = ("channels", "macs")


def global_order(scores: Mapping[str, torch.Tensor]) -> list[str]:
    """Layer names of all channels, lowest score first (ties: earlier layer, then lower index): the removal order of
    a global criterion (one threshold over every layer's scores)."""
    flat = [(float(v), i, j, name) for i, (name, s) in enumerate(scores.items())
            for j, v in enumerate(torch.as_tensor(s).flatten().tolist())]
    flat.sort(key=lambda t: t[:3])
    return [name for *_, name in flat]


def drop_lowest(order: list[str], current: Mapping[str, int], k: int) -> dict[str, int]:
    """Widths after removing the first ``k`` channels of ``order`` that a layer can spare (each keeps at least one)."""
    widths = dict(current)
    for name in order:
        if k == 0:
            break
        if widths[name] > 1:
            widths[name] -= 1
            k -= 1
    return widths


def global_widths_at_cost(model: nn.Module, model_name: str, scores: Mapping[str, torch.Tensor], target: float,
                          metric: str = "macs") -> Solution:
    """The global-threshold widths (fewest channels removed, lowest scores first) whose cost is at most ``target``.

    Why: a global criterion (LAMP, network slimming) fixes *which* channels go first but not how many; to compare it
    with per-layer methods at one FLOPs target, the number removed is bisected until the slimmed model's MACs (params)
    reach the target. Cost is non-increasing in the count, so the search is exact; the result is re-counted on a built
    copy. ``clamped``: even the one-channel floor everywhere does not reach the target. The returned ``multiplier``
    field holds the number of channels taken from ``order`` (there is no width multiplier here)."""
    if metric not in METRICS:
        raise PrunebenchError(f"budget metric must be one of {', '.join(METRICS)}, got {metric!r}")
    current = {n: torch.as_tensor(s).numel() for n, s in scores.items()}
    order = global_order(scores)
    fast = WidthCost(model, model_name)

    def cost(k: int) -> tuple[dict[str, int], int]:
        w = drop_lowest(order, current, k)
        return w, (fast(w, metric) if fast.exact else cost_of_widths(model, model_name, w, metric))

    lo, hi = 0, len(order)            # invariant: cost(hi) <= target unless clamped; answer = smallest such k
    w_hi, c_hi = cost(hi)
    if c_hi > target:
        return Solution(float(hi), w_hi, cost_of_widths(model, model_name, w_hi, metric), target, clamped=True)
    while lo < hi:
        mid = (lo + hi) // 2
        if cost(mid)[1] <= target:
            hi = mid
        else:
            lo = mid + 1
    widths = cost(hi)[0]
    return Solution(float(hi), widths, cost_of_widths(model, model_name, widths, metric), target, clamped=False)


class MacsTracker:
    """MACs of a model being slimmed, without a forward pass per query.

    Spatial sizes do not change when channels are removed, so a conv/linear layer's MACs stay (output positions) × (its
    weight's element count). Positions are measured once; anything else the counter sees (functional ops) is a constant
    offset measured once too, so ``macs()`` equals ``flops.count(model).macs`` for channel pruning."""

    def __init__(self, model: nn.Module, input_shape: tuple[int, ...]) -> None:
        import torch

        self.positions: dict[nn.Module, int] = {}
        hooks = [m.register_forward_hook(self._hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                p = next(model.parameters())
                model(torch.zeros((1, *input_shape), dtype=p.dtype, device=p.device))
        finally:
            model.train(was_training)
            for h in hooks:
                h.remove()
        self.offset = flops.count(model, input_shape).macs - self._weights_macs()

    def _hook(self, mod: nn.Module, inputs: object, out: "object") -> None:
        channels = mod.out_channels if isinstance(mod, nn.Conv2d) else mod.out_features
        self.positions[mod] = out[0].numel() // channels  # type: ignore[index]

    def _weights_macs(self) -> int:
        return sum(pos * m.weight.numel() for m, pos in self.positions.items())

    def macs(self) -> int:
        """Current MACs of the model (one image), equal to ``flops.count(model).macs`` under channel pruning."""
        return self._weights_macs() + self.offset
