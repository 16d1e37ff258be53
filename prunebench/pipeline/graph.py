"""The stage graph of a plan: which units of work a run consists of, what each reads, and what it depends on.

Per seed: ``baseline`` → for each [[prune]] entry: [``sparse`` (a method's own training phase)] → ``prune`` → one
``train`` stage per variant that each listed regime adds → then one ``measure`` stage per trained network (export +
verification + accuracy), one ``latency`` stage per seed (all its variants, interleaved), and the ``report``.

Each stage's ``params`` hold exactly the plan fields it depends on, so its digest (``prunebench.core.stage``) changes
when — and only when — something it depends on changes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from prunebench.config import ExperimentConfig, PruneSpec
from prunebench.core import paths
from prunebench.core.io import file_digest
from prunebench.core.params import to_mapping
from prunebench.core.stage import Graph, Stage
from prunebench.pruning import get_method
from prunebench.regimes import REGIMES, Entry

CALIBRATION = {"batches": 4, "batch_size": 64, "split": "train, fixed order, no augmentation"}


def _rel(out: Path, d: Path) -> str:
    return d.relative_to(out).as_posix() if d != out else "."


def data_params(cfg: ExperimentConfig) -> dict[str, Any]:
    return {"data": cfg.data, "train_subset": cfg.train_subset, "test_subset": cfg.test_subset}


def spec_params(spec: PruneSpec) -> dict[str, Any]:
    return to_mapping(spec)


def variant_descriptor(key: str, seed: int, label: str | None, name: str, kind: str, title: str, directory: str,
                       spec: PruneSpec | None, same_architecture: bool = True) -> dict[str, Any]:
    """What the latency and report stages know of a trained network (JSON-able)."""
    method = get_method(spec.method) if spec else None
    return {"key": key, "seed": seed, "label": label, "regime": name, "regime_kind": kind, "title": title,
            "directory": directory, "same_architecture": same_architecture,
            "spec": dataclasses.asdict(spec) if spec else None, "structured": method.structured if method else True}


def build_graph(cfg: ExperimentConfig, out: str | Path) -> Graph:
    """The graph of ``cfg`` for run directory ``out`` (validated plan assumed: ``pipeline.plan.validate``)."""
    out = Path(out)
    g = Graph()
    variants: list[dict[str, Any]] = []
    train_of: dict[str, str] = {}       # variant key -> the stage that trains it
    checkpoint = ({"path": str(cfg.baseline_checkpoint), "sha256": file_digest(cfg.baseline_checkpoint)}
                  if cfg.baseline_checkpoint else None)
    for seed in cfg.seeds:
        bdir = paths.baseline_dir(out, seed)
        base_key = paths.variant_key(seed, None, paths.BASELINE)
        g.add(Stage(base_key, "baseline", _rel(out, bdir), paths.TRAIN,
                    {"seed": seed, "model": cfg.model, **data_params(cfg),
                     "recipe": None if checkpoint else to_mapping(cfg.baseline), "checkpoint": checkpoint},
                    title=f"train {cfg.model}" if not checkpoint else f"load {cfg.baseline_checkpoint}",
                    epochs=0 if checkpoint else cfg.baseline.epochs, all_ranks=True, owns_directory=True))
        variants.append(variant_descriptor(base_key, seed, None, paths.BASELINE, paths.BASELINE, "Baseline",
                                           _rel(out, bdir), None))
        train_of[base_key] = base_key
        for spec in cfg.prune:
            method = get_method(spec.method)
            entry = Entry(cfg, seed, spec, method, out)
            source = base_key
            if method.sparsity is not None:
                source = g.add(Stage(f"{paths.variant_key(seed, spec.label, paths.SPARSE)}", "sparse",
                                     _rel(out, entry.dir / paths.SPARSE), paths.TRAIN,
                                     {"seed": seed, "prune": spec_params(spec), "recipe": to_mapping(cfg.baseline),
                                      "init": "baseline init.pt"},
                                     inputs=(base_key,), title=f"{spec.method} training phase",
                                     epochs=cfg.baseline.epochs, all_ranks=True, owns_directory=True)).key
            inputs = (source,)
            if spec.match_of:   # the cost of another entry's pruned model is this entry's target
                inputs += (paths.variant_key(seed, spec.match_of, paths.PRUNED),)
            prune_key = g.add(Stage(paths.variant_key(seed, spec.label, paths.PRUNED), "prune",
                                    _rel(out, entry.pruned_dir), paths.PRUNE,
                                    {"seed": seed, "prune": spec_params(spec),
                                     "calibration": CALIBRATION if method.needs_data else None},
                                    inputs=inputs, title=f"{spec.method} {spec.preset or spec.ratio or ''}".strip(),
                                    owns_directory=True)).key
            for regime_name in cfg.regimes:
                regime = REGIMES.get(regime_name)
                for vp in regime.variants(entry):
                    key = paths.variant_key(seed, spec.label, vp.name)
                    vdir = _rel(out, entry.dir / vp.name)
                    g.add(Stage(key, "train", vdir, paths.TRAIN,
                                {"seed": seed, "label": spec.label, "regime": regime.name, "variant": vp.name,
                                 **vp.params},
                                inputs=(prune_key, base_key), title=vp.title, epochs=vp.epochs, all_ranks=True,
                                owns_directory=True))
                    variants.append(variant_descriptor(key, seed, spec.label, vp.name, regime.name, vp.title, vdir, spec,
                                                       vp.same_architecture))
                    train_of[key] = key
    measure_of = {}
    for v in variants:
        measure_of[v["key"]] = g.add(Stage(f"{v['key']}/measure", "measure", v["directory"], paths.MEASURE,
                                           {"variant": v["key"]}, inputs=(train_of[v["key"]],),
                                           title="export ONNX, verify, accuracy", derived=True)).key
    latency = []
    for seed in cfg.seeds:
        mine = [v for v in variants if v["seed"] == seed]
        latency.append(g.add(Stage(f"seed{seed}/latency", "latency", _rel(out, paths.seed_dir(out, seed)), paths.LATENCY,
                                   {"bench": to_mapping(cfg.bench), "variants": [[v["key"], v["directory"]] for v in mine]},
                                   inputs=tuple(measure_of[v["key"]] for v in mine),
                                   title=f"latency of {len(mine)} variants, interleaved", derived=True)).key)
    g.add(Stage("report", "report", ".", paths.RESULTS, {"variants": variants, "regimes": list(cfg.regimes)},
                inputs=tuple(measure_of.values()) + tuple(latency), title="results.json, report.md, pareto.png",
                derived=True, always=True))
    return g
