"""What every structured method shares: exact-width slimming through torch-pruning, verification, and saving.

A method decides *which* channels go (an importance score per channel, or explicit indices) and *how many* per layer (a
width plan); torch-pruning's DependencyGraph does the physical surgery (the layer, its BN and every consumer's input slice).
Nothing here edits tensors by hand.

A pruned architecture is data: ``Architecture`` (model name, classes, input shape, per-layer output widths) saved as JSON
next to a plain ``state_dict``. Loading rebuilds the dense model, slims it to those widths with the same DependencyGraph,
then loads the weights with ``torch.load(weights_only=True)``; with no weights it gets a fresh init (Scratch-E/B,
:func:`fresh_init_`).

Which layers may be pruned: a registered model's own rule (``ModelSpec.prunable``), or — for torchvision/timm/user models
and rule-less registered ones — the coupled groups found automatically (``prunebench.pruning.groups``); in both cases minus
the layers the user protected (``--ignore``, recorded in the model's binding and in arch.json).
"""

from __future__ import annotations

import dataclasses
import math
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
from prunebench.models import build_model, get_model_spec, ignored_of, input_shape_of, num_classes_of, reinitialize
from prunebench.pruning.blocks import remove_blocks, removed_block_names
from prunebench.pruning.groups import _channel_groups, build_graph, prunable_roots, symmetric_indices

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
    input_shape: list[int] | None = None         # C, H, W the model was built for (None: the spec's default)
    ignore: list[str] = field(default_factory=list)          # layers the user protected from pruning (--ignore)

    def to_dict(self) -> dict[str, Any]:
        """The architecture as JSON-able dict (what arch.json holds), with its schema version."""
        return {"schema": ARCH_SCHEMA, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Architecture":
        """The architecture in ``d`` (arch.json's content). Raises :class:`PrunebenchError` for a non-object, an unknown
        schema, unknown keys or missing/malformed model, num_classes or widths."""
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
    """One random example at the spec's default input shape (for a built model prefer :func:`example_for`)."""
    return torch.randn(1, *get_model_spec(model_name).input_shape, device=device)


def example_for(model: nn.Module, model_name: str, device: torch.device | str | None = None) -> torch.Tensor:
    """One random example of the input ``model`` was built for (its binding; else the spec's default), on its device."""
    if device is None:
        p = next(model.parameters(), None)
        device = p.device if p is not None else "cpu"
    return torch.randn(1, *input_shape_of(model, model_name), device=device)


def prunable_layers(model: nn.Module, model_name: str) -> list[str]:
    """Layers whose output channels a structured method may remove: the model's own rule, or the automatically found
    group roots; minus the layers under ``--ignore``."""
    spec = get_model_spec(model_name)
    ignore = ignored_of(model)
    if spec.prunable is None:
        return prunable_roots(model, example_for(model, model_name), ignore)[0]
    names = spec.prunable(model)
    return [n for n in names if not any(n == i or n.startswith(i + ".") for i in ignore)]


def channel_multiples(model: nn.Module, model_name: str) -> dict[str, int]:
    """{prunable layer: g} for layers coupled to grouped convs (widths must be multiples of g); empty for most models."""
    if get_model_spec(model_name).prunable is not None:
        return {}
    return prunable_roots(model, example_for(model, model_name), ignored_of(model))[1]


def prunable_widths(model: nn.Module, model_name: str) -> dict[str, int]:
    """{prunable layer: output channels} of ``model`` (the layers the model's prune rule allows)."""
    modules = dict(model.named_modules())
    return {n: _out_channels(modules[n]) for n in prunable_layers(model, model_name)}


def architecture_of(model: nn.Module, model_name: str, num_classes: int, **meta: Any) -> Architecture:
    """The :class:`Architecture` of ``model`` as it is now: prunable widths, removed blocks, input shape and ignored
    layers (``meta`` overrides or adds fields)."""
    meta.setdefault("removed_blocks", removed_block_names(model))
    meta.setdefault("input_shape", list(input_shape_of(model, model_name)))
    meta.setdefault("ignore", list(ignored_of(model)))
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
    """Li et al.'s rule for a rate p: keep floor(C·(1−p)) channels of every prunable layer (at least one; for a layer tied
    to grouped convs, floored to a multiple of its g channel groups, at least g)."""
    if not 0.0 <= ratio < 1.0:
        raise PrunebenchError(f"--ratio must be in [0, 1), got {ratio}")
    multiples = channel_multiples(model, model_name)
    out = {}
    for n, c in prunable_widths(model, model_name).items():
        g = multiples.get(n, 1)
        out[n] = max(g, keep_count(c, ratio) // g * g)
    return out


def keep_count(channels: int, rate: float) -> int:
    """Channels kept out of ``channels`` when a fraction ``rate`` is removed: floor(channels·(1 − rate)), at least 1."""
    return max(1, int(channels * (1.0 - rate) + 1e-9))


def round_widths(widths: Mapping[str, int], round_to: int | None, original: Mapping[str, int],
                 multiples: Mapping[str, int] | None = None) -> dict[str, int]:
    """Round kept widths *up* to a multiple of ``round_to`` (never above the original width); a layer with g channel
    groups (``multiples``) to a multiple of lcm(round_to, g)."""
    if not round_to:
        return dict(widths)
    out = {}
    for n, w in widths.items():
        step = math.lcm(round_to, (multiples or {}).get(n, 1))
        out[n] = min(original[n], -(-w // step) * step)
    return out


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
    dg = build_graph(model, example)
    grouped = any(isinstance(m, nn.Conv2d) and 1 < m.groups < m.out_channels for m in modules.values())
    with torch.enable_grad():
        todo: dict[str, list[int]] = {}
        for name, width in targets.items():
            layer = modules[name]
            current = _out_channels(layer)
            if width > current or width < 1:
                raise PrunebenchError(f"layer {name} has {current} channels; cannot make it {width} wide")
            if width == current:
                continue
            # the full group: for the importance, and for the conv groups of a model with grouped convs
            need_group = grouped or not (scores is not None and name in scores) and importance is not None
            group = dg.get_pruning_group(layer, _out_pruning_fn(layer), idxs=list(range(current))) if need_group else None
            if scores is not None and name in scores:
                s = scores[name].detach().flatten().float().cpu()
            elif importance is not None:
                s = importance(group)
                if s is None:
                    raise PrunebenchError(f"importance gave no score for layer {name}")
                s = s.detach().flatten().float().cpu()
            else:
                s = torch.arange(current, 0, -1, dtype=torch.float32)  # remove the last channels
            if s.numel() != current:
                raise RuntimeError(f"{name}: {s.numel()} scores for {current} channels")
            # stable sort: ties go to the lower index first, so the choice is deterministic; grouped convs: the same
            # positions in every channel group
            todo[name] = symmetric_indices(s, current - width, _channel_groups(group) if group is not None else 1)
        for name, idxs in todo.items():
            layer = modules[name]
            group = dg.get_pruning_group(layer, _out_pruning_fn(layer), idxs=idxs)
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
    """Check every layer in ``targets`` has that many output channels. Raises ``RuntimeError`` (a bug, not user input)
    naming a wrong one."""
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
    """Rebuild ``arch``: dense model → slimmed by torch-pruning → weights loaded (or a fresh init, see
    :func:`fresh_init_`); weights that do not fit are a one-line error naming ``source`` and the keys/shapes that differ."""
    model = build_model(arch.model, arch.num_classes, input_shape=arch.input_shape, ignore=arch.ignore)
    remove_blocks(model, arch.removed_blocks)  # depth pruning first: the widths name layers of what remains
    slim_to_widths(model, example_for(model, arch.model), arch.widths)
    if weights is None:
        if callable(getattr(model, "init_weights", None)):
            reinitialize(model)
        # else: the factory's own init of the dense model, slimmed (see fresh_init_)
    else:
        load_into(model, weights, source, f"the architecture of its arch.json ({arch.model}, {arch.num_classes} classes)")
    return model


def fresh_init_(model: nn.Module, model_name: str) -> nn.Module:
    """Scratch-E/B's fresh init of a (pruned) model, in place, from the current torch RNG.

    A registered model re-applies its own ``init_weights()`` at the pruned widths. A model without one (torchvision, timm,
    a user factory) is re-initialised by **the factory again**: a fresh dense model from the factory (its own init, raw
    parameters such as ConvNeXt's layer scale included, which per-module ``reset_parameters`` would miss), slimmed to
    this model's widths through the same DependencyGraph (first channels kept), its tensors copied in. Every element
    comes from the factory's own init distribution; variance-scaled inits keep the dense layer's scale (fan of the dense
    layer), which the BatchNorm after each conv absorbs."""
    if callable(getattr(model, "init_weights", None)):
        return reinitialize(model)
    num_classes = num_classes_of(model)
    if num_classes is None:
        raise PrunebenchError(f"{model_name}: cannot re-initialise a model without init_weights() that prunebench did "
                              "not build")
    fresh = build_architecture(architecture_of(model, model_name, num_classes))
    model.load_state_dict(fresh.state_dict())
    return model


def save_pruned(directory: str | Path, arch: Architecture, model: nn.Module) -> None:
    """Write ``model``'s weights (model.pt) and ``arch`` (arch.json, last: its presence marks a complete save) to
    ``directory``."""
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
    """(architecture, model) saved by :func:`save_pruned` in ``directory``; ``with_weights=False`` builds the
    architecture with fresh weights. Raises :class:`PrunebenchError` for a missing/malformed arch.json or checkpoint."""
    directory = Path(directory)
    arch = load_arch(directory / paths.ARCH)
    weights = load_state(directory / paths.MODEL) if with_weights else None
    return arch, build_architecture(arch, weights, directory / paths.MODEL)


def layer_order(model: nn.Module, names: Sequence[str]) -> list[str]:
    """``names`` in module-definition order (which is forward order for the sequential models here)."""
    order = {n: i for i, (n, _) in enumerate(model.named_modules())}
    return sorted(names, key=order.__getitem__)
