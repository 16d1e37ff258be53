"""pareto.png: accuracy against MACs and against measured latency."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prunebench.core.io import atomic_write

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
    titles = {v["regime"]: v.get("title") or v["regime"] for v in vs}
    handles = [Line2D([], [], linestyle="", marker=markers.get(r, "x"), color="black", label=titles[r])
               for r in regimes]
    handles += [Line2D([], [], linestyle="", marker="o", color=colour[label], label=label) for label in labels]
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(0.83, 0.5), fontsize=7, frameon=False)
    fig.suptitle(f"{results['config']['model']} on {results['config']['data']}: accuracy vs cost")
    fig.tight_layout(rect=(0, 0, 0.82, 1))
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)


MARKERS = {"baseline": "*", "finetune": "o", "scratch-e": "s", "scratch-b": "^"}


def latency_points(results: dict[str, Any], runtime: str, device: str, batch: int) -> list[dict[str, Any]]:
    """Every (variant, precision) timed on one cell, with the accuracy of that file: fp32 → the final-epoch top-1
    (PyTorch; the fp32 ONNX file agrees within 0.1), INT8 / FP16 → the quantized file's own top-1 (ONNX Runtime)."""
    out = []
    for v in results["variants"]:
        for precision in ("fp32", "int8", "fp16"):
            q = v if precision == "fp32" else v.get(precision)
            if not q:
                continue
            row = next((r for r in q.get("latency", []) if (r["runtime"], r["device"], r["batch"]) ==
                        (runtime, device, batch)), None)
            if row is None:
                continue
            top1 = v["accuracy"]["top1"] if precision == "fp32" else q["accuracy"]["top1"]
            out.append({"variant": v, "precision": precision, "median_ms": row["median_ms"], "top1": top1})
    return out


def plot_latency_pareto(results: dict[str, Any], runtime: str, device: str, batch: int, path: Path) -> bool:
    """Accuracy vs measured median latency on one (runtime, device, batch): colour = pruned model, marker = regime,
    filled = fp32, hollow = INT8, dotted edge = FP16. Returns False (and writes nothing) when the cell has no rows."""
    points = latency_points(results, runtime, device, batch)
    if not points:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    vs = results["variants"]
    labels = list(dict.fromkeys(v["prune"]["label"] for v in vs if v["prune"]))
    cmap = plt.get_cmap("tab20")
    colour = {label: cmap(i % 20) for i, label in enumerate(labels)}
    fig, ax = plt.subplots(figsize=(8.5, 4.6))
    for p in points:
        v = p["variant"]
        c = colour[v["prune"]["label"]] if v["prune"] else "black"
        style = {"marker": MARKERS.get(v["regime"], "x"), "s": 110 if v["regime"] == "baseline" else 55,
                 "edgecolors": c, "linewidths": 1.4, "facecolors": c if p["precision"] == "fp32" else "none",
                 "linestyle": ":" if p["precision"] == "fp16" else "-"}
        ax.scatter(p["median_ms"], p["top1"], **style)
    ax.set_xlabel(f"{runtime} {device} latency, batch {batch} (median ms per call)")
    ax.set_ylabel("top-1 % (test split)")
    ax.grid(alpha=0.3)
    precisions = list(dict.fromkeys(p["precision"] for p in points))
    handles = [Line2D([], [], linestyle="", marker=MARKERS.get(r, "x"), color="black", label=r)
               for r in dict.fromkeys(p["variant"]["regime"] for p in points)]
    handles += [Line2D([], [], linestyle="", marker="o", color="grey", markerfacecolor="grey" if pr == "fp32" else "none",
                       label=pr.upper() if pr != "fp32" else "fp32") for pr in precisions]
    handles += [Line2D([], [], linestyle="", marker="o", color=colour[label], label=label) for label in labels]
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(0.76, 0.5), fontsize=7, frameon=False)
    ax.set_title(f"{results['config']['model']}: accuracy vs {runtime} {device} latency, batch {batch}", fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.75, 1))
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)
    return True


def latency_cells(results: dict[str, Any]) -> list[tuple[str, str, int]]:
    """Every (runtime, device, batch) that has a latency row, in a stable order."""
    cells = set()
    for v in results["variants"]:
        for q in (v, v.get("int8"), v.get("fp16")):
            for r in (q or {}).get("latency", []):
                cells.add((r["runtime"], r["device"], r["batch"]))
    return sorted(cells)
