"""Prune to a measured latency budget on one target (``prunebench prune --target T --target-latency MS`` /
``--target-speedup X``): the latency table (``prunebench.bench.latency_model``) predicts, the knapsack
(``prunebench.pruning.allocation``) chooses the widths, the harness measures the result, and a miss is tightened.

The loop (at most ``max_rounds`` rounds):

1. the goal as a speed-up over the dense model: ``X``, or dense latency / ``MS`` (dense measured in the same
   interleaved run as the pruned model, so both sides see the same machine);
2. allocate under the current budget (first round: the goal on the table's dense latency), slim the dense model with
   the method's scores through torch-pruning, export and verify the ONNX file, time it interleaved with the dense
   model on the target (harness statistics, paired bootstrap 95 % CI of the speed-up);
3. met when the CI's upper end (wall clock, or CPU time with ``metric="cpu"``) reaches the goal (the goal lies inside the CI or below it); otherwise the budget shrinks
   by the measured miss (measured speed-up / goal, at least a 2 % cut) and the next round starts.

Recorded per round: budget, predicted latency (table: dense + Σ deltas; also rescaled to the dense latency measured in
that round), measured median and CPU-time median, speed-up with CI (wall clock and CPU time), and the table's error
(predicted − measured) / measured in %.
"""

from __future__ import annotations

import copy
import math
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
import torch.nn as nn

from prunebench.bench.catalog import LatencyTarget
from prunebench.bench.harness import measure
from prunebench.bench.latency_model import LatencyTable, build_table, harness_config
from prunebench.bench.runtimes import Target
from prunebench.core import paths
from prunebench.core.errors import PrunebenchError
from prunebench.core.io import write_json
from prunebench.export.onnx_export import export_and_verify
from prunebench.metrics import flops
from prunebench.models import input_shape_of
from prunebench.pruning.allocation import allocate
from prunebench.pruning.base import architecture_of, example_for, prunable_widths, save_pruned, slim_to_widths
from prunebench.pruning.budget import budget_options, check_method, group_scores

MIN_CUT = 0.98


def goal_speedup(dense_ms: float, target_ms: float | None, speedup: float | None) -> float:
    """The speed-up the budget asks for: ``speedup``, or ``dense_ms / target_ms``. Raises :class:`PrunebenchError`
    unless exactly one is given and it is positive."""
    if (target_ms is None) == (speedup is None):
        raise PrunebenchError("give exactly one of --target-latency MS and --target-speedup X")
    if target_ms is not None:
        if not (math.isfinite(target_ms) and target_ms > 0):
            raise PrunebenchError(f"--target-latency must be a finite number > 0 milliseconds, got {target_ms}")
        return dense_ms / target_ms
    if speedup is None or not (math.isfinite(speedup) and speedup > 1.0):
        raise PrunebenchError(f"--target-speedup must be a finite number > 1, got {speedup}")
    return speedup


def unreachable(dense_ms: float, fastest_ms: float, target_ms: float | None, speedup: float | None,
                target: object) -> str | None:
    """Why the goal lies beyond the table's fastest plan (predicted ``fastest_ms`` against a dense ``dense_ms``), naming
    the best achievable figure; None when the table predicts it can be reached."""
    goal = goal_speedup(dense_ms, target_ms, speedup)
    if dense_ms / goal >= fastest_ms:
        return None
    best = dense_ms / fastest_ms
    asked = f"--target-latency {target_ms:g} ms" if target_ms is not None else f"--target-speedup {speedup:g}"
    return (f"{asked} cannot be reached on {target}: the latency table's fastest plan (every group at its narrowest "
            f"candidate) is predicted at {fastest_ms:.4f} ms, a {best:.3f}× speed-up over the dense {dense_ms:.4f} ms; "
            f"ask for at least {fastest_ms:.4f} ms or at most {best:.3f}×")


def next_budget(budget_ms: float, measured_speedup: float, goal: float) -> float:
    """The next round's budget after a miss: shrunk by measured/goal, and by at least ``1 − MIN_CUT``."""
    return budget_ms * min(MIN_CUT, measured_speedup / goal)


def prune_to_budget(model: nn.Module, model_name: str, num_classes: int, method: str, target: LatencyTarget, *,
                    target_ms: float | None = None, speedup: float | None = None, round_to: int | None = None,
                    max_rounds: int = 3, max_candidates: int = 8, metric: str = "wall", cache: Path | None | bool = None,
                    calibration: Iterable[Any] | None = None, seed: int = 0, out: str | Path | None = None,
                    repeats: int = 50, log: Callable[[str], None] = lambda s: None,
                    table: LatencyTable | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Prune ``model`` (dense, left unchanged) to the latency goal on ``target``; returns (pruned model, record). The
    record is also written to ``out``/latency-budget.json with the pruned model (arch.json, model.pt, model.onnx).
    Raises :class:`PrunebenchError` for a method without channel scores or a bad goal, before any measurement."""
    check_method(method)
    if max_rounds < 1:
        raise PrunebenchError(f"--max-rounds must be ≥ 1, got {max_rounds}")
    goal_speedup(1.0, target_ms, speedup)   # validates the goal before anything is measured
    model = model.cpu().eval()
    example = example_for(model, model_name)
    shape = tuple(input_shape_of(model, model_name))
    if table is None:
        table = build_table(model, model_name, target, round_to, max_candidates, metric, cache, log=log)
    dense_widths = prunable_widths(model, model_name)
    scores = group_scores(model, example, list(table.group_class), method, calibration, seed)
    options = budget_options(scores, {g: table.candidates(g) for g in table.group_class})
    goal = goal_speedup(table.dense_ms, target_ms, speedup)
    fastest_ms = table.dense_ms + sum(min(c.delta_ms for c in cands) for cands in options.values())
    problem = unreachable(table.dense_ms, fastest_ms, target_ms, speedup, target)
    if problem:   # before anything is pruned or measured
        raise PrunebenchError(problem)
    budget = table.dense_ms / goal
    dense_macs = flops.count(model, shape).macs
    rounds: list[dict[str, Any]] = []
    record: dict[str, Any] = {"model": model_name, "method": method, "target": str(target), "metric": metric,
                              "target_latency_ms": target_ms, "target_speedup": speedup, "round_to": round_to,
                              "table": {"key": table.key, "dense_ms": table.dense_ms,
                                        "dense_cpu_ms": table.dense_cpu_ms, "classes": len(table.classes),
                                        "probes": len(table.probes), "assumes": "additive per-group deltas"},
                              "rounds": rounds}
    pruned: nn.Module | None = None
    with tempfile.TemporaryDirectory(prefix="prunebench-budget-") as tmp:
        dense_onnx = Path(tmp) / "dense.onnx"
        export_and_verify(copy.deepcopy(model), shape, dense_onnx, torch.randn(4, *shape))
        for i in range(max_rounds):
            alloc = allocate(options, table.dense_ms, budget)
            widths = {g: w for g, w in alloc.widths.items() if w != dense_widths[g]}
            pruned = slim_to_widths(copy.deepcopy(model), example, widths, scores=scores)
            onnx_path = Path(tmp) / f"pruned-{i}.onnx"
            check = export_and_verify(copy.deepcopy(pruned), shape, onnx_path, torch.randn(4, *shape))
            m = measure([Target("dense", shape, onnx=dense_onnx), Target("pruned", shape, onnx=onnx_path)],
                        harness_config(target, repeats), reference={"pruned": "dense"}, log=log)
            by = {r["variant"]: r for r in m.rows}
            if "pruned" not in by or "dense" not in by or not m.speedups:
                reason = "; ".join(s.get("reason", "") for s in m.skipped) or "no result"
                raise PrunebenchError(f"cannot time the pruned model on {target}: {reason}; choose another --target")
            s = m.speedups[0]
            d, p = by["dense"], by["pruned"]
            goal_now = goal_speedup(d["median_ms"], target_ms, speedup)
            measured = p["median_ms"] if metric == "wall" else p["cpu_median_ms"]
            dense_now = d["median_ms"] if metric == "wall" else d["cpu_median_ms"]
            rescaled = alloc.predicted_ms * dense_now / table.dense_ms
            if metric == "cpu":
                goal_now = goal_speedup(d["cpu_median_ms"], target_ms, speedup)
            ratio, low, high = ((s["speedup"], s["ci_low"], s["ci_high"]) if metric == "wall"
                                else (s["cpu_speedup"], s["cpu_ci_low"], s["cpu_ci_high"]))
            met = high >= goal_now
            rounds.append({
                "round": i + 1, "budget_ms": round(budget, 5), "feasible": alloc.feasible,
                "predicted_ms": round(alloc.predicted_ms, 5), "predicted_rescaled_ms": round(rescaled, 5),
                "predicted_speedup": round(table.dense_ms / alloc.predicted_ms, 4),
                "measured_ms": p["median_ms"], "measured_iqr_ms": p["iqr_ms"], "measured_cpu_ms": p.get("cpu_median_ms"),
                "dense_ms": d["median_ms"], "dense_cpu_ms": d.get("cpu_median_ms"), "n": p["n"],
                "speedup": s["speedup"], "ci_low": s["ci_low"], "ci_high": s["ci_high"], "ci_level": s["ci_level"],
                "cpu_speedup": s.get("cpu_speedup"), "cpu_ci_low": s.get("cpu_ci_low"),
                "cpu_ci_high": s.get("cpu_ci_high"), "goal_speedup": round(goal_now, 4),
                "metric_measured_ms": measured, "metric_dense_ms": dense_now, "metric_speedup": ratio,
                "metric_ci_low": low, "metric_ci_high": high,
                "table_error_pct": round(100 * (alloc.predicted_ms - measured) / measured, 2),
                "table_error_rescaled_pct": round(100 * (rescaled - measured) / measured, 2),
                "importance_kept": round(alloc.importance / sum(len(v) for v in scores.values()), 4),
                "macs": flops.count(pruned, shape).macs, "dense_macs": dense_macs, "met": met, "widths": alloc.widths,
                "onnx": check.to_dict() | {"path": None}})
            log(f"round {i + 1} ({metric}): budget {budget:.3f}, predicted {alloc.predicted_ms:.3f}, measured "
                f"{measured:.3f} (dense {dense_now:.3f}), speed-up {ratio:.3f} [{low:.3f}, {high:.3f}] vs goal "
                f"{goal_now:.3f}" + (" — met" if met else ""))
            if met or not alloc.feasible:
                break
            budget = next_budget(budget, ratio, goal_now)
        final = rounds[-1]
        record.update({"met": final["met"], "final": {k: v for k, v in final.items() if k != "widths"},
                       "widths": final["widths"], "environment": table.env})
        if out is not None:
            out = Path(out)
            arch = architecture_of(pruned, model_name, num_classes, method=method,
                                   notes={"latency_budget": {"target": str(target), "goal_speedup": final["goal_speedup"],
                                                             "met": final["met"]}})
            save_pruned(out, arch, pruned)
            (out / paths.ONNX).write_bytes((Path(tmp) / f"pruned-{len(rounds) - 1}.onnx").read_bytes())
            write_json(out / paths.LATENCY_BUDGET, record)
    assert pruned is not None
    return pruned, record
