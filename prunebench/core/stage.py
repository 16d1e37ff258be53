"""Stages and the stage graph: the unit of work of a run, its identity, and whether it is done.

A :class:`Stage` is pure data — a kind (``baseline``, ``prune``, ``train``, ``measure``, ``latency``, ``report``, …),
one output directory, the record file it writes *last*, the plan fields it depends on (``params``) and the stages whose
outputs it reads (``inputs``). Because it is data (JSON-able, picklable) it can run in this process, in a worker
process or on a cluster node: an executor looks its implementation up by ``kind``.

Identity: a stage's **digest** hashes its kind, its params and its inputs' digests (a Merkle chain), so it is known
from the plan alone, before anything runs. The record a finished stage writes carries that digest; on a rerun a stage is

- ``done``    — its record exists and carries the same digest: skipped;
- ``pending`` — no record: it runs (a training stage resumes from its per-epoch checkpoint);
- ``stale``   — a record from a different plan (a changed field, or a changed input upstream): it must run again.

Changing the fine-tune learning rate therefore makes exactly the fine-tune stages (and what is computed from them)
stale, and leaves the baseline done. Torch-free, so ``--dry-run`` and ``--help`` stay light.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from prunebench.core.errors import PrunebenchError

DONE, PENDING, STALE = "done", "pending", "stale"


@dataclass(frozen=True)
class Stage:
    """One unit of work. ``directory`` is relative to the run directory; ``record`` is a file name inside it."""

    key: str                                   # unique in the graph, e.g. "seed0/l1-norm-r0.5/scratch-b"
    kind: str                                  # selects the implementation
    directory: str
    record: str
    params: Mapping[str, Any] = field(default_factory=dict)   # every plan field the stage depends on (JSON-able)
    inputs: tuple[str, ...] = ()               # keys of the stages whose outputs it reads
    title: str = ""                            # one line for logs and --dry-run
    epochs: float | None = None                # training epochs (estimate where it depends on a prune); None: no training
    all_ranks: bool = False                    # under torchrun every rank runs it (DDP training); else rank 0 alone
    derived: bool = False                      # cheap to recompute (measurements, report): rerun when stale, no question
    always: bool = False                       # runs on every invocation (the report)
    owns_directory: bool = False               # the directory is this stage's alone: cleared before a stale rerun
    exclusive: bool = False                    # runs alone under concurrent executors (latency measurement)
    macs_ratio: float | None = None            # the trained network's MACs / the dense model's (time estimates only)

    def record_path(self, out: Path) -> Path:
        """The record file this stage writes last: ``out / directory / record``."""
        return Path(out) / self.directory / self.record


def canonical(obj: Any) -> str:
    """Deterministic JSON (sorted keys, no whitespace): what digests hash."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


class Graph:
    """Stages in insertion order, which is a topological order: a stage's inputs must be added before it."""

    def __init__(self) -> None:
        self.stages: dict[str, Stage] = {}
        self._digests: dict[str, str] = {}

    def add(self, stage: Stage) -> Stage:
        """Add ``stage`` and return it. Raises ``ValueError`` if its key is taken or it reads a stage not added yet."""
        if stage.key in self.stages:
            raise ValueError(f"stage {stage.key!r} added twice")
        missing = [k for k in stage.inputs if k not in self.stages]
        if missing:
            raise ValueError(f"stage {stage.key!r} reads {missing[0]!r}, which is not in the graph (add it first)")
        self.stages[stage.key] = stage
        return stage

    def __iter__(self) -> Iterator[Stage]:
        return iter(self.stages.values())

    def __len__(self) -> int:
        return len(self.stages)

    def __getitem__(self, key: str) -> Stage:
        return self.stages[key]

    def digest(self, key: str) -> str:
        """The stage's identity: 16 hex digits of SHA-256 over its kind, params and its inputs' digests (a Merkle
        chain)."""
        if key not in self._digests:
            s = self.stages[key]
            payload = {"kind": s.kind, "params": s.params, "inputs": [self.digest(k) for k in s.inputs]}
            self._digests[key] = hashlib.sha256(canonical(payload).encode()).hexdigest()[:16]
        return self._digests[key]

    def downstream(self, keys: set[str]) -> set[str]:
        """``keys`` and every stage that reads them, directly or not."""
        out = set(keys)
        for s in self:
            if any(k in out for k in s.inputs):
                out.add(s.key)
        return out

    def ready(self, finished: set[str], started: set[str]) -> list[Stage]:
        """Stages not started whose inputs have all finished (for concurrent executors)."""
        return [s for s in self if s.key not in started and all(k in finished for k in s.inputs)]


def stamp(graph: Graph, stage: Stage) -> dict[str, Any]:
    """The ``stage`` entry of a record: identity and the params it was computed from (shown when it goes stale)."""
    return {"key": stage.key, "kind": stage.kind, "digest": graph.digest(stage.key), "params": stage.params}


def read_stamp(path: Path) -> dict[str, Any] | None:
    """The stamp of an existing record, ``{}`` for a record without one (an older prunebench, or unreadable), None if
    there is no record."""
    if not path.exists():
        return None
    try:
        rec = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    stamp_ = rec.get("stage") if isinstance(rec, dict) else None
    return stamp_ if isinstance(stamp_, dict) else {}


def state(graph: Graph, out: Path, stage: Stage) -> str:
    """``done``, ``pending`` or ``stale`` for ``stage`` in run directory ``out`` (an ``always`` stage is never done)."""
    found = read_stamp(stage.record_path(out))
    if found is None:
        return PENDING
    return DONE if found.get("digest") == graph.digest(stage.key) and not stage.always else STALE


def states(graph: Graph, out: Path) -> dict[str, str]:
    """:func:`state` of every stage of ``graph``, by key."""
    return {s.key: state(graph, out, s) for s in graph}


def changes(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Human list of what differs between two params mappings: ``recipe.lr 0.001 → 0.01``."""
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k, "—"), new.get(k, "—")
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += changes(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k} {canonical(a)} → {canonical(b)}")
    return out


def why_stale(graph: Graph, out: Path, stage: Stage) -> str:
    """One phrase: which of the stage's own params changed, or that an input changed."""
    found = read_stamp(stage.record_path(out)) or {}
    if "params" not in found:
        return "its record predates stage digests (written by an older prunebench)"
    diff = changes(found["params"], stage.params)
    if diff:
        return "; ".join(diff[:3]) + (f"; {len(diff) - 3} more" if len(diff) > 3 else "")
    return "an input stage changed"


def refuse_unless(allowed: bool, graph: Graph, out: Path, stale: list[Stage]) -> None:
    """Finished work is never discarded silently: without ``allowed`` (``--rerun-changed``) stale stages that are not
    cheap to recompute are a one-line error listing them."""
    costly = [s for s in stale if not s.derived]
    if costly and not allowed:
        first = costly[0]
        raise PrunebenchError(
            f"{out} holds {len(costly)} finished stage(s) computed from a different plan, e.g. {first.key} "
            f"({why_stale(graph, out, first)}); pass --rerun-changed to recompute them (the rest is kept), or use "
            "another --out")
