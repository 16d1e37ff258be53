"""Channel *sites* and masks: how data-driven methods (greedy forward selection, Fisher pruning) look at one channel.

Removing output channel c of a prunable layer removes the layer's filter, its BatchNorm channel and the consumers' input
slice. The exact functional equivalent without surgery is to zero that channel *after the BatchNorm* (a zeroed conv output
would still leave BN's β): ReLU(0) = 0 and pooling of zeros is zero, so every consumer sees nothing from it. That point is
the layer's *site*: the BatchNorm that torch-pruning couples to the layer's output channels, or the layer itself when it
has none. A forward hook there multiplies the output by a 0/1 mask (greedy forward selection) or records activation and
gradient (Fisher saliency: a·∂L/∂a there equals the post-ReLU product, since ReLU passes both or neither).

``TailEvaluator`` re-runs only the part of the network *downstream* of a site (a torch.fx trace; everything upstream is
cached per batch), and evaluates many candidate masks in one batched pass — greedy selection's cost is dominated by this.
Models that fx cannot trace fall back to full forward passes (same numbers, slower).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Mapping, Sequence

import torch
import torch.fx
import torch.nn as nn

from prunebench.pruning.base import _out_channels, _out_pruning_fn
from prunebench.pruning.groups import build_graph

_BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d)


def channel_sites(model: nn.Module, example: torch.Tensor, names: Sequence[str]) -> dict[str, str]:
    """{prunable layer: module whose output carries exactly that layer's channels after normalisation}."""
    modules = dict(model.named_modules())
    by_module = {m: n for n, m in modules.items()}
    dg = build_graph(model, example)   # grad enabled, train/eval mode restored (torch-pruning traps 1, 2)
    out: dict[str, str] = {}
    for name in names:
        layer = modules[name]
        c = _out_channels(layer)
        group = dg.get_pruning_group(layer, _out_pruning_fn(layer), idxs=list(range(c)))
        bns = [dep.target.module for dep, _ in group.items
               if isinstance(dep.target.module, _BN_TYPES) and dep.target.module.num_features == c]
        bns = list(dict.fromkeys(bns))
        out[name] = by_module[bns[0]] if len(bns) == 1 else name
    return out


class SiteMask:
    """A forward hook scaling a site's output channels by ``mask`` ([C], or [K, C] for K candidates stacked on the batch)."""

    def __init__(self, module: nn.Module, channels: int) -> None:
        self.mask: torch.Tensor | None = torch.ones(channels)
        self.handle = module.register_forward_hook(self._hook)

    def _hook(self, module: nn.Module, inputs: Any, out: torch.Tensor) -> torch.Tensor | None:
        m = self.mask
        if m is None:
            return None
        m = m.to(device=out.device, dtype=out.dtype)
        extra = (1,) * (out.dim() - 2)
        if m.dim() == 1:
            return out * m.view(1, -1, *extra)
        k = m.shape[0]
        return (out.view(k, -1, *out.shape[1:]) * m.view(k, 1, -1, *extra)).view_as(out)

    def remove(self) -> None:
        """Remove the forward hook."""
        self.handle.remove()


class TailEvaluator:
    """Logits of the network with a mask at one site, recomputing only what lies downstream of the site."""

    def __init__(self, model: nn.Module, site: str) -> None:
        self.model = model
        self.site = site
        self.gm: torch.fx.GraphModule | None = None
        try:
            gm = torch.fx.symbolic_trace(model)
            node = next(n for n in gm.graph.nodes if n.op == "call_module" and n.target == site)
        except Exception:  # noqa: BLE001 - any tracing failure just means "no shortcut"
            return
        downstream: set[torch.fx.Node] = set()
        stack = [node]
        while stack:
            n = stack.pop()
            if n not in downstream:
                downstream.add(n)
                stack.extend(n.users)
        self.tail = [n for n in gm.graph.nodes if n in downstream]
        self.in_tail = downstream
        self.frontier = [n for n in gm.graph.nodes if n not in downstream and any(u in downstream for u in n.users)]
        # free every value after its last use in the tail: a batch of candidates through a deep net would otherwise keep
        # all its activations alive (gigabytes for ResNet-56)
        last: dict[torch.fx.Node, torch.fx.Node] = {}
        for n in self.tail:
            for inp in n.all_input_nodes:
                last[inp] = n
        self.release: dict[torch.fx.Node, list[torch.fx.Node]] = {}
        for value, user in last.items():
            self.release.setdefault(user, []).append(value)
        keep = set(self.frontier)
        head_last: dict[torch.fx.Node, torch.fx.Node] = {}
        for n in gm.graph.nodes:
            if n not in downstream:
                for inp in n.all_input_nodes:
                    head_last[inp] = n
        self.head_release: dict[torch.fx.Node, list[torch.fx.Node]] = {}
        for value, user in head_last.items():
            if value not in keep:
                self.head_release.setdefault(user, []).append(value)
        self.gm = gm

    @torch.no_grad()
    def prepare(self, x: torch.Tensor) -> Any:
        """What the tail needs for batch ``x`` (run once per batch, with the site unmasked or masked: it is upstream)."""
        if self.gm is None:
            return x
        interp = torch.fx.Interpreter(self.gm, garbage_collect_values=False)
        wanted = set(self.frontier)
        interp.env = {}
        args = iter([x])
        for n in self.gm.graph.nodes:
            if n in self.in_tail:
                continue
            interp.env[n] = next(args) if n.op == "placeholder" else interp.run_node(n)
            for done in self.head_release.get(n, ()):
                del interp.env[done]
        # activations are repeated per candidate; constants (get_attr) are not
        return {n: (v, n.op != "get_attr") for n, v in interp.env.items() if n in wanted}

    @torch.no_grad()
    def logits(self, cache: Any, repeat: int = 1) -> torch.Tensor:
        """Network output, with the batch repeated ``repeat`` times (one copy per candidate mask row)."""
        if self.gm is None:
            x = cache
            return self.model(x.repeat(repeat, *([1] * (x.dim() - 1))) if repeat > 1 else x)
        interp = torch.fx.Interpreter(self.gm, garbage_collect_values=False)
        interp.env = {n: _repeat(v, repeat) if batched else v for n, (v, batched) in cache.items()}
        for n in self.tail:
            value = interp.run_node(n)
            if n.op == "output":
                return value
            interp.env[n] = value
            for done in self.release.get(n, ()):
                del interp.env[done]
        raise RuntimeError("traced graph has no output")


def _repeat(v: Any, k: int) -> Any:
    """A fresh copy (in-place ops in the tail must never touch the cache), repeated k times along the batch."""
    if not isinstance(v, torch.Tensor) or v.dim() == 0:
        return v
    return v.repeat(k, *([1] * (v.dim() - 1)))


@contextmanager
def site_masks(model: nn.Module, sites: Mapping[str, str]) -> Iterator[dict[str, SiteMask]]:
    """Masks (initially all ones) on the sites of ``sites`` ({layer: site}); removed on exit."""
    modules = dict(model.named_modules())
    masks = {layer: SiteMask(modules[site], _out_channels(modules[layer])) for layer, site in sites.items()}
    try:
        yield masks
    finally:
        for m in masks.values():
            m.remove()
