"""Every file and folder name of a run directory, in one place (OpenLTH keeps one paths module the same way).

Layout of ``prunebench run --out DIR``::

    config.json                        the plan as last run
    .lock                              held while a run works on DIR (an OS file lock)
    .lock.json                         who holds it: pid, host, start time, command
    seed<S>/baseline/                  init.pt, model.pt, arch.json, train.json; model.onnx, measure.json
    seed<S>/<label>/sparse/            a method's own training phase (slimming, SSS, SFP): model.pt, arch.json, train.json
    seed<S>/<label>/pruned/            model.pt, arch.json, prune.json, kept.json (mask.pt for masks)
    seed<S>/<label>/<variant>/         model.pt, arch.json, train.json; model.onnx, measure.json (one per regime variant)
    seed<S>/arch-<digest>/<variant>/   a from-scratch run keyed by its planned architecture, shared by the entries that
                                       prune to it (see prunebench.pipeline.graph)
                                       with [export] int8 / fp16: model.int8.onnx, model.fp16.onnx, quantize.json
    seed<S>/latency.json               all variants of the seed (fp32, INT8, FP16 files), measured interleaved
    results.json, report.md, report.html, summary.md, pareto.png, pareto-<runtime>-<device>-b<batch>.png

``label`` is a [[prune]] entry's label (``l1-norm-r0.5``); ``variant`` is what a regime adds (``finetune``,
``scratch-b``, ``lottery-lr0.1``, ``scale-0.5x``, …).
"""

from __future__ import annotations

from pathlib import Path

# run level
CONFIG = "config.json"
LOCK = ".lock"
LOCK_HOLDER = ".lock.json"
RESULTS = "results.json"
REPORT = "report.md"
REPORT_HTML = "report.html"  # self-contained: tables, plots as data: URIs, environment
SUMMARY = "summary.md"       # a few lines for a CI job summary or a pull-request comment
PARETO = "pareto.png"
LATENCY = "latency.json"
# folders
BASELINE = "baseline"
SPARSE = "sparse"
PRUNED = "pruned"
# files of a model directory
MODEL = "model.pt"
ARCH = "arch.json"           # written last by a model save: its presence marks a complete save
INIT = "init.pt"             # the baseline's initial weights (the lottery-ticket regime replays the prune on them)
TRAIN = "train.json"         # a training stage's record
LAST = "last.pt"             # per-epoch checkpoint of a training stage, removed when the stage finishes
PRUNE = "prune.json"         # the prune stage's record
KEPT = "kept.json"           # surviving original channel indices per pruned layer
MASK = "mask.pt"             # weight masks of an unstructured method
ONNX = "model.onnx"
MEASURE = "measure.json"     # export + verification + accuracy record of a variant
INT8_ONNX = "model.int8.onnx"   # static QDQ INT8 copy of model.onnx (prunebench.export.quantize)
FP16_ONNX = "model.fp16.onnx"   # FP16 copy of model.onnx, fp32 inputs/outputs (for GPU runtimes)
QUANTIZE = "quantize.json"      # the quantize stage's record: calibration, checks, accuracy per precision
# latency budgets and scans (prunebench prune --target-latency/--target-speedup, prunebench scan)
LUT_CACHE = "latency-lut"        # folder of cached latency lookup tables, under the user's cache
LATENCY_BUDGET = "latency-budget.json"   # a budget prune's record: target, predicted, measured, every tightening round
SCAN_JSON = "scan.json"
SCAN_MD = "scan.md"
SCAN_PLOT = "scan.png"
PRECISION_FILES = {"fp32": ONNX, "int8": INT8_ONNX, "fp16": FP16_ONNX}


def seed_dir(out: Path, seed: int) -> Path:
    """``<out>/seed<seed>``."""
    return Path(out) / f"seed{seed}"


def baseline_dir(out: Path, seed: int) -> Path:
    """``<out>/seed<seed>/baseline``."""
    return seed_dir(out, seed) / BASELINE


def entry_dir(out: Path, seed: int, label: str) -> Path:
    """``<out>/seed<seed>/<label>``: a [[prune]] entry's directory."""
    return seed_dir(out, seed) / label


def variant_dir(out: Path, seed: int, label: str | None, variant: str) -> Path:
    """The directory of a trained network: the baseline (``label`` None) or an entry's regime variant."""
    return baseline_dir(out, seed) if label is None else entry_dir(out, seed, label) / variant


def arch_run_dir(out: Path, seed: int, arch: str, variant: str) -> Path:
    """Where a from-scratch variant of planned architecture ``arch`` (a digest) trains, once for every entry."""
    return seed_dir(out, seed) / f"arch-{arch}" / variant


def arch_run_key(seed: int, arch: str, variant: str) -> str:
    """Stage key of a from-scratch run shared by every entry that prunes to architecture digest ``arch``."""
    return f"seed{seed}/arch-{arch}/{variant}"


def variant_key(seed: int, label: str | None, variant: str) -> str:
    """The id a variant has in results.json and latency tables: ``seed0/baseline``, ``seed0/l1-norm-r0.5/scratch-b``."""
    return f"seed{seed}/{label + '/' if label else ''}{variant}"


def pareto_file(runtime: str, device: str, batch: int) -> str:
    """One accuracy-vs-latency plot per timed (runtime, device, batch): ``pareto-onnxruntime-cpu-b1.png``."""
    return f"pareto-{runtime}-{device}-b{batch}.png"


def precision_key(key: str, precision: str) -> str:
    """The id of a variant's quantized file in latency tables: ``seed0/baseline@int8`` (fp32 keeps the plain key)."""
    return key if precision == "fp32" else f"{key}@{precision}"


def split_precision_key(key: str) -> tuple[str, str]:
    """(variant key, precision) of a latency-table id: the inverse of :func:`precision_key`."""
    base, sep, precision = key.rpartition("@")
    return (base, precision) if sep else (key, "fp32")
