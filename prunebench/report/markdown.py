"""report.md: the paper-style accuracy table with its seed statistics, sizes, the INT8 / FP16 files, latency, plots,
ONNX checks and the environment, from results.json alone. report.html is rendered from this very text
(``prunebench.report.html``), so the two cannot disagree."""

from __future__ import annotations

from typing import Any, Callable, Sequence

from tabulate import tabulate

from prunebench.core import paths
from prunebench.metrics.seeds import METHOD, mean_std_text
from prunebench.report.convergence import warning_lines
from prunebench.report.plot import latency_cells
from prunebench.report.statistics import comparisons, find_speedup, run_id, seed_count

Section = Callable[[dict[str, Any], list[str]], list[str]]   # (results, ordered labels) -> Markdown lines
_mean_std = mean_std_text
PRECISION_TITLES = {"fp32": "fp32", "int8": "INT8", "fp16": "FP16"}

def _cost_text(cost: dict[str, Any] | None) -> str:
    if not cost or cost.get("prune_s") is None:
        return "—"
    extra = f" (+ {cost['sparse_train_s']:.0f})" if cost.get("sparse_train_s") is not None else ""
    return f"{cost['prune_s']:.2f}{extra}"


def render_markdown(results: dict[str, Any], sections: Sequence[Section] = ()) -> str:
    """report.md from ``results`` (results.json's content): setup, machine, warnings, the accuracy table (with the
    regimes' ``sections`` after it), size and compute, latency."""
    cfg = results["config"]
    env = results["environment"]
    vs = results["variants"]
    base = [v for v in vs if v["regime"] == "baseline"]
    labels = _order_labels(list(dict.fromkeys(v["prune"]["label"] for v in vs if v["prune"])), vs)
    n_seeds = seed_count(results)
    lines = [
        f"# prunebench report: {cfg['model']} on {cfg['data']}",
        "",
        f"Seeds {list(cfg['seeds'])}; {results['data']['train']} training and {results['data']['test']} test images "
        f"({results['data']['num_classes']} classes"
        + (f"; {results['data']['skipped_images']} unreadable image(s) skipped"
           if results['data'].get('skipped_images') else "") + "); "
        f"baseline {cfg['baseline']['epochs']} epochs, fine-tune {cfg['finetune']['epochs']} epochs at lr {cfg['finetune']['lr']}"
        + _arithmetic(results) + ".",
        f"Machine: {env['cpu']} ({env['cpu_count']} CPUs){', GPU ' + env['gpu'] if env.get('gpu') else ''}; "
        f"torch {env['versions'].get('torch')}, torch-pruning {env['versions'].get('torch-pruning')}, "
        f"onnxruntime {env['versions'].get('onnxruntime') or env['versions'].get('onnxruntime-gpu')}; "
        f"commit {env.get('git_commit')}.",
        "",
    ]
    lines += warning_lines(results)
    lines += _int8_flag_lines(vs)
    spread = f"mean ± std over {n_seeds} seeds, n shown" if n_seeds > 1 else "one seed"
    lines += [f"## Accuracy (top-1 %, final epoch; {spread})", ""]
    rows = []
    base_acc = [v["accuracy"]["top1"] for v in base]
    for label in labels:
        row = [label, _mean_std(base_acc)]
        for regime in ("finetune", "scratch-e", "scratch-b"):
            row.append(_mean_std([v["accuracy"]["top1"] for v in vs
                                  if v["prune"] and v["prune"]["label"] == label and v["regime"] == regime]))
        budget = next((v["training"]["budget"] for v in vs if v["prune"] and v["prune"]["label"] == label
                       and v["regime"] == "scratch-b" and v["training"]["budget"]), None)
        row.append(f"{budget['epochs']} (R={budget['R']:.3f})" if budget else "—")
        rows.append(row)
    lines += [tabulate(rows, headers=["Pruned model", "Baseline", "Fine-tuned", "Scratch-E", "Scratch-B",
                                      "Scratch-B epochs"], tablefmt="github", disable_numparse=True), ""]
    lines += _significance_lines(results, labels, n_seeds)
    lines += _reduced_note(vs, labels) + _shared_note(vs)
    for section in sections:
        lines += section(results, labels)
    best_rows = []
    for v in vs:
        best_rows.append([v["id"], f"{v['accuracy']['top1']:.2f}", f"{v['accuracy']['best_top1']:.2f} "
                          f"(ep {v['accuracy']['best_epoch']})", f"{v['accuracy']['top5']:.2f}",
                          f"{v['accuracy']['onnx_top1']:.2f}", v["training"]["epochs"]])
    lines += ["Per variant (best-over-epochs is selected on the test set, as the paper's code did: for comparison only; "
              "never used above):",
              "", tabulate(best_rows, headers=["Variant", "Top-1 final", "Top-1 best (selected on test)", "Top-5",
                                               "ONNX RT top-1", "Epochs"], tablefmt="github", disable_numparse=True), ""]

    lines += ["## Size and compute", "", f"Counting rule: {results['counting_rule']}.", ""]
    size_rows = []
    b0 = base[0] if base else None
    for label in labels:
        v = next(v for v in vs if v["prune"] and v["prune"]["label"] == label and v.get("same_architecture", True))
        size_rows.append([label, f"{v['params'] / 1e6:.3f}M", f"{_reduction(b0, v, 'params')}",
                          f"{v['macs'] / 1e6:.1f}M", f"{_reduction(b0, v, 'macs')}",
                          f"{b0['macs'] / v['macs']:.2f}×" if b0 else "—", f"{v['file_bytes'] / 1e6:.2f} MB",
                          _alignment_text(v), _cost_text(v.get("prune_cost"))])
    if b0:
        size_rows.insert(0, ["baseline", f"{b0['params'] / 1e6:.3f}M", "—", f"{b0['macs'] / 1e6:.1f}M", "—", "1.00×",
                             f"{b0['file_bytes'] / 1e6:.2f} MB", _alignment_text(b0), "—"])
    lines += [tabulate(size_rows, headers=["Model", "Params", "Params ↓", "MACs", "MACs ↓", "Theoretical speed-up",
                                           "ONNX file", "Widths not ×8", "Prune s (+ own training s)"],
                       tablefmt="github", disable_numparse=True), ""]
    lines += _unstructured_note(vs, labels)
    lines += _quantized_section(results)
    lines += _equal_latency_section(results, labels)
    lines += _latency_section(results, labels)
    lines += _precision_speedup_section(results, labels)
    lines += _plots_section(results)
    lines += _onnx_section(vs)
    lines += _environment_section(results)
    if results["skipped"]:
        lines += ["## Skipped", ""] + [f"- {s}" for s in _skip_lines(results["skipped"])] + [""]
    return "\n".join(lines)


def _int8_flag_lines(vs: list[dict[str, Any]]) -> list[str]:
    """A warning at the top when an INT8 file lost more accuracy than the plan's tolerance, or failed parity."""
    bad = [v for v in vs if v.get("int8") and (v["int8"]["accuracy"]["within_tolerance"] is False
                                               or not v["int8"]["parity"]["ok"])]
    if not bad:
        return []
    tol = bad[0]["int8"]["accuracy"]["tolerance_points"]
    items = [f"{v['id']} ({v['int8']['accuracy']['drop_points']:+.2f} points"
             + ("" if v["int8"]["parity"]["ok"] else ", parity missed") + ")" for v in bad]
    return [f"> **Warning: INT8 flagged** — beyond the tolerance (top-1 drop ≤ {_points(tol)} vs the fp32 file, parity "
            f"as stated under INT8 and FP16 files): {'; '.join(items)}. See the INT8 section before shipping them.", ""]


def _significance_lines(results: dict[str, Any], labels: list[str], n_seeds: int) -> list[str]:
    if n_seeds < 2:
        return ["One seed: the figures above carry no ± and **no comparison between them is significant** — a "
                "difference of this size may be seed noise. Run ≥ 2 seeds (the paper used 5) for a test.", ""]
    found = comparisons(results, labels)
    if not found:
        return []
    rows = [[label, f"{c.a} vs {c.b}", f"{c.n_a} / {c.n_b}", f"{c.difference:+.2f}",
             "—" if c.p_value is None else f"{c.p_value:.3f}", c.verdict] for label, c in found]
    return ["Do the differences exceed the seed noise? " + METHOD + ". *Indistinguishable* means the difference did "
            "not exceed the seed noise with this many seeds, not that the two are equal.", "",
            tabulate(rows, headers=["Pruned model", "Comparison", "Seeds", "Difference (pts)", "p", "Verdict"],
                     tablefmt="github", disable_numparse=True), ""]


def _mb(n: int | None) -> str:
    return "—" if n is None else f"{n / 1e6:.2f} MB"


def _points(x: float) -> str:
    return f"{x:g} point{'' if x == 1 else 's'}"


def _p99_tol(tol: dict[str, float]) -> float:
    return tol["p99_logit_error_rel"]


def _logit_error_text(parity: dict[str, Any]) -> str:
    return f"{100 * parity['p99_logit_error_rel']:.2f} % ({100 * parity['max_logit_error_rel']:.2f} %)"


def _quantized_section(results: dict[str, Any]) -> list[str]:
    vs = results["variants"]
    have = [p for p in ("int8", "fp16") if any(v.get(p) for v in vs)]
    if not have:
        return []
    lines = ["## INT8 and FP16 files", ""]
    for p in have:
        first = next(v[p] for v in vs if v.get(p))
        made, tol = first.get("made", {}), first["parity"]["tolerance"]
        if p == "int8":
            lines.append(f"INT8: {made.get('library', 'onnxruntime quantize_static')} after {made.get('preprocess')}; "
                         f"{made.get('format')}, weights {made.get('weights')}, activations {made.get('activations')}; "
                         f"calibration {made.get('calibrator')} over {made.get('calibration_images')} training images "
                         f"— {made.get('calibration_sample')}. Tolerance: top-1 drop ≤ "
                         f"{_points(first['accuracy']['tolerance_points'])} vs the fp32 file (else flagged ⚠); parity "
                         f"≥ {100 * tol['min_top1_agreement']:.0f} % top-1 agreement and a 99th-percentile logit "
                         f"error ≤ {100 * _p99_tol(tol):.0f} % of the fp32 logit range, over the test split (the "
                         "maximum is shown for information: Entropy/Percentile calibration clips rare outliers).")
        else:
            lines.append(f"FP16: {made.get('converter')}, {made.get('io')}; for GPU runtimes (verified here on ONNX "
                         f"Runtime CPU, not timed on CPU). Parity ≥ {100 * tol['min_top1_agreement']:.0f} % agreement, "
                         f"p99 logit error ≤ {100 * _p99_tol(tol):.0f} % of the range.")
        lines.append("")
    rows = []
    for v in vs:
        for p in have:
            q = v.get(p)
            if not q:
                continue
            acc = q["accuracy"]
            within = acc["within_tolerance"]
            rows.append([v["id"], PRECISION_TITLES[p], f"{_mb(q['file_bytes'])} ({_mb(v['file_bytes'])})",
                         "pass" if q["checker_ok"] else "FAIL", f"{100 * q['parity']['top1_agreement']:.1f} %",
                         _logit_error_text(q["parity"]), "pass" if q["parity"]["ok"] else "⚠ FAIL",
                         f"{acc['fp32_top1']:.2f}", f"{acc['top1']:.2f}", f"{-acc['drop_points']:+.2f}",
                         "—" if within is None else ("yes" if within else "⚠ no")])
    lines += [tabulate(rows, headers=["Variant", "Precision", "File (fp32 file)", "Checker", "Top-1 agreement",
                                      "Logit error / range: p99 (max)", "Parity", "Top-1 fp32 file", "Top-1", "Δ top-1 (pts)",
                                      "Within tolerance"], tablefmt="github", disable_numparse=True), ""]
    return lines


def _order_labels(labels: list[str], vs: list[dict[str, Any]]) -> list[str]:
    """A `reduced` entry matched to another entry's cost is listed right after that entry."""
    match = {}
    for v in vs:
        p = v["prune"]
        if p and p["method"] == "reduced":
            target = (p.get("options") or {}).get("match_macs_of") or (p.get("options") or {}).get("match_params_of")
            if target in labels:
                match[p["label"]] = target
    out = [label for label in labels if label not in match]
    for label, target in match.items():
        out.insert(out.index(target) + 1 + sum(1 for x in out if match.get(x) == target), label)
    return out


def _reduced_note(vs: list[dict[str, Any]], labels: list[str]) -> list[str]:
    out = []
    for label in labels:
        v = next((v for v in vs if v["prune"] and v["prune"]["label"] == label), None)
        if v and v["prune"]["method"] == "reduced":
            opts = v["prune"].get("options") or {}
            what = (f"at the {'params' if opts.get('match_params_of') else 'MACs'} of "
                    f"{opts.get('match_macs_of') or opts.get('match_params_of')}" if opts.get("match_macs_of")
                    or opts.get("match_params_of") else "at its ratio's cost")
            out.append(f"- **{label}**: Crowley et al.'s *reduced* baseline, the dense network uniformly thinner {what}, "
                       "trained only from scratch (no fine-tuning column).")
    return out + [""] if out else []


def _shared_note(vs: list[dict[str, Any]]) -> list[str]:
    """From-scratch runs that several entries share (equal planned widths: the same network, recipe, data and seed)."""
    runs: dict[str, list[dict[str, Any]]] = {}
    for v in vs:
        if v.get("shared_with"):
            runs.setdefault(v["run"], []).append(v)
    out = []
    for run, members in runs.items():
        out.append(f"- {members[0]['title']} of {', '.join(sorted(m['prune']['label'] for m in members))} is one "
                   f"training run (`{run}`): their pruned architectures are the same widths, so training from scratch "
                   "is the same computation.")
    return out + [""] if out else []


def _alignment_text(v: dict[str, Any]) -> str:
    """Conv/linear layers (classifier excluded) whose output width is not a multiple of 8: slow kernels (see
    prunebench.metrics.alignment); ``round_to = 8`` in the [[prune]] entry avoids them."""
    a = v.get("alignment")
    return f"{a['misaligned']}/{a['layers']}" if a else "—"


def _unstructured_note(vs: list[dict[str, Any]], labels: list[str]) -> list[str]:
    """Masked (unstructured) methods keep dense shapes: their MACs above, ONNX file and latency are dense."""
    out = []
    for label in labels:
        v = next(v for v in vs if v["prune"] and v["prune"]["label"] == label)
        method = v["prune"]["method"]
        if v["prune"].get("structured", True):
            continue
        nz = v.get("nonzero") or {}
        counts = (f" Nonzero: {nz['params'] / 1e6:.3f}M params, {nz['macs'] / 1e6:.1f}M MACs "
                  f"(Scratch-B's budget uses these)." if nz else "")
        out.append(f"- **{label}** is unstructured ({method}): weights are masked, shapes stay dense, so the params, "
                   f"MACs and ONNX file above are dense and dense runtimes (PyTorch, ONNX Runtime) see no speed-up."
                   + counts)
    return out + [""] if out else []


def _reduction(base: dict[str, Any] | None, v: dict[str, Any], key: str) -> str:
    return f"{100 * (1 - v[key] / base[key]):.1f} %" if base else "—"


def _arithmetic(results: dict[str, Any]) -> str:
    """``"; trained in bf16"`` (the resolved training arithmetic of every variant, from results.json), or ``""`` for runs
    recorded before it was stored."""
    found = sorted({v["training"].get("precision") for v in results["variants"]} - {None})
    return f"; trained in {' and '.join(found)}" if found else ""


def _rows_of(v: dict[str, Any], precision: str) -> list[dict[str, Any]]:
    q = v if precision == "fp32" else v.get(precision)
    return (q or {}).get("latency", [])


def _cell_row(v: dict[str, Any], precision: str, cell: tuple[str, str, int, int]) -> dict[str, Any] | None:
    return next((r for r in _rows_of(v, precision) if (r["runtime"], r["device"], r["batch"], r["threads"]) == cell),
                None)


def _speedup_text(s: dict[str, Any] | None, ref_row: dict[str, Any] | None = None,
                  row: dict[str, Any] | None = None) -> str:
    """``1.42× [1.36, 1.50]`` (ratio of medians, paired bootstrap CI); a bare ratio of medians when no CI was kept."""
    if s is not None:
        return f"{s['speedup']:.2f}× [{s['ci_low']:.2f}, {s['ci_high']:.2f}]"
    if ref_row is not None and row is not None:
        return f"{ref_row['median_ms'] / row['median_ms']:.2f}×"
    return "—"


def _latency_section(results: dict[str, Any], labels: list[str]) -> list[str]:
    vs = results["variants"]
    base = [v for v in vs if v["regime"] == "baseline"]
    if not base or not any(_rows_of(base[0], p) for p in ("fp32", "int8", "fp16")):
        return []
    b0 = base[0]
    seed = b0["seed"]
    precisions = [p for p in ("fp32", "int8", "fp16") if _rows_of(b0, p)]
    lines = [f"## Latency (seed {seed}; median ms per call [IQR]; measured speed-up vs the baseline in the same "
             "precision / theoretical MACs speed-up)", ""]
    cells = sorted({(r["runtime"], r["device"], r["batch"], r["threads"]) for p in precisions for r in _rows_of(b0, p)})
    mine = [v for label in labels for v in vs if v["prune"] and v["prune"]["label"] == label and v["seed"] == seed]
    rows = []
    for cell in cells:
        runtime, device, batch, threads = cell
        where = f"{runtime} {device}" + (f" {threads}T" if device == "cpu" else "")
        for precision in precisions:
            b = _cell_row(b0, precision, cell)
            if b is None:
                continue
            bid = paths.precision_key(run_id(b0), precision)
            for v in [b0, *mine]:   # the baseline's row first: its speed-ups are 1.00× by definition
                r = _cell_row(v, precision, cell)
                if r is None:
                    continue
                vid = paths.precision_key(run_id(v), precision)
                own = "—" if precision == "fp32" else _speedup_text(find_speedup(results, vid, run_id(v), cell),
                                                                    _cell_row(v, "fp32", cell), r)
                measured = "1.00×" if v is b0 else _speedup_text(find_speedup(results, vid, bid, cell), b, r)
                rows.append([where, batch, "baseline" if v is b0 else f"{v['prune']['label']} {v['regime']}",
                             PRECISION_TITLES[precision], f"{r['median_ms']:.3f} [{r['iqr_ms']:.3f}]", measured, own,
                             f"{b0['macs'] / v['macs']:.2f}×", f"{r['throughput_ips']:.0f}"])
    lines += [tabulate(rows, headers=["Runtime", "Batch", "Variant", "Precision", "Median [IQR] ms", "Measured speed-up",
                                      "vs own fp32", "Theoretical", "Images/s"], tablefmt="github", disable_numparse=True), ""]
    lines += ["All variants and files of a seed were measured interleaved in one process (A B C A B C …); threads as "
              "listed (ONNX Runtime: intra-op = threads, inter-op 1, spinning off; OpenVINO: INFERENCE_NUM_THREADS = "
              "threads, latency hint). Measured speed-up: the baseline's median over the variant's, both in the row's "
              "precision (an INT8 row: pruned + INT8 vs dense + INT8); *vs own fp32*: the same network's fp32 file over "
              "this file."
              + (" Brackets: paired bootstrap 95 % CI over rounds." if results.get("speedups") else ""), ""]
    return lines


def _target_cell(target: str) -> tuple[str, str, int, int] | None:
    """``RUNTIME:DEVICE[:threads=N][:batch=N]`` as a latency cell (runtime, device, batch, threads); None if unreadable
    (the plan validated it; this only reads it back)."""
    parts = target.split(":")
    if len(parts) < 2:
        return None
    keys = dict(p.partition("=")[::2] for p in parts[2:])
    try:
        return parts[0], parts[1], int(keys.get("batch", 1)), int(keys.get("threads", 1))
    except ValueError:
        return None


def _equal_latency_section(results: dict[str, Any], labels: list[str]) -> list[str]:
    """Accuracy at equal measured latency: every entry of a plan with a latency-budget entry, with the latency it
    measured on that entry's target (the seed's interleaved latency stage) next to its fine-tune / Scratch-E /
    Scratch-B accuracy — the paper's question asked in milliseconds."""
    vs = results["variants"]
    budget = [v for v in vs if v["prune"] and (v["prune"].get("target_latency_ms") is not None
                                               or v["prune"].get("target_speedup") is not None)]
    base = [v for v in vs if v["regime"] == "baseline"]
    if not budget or not base:
        return []
    target = budget[0]["prune"]["target"]
    cell = _target_cell(target)
    b0 = base[0]
    b = _cell_row(b0, "fp32", cell) if cell else None
    if b is None:
        return ["## Accuracy at equal measured latency", "",
                f"Not measured: the seed's latency stage has no fp32 row on {target} (add it to [bench]).", ""]
    seed = b0["seed"]
    rows = [["dense (baseline)", "—", f"{b['median_ms']:.3f} [{b['iqr_ms']:.3f}]", "1.00×", f"{b0['macs'] / 1e6:.1f}",
             _mean_std([v["accuracy"]["top1"] for v in base]), "", "", ""]]   # the dense accuracy: Baseline column
    bid = paths.precision_key(run_id(b0), "fp32")
    for label in sorted(labels, key=lambda lb: 0 if any(v["prune"]["label"] == lb for v in budget) else 1):
        mine = [v for v in vs if v["prune"] and v["prune"]["label"] == label]
        timed = next((v for v in mine if v["seed"] == seed and _cell_row(v, "fp32", cell) is not None), None)
        spec = mine[0]["prune"]
        how = (f"budget {spec['target_latency_ms']:g} ms" if spec.get("target_latency_ms") is not None else
               f"budget {spec['target_speedup']:g}×" if spec.get("target_speedup") is not None else
               f"preset {spec['preset']}" if spec.get("preset") else
               f"ratio {spec['ratio']:g}" if spec.get("ratio") is not None else
               f"matched {spec['options'].get('match_macs_of') or spec['options'].get('match_params_of')}")
        if timed is None:
            latency, speed, macs = "—", "—", "—"
        else:
            r = _cell_row(timed, "fp32", cell)
            latency = f"{r['median_ms']:.3f} [{r['iqr_ms']:.3f}]"
            speed = _speedup_text(find_speedup(results, paths.precision_key(run_id(timed), "fp32"), bid, cell), b, r)
            macs = f"{timed['macs'] / 1e6:.1f}"
        accs = [_mean_std([v["accuracy"]["top1"] for v in mine if v["regime"] == regime])
                for regime in ("finetune", "scratch-e", "scratch-b")]
        rows.append([f"{label} ({spec['method']})", how, latency, speed, macs, "", *accs])
    return ["## Accuracy at equal measured latency", "",
            f"Latency on {target} (seed {seed}: every variant measured interleaved in one process; median ms per call "
            "[IQR]; speed-up over the dense baseline with its paired bootstrap 95 % CI). Top-1 % at the final epoch.", "",
            tabulate(rows, headers=["Model", "How pruned", "Median [IQR] ms", "Speed-up", "MMACs", "Baseline",
                                    "Fine-tuned", "Scratch-E", "Scratch-B"], tablefmt="github", disable_numparse=True),
            ""]


def _precision_speedup_section(results: dict[str, Any], labels: list[str]) -> list[str]:
    """Pruned vs dense in fp32 next to pruned + INT8 vs dense + INT8, with both accuracies: what a deployment ships."""
    vs = results["variants"]
    base = [v for v in vs if v["regime"] == "baseline"]
    if not base or not _rows_of(base[0], "int8"):
        return []
    b0 = base[0]
    seed = b0["seed"]
    cells = sorted({(r["runtime"], r["device"], r["batch"], r["threads"]) for r in _rows_of(b0, "int8")})
    rows = []
    for cell in cells:
        runtime, device, batch, threads = cell
        where = f"{runtime} {device}" + (f" {threads}T" if device == "cpu" else "")
        b32, b8 = _cell_row(b0, "fp32", cell), _cell_row(b0, "int8", cell)
        for v in [b0] + [v for label in labels for v in vs if v["prune"] and v["prune"]["label"] == label
                         and v["seed"] == seed]:
            r32, r8 = _cell_row(v, "fp32", cell), _cell_row(v, "int8", cell)
            if r8 is None or not v.get("int8"):
                continue
            vid8, bid8 = paths.precision_key(run_id(v), "int8"), paths.precision_key(run_id(b0), "int8")
            is_base = v is b0
            rows.append([where, batch, "baseline" if is_base else f"{v['prune']['label']} {v['regime']}",
                         "1.00×" if is_base else (_speedup_text(find_speedup(results, run_id(v), run_id(b0), cell), b32, r32)
                                                  if r32 else "—"),
                         "1.00×" if is_base else _speedup_text(find_speedup(results, vid8, bid8, cell), b8, r8),
                         _speedup_text(find_speedup(results, vid8, run_id(v), cell), r32, r8) if r32 else "—",
                         f"{v['accuracy']['onnx_top1']:.2f}", f"{v['int8']['accuracy']['top1']:.2f}"
                         + ("" if v["int8"]["accuracy"]["within_tolerance"] is not False else " ⚠")])
    if not rows:
        return []
    return [f"## Pruning and INT8 together (seed {seed})", "",
            tabulate(rows, headers=["Runtime", "Batch", "Variant", "fp32: pruned vs dense", "INT8: pruned + INT8 vs "
                                    "dense + INT8", "INT8 vs fp32 (same network)", "Top-1 fp32 file",
                                    "Top-1 INT8 file"], tablefmt="github", disable_numparse=True), "",
            "Speed-ups are ratios of medians from the interleaved run above (brackets: paired bootstrap 95 % CI); "
            "top-1 of both files from ONNX Runtime on the test split. ⚠: INT8 beyond the tolerance.", ""]


def _plots_section(results: dict[str, Any]) -> list[str]:
    lines = ["## Plots", "", f"![accuracy vs MACs and vs ONNX Runtime CPU latency]({paths.PARETO})", ""]
    for runtime, device, batch in latency_cells(results):
        lines += [f"![accuracy vs {runtime} {device} latency, batch {batch}]"
                  f"({paths.pareto_file(runtime, device, batch)})", ""]
    return lines


def _environment_section(results: dict[str, Any]) -> list[str]:
    env, cfg = results["environment"], results["config"]
    bench = cfg.get("bench", {})
    rows = [["CPU", f"{env.get('cpu')} ({env.get('cpu_count')} CPUs)"],
            ["GPU", env.get("gpu") or "none"],
            ["Python / platform", f"{env.get('python')} / {env.get('platform')}"],
            ["Packages", ", ".join(f"{k} {v}" for k, v in sorted(env.get("versions", {}).items()))],
            ["ONNX Runtime providers", ", ".join(env.get("onnxruntime_providers", [])) or "none"],
            ["Latency settings", f"threads {bench.get('threads')}, batch sizes {bench.get('batch_sizes')}, "
                                 f"≥ {bench.get('warmup')} warm-up calls, ≤ {bench.get('repeats')} rounds"],
            ["Commit", str(env.get("git_commit"))], ["Results written", str(results.get("created"))]]
    if env.get("gpu"):
        rows.insert(2, ["CUDA / cuDNN / driver", f"{env.get('cuda')} / {env.get('cudnn')} / {env.get('driver')}"])
    return ["## Environment", "", tabulate(rows, headers=["What", "Value"], tablefmt="github", disable_numparse=True), ""]


def _onnx_section(vs: list[dict[str, Any]]) -> list[str]:
    rows = [[v["id"], "pass" if v["onnx"]["ok"] else "FAIL", f"{v['onnx']['max_abs_diff']:.1e}",
             "pass" if v["onnx"]["slim_ok"] else "FAIL", f"{v['accuracy']['onnx_top1_gap']:.2f}",
             f"{v['onnx']['opset']}"] for v in vs]
    return ["## ONNX verification", "", tabulate(rows, headers=["Variant", "Checks", "Max abs(ORT − torch)", "Slim shapes",
                                                               "Top-1 gap (pts)", "Opset"], tablefmt="github", disable_numparse=True), ""]


def _skip_lines(skipped: list[dict[str, Any]]) -> list[str]:
    """One line per (runtime, device, reason), with the batch sizes and how many files it covers."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for s in skipped:
        what = " ".join(str(s[k]) for k in ("runtime", "device") if k in s)
        g = groups.setdefault((what, s["reason"]), {"batches": [], "variants": set()})
        if "batch" in s and s["batch"] not in g["batches"]:
            g["batches"].append(s["batch"])
        if "variant" in s:
            g["variants"].add(s["variant"])
    out = []
    for (what, reason), g in groups.items():
        batches = f" batch {', '.join(map(str, sorted(g['batches'])))}" if g["batches"] else ""
        files = f" ({len(g['variants'])} file{'s' if len(g['variants']) != 1 else ''})" if g["variants"] else ""
        out.append(f"{what}{batches}{files}: skipped — {reason}")
    return out
