"""A latency lookup table of one model on one target: how the model's latency changes with each prunable group's width.

What it assumes: **additivity** — the latency of a pruned model is the dense latency plus the sum of every group's own
delta at its width, each delta measured with only that group's structure class changed. Interactions (a narrower
producer making a consumer's kernel choice change, cache effects across layers) are not in the table; the error this
causes is measured, not assumed: ``prunebench prune --target-latency/--target-speedup`` reports predicted vs measured
latency of the final model.

How it is built (cheap by construction):

* groups with the same structure — the Conv/Linear shapes, strides and input size of the group's root, coupled layers
  and consumers — form one **structure class** (e.g. the 9 blocks of a ResNet-56 stage) and share a table entry;
* for each class and each candidate width (multiples of ``round_to``, at most ``max_candidates`` per class, the full
  width always included), a probe model has **every group of the class** slimmed to that width through torch-pruning
  (:func:`prunebench.pruning.base.slim_to_widths`); the class's measured delta is divided by its group count (a larger,
  more measurable signal than one group's, same additivity assumption);
* probes are exported with torch's TorchScript exporter (``dynamo=False``, fast; ONNX Runtime folds BatchNorm into the
  convolutions at session creation as it does for the verified export), falling back to the normal exporter where the
  TorchScript one is unavailable; the final pruned model always goes through the verified export;
* probes are timed by the harness (``prunebench.bench.harness``: warm-up until stable, interleaved rounds, medians)
  interleaved with the dense model, in chunks of ``chunk`` probes, each chunk with its own dense reference (deltas are
  probe median − dense median of the same chunk);
* the table is cached on disk per (model, input shape, classes, dense widths, target, candidate grid, environment:
  package versions, CPU model, core count), under ``$PRUNEBENCH_CACHE`` or ``~/.cache/prunebench/latency-lut``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import tempfile
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn as nn

from prunebench.bench.catalog import LatencyTarget
from prunebench.bench.harness import HarnessConfig, Measurement, measure
from prunebench.bench.runtimes import Target
from prunebench.core import paths
from prunebench.core.io import read_json, write_json

SCHEMA = 1
METRICS = ("wall", "cpu")   # wall: per-call median (the target's latency); cpu: per-call process CPU time median

MeasureFn = Callable[..., Measurement]
ExportFn = Callable[[nn.Module, tuple[int, ...], Path], None]


@dataclass
class LatencyTable:
    """Dense latency (milliseconds) and, per structure class, the latency delta of ONE group at each candidate width
    (milliseconds, negative = faster; the full width is 0), plus which class each group belongs to."""

    model: str
    target: str
    dense_ms: float
    classes: dict[str, dict[str, Any]]                    # class key -> {"groups": [...], "width": C, "delta_ms": {w: d}}
    group_class: dict[str, str]                           # group root layer -> class key
    metric: str = "wall"
    dense_cpu_ms: float | None = None
    key: str = ""
    env: dict[str, Any] = field(default_factory=dict)
    probes: list[dict[str, Any]] = field(default_factory=list)   # what was measured: class, width, medians, CIs

    def candidates(self, group: str) -> dict[int, float]:
        """{width: delta of this one group} for ``group`` (milliseconds)."""
        return {int(w): float(d) for w, d in self.classes[self.group_class[group]]["delta_ms"].items()}

    def delta(self, group: str, width: int) -> float:
        """Predicted latency change (milliseconds) when ``group`` alone has ``width`` channels; between table widths
        linear interpolation. Raises ``KeyError`` for an unknown group."""
        table = sorted(self.candidates(group).items())
        if width in dict(table):
            return dict(table)[width]
        if width <= table[0][0]:
            return table[0][1]
        for (w0, d0), (w1, d1) in zip(table, table[1:]):
            if w0 <= width <= w1:
                return d0 + (d1 - d0) * (width - w0) / (w1 - w0)
        return table[-1][1]

    def predict(self, widths: Mapping[str, int]) -> float:
        """Predicted latency (milliseconds) of the model with ``widths`` (groups not named stay dense): dense + Σ
        delta (the additivity assumption)."""
        return self.dense_ms + sum(self.delta(g, w) for g, w in widths.items() if g in self.group_class)

    def to_dict(self) -> dict[str, Any]:
        """The table as JSON (what the cache file holds), with its schema version."""
        d = asdict(self)
        d["classes"] = {k: {**v, "delta_ms": {str(w): x for w, x in v["delta_ms"].items()}} for k, v in
                        self.classes.items()}
        return {"schema": SCHEMA, **d}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "LatencyTable":
        """A table from :meth:`to_dict`'s output. Raises ``ValueError`` for another schema."""
        d = dict(d)
        if d.pop("schema", None) != SCHEMA:
            raise ValueError("latency table of another schema")
        d["classes"] = {k: {**v, "delta_ms": {int(w): float(x) for w, x in v["delta_ms"].items()}}
                        for k, v in d["classes"].items()}
        return cls(**d)


def candidate_widths(width: int, round_to: int | None, max_candidates: int = 8, multiple: int = 1) -> list[int]:
    """Candidate widths of a group of ``width`` channels, ascending: multiples of lcm(round_to, multiple) up to the width
    (always included); without ``round_to`` a step of about width/``max_candidates``; thinned evenly to at most
    ``max_candidates`` (the narrowest and the full width kept)."""
    step = math.lcm(round_to or max(1, width // max(1, max_candidates)), multiple)
    widths = sorted({w for w in range(step, width + 1, step)} | {width})
    if len(widths) > max_candidates >= 2:
        idx = sorted({round(i * (len(widths) - 1) / (max_candidates - 1)) for i in range(max_candidates)})
        widths = [widths[i] for i in idx]
    return widths


def _layer_inputs(model: nn.Module, example: torch.Tensor) -> dict[str, tuple[int, ...]]:
    """{Conv/Linear name: its input's spatial shape} from one forward pass."""
    shapes: dict[str, tuple[int, ...]] = {}
    handles = []

    def hook(name: str) -> Callable[..., None]:
        def record(mod: nn.Module, args: Any, out: Any) -> None:   # returns None: the output stays as it is
            shapes.setdefault(name, tuple(args[0].shape[2:]))
        return record

    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Conv1d, nn.Linear)):
            handles.append(m.register_forward_hook(hook(name)))
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(example)
    finally:
        model.train(was)
        for h in handles:
            h.remove()
    return shapes


def _layer_sig(m: nn.Module, spatial: tuple[int, ...]) -> tuple[Any, ...]:
    if isinstance(m, nn.Linear):
        return ("linear", m.in_features, m.out_features, spatial)
    return (type(m).__name__, m.in_channels, m.out_channels, tuple(m.kernel_size), tuple(m.stride), m.groups,
            tuple(m.padding) if not isinstance(m.padding, str) else m.padding, spatial)


def structure_classes(model: nn.Module, model_name: str, example: torch.Tensor) -> dict[str, list[str]]:
    """{class key: prunable group roots with the same structure}, in definition order. The key is a short digest of the
    shapes, strides and input sizes of the group's root, coupled layers and consumers."""
    from prunebench.models import get_model_spec, ignored_of
    from prunebench.pruning.base import prunable_layers
    from prunebench.pruning.groups import discover

    names = prunable_layers(model, model_name)
    spec = get_model_spec(model_name)
    infos = {g.root: g for g in discover(model, example, ignored_of(model),
                                         allowed=None if spec.prunable is None else spec.prunable(model))}
    modules = dict(model.named_modules())
    spatial = _layer_inputs(model, example)
    out: dict[str, list[str]] = {}
    for n in names:
        info = infos.get(n)
        members = [n] + (list(info.coupled) + ["→"] + list(info.consumers) if info is not None else [])
        sig = tuple(_layer_sig(modules[m], spatial.get(m, ())) if m != "→" else "→" for m in members)
        key = hashlib.sha1(repr(sig).encode()).hexdigest()[:10]
        out.setdefault(key, []).append(n)
    return out


def fast_export(model: nn.Module, input_shape: tuple[int, ...], path: Path) -> None:
    """A probe's ONNX file: torch's TorchScript exporter (``dynamo=False``; dynamic batch), else the normal export.
    Unverified: probes are only timed."""
    model = model.cpu().eval()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (torch.randn(1, *input_shape),), str(path), input_names=["input"],
                              output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                              dynamo=False, do_constant_folding=True)
    except Exception:  # noqa: BLE001 - an exporter without the TorchScript path: the normal one
        from prunebench.export.onnx_export import export_onnx

        export_onnx(model, input_shape, path)


def environment_key() -> dict[str, Any]:
    """What a cached table depends on besides the model and target: package versions, CPU model, core count."""
    from prunebench.core.environment import cpu_model, versions

    v = versions()
    return {"versions": {k: v[k] for k in ("torch", "torch-pruning", "onnx", "onnxruntime", "onnxruntime-gpu",
                                           "openvino", "tensorrt") if k in v},
            "cpu": cpu_model(), "cpu_count": os.cpu_count()}


def cache_dir() -> Path:
    """``$PRUNEBENCH_CACHE/latency-lut`` or ``~/.cache/prunebench/latency-lut``."""
    root = os.environ.get("PRUNEBENCH_CACHE") or str(Path.home() / ".cache" / "prunebench")
    return Path(root) / paths.LUT_CACHE


def harness_config(target: LatencyTarget, repeats: int = 30, max_cell_s: float | None = None,
                   warmup_max_s: float = 5.0) -> HarnessConfig:
    """The harness settings for one target: its runtime, device, threads and batch only; warm-up capped at
    ``warmup_max_s`` seconds per variant (many probes per cell; whether each settled is recorded)."""
    return HarnessConfig(batch_sizes=(target.batch,), threads=target.threads, runtimes=(target.runtime,),
                         devices=(target.device,), repeats=repeats, max_cell_s=max_cell_s, warmup_max=100,
                         warmup_max_s=warmup_max_s)


def build_table(model: nn.Module, model_name: str, target: LatencyTarget, round_to: int | None = None,
                max_candidates: int = 8, metric: str = "wall", cache: Path | None | bool = None, chunk: int = 16,
                repeats: int = 30, measure_fn: MeasureFn = measure, export_fn: ExportFn = fast_export,
                log: Callable[[str], None] = lambda s: None) -> LatencyTable:
    """The :class:`LatencyTable` of ``model`` (dense, unchanged) on ``target``, from the cache when one matches (``cache``:
    a directory, None for :func:`cache_dir`, False for none). Raises ``ValueError`` for an unknown metric and
    :class:`PrunebenchError` when the harness could not time the dense model (the reason it gave)."""
    from prunebench.core.errors import PrunebenchError
    from prunebench.models import input_shape_of, num_classes_of
    from prunebench.pruning.base import channel_multiples, example_for, prunable_widths, slim_to_widths

    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}")
    example = example_for(model, model_name)
    shape = tuple(input_shape_of(model, model_name))
    widths = prunable_widths(model, model_name)
    multiples = channel_multiples(model, model_name)
    classes = structure_classes(model, model_name, example)
    grid = {k: candidate_widths(widths[g[0]], round_to, max_candidates, multiples.get(g[0], 1)) for k, g in
            classes.items()}
    env = environment_key()
    ident = {"model": model_name, "input_shape": list(shape), "classes": num_classes_of(model), "widths": widths,
             "target": str(target), "grid": grid, "metric": metric, "repeats": repeats, "env": env, "schema": SCHEMA}
    key = hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:16]
    folder = None if cache is False else Path(cache) if cache not in (None, True) else cache_dir()
    file = folder / f"{model_name.replace(':', '_').replace('/', '_')}-{target.slug()}-{key}.json" if folder else None
    if file is not None and file.is_file():
        try:
            table = LatencyTable.from_dict(read_json(file))
            log(f"latency table: cached {file}")
            return table
        except (ValueError, TypeError, KeyError, PrunebenchError):
            pass   # unreadable or another schema: measure again
    probes = [(k, w) for k, g in classes.items() for w in grid[k] if w < widths[g[0]]]
    cfg = harness_config(target, repeats)
    log(f"latency table: {len(classes)} structure classes, {len(probes)} probes on {target}")
    dense_wall, dense_cpu, rows = [], [], []
    with tempfile.TemporaryDirectory(prefix="prunebench-lut-") as tmp:
        dense_path = Path(tmp) / "dense.onnx"
        export_fn(copy.deepcopy(model), shape, dense_path)
        for start in range(0, max(1, len(probes)), chunk):
            part = probes[start:start + chunk]
            targets = [Target("dense", shape, onnx=dense_path)]
            for k, w in part:
                probe = copy.deepcopy(model)
                slim_to_widths(probe, example, {g: w for g in classes[k]})
                path = Path(tmp) / f"{k}-{w}.onnx"
                export_fn(probe, shape, path)
                targets.append(Target(f"{k}@{w}", shape, onnx=path))
            m = measure_fn(targets, cfg, reference={t.id: "dense" for t in targets[1:]}, log=log)
            by = {r["variant"]: r for r in m.rows}
            if "dense" not in by:
                reason = "; ".join(s.get("reason", "") for s in m.skipped) or "no result"
                raise PrunebenchError(f"cannot time {model_name} on {target}: {reason}; choose another --target")
            speed = {s["variant"]: s for s in m.speedups}
            dense_wall.append(by["dense"]["median_ms"])
            dense_cpu.append(by["dense"].get("cpu_median_ms"))
            for k, w in part:
                r = by.get(f"{k}@{w}")
                if r is None:
                    continue
                ref = by["dense"]
                value = _value(r, metric) - _value(ref, metric)
                s = speed.get(f"{k}@{w}", {})
                rows.append({"class": k, "width": w, "groups": len(classes[k]), "median_ms": r["median_ms"],
                             "cpu_median_ms": r.get("cpu_median_ms"), "dense_median_ms": ref["median_ms"],
                             "dense_cpu_median_ms": ref.get("cpu_median_ms"), "class_delta_ms": round(value, 5),
                             "speedup": s.get("speedup"), "ci_low": s.get("ci_low"), "ci_high": s.get("ci_high")})
    table_classes: dict[str, dict[str, Any]] = {}
    for k, g in classes.items():
        deltas = {widths[g[0]]: 0.0}
        for r in rows:
            if r["class"] == k:
                deltas[r["width"]] = r["class_delta_ms"] / len(g)
        table_classes[k] = {"groups": list(g), "width": widths[g[0]], "delta_ms": dict(sorted(deltas.items()))}
    dense = _median(dense_wall) if metric == "wall" else _median([c for c in dense_cpu if c is not None])
    cpu_known = [c for c in dense_cpu if c is not None]
    table = LatencyTable(model_name, str(target), round(dense, 5), table_classes,
                         {g: k for k, gs in classes.items() for g in gs}, metric,
                         _median(cpu_known) if cpu_known else None, key, env, rows)
    if file is not None:
        write_json(file, table.to_dict())
        log(f"latency table: cached as {file}")
    return table


def _value(row: Mapping[str, Any], metric: str) -> float:
    return float(row["median_ms"] if metric == "wall" else row["cpu_median_ms"])


def _median(values: Sequence[float]) -> float:
    return float(np.median(np.asarray(values, dtype=np.float64)))
