"""``prunebench scan MODEL --target T``: latency of uniformly thinner models on one target, and where it jumps.

Every width multiplier m (1.0 → 0.1) at every ``round_to`` (1, 8, 16, 32): each prunable group keeps
floor(C·m) channels (at least one), rounded up to a multiple of ``round_to`` (``prunebench.pruning.base``); identical
architectures are built and measured once. All variants are timed in **one** harness run on the target, interleaved
with the dense model (their speed-ups are paired ratios of medians with bootstrap CIs).

A **cliff** (:func:`find_cliffs`) is a narrower model of one ``round_to`` series that is slower than a wider model of
the same series beyond the CIs: its speed-up CI lies wholly below the wider one's. The **recommendation**
(:func:`recommend_round_to`) per target: among the ``round_to`` values with the fewest cliffs, the one whose models
are fastest *at equal MACs* — each pruned point's speed-up over the finest series' speed-up interpolated at the same
MACs, averaged (the finest series scores 1.0) — and, within ``tolerance`` of that best, the smallest (finer rounding
keeps more freedom for the pruning method). Comparing at equal MACs matters: a plain mean speed-up favours fine
rounding only because it removes more channels, a plain measured/MACs efficiency favours coarse rounding only because
it prunes less. Both are pure functions of the measured points.

Writes scan.json (points, cliffs, recommendation, harness settings, environment), scan.md (a table per target) and
scan.png (speed-up vs multiplier per ``round_to``, CIs as bars, cliffs circled).
"""

from __future__ import annotations

import argparse
import copy
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from prunebench.bench.catalog import LatencyTarget

ROUND_TOS = (1, 8, 16, 32)
MULTIPLIERS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1)
TOLERANCE = 0.02


def find_cliffs(points: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Cliffs among measured ``points`` (dicts with round_to, multiplier, speedup, ci_low, ci_high): for each point,
    the wider point of the same ``round_to`` with the highest ``ci_low``, if that exceeds the point's ``ci_high``.
    Returned in series order with both points' multipliers and speed-ups."""
    out = []
    series: dict[int, list[Mapping[str, Any]]] = {}
    for p in points:
        series.setdefault(int(p["round_to"]), []).append(p)
    for r, pts in sorted(series.items()):
        pts = sorted(pts, key=lambda p: -p["multiplier"])
        for i, p in enumerate(pts):
            wider = [q for q in pts[:i] if q["multiplier"] > p["multiplier"]]
            if not wider:
                continue
            w = max(wider, key=lambda q: q["ci_low"])
            if w["ci_low"] > p["ci_high"]:
                out.append({"round_to": r, "multiplier": p["multiplier"], "speedup": p["speedup"],
                            "ci": [p["ci_low"], p["ci_high"]], "slower_than_multiplier": w["multiplier"],
                            "wider_speedup": w["speedup"], "wider_ci": [w["ci_low"], w["ci_high"]]})
    return out


def recommend_round_to(points: Sequence[Mapping[str, Any]], cliffs: Sequence[Mapping[str, Any]] | None = None,
                       tolerance: float = TOLERANCE) -> dict[str, Any]:
    """The recommended ``round_to`` (see the module docstring) with the per-``round_to`` cliff counts and scores it was
    chosen from: speed-up at equal MACs relative to the finest series when every point has ``macs``, else the mean
    speed-up. Raises ``ValueError`` for no points."""
    if not points:
        raise ValueError("no measured points")
    cliffs = find_cliffs(points) if cliffs is None else cliffs
    rounds = sorted({int(p["round_to"]) for p in points})
    count = {r: sum(1 for c in cliffs if c["round_to"] == r) for r in rounds}
    with_macs = all(p.get("macs") for p in points)
    score: dict[int, float] = {}
    if with_macs:
        ref = sorted((float(p["macs"]), float(p["speedup"])) for p in points if int(p["round_to"]) == rounds[0])
        xs = np.array(sorted({x for x, _ in ref}))
        ys = np.array([np.mean([y for x, y in ref if x == v]) for v in xs])
        dense = max(p["macs"] for p in points)
        for r in rounds:
            pts = [p for p in points if int(p["round_to"]) == r and p["macs"] < dense]
            score[r] = float(np.mean([p["speedup"] / np.interp(p["macs"], xs, ys) for p in pts])) if pts else 1.0
        what = f"speed-up at equal MACs relative to round_to {rounds[0]}"
    else:
        for r in rounds:
            score[r] = float(np.mean([p["speedup"] for p in points if int(p["round_to"]) == r]))
        what = "mean speed-up"
    fewest = min(count.values())
    calm = [r for r in rounds if count[r] == fewest]
    best = max(score[r] for r in calm)
    choice = min(r for r in calm if score[r] >= best * (1 - tolerance))
    why = (f"{fewest} cliff(s) (fewest); {what}: {score[choice]:.3f}, within {tolerance:.0%} of the best "
           f"{best:.3f}; smallest such round_to")
    return {"round_to": choice, "cliffs": {str(r): count[r] for r in rounds}, "score": what,
            "scores": {str(r): round(score[r], 4) for r in rounds}, "why": why}


def scan_widths(model: Any, model_name: str, round_tos: Sequence[int], multipliers: Sequence[float]
                ) -> dict[tuple[int, float], dict[str, int]]:
    """{(round_to, multiplier): per-group widths} of uniformly thinner versions of ``model``."""
    from prunebench.pruning.base import channel_multiples, prunable_widths, round_widths, uniform_widths

    original = prunable_widths(model, model_name)
    multiples = channel_multiples(model, model_name)
    out = {}
    for r in round_tos:
        for m in multipliers:
            base = uniform_widths(model, model_name, round(1.0 - m, 6))
            out[(r, m)] = round_widths(base, r, original, multiples)
    return out


def run_scan(model: Any, model_name: str, target: LatencyTarget, round_tos: Sequence[int] = ROUND_TOS,
             multipliers: Sequence[float] = MULTIPLIERS, repeats: int = 30, measure_fn: Callable[..., Any] | None = None,
             export_fn: Callable[..., None] | None = None, log: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    """Measure the scan (module docstring) and return its document: points, cliffs, recommendation, settings."""
    from prunebench.bench.harness import measure
    from prunebench.bench.latency_model import fast_export, harness_config
    from prunebench.bench.runtimes import Target
    from prunebench.core.errors import PrunebenchError
    from prunebench.metrics import flops
    from prunebench.models import input_shape_of
    from prunebench.pruning.base import example_for, prunable_widths, slim_to_widths

    measure_fn = measure_fn or measure
    export_fn = export_fn or fast_export
    shape = tuple(input_shape_of(model, model_name))
    example = example_for(model, model_name)
    dense_widths = prunable_widths(model, model_name)
    plans = scan_widths(model, model_name, round_tos, multipliers)
    ids: dict[tuple[tuple[str, int], ...], str] = {}
    cells: dict[tuple[int, float], str] = {}
    for (r, m), widths in plans.items():
        sig = tuple(sorted(widths.items()))
        if widths == dense_widths:
            cells[(r, m)] = "dense"
            continue
        cells[(r, m)] = ids.setdefault(sig, f"v{len(ids)}")
    log(f"scan: {len(ids)} distinct architectures + dense on {target}")
    with tempfile.TemporaryDirectory(prefix="prunebench-scan-") as tmp:
        dense_path = Path(tmp) / "dense.onnx"
        export_fn(copy.deepcopy(model), shape, dense_path)
        targets = [Target("dense", shape, onnx=dense_path, macs=flops.count(model, shape).macs)]
        for sig, vid in ids.items():
            pruned = slim_to_widths(copy.deepcopy(model), example, {g: w for g, w in sig if w != dense_widths[g]})
            path = Path(tmp) / f"{vid}.onnx"
            export_fn(pruned, shape, path)
            targets.append(Target(vid, shape, onnx=path, macs=flops.count(pruned, shape).macs))
        m = measure_fn(targets, harness_config(target, repeats), reference={t.id: "dense" for t in targets[1:]},
                       log=log)
    rows = {r["variant"]: r for r in m.rows}
    if "dense" not in rows:
        reason = "; ".join(s.get("reason", "") for s in m.skipped) or "no result"
        raise PrunebenchError(f"cannot time {model_name} on {target}: {reason}; choose another --target")
    speed = {s["variant"]: s for s in m.speedups}
    macs = {t.id: t.macs for t in targets}
    points = []
    for (r, mult), vid in sorted(cells.items(), key=lambda kv: (kv[0][0], -kv[0][1])):
        if vid not in rows:
            continue
        s = speed.get(vid, {"speedup": 1.0, "ci_low": 1.0, "ci_high": 1.0, "cpu_speedup": 1.0, "cpu_ci_low": 1.0,
                            "cpu_ci_high": 1.0})
        points.append({"round_to": r, "multiplier": mult, "variant": vid, "channels": sum(plans[(r, mult)].values()),
                       "macs": macs[vid], "median_ms": rows[vid]["median_ms"], "iqr_ms": rows[vid]["iqr_ms"],
                       "cpu_median_ms": rows[vid].get("cpu_median_ms"), "speedup": s["speedup"],
                       "ci_low": s["ci_low"], "ci_high": s["ci_high"], "cpu_speedup": s.get("cpu_speedup"),
                       "cpu_ci_low": s.get("cpu_ci_low"), "cpu_ci_high": s.get("cpu_ci_high")})
    cliffs = find_cliffs(points)
    cpu_points = [{**p, "speedup": p["cpu_speedup"], "ci_low": p["cpu_ci_low"], "ci_high": p["cpu_ci_high"]}
                  for p in points if p.get("cpu_speedup") is not None]
    cpu_cliffs = find_cliffs(cpu_points) if cpu_points else []
    return {"model": model_name, "target": str(target), "input_shape": list(shape), "points": points,
            "cliffs": cliffs, "recommendation": recommend_round_to(points, cliffs),
            "cpu_time": {"cliffs": cpu_cliffs,
                         "recommendation": recommend_round_to(cpu_points, cpu_cliffs) if cpu_points else None},
            "settings": m.settings, "skipped": m.skipped}


def markdown(doc: Mapping[str, Any]) -> str:
    """The scan as Markdown: one row per (round_to, multiplier), then the cliffs and the recommendation."""
    from tabulate import tabulate

    rows = [[p["round_to"], f"{p['multiplier']:g}", p["channels"], f"{p['macs'] / 1e6:.1f}", f"{p['median_ms']:.4f}",
             f"{p['speedup']:.3f} [{p['ci_low']:.3f}, {p['ci_high']:.3f}]",
             "—" if p.get("cpu_speedup") is None else f"{p['cpu_speedup']:.3f} [{p['cpu_ci_low']:.3f}, "
                                                       f"{p['cpu_ci_high']:.3f}]"] for p in doc["points"]]
    s = doc["settings"]
    env = doc.get("environment") or {}
    lines = [f"# Latency scan: {doc['model']} on {doc['target']}", "",
             f"Uniform width multipliers, each group rounded up to round_to; one interleaved harness run "
             f"({s.get('repeats')} rounds at batch ≤ 8, warm-up until stable), speed-ups over the dense model with "
             f"paired bootstrap {100 * s.get('level', 0.95):.0f} % CIs; CPU time = per-call process CPU time."
             + (f" Machine: {env.get('cpu')} ({env.get('cpu_count')} CPUs); onnxruntime "
                f"{env.get('versions', {}).get('onnxruntime')}, torch {env.get('versions', {}).get('torch')}."
                if env else ""), "",
             tabulate(rows, headers=["round_to", "multiplier", "channels", "MMACs", "median ms", "speed-up [CI]",
                                     "CPU-time speed-up [CI]"], tablefmt="github"), ""]
    cpu = doc.get("cpu_time") or {}
    for title, cliffs, rec in (("wall clock", doc["cliffs"], doc["recommendation"]),
                               ("CPU time", cpu.get("cliffs", []), cpu.get("recommendation"))):
        if rec is None:
            continue
        if cliffs:
            lines.append(f"Cliffs on {title} (a narrower model slower than a wider one of the same round_to, beyond "
                         "the CIs):")
            lines += [f"- round_to {c['round_to']}: ×{c['multiplier']:g} at {c['speedup']:.3f}× "
                      f"[{c['ci'][0]:.3f}, {c['ci'][1]:.3f}] is slower than ×{c['slower_than_multiplier']:g} at "
                      f"{c['wider_speedup']:.3f}× [{c['wider_ci'][0]:.3f}, {c['wider_ci'][1]:.3f}]" for c in cliffs]
        else:
            lines.append(f"No cliffs on {title}: no narrower model is slower than a wider one beyond the CIs.")
        lines += ["", f"Recommended round_to on {doc['target']} ({title}): **{rec['round_to']}** ({rec['why']}).", ""]
    return "\n".join(lines) + "\n"


def plot(doc: Mapping[str, Any], path: Path) -> None:
    """Speed-up vs width multiplier, one line per round_to, CIs as error bars, cliffs circled; PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in sorted({p["round_to"] for p in doc["points"]}):
        pts = [p for p in doc["points"] if p["round_to"] == r]
        x = [p["multiplier"] for p in pts]
        y = [p["speedup"] for p in pts]
        err = [[p["speedup"] - p["ci_low"] for p in pts], [p["ci_high"] - p["speedup"] for p in pts]]
        ax.errorbar(x, y, yerr=err, marker="o", ms=3, capsize=2, label=f"round_to {r}")
    for c in doc["cliffs"]:
        ax.scatter([c["multiplier"]], [c["speedup"]], s=160, facecolors="none", edgecolors="red", zorder=5)
    ax.set_xlabel("width multiplier")
    ax.set_ylabel("speed-up over dense (median ratio)")
    ax.set_title(f"{doc['model']} on {doc['target']}")
    ax.invert_xaxis()
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``prunebench scan`` flags (torch-free)."""
    p.add_argument("model", metavar="MODEL", help="registered model, torchvision:NAME, timm:NAME or a factory")
    p.add_argument("--target", required=True, metavar="RUNTIME:DEVICE[:threads=N][:batch=N]",
                   help="where to measure, e.g. onnxruntime:cpu:threads=1:batch=1 (required)")
    p.add_argument("--round-to", type=int, nargs="+", default=list(ROUND_TOS),
                   help="channel roundings to scan (default: 1 8 16 32)")
    p.add_argument("--multipliers", type=float, nargs="+", default=list(MULTIPLIERS),
                   help="width multipliers in (0, 1] (default: 1.0 0.9 … 0.1)")
    p.add_argument("--repeats", type=int, default=30, help="interleaved rounds at batch ≤ 8 (default: 30)")
    p.add_argument("--num-classes", type=int, default=10, help="classifier outputs (default: 10)")
    p.add_argument("--input-size", type=int, metavar="PIXELS", help="input height = width (default: the model's own)")
    p.add_argument("--out", default="scan", help="folder for scan.json, scan.md, scan.png (default: scan)")
    p.add_argument("--json", action="store_true", help="print scan.json instead of the table (default: off)")


def run_cli(args: argparse.Namespace) -> int:
    """``prunebench scan``: parse and check the flags (one-line errors before any work), measure, write the files."""
    import json
    import sys

    from prunebench.bench.catalog import parse_target
    from prunebench.core import paths
    from prunebench.core.errors import PrunebenchError

    target = parse_target(args.target)
    problems = [f"--round-to values must be ≥ 1, got {r}" for r in args.round_to if r < 1]
    problems += [f"--multipliers must be in (0, 1], got {m}" for m in args.multipliers if not 0 < m <= 1]
    if len(set(args.multipliers)) < 2:
        problems.append(f"--multipliers needs at least 2 different values (cliffs and the round_to recommendation "
                        f"compare a narrower model with a wider one), got {' '.join(f'{m:g}' for m in args.multipliers)}")
    if args.repeats < 10:
        problems.append(f"--repeats must be ≥ 10, got {args.repeats}")
    if args.num_classes < 1:
        problems.append(f"--num-classes must be ≥ 1, got {args.num_classes}")
    if args.input_size is not None and args.input_size < 1:
        problems.append(f"--input-size must be a positive number of pixels, got {args.input_size}")
    from prunebench.bench.runtimes import unavailable_reason

    reason = unavailable_reason(target.runtime, target.device)
    if reason:
        problems.append(f"--target {args.target!r} cannot run here: {reason}; choose a runtime available on this "
                        "machine, e.g. --target onnxruntime:cpu")
    if problems:
        raise PrunebenchError("; ".join(problems))
    from prunebench.core.io import ensure_writable, write_json, write_text
    from prunebench.core.environment import manifest
    from prunebench.models import build_model, get_model_spec

    ensure_writable(args.out, "--out")
    spec = get_model_spec(args.model)
    shape = None if args.input_size is None else (spec.input_shape[0], args.input_size, args.input_size)
    model = build_model(args.model, args.num_classes, input_shape=shape).eval()
    doc = run_scan(model, args.model, target, args.round_to, sorted(set(args.multipliers), reverse=True),
                   args.repeats, log=lambda s: print(s, file=sys.stderr))
    doc["environment"] = manifest()
    out = Path(args.out)
    write_json(out / paths.SCAN_JSON, doc)
    write_text(out / paths.SCAN_MD, markdown(doc))
    plot(doc, out / paths.SCAN_PLOT)
    print(json.dumps(doc, indent=2, default=str) if args.json else markdown(doc)
          + f"\nwritten: {out / paths.SCAN_JSON}, {out / paths.SCAN_MD}, {out / paths.SCAN_PLOT}")
    return 0
