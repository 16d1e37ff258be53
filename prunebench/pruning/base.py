"""What every structured method shares: exact-width slimming through torch-pruning, verification, and saving.

A method decides *which* channels go (an importance score per channel, or explicit indices) and *how many* per layer (a
width plan); torch-pruning's DependencyGraph does the physical surgery (the layer, its BN and every consumer's input slice).
Nothing here edits tensors by hand.

A pruned architecture is data: ``Architecture`` (model name, classes, per-layer output widths) saved as JSON next to a plain
``state_dict``. Loading rebuilds the dense model, slims it to those widths with the same DependencyGraph, then loads the
weights with ``torch.load(weights_only=True)``; with no weights it re-applies the model's own init (Scratch-E/B).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn as nn
import torch_pruning as tp

from prunebench.core import paths
from prunebench.core.checkpoint import load_into
from prunebench.core.errors import PrunebenchError
from prunebench.core.io import load_state, read_json, save_state, write_json
from prunebench.models import build_model, get_model_spec, reinitialize
from prunebench.pruning.blocks import remove_blocks, removed_block_names

ARCH_SCHEMA = 1

# An importance maps a torch-pruning group (built with every channel of its root layer) to one score per channel;
# the lowest scores are removed. torch-pruning's own importances (tp.importance.*) have exactly this signature.
Importance = Callable[[Any], torch.Tensor]


@dataclass
class Architecture:
    """A (possibly pruned) architecture as data: enough to rebuild it without pickled code."""

    model: str
    num_classes: int
    widths: dict[str, int]                       # prunable layer name -> output channels
    method: str | None = None
    preset: str | None = None
    ratio: float | None = None
    notes: dict[str, Any] = field(default_factory=dict)
    removed_blocks: list[str] = field(default_factory=list)  # residual blocks replaced by their shortcut (SSS)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": ARCH_SCHEMA, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Architecture":
        if not isinstance(d, Mapping):
            raise PrunebenchError(f"architecture file holds a JSON {type(d).__name__}, not an object; re-create it")
        d = dict(d)
        if d.pop("schema", ARCH_SCHEMA) != ARCH_SCHEMA:
            raise PrunebenchError("architecture file has an unknown schema; re-create it with this prunebench version")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise PrunebenchError(f"architecture file has unknown keys {sorted(unknown)}; re-create it")
        missing = [k for k in ("model", "num_classes", "widths") if k not in d]
        widths = d.get("widths")
        if (missing or not isinstance(d["model"], str) or type(d["num_classes"]) is not int or d["num_classes"] < 1
                or not isinstance(widths, dict)
                or any(type(w) is not int or w < 1 for w in widths.values())):
            raise PrunebenchError("architecture file is malformed (it needs model: text, num_classes: integer ≥ 1, "
                                  "widths: {layer: integer ≥ 1}" + (f"; missing {', '.join(missing)}" if missing else "")
                                  + "); re-create it")
        return cls(**d)


def example_inputs(model_name: str, device: torch.device | str = "cpu") -> torch.Tensor:
    return torch.randn(1, *get_model_spec(model_name).input_shape, device=device)


def prunable_widths(model: nn.Module, model_name: str) -> dict[str, int]:
    modules = dict(model.named_modules())
    return {n: _out_channels(modules[n]) for n in get_model_spec(model_name).prunable(model)}


def architecture_of(model: nn.Module, model_name: str, num_classes: int, **meta: Any) -> Architecture:
    meta.setdefault("removed_blocks", removed_block_names(model))
    return Architecture(model_name, num_classes, prunable_widths(model, model_name), **meta)


def _out_channels(m: nn.Module) -> int:
    if isinstance(m, nn.Conv2d):
        return m.out_channels
    if isinstance(m, nn.Linear):
        return m.out_features
    raise TypeError(f"cannot prune output channels of {type(m).__name__}")


def _out_pruning_fn(m: nn.Module) -> Callable[..., Any]:
    return tp.prune_linear_out_channels if isinstance(m, nn.Linear) else tp.prune_conv_out_channels


def uniform_widths(model: nn.Module, model_name: str, ratio: float) -> dict[str, int]:
    """Li et al.'s rule for a rate p: keep floor(C·(1−p)) channels of every prunable layer (at least one)."""
    if not 0.0 <= ratio < 1.0:
        raise PrunebenchError(f"--ratio must be in [0, 1), got {ratio}")
    return {n: keep_count(c, ratio) for n, c in prunable_widths(model, model_name).items()}


def keep_count(channels: int, rate: float) -> int:
    return max(1, int(channels * (1.0 - rate) + 1e-9))


def round_widths(widths: Mapping[str, int], round_to: int | None, original: Mapping[str, int]) -> dict[str, int]:
    """Round kept widths *up* to a multiple of ``round_to`` (never above the original width)."""
    if not round_to:
        return dict(widths)
    return {n: min(original[n], -(-w // round_to) * round_to) for n, w in widths.items()}


def slim_to_widths(
    model: nn.Module,
    example: torch.Tensor,
    targets: Mapping[str, int],
    importance: Importance | None = None,
    scores: Mapping[str, torch.Tensor] | None = None,
) -> nn.Module:
    """Physically remove output channels so that every layer in ``targets`` has exactly that width.

    Which channels go: the lowest ``scores[name]`` if given, else the lowest ``importance(group)``, else the last ones
    (used when rebuilding an architecture whose weights are loaded afterwards). All scores are taken on the model as it was
    before this call (Li et al.'s *independent* strategy), then the groups are pruned one by one through one
    DependencyGraph. The result is verified; any mismatch is an error, never a silent partial prune.
    """
    modules = dict(model.named_modules())
    unknown = [n for n in targets if n not in modules]
    if unknown:
        raise PrunebenchError(f"layers {unknown[:3]} do not exist in this model; the architecture file does not match it")
    with torch.enable_grad():
        dg = tp.DependencyGraph().build_dependency(model, example_inputs=example)
        todo: dict[str, torch.Tensor] = {}
        for name, width in targets.items():
            layer = modules[name]
            current = _out_channels(layer)
            if width > current or width < 1:
                raise PrunebenchError(f"layer {name} has {current} channels; cannot make it {width} wide")
            if width == current:
                continue
            if scores is not None and name in scores:
                s = scores[name].detach().flatten().float().cpu()
            elif importance is not None:
                group = dg.get_pruning_group(layer, _out_pruning_fn(layer), idxs=list(range(current)))
                s = importance(group)
                if s is None:
                    raise PrunebenchError(f"importance gave no score for layer {name}")
                s = s.detach().flatten().float().cpu()
            else:
                s = torch.arange(current, 0, -1, dtype=torch.float32)  # remove the last channels
            if s.numel() != current:
                raise RuntimeError(f"{name}: {s.numel()} scores for {current} channels")
            # stable sort: ties go to the lower index first, so the choice is deterministic
            todo[name] = torch.sort(s, stable=True).indices[: current - width]
        for name, idxs in todo.items():
            layer = modules[name]
            group = dg.get_pruning_group(layer, _out_pruning_fn(layer), idxs=sorted(idxs.tolist()))
            if not dg.check_pruning_group(group):
                raise PrunebenchError(f"torch-pruning refused to prune {name} to {targets[name]} channels (would empty a layer)")
            record_removed(model, group)
            group.prune()
    verify_widths(model, targets)
    verify_forward(model, example)
    return model


# Which original output channels survive, per conv/linear layer: the lottery-ticket regime replays exactly these indices on
# the large model's *initial* weights. Kept on the model object (not in its state_dict) and composed across prunes.
KEPT_ATTR = "_prunebench_kept"


def record_removed(model: nn.Module, group: Any) -> None:
    """Note, before ``group.prune()``, which output channels of every conv/linear in ``group`` are about to go.

    Methods that prune through their own DependencyGraph groups (not ``slim_to_widths``) call this before each prune so
    that ``kept_channels`` stays exact."""
    names = {m: n for n, m in model.named_modules()}
    kept: dict[str, list[int]] = model.__dict__.setdefault(KEPT_ATTR, {})
    for dep, idxs in group.items:
        layer = dep.target.module
        if not isinstance(layer, (nn.Conv2d, nn.Linear)) or dep.handler != _out_pruning_fn(layer) or layer not in names:
            continue
        name = names[layer]
        current = kept.get(name, list(range(_out_channels(layer))))
        gone = {int(i) for i in idxs}
        kept[name] = [orig for i, orig in enumerate(current) if i not in gone]


def kept_channels(model: nn.Module) -> dict[str, list[int]]:
    """{layer: surviving original output-channel indices} for every layer pruned since the model was built."""
    return {k: list(v) for k, v in getattr(model, KEPT_ATTR, {}).items()}


def verify_widths(model: nn.Module, targets: Mapping[str, int]) -> None:
    modules = dict(model.named_modules())
    wrong = {n: (_out_channels(modules[n]), w) for n, w in targets.items() if _out_channels(modules[n]) != w}
    if wrong:
        n, (got, want) = next(iter(wrong.items()))
        raise RuntimeError(f"pruning left {len(wrong)} layer(s) at the wrong width, e.g. {n}: {got} != {want}")


def verify_forward(model: nn.Module, example: torch.Tensor, num_outputs: int | None = None) -> torch.Tensor:
    """A forward pass after every prune: torch-pruning failures (e.g. option-A padding) surface here, loudly."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(example)
    except RuntimeError as e:
        raise RuntimeError(f"the pruned model no longer runs: {str(e).splitlines()[0]}") from e
    finally:
        model.train(was_training)
    if out.shape[0] != example.shape[0] or (num_outputs is not None and out.shape[-1] != num_outputs):
        raise RuntimeError(f"the pruned model returns shape {tuple(out.shape)}")
    return out


def build_architecture(arch: Architecture, weights: Mapping[str, torch.Tensor] | None = None,
                       source: str | Path = "these weights") -> nn.Module:
    """Rebuild ``arch``: dense model → slimmed by torch-pruning → weights loaded (or the model's own fresh init);
    weights that do not fit are a one-line error naming ``source`` and the keys/shapes that differ."""
    model = build_model(arch.model, arch.num_classes)
    remove_blocks(model, arch.removed_blocks)  # depth pruning first: the widths name layers of what remains
    slim_to_widths(model, example_inputs(arch.model), arch.widths)
    if weights is None:
        reinitialize(model)
    else:
        load_into(model, weights, source, f"the architecture of its arch.json ({arch.model}, {arch.num_classes} classes)")
    return model


def save_pruned(directory: str | Path, arch: Architecture, model: nn.Module) -> None:
    directory = Path(directory)
    save_state(directory / paths.MODEL, model.state_dict())
    write_json(directory / paths.ARCH, arch.to_dict())  # written last: its presence marks a complete save


def load_arch(path: str | Path) -> Architecture:
    """``arch.json``; a missing, corrupt or malformed file is a one-line error naming it."""
    if not Path(path).is_file():
        raise PrunebenchError(f"{path} not found: a prunebench model directory holds arch.json and model.pt")
    try:
        return Architecture.from_dict(read_json(path))
    except PrunebenchError as e:
        text = str(e)
        raise PrunebenchError(text if str(path) in text else text.replace("architecture file", f"{path}")) from None


def load_pruned(directory: str | Path, with_weights: bool = True) -> tuple[Architecture, nn.Module]:
    directory = Path(directory)
    arch = load_arch(directory / paths.ARCH)
    weights = load_state(directory / paths.MODEL) if with_weights else None
    return arch, build_architecture(arch, weights, directory / paths.MODEL)


def layer_order(model: nn.Module, names: Sequence[str]) -> list[str]:
    """``names`` in module-definition order (which is forward order for the sequential models here)."""
    order = {n: i for i, (n, _) in enumerate(model.named_modules())}
    return sorted(names, key=order.__getitem__)
