"""The report: results.json (``results``), report.md (``markdown``) and pareto.png (``plot``), written from the records
of a finished run. ``write_report`` is what the pipeline's report stage calls."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from prunebench.core import paths
from prunebench.core.io import write_text
from prunebench.report.markdown import Section, render_markdown
from prunebench.report.plot import plot_pareto
from prunebench.report.results import COUNTING_RULE, SCHEMA, collect

if TYPE_CHECKING:
    from prunebench.config import ExperimentConfig

__all__ = ["COUNTING_RULE", "SCHEMA", "Section", "collect", "render_markdown", "plot_pareto", "write_report"]


def write_report(out: Path, cfg: "ExperimentConfig", variants: Sequence[dict[str, Any]], data: dict[str, Any],
                 sections: Sequence[Section] = ()) -> dict[str, Any]:
    """report.md and pareto.png from the records of ``variants``; returns the results.json document (the caller writes
    it, last). ``sections``: extra report sections (the regimes' own tables)."""
    results = collect(out, cfg, variants, data)
    write_text(out / paths.REPORT, render_markdown(results, sections))
    try:
        plot_pareto(results, out / paths.PARETO)
    except Exception:  # noqa: BLE001 - a plot must never lose the results
        pass
    return results


