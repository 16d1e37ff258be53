"""The report: results.json (``results``), report.md (``markdown``), report.html (``html``: the same text, self-contained),
summary.md (``summary``) and the plots (``plot``), written from the records of a finished run. ``write_report`` is what
the pipeline's report stage calls."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from prunebench.core import paths
from prunebench.core.io import write_text
from prunebench.report.convergence import RULE, check
from prunebench.report.html import render_html
from prunebench.report.markdown import Section, _order_labels, render_markdown
from prunebench.report.plot import latency_cells, plot_latency_pareto, plot_pareto
from prunebench.report.results import COUNTING_RULE, SCHEMA, collect
from prunebench.report.statistics import comparisons
from prunebench.report.summary import render_summary

if TYPE_CHECKING:
    from prunebench.config import ExperimentConfig

__all__ = ["COUNTING_RULE", "SCHEMA", "Section", "collect", "render_html", "render_markdown", "render_summary",
           "plot_pareto", "write_report", "write_documents"]


def labels_of(results: dict[str, Any]) -> list[str]:
    """The [[prune]] labels of ``results`` in report order (a matched ``reduced`` entry right after the entry it
    matches)."""
    vs = results["variants"]
    return _order_labels(list(dict.fromkeys(v["prune"]["label"] for v in vs if v["prune"])), vs)


def add_analysis(results: dict[str, Any]) -> dict[str, Any]:
    """results.json's ``statistics`` (the seed-noise comparisons) and ``convergence`` (per baseline) sections."""
    from prunebench.metrics.seeds import METHOD

    results["statistics"] = {"method": METHOD, "comparisons": [
        {"pruned_model": label, **c.to_dict()} for label, c in comparisons(results, labels_of(results))]}
    results["convergence"] = {"rule": RULE, "baselines": [
        {"seed": v["seed"], **check(v["training"].get("history_top1") or []).to_dict()}
        for v in results["variants"] if v["regime"] == "baseline"]}
    return results


def write_documents(out: Path, results: dict[str, Any], sections: Sequence[Section] = ()) -> None:
    """report.md, the plots, report.html and summary.md from a results document (the report stage, or a re-render)."""
    out = Path(out)
    md = render_markdown(results, sections)
    write_text(out / paths.REPORT, md)
    images: dict[str, bytes] = {}
    plots = [(paths.PARETO, lambda p: plot_pareto(results, p))]
    plots += [(paths.pareto_file(*c), lambda p, c=c: plot_latency_pareto(results, *c, p)) for c in latency_cells(results)]
    for name, draw in plots:
        try:
            drawn = draw(out / name)
        except Exception:  # noqa: BLE001 - a plot must never lose the results
            continue
        if drawn is not False and (out / name).exists():
            images[name] = (out / name).read_bytes()
    cfg = results["config"]
    write_text(out / paths.REPORT_HTML, render_html(md, images, f"prunebench report: {cfg['model']} on {cfg['data']}"))
    write_text(out / paths.SUMMARY, render_summary(results, labels_of(results)))


def write_report(out: Path, cfg: "ExperimentConfig", variants: Sequence[dict[str, Any]], data: dict[str, Any],
                 sections: Sequence[Section] = ()) -> dict[str, Any]:
    """report.md, report.html, summary.md and the plots from the records of ``variants``; returns the results.json
    document (the caller writes it, last). ``sections``: extra report sections (the regimes' own tables)."""
    results = add_analysis(collect(out, cfg, variants, data))
    write_documents(out, results, sections)
    return results
