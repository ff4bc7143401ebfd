"""``personae report``: one self-contained HTML page about an experiment database.

The page is a list of :class:`~personae.report.html.Section`\\ s. Each section's
builder takes the database path and returns an HTML fragment, or ``None`` when
the database holds nothing for it. By default the page shows the generic
sections (:data:`personae.report.sections.GENERIC_SECTIONS`) and then those of
the built-in studies, each only where the database holds something for it: the list is :data:`personae.studies.SECTIONS`, assembled
by the studies above this package and looked up only when a report is written,
so importing the report never imports a study. Pass your own list to
:func:`write_report`, or append to :data:`personae.studies.SECTIONS`. Figures
are embedded as base64 PNG and there is no script or remote resource, so the
file can be mailed or archived as is.

Example:
    >>> write_report("runs/counseling.db")  # doctest: +SKIP
    PosixPath('runs/counseling.report.html')
"""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from personae.analysis.frames import read_sql
from personae.errors import StoreError

# The building blocks and the generic sections, importable from here until 0.4.
from personae.report.html import CSS, Section, SectionBuilder, link_data, paragraph
from personae.report.html import figure_html as figure_html
from personae.report.html import html_table as html_table
from personae.report.html import subheading as subheading
from personae.report.sections import experiments_section as experiments_section
from personae.report.sections import measurement_quality_section as measurement_quality_section
from personae.report.sections import trait_drift_section as trait_drift_section

logger = logging.getLogger(__name__)


def default_sections() -> list[Section]:
    """The sections a report shows by default: :data:`personae.studies.SECTIONS`.

    Imported when called, so that this package does not import the studies above it.
    """
    from personae.studies import SECTIONS

    return SECTIONS


#: Where ``personae browse`` serves by default; the figures' data links point there.
BROWSE_URL = "http://127.0.0.1:8001"


def write_report(
    db: str | Path,
    out: str | Path | None = None,
    sections: Sequence[Section] | None = None,
    *,
    browse_url: str = BROWSE_URL,
) -> Path:
    """Write the HTML report of a personae database.

    A section whose analysis fails shows the error instead of its content, so
    one broken analysis does not cost the rest of the report. A section with
    nothing to show (its builder returns None, e.g. a study's section on a
    database of another scenario) is left out.

    Args:
        db: The database.
        out: The HTML file; default ``<db stem>.report.html`` next to the database.
        sections: The sections, in order; default :func:`default_sections`
            (the generic sections, then each built-in study's).
        browse_url: Where ``personae browse DB`` serves; each figure's "data"
            link opens the query behind the figure there.

    Returns:
        The path written.

    Raises:
        StoreError: ``db`` is missing or not a personae database.
    """
    db = Path(db)
    read_sql(db, "SELECT 1")  # fail early, with the store's message, on a wrong file
    target = Path(out) if out is not None else db.with_name(f"{db.stem}.report.html")
    shown: list[tuple[str, str]] = []
    for section in default_sections() if sections is None else sections:
        try:
            body = section.build(db)
        except StoreError:
            raise
        except Exception as exc:  # one failing analysis must not lose the whole report
            logger.warning("report section %r failed", section.title, exc_info=True)
            body = paragraph(f"This section failed: {type(exc).__name__}: {exc}", "error")
        if body is not None:
            shown.append((section.title, body))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(link_data(_page(db, shown), db, browse_url), encoding="utf-8")
    return target


def _page(db: Path, sections: list[tuple[str, str]]) -> str:
    from personae import __version__

    title = html.escape(f"personae report: {db.name}")
    toc = "".join(
        f'<li><a href="#s{i}">{html.escape(name)}</a></li>' for i, (name, _) in enumerate(sections)
    )
    body = "".join(
        f'<section id="s{i}"><h2>{html.escape(name)}</h2>{content}</section>'
        for i, (name, content) in enumerate(sections)
    )
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{CSS}</style></head><body><h1>{title}</h1>"
        f"<nav><ul>{toc}</ul></nav>{body}"
        + paragraph(
            f'Written {stamp} by personae {__version__} from {db}. A figure\'s "data" '
            f"link opens the rows behind it in `personae browse {db}`.",
            "note",
        )
        + "</body></html>"
    )


def __getattr__(name: str) -> object:
    # ``SECTIONS`` lives with the studies now; the name keeps working until 0.4.
    if name == "SECTIONS":
        return default_sections()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Section",
    "SectionBuilder",
    "default_sections",
    "figure_html",
    "html_table",
    "paragraph",
    "subheading",
    "write_report",
]
