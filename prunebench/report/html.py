"""report.html: report.md rendered to one self-contained page.

The page is the Markdown text of report.md converted by markdown-it-py (CommonMark + GitHub tables; raw HTML in the
text is escaped, not passed through), so every number in it is the number in report.md. Images the Markdown references
(the Pareto plots) are embedded as ``data:image/png;base64`` URIs and the style sheet is inline: the file opens with no
network access and no files beside it. Nothing in the page loads a script, a font or anything else from elsewhere.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any, Mapping

CSS = """
body { font: 14px/1.45 -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; margin: 2em auto; max-width: 1400px;
       padding: 0 1.5em; color: #1f2328; }
h1 { font-size: 1.7em; border-bottom: 1px solid #d0d7de; padding-bottom: .3em; }
h2 { font-size: 1.3em; margin-top: 1.8em; border-bottom: 1px solid #eaeef2; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .6em 0 1em; font-size: 12.5px; display: block; overflow-x: auto; }
th, td { border: 1px solid #d0d7de; padding: 3px 8px; white-space: nowrap; }
th { background: #f6f8fa; text-align: left; white-space: normal; vertical-align: bottom; }
tr:nth-child(even) td { background: #fbfcfd; }
td[style*="right"] { font-variant-numeric: tabular-nums; }
blockquote { margin: 1em 0; padding: .6em 1em; border-left: 4px solid #d4a72c; background: #fff8c5; }
img { max-width: 100%; border: 1px solid #eaeef2; margin: .3em 0; }
code { background: #f6f8fa; padding: 0 .25em; border-radius: 3px; }
footer { color: #656d76; font-size: 12px; margin-top: 3em; }
"""


def data_uri(png: bytes) -> str:
    """``png`` bytes as a ``data:image/png;base64,...`` URI (for an image embedded in report.html)."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def render_html(markdown_text: str, images: Mapping[str, bytes], title: str) -> str:
    """The page for ``markdown_text``; ``images`` maps a file name the Markdown references to its PNG bytes (a name
    without bytes keeps its alt text only: a page never points at a file that may not travel with it)."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False}).enable("table")

    def image(renderer: Any, tokens: list[Any], idx: int, options: Any, env: Any) -> str:
        token = tokens[idx]
        src = token.attrGet("src") or ""
        alt = html.escape(token.content or "", quote=True)
        png = images.get(Path(src).name)
        if png is None:
            return f"<em>[{alt}: image not embedded]</em>"
        return f'<img src="{data_uri(png)}" alt="{alt}">'

    md.add_render_rule("image", image)
    body = md.render(markdown_text)
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}"
            "<footer>Written by prunebench from the same text as report.md; self-contained (plots embedded, no network "
            "access needed).</footer>\n</body>\n</html>\n")
