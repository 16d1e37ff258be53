"""The stage graph of a plan: which units of work a run consists of, what each reads, and what it depends on.

Per seed: ``baseline`` → for each [[prune]] entry: [``sparse`` (a method's own training phase)] → ``prune`` → one
``train`` stage per variant that each listed regime adds → then one ``measure`` stage per trained network (export +
verification + accuracy), with ``[export] int8`` / ``fp16`` one ``quantize`` stage per trained network after its
``measure`` (model.int8.onnx / model.fp16.onnx, verified), one ``latency`` stage per seed (all its variants and their
quantized files, interleaved), and the ``report``.

Each stage's ``params`` hold exactly the plan fields it depends on, so its digest (``prunebench.core.stage``) changes
when — and only when — something it depends on changes.

Shared scratch runs: a from-scratch variant depends only on the pruned architecture, the recipe, the data and the seed
(a ``shareable`` variant). Where a method's widths follow from the plan alone (``Method.widths_from_plan``: uniform
per-layer methods at a ratio or preset), entries with equal planned widths train each such variant once, in
``seed<S>/arch-<architecture digest>/<variant>``; every entry lists it as its own variant (``run_key``), and the
report says which entries share it. The prune stage checks that the widths it produced are the planned ones.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

from prunebench.config import ExperimentConfig, PruneSpec
from prunebench.core import paths
from prunebench.core.io import file_digest
from prunebench.core.params import to_mapping
from prunebench.core.stage import Graph, Stage, canonical
from prunebench.models.weights import is_weights_name
from prunebench.pruning import get_method
from prunebench.regimes import REGIMES, Entry

CALIBRATION = {"batches": 4, "batch_size": 64, "split": "train, fixed order, no augmentation"}


def _rel(out: Path, d: Path) -> str:
    return d.relative_to(out).as_posix() if d != out else "."


def data_params(cfg: ExperimentConfig) -> dict[str, Any]:
    """The plan fields the data depends on (data, train_subset, test_subset; data_storage, input_size, transforms only
    where not at their defaults, so that the digests of runs from before those fields hold), as stage params."""
    extra = {k: getattr(cfg, k) for k, default in DATA_DEFAULTS.items() if getattr(cfg, k) != default}
    return {"data": cfg.data, "train_subset": cfg.train_subset, "test_subset": cfg.test_subset, **extra}


DATA_DEFAULTS = {"data_storage": "auto", "input_size": None, "transforms": "auto"}


def spec_params(spec: PruneSpec) -> dict[str, Any]:
    """A [[prune]] entry as stage params (every field, JSON-able; the latency-budget fields only when the entry has a
    budget, so that entries without one keep the digests they had before those fields existed)."""
    params = to_mapping(spec)
    if not spec.budget:
        for key in BUDGET_KEYS:
            params.pop(key, None)
    return params


BUDGET_KEYS = ("target_latency_ms", "target_speedup", "target")


def _spec_dict(spec: PruneSpec) -> dict[str, Any]:
    d = dataclasses.asdict(spec)
    return d if spec.budget else {k: v for k, v in d.items() if k not in BUDGET_KEYS}


def variant_descriptor(key: str, seed: int, label: str | None, name: str, kind: str, title: str, directory: str,
                       spec: PruneSpec | None, same_architecture: bool = True, run_key: str | None = None
                       ) -> dict[str, Any]:
    """What the latency and report stages know of a trained network (JSON-able). ``run_key``: the training run it is
    (another entry's shared run, or its own key)."""
    method = get_method(spec.method) if spec else None
    return {"key": key, "seed": seed, "label": label, "regime": name, "regime_kind": kind, "title": title,
            "directory": directory, "same_architecture": same_architecture, "run_key": run_key or key,
            "spec": _spec_dict(spec) if spec else None, "structured": method.structured if method else True}


class PlannedWidths:
    """Planned pruned widths of plan-determined entries (built dense models cached per model name)."""

    def __init__(self, cfg: ExperimentConfig) -> None:
        self.cfg = cfg
        self._dense: dict[str, Any] = {}

    def widths(self, spec: PruneSpec) -> dict[str, int] | None:
        """The widths ``spec`` prunes to when the plan alone fixes them (a ``widths_from_plan`` method with a ratio or
        preset), else None."""
        method = get_method(spec.method)
        if not method.widths_from_plan or (spec.preset is None and spec.ratio is None):
            return None
        return planned_widths(self.cfg.model, spec, self._dense)

    def digest(self, spec: PruneSpec) -> str | None:
        """Architecture digest of ``spec``'s pruned model, if the plan alone fixes it; else None."""
        widths = self.widths(spec)
        if widths is None:
            return None
        return hashlib.sha256(canonical({"model": self.cfg.model, "widths": widths}).encode()).hexdigest()[:10]

    def macs_ratio(self, spec: PruneSpec) -> float | None:
        """Pruned / dense MACs of ``spec``'s planned widths (None where the prune decides)."""
        from prunebench.metrics import flops
        from prunebench.models import get_model_spec
        from prunebench.pruning.scaling import cost_of_widths

        widths = self.widths(spec)
        if widths is None:
            return None
        dense = self._dense[self.cfg.model]
        return cost_of_widths(dense, self.cfg.model, widths) / flops.count_macs(
            dense, get_model_spec(self.cfg.model).input_shape)


def planned_widths(model_name: str, spec: PruneSpec, cache: dict[str, Any] | None = None) -> dict[str, int]:
    """The widths a plan-determined method prunes ``model_name`` to (``PruneRequest.target_widths``)."""
    from prunebench.models import build_model
    from prunebench.pruning import make_request

    cache = {} if cache is None else cache
    if model_name not in cache:
        cache[model_name] = build_model(model_name, 10)   # widths of prunable layers do not depend on the classes
    request = make_request(cache[model_name], model_name, spec.method, preset=spec.preset, ratio=spec.ratio,
                           round_to=spec.round_to, options=spec.options)
    return request.target_widths()


def build_graph(cfg: ExperimentConfig, out: str | Path, estimates: bool = False) -> Graph:
    """The graph of ``cfg`` for run directory ``out`` (validated plan assumed: ``pipeline.plan.validate``).
    ``estimates``: also work out planned MACs (Scratch-B epochs and time estimates for --dry-run; costs a few seconds)."""
    out = Path(out)
    g = Graph()
    variants: list[dict[str, Any]] = []
    train_of: dict[str, str] = {}       # variant key -> the stage that trains it
    checkpoint = None
    if cfg.baseline_checkpoint:   # a file (its digest) or a torchvision weights name (the name is the identity)
        checkpoint = ({"weights": cfg.baseline_checkpoint} if is_weights_name(cfg.baseline_checkpoint) else
                      {"path": str(cfg.baseline_checkpoint), "sha256": file_digest(cfg.baseline_checkpoint)})
    planned = PlannedWidths(cfg)
    for seed in cfg.seeds:
        bdir = paths.baseline_dir(out, seed)
        base_key = paths.variant_key(seed, None, paths.BASELINE)
        g.add(Stage(base_key, "baseline", _rel(out, bdir), paths.TRAIN,
                    {"seed": seed, "model": cfg.model, **data_params(cfg),
                     "recipe": None if checkpoint else to_mapping(cfg.baseline), "checkpoint": checkpoint},
                    title=f"train {cfg.model}" if not checkpoint else f"load {cfg.baseline_checkpoint}",
                    epochs=0 if checkpoint else cfg.baseline.epochs, all_ranks=True, owns_directory=True,
                    macs_ratio=1.0))
        variants.append(variant_descriptor(base_key, seed, None, paths.BASELINE, paths.BASELINE, "Baseline",
                                           _rel(out, bdir), None))
        train_of[base_key] = base_key
        for spec in cfg.prune:
            method = get_method(spec.method)
            ratio = planned.macs_ratio(spec) if estimates else None
            entry = Entry(cfg, seed, spec, method, out, ratio)
            source = base_key
            if method.sparsity is not None:
                source = g.add(Stage(f"{paths.variant_key(seed, spec.label, paths.SPARSE)}", "sparse",
                                     _rel(out, entry.dir / paths.SPARSE), paths.TRAIN,
                                     {"seed": seed, "prune": spec_params(spec), "recipe": to_mapping(cfg.baseline),
                                      "init": "baseline init.pt"},
                                     inputs=(base_key,), title=f"{spec.method} training phase",
                                     epochs=cfg.baseline.epochs, all_ranks=True, owns_directory=True,
                                     macs_ratio=1.0)).key
            inputs = (source,)
            if spec.match_of:   # the cost of another entry's pruned model is this entry's target
                inputs += (paths.variant_key(seed, spec.match_of, paths.PRUNED),)
            prune_key = g.add(Stage(paths.variant_key(seed, spec.label, paths.PRUNED), "prune",
                                    _rel(out, entry.pruned_dir), paths.PRUNE,
                                    {"seed": seed, "prune": spec_params(spec),
                                     "calibration": CALIBRATION if method.needs_data else None},
                                    inputs=inputs, title=f"{spec.method} {spec.preset or spec.ratio or ''}".strip(),
                                    owns_directory=True)).key
            arch = planned.digest(spec)
            for regime_name in cfg.regimes:
                regime = REGIMES.get(regime_name)
                for vp in regime.variants(entry):
                    key = paths.variant_key(seed, spec.label, vp.name)
                    run_key, vdir = key, _rel(out, entry.dir / vp.name)
                    if vp.shareable and arch is not None:
                        run_key = paths.arch_run_key(seed, arch, vp.name)
                        vdir = _rel(out, paths.arch_run_dir(out, seed, arch, vp.name))
                    if run_key not in g.stages:   # the first entry of a shared run trains it
                        g.add(Stage(run_key, "train", vdir, paths.TRAIN,
                                    {"seed": seed, "label": spec.label, "regime": regime.name, "variant": vp.name,
                                     **vp.params} | ({"architecture": arch} if run_key != key else {}),
                                    inputs=(prune_key, base_key), title=vp.title, epochs=vp.epochs, all_ranks=True,
                                    owns_directory=True, macs_ratio=ratio if vp.same_architecture else None))
                    variants.append(variant_descriptor(key, seed, spec.label, vp.name, regime.name, vp.title, vdir, spec,
                                                       vp.same_architecture, run_key))
                    train_of[key] = run_key
    measure_of: dict[str, str] = {}
    for v in variants:   # one measurement per training run (shared runs once)
        if v["run_key"] not in measure_of:
            measure_of[v["run_key"]] = g.add(Stage(f"{v['run_key']}/measure", "measure", v["directory"], paths.MEASURE,
                                                   {"variant": v["run_key"]}, inputs=(train_of[v["key"]],),
                                                   title="export ONNX, verify, accuracy", derived=True)).key
    precisions = cfg.export.precisions
    quantize_of: dict[str, str] = {}
    for v in variants if precisions else ():   # one INT8/FP16 set per training run, like the measurement
        if v["run_key"] not in quantize_of:
            quantize_of[v["run_key"]] = g.add(Stage(
                f"{v['run_key']}/quantize", "quantize", v["directory"], paths.QUANTIZE,
                {"variant": v["run_key"], "export": to_mapping(cfg.export), **data_params(cfg)},
                inputs=(measure_of[v["run_key"]],),
                title=f"{' + '.join(p.upper() for p in precisions)} ONNX, verify, accuracy", derived=True)).key
    extra = {"precisions": list(precisions)} if precisions else {}   # absent by default: digests of older runs hold
    latency = []
    for seed in cfg.seeds:
        mine = list({v["run_key"]: v for v in variants if v["seed"] == seed}.values())
        files = 1 + len(precisions)
        latency.append(g.add(Stage(f"seed{seed}/latency", "latency", _rel(out, paths.seed_dir(out, seed)), paths.LATENCY,
                                   {"bench": to_mapping(cfg.bench),
                                    "variants": [[v["run_key"], v["directory"]] for v in mine], **extra},
                                   inputs=tuple(measure_of[v["run_key"]] for v in mine)
                                   + tuple(quantize_of[v["run_key"]] for v in mine if v["run_key"] in quantize_of),
                                   title=f"latency of {len(mine)} variants"
                                         + (f" × {files} files" if files > 1 else "") + ", interleaved",
                                   derived=True, exclusive=True)).key)
    g.add(Stage("report", "report", ".", paths.RESULTS, {"variants": variants, "regimes": list(cfg.regimes), **extra},
                inputs=tuple(measure_of.values()) + tuple(quantize_of.values()) + tuple(latency),
                title="results.json, report.md, report.html, summary.md, pareto.png", derived=True, always=True))
    return g
