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
