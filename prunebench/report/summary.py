"""summary.md: the answer in a few lines, sized for a CI job summary (``$GITHUB_STEP_SUMMARY``) or a pull-request
comment — one row per pruned model (MACs saved, accuracy per regime, the seed-noise verdicts, the measured ONNX Runtime
CPU speed-up in fp32 and INT8) and the warnings of the full report. Every figure is one report.md also shows."""

from __future__ import annotations

from typing import Any

from tabulate import tabulate

from prunebench.core import paths
from prunebench.metrics.seeds import mean_std_text
from prunebench.report.convergence import check
from prunebench.report.statistics import TITLES, comparisons, find_speedup, run_id, seed_count, top1_by_seed

SHORT = {"Fine-tuned": "FT", "Scratch-E": "S-E", "Scratch-B": "S-B"}


def _short(name: str) -> str:
    return SHORT.get(name, name)


def _cpu_cell(results: dict[str, Any]) -> tuple[str, str, int, int] | None:
    """ONNX Runtime CPU at the smallest batch timed (the headline latency), if it was timed."""
    base = next((v for v in results["variants"] if v["regime"] == "baseline"), None)
    rows = [r for r in (base or {}).get("latency", []) if r["runtime"] == "onnxruntime" and r["device"] == "cpu"]
    if not rows:
        return None
    r = min(rows, key=lambda r: r["batch"])
    return r["runtime"], r["device"], r["batch"], r["threads"]


def _speedup(results: dict[str, Any], variant: str, reference: str, cell: tuple[str, str, int, int]) -> str:
    s = find_speedup(results, variant, reference, cell)
    return "—" if s is None else f"{s['speedup']:.2f}× [{s['ci_low']:.2f}, {s['ci_high']:.2f}]"


def render_summary(results: dict[str, Any], labels: list[str]) -> str:
    """summary.md from ``results``: warnings, then one row per label in ``labels`` (MACs saved, accuracy per regime,
    seed-noise verdicts, ONNX Runtime CPU speed-ups)."""
    cfg, vs = results["config"], results["variants"]
    n = seed_count(results)
    base = [v for v in vs if v["regime"] == "baseline"]
    cell = _cpu_cell(results)
    lines = [f"### prunebench: {cfg['model']} on {cfg['data']} ({n} seed{'s' if n != 1 else ''})", ""]
    for v in base:
        c = check(v["training"].get("history_top1") or [])
        if c.converged is False:
            lines.append(f"> ⚠ Seed {v['seed']}: the baseline has not converged (top-1 +{c.rise:.2f} points over its "
                         f"last {c.window} epoch{'s' if c.window != 1 else ''}); longer-trained variants are favoured.")
    flagged = [v["id"] for v in vs if v.get("int8") and v["int8"]["accuracy"]["within_tolerance"] is False]
    if flagged:
        lines.append(f"> ⚠ INT8 beyond the accuracy tolerance: {', '.join(flagged)}.")
    if lines[-1] != "":
        lines.append("")
    by_label: dict[str, list[str]] = {}
    for label, c in comparisons(results, labels) if n > 1 else ():
        by_label.setdefault(label, []).append(f"{_short(c.a)}/{_short(c.b)}: "
                                              f"{_short(c.verdict) if c.significant else 'indist.'}")
    with_int8 = any(v.get("int8") for v in vs)
    rows = []
    b0 = base[0] if base else None
    for label in labels:
        v = next(v for v in vs if v["prune"] and v["prune"]["label"] == label and v.get("same_architecture", True))
        row = [label, f"{100 * (1 - v['macs'] / b0['macs']):.1f} %" if b0 else "—"]
        row += [mean_std_text(top1_by_seed(results, label, r), show_n=False) for r in TITLES]
        row.append("; ".join(by_label.get(label, [])) or ("one seed: no test" if n < 2 else "—"))
        if cell and b0:
            row.append(_speedup(results, run_id(v), run_id(b0), cell))
            if with_int8:
                row.append(_speedup(results, paths.precision_key(run_id(v), "int8"),
                                    paths.precision_key(run_id(b0), "int8"), cell))
        rows.append(row)
    headers = ["Pruned model", "MACs ↓", "Fine-tuned", "Scratch-E", "Scratch-B", "Seed-noise verdicts"]
    if cell:
        where = f"ORT CPU {cell[3]}T b{cell[2]}"
        headers.append(f"Speed-up fp32 ({where})")
        if with_int8:
            headers.append("Speed-up INT8 vs dense INT8")
    lines += [tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True), ""]
    if b0:
        base_text = mean_std_text([v["accuracy"]["top1"] for v in base], show_n=False)
        lines.append(f"Baseline top-1 {base_text} % (final epoch{', mean ± std' if n > 1 else ''}). "
                     + ("One seed: no difference above is significant. " if n < 2 else
                        "Verdicts: Welch's t-test over seeds, α = 0.05 (indist. = within seed noise). ")
                     + f"Full report: {paths.REPORT} / {paths.REPORT_HTML}.")
    return "\n".join(lines) + "\n"
