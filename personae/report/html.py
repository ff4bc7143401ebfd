"""The building blocks of a report page: sections, tables, figures, paragraphs and the style.

This module sits at the bottom of the report: it imports nothing from the
analyses or the studies, so every study report (``personae.studies.*.report``)
and :mod:`personae.report.page` build on it, and a later page (a transcript
browser) can reuse it. Every helper escapes the text it is given.

Example:
    >>> paragraph("a < b", "note")
    '<p class="note">a &lt; b</p>'
"""

from __future__ import annotations

import base64
import html
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl
    from matplotlib.figure import Figure

#: What builds a section: takes the database path, returns an HTML fragment or ``None``.
SectionBuilder = Callable[[Path], str | None]


@dataclass(frozen=True)
class Section:
    """A titled part of the report.

    Every section, generic or a study's, is one of these: a study's report
    module makes it with ``section(**options)``.

    Attributes:
        title: The heading, also shown in the table of contents.
        build: Takes the database path; returns an HTML fragment (escaped by
            the builder) or ``None`` when there is nothing to show.
    """

    title: str
    build: SectionBuilder


def html_table(frame: pl.DataFrame, digits: int = 3, max_rows: int = 200) -> str:
    """Render a polars frame as an HTML table, every cell escaped.

    Floats are rounded to ``digits``, nulls shown empty, ``param:`` columns and
    ``params`` JSON kept as text. Rows past ``max_rows`` are left out with a note.
    """
    if frame.is_empty():
        return paragraph("(no rows)", "note")
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for row in frame.head(max_rows).iter_rows():
        cells = "".join(_cell(value, digits) for value in row)
        rows.append(f"<tr>{cells}</tr>")
    more = ""
    if frame.height > max_rows:
        more = paragraph(
            f"{frame.height - max_rows} more rows not shown (of {frame.height}).", "note"
        )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>{more}"


#: Where a figure's data link points before the page knows its database (see :func:`link_data`).
BROWSE_PLACEHOLDER = "{{personae-browse}}"


def figure_html(fig: Figure, caption: str, *, sql: str | None = None) -> str:
    """Embed a figure as a base64 PNG ``<img>`` with an escaped caption.

    Args:
        fig: The figure.
        caption: Its caption.
        sql: The query that reads the figure's data from the database; the
            caption then links to it in ``personae browse`` (see :func:`link_data`).
    """
    from personae.analysis.plots import png_bytes

    data = base64.b64encode(png_bytes(fig)).decode("ascii")
    text = html.escape(caption)
    link = ""
    if sql is not None:
        query = urllib.parse.urlencode({"sql": " ".join(sql.split())})
        link = f' <a class="data" href="{BROWSE_PLACEHOLDER}?{html.escape(query)}">data</a>'
    return (
        f'<figure><img alt="{text}" src="data:image/png;base64,{data}">'
        f"<figcaption>{text}{link}</figcaption></figure>"
    )


def database_name(path: str | Path) -> str:
    """The name ``personae browse`` serves a database under: its file stem, URL-safe."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", Path(path).stem).strip("-") or "personae"


def link_data(page: str, db: str | Path, browse_url: str) -> str:
    """Point the figures' data links of ``page`` at ``browse_url`` serving ``db``."""
    return page.replace(BROWSE_PLACEHOLDER, f"{browse_url.rstrip('/')}/{database_name(db)}")


def paragraph(text: str, css: str | None = None) -> str:
    """A ``<p>`` with ``text`` escaped, optionally with a CSS class (e.g. ``note``)."""
    attr = f' class="{css}"' if css else ""
    return f"<p{attr}>{html.escape(text)}</p>"


def subheading(text: str) -> str:
    """An ``<h3>`` with ``text`` escaped."""
    return f"<h3>{html.escape(text)}</h3>"


def _cell(value: Any, digits: int) -> str:
    if value is None:
        return "<td></td>"
    if isinstance(value, bool):
        return f"<td>{'yes' if value else 'no'}</td>"
    if isinstance(value, float):
        small = value != 0 and abs(value) < 10**-digits
        return (
            f'<td class="num">{value:.1e}</td>'
            if small
            else f'<td class="num">{value:.{digits}f}</td>'
        )
    if isinstance(value, int):
        return f'<td class="num">{value}</td>'
    return f"<td>{html.escape(str(value))}</td>"


#: The page's style sheet (inline: the report loads no remote resource).
CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 78em; padding: 0 1em;
       color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.85em; }
th, td { border: 1px solid #ddd; padding: 0.2em 0.5em; text-align: left; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0; } figure img { max-width: 100%; }
figcaption { font-size: 0.85em; color: #555; }
p.note { color: #666; font-size: 0.9em; } p.error { color: #a00; }
nav ul { columns: 2; }
"""


__all__ = [
    "BROWSE_PLACEHOLDER",
    "CSS",
    "Section",
    "SectionBuilder",
    "database_name",
    "figure_html",
    "html_table",
    "link_data",
    "paragraph",
    "subheading",
]
