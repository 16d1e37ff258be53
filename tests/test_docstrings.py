"""Every public function, class and method of the package has a docstring (issue #8 item 7), and no docstring carries
a timing figure (timings are measured and live in the generated docs/methods.md, where they cannot drift).

``inspect.getdoc`` inherits a documented base method's docstring, so an override of ``forward``, a Regime hook or a
Method's interface needs no repeated text. Every module must import: optional extras (ray, timm, openvino, tensorrt)
are imported lazily, inside the functions that need them.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import prunebench

# a number followed by a time unit: "3 ms", "12us", "1.5 s", "0.8s", "20 seconds", "2 min", "3 hours". A unit word on its
# own ("milliseconds", "time(s)") is fine, and so is a plural after a number ("VGG-16s", "conv1s"): a bare "s" or "h"
# counts only after a space or a decimal number.
TIMING = re.compile(r"\b\d+(\.\d+)?\s*(ms|us|µs|sec|secs|seconds?|minutes?|mins?|hours?)\b"
                    r"|\b\d+(\.\d+)?\s+[sh]\b|\b\d+\.\d+[sh]\b")


# ``python -m prunebench`` runs the CLI on import (and defines nothing); it is the only module not imported here
NOT_IMPORTED = {"prunebench.__main__"}


def _modules() -> list:
    names = [prunebench.__name__] + [info.name for info in
                                     pkgutil.walk_packages(prunebench.__path__, prefix=prunebench.__name__ + ".")]
    # an import error fails here, naming the module
    return [importlib.import_module(name) for name in sorted(names) if name not in NOT_IMPORTED]


def _public(module) -> list[tuple[str, object]]:
    """(``module:qualname``, object) for every public function, class and class member defined in ``module``."""
    found = []
    for name, obj in sorted(vars(module).items()):
        if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
            continue
        if inspect.isfunction(obj):
            found.append((f"{module.__name__}:{obj.__qualname__}", obj))
        elif inspect.isclass(obj):
            found.append((f"{module.__name__}:{obj.__qualname__}", obj))
            fields = getattr(obj, "__dataclass_fields__", {})
            for attr, member in sorted(vars(obj).items()):
                if attr.startswith("_") or attr in fields:   # a dataclass field's default (a lambda) is no method
                    continue
                if isinstance(member, (classmethod, staticmethod)) or inspect.isfunction(member) \
                        or isinstance(member, property):
                    # getattr resolves classmethod/staticmethod; getdoc on it walks the MRO for an inherited docstring
                    target = getattr(obj, attr) if not isinstance(member, property) else member
                    found.append((f"{module.__name__}:{obj.__qualname__}.{attr}", (obj, attr, target)))
    return found


def _doc(obj) -> str | None:
    if isinstance(obj, tuple):
        cls, attr, target = obj
        if isinstance(target, property):
            doc = target.__doc__
            if not doc:  # a property overriding a documented base property
                for base in cls.__mro__[1:]:
                    inherited = base.__dict__.get(attr)
                    if inherited is not None and getattr(inherited, "__doc__", None):
                        doc = inherited.__doc__
                        break
            return inspect.cleandoc(doc) if doc else None
        return inspect.getdoc(target)
    if inspect.isclass(obj):
        # a public class says what it is itself: getdoc would fall back to a base class's docstring (Exception's,
        # Protocol's), and a dataclass or NamedTuple without one gets a generated "Name(field: type, ...)"
        own = obj.__dict__.get("__doc__")
        if not own or re.fullmatch(re.escape(obj.__name__) + r"\(.*\)", own, re.S):
            return None
        return inspect.cleandoc(own)
    return inspect.getdoc(obj)


def _everything() -> list[tuple[str, object]]:
    found = []
    for module in _modules():
        found += _public(module)
    return found


def test_every_module_imports_without_optional_extras() -> None:
    assert len(_modules()) > 50


def test_every_public_function_class_and_method_has_a_docstring() -> None:
    missing = [name for name, obj in _everything() if not (_doc(obj) or "").strip()]
    assert not missing, f"{len(missing)} public names without a docstring:\n" + "\n".join(missing)


def test_no_docstring_carries_a_timing_figure() -> None:
    docs = [(module.__name__, module.__doc__ or "") for module in _modules()]
    docs += [(name, _doc(obj) or "") for name, obj in _everything()]
    hits = [f"{name}: {m.group(0)!r}" for name, doc in docs for m in TIMING.finditer(doc)]
    assert not hits, "timing figures belong in docs/methods.md (generated), not in docstrings:\n" + "\n".join(hits)
