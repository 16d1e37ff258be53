"""What each kind of stage does. ``KINDS`` maps a stage kind to its implementation ``(stage, env, digest) -> record``.

An implementation reads its inputs from disk, writes its files (atomically; model files before anything else) and
returns its record; the runner writes the record last, stamped with the stage's digest, and removes the stage's
per-epoch checkpoint. Training stages run on every rank under torchrun (DDP); only rank 0 writes files.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable

import torch

from prunebench.core import distributed as dist
from prunebench.core import paths
from prunebench.core.errors import PrunebenchError
from prunebench.core.checkpoint import load_into
from prunebench.core.hooks import TrainHooks
from prunebench.core.io import load_state, read_json, save_state
from prunebench.core.stage import Stage
from prunebench.data import calibration_batches, eval_batches, eval_preprocessing
from prunebench.export.accuracy import MAX_TOP1_GAP_POINTS, onnx_accuracy
from prunebench.export.metadata import deployment_fields, read_metadata
from prunebench.export.onnx_export import export_and_verify
from prunebench.metrics import flops
from prunebench.metrics.alignment import misaligned_layers
from prunebench.models import build_model, get_model_spec
from prunebench.models.weights import load_weights
from prunebench.pipeline.env import RunEnv
from prunebench.pipeline.graph import planned_widths
from prunebench.pruning import prune_model, sparsity_hooks
from prunebench.pruning.base import Architecture, architecture_of, load_pruned, save_pruned
from prunebench.pruning.kept import save_kept
from prunebench.pruning.weight_masks import save_masks
from prunebench.regimes import REGIMES
from prunebench.training import evaluate, train
from prunebench.config import MATCH_OPTIONS, TrainConfig

Impl = Callable[[Stage, RunEnv, str], dict[str, Any]]


def _dir(env: RunEnv, stage: Stage) -> Path:
    return env.out / stage.directory


def train_and_save(env: RunEnv, stage: Stage, digest: str, arch: Architecture, model: torch.nn.Module,
                   recipe: TrainConfig, desc: str, hooks: TrainHooks | None = None,
                   extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The one training path of every stage that trains: resumable per epoch (checkpoint tagged with the digest),
    then the model (arch.json + model.pt) saved and the train.json record returned."""
    d = _dir(env, stage)
    res = train(model, env.data, recipe, env.device, stage.params["seed"], d / paths.LAST, desc=desc, hooks=hooks,
                tag=digest)
    if dist.is_main():
        save_pruned(d, arch, model)
    return res.to_dict() | {"config": dataclasses.asdict(recipe)} | (extra or {})


def run_baseline(stage: Stage, env: RunEnv, digest: str) -> dict[str, Any]:
    """Train the dense model from its seed (saving its initial weights for lottery tickets), or load
    ``baseline_checkpoint`` and evaluate it; the record is train.json's content."""
    c, d, seed = env.cfg, _dir(env, stage), stage.params["seed"]
    torch.manual_seed(seed)
    # bound to the data's input shape: a torchvision/timm/user model is traced and counted at the size it is trained on
    model = build_model(c.model, env.data.num_classes, input_shape=env.data.input_shape)
    if not (d / paths.INIT).exists() and dist.is_main():
        save_state(d / paths.INIT, model.state_dict())  # the lottery-ticket comparison needs the original init
    arch = architecture_of(model, c.model, env.data.num_classes, method=None)
    if not c.baseline_checkpoint:
        env.log(f"[seed {seed}] baseline: training {c.model} for {c.baseline.epochs} epochs")
        return train_and_save(env, stage, digest, arch, model, c.baseline, "baseline")
    load_weights(model, c.baseline_checkpoint, c.model, get_model_spec(c.model).weights_enum)  # wrappers, prefixes, enum
    top1, _ = evaluate(model.to(env.device), env.data, env.data.test, env.device)
    if dist.is_main():
        save_pruned(d, arch, model)
    return {"loaded_from": str(c.baseline_checkpoint), "epochs": 0, "final_top1": top1, "best_top1": top1,
            "best_epoch": 0, "history": []}


def _plan_of(spec: Any) -> dict[str, Any]:
    return {"preset": spec.preset, "ratio": spec.ratio, "round_to": spec.round_to, "options": spec.options}


def run_sparse(stage: Stage, env: RunEnv, digest: str) -> dict[str, Any]:
    """The method's own training phase (e.g. L1 on BN scales), from the baseline's initial weights."""
    seed = stage.params["seed"]
    spec = env.entry(seed, _label(env, stage)).spec
    base_dir = paths.baseline_dir(env.out, seed)
    arch, model = load_pruned(base_dir, with_weights=False)
    load_into(model, load_state(base_dir / paths.INIT), base_dir / paths.INIT, arch.model)
    hooks = sparsity_hooks(model, arch.model, spec.method, **_plan_of(spec))
    env.log(f"[seed {seed}] {spec.label}: sparsity training for {env.cfg.baseline.epochs} epochs")
    return train_and_save(env, stage, digest, arch, model, env.cfg.baseline, f"{spec.label} sparse", hooks)


def _label(env: RunEnv, stage: Stage) -> str:
    """The label of the entry a sparse/prune stage belongs to (the directory above its own)."""
    return Path(stage.directory).parent.name


def run_prune(stage: Stage, env: RunEnv, digest: str) -> dict[str, Any]:
    """Prune the baseline (or the method's sparsity-trained model) with the entry's method, physically, through
    torch-pruning; checks the widths a shared from-scratch run was planned for. Record: MACs/params before and after,
    prune time (s), widths."""
    seed = stage.params["seed"]
    entry = env.entry(seed, _label(env, stage))
    spec, method, d = entry.spec, entry.method, _dir(env, stage)
    source = entry.dir / paths.SPARSE if method.sparsity is not None else entry.base_dir
    arch, model = load_pruned(source)
    shape = env.data.input_shape
    before = flops.count(model, shape)
    calibration = calibration_batches(env.data) if method.needs_data else None
    ratio, options, matched = spec.ratio, dict(spec.options), {}
    if spec.match:  # another entry's pruned MACs/params as the target
        label, metric = spec.match
        rec = read_json(paths.entry_dir(env.out, seed, label) / paths.PRUNED / paths.PRUNE)
        other = rec.get("after_nonzero", rec["after"])  # a masked (unstructured) entry: what survives its mask
        ratio = 1.0 - other[metric] / getattr(before, metric)
        options = {k: v for k, v in options.items() if k not in MATCH_OPTIONS} | {"match": metric}
        matched = {"matched": {"label": label, "metric": metric, "target": other[metric]}}
    source_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    planned = planned_widths(arch.model, spec) if method.widths_from_plan and not spec.budget else None
    t0 = time.perf_counter()
    budget: dict[str, Any] = {}
    if spec.budget:   # widths from a measured latency table + knapsack, measured and tightened on spec.target
        from prunebench.bench.catalog import parse_target
        from prunebench.pipeline.latency_budget import prune_to_budget
        from prunebench.pruning.base import architecture_of

        pruned, record = prune_to_budget(model, arch.model, arch.num_classes, spec.method, parse_target(spec.target),
                                         target_ms=spec.target_latency_ms, speedup=spec.target_speedup,
                                         round_to=spec.round_to, calibration=calibration, seed=seed, log=env.log)
        parch = architecture_of(pruned, arch.model, arch.num_classes, method=spec.method,
                                notes={"latency_budget": {k: record[k] for k in ("target", "met")}})
        budget = {"latency_budget": record}
    else:
        pruned, parch = prune_model(model, arch.model, arch.num_classes, spec.method, preset=spec.preset, ratio=ratio,
                                    round_to=spec.round_to, calibration=calibration, seed=seed, options=options)
    seconds = time.perf_counter() - t0
    if planned is not None and parch.widths != planned:   # shared scratch runs rely on it (pipeline.graph)
        raise PrunebenchError(f"{spec.method} is declared widths_from_plan but pruned {spec.label} to other widths than "
                              "its plan; fix the method or its registration")
    after = flops.count(pruned, shape)
    nonzero = {} if method.structured else {  # masks: dense shapes, count what survives
        "after_nonzero": flops.count_nonzero(pruned, shape).to_dict()}
    env.log(f"[seed {seed}] {spec.label}: MACs {before.macs / 1e6:.1f}M → {after.macs / 1e6:.1f}M "
            f"(−{100 * (1 - after.macs / before.macs):.1f} %), params {before.params} → {after.params}")
    save_pruned(d, parch, pruned)
    save_kept(d, pruned, source_state, parch)  # kept.json: which original channels survive (lottery replay)
    if nonzero:  # the unstructured mask, re-applied by the method's regime hooks
        save_masks(d, pruned)
    return {"spec": dataclasses.asdict(spec), "seconds": round(seconds, 3), "before": before.to_dict(),
            "after": after.to_dict(), "widths": parch.widths, **nonzero, **matched, **budget}


def run_train(stage: Stage, env: RunEnv, digest: str) -> dict[str, Any]:
    """A regime's variant: the regime says how it starts; the method's regime hooks (masks) apply."""
    p = stage.params
    entry = env.entry(p["seed"], p["label"])
    regime = REGIMES.get(p["regime"])
    plan = next(v for v in regime.variants(entry) if v.name == p["variant"])
    start = regime.start(entry, plan)
    method = entry.method
    hooks = method.regime_hooks(start.model, entry.pruned_dir) if method.regime_hooks is not None else None
    how = f"{start.note}, " if start.note else ""
    env.log(f"[seed {p['seed']}] {entry.spec.label} {plan.name}: {how}{start.recipe.epochs} epochs at lr {start.recipe.lr}")
    return train_and_save(env, stage, digest, start.arch, start.model, start.recipe, f"{entry.spec.label} {plan.name}",
                          hooks, {"budget": start.budget})


def run_measure(stage: Stage, env: RunEnv, digest: str) -> dict[str, Any]:
    """Counts, PyTorch accuracy, ONNX export (with deployment metadata: docs/onnx-metadata.md) + verification, ONNX
    Runtime accuracy (must agree with PyTorch)."""
    key, d = stage.params["variant"], _dir(env, stage)
    arch, model = load_pruned(d)
    model.eval()
    shape = env.data.input_shape
    counts = flops.count(model, shape)
    cpu = torch.device("cpu")
    top1, top5 = evaluate(model.to(cpu), env.data, env.data.test, cpu)
    check_batch = next(eval_batches(env.data, env.data.test, 16))[0]
    onnx_path = d / paths.ONNX
    data, dense = env.data, arch.method is None
    fields = deployment_fields(eval_preprocessing(data), classes=data.classes, dataset=data.name, model=arch.model,
                               method=arch.method, preset=arch.preset, ratio=arch.ratio, regime=key.rsplit("/", 1)[-1],
                               variant=key, widths=None if dense else arch.widths)
    check = export_and_verify(model, shape, onnx_path, check_batch, metadata=fields)
    ort_acc = onnx_accuracy(onnx_path, env.data, env.data.test, threads=env.cfg.bench.threads)
    gap = abs(ort_acc["top1"] - top1)
    if gap > MAX_TOP1_GAP_POINTS:
        raise PrunebenchError(f"{key}: ONNX Runtime top-1 {ort_acc['top1']:.2f} differs from PyTorch {top1:.2f}")
    env.log(f"{key}: top-1 {top1:.2f} % (ONNX {ort_acc['top1']:.2f} %), MACs {counts.macs / 1e6:.1f}M, "
            f"ONNX {check.file_bytes / 1e6:.2f} MB, max|Δ| {check.max_abs_diff:.1e}")
    return {
        "counts": counts.to_dict(), "macs_cross_check": flops.cross_check(model, shape),
        "nonzero_counts": flops.count_nonzero(model, shape).to_dict(),
        "accuracy": {"top1": top1, "top5": top5, "onnx_top1": ort_acc["top1"], "onnx_top5": ort_acc["top5"],
                     "onnx_top1_gap": gap},
        "onnx": check.to_dict(), "onnx_metadata": read_metadata(onnx_path), "widths": arch.widths,
        "alignment": misaligned_layers(model),
    }


def run_quantize(stage: Stage, env: RunEnv, digest: str) -> dict[str, Any]:
    """The INT8 and/or FP16 copies of a variant's fp32 ONNX file, each verified against it (prunebench.export.quantize):
    checker, parity and accuracy on the test split; an INT8 top-1 drop beyond ``[export] int8_tolerance`` is recorded
    (and flagged by the report), not raised."""
    from prunebench.export.quantize import calibration_images, convert_fp16, quantize_int8, verify_precision

    key, d, e = stage.params["variant"], _dir(env, stage), env.cfg.export
    fp32 = d / paths.ONNX
    record: dict[str, Any] = {"variant": key}
    for precision in e.precisions:
        path = d / paths.PRECISION_FILES[precision]
        if precision == "int8":
            made = quantize_int8(fp32, path, calibration_images(env.data, e.calibration_images), e.calibration,
                                 e.activations)
        else:
            made = convert_fp16(fp32, path)
        check = verify_precision(fp32, path, precision, env.data, env.data.test, threads=env.cfg.bench.threads)
        rec = check.to_dict(e.int8_tolerance if precision == "int8" else None)
        record[precision] = {"file": path.name, "made": made, **rec}
        flag = "" if rec["parity"]["ok"] and rec["accuracy"]["within_tolerance"] is not False else " (FLAGGED)"
        env.log(f"{key}: {precision.upper()} top-1 {check.top1:.2f} % (fp32 {check.fp32_top1:.2f} %), agreement "
                f"{100 * check.top1_agreement:.1f} %, logit error p99 {100 * check.p99_logit_error_rel:.2f} % (max "
                f"{100 * check.max_logit_error_rel:.1f} %) of the range, {check.file_bytes / 1e6:.2f} MB{flag}")
    return record


def latency_targets(env: RunEnv, variants: list[list[str]], precisions: list[str]) -> tuple[list[Any], dict[str, Any]]:
    """The harness targets of a seed — each variant's fp32 file (and PyTorch model) plus its quantized files — and
    their speed-up references: fp32 → the baseline; ``X@int8`` → the baseline's INT8 file (pruned + INT8 vs dense +
    INT8) and X's own fp32 file (what INT8 buys); the baseline's INT8 file → the baseline's fp32 file."""
    from prunebench.bench.runtimes import Target

    shape = tuple(env.data.input_shape)
    targets = []
    for key, directory in variants:
        d = env.out / directory
        counts = read_json(d / paths.MEASURE)["counts"]
        targets.append(Target(key, shape, onnx=d / paths.ONNX, model=load_pruned(d)[1].eval(), macs=counts["macs"],
                              params=counts["params"]))
        for precision in precisions:
            targets.append(Target(paths.precision_key(key, precision), shape, onnx=d / paths.PRECISION_FILES[precision],
                                  model=None, macs=counts["macs"], params=counts["params"], precision=precision))
    base = next((key for key, _ in variants if key.endswith(f"/{paths.BASELINE}")), None)
    reference: dict[str, Any] = {}
    for t in targets:
        key, precision = paths.split_precision_key(t.id)
        refs = [] if base is None or key == base else [paths.precision_key(base, precision)]
        if precision != "fp32":
            refs.append(key)
        if refs:
            reference[t.id] = refs if len(refs) > 1 else refs[0]
    return targets, reference


def run_latency(stage: Stage, env: RunEnv, digest: str) -> dict[str, Any]:
    """All variants of a seed (and their INT8 / FP16 files) through the measurement harness (prunebench.bench.harness),
    interleaved in one run."""
    from prunebench.bench.harness import HarnessConfig, measure

    b = env.cfg.bench
    targets, reference = latency_targets(env, stage.params["variants"], stage.params.get("precisions", []))
    cfg = HarnessConfig(batch_sizes=tuple(b.batch_sizes), threads=b.threads, runtimes=tuple(b.runtimes),
                        devices=tuple(b.devices), repeats=b.repeats, warmup=b.warmup)
    seed = stage.key.split("/")[0]
    m = measure(targets, cfg, reference, log=lambda s: env.log(f"[{seed.replace('seed', 'seed ')}] latency {s}"))
    return {"rows": m.rows, "skipped": m.skipped, "threads": b.threads, "speedups": m.speedups, "settings": m.settings}


def run_report(stage: Stage, env: RunEnv, digest: str) -> dict[str, Any]:
    """results.json, report.md (+ html, summary, Pareto plots) from every stage's record (``prunebench.report``)."""
    from prunebench.report import write_report

    sections = [REGIMES.get(r).report_section for r in stage.params["regimes"]]
    return write_report(env.out, env.cfg, stage.params["variants"], env.data_info(), sections)


KINDS: dict[str, Impl] = {"baseline": run_baseline, "sparse": run_sparse, "prune": run_prune, "train": run_train,
                          "measure": run_measure, "quantize": run_quantize, "latency": run_latency,
                          "report": run_report}
