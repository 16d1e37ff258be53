"""Whole-plan validation against the registries, before any work: every problem at once, in one line.

``ExperimentConfig.problems`` checks what needs no registry (types, ranges, duplicates); this adds what does: the model,
each entry's method, preset (for that model), options, and the matched entry of a ``match_macs_of`` option, the
regimes, and the bench runtimes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from prunebench.bench.catalog import RUNTIMES
from prunebench.config import ExperimentConfig, raise_problems
from prunebench.core.errors import PrunebenchError
from prunebench.models import MODELS, get_model_spec, is_external
from prunebench.models.weights import is_weights_name
from prunebench.pruning import METHODS
from prunebench.regimes import REGIMES


def _check(problems: list[str], fn, *args) -> object:
    try:
        return fn(*args)
    except PrunebenchError as e:
        problems.append(str(e))
        return None


def validate(cfg: ExperimentConfig) -> ExperimentConfig:
    """Raise one :class:`PrunebenchError` listing every problem of ``cfg``; return it unchanged when there is none."""
    problems = cfg.problems()
    _check(problems, get_model_spec, cfg.model)   # registered, torchvision:/timm:/factory (imports the factory)
    for r in cfg.regimes:
        _check(problems, REGIMES.get, r)
    bad = [r for r in cfg.bench.runtimes if r not in RUNTIMES]
    if bad:
        problems.append(f"unknown bench runtime {bad[0]!r}; choose from {', '.join(RUNTIMES)}")
    if cfg.baseline_checkpoint and not Path(cfg.baseline_checkpoint).is_file() and \
            not is_weights_name(cfg.baseline_checkpoint):
        problems.append(f"baseline_checkpoint {cfg.baseline_checkpoint} is not a file; give a trained state_dict "
                        "(.pt/.pth/.safetensors) or a torchvision weights name such as IMAGENET1K_V1")
    labels: list[str] = []
    for i, spec in enumerate(cfg.prune):
        where = f"[[prune]] #{i + 1} ({spec.method})"
        method = _check(problems, METHODS.get, spec.method)
        if method is None:
            continue
        if spec.preset is not None and (cfg.model in MODELS or is_external(cfg.model)):
            _check(problems, method.preset, cfg.model, spec.preset)
        _check(problems, method.parse_options, spec.options)
        if spec.match_of is not None:
            has_match = any(f.name == "match" for f in dataclasses.fields(method.options))
            if not has_match or spec.preset is not None or spec.ratio is not None or spec.match_of not in labels:
                problems.append(f"{where}: match_macs_of/match_params_of is for a method with a `match` option (reduced) "
                                f"without preset/ratio, naming an earlier entry's label (earlier: "
                                f"{', '.join(labels) or 'none'})")
        if spec.budget:
            from prunebench.bench.catalog import parse_target
            from prunebench.pruning.budget import IMPORTANCES

            target = _check(problems, parse_target, spec.target, f"{where}: target")
            if target is not None:
                from prunebench.bench.runtimes import unavailable_reason

                reason = unavailable_reason(target.runtime, target.device)
                if reason:
                    problems.append(f"{where}: target {spec.target!r} cannot run here: {reason}; set target = "
                                    f"\"RUNTIME:DEVICE\" to a runtime available on this machine, e.g. target = "
                                    f"\"onnxruntime:cpu\"")
            if spec.method not in IMPORTANCES:
                problems.append(f"{where}: target_latency_ms/target_speedup need an importance-based method "
                                f"({', '.join(IMPORTANCES)})")
        if method.sparsity is not None and spec.preset is None and spec.ratio is None:
            problems.append(f"{where}: a method with a training phase needs a preset or a ratio")
        labels.append(spec.label)
    from prunebench.data import check_folder   # lazily: torch

    _check(problems, check_folder, cfg.data)      # an image folder's layout and class folders, without decoding
    raise_problems(problems)
    return cfg
