"""report.md: the paper-style accuracy table, sizes, latency and ONNX checks, from results.json alone."""

from __future__ import annotations

from typing import Any, Callable, Sequence

from tabulate import tabulate

from prunebench.metrics.seeds import mean_std_text

Section = Callable[[dict[str, Any], list[str]], list[str]]   # (results, ordered labels) -> Markdown lines
_mean_std = mean_std_text

def _cost_text(cost: dict[str, Any] | None) -> str:
    if not cost or cost.get("prune_s") is None:
        return "—"
    extra = f" (+ {cost['sparse_train_s']:.0f})" if cost.get("sparse_train_s") is not None else ""
    return f"{cost['prune_s']:.2f}{extra}"


def render_markdown(results: dict[str, Any], sections: Sequence[Section] = ()) -> str:
    cfg = results["config"]
    env = results["environment"]
    vs = results["variants"]
    base = [v for v in vs if v["regime"] == "baseline"]
    labels = _order_labels(list(dict.fromkeys(v["prune"]["label"] for v in vs if v["prune"])), vs)
    lines = [
        f"# prunebench report: {cfg['model']} on {cfg['data']}",
        "",
        f"Seeds {list(cfg['seeds'])}; {results['data']['train']} training and {results['data']['test']} test images "
        f"({results['data']['num_classes']} classes"
        + (f"; {results['data']['skipped_images']} unreadable image(s) skipped"
           if results['data'].get('skipped_images') else "") + "); "
        f"baseline {cfg['baseline']['epochs']} epochs, fine-tune {cfg['finetune']['epochs']} epochs at lr {cfg['finetune']['lr']}.",
        f"Machine: {env['cpu']} ({env['cpu_count']} CPUs){', GPU ' + env['gpu'] if env.get('gpu') else ''}; "
        f"torch {env['versions'].get('torch')}, torch-pruning {env['versions'].get('torch-pruning')}, "
        f"onnxruntime {env['versions'].get('onnxruntime') or env['versions'].get('onnxruntime-gpu')}; "
        f"commit {env.get('git_commit')}.",
        "",
        "## Accuracy (top-1 %, final epoch; mean ± std over seeds)",
        "",
    ]
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
                                      "Scratch-B epochs"], tablefmt="github"), ""]
    lines += _reduced_note(vs, labels) + _shared_note(vs)
    for section in sections:
        lines += section(results, labels)
    best_rows = []
    for v in vs:
        best_rows.append([v["id"], f"{v['accuracy']['top1']:.2f}", f"{v['accuracy']['best_top1']:.2f} "
                          f"(ep {v['accuracy']['best_epoch']})", f"{v['accuracy']['top5']:.2f}",
                          f"{v['accuracy']['onnx_top1']:.2f}", v["training"]["epochs"]])
    lines += ["Per variant (best-over-epochs is selected on the test set, as the paper's code did: for comparison only):",
              "", tabulate(best_rows, headers=["Variant", "Top-1 final", "Top-1 best", "Top-5", "ONNX RT top-1",
                                               "Epochs"], tablefmt="github"), ""]

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
                       tablefmt="github"), ""]
    lines += _unstructured_note(vs, labels)
    lines += _latency_section(results, labels)
    lines += _onnx_section(vs)
    if results["skipped"]:
        lines += ["## Skipped", ""] + [f"- {_skip_text(s)}" for s in results["skipped"]] + [""]
    return "\n".join(lines)


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


def _latency_section(results: dict[str, Any], labels: list[str]) -> list[str]:
    vs = results["variants"]
    base = [v for v in vs if v["regime"] == "baseline"]
    if not base or not base[0]["latency"]:
        return []
    lines = ["## Latency (median ms per call [IQR]; measured speed-up vs baseline / theoretical MACs speed-up)", ""]
    keys = sorted({(r["runtime"], r["device"], r["batch"], r["threads"]) for r in base[0]["latency"]})
    rows = []
    for runtime, device, batch, threads in keys:
        def row_of(v: dict[str, Any]) -> dict[str, Any] | None:
            return next((r for r in v["latency"] if (r["runtime"], r["device"], r["batch"], r["threads"]) ==
                         (runtime, device, batch, threads)), None)

        b = row_of(base[0])
        where = f"{runtime} {device}" + (f" {threads}T" if device == "cpu" else "")
        rows.append([where, batch, "baseline", f"{b['median_ms']:.3f} [{b['iqr_ms']:.3f}]", "1.00×", "1.00×",
                     f"{b['throughput_ips']:.0f}"])
        for label in labels:
            for v in vs:
                if v["prune"] and v["prune"]["label"] == label and v["seed"] == base[0]["seed"]:
                    r = row_of(v)
                    if r is None:
                        continue
                    rows.append([where, batch, f"{label} {v['regime']}", f"{r['median_ms']:.3f} [{r['iqr_ms']:.3f}]",
                                 f"{b['median_ms'] / r['median_ms']:.2f}×" + _ci_text(results, v["id"], r),
                                 f"{base[0]['macs'] / v['macs']:.2f}×", f"{r['throughput_ips']:.0f}"])
    lines += [tabulate(rows, headers=["Runtime", "Batch", "Variant", "Median [IQR] ms", "Measured speed-up",
                                      "Theoretical", "Images/s"], tablefmt="github"), ""]
    lines += ["Variants were measured interleaved in one process (A B C A B C …); threads as listed "
              "(ONNX Runtime: intra-op = threads, inter-op 1, spinning off)."
              + (" Brackets after a speed-up: paired bootstrap 95 % CI over rounds." if results.get("speedups") else ""),
              ""]
    return lines


def _ci_text(results: dict[str, Any], variant: str, row: dict[str, Any]) -> str:
    s = next((s for s in results.get("speedups", []) if s["variant"] == variant and
              (s["runtime"], s["device"], s["batch"], s["threads"]) ==
              (row["runtime"], row["device"], row["batch"], row["threads"])), None)
    return f" [{s['ci_low']:.2f}, {s['ci_high']:.2f}]" if s else ""


def _onnx_section(vs: list[dict[str, Any]]) -> list[str]:
    rows = [[v["id"], "pass" if v["onnx"]["ok"] else "FAIL", f"{v['onnx']['max_abs_diff']:.1e}",
             "pass" if v["onnx"]["slim_ok"] else "FAIL", f"{v['accuracy']['onnx_top1_gap']:.2f}",
             f"{v['onnx']['opset']}"] for v in vs]
    return ["## ONNX verification", "", tabulate(rows, headers=["Variant", "Checks", "Max |ORT − torch|", "Slim shapes",
                                                               "Top-1 gap (pts)", "Opset"], tablefmt="github"), ""]


def _skip_text(s: dict[str, Any]) -> str:
    what = " ".join(str(s[k]) for k in ("runtime", "device") if k in s) + (f" batch {s['batch']}" if "batch" in s else "")
    return f"{what}: skipped — {s['reason']}"


