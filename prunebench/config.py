"""The experiment plan as typed dataclasses: a TOML file fills them, CLI flags override single fields.

TOML layout (every key optional; unknown keys are an error that lists the valid ones)::

    model = "resnet56"            # top-level: ExperimentConfig's scalar fields
    data = "cifar10"
    seeds = [0]
    regimes = ["finetune", "scratch-e", "scratch-b"]
    [baseline]                    # TrainConfig: epochs, lr, momentum, weight_decay, batch_size, milestones, gamma, ...
    epochs = 160
    [finetune]                    # FinetuneConfig: epochs, lr
    [scratch]                     # ScratchConfig: b_max_epochs
    [bench]                       # BenchConfig: batch_sizes, threads, repeats, warmup, devices, runtimes
    [[prune]]                     # one table per method/preset/ratio to compare
    method = "l1-norm"
    preset = "B"
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from prunebench.errors import PrunebenchError
from prunebench.training import TrainConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REGIMES = ("finetune", "scratch-e", "scratch-b")
# Opt-in regimes (prunebench/regimes_extra.py): "lottery" = original init vs random init at lr 0.1 / 0.01;
# "scale-family" = the pruned width profile scaled to [scratch] scale_factors × its MACs, each trained from scratch.
EXTRA_REGIMES = ("lottery", "scale-family")
# [[prune]] options that make a `reduced` entry match another entry's pruned cost, and the cost each one matches
MATCH_OPTIONS = {"match_macs_of": "macs", "match_params_of": "params"}


@dataclass
class PruneSpec:
    method: str = "l1-norm"
    preset: str | None = None
    ratio: float | None = None
    round_to: int | None = None
    options: dict[str, Any] = field(default_factory=dict)   # method-specific knobs (e.g. sparsity λ), free-form
    name: str | None = None                                  # label override (two entries differing only in options)

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        if self.preset is None and self.ratio is None and self.match_of:  # `reduced` matched to another entry
            return f"{self.method}-match-{self.match_of}"
        amount = f"{self.preset}" if self.preset is not None else f"r{self.ratio:g}"
        return f"{self.method}-{amount}" + (f"-round{self.round_to}" if self.round_to else "")

    @property
    def match(self) -> tuple[str, str] | None:
        """(label, "macs" | "params") when a `reduced` entry says ``match_macs_of`` / ``match_params_of``."""
        for key, metric in MATCH_OPTIONS.items():
            if self.options.get(key):
                return str(self.options[key]), metric
        return None

    @property
    def match_of(self) -> str | None:
        """The label a `reduced` entry matches in cost, if any."""
        return self.match[0] if self.match else None


@dataclass
class FinetuneConfig:
    epochs: int = 40
    lr: float = 0.001


@dataclass
class ScratchConfig:
    b_max_epochs: int | None = None   # cap on Scratch-B epochs (the paper caps only ImageNet)
    scale_factors: tuple[float, ...] = (0.5, 0.75, 1.25)   # regime scale-family: members at these × the pruned MACs


@dataclass
class BenchConfig:
    batch_sizes: tuple[int, ...] = (1, 64)
    threads: int = 1
    warmup: int = 10
    repeats: int = 50
    devices: tuple[str, ...] = ("cpu", "cuda")          # cuda is skipped (with the reason) where there is no GPU
    runtimes: tuple[str, ...] = ("pytorch", "onnxruntime")


@dataclass
class ExperimentConfig:
    model: str = "resnet56"
    data: str = "cifar10"
    data_root: str | None = None
    train_subset: int | None = None
    test_subset: int | None = None
    seeds: tuple[int, ...] = (0,)
    device: str = "auto"
    regimes: tuple[str, ...] = REGIMES
    baseline_checkpoint: str | None = None   # a trained dense state_dict: skip baseline training
    baseline: TrainConfig = field(default_factory=TrainConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    scratch: ScratchConfig = field(default_factory=ScratchConfig)
    bench: BenchConfig = field(default_factory=BenchConfig)
    prune: list[PruneSpec] = field(default_factory=lambda: [PruneSpec("l1-norm", preset="B")])

    def validate(self) -> "ExperimentConfig":
        from prunebench.models import MODELS
        from prunebench.pruning import METHODS

        MODELS.get(self.model)
        bad = [r for r in self.regimes if r not in REGIMES + EXTRA_REGIMES]
        if bad:
            raise PrunebenchError(f"unknown regime {bad[0]!r}; choose from {', '.join(REGIMES + EXTRA_REGIMES)}")
        if not self.prune:
            raise PrunebenchError("the plan has no [[prune]] entry; add one (e.g. method = \"l1-norm\", ratio = 0.5)")
        for p in self.prune:
            METHODS.get(p.method)
            if p.match_of is not None:  # `reduced` at another entry's cost: that entry must come first
                earlier = [q.label for q in self.prune[:self.prune.index(p)]]
                if p.method != "reduced" or p.match_of not in earlier or p.preset is not None or p.ratio is not None:
                    raise PrunebenchError(f"[[prune]] {p.method}: match_macs_of/match_params_of is for method = "
                                          f"\"reduced\" without preset/ratio, naming an earlier entry's label "
                                          f"(earlier: {', '.join(earlier) or 'none'})")
                continue
            if (p.preset is None) == (p.ratio is None):
                raise PrunebenchError(f"[[prune]] {p.method}: give exactly one of preset or ratio")
        labels = [p.label for p in self.prune]
        if len(set(labels)) != len(labels):
            raise PrunebenchError("two [[prune]] entries are identical; remove the duplicate")
        if not self.seeds:
            raise PrunebenchError("seeds is empty; give at least one seed")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


QUICKSTART: dict[str, Any] = {
    # CIFAR-10, ResNet-20, L1-norm halving every block's inner width, all four variants; sized so that the whole run ends
    # in under 15 minutes on a 2-core CPU (reports/quickstart: 7.6 min on a quiet machine).
    "model": "resnet20",
    "data": "cifar10",
    "train_subset": 8000,
    "test_subset": 2000,
    "seeds": [0],
    "baseline": {"epochs": 6},
    "finetune": {"epochs": 2},
    "bench": {"batch_sizes": [1, 64], "threads": 1, "warmup": 5, "repeats": 30},
    "prune": [{"method": "l1-norm", "ratio": 0.5}],
}


def from_dict(cls: type, data: Mapping[str, Any], path: str = "") -> Any:
    """Build dataclass ``cls`` from a mapping; unknown keys and wrong types are one-line errors.

    ``path`` is the TOML section ("" for the top level, "baseline" for [baseline]) used in messages."""
    where = f"[{path}]" if path else "config"
    if not isinstance(data, Mapping):
        raise PrunebenchError(f"{where} must be a table, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        name = key.replace("-", "_")
        if name not in names:
            raise PrunebenchError(f"unknown key {key!r} in {where}; valid keys: {', '.join(names)}")
        kwargs[name] = _coerce(hints[name], value, f"{path}.{key}" if path else key)
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, where)
    if dataclasses.is_dataclass(tp):
        return value if isinstance(value, tp) else from_dict(tp, value, where)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            value = [value]
        item = args[0] if args else Any
        items = [_coerce(item, v, where) for v in value]
        return tuple(items) if origin is tuple else items
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp in (int, str, bool) and not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
        raise PrunebenchError(f"{where} must be {tp.__name__}, got {value!r}")
    return value


def load_config(path: str | Path | None, overrides: Mapping[str, Any] | None = None) -> ExperimentConfig:
    """The quickstart (no path) or a TOML plan, then ``overrides`` (dotted keys, e.g. ``baseline.epochs``)."""
    if path is None:
        data: dict[str, Any] = _deep_copy(QUICKSTART)
    else:
        p = Path(path)
        if not p.exists():
            raise PrunebenchError(f"config file not found: {p}")
        try:
            data = tomllib.loads(p.read_text())
        except tomllib.TOMLDecodeError as e:
            raise PrunebenchError(f"{p} is not valid TOML: {e}") from None
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        *parents, leaf = key.split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return from_dict(ExperimentConfig, data).validate()


def _deep_copy(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _deep_copy(v) for k, v in d.items()}
    if isinstance(d, list):
        return [_deep_copy(v) for v in d]
    return d
