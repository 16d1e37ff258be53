"""Loading trained weights into a built model: ``--weights`` of ``prunebench prune`` and the plan's ``baseline_checkpoint``.

A source is either a file or a torchvision weights name:

- a file: a ``.safetensors`` file (``safetensors.torch.load_file``) or a ``torch.save``d state_dict, read with
  ``weights_only=True`` (``core.io.load_state``: nothing is unpickled as code); wrappers (``{"state_dict": …}`` …) and
  DataParallel/DDP/``torch.compile`` prefixes are handled by ``prunebench.core.checkpoint``, the one place that knows them;
- a torchvision weights enum member (``IMAGENET1K_V1``, ``DEFAULT`` or ``ResNet18_Weights.IMAGENET1K_V1``) for a model
  torchvision knows: loaded from torch's hub cache, downloaded when online; offline and not cached it is a one-line error
  saying the weights cannot be downloaded here.

Weights that do not fit are one line naming the first missing and unexpected keys and shape mismatches, with the likely
fix (``core.checkpoint.load_into``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn

from prunebench.core.checkpoint import load_into, state_dict_of
from prunebench.core.errors import PrunebenchError
from prunebench.core.io import load_state

ENUM_PATTERN = re.compile(r"^([A-Za-z0-9]+_Weights\.)?[A-Z][A-Z0-9_]*$")


def is_weights_name(source: str) -> bool:
    """``IMAGENET1K_V1`` / ``DEFAULT`` / ``ResNet18_Weights.IMAGENET1K_V2`` (and not an existing file)."""
    return bool(ENUM_PATTERN.match(str(source))) and not Path(str(source)).exists()


def read_weights(source: str | Path) -> dict[str, torch.Tensor]:
    """The state_dict in a ``.safetensors`` or ``torch.save`` file (weights only), unwrapped."""
    path = Path(source).expanduser()
    if not path.exists():
        raise PrunebenchError(f"checkpoint not found: {path}; give a state_dict file (.pt/.pth/.safetensors) or a "
                              "torchvision weights name such as IMAGENET1K_V1")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise PrunebenchError(f"{path} is a safetensors file; pip install safetensors") from None
        try:
            return state_dict_of(load_file(str(path)), str(path))
        except PrunebenchError:
            raise
        except Exception as e:  # noqa: BLE001 - corrupt file
            raise PrunebenchError(f"cannot read {path}: {str(e).splitlines()[0][:160]}; re-create it") from None
    return state_dict_of(load_state(path), str(path))


def torchvision_weights(enum_class: str | None, model_name: str, name: str) -> dict[str, torch.Tensor]:
    """A torchvision weights enum member's state_dict, from the hub cache or the network (never unpickled as code)."""
    import torchvision

    if enum_class is None:
        raise PrunebenchError(f"{model_name} has no torchvision weights; --weights {name} needs a torchvision model "
                              "(torchvision:NAME); give a state_dict file instead")
    member = name.split(".")[-1]
    try:
        weights = torchvision.models.get_weight(f"{enum_class}.{member}")
    except (ValueError, KeyError, AttributeError):
        enum = getattr(torchvision.models, enum_class, None)
        have = ", ".join(m.name for m in enum) if enum is not None else "none"
        raise PrunebenchError(f"{enum_class} has no member {member!r}; choose one of: {have}") from None
    try:
        state = torch.hub.load_state_dict_from_url(weights.url, progress=False, check_hash=True, weights_only=True)
    except Exception as e:  # noqa: BLE001 - URLError, socket errors, hash mismatch …
        reason = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        raise PrunebenchError(f"the {enum_class}.{weights.name} weights cannot be downloaded here ({reason}); download "
                              f"{weights.url} on a connected machine and pass the file: --weights PATH") from None
    return state_dict_of(state, f"{enum_class}.{weights.name}")


def torchvision_num_classes(enum_class: str | None, name: str) -> int | None:
    """How many classes a torchvision weights member was trained for (from its metadata), or None."""
    if enum_class is None or not is_weights_name(name):
        return None
    import torchvision

    try:
        weights = torchvision.models.get_weight(f"{enum_class}.{name.split('.')[-1]}")
    except (ValueError, KeyError, AttributeError):
        return None
    return len(weights.meta.get("categories") or []) or None


def load_weights(model: nn.Module, source: str | Path, model_name: str, enum_class: str | None = None,
                 classes_fix: Callable[[int], str] | None = None) -> nn.Module:
    """Load ``source`` (file or torchvision weights name) into ``model`` strictly; a misfit is a one-line error
    (``classes_fix(n)`` phrases the fix when only the classifier's ``n`` outputs differ)."""
    src = str(source)
    state = torchvision_weights(enum_class, model_name, src) if is_weights_name(src) else read_weights(src)
    return load_into(model, state, src, model_name, classes_fix=classes_fix)
