"""results.json (versioned schema) and report.md: the paper-style table plus what deployment cares about.

Schema ``prunebench.results/1``::

    {"schema": "prunebench.results/1", "created": ISO-8601, "environment": {...manifest...}, "config": {...plan...},
     "data": {"name", "train", "test", "num_classes", "input_shape"},
     "counting_rule": str,
     "variants": [{"id", "seed", "regime", "prune": {method, preset, ratio, round_to, label} | null,
                   "accuracy": {"top1", "top5", "best_top1", "best_epoch", "onnx_top1", "onnx_top5", "onnx_top1_gap"},
                   "params", "macs", "macs_cross_check", "file_bytes", "onnx": {...checks...},
                   "training": {"epochs", "lr", "wall_s", "budget"}, "widths",
                   "alignment": {"multiple", "layers", "misaligned", "examples"} (conv/linear widths not ×8),
                   "latency": [{"runtime", "device", "batch", "threads", "n", "median_ms", "iqr_ms", "p90_ms", "p99_ms",
                                "mean_ms", "throughput_ips", "warmup_calls", "warmup_stable", "peak_mem_mb", ...}]}],
     "speedups": [{"variant", "reference", "runtime", "device", "batch", "threads", "speedup", "ci_low", "ci_high",
                   "ci_level", "theoretical", "efficiency"}]   (see prunebench.bench.harness),
     "skipped": [{"runtime"?, "device", "batch"?, "reason"}]}

Accuracy is the **final-epoch** test top-1 (primary); ``best_top1`` (best over epochs, as the paper's code reported) is
kept separately and labelled as such.

``regime`` is one of baseline | finetune | scratch-e | scratch-b, plus, when the plan lists the opt-in regimes
(prunebench/regimes_extra.py): ``lottery`` → lottery-lr0.1, lottery-lr0.01 (original init of the large model, replayed
prune) and random-init-lr0.01 (Scratch-E's fresh init at lr 0.01), whose ``training.budget`` is {"init", "lr"};
``scale-family`` → scale-<f>x (the pruned width profile scaled to f × its MACs, trained from scratch), whose
``training.budget`` is {"rule", "factor", "target_macs", "macs", "rel_error", "multiplier", "clamped"}. A ``reduced``
[[prune]] entry (Crowley et al.'s uniformly thinner net) has no finetune variant; its ``prune.options`` may name the entry
it matches (match_macs_of / match_params_of). All additions to schema 1 are additive.
"""

from __future__ import annotations

import datetime as _dt
import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tabulate import tabulate

from prunebench.bench.environment import manifest
from prunebench.io import atomic_write, read_json, write_json, write_text

if TYPE_CHECKING:
    from prunebench.config import ExperimentConfig
    from prunebench.runner import Variant

SCHEMA = "prunebench.results/1"
COUNTING_RULE = "MACs of Conv and Linear layers for one image (torch FlopCounterMode / 2); BN, activations, pooling and " \
                "shortcuts not counted"
REGIME_TITLES = {"baseline": "Baseline", "finetune": "Fine-tuned", "scratch-e": "Scratch-E", "scratch-b": "Scratch-B",
                 "lottery-lr0.1": "Lottery init, lr 0.1", "lottery-lr0.01": "Lottery init, lr 0.01",
                 "random-init-lr0.01": "Random init, lr 0.01"}   # scale-<f>x variants are titled by their name


def collect(out: Path, cfg: "ExperimentConfig", variants: list["Variant"], data: dict[str, Any]) -> dict[str, Any]:
    latency: dict[str, list[dict[str, Any]]] = {}
    skipped: list[dict[str, Any]] = []
    speedups: list[dict[str, Any]] = []
    for seed in cfg.seeds:
        path = out / f"seed{seed}" / "latency.json"
        if path.exists():
            rec = read_json(path)
            for row in rec["rows"]:
                latency.setdefault(row["variant"], []).append({k: v for k, v in row.items() if k != "variant"})
            skipped += [s for s in rec["skipped"] if s not in skipped]
            speedups += rec.get("speedups", [])
    records = []
    for v in variants:
        m = read_json(v.directory / "measure.json")
        t = read_json(v.directory / "train.json")
        records.append({
            "id": v.key, "seed": v.seed, "regime": v.regime,
            "prune": None if v.spec is None else {**_spec_dict(v.spec), "label": v.spec.label},
            "accuracy": {**m["accuracy"], "best_top1": t["best_top1"], "best_epoch": t["best_epoch"]},
            "params": m["counts"]["params"], "macs": m["counts"]["macs"], "macs_cross_check": m["macs_cross_check"],
            "nonzero": m.get("nonzero_counts"),
            "file_bytes": m["onnx"]["file_bytes"], "onnx": m["onnx"],
            "training": {"epochs": t["epochs"], "lr": t.get("config", {}).get("lr"), "wall_s": t.get("wall_s"),
                         "budget": t.get("budget") or None, "loaded_from": t.get("loaded_from")},
            "widths": m["widths"], "alignment": m.get("alignment"), "latency": latency.get(v.key, []),
            "prune_cost": None if v.spec is None else _prune_cost(out / f"seed{v.seed}" / v.spec.label),
        })
    return {"schema": SCHEMA, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "environment": manifest(), "config": cfg.to_dict(), "data": data, "counting_rule": COUNTING_RULE,
            "variants": records, "speedups": speedups, "skipped": skipped}


def _prune_cost(pdir: Path) -> dict[str, Any]:
    """What choosing the architecture cost: the prune step, and the method's own training phase (slimming, SSS, SFP)."""
    rec = pdir / "pruned" / "prune.json"
    sparse = pdir / "sparse" / "train.json"
    return {"prune_s": read_json(rec).get("seconds") if rec.exists() else None,
            "sparse_train_s": read_json(sparse).get("wall_s") if sparse.exists() else None}


def _spec_dict(spec: Any) -> dict[str, Any]:
    import dataclasses

    return dataclasses.asdict(spec)


def write_report(out: Path, cfg: "ExperimentConfig", variants: list["Variant"], data: dict[str, Any]) -> dict[str, Any]:
    results = collect(out, cfg, variants, data)
    write_json(out / "results.json", results)
    write_text(out / "report.md", render_markdown(results))
    try:
        plot_pareto(results, out / "pareto.png")
    except Exception:  # noqa: BLE001 - a plot must never lose the results
        pass
    return results


# ------------------------------------------------------------------------------------------------------------- markdown
def _cost_text(cost: dict[str, Any] | None) -> str:
    if not cost or cost.get("prune_s") is None:
        return "—"
    extra = f" (+ {cost['sparse_train_s']:.0f})" if cost.get("sparse_train_s") is not None else ""
    return f"{cost['prune_s']:.2f}{extra}"


def _mean_std(values: list[float]) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def render_markdown(results: dict[str, Any]) -> str:
    cfg = results["config"]
    env = results["environment"]
    vs = results["variants"]
    base = [v for v in vs if v["regime"] == "baseline"]
    labels = _order_labels(list(dict.fromkeys(v["prune"]["label"] for v in vs if v["prune"])), vs)
    lines = [
        f"# prunebench report: {cfg['model']} on {cfg['data']}",
        "",
        f"Seeds {list(cfg['seeds'])}; {results['data']['train']} training and {results['data']['test']} test images "
        f"({results['data']['num_classes']} classes); "
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
    lines += _reduced_note(vs, labels) + _lottery_section(vs, labels) + _scale_family_section(vs, labels)
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
        v = next(v for v in vs if v["prune"] and v["prune"]["label"] == label and not _is_scale(v))
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


def _is_scale(v: dict[str, Any]) -> bool:
    return v["regime"].startswith("scale-")


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


def _acc(vs: list[dict[str, Any]], label: str, regime: str) -> str:
    return _mean_std([v["accuracy"]["top1"] for v in vs if v["prune"] and v["prune"]["label"] == label
                      and v["regime"] == regime])


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


def _lottery_section(vs: list[dict[str, Any]], labels: list[str]) -> list[str]:
    """Liu et al. 2019 §6: the pruned architecture from the large model's original init vs a random init."""
    rows = []
    for label in labels:
        if not any(v["prune"] and v["prune"]["label"] == label and v["regime"].startswith("lottery-") for v in vs):
            continue
        rows.append([label, _acc(vs, label, "lottery-lr0.1"), _acc(vs, label, "scratch-e"),
                     _acc(vs, label, "lottery-lr0.01"), _acc(vs, label, "random-init-lr0.01")])
    if not rows:
        return []
    return ["## Lottery ticket vs random initialisation (top-1 %, final epoch)", "",
            "Original init = the large model's initial weights of the surviving channels (weight-level: × mask), "
            "replayed from the prune; random init at lr 0.1 is Scratch-E. Same recipe otherwise.", "",
            tabulate(rows, headers=["Pruned model", "Original init, lr 0.1", "Random init, lr 0.1 (Scratch-E)",
                                    "Original init, lr 0.01", "Random init, lr 0.01"], tablefmt="github"), ""]


def _scale_family_section(vs: list[dict[str, Any]], labels: list[str]) -> list[str]:
    """Crowley et al. 2018: the pruned width profile rescaled to other budgets, each trained from scratch."""
    rows = []
    for label in labels:
        members = [v for v in vs if v["prune"] and v["prune"]["label"] == label and _is_scale(v)]
        for regime in dict.fromkeys(v["regime"] for v in members):
            group = [v for v in members if v["regime"] == regime]
            b = group[0]["training"]["budget"] or {}
            rows.append([label, f"{b.get('factor', '?')}×", f"{b.get('target_macs', 0) / 1e6:.2f}M",
                         f"{group[0]['macs'] / 1e6:.2f}M", f"{100 * b.get('rel_error', 0):.1f} %"
                         + (" (clamped)" if b.get("clamped") else ""), f"{group[0]['params'] / 1e6:.3f}M",
                         _mean_std([v["accuracy"]["top1"] for v in group])])
    if not rows:
        return []
    return ["## Scale family (pruned profile rescaled, trained from scratch; top-1 %, final epoch)", "",
            tabulate(rows, headers=["Pruned model", "Factor", "Target MACs", "MACs", "Off target", "Params", "Top-1"],
                     tablefmt="github"), ""]


def _alignment_text(v: dict[str, Any]) -> str:
    """Conv/linear layers (classifier excluded) whose output width is not a multiple of 8: slow kernels (see
    prunebench.bench.alignment); ``round_to = 8`` in the [[prune]] entry avoids them."""
    a = v.get("alignment")
    return f"{a['misaligned']}/{a['layers']}" if a else "—"


def _unstructured_note(vs: list[dict[str, Any]], labels: list[str]) -> list[str]:
    """Masked (unstructured) methods keep dense shapes: their MACs above, ONNX file and latency are dense."""
    from prunebench.pruning import METHODS

    out = []
    for label in labels:
        v = next(v for v in vs if v["prune"] and v["prune"]["label"] == label)
        method = v["prune"]["method"]
        if method not in METHODS or METHODS.get(method).structured:
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


# ------------------------------------------------------------------------------------------------------------- plot
def plot_pareto(results: dict[str, Any], path: Path) -> None:
    """Accuracy vs MACs and vs measured latency. Colour = pruned model (label), marker = regime, so that a plan with many
    methods keeps a legend of (labels + regimes) entries, placed beside the axes rather than over the points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    vs = results["variants"]
    labels = list(dict.fromkeys(v["prune"]["label"] for v in vs if v["prune"]))
    cmap = plt.get_cmap("tab20")
    colour = {label: cmap(i % 20) for i, label in enumerate(labels)}
    markers = {"baseline": "*", "finetune": "o", "scratch-e": "s", "scratch-b": "^"}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    for v in vs:
        style = {"marker": markers.get(v["regime"], "x"), "s": 90 if v["regime"] == "baseline" else 45,
                 "color": colour[v["prune"]["label"]] if v["prune"] else "black", "alpha": 0.85}
        axes[0].scatter(v["macs"] / 1e6, v["accuracy"]["top1"], **style)
        lat = next((r for r in v["latency"] if r["runtime"] == "onnxruntime" and r["device"] == "cpu" and r["batch"] == 1),
                   None)
        if lat:
            axes[1].scatter(lat["median_ms"], v["accuracy"]["top1"], **style)
    axes[0].set_xlabel("MACs (M)")
    axes[1].set_xlabel("ONNX Runtime CPU latency, batch 1 (median ms)")
    for ax in axes:
        ax.set_ylabel("top-1 % (final epoch)")
        ax.grid(alpha=0.3)
    regimes = sorted({v["regime"] for v in vs}, key=lambda r: list(markers).index(r) if r in markers else len(markers))
    handles = [Line2D([], [], linestyle="", marker=markers.get(r, "x"), color="black", label=REGIME_TITLES.get(r, r))
               for r in regimes]
    handles += [Line2D([], [], linestyle="", marker="o", color=colour[label], label=label) for label in labels]
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(0.83, 0.5), fontsize=7, frameon=False)
    fig.suptitle(f"{results['config']['model']} on {results['config']['data']}: accuracy vs cost")
    fig.tight_layout(rect=(0, 0, 0.82, 1))
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
