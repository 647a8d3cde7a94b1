"""`index.html` of a report: summary, tables and figures on one offline page (relative links, no JS/CDN)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from screening.report.tables import fmt

CSS = (
    "body{font-family:sans-serif;max-width:1100px;margin:1em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;font-size:12px;margin:.5em 0}td,th{border:1px solid #bbb;padding:2px 6px}"
    "th{background:#eee}img{max-width:100%;border:1px solid #ddd;margin:4px}.note{background:#fff6d5;"
    "padding:.5em;border-left:4px solid #e0b000}code{background:#f3f3f3}"
)


def table_html(rows: Sequence[dict[str, Any]]) -> str:
    """An HTML table of rows."""
    if not rows:
        return "<p><em>(none)</em></p>"
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(fmt(r.get(k)))}</td>" for k in keys) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def index_html(
    title: str,
    summary_lines: Sequence[str],
    sections: Sequence[tuple[str, Sequence[dict[str, Any]], Sequence[str]]],
    figures: dict[str, list[str]],
) -> str:
    """Page: title, summary (list items), one section per table (title, rows, downloadable files), figures."""
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1><div class='note'><ul>",
        "".join(f"<li>{html.escape(line)}</li>" for line in summary_lines),
        "</ul></div>",
    ]
    if figures:
        parts.append("<h2>Figures</h2>")
        for name, files in figures.items():
            png = next((f for f in files if f.endswith(".png")), files[0])
            parts.append(f"<a href='{html.escape(png)}'><img src='{html.escape(png)}' alt='{html.escape(name)}'></a>")
    for sec_title, rows, files in sections:
        links = " ".join(f"<a href='{html.escape(f)}'>{html.escape(f)}</a>" for f in files)
        parts.append(f"<h2>{html.escape(sec_title)}</h2><p>{links}</p>{table_html(rows)}")
    parts.append("</body></html>")
    return "\n".join(parts)
