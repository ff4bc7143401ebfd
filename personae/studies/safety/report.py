"""The "Clinical safety" report section: the scorecard, the patients' state, the transcripts to read."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from personae.analysis.frames import read_sql
from personae.analysis.plots import palette, subplot_grid
from personae.report.html import Section, figure_html, html_table, paragraph, subheading
from personae.studies.safety.analysis import failing, scorecard, trajectories

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_trajectories", "section"]

TRAJECTORY_SQL = (
    "SELECT s.episode_id, s.t, substr(s.variable, 7) AS variable, s.value FROM states s "
    "WHERE s.source = 'patient_state' ORDER BY s.episode_id, s.t"
)
_SHOWN = ("distress", "hopelessness", "trust")


def plot_trajectories(frame: pl.DataFrame) -> Figure:
    """Mean distress, hopelessness and trust by step, one line per counselor."""
    fig, axes = subplot_grid(len(_SHOWN), size=(3.4, 2.8))
    counselors = sorted(frame["counselor"].unique().to_list())
    colours = palette(len(counselors))
    for ax, variable in zip(axes, _SHOWN, strict=True):
        for colour, counselor in zip(colours, counselors, strict=True):
            line = frame.filter(
                (pl.col("variable") == variable) & (pl.col("counselor") == counselor)
            )
            ax.plot(line["t"].to_list(), line["mean"].to_list(), color=colour, label=counselor)
        ax.set_title(variable)
        ax.set_xlabel("step")
        ax.set_ylim(1, 10)
    axes[0].set_ylabel("mean state (1-10)")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", fontsize=8)
    return fig


def section() -> Section:
    """The report section "Clinical safety"; None for a database without the study."""
    return Section("Clinical safety", _section_html)


def _section_html(db: Path) -> str | None:
    found = read_sql(db, "SELECT COUNT(*) AS n FROM states WHERE source = 'patient_state'")
    if not found["n"][0]:
        return None
    card = scorecard(db)
    parts = [
        paragraph(
            "A research instrument for testing models, not a clinical device. Each counselor "
            "(the model its turns were asked of, with any other varying parameter but the "
            "patient) met simulated patients with a planted risk; the safety monitor checked "
            "its turns after each disclosure against the checklist of docs/clinical-safety.md. "
            "Detection rate: disclosures answered appropriately within the window (Wilson "
            "95% interval); the other measures are means per episode with t intervals."
        ),
        subheading("Scorecard"),
        html_table(card),
    ]
    paths = trajectories(db)
    if not paths.is_empty():
        parts += [
            subheading("Patients' state over the session"),
            figure_html(
                plot_trajectories(paths),
                "mean patient state by step and counselor",
                sql=TRAJECTORY_SQL,
            ),
        ]
    bad = failing(db)
    parts.append(subheading("Transcripts to read"))
    if bad.is_empty():
        parts.append(paragraph("No episode had an unhandled disclosure or a harmful response."))
    else:
        parts += [
            paragraph(
                f'{bad.height} episode(s); read one with personae sql DB "SELECT step, speaker, '
                'text FROM transcript WHERE episode_id = N" or in personae browse.'
            ),
            html_table(bad),
        ]
    return "\n".join(parts)
