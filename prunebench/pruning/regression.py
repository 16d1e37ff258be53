"""Channel pruning by LASSO regression and least-squares reconstruction (He, Zhang, Sun, ICCV 2017).

Layer by layer, in forward order, on the current model. For a prunable layer with c channels feeding a consumer with n
outputs, sample ``samples_per_image`` output locations per calibration image and write the consumer's outputs there as
``Y ≈ Σ_c β_c Z_c`` with ``Z_c = X_c W_cᵀ`` the contribution of channel c (all n outputs). The target Y is the *original*
model's output at the same locations (option ``target="original"``, the paper's choice: it absorbs the error accumulated by
earlier pruned layers) or the current model's (``"current"``). Channel selection is the LASSO

    min_β ‖Y − Σ_c β_c Z_c‖² + λ‖β‖₁,

solved with scikit-learn's coordinate descent on the c×c Gram form (Cholesky factor as design matrix, so the problem size
does not grow with the sample count), the penalty λ bisected until at most the target number of β stay non-zero (ties filled
from the last solution above the target by |β|). The other channels are removed physically through torch-pruning; then
(option ``refit``, default on) the consumer's kept weights are replaced by the least-squares solution
``argmin_W ‖Y − X_kept Wᵀ‖²`` (ridge 1e-6 relative, since the samples may be fewer than the unknowns).

All sums are taken through the features' Gram matrices ``XᵀX`` (k²·c_in square), so every output channel is used exactly.
A consumer with more than ``MAX_FEATURES`` inputs (VGG-16's first FC, 25 088 features) falls back to ThiNet-style rows
(one sampled output unit per sample) for the LASSO and keeps its weights (no refit); this is recorded in the notes.

Presets (paper-protocol.md §1): VGG-16-5x for ``vgg16-imagenet`` (cfg [24,22,M,41,51,M,108,89,111,M,184,276,228,M,512×3,M],
full FC; conv+linear MACs ↓ 77.3 %, paper 77.3 %) and ResNet-50-2x (conv1 and conv2 widths of the paper's 16 triples).
He et al. also thin each block's *input* as seen by conv1 (a channel selection in front of conv1, the first number of each
triple); that is not a physical slimming of a residual net, so we keep block inputs whole: MACs ↓ 22.8 % (conv+linear,
R 1.295) instead of the official counter's 33.1 % (R 1.495), i.e. a larger network than the paper's.

Forward passes of the current and the original model dominate (block-input cache, feeder.py); the LASSO is
negligible. Measured prune times: docs/methods.md.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn
import torch_pruning as tp

from prunebench.core.errors import PrunebenchError
from prunebench.core.params import param
from prunebench.pruning.base import layer_order, verify_forward, verify_widths
from prunebench.pruning.feeder import Feeder
from prunebench.pruning.groups import build_graph
from prunebench.pruning.reconstruction import (
    Consumer,
    calibration_batches,
    collect,
    find_consumers,
    kept_features,
    out_channels,
    removal_count,
    remove_channels,
    ridge_solve,
    root_aggregator,
    set_weight,
    unit_contributions,
    unit_outputs,
)
from prunebench.pruning.registry import Method, Preset, PruneRequest, register_method
from prunebench.pruning.thinet import vgg_cfg_widths



@dataclass(frozen=True)
class RegressionOptions:
    """Options of ``regression``: least-squares refit, sampled locations per image, and which outputs to reconstruct."""

    refit: bool = param(True, "least-squares refit of the next layer after the LASSO selection")
    samples_per_image: int = param(10, "output locations sampled per calibration image", unit="locations")
    target: Literal["original", "current"] = param("original", "reconstruct the original model's outputs, or the "
                                                               "partly pruned current model's")

    def problems(self) -> list[str]:
        """["samples_per_image must be ≥ 1"] if it is not; [] otherwise."""
        return [] if self.samples_per_image >= 1 else ["samples_per_image must be ≥ 1"]

MAX_FEATURES = 8192           # k²·c_in above which Gram matrices get too large for a CPU (VGG's 25 088-input FC)
BISECT_STEPS = 40


# ------------------------------------------------------------------------------------------------------- selection
def lasso_select(gram: torch.Tensor, rhs: torch.Tensor, keep: int) -> torch.Tensor:
    """Indices of ``keep`` channels chosen by LASSO on ``βᵀGβ − 2 bᵀβ + λ‖β‖₁``, λ bisected (ascending indices)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import Lasso

    c = len(rhs)
    if keep >= c:
        return torch.arange(c)
    scale = float(gram.diagonal().mean().clamp_min(1e-30))
    g = (gram / scale).double().cpu()
    b = (rhs / scale).double().cpu()
    # least-squares form with a c×c design: G = L Lᵀ, ‖t − Lᵀβ‖² = βᵀGβ − 2bᵀβ + const for t = L⁻¹b
    jitter = 1e-10
    while True:
        chol, info = torch.linalg.cholesky_ex(g + jitter * torch.eye(c, dtype=g.dtype))
        if int(info) == 0:
            break
        jitter *= 10
    design = chol.T.numpy()
    target = torch.linalg.solve_triangular(chol, b[:, None], upper=False).squeeze(1).numpy()

    def fit(alpha: float) -> torch.Tensor:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = Lasso(alpha=alpha, fit_intercept=False, max_iter=20000, tol=1e-7, selection="cyclic")
            return torch.from_numpy(model.fit(design, target).coef_.copy())

    alpha_max = float(b.abs().max()) / c  # every β is zero at and above this penalty
    lo_a, hi_a = alpha_max * 1e-7, alpha_max
    lo, hi = fit(lo_a), torch.zeros(c, dtype=torch.float64)
    if int((lo != 0).sum()) <= keep:
        hi = lo
    else:
        for _ in range(BISECT_STEPS):
            mid_a = (lo_a * hi_a) ** 0.5
            mid = fit(mid_a)
            nnz = int((mid != 0).sum())
            if nnz > keep:
                lo_a, lo = mid_a, mid
            else:
                hi_a, hi = mid_a, mid
                if nnz == keep:
                    break
    # rank: the support at the final λ first, then the last over-full solution by |β|, then the channel's own energy
    energy = g.diagonal() / g.diagonal().max().clamp_min(1e-30)
    score = torch.where(hi != 0, 4 + hi.abs() / hi.abs().max().clamp_min(1e-30),
                        torch.where(lo != 0, 2 + lo.abs() / lo.abs().max().clamp_min(1e-30), energy))
    return torch.sort(torch.argsort(score, descending=True, stable=True)[:keep]).values


# -------------------------------------------------------------------------------------------------- one layer's sums
class LayerSums:
    """Gram sums for one consumer: channel Gram/rhs for the LASSO and the feature Grams for the refit."""

    def __init__(self, c: Consumer, c0: Consumer, p: torch.Tensor, p0: torch.Tensor, units: torch.Tensor,
                 n_root: int) -> None:
        self.consumer = c
        w, w0 = c.flat_weight().double(), c0.flat_weight().double()
        self.exact = p.shape[1] <= MAX_FEATURES and p0.shape[1] <= MAX_FEATURES
        if self.exact:
            q = p.T @ p                                   # XᵀX (F×F), current features
            r = p.T @ p0                                  # XᵀX₀ (F×F₀), current × original features
            gram_feat = (w.T @ w) * q                     # Σ_n Σ_m Z[m,n,f] Z[m,n,g] per feature pair
            rhs_feat = ((w.T @ w0) * r).sum(1)            # Σ_n Σ_m Z[m,n,f] Y[m,n]
            other = c.feature_root() < 0                  # inputs fed by other layers: fixed, subtract from Y
            if other.any():
                rhs_feat -= gram_feat[:, other].sum(1)
            agg = root_aggregator(c, n_root)
            self.gram, self.rhs = agg.T @ gram_feat @ agg, agg.T @ rhs_feat
            self.q, self.r_y = q, r @ w0.T                # for the refit: XᵀX and XᵀY
        else:
            z, rest = unit_contributions(c, w, p, units, n_root)
            y = unit_outputs(w0, p0, units) - rest        # the original unit's output less other layers' part
            self.gram, self.rhs = z.T @ z, z.T @ y

    def refit(self, removed: torch.Tensor) -> torch.Tensor | None:
        """Least-squares weights (out, kept features) reproducing Y from the kept inputs, or None if not exact."""
        if not self.exact:
            return None
        kept = kept_features(self.consumer, removed)
        return ridge_solve(self.q[kept][:, kept], self.r_y[kept]).T


# ------------------------------------------------------------------------------------------------------------ method
def prune(request: PruneRequest) -> nn.Module:
    """``regression`` (He, Zhang & Sun, ICCV 2017): per layer in forward order, LASSO channel selection on sampled
    consumer outputs, then a least-squares refit of the consumers. Raises :class:`PrunebenchError` without calibration
    batches. Returns the slimmed model."""
    o = request.options
    opts = {"refit": o.refit, "samples_per_image": o.samples_per_image, "target": o.target}
    model, batches = request.model, calibration_batches(request.calibration, "regression")
    targets = request.target_widths()
    gen = torch.Generator().manual_seed(request.seed)
    original = copy.deepcopy(model) if opts["target"] == "original" else model
    modules, originals = dict(model.named_modules()), dict(original.named_modules())
    feeders = [Feeder(model, batches)] + ([Feeder(original, batches)] if original is not model else [])
    with torch.enable_grad():
        dg = build_graph(model, request.example)
    dg0: tp.DependencyGraph | None = None  # the original's graph, only if a consumer's inputs were changed by an earlier prune
    not_refit: list[str] = []
    for name in layer_order(model, list(targets)):
        layer = modules[name]
        n = out_channels(layer)
        if not removal_count(name, layer, targets[name]):
            continue
        consumers = find_consumers(dg, model, layer)
        consumers0 = consumers
        if original is not model:
            consumers0 = [Consumer(c.name, originals[c.name], c.root) for c in consumers]
            lost = [c.name for c, c0 in zip(consumers, consumers0) if c.module.weight.shape[0] != c0.module.weight.shape[0]]
            if lost:   # e.g. a squeeze-excitation fc whose outputs are coupled to an earlier, already pruned group
                raise PrunebenchError(f"regression: {lost[0]} (consumer of {name}) already lost output channels to an "
                                      "earlier coupled prune, so the original model's outputs cannot be its target; "
                                      "use option target=\"current\"")
            if any(c0.module.weight.shape[1] != c.module.weight.shape[1] for c, c0 in zip(consumers, consumers0)):
                if dg0 is None:
                    with torch.enable_grad():
                        dg0 = build_graph(original, request.example)
                by_name = {c.name: c for c in find_consumers(dg0, original, originals[name])}
                consumers0 = [by_name[c.name] for c in consumers]
        rows = collect(feeders, [layer, originals[name]][:len(feeders)], [consumers, consumers0][:len(feeders)],
                       int(opts["samples_per_image"]), gen)
        sums = []
        for c, c0, per_model in zip(consumers, consumers0, rows):
            (p, units), (p0, _) = per_model[0], per_model[-1]
            sums.append(LayerSums(c, c0, p, p0, units, n))
        keep = lasso_select(sum(s.gram for s in sums), sum(s.rhs for s in sums), targets[name])
        removed = torch.tensor(sorted(set(range(n)) - set(keep.tolist())), dtype=torch.long)
        refits = [s.refit(removed) if opts["refit"] else None for s in sums]
        remove_channels(dg, layer, removed.tolist(), name)
        for s, w in zip(sums, refits):
            if w is not None:
                set_weight(s.consumer, w)
            elif opts["refit"]:
                not_refit.append(s.consumer.name)
    notes = getattr(request, "notes", None)  # copied into Architecture.notes by prune_model
    if isinstance(notes, dict):
        notes["regression_target"] = opts["target"]
        if request.preset is not None and request.preset.title == "ResNet-50-2x":
            notes["block_inputs"] = "kept whole: the paper's channel selection in front of each conv1 is not applied"
        if not_refit:
            notes["regression_not_refit"] = not_refit
    if not_refit:
        warnings.warn(f"regression: {len(not_refit)} consumer(s) too wide for a refit kept their weights: {not_refit}",
                      stacklevel=2)
    verify_widths(model, targets)
    verify_forward(model, request.example)
    return model


# ------------------------------------------------------------------------------------------------------------ presets
VGG16_5X_CFG = [24, 22, "M", 41, 51, "M", 108, 89, 111, "M", 184, 276, 228, "M", 512, 512, 512, "M"]
# (block input seen by conv1, conv1 out, conv2 out) for the 16 bottlenecks of ResNet-50-2x (official prototxt)
RESNET50_2X = [(35, 64, 55), (101, 51, 39), (97, 50, 37), (144, 128, 106), (205, 105, 72), (198, 105, 72),
               (288, 128, 110), (278, 256, 225), (418, 209, 147), (407, 204, 158), (423, 212, 155), (412, 211, 148),
               (595, 256, 213), (606, 512, 433), (1222, 512, 437), (1147, 512, 440)]


def resnet50_2x(model: nn.Module) -> dict[str, int]:
    """conv1/conv2 widths of the 16 bottlenecks; the block-input selection (first number) is not applied (see above)."""
    blocks = [f"{s}.{b}" for s in ("layer1", "layer2", "layer3", "layer4") for b in range(len(getattr(model, s)))]
    if len(blocks) != len(RESNET50_2X):
        raise ValueError("ResNet-50-2x needs the 16 bottlenecks of ResNet-50")
    targets = {}
    for block, (_, c1, c2) in zip(blocks, RESNET50_2X):
        targets[f"{block}.conv1"] = c1
        targets[f"{block}.conv2"] = c2
    return targets


SOURCE = "He et al. 2017; architectures from Liu et al. 2019's official ImageNet regression models"
PRESETS = (
    Preset("5x", "vgg16-imagenet", "VGG-16-5x", vgg_cfg_widths(VGG16_5X_CFG), 0.773, SOURCE),
    Preset("2x", "resnet50", "ResNet-50-2x", resnet50_2x, 0.331, SOURCE + " (block inputs kept whole here: 22.8 % ↓)"),
)

METHOD = register_method(
    Method(
        "regression",
        prune,
        "He et al. 2017: LASSO channel selection on sampled next-layer outputs, then least-squares reconstruction, "
        "layer by layer",
        PRESETS,
        needs_data=True,
        options=RegressionOptions,
        widths_from_plan=True,
    )
)
