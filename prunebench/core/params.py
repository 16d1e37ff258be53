"""Typed parameters with help text: the one mechanism behind the plan, method options and CLI flags.

A parameter is a dataclass field made with :func:`param`, which stores its meaning, unit and (optionally) a TOML key that
differs from the Python name (``lambda`` → ``lam``). :func:`from_mapping` builds such a dataclass from a TOML/JSON mapping
— unknown keys and wrong types are one-line :class:`~prunebench.core.errors.PrunebenchError` s listing what is valid —
and :func:`help_text` renders a flag's help from the same metadata, so the plan, ``prunebench list --method`` and
``--help`` cannot disagree (OpenLTH keeps hyper-parameters with their help text in its lowest layer the same way).

Torch-free on purpose: ``prunebench run --help`` imports only this layer and ``prunebench.config``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import MISSING, Field
from typing import Any, Mapping

from prunebench.core.errors import PrunebenchError


def param(default: Any = MISSING, help: str = "", *, unit: str = "", key: str | None = None,  # noqa: A002
          choices: tuple[Any, ...] | None = None, default_factory: Any = MISSING) -> Any:
    """A dataclass field carrying its help text. ``unit`` is shown in brackets; ``key`` is the TOML/CLI name if it is
    not the field name; ``choices`` restricts the value (checked by :func:`from_mapping`)."""
    meta = {"help": help, "unit": unit, "key": key, "choices": choices}
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def key_of(f: Field) -> str:
    """The name a plan or a flag uses for field ``f``."""
    return f.metadata.get("key") or f.name


def default_of(f: Field) -> Any:
    """The default of dataclass field ``f`` (calling its default factory), or ``MISSING`` if it has none."""
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return MISSING


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, (tuple, list)):
        return " ".join(_show(v) for v in value) if value else "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def help_text(f: Field, *, default: Any = MISSING) -> str:
    """``meaning [unit] (default: …)`` for a flag; ``default`` overrides the field's own (e.g. the quickstart's)."""
    text = f.metadata.get("help") or f.name.replace("_", " ")
    unit = f.metadata.get("unit")
    if unit:
        text += f" [{unit}]"
    choices = f.metadata.get("choices")
    if choices:
        text += f"; one of {', '.join(map(str, choices))}"
    value = default_of(f) if default is MISSING else default
    if value is not MISSING and not dataclasses.is_dataclass(value) and "default" not in text:   # stated once
        text += f" (default: {_show(value)})"
    return text.replace("%", "%%")   # argparse formats help strings with %


def describe(cls: type) -> list[tuple[str, str, str]]:
    """(key, type, help) for every field of dataclass ``cls``: what ``prunebench list --method NAME`` prints."""
    hints = typing.get_type_hints(cls)
    return [(key_of(f), type_name(hints[f.name]), help_text(f).replace("%%", "%")) for f in dataclasses.fields(cls)]


def type_name(tp: Any) -> str:
    """A human name for type annotation ``tp`` for help text (``int | none``, ``list of float``, ``table``, literals).
    """
    origin, args = typing.get_origin(tp), [a for a in typing.get_args(tp) if a is not type(None)]
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in args) + (" | none" if type(None) in typing.get_args(tp) else "")
    if origin in (tuple, list):
        return f"list of {type_name(args[0])}" if args else "list"
    if origin is dict:
        return "table"
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


def from_mapping(cls: type, data: Mapping[str, Any], section: str = "", what: str = "the plan", noun: str = "key") -> Any:
    """Build dataclass ``cls`` from ``data``; unknown keys, wrong types and values outside ``choices`` are one-line
    errors naming the ``section`` (e.g. ``baseline`` → ``[baseline]``, or ``what`` at the top level) and the valid keys."""
    where = f"[{section}]" if section else what
    if not isinstance(data, Mapping):
        raise PrunebenchError(f"{where} must be a table, got {type(data).__name__} {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {key_of(f): f for f in dataclasses.fields(cls)}
    by_name = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        f = fields.get(key) or fields.get(key.replace("-", "_")) or by_name.get(key.replace("-", "_"))
        if f is None:
            raise PrunebenchError(f"unknown {noun} {key!r} in {where}; valid {noun}s: {', '.join(fields)}")
        label = f"{section}.{key}" if section else key
        kwargs[f.name] = coerce(hints[f.name], value, label)
        choices = f.metadata.get("choices")
        if choices and kwargs[f.name] not in choices:
            raise PrunebenchError(f"{label} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return cls(**kwargs)


def coerce(tp: Any, value: Any, where: str) -> Any:
    """``value`` as type ``tp`` (int → float is allowed, str → number is not): a TOML ``lr = "0.1"`` is an error."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for inner in (a for a in args if a is not type(None)):
            try:
                return coerce(inner, value, where)
            except PrunebenchError as e:
                errors.append(e)
        raise errors[0]
    if origin is typing.Literal:
        if value not in args:
            raise PrunebenchError(f"{where} must be one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        return value if isinstance(value, tp) else from_mapping(tp, value, where)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            value = [value]
        item = args[0] if args else Any
        items = [coerce(item, v, where) for v in value]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise PrunebenchError(f"{where} must be a table, got {value!r}")
        return dict(value)
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise PrunebenchError(f"{where} must be a number, got {value!r}")
    if tp is int and (isinstance(value, bool) or not isinstance(value, int)):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise PrunebenchError(f"{where} must be an integer, got {value!r}")
    if tp in (str, bool) and not isinstance(value, tp):
        raise PrunebenchError(f"{where} must be {'text' if tp is str else 'true or false'}, got {value!r}")
    return value


def to_mapping(obj: Any) -> dict[str, Any]:
    """The inverse of :func:`from_mapping` (TOML keys, tuples as lists): what records and digests store."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            value = to_mapping(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[key_of(f)] = value
    return out
