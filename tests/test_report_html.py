"""report.html: the same numbers as report.md, self-contained (plots as data: URIs, no external reference), and it opens
in headless Chromium without network access (skipped, with the reason, where chromium is not installed)."""

from __future__ import annotations

import html.parser
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from _results import make_results
from prunebench.core import paths
from prunebench.report import add_analysis, write_documents

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
                  "--disable-component-update", "--disable-sync"]


class _Cells(html.parser.HTMLParser):
    """Text of every <th>/<td>, and every src/href attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[str] = []
        self.refs: list[str] = []
        self._in = False

    def handle_starttag(self, tag, attrs):
        if tag in ("td", "th"):
            self._in = True
            self.cells.append("")
        self.refs += [v for k, v in attrs if k in ("src", "href") and v]

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self._in = False

    def handle_data(self, data):
        if self._in:
            self.cells[-1] += data


def _markdown_cells(md: str) -> list[str]:
    cells = []
    for line in md.splitlines():
        if line.startswith("|") and not re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", line):   # not the --- row
            cells += [c.strip() for c in line.strip().strip("|").split("|")]
    return cells


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    r = add_analysis(make_results({"baseline": [93.0, 93.2, 93.1], "finetune": [91.0, 91.2, 90.9],
                                   "scratch-e": [92.0, 93.5, 91.2], "scratch-b": [93.1, 93.2, 93.0]},
                                  baseline_history=(30, 38, 42, 45, 47.5, 49.35), int8_drop=0.4))
    write_documents(out, r)
    return out


def test_html_has_exactly_the_numbers_of_report_md(report_dir):
    md = (report_dir / paths.REPORT).read_text()
    page = _Cells()
    page.feed((report_dir / paths.REPORT_HTML).read_text())
    md_cells = _markdown_cells(md)
    assert len(md_cells) > 100 and page.cells == md_cells
    for needle in ("91.03 ± 0.15 (n=3)", "Pruning and INT8 together", "has not converged", "Welch"):
        assert needle in md and needle in (report_dir / paths.REPORT_HTML).read_text()


def test_html_is_self_contained(report_dir):
    text = (report_dir / paths.REPORT_HTML).read_text()
    page = _Cells()
    page.feed(text)
    images = [r for r in page.refs if r.startswith("data:image/png;base64,")]
    md_images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (report_dir / paths.REPORT).read_text())
    assert len(md_images) >= 3 and len(images) == len(md_images)   # pareto.png + one per (runtime, batch)
    assert all(r.startswith("data:") or r.startswith("#") for r in page.refs)
    assert "<script" not in text.lower() and "@import" not in text and "url(" not in text


def test_summary_is_short_and_carries_the_warnings(report_dir):
    s = (report_dir / paths.SUMMARY).read_text()
    assert len(s) < 2500 and s.count("\n") < 20
    assert "has not converged" in s and "FT/S-B: S-B" in s and "Speed-up INT8 vs dense INT8" in s


def test_report_html_opens_in_headless_chromium(report_dir, tmp_path):
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("chromium is not installed (Debian: apt-get install -y chromium)")
    shot = tmp_path / "report.png"
    r = subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,1600",
                        f"--screenshot={shot}", (report_dir / paths.REPORT_HTML).resolve().as_uri()],
                       capture_output=True, text=True, timeout=120)
    assert shot.exists(), r.stderr[-2000:]
    from PIL import Image

    img = Image.open(shot).convert("RGB")
    assert img.size == (1280, 1600)
    colours = img.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50   # text, tables and a plot, not a blank page
