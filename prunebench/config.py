"""The experiment plan as typed dataclasses: a TOML file fills them, CLI flags override single fields.

TOML layout (every key optional; unknown keys are an error that lists the valid ones)::

    model = "resnet56"            # top-level: ExperimentConfig's scalar fields
    data = "cifar10"
    seeds = [0]
    regimes = ["finetune", "scratch-e", "scratch-b"]
    [baseline]                    # TrainConfig: epochs, lr, momentum, weight_decay, batch_size, milestones, gamma, ...
    epochs = 160
    [finetune]                    # FinetuneConfig: epochs, lr
    [scratch]                     # ScratchConfig: b_max_epochs, scale_factors
    [bench]                       # BenchConfig: batch_sizes, threads, repeats, warmup, devices, runtimes
    [export]                      # ExportConfig: int8, fp16, calibration, calibration_images, activations, ...
    [[prune]]                     # one table per method/preset/ratio to compare
    method = "l1-norm"
    preset = "B"

Every field's meaning, unit and default live in its :func:`~prunebench.core.params.param` metadata: the CLI's ``--help``
is generated from it. This module checks what can be checked without the registries (types, ranges, duplicates);
``prunebench.pipeline.plan`` checks names against them (models, methods, presets, options, regimes, runtimes). Neither
imports torch.
"""

from __future__ import annotations

import dataclasses
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping

from prunebench.core.errors import PrunebenchError
from prunebench.core.params import from_mapping, param, to_mapping

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# [[prune]] options that make a `reduced` entry match another entry's pruned cost, and the cost each one matches
MATCH_OPTIONS = {"match_macs_of": "macs", "match_params_of": "params"}
DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")

# Named training presets (``recipe = "imagenet"`` at the top of a plan, or ``--recipe imagenet``): each fills the plan
# keys it lists unless the plan (or a flag) sets them itself — explicit keys win. "cifar" is the dataclass defaults (the
# paper's CIFAR protocol). "imagenet" is the paper's ImageNet schedule (Liu et al. 2019, code: 90 epochs, batch 256, SGD
# lr 0.1, momentum 0.9, wd 1e-4, ×0.1 every 30 epochs; fine-tuning 20 epochs at a constant 0.001 (L1-norm); Scratch-B
# capped at 180 epochs). Applied by :func:`load_config` (:func:`apply_recipe`).
RECIPES: dict[str, dict[str, dict[str, Any]]] = {
    "cifar": {},
    "imagenet": {
        "baseline": {"epochs": 90, "batch_size": 256, "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4,
                     "milestones": [1 / 3, 2 / 3], "gamma": 0.1},
        "finetune": {"epochs": 20, "lr": 0.001},
        "scratch": {"b_max_epochs": 180},
    },
}
TRANSFORMS = ("auto", "cifar", "imagenet")
STORAGES = ("auto", "memory", "stream")


@dataclass
class TrainConfig:
    """One training recipe (defaults: the paper's CIFAR baseline, SGD 0.1 / 160 epochs / ×0.1 at 50 % and 75 %)."""

    epochs: int = param(160, "training epochs", unit="epochs")
    lr: float = param(0.1, "initial learning rate (SGD)")
    momentum: float = param(0.9, "SGD momentum")
    weight_decay: float = param(1e-4, "L2 weight decay")
    batch_size: int = param(64, "images per training step (per process under torchrun)", unit="images")
    milestones: tuple[float, ...] = param((0.5, 0.75), "fractions of the epochs at which the lr is multiplied by gamma")
    gamma: float = param(0.1, "lr factor at each milestone")
    nesterov: bool = param(False, "Nesterov momentum")
    precision: Literal["auto", "fp32", "bf16"] = param(
        "auto", "training arithmetic: bf16 autocast + channels_last, or fp32; auto = bf16 on CUDA and on CPUs with "
                "native bf16 (AVX512-BF16 / AMX), fp32 elsewhere (the choice is recorded)")
    compile: bool = param(False, "torch.compile the training step (not faster on the CPUs measured so far)")
    num_workers: int = param(0, "DataLoader worker processes (streamed datasets only)", unit="processes")

    def milestone_epochs(self) -> list[int]:
        """The epochs at which the step schedule multiplies the lr by ``gamma``: ``milestones`` (fractions) ×
        ``epochs``, sorted."""
        return sorted({int(self.epochs * m) for m in self.milestones if 0 < int(self.epochs * m) < self.epochs})

    def problems(self, section: str) -> list[str]:
        """Every problem of this training section (epochs, lr, batch size, momentum, weight decay, gamma, milestones,
        workers), prefixed with ``section``; [] if valid."""
        out = []
        if self.epochs < 1:
            out.append(f"{section}.epochs must be ≥ 1, got {self.epochs}")
        if not self.lr > 0:
            out.append(f"{section}.lr must be > 0, got {self.lr}")
        if self.batch_size < 1:
            out.append(f"{section}.batch_size must be ≥ 1, got {self.batch_size}")
        if not 0 <= self.momentum < 1:
            out.append(f"{section}.momentum must be in [0, 1), got {self.momentum}")
        if self.weight_decay < 0:
            out.append(f"{section}.weight_decay must be ≥ 0, got {self.weight_decay}")
        if not self.gamma > 0:
            out.append(f"{section}.gamma must be > 0, got {self.gamma}")
        if any(not 0 < m < 1 for m in self.milestones):
            out.append(f"{section}.milestones must be fractions in (0, 1), got {list(self.milestones)}")
        if self.num_workers < 0:
            out.append(f"{section}.num_workers must be ≥ 0, got {self.num_workers}")
        return out


@dataclass
class PruneSpec:
    """One [[prune]] entry: a method and how much it prunes."""

    method: str = param("l1-norm", "pruning method (see `prunebench list`)")
    preset: str | None = param(None, "a paper preset of the method for the model (see `prunebench list`)")
    ratio: float | None = param(None, "how much to prune, in [0, 1); its meaning per method: `prunebench list`")
    round_to: int | None = param(None, "round kept widths up to a multiple of this (8 or 16 suit fast kernels)",
                                 unit="channels")
    options: dict[str, Any] = param(help="method options (`prunebench list --method NAME` lists them)",
                                    default_factory=dict)
    name: str | None = param(None, "label override (two entries that differ only in options)")
    target_latency_ms: float | None = param(
        None, "instead of preset/ratio: prune to this latency measured on `target` (widths per group from a measured "
              "latency table; importance-based methods)", unit="milliseconds")
    target_speedup: float | None = param(
        None, "instead of preset/ratio: prune to this measured speed-up over the dense model on `target`")
    target: str = param("onnxruntime:cpu:threads=1:batch=1",
                        "with target_latency_ms/target_speedup: where latency is measured, RUNTIME:DEVICE[:threads=N]"
                        "[:batch=N]")

    @property
    def budget(self) -> bool:
        """True when the entry prunes to a latency budget (``target_latency_ms`` or ``target_speedup``)."""
        return self.target_latency_ms is not None or self.target_speedup is not None

    @property
    def label(self) -> str:
        """The entry's directory name: ``name`` if given, else ``<method>-<preset>`` or ``<method>-r<ratio>``
        (``-round<N>`` appended), or ``<method>-match-<label>`` for a matched ``reduced`` entry."""
        if self.name:
            return self.name
        if self.preset is None and self.ratio is None and self.match_of:  # `reduced` matched to another entry
            return f"{self.method}-match-{self.match_of}"
        if self.budget:
            amount = (f"lat{self.target_latency_ms:g}ms" if self.target_latency_ms is not None
                      else f"x{self.target_speedup:g}")
        else:
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

    def problems(self, where: str) -> list[str]:
        """Every problem of this [[prune]] entry (one amount, ratio in [0, 1), targets positive, round_to ≥ 1), prefixed with
        ``where``."""
        out = []
        amounts = [k for k in ("preset", "ratio", "target_latency_ms", "target_speedup") if getattr(self, k) is not None]
        if self.match_of is None and len(amounts) != 1:
            out.append(f"{where}: give exactly one of preset, ratio, target_latency_ms or target_speedup")
        if self.target_latency_ms is not None and not (math.isfinite(self.target_latency_ms)
                                                       and self.target_latency_ms > 0):
            out.append(f"{where}: target_latency_ms must be a finite number > 0, got {self.target_latency_ms}")
        if self.target_speedup is not None and not (math.isfinite(self.target_speedup) and self.target_speedup > 1):
            out.append(f"{where}: target_speedup must be a finite number > 1, got {self.target_speedup}")
        if self.ratio is not None and not 0 <= self.ratio < 1:
            out.append(f"{where}: ratio must be in [0, 1), got {self.ratio}")
        if self.round_to is not None and self.round_to < 1:
            out.append(f"{where}: round_to must be ≥ 1, got {self.round_to}")
        return out


@dataclass
class FinetuneConfig:
    """The paper's fine-tuning: inherited weights, constant lr."""

    epochs: int = param(40, "fine-tuning epochs", unit="epochs")
    lr: float = param(0.001, "constant fine-tuning learning rate")

    def problems(self) -> list[str]:
        """Every problem of the [finetune] section (epochs, lr), one line each; [] if valid."""
        out = [] if self.epochs >= 1 else [f"finetune.epochs must be ≥ 1, got {self.epochs}"]
        return out + ([] if self.lr > 0 else [f"finetune.lr must be > 0, got {self.lr}"])


@dataclass
class ScratchConfig:
    """Training from scratch (Scratch-E / Scratch-B and the scale family)."""

    b_max_epochs: int | None = param(None, "cap on Scratch-B epochs (the paper caps only ImageNet)", unit="epochs")
    scale_factors: tuple[float, ...] = param((0.5, 0.75, 1.25), "regime scale-family: members at these × the pruned "
                                             "model's MACs")

    def problems(self) -> list[str]:
        """Every problem of the [scratch] section (b_max_epochs, scale_factors), one line each; [] if valid."""
        out = []
        if self.b_max_epochs is not None and self.b_max_epochs < 1:
            out.append(f"scratch.b_max_epochs must be ≥ 1, got {self.b_max_epochs}")
        if any(not f > 0 for f in self.scale_factors):
            out.append(f"scratch.scale_factors must be > 0, got {list(self.scale_factors)}")
        return out


@dataclass
class BenchConfig:
    """Latency measurement (prunebench.bench.harness): every variant of a seed, interleaved."""

    batch_sizes: tuple[int, ...] = param((1, 64), "batch sizes to time", unit="images")
    threads: int = param(1, "CPU threads (torch.set_num_threads; ONNX Runtime intra-op)", unit="threads")
    warmup: int = param(10, "minimum warm-up calls per variant (warm-up continues until stable)", unit="calls")
    repeats: int = param(50, "interleaved timing rounds at batch ≤ 8 (fewer at large batch, never below 10)",
                         unit="rounds")
    devices: tuple[str, ...] = param(("cpu", "cuda"), "devices to time on; cuda is skipped (with the reason) where "
                                     "there is no GPU")
    runtimes: tuple[str, ...] = param(("pytorch", "onnxruntime"), "runtimes to time (see `prunebench bench --help`)")

    def problems(self) -> list[str]:
        """Every problem of the [bench] section (batch sizes, threads, repeats, warmup, devices, runtimes), one line
        each; [] if valid."""
        out = []
        if not self.batch_sizes or any(b < 1 for b in self.batch_sizes):
            out.append(f"bench.batch_sizes must be ≥ 1, got {list(self.batch_sizes)}")
        if len(set(self.batch_sizes)) != len(self.batch_sizes):
            out.append(f"bench.batch_sizes lists a batch size twice: {list(self.batch_sizes)}")
        for name in ("threads", "repeats"):
            if getattr(self, name) < 1:
                out.append(f"bench.{name} must be ≥ 1, got {getattr(self, name)}")
        if self.warmup < 0:
            out.append(f"bench.warmup must be ≥ 0, got {self.warmup}")
        bad = [d for d in self.devices if d not in ("cpu", "cuda")]
        if bad or not self.devices:
            out.append(f"bench.devices takes cpu and/or cuda, got {list(self.devices)}")
        if not self.runtimes:
            out.append("bench.runtimes is empty; name at least one runtime")
        return out


CALIBRATIONS = ("minmax", "entropy", "percentile")
ACTIVATIONS = ("uint8", "int8", "int8-symmetric")


@dataclass
class ExportConfig:
    """What ships besides the fp32 ONNX file (prunebench.export.quantize): an INT8 and/or FP16 copy of every variant,
    each verified and timed in the same interleaved latency run as the fp32 files."""

    int8: bool = param(False, "also write model.int8.onnx per variant: static QDQ INT8 (ONNX Runtime quantize_static), "
                              "per-channel weights, calibrated on training images")
    fp16: bool = param(False, "also write model.fp16.onnx per variant (fp32 inputs/outputs), for GPU runtimes")
    calibration: str = param("entropy", "how INT8 activation ranges are chosen from the calibration images",
                             choices=CALIBRATIONS)
    calibration_images: int = param(256, "training images the INT8 calibration sees (a fixed random sample, no "
                                         "augmentation)", unit="images")
    activations: str = param("uint8", "INT8 activation encoding: uint8 (asymmetric; ONNX Runtime's fast x86 CPU "
                                      "kernels), int8 (asymmetric) or int8-symmetric (zero point 0: what TensorRT's "
                                      "explicit quantization needs)", choices=ACTIVATIONS)
    int8_tolerance: float = param(1.0, "INT8 top-1 may fall this far below the fp32 file's (ONNX Runtime, test split) "
                                       "before the report flags it", unit="points")

    def problems(self) -> list[str]:
        """Every problem of the [export] section (calibration images, INT8 tolerance), one line each; [] if valid."""
        out = []
        if self.calibration_images < 1:
            out.append(f"export.calibration_images must be ≥ 1, got {self.calibration_images}")
        if not self.int8_tolerance >= 0:
            out.append(f"export.int8_tolerance must be ≥ 0, got {self.int8_tolerance}")
        return out

    @property
    def precisions(self) -> tuple[str, ...]:
        """The extra precisions this plan ships, in the order they are made."""
        return tuple(p for p, on in (("int8", self.int8), ("fp16", self.fp16)) if on)


@dataclass
class ExperimentConfig:
    """The whole plan."""

    model: str = param("resnet56", "registered model (see `prunebench list`), torchvision:NAME, timm:NAME, "
                                   "path/to/file.py:factory or package.module:factory (runs that code)")
    data: str = param("cifar10", "dataset: cifar10, cifar100, imagefolder:PATH (a folder or .tar.gz) or "
                                 "synthetic[:TRAIN,TEST]")
    data_root: str | None = param(None, "where torchvision datasets live or are downloaded to (default: the cache)")
    data_storage: str = param("auto", "memory: decode once into a uint8 cache held in RAM (fast: augmentation runs "
                                      "batched on the device); stream: decode per batch from disk in DataLoader workers "
                                      "(nothing held in RAM); auto: memory for image folders whose images are at most "
                                      "64 px a side and decode to at most 4 GiB, stream otherwise (cifar10/100, "
                                      "synthetic: always memory)", choices=STORAGES)
    input_size: int | None = param(None, "side of the square model input (default: the images' own size in memory, "
                                         "224 streamed with the imagenet transforms, 32 with the cifar ones)",
                                   unit="px")
    transforms: str = param("auto", "augmentation and evaluation preprocessing: cifar = pad-4 random crop + "
                                    "horizontal flip (images resized to input_size); imagenet = RandomResizedCrop "
                                    "+ flip for training, resize to input_size·256/224 + centre crop for evaluation "
                                    "(streamed data only); auto = cifar in memory or at input_size ≤ 64, else imagenet",
                            choices=TRANSFORMS)
    recipe: str = param("cifar", "named training preset filling every [baseline]/[finetune]/[scratch] key the plan "
                                 "does not set: cifar = the defaults (the paper's CIFAR schedule); imagenet = the "
                                 "paper's ImageNet schedule (90 epochs, batch 256, lr 0.1, ×0.1 every 30 epochs, wd "
                                 "1e-4; fine-tuning 20 epochs at 0.001; Scratch-B at most 180 epochs)",
                        choices=tuple(RECIPES))
    train_subset: int | None = param(None, "use this many training images (a fixed random subset)", unit="images")
    test_subset: int | None = param(None, "use this many test images (a fixed random subset)", unit="images")
    seeds: tuple[int, ...] = param((0,), "seeds; each trains the whole protocol once")
    device: str = param("auto", "training device: auto, cpu, cuda or cuda:N")
    regimes: tuple[str, ...] = param(("finetune", "scratch-e", "scratch-b"), "how each pruned model is trained "
                                     "(see `prunebench list`)")
    baseline_checkpoint: str | None = param(None, "trained dense weights: skip baseline training. A state_dict file "
                                                  "(.pt/.pth/.safetensors; wrappers and DataParallel prefixes handled, "
                                                  "weights-only) or a torchvision weights name (IMAGENET1K_V1) — what "
                                                  "`prunebench prune --weights` takes")
    baseline: TrainConfig = param(help="[baseline] recipe", default_factory=TrainConfig)
    finetune: FinetuneConfig = param(help="[finetune] recipe", default_factory=FinetuneConfig)
    scratch: ScratchConfig = param(help="[scratch] settings", default_factory=ScratchConfig)
    bench: BenchConfig = param(help="[bench] latency settings", default_factory=BenchConfig)
    export: ExportConfig = param(help="[export] INT8 / FP16 files", default_factory=ExportConfig)
    prune: list[PruneSpec] = param(help="[[prune]] entries", default_factory=lambda: [PruneSpec("l1-norm", preset="B")])

    def problems(self) -> list[str]:
        """Everything wrong with the plan that needs no registry (all of it, not just the first)."""
        out = []
        if not DEVICE_PATTERN.match(self.device):
            out.append(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        for name in ("train_subset", "test_subset", "input_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                out.append(f"{name} must be ≥ 1, got {value}")
        if not self.seeds:
            out.append("seeds is empty; give at least one seed")
        if len(set(self.seeds)) != len(self.seeds):
            out.append(f"seeds lists a seed twice: {list(self.seeds)}")
        if not self.regimes:
            out.append("regimes is empty; name at least one (see `prunebench list`), e.g. regimes = [\"finetune\"]")
        if len(set(self.regimes)) != len(self.regimes):
            out.append(f"regimes lists a regime twice: {list(self.regimes)}")
        if self.baseline_checkpoint is None:
            out += self.baseline.problems("baseline")
        else:
            out += [p for p in self.baseline.problems("baseline") if not p.startswith("baseline.epochs")]
        out += self.finetune.problems() + self.scratch.problems() + self.bench.problems() + self.export.problems()
        if not self.prune:
            out.append("the plan has no [[prune]] entry; add one (e.g. method = \"l1-norm\", ratio = 0.5)")
        for i, p in enumerate(self.prune):
            out += p.problems(f"[[prune]] #{i + 1} ({p.method})")
        labels = [p.label for p in self.prune if p.match_of or p.budget or (p.preset is None) != (p.ratio is None)]
        dup = sorted({x for x in labels if labels.count(x) > 1})
        if dup:
            out.append(f"two [[prune]] entries have the label {dup[0]!r}; remove the duplicate or set name = \"…\"")
        return out

    def validate(self) -> "ExperimentConfig":
        """Return ``self``. Raises :class:`PrunebenchError` listing every problem of the plan on one line."""
        raise_problems(self.problems())
        return self

    def to_dict(self) -> dict[str, Any]:
        """The whole plan as nested plain dicts (what config.json holds)."""
        return dataclasses.asdict(self)


def raise_problems(problems: list[str]) -> None:
    """One line for all of them: ``error: the plan has N problems: a; b; c``."""
    if len(problems) == 1:
        raise PrunebenchError(problems[0])
    if problems:
        raise PrunebenchError(f"the plan has {len(problems)} problems: " + "; ".join(problems))


QUICKSTART: dict[str, Any] = {
    # CIFAR-10, ResNet-20, L1-norm halving every block's inner width, all four variants; sized so that the whole run ends
    # in under 15 minutes on a 2-core CPU (reports/quickstart holds the measured time).
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
    """Build dataclass ``cls`` from a mapping (``path``: the TOML section, "" for the top level)."""
    return from_mapping(cls, data, path)


def load_config(path: str | Path | None, overrides: Mapping[str, Any] | None = None,
                validate: bool = True) -> ExperimentConfig:
    """The quickstart (no path) or a TOML plan, then ``overrides`` (dotted keys, e.g. ``baseline.epochs``); checked by
    :meth:`ExperimentConfig.validate` unless ``validate`` is False (the CLI then runs ``pipeline.plan.validate``, which
    reports those problems together with the registry ones)."""
    if path is None:
        data: dict[str, Any] = _deep_copy(QUICKSTART)
    else:
        p = Path(path)
        if not p.exists():
            raise PrunebenchError(f"plan file not found: {p}; give the path of a TOML plan (or none for the quickstart)")
        if p.is_dir():
            raise PrunebenchError(f"{p} is a directory, not a plan; give a TOML file (reports/plans/ has examples)")
        try:
            data = tomllib.loads(p.read_text())
        except tomllib.TOMLDecodeError as e:
            raise PrunebenchError(f"{p} is not valid TOML: {e}; fix the file") from None
        except (OSError, UnicodeDecodeError) as e:
            raise PrunebenchError(f"cannot read {p}: {e}; give a readable UTF-8 TOML file") from None
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        *parents, leaf = key.split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    cfg = from_mapping(ExperimentConfig, apply_recipe(data))
    return cfg.validate() if validate else cfg


def apply_recipe(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` (a plan mapping) with its named ``recipe`` (:data:`RECIPES`) filled in under the keys it sets itself.
    An unknown name is left for :func:`from_mapping` to report (with the valid names)."""
    preset = RECIPES.get(data.get("recipe", "cifar")) if isinstance(data.get("recipe", "cifar"), str) else None
    if not preset:
        return data
    out = dict(data)
    for section, values in preset.items():
        given = out.get(section, {})
        out[section] = {**values, **given} if isinstance(given, dict) else given
    return out


def plan_dict(cfg: ExperimentConfig) -> dict[str, Any]:
    """The plan as TOML keys (tuples as lists): what config.json holds."""
    return to_mapping(cfg) | {"prune": [to_mapping(p) for p in cfg.prune]}


def _deep_copy(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _deep_copy(v) for k, v in d.items()}
    if isinstance(d, list):
        return [_deep_copy(v) for v in d]
    return d
