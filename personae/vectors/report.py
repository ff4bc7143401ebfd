"""The report section "Three views of a trait": self-report, judge and activation side by side.

Shown when a database holds activation projections (``personae monitor``);
it reports what the correlations are, including when they are weak or
undefined, with the number of respondents behind each.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from personae.report.html import Section, html_table, paragraph, subheading
from personae.vectors.views import three_views, view_changes, view_correlations

__all__ = ["TITLE", "section", "three_views_section"]

TITLE = "Three views of a trait"


def three_views_section(db: Path) -> str | None:
    """The section's HTML, or None when nothing was monitored."""
    views = three_views(db)
    if views.is_empty() or views["activation"].is_null().all():
        return None
    table = view_correlations(views)
    changes = view_changes(db)
    respondents = views.select("episode_id", "agent").unique().height
    parts = [
        paragraph(
            f"{respondents} respondents (an agent in an episode) with an activation projection. "
            "Each view is averaged over its occasions: the questionnaire's domain score "
            "(self_report), the judge's rating of behaviour (judge), the mean projection of the "
            "agent's turns on the trait vector (activation, in residual-stream units, not on the "
            "1-5 scale) and the persona's set level (target)."
        ),
        subheading("Correlations across respondents"),
        paragraph(
            "r: the same trait seen by two views (convergent validity), Pearson with a Fisher-z "
            "95% CI. discriminant_mean_abs_r: the mean |r| of this trait in the first view with "
            "the other traits in the second; a view pair measures the trait only where r clearly "
            "exceeds it. Empty r: fewer than 3 respondents or no variance."
        ),
        html_table(table),
    ]
    measured = [c for c in changes.columns if c.endswith("_change")]
    if measured:
        summary = changes.group_by("scale").agg(
            pl.len().alias("respondents"),
            *[pl.col(c).mean().alias(f"mean_{c}") for c in measured],
        )
        parts += [
            subheading("Change over time"),
            paragraph(
                "Last occasion minus first, per view, averaged over respondents (activation: "
                "last monitored turn minus first)."
            ),
            html_table(summary.sort("scale")),
        ]
    parts += [subheading("Per respondent"), html_table(views, max_rows=60)]
    return "".join(parts)


def section() -> Section:
    """The section, for :data:`personae.studies.SECTIONS`."""
    return Section(TITLE, three_views_section)
