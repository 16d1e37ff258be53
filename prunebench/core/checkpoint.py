"""A loaded checkpoint fitted to a model, with an explanation when it does not fit.

``torch.load`` gives whatever the file holds; :func:`state_dict_of` accepts the common shapes of a weights file — a plain
``state_dict``, one wrapped (nested too) as ``{"state_dict": …}`` (the official rethinking-network-pruning code, most
trainers), ``{"model_state_dict": …}`` or ``{"model": …}``, with DataParallel/DDP ``module.`` (or ``torch.compile``'s ``_orig_mod.``) prefixes — and rejects anything
else in one line. :func:`load_into` then says which keys are missing or unexpected and which shapes differ (first few),
and the likely fix, instead of torch's cut-off ``Error(s) in loading state_dict``. Loading is strict except that a file
without BatchNorm's ``num_batches_tracked`` counters (older checkpoints) still loads. This module is the one place that
knows these shapes: ``prunebench.models.weights`` (files, safetensors, torchvision weights names) uses it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from prunebench.core.errors import PrunebenchError, one_line

if TYPE_CHECKING:
    import torch
    import torch.nn as nn

WRAPPERS = ("state_dict", "model_state_dict", "model")   # keys a training script wraps the weights in
PREFIXES = ("module.", "_orig_mod.")   # DataParallel / DistributedDataParallel, torch.compile
SHOW = 3                               # how many keys / shapes a message names


def _fmt(keys: list[str]) -> str:
    return ", ".join(keys[:SHOW]) + (f" (+{len(keys) - SHOW} more)" if len(keys) > SHOW else "")


def state_dict_of(obj: Any, source: str | Path = "checkpoint") -> dict[str, "torch.Tensor"]:
    """The ``{name: tensor}`` mapping inside ``obj`` (see the module docstring); a one-line error for anything else."""
    import torch

    inside = ""
    while isinstance(obj, Mapping) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        key = next((k for k in WRAPPERS if isinstance(obj.get(k), Mapping)), None)
        if key is None:
            break
        obj, inside = obj[key], f"{inside}[{key!r}]"
    save = "save the weights with torch.save(model.state_dict(), PATH)"
    if isinstance(obj, torch.Tensor):
        raise PrunebenchError(f"{source} holds a single tensor of shape {list(obj.shape)}, not a state_dict (a mapping "
                              f"of parameter names to tensors); {save}")
    if not isinstance(obj, Mapping):
        raise PrunebenchError(f"{source}{inside} holds a {type(obj).__name__}, not a state_dict (a mapping of parameter "
                              f"names to tensors); {save}")
    if not obj:
        raise PrunebenchError(f"{source}{inside} holds an empty mapping, not a state_dict; {save}")
    for k, v in obj.items():
        if not isinstance(k, str) or not isinstance(v, torch.Tensor):
            shown = one_line(repr(v))
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            raise PrunebenchError(f"{source}{inside} is not a state_dict: entry {k!r} holds {type(v).__name__} {shown}, "
                                  f"not a tensor; {save}")
    state = dict(obj)
    for prefix in PREFIXES:
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def _classifier(model: "nn.Module") -> str | None:
    import torch.nn as nn

    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None


def load_into(model: "nn.Module", obj: Any, source: str | Path, name: str,
              classes_fix: Callable[[int], str] | None = None) -> "nn.Module":
    """Load the weights in ``obj`` (what ``load_state`` returned for ``source``) into ``model`` (called ``name`` in
    messages), strictly; ``classes_fix(n)`` phrases the fix when the file's classifier has ``n`` outputs."""
    state = state_dict_of(obj, source)
    own = model.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if not (missing or unexpected or shapes):
        try:
            model.load_state_dict(state, strict=False)   # strict by the checks above, num_batches_tracked aside
        except RuntimeError as e:   # e.g. a dtype that cannot be copied
            raise PrunebenchError(f"{source} does not load into {name}: {one_line(str(e))}") from None
        return model
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing key(s): {_fmt(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s): {_fmt(unexpected)}")
    if shapes:
        shown = [f"{k} {list(state[k].shape)} in the file vs {list(own[k].shape)} in the model" for k in shapes]
        parts.append(f"{len(shapes)} shape mismatch(es): {_fmt(shown)}")
    raise PrunebenchError(f"{source} does not fit {name}: " + "; ".join(parts) + "; "
                          + _likely_fix(model, state, own, missing, unexpected, shapes, name, classes_fix))


def _likely_fix(model: "nn.Module", state: Mapping[str, Any], own: Mapping[str, Any], missing: list[str],
                unexpected: list[str], shapes: list[str], name: str,
                classes_fix: Callable[[int], str] | None) -> str:
    fc = _classifier(model)
    head = {f"{fc}.weight", f"{fc}.bias"} if fc else set()
    if shapes and set(shapes) <= head and not (missing or unexpected):
        n = int(state[f"{fc}.weight"].shape[0]) if f"{fc}.weight" in state else int(state[f"{fc}.bias"].shape[0])
        return (classes_fix(n) if classes_fix else f"the file's classifier has {n} outputs, the model's "
                f"{int(own[shapes[0]].shape[0])}: build the model with {n} classes")
    body = [k for k in shapes if k not in head]
    if body and all(all(a <= b for a, b in zip(state[k].shape, own[k].shape)) for k in body):
        return ("the file holds narrower layers, i.e. a pruned model: a pruned model's weights need their architecture, "
                "so pass its directory (arch.json + model.pt), not the .pt file alone")
    if body and all(all(a >= b for a, b in zip(state[k].shape, own[k].shape)) for k in body):
        return ("the file holds wider layers than this (pruned) architecture, e.g. the dense model's weights: give the "
                "weights saved together with this arch.json")
    if not set(state) & set(own):
        return f"it was saved from another architecture (its keys look like {_fmt(sorted(state))}); give a checkpoint of {name}"
    return f"give a checkpoint of {name} saved by prunebench or torch.save(model.state_dict(), PATH)"
