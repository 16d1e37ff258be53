"""Models that are not registered: ``torchvision:NAME``, ``timm:NAME`` and the user's own factory.

- ``torchvision:NAME``: every classification model of ``torchvision.models`` (``list_models(module=torchvision.models)``),
  built with ``get_model(NAME, weights=None, num_classes=N)``; googlenet and inception_v3 without their auxiliary heads
  (``aux_logits=False``: a training step needs one output). Default input 3×224×224 (inception_v3: 299).
- ``timm:NAME``: ``timm.create_model(NAME, pretrained=False, num_classes=N)`` when timm is installed
  (``pip install 'prunebench[timm]'``); default input from timm's pretrained config.
- ``path/to/file.py:factory`` or ``package.module:factory``: **imports and runs the user's code** (exactly as ``import``
  would), then calls ``factory(num_classes=N)``, which must return an ``nn.Module``. Default input 3×224×224.

A run takes the input size from its data, ``prunebench prune`` from ``--input-size``. None of these models has a hand-written
prune rule: ``prunebench.pruning.groups`` finds the prunable layers. A mistyped torchvision/timm name is a one-line error
suggesting close names (difflib); a factory that cannot be imported, is missing or raises is a one-line error naming it.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any, Callable

import torch.nn as nn

from prunebench.core.errors import PrunebenchError
from prunebench.models.spec import AUTO_RULE, ModelSpec

DEFAULT_SHAPE = (3, 224, 224)
TORCHVISION_KWARGS: dict[str, dict[str, Any]] = {"googlenet": {"aux_logits": False, "init_weights": True},
                                                 "inception_v3": {"aux_logits": False, "init_weights": True}}
TORCHVISION_SHAPE = {"inception_v3": (3, 299, 299)}


def torchvision_names() -> list[str]:
    """Names of torchvision's classification models (``torchvision.models.list_models``)."""
    import torchvision

    return list(torchvision.models.list_models(module=torchvision.models))


def _unknown(kind: str, name: str, known: list[str], how: str) -> PrunebenchError:
    close = difflib.get_close_matches(name, known, n=4, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else how
    return PrunebenchError(f"unknown {kind} model {name!r}; {hint}")


@functools.lru_cache(maxsize=None)
def resolve(name: str) -> ModelSpec:
    """The ModelSpec of ``torchvision:NAME``, ``timm:NAME``, ``file.py:factory`` or ``package.module:factory``."""
    kind, _, rest = name.partition(":")
    if kind == "torchvision":
        return _torchvision(name, rest)
    if kind == "timm":
        return _timm(name, rest)
    return _factory(name)


def _torchvision(full: str, arch: str) -> ModelSpec:
    import torchvision

    names = torchvision_names()
    if arch not in names:
        raise _unknown("torchvision", arch, names, "see torchvision.models.list_models()")
    kwargs = TORCHVISION_KWARGS.get(arch, {})

    def build(num_classes: int) -> nn.Module:
        return torchvision.models.get_model(arch, weights=None, num_classes=num_classes, **kwargs)

    enum = torchvision.models.get_model_weights(arch).__name__
    return ModelSpec(full, build, TORCHVISION_SHAPE.get(arch, DEFAULT_SHAPE), None, "torchvision",
                     f"torchvision {arch} (untrained unless --weights)", AUTO_RULE, "torchvision", enum)


def _timm(full: str, arch: str) -> ModelSpec:
    try:
        import timm
    except ImportError:
        raise PrunebenchError(f"{full} needs timm, which is not installed; pip install 'prunebench[timm]'") from None
    known = timm.list_models()
    if arch not in known:
        raise _unknown("timm", arch, known, "see timm.list_models()")
    shape = DEFAULT_SHAPE
    try:
        cfg = timm.models.get_pretrained_cfg(arch)
        if cfg is not None and getattr(cfg, "input_size", None):
            shape = tuple(int(d) for d in cfg.input_size)  # type: ignore[assignment]
    except Exception:  # noqa: BLE001 - only a default
        pass

    def build(num_classes: int) -> nn.Module:
        return timm.create_model(arch, pretrained=False, num_classes=num_classes)

    return ModelSpec(full, build, shape, None, "timm", f"timm {arch} (untrained unless --weights)", AUTO_RULE, "timm")


def _factory(full: str) -> ModelSpec:
    where, sep, fn_name = full.rpartition(":")
    if not sep or not where or not fn_name.isidentifier():
        raise PrunebenchError(f"model {full!r} is neither registered nor torchvision:NAME, timm:NAME, path/to/file.py:factory "
                              "or package.module:factory; see `prunebench list`")
    module = _import_file(where) if where.endswith(".py") or "/" in where else _import_module(where)
    factory = getattr(module, fn_name, None)
    if not callable(factory):
        raise PrunebenchError(f"{where} has no callable {fn_name!r}; define def {fn_name}(num_classes): -> nn.Module")

    def build(num_classes: int) -> nn.Module:
        return call_factory(full, factory, num_classes)

    doc = (factory.__doc__ or "").strip().splitlines()
    return ModelSpec(full, build, DEFAULT_SHAPE, None, "factory",
                     f"user factory {fn_name}" + (f": {doc[0]}" if doc else ""), AUTO_RULE, "factory")


def call_factory(full: str, factory: Callable[..., Any], num_classes: int) -> nn.Module:
    """``factory(num_classes=num_classes)``, the user's model factory ``full``. Raises :class:`PrunebenchError` if it
    raises or returns something other than an ``nn.Module``."""
    try:
        model = factory(num_classes=num_classes)
    except Exception as e:  # noqa: BLE001 - the user's code may raise anything
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else ""
        raise PrunebenchError(f"model factory {full} raised {type(e).__name__}: {first}; fix the factory (prunebench "
                              f"calls it as factory(num_classes={num_classes}))") from None
    if not isinstance(model, nn.Module):
        raise PrunebenchError(f"model factory {full} returned {type(model).__name__}, not a torch.nn.Module; return the "
                              "model")
    return model


def _import_file(path: str) -> Any:
    p = Path(path).expanduser()
    if not p.is_file():
        raise PrunebenchError(f"model file not found: {p}; give path/to/file.py:factory")
    key = "prunebench_user_" + hashlib.sha256(str(p.resolve()).encode()).hexdigest()[:12]
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, p)
    if spec is None or spec.loader is None:
        raise PrunebenchError(f"cannot import {p}; give a Python file")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)   # runs the user's code, as any import does
    except Exception as e:  # noqa: BLE001
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else ""
        raise PrunebenchError(f"importing {p} raised {type(e).__name__}: {first}; fix the file") from None
    sys.modules[key] = module
    return module


def _import_module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        raise PrunebenchError(f"cannot import module {name!r} ({e}); install it or put it on PYTHONPATH") from None
    except Exception as e:  # noqa: BLE001
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else ""
        raise PrunebenchError(f"importing {name} raised {type(e).__name__}: {first}; fix the module") from None
