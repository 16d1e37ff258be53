"""Prunable layers found automatically, from torch-pruning's DependencyGraph, for any model.

Every Conv/Linear output is the root of a *coupled group*: the layers whose channels must go together when one of its
channels goes — its BatchNorm/LayerNorm, a depthwise conv that follows it (MobileNet's inverted residuals: pruning the
expansion channels prunes the depthwise conv with them), the squeeze-excitation scale it is multiplied by, every layer
whose output is added to it (a residual stage moves as one group), the slices of a concatenation (DenseNet) and every
consumer's input slice. Groups are listed once, rooted at their first Conv/Linear in definition order. A group is
**protected** (never pruned) when it holds

- the classifier: the Conv/Linear layers reached first walking back from the model's output through the autograd graph
  (their outputs are the classes);
- a layer named in ``--ignore`` (or inside one);
- a reshape torch-pruning cannot map (anything but flatten/unflatten between N×C×H×W and N×F, or merging/splitting the
  leading dims of a channels-last tensor as a Linear does: e.g. ShuffleNet's channel shuffle, a view to 5-D and back) —
  such channels would be removed at the wrong index on the other side;
- channels torch-pruning's index mapping fails on (it raises while building the group: e.g. the chunk before ShuffleNet's
  shuffle);
- for a registered model with its own rule (option-A ResNets, …): every group the rule does not list.

Grouped (non-depthwise) convs in a group (ResNeXt, RegNet) fix its *channel groups* g: channels are removed at the same
positions in each of the g groups, so widths are multiples of g.

Traps handled here for every caller (torch-pruning-notes.md §5): graphs are built with grad enabled, the model's train/eval
mode is restored (``build_dependency`` leaves eval mode), pruning functions are compared with ``==``; a model whose forward
fails on the example, or whose Conv/Linear layers do not reach the autograd graph, is a one-line error naming the layer.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import torch
import torch.nn as nn
import torch_pruning as tp
from torch_pruning import ops

from prunebench.core.errors import PrunebenchError

LAYER_TYPES = (nn.Conv2d, nn.Conv1d, nn.Linear)
CACHE_ATTR = "_prunebench_groups"


@dataclass
class GroupInfo:
    """One coupled group: its root layer, width and why it is protected (None: prunable)."""

    root: str
    width: int
    coupled: list[str] = field(default_factory=list)     # other Conv/Linear layers whose outputs go with the root's
    consumers: list[str] = field(default_factory=list)   # Conv/Linear layers whose inputs shrink
    kind: str = "plain"
    channel_groups: int = 1
    protected: str | None = None


def out_fn(layer: nn.Module) -> Any:
    """torch-pruning's out-channel pruning function for ``layer`` (linear or conv)."""
    return tp.prune_linear_out_channels if isinstance(layer, nn.Linear) else tp.prune_conv_out_channels


def out_channels(layer: nn.Module) -> int:
    """Output channels of a conv (``out_channels``) or linear layer (``out_features``)."""
    return layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels


@contextlib.contextmanager
def _tolerant_reshape_mapping() -> Iterator[None]:
    """torch-pruning 1.6.1 divides by zero on some reshapes (ShuffleNet's 4-D → 5-D view); leave those unmapped instead
    (the groups through them are protected, see ``_opaque_reshapes``)."""
    from torch_pruning.dependency import index_mapping

    original = index_mapping.update_reshape_index_mapping

    def tolerant(graph: Any, node: Any) -> None:
        if _is_opaque(node):   # left unmapped (identity placeholders): cheap to propagate, and its groups are protected
            return
        try:
            original(graph, node)
        except ArithmeticError:
            pass

    index_mapping.update_reshape_index_mapping = tolerant
    try:
        yield
    finally:
        index_mapping.update_reshape_index_mapping = original


class Graph(tp.DependencyGraph):
    """torch-pruning's DependencyGraph, tolerant of reshapes it cannot map (``_tolerant_reshape_mapping``, active wherever
    the library recomputes its index mappings: building the graph and every ``get_pruning_group``)."""

    def build_dependency(self, *args: Any, **kwargs: Any) -> "Graph":
        with _tolerant_reshape_mapping():
            return super().build_dependency(*args, **kwargs)

    def get_pruning_group(self, *args: Any, **kwargs: Any) -> Any:
        with _tolerant_reshape_mapping():
            return super().get_pruning_group(*args, **kwargs)


class _Tracker:
    """Names the leaf module running when a forward fails."""

    def __init__(self, model: nn.Module) -> None:
        self.names = {m: n for n, m in model.named_modules()}
        self.stack: list[str] = []
        self.called: list[nn.Module] = []
        self.handles = []
        for m in model.modules():
            self.handles.append(m.register_forward_pre_hook(self._pre))
            self.handles.append(m.register_forward_hook(self._post))

    def _pre(self, m: nn.Module, args: Any) -> None:
        self.stack.append(self.names.get(m, type(m).__name__))
        if isinstance(m, LAYER_TYPES):
            self.called.append(m)

    def _post(self, m: nn.Module, args: Any, out: Any) -> None:
        if self.stack:
            self.stack.pop()

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def build_graph(model: nn.Module, example: torch.Tensor) -> tp.DependencyGraph:
    """torch-pruning's DependencyGraph of ``model`` on ``example``: grad enabled, train/eval mode restored, untraceable
    models reported in one line naming the layer."""
    was_training = model.training
    tracker = _Tracker(model)
    try:
        with torch.enable_grad():
            dg = Graph().build_dependency(model, example_inputs=example)
    except PrunebenchError:
        raise
    except Exception as e:  # noqa: BLE001 - whatever the model's forward or the tracer raises
        where = tracker.stack[-1] if tracker.stack else "(outside any layer)"
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else ""
        raise PrunebenchError(f"cannot trace the model at layer {where} on a {tuple(example.shape[1:])} input "
                              f"({type(e).__name__}: {first}); check --input-size or the model's forward") from None
    finally:
        tracker.remove()
        model.train(was_training)
    lost = [m for m in dict.fromkeys(tracker.called) if m not in dg.module2node]
    if lost:
        raise PrunebenchError(f"layer {tracker.names[lost[0]]} runs but is not in the autograd graph (the forward "
                              "detaches it: .detach(), .numpy(), .item(), no_grad); torch-pruning cannot trace this model")
    return dg


def classifier_layers(model: nn.Module, example: torch.Tensor) -> list[nn.Module]:
    """Conv/Linear layers reached first walking back from the output through autograd: the classifier."""
    produced: dict[Any, nn.Module] = {}

    def hook(m: nn.Module, args: Any, out: Any) -> None:
        if isinstance(out, torch.Tensor) and out.grad_fn is not None:
            produced[out.grad_fn] = m

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, LAYER_TYPES)]
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            out = model(example)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    roots = [t.grad_fn for t in _tensors(out) if t.grad_fn is not None]
    found: list[nn.Module] = []
    seen: set[Any] = set()
    while roots:
        fn = roots.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        if fn in produced:
            found.append(produced[fn])
            continue
        roots.extend(f for f, _ in fn.next_functions)
    return list(dict.fromkeys(found))


def _tensors(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in _tensors(o)]
    return []


def _is_opaque(node: Any) -> bool:
    """A reshape whose channel mapping torch-pruning cannot know: not a flatten/unflatten between N×C×H×W and N×F."""
    if node.type != ops.OPTYPE.RESHAPE:
        return False
    fn = node.grad_fn
    src = getattr(fn, "_saved_self_sym_sizes", None) or getattr(fn, "_saved_self_sizes", None)
    meta = getattr(fn, "_input_metadata", None)
    if src is None or not meta:
        return False
    a, b = [int(d) for d in src], [int(d) for d in meta[0].shape]
    suffix = 0   # trailing dims the reshape keeps
    while suffix < min(len(a), len(b)) and a[-1 - suffix] == b[-1 - suffix]:
        suffix += 1
    return not (a == b or (len(a) == 4 and len(b) == 2 and b[1] == math.prod(a[1:]))      # NCHW flatten
                or (len(a) == 2 and len(b) == 4 and a[1] == math.prod(b[1:]))             # unflatten
                or suffix == 1)   # only the last dim kept, leading dims merged/split: a Linear on channels-last input


def _opaque_reshapes(dg: tp.DependencyGraph) -> set[Any]:
    return {node for node in dg.module2node.values() if _is_opaque(node)}


def _channel_groups(group: Any) -> int:
    g = 1
    for dep, _ in group:
        m = dep.target.module
        if isinstance(m, nn.Conv2d) and m.groups > 1 and not (m.groups == m.in_channels == m.out_channels):
            g = max(g, m.groups)
    return g


def discover(model: nn.Module, example: torch.Tensor, ignore: Sequence[str] = (),
             allowed: Sequence[str] | None = None, rule: str = "") -> list[GroupInfo]:
    """Every coupled group of ``model`` in definition order, each with its protection reason (None: prunable).

    ``allowed``: a registered model's own rule (its prunable layers); groups it does not list are protected by it."""
    names = {m: n for n, m in model.named_modules()}
    modules = dict(model.named_modules())
    order = {n: i for i, n in enumerate(modules)}
    unknown = [i for i in ignore if i not in modules]
    if unknown:
        raise PrunebenchError(f"--ignore {unknown[0]!r} is not a layer of this model; `prunebench prune --explain` "
                              "lists the layer names")
    ignored = {m for i in ignore for m in modules[i].modules()}
    dg = build_graph(model, example)
    classifier = set(classifier_layers(model, example))
    opaque = _opaque_reshapes(dg)
    allowed_set = set(allowed) if allowed is not None else None
    out: list[GroupInfo] = []
    seen: set[nn.Module] = set()
    for name, layer in model.named_modules():
        if not isinstance(layer, LAYER_TYPES) or layer in seen or layer not in dg.module2node:
            continue
        c = out_channels(layer)
        try:
            group = dg.get_pruning_group(layer, out_fn(layer), idxs=list(range(c)))
        except (IndexError, ArithmeticError, KeyError) as e:   # torch-pruning cannot follow these channels
            seen.add(layer)
            out.append(GroupInfo(name, c, protected=f"torch-pruning cannot follow its channels ({type(e).__name__} in "
                                                    "its index mapping: a split/concat/reshape it does not model)"))
            continue
        coupled, consumers, kinds = [], [], set()
        for dep, _ in group:
            m = dep.target.module
            if dep.target.type == ops.OPTYPE.CONCAT or dep.source.type == ops.OPTYPE.CONCAT:
                kinds.add("concat")
            if isinstance(m, nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels == m.out_channels:
                kinds.add("depthwise")
            if not isinstance(m, LAYER_TYPES):
                continue
            if dg.is_out_channel_pruning_fn(dep.handler):
                seen.add(m)
                if m is not layer:
                    coupled.append(names[m])
            else:
                consumers.append(names[m])
        members = [layer] + [modules[n] for n in coupled]
        if coupled:
            kinds.add("residual" if all(isinstance(m, nn.Conv2d) and m.groups == 1 for m in members) else "coupled")
        info = GroupInfo(name, c, sorted(set(coupled), key=order.__getitem__), sorted(set(consumers),
                         key=order.__getitem__), "+".join(sorted(kinds)) or "plain", _channel_groups(group))
        hit = [m for m in members if m in classifier]
        if hit:
            info.protected = f"classifier ({names[hit[0]]}: its outputs are the classes)"
        elif any(m in ignored for m in members):
            info.protected = f"--ignore ({next(names[m] for m in members if m in ignored)})"
        elif any(dep.target in opaque or dep.source in opaque for dep, _ in group):
            info.protected = "its channels pass through a reshape torch-pruning cannot map (e.g. a channel shuffle)"
        elif allowed_set is not None and not any(names[m] in allowed_set for m in members):
            info.protected = f"the model's rule: {rule}" if rule else "the model's rule"
        out.append(info)
    return out


def _signature(model: nn.Module, example: torch.Tensor, ignore: Sequence[str]) -> tuple[Any, ...]:
    return (tuple(n for n, _ in model.named_modules()), tuple(example.shape[1:]), tuple(ignore))


def prunable_roots(model: nn.Module, example: torch.Tensor, ignore: Sequence[str] = ()) -> tuple[list[str], dict[str, int]]:
    """(prunable root layers in definition order, {root: channel groups}) of a model without a hand-written rule.

    Cached on the model per structure (layer names), input shape and ignore list: pruning changes widths, not groups."""
    key = _signature(model, example, ignore)
    cached = model.__dict__.get(CACHE_ATTR)
    if cached is not None and cached[0] == key:
        return list(cached[1]), dict(cached[2])
    groups = [g for g in discover(model, example, ignore) if g.protected is None]
    roots = [g.root for g in groups]
    multiples = {g.root: g.channel_groups for g in groups if g.channel_groups > 1}
    model.__dict__[CACHE_ATTR] = (key, roots, multiples)
    return list(roots), dict(multiples)


def symmetric_indices(scores: torch.Tensor, remove: int, channel_groups: int) -> list[int]:
    """Indices of the ``remove`` lowest-scored channels; with g channel groups, the same positions in every group (scores
    averaged over the groups), so ``remove`` must be a multiple of g."""
    if channel_groups <= 1:
        return sorted(torch.sort(scores, stable=True).indices[:remove].tolist())
    if remove % channel_groups or scores.numel() % channel_groups:
        raise PrunebenchError(f"a group with {channel_groups} conv groups can only lose a multiple of {channel_groups} "
                              f"channels, not {remove}")
    size = scores.numel() // channel_groups
    per = torch.sort(scores.view(channel_groups, size).mean(0), stable=True).indices[: remove // channel_groups]
    return sorted(int(p) + g * size for g in range(channel_groups) for p in per.tolist())
