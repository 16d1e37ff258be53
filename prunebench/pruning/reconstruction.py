"""What ThiNet and He et al.'s channel pruning share: a layer's consumers, sampled input patches, per-channel contributions.

Both methods judge the output channels of a layer ``L`` by what they contribute to the *next* layer (the consumer: the
conv or linear reading L's channels, found through torch-pruning's dependency group, so BN/ReLU/pooling in between are
handled and the consumer's input is seen exactly as it is). On calibration batches the consumer's input is captured
(feeder.py), output locations are sampled, and each sampled output is written as a sum of per-input-channel terms:
``y[n] = Σ_j W[n, j, :] · patch[j, :]`` (conv: patch = the k×k window; linear: one feature). Features of the consumer
are mapped back to L's channels through the group's ``root_idxs`` (e.g. 49 linear features per channel after VGG's 7×7
flatten); consumer inputs that come from elsewhere map to -1.

Physical removal goes through the DependencyGraph (``remove_channels``); afterwards the methods may overwrite the consumer's
kept weights with a least-squares refit (``set_weight``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch_pruning as tp

from prunebench.core.errors import PrunebenchError
from prunebench.pruning.feeder import Feeder

Batches = Sequence[tuple[torch.Tensor, torch.Tensor]]


@dataclass
class Consumer:
    """A layer reading a pruned layer's channels: its name, module, and the pruned channel feeding each of its input
    channels."""

    name: str
    module: nn.Module          # nn.Conv2d (groups=1, zero padding) or nn.Linear on a flat input
    root: torch.Tensor         # (in_dim,) long: the pruned layer's channel feeding each input channel, -1 if another

    @property
    def kk(self) -> int:
        """Features per input channel: k×k for a conv, 1 for a linear."""
        return int(self.module.weight[0, 0].numel()) if isinstance(self.module, nn.Conv2d) else 1

    def flat_weight(self) -> torch.Tensor:
        """(out, in_dim·kk) with features ordered channel-major, kernel position minor."""
        return self.module.weight.detach().flatten(1)

    def feature_root(self) -> torch.Tensor:
        """(in_dim·kk,) long: :attr:`root` per flattened weight column (channel-major, kernel position minor)."""
        return self.root.repeat_interleave(self.kk)


def out_pruning_fn(layer: nn.Module):
    """torch-pruning's out-channel pruning function for ``layer`` (linear or conv)."""
    return tp.prune_linear_out_channels if isinstance(layer, nn.Linear) else tp.prune_conv_out_channels


def out_channels(layer: nn.Module) -> int:
    """Output channels of a conv (``out_channels``) or linear layer (``out_features``)."""
    return layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels


def removal_count(name: str, layer: nn.Module, width: int) -> int:
    """How many output channels of ``layer`` go to reach ``width`` (a user error if it cannot)."""
    current = out_channels(layer)
    if width > current or width < 1:
        raise PrunebenchError(f"layer {name} has {current} channels; cannot make it {width} wide")
    return current - width


def find_consumers(dg: tp.DependencyGraph, model: nn.Module, layer: nn.Module) -> list[Consumer]:
    """The convs/linears whose inputs are ``layer``'s output channels, with the channel each input comes from."""
    names = {m: n for n, m in model.named_modules()}
    group = dg.get_pruning_group(layer, out_pruning_fn(layer), idxs=list(range(out_channels(layer))))
    found: dict[nn.Module, Consumer] = {}
    for item in group:
        handler, module = item.dep.handler, item.dep.target.module
        if not (handler == tp.prune_conv_in_channels or handler == tp.prune_linear_in_channels):  # `==`, never `is`
            continue
        if isinstance(module, nn.Conv2d) and (module.groups != 1 or module.padding_mode != "zeros"):
            raise PrunebenchError(f"{names[module]} is a grouped or non-zero-padded conv; reconstruction needs groups=1")
        if not isinstance(module, (nn.Conv2d, nn.Linear)):
            raise PrunebenchError(f"{names[module]} ({type(module).__name__}) cannot be reconstructed; only Conv2d/Linear")
        in_dim = module.in_channels if isinstance(module, nn.Conv2d) else module.in_features
        dev = module.weight.device
        c = found.setdefault(module, Consumer(names[module], module, torch.full((in_dim,), -1, dtype=torch.long, device=dev)))
        c.root[torch.as_tensor(item.idxs, dtype=torch.long, device=dev)] = torch.as_tensor(item.root_idxs, dtype=torch.long,
                                                                                              device=dev)
    if not found:
        raise PrunebenchError(f"{names[layer]} feeds no conv or linear layer; there is nothing to reconstruct")
    return list(found.values())


@dataclass
class Positions:
    """Sampled output locations of one batch: image, row, column (conv) and one output unit per sample."""

    image: torch.Tensor
    row: torch.Tensor
    col: torch.Tensor
    unit: torch.Tensor


def sample_positions(module: nn.Module, x: torch.Tensor, per_image: int, gen: torch.Generator) -> Positions:
    """``per_image`` random output locations of ``module`` per image of ``x`` (N, C, H, W): image, row, column and
    output unit indices, each (N·per_image,) long; rows and columns are 0 for a linear layer."""
    n = x.shape[0]
    image = torch.arange(n).repeat_interleave(per_image)
    unit = torch.randint(module.weight.shape[0], (n * per_image,), generator=gen)
    if isinstance(module, nn.Linear):
        zeros = torch.zeros_like(image)
        return Positions(image, zeros, zeros, unit)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = module.kernel_size, module.stride, module.padding, module.dilation
    ho = (x.shape[2] + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (x.shape[3] + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    flat = torch.randint(ho * wo, (n * per_image,), generator=gen)
    return Positions(image, flat // wo, flat % wo, unit)


def patches(module: nn.Module, x: torch.Tensor, pos: Positions) -> torch.Tensor:
    """(m, in_dim·kk) input features behind each sampled output (the im2col rows at the sampled locations)."""
    image, row, col = (t.to(x.device) for t in (pos.image, pos.row, pos.col))
    if isinstance(module, nn.Linear):
        if x.dim() != 2:
            raise PrunebenchError("reconstruction supports a linear consumer only on a flat (N, features) input")
        return x[image]
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = module.kernel_size, module.stride, module.padding, module.dilation
    xp = F.pad(x, (pw, pw, ph, ph)).permute(0, 2, 3, 1)  # NHWC view: each gather below reads whole channel rows
    cols = [xp[image, row * sh + a * dh, col * sw + b * dw] for a in range(kh) for b in range(kw)]
    return torch.stack(cols, dim=2).flatten(1)  # (m, C, kk) -> channel-major features


def collect(feeders: Sequence[Feeder], producers: Sequence[nn.Module], consumers: Sequence[Sequence[Consumer]],
            per_image: int, gen: torch.Generator) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
    """For each consumer: (patches (m, F) per model, sampled units (m,)).

    ``feeders[i]`` runs the model holding ``producers[i]`` and ``consumers[i]`` (the same layers by name in e.g. the
    current and the original model); the sampled locations are shared so that rows correspond.
    Returns ``out[k] = [(P_model0, units), (P_model1, units), ...]`` for consumer k.
    """
    n = len(consumers[0])
    rows: list[list[list[torch.Tensor]]] = [[[] for _ in feeders] for _ in range(n)]
    units: list[list[torch.Tensor]] = [[] for _ in range(n)]
    streams = [f.inputs(p, [c.module for c in cs]) for f, p, cs in zip(feeders, producers, consumers)]
    for inputs in zip(*streams):
        for k, c in enumerate(consumers[0]):
            pos = sample_positions(c.module, inputs[0][k], per_image, gen)
            units[k].append(pos.unit)
            for i, cs in enumerate(consumers):
                rows[k][i].append(patches(cs[k].module, inputs[i][k], pos).double())  # on the model's device
    for stream in streams:
        next(stream, None)  # let every stream finish (restores train/eval mode)
    if not units[0]:
        raise PrunebenchError("no calibration batches: pass --data with at least one batch")
    return [[(torch.cat(rows[k][i]), torch.cat(units[k])) for i in range(len(feeders))] for k in range(n)]


def unit_contributions(consumer: Consumer, weight: torch.Tensor, p: torch.Tensor, units: torch.Tensor,
                       n_root: int, chunk: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """ThiNet's view: per sample, the contribution of each of the layer's channels to one sampled output unit.

    Returns (Z (m, n_root) over the pruned layer's channels, rest (m,) from consumer inputs fed by other layers).
    """
    froot = consumer.feature_root()
    own = froot >= 0
    w, units = weight.double(), units.to(weight.device)
    z, rest = [], []
    for s in range(0, len(p), chunk):
        terms = w[units[s:s + chunk]] * p[s:s + chunk]                           # (m, F)
        zeros = torch.zeros(len(terms), n_root, dtype=terms.dtype, device=terms.device)
        z.append(zeros.index_add_(1, froot[own], terms[:, own]))
        rest.append(terms[:, ~own].sum(1))
    return torch.cat(z), torch.cat(rest)


def unit_outputs(weight: torch.Tensor, p: torch.Tensor, units: torch.Tensor, chunk: int = 512) -> torch.Tensor:
    """(m,) the sampled output unit of each sample, bias excluded: Σ_f W[unit, f]·P[m, f]."""
    w, units = weight.double(), units.to(weight.device)
    return torch.cat([(w[units[s:s + chunk]] * p[s:s + chunk]).sum(1) for s in range(0, len(p), chunk)])


def root_aggregator(consumer: Consumer, n_root: int) -> torch.Tensor:
    """(F, n_root) 0/1 matrix summing the consumer's features into the pruned layer's channels."""
    froot = consumer.feature_root()
    a = torch.zeros(len(froot), n_root, dtype=torch.float64, device=froot.device)
    own = froot >= 0
    a[torch.nonzero(own).squeeze(1), froot[own]] = 1.0
    return a


def remove_channels(dg: tp.DependencyGraph, layer: nn.Module, idxs: Iterable[int], name: str) -> None:
    """Physically remove output channels ``idxs`` of ``layer`` (and every coupled slice) through torch-pruning."""
    idxs = sorted(int(i) for i in idxs)
    if not idxs:
        return
    with torch.enable_grad():
        group = dg.get_pruning_group(layer, out_pruning_fn(layer), idxs=idxs)
        if not dg.check_pruning_group(group):
            raise PrunebenchError(f"torch-pruning refused to remove {len(idxs)} channels of {name} (would empty a layer)")
        group.prune()


def kept_features(consumer: Consumer, removed: torch.Tensor) -> torch.Tensor:
    """Boolean mask over the consumer's current features: True where the input survives removing ``removed``."""
    froot = consumer.feature_root()
    gone = torch.isin(froot, removed.to(froot.device))
    return ~gone


def set_weight(consumer: Consumer, flat: torch.Tensor) -> None:
    """Overwrite the (already slimmed) consumer's weight with a refit given as (out, kept features)."""
    w = consumer.module.weight
    if flat.shape != w.flatten(1).shape:
        raise RuntimeError(f"refit for {consumer.name} has shape {tuple(flat.shape)}, layer has {tuple(w.flatten(1).shape)}")
    with torch.no_grad():
        w.copy_(flat.reshape(w.shape).to(w.dtype))


def ridge_solve(gram: torch.Tensor, rhs: torch.Tensor, rel: float = 1e-6) -> torch.Tensor:
    """Solve (gram + εI) x = rhs with ε relative to the mean diagonal (the sample count may be below the unknowns)."""
    eps = rel * float(gram.diagonal().mean().clamp_min(1e-30))
    eye = torch.eye(len(gram), dtype=gram.dtype, device=gram.device)
    return torch.linalg.solve(gram + eps * eye, rhs)


def calibration_batches(calibration: Iterable[tuple[torch.Tensor, torch.Tensor]] | None, method: str) -> Batches:
    """The calibration batches as a list. Raises :class:`PrunebenchError` if there are none (``method`` names who needs
    them)."""
    if calibration is None:
        raise PrunebenchError(f"{method} needs data: pass --data (imagefolder:PATH, cifar10 or synthetic)")
    batches = list(calibration)
    if not batches:
        raise PrunebenchError(f"{method} got no calibration batches; pass --data with at least one batch")
    return batches
