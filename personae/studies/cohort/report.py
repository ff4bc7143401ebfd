"""The student cohort in figures and in the report: trajectories, per-student panels, effects.

The numbers come from :mod:`personae.studies.cohort.analysis`; this module draws them
(matplotlib, imported lazily) and builds the "Student cohort" report section.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from personae.report.html import Section, figure_html, html_table, paragraph, subheading
from personae.studies.cohort.analysis import (
    assignments,
    cohort_trajectories,
    intervention_effects,
    questionnaire_change,
)
from personae.studies.cohort.relations import feature_outcome_relations
from personae.studies.cohort.series import (
    CONDITION_KEYS,
    FEATURE_PREFIX,
    STATE_SOURCES,
    UNIT_KEYS,
    Cohort,
    as_series,
    state_series,
    unit_days,
)
from personae.studies.cohort.term.mental_state import STATE_VARIABLES

#: The rows behind the cohort's figures (the data links of the report).
STATES_SQL = (
    "SELECT e.experiment_id, e.param_index, e.replicate, s.episode_id, a.name AS student, "
    "s.t AS day, s.variable, s.value, s.text, s.source FROM states s "
    "JOIN episodes e ON e.id = s.episode_id LEFT JOIN agents a ON a.id = s.agent_id "
    "WHERE e.status = 'complete' ORDER BY s.episode_id, student, s.variable, s.t"
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure


__all__ = ["plot_cohort_trajectories", "plot_intervention_effects", "plot_students", "section"]


def plot_cohort_trajectories(
    data: Cohort,
    variables: Sequence[str] = STATE_VARIABLES,
    intervention: str | None = None,
    path: str | Path | None = None,
) -> Figure:
    """One panel per variable: the cohort mean per day and its 95% CI band.

    One line per condition and source (and arm, with an intervention).
    """
    from personae.analysis.plots import (
        empty_figure,
        figure_legend,
        finish_figure,
        palette,
        subplot_grid,
    )

    frame = as_series(data)
    traj = cohort_trajectories(frame, variables, intervention)
    panels = [v for v in variables if v in set(traj["variable"].to_list())]
    if not panels:
        return finish_figure(empty_figure("no cohort states"), path)
    fig, axes = subplot_grid(len(panels), sharey=False)
    lines = [c for c in ("experiment_id", "param_index", "arm", "source") if c in traj.columns]
    groups = traj.select(lines).unique().sort(lines)
    colours = palette(groups.height)
    for colour, group in zip(colours, groups.iter_rows(named=True), strict=True):
        label = ", ".join(f"{k}={v}" for k, v in group.items() if k != "experiment_id")
        mine = traj.filter(pl.all_horizontal(pl.col(k) == v for k, v in group.items()))
        for ax, variable in zip(axes, panels, strict=False):
            line = mine.filter(pl.col("variable") == variable).sort("day")
            if line.is_empty():
                continue
            days = line["day"].to_list()
            ax.plot(days, line["mean"].to_list(), color=colour, label=label)
            ax.fill_between(
                days,
                line["ci_low"].fill_null(line["mean"]).to_list(),
                line["ci_high"].fill_null(line["mean"]).to_list(),
                color=colour,
                alpha=0.2,
                linewidth=0,
            )
    starts: set[int] = set()
    if intervention is not None:
        arms = assignments(frame).filter(pl.col("intervention") == intervention)
        starts = set(arms["start_day"].to_list())
    for ax, variable in zip(axes, panels, strict=False):
        for day in starts:
            ax.axvline(day, color="grey", linestyle=":", linewidth=1)
        ax.set_title(variable)
        ax.set_xlabel("day")
        ax.grid(alpha=0.3)
    shown = f"; dotted: start of {intervention}" if starts else ""
    fig.suptitle(
        f"Cohort mean per day; band: 95% CI across students and replicates{shown}", fontsize=10
    )
    figure_legend(fig, axes)
    return finish_figure(fig, path)


def plot_students(
    data: Cohort,
    variables: Sequence[str] = STATE_VARIABLES,
    episode_id: int | None = None,
    max_students: int = 12,
    path: str | Path | None = None,
) -> Figure:
    """Small multiples: one panel per student of one episode, one line per variable.

    The 0-100 variables share the left axis; ``sleep_debt`` (hours) is dashed
    on a right axis. Default episode: the first with state rows.
    """
    from personae.analysis.plots import (
        empty_figure,
        figure_legend,
        finish_figure,
        palette,
        subplot_grid,
    )

    values = unit_days(as_series(data), variables)
    if episode_id is None and not values.is_empty():
        episode_id = int(values["episode_id"].min())  # type: ignore[arg-type]
    values = values.filter(pl.col("episode_id") == episode_id)
    students = sorted(set(values["student"].to_list()))[:max_students]
    if not students:
        return finish_figure(empty_figure("no student states"), path)
    fig, axes = subplot_grid(len(students), size=(3.0, 2.4), sharey=True)
    colours = dict(zip(variables, palette(len(variables)), strict=True))
    debt_axes = []
    for ax, student in zip(axes, students, strict=True):
        mine = values.filter(pl.col("student") == student)
        for variable in variables:
            line = mine.filter(pl.col("variable") == variable).sort("day")
            if line.is_empty():
                continue
            target = ax
            if variable == "sleep_debt":
                target = ax.twinx()
                debt_axes.append(target)
            target.plot(
                line["day"].to_list(),
                line["value"].to_list(),
                color=colours[variable],
                linestyle="--" if variable == "sleep_debt" else "-",
                label=variable,
            )
        ax.set_title(student, fontsize=9)
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
    if debt_axes:
        top = max(max(a.get_ylim()[1] for a in debt_axes), 1.0)
        for ax in debt_axes:
            ax.set_ylim(0, top)
        debt_axes[-1].set_ylabel("sleep debt (h)")
    axes[0].set_ylabel("0-100")
    fig.suptitle(f"Students of episode {episode_id}", fontsize=10)
    figure_legend(fig, [*axes, *debt_axes])
    return finish_figure(fig, path)


def plot_intervention_effects(
    effects: pl.DataFrame | Cohort, path: str | Path | None = None
) -> Figure:
    """Treated minus control per variable, one panel per intervention.

    Pooled estimates with their 95% CIs: the post-window difference (black
    circle) and the difference in differences (blue square, below it);
    replicate differences are grey dots above.

    Args:
        effects: An :func:`intervention_effects` frame, or data for it.
        path: Save the figure here as PNG.
    """
    from personae.analysis.plots import empty_figure, figure_legend, finish_figure, subplot_grid

    if not (isinstance(effects, pl.DataFrame) and "scope" in effects.columns):
        effects = intervention_effects(effects)
    names = sorted(set(effects["intervention"].to_list()))
    if not names:
        return finish_figure(empty_figure("no interventions"), path)
    fig, axes = subplot_grid(len(names), size=(4.4, 3.4), sharey=False)
    for ax, name in zip(axes, names, strict=True):
        mine = effects.filter(pl.col("intervention") == name).with_columns(
            pl.format("{} ({})", "variable", "source").alias("label")
        )
        labels = sorted(set(mine["label"].to_list()))
        where = {label: i for i, label in enumerate(labels)}
        reps = mine.filter(pl.col("scope") == "replicate")
        ax.scatter(
            reps["diff"].to_list(),
            [where[v] + 0.25 for v in reps["label"].to_list()],
            color="grey",
            s=10,
            alpha=0.6,
            label="replicate difference",
        )
        pooled = mine.filter(pl.col("scope") == "pooled")
        for prefix, offset, style, colour, text in (
            ("", 0.0, "o", "black", "difference (post window)"),
            ("did_", -0.25, "s", "tab:blue", "difference in differences"),
        ):
            value = "diff" if not prefix else "did"
            columns = [value, f"{prefix}ci_low", f"{prefix}ci_high", "label"]
            for i, (point, low, high, label) in enumerate(pooled.select(columns).iter_rows()):
                if point is None:
                    continue
                y = where[label] + offset
                if low is not None and high is not None:
                    ax.plot([low, high], [y, y], color=colour)
                ax.plot([point], [y], style, color=colour, label=text if i == 0 else None)
        ax.axvline(0, color="grey", linestyle="--", linewidth=1)
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        ax.set_title(name)
        ax.set_xlabel("treated - control (points; sleep_debt in h)")
        ax.grid(alpha=0.3, axis="x")
    figure_legend(fig, axes)
    return finish_figure(fig, path)


# --- report -------------------------------------------------------------------------------------


def section(intervention_window: tuple[int, int | None] = (0, None)) -> Section:
    """The "Student cohort" section of ``personae report``.

    Args:
        intervention_window: Post window of :func:`intervention_effects`.

    Returns:
        A :class:`~personae.report.html.Section` whose builder returns
        ``None`` when the database holds no state rows from ``rule`` or ``llm``.
    """

    def build(db: Path) -> str | None:
        return _section_html(db, intervention_window)

    return Section("Student cohort", build)


def _section_html(db: Path, window: tuple[int, int | None]) -> str | None:
    series = state_series(db)
    states = series.filter(
        pl.col("source").is_in(STATE_SOURCES) & pl.col("variable").is_in(STATE_VARIABLES)
    )
    if states.is_empty():
        return None
    parts = [
        paragraph(
            f"Student cohort: {states.select(UNIT_KEYS).n_unique()} students x episodes over "
            f"{states['day'].n_unique()} days in {states['episode_id'].n_unique()} complete "
            f"episodes; state sources: {', '.join(sorted(set(states['source'].to_list())))}."
        ),
        html_table(
            series.select("experiment_id", "param_index", "params")
            .unique()
            .join(
                states.group_by(*CONDITION_KEYS).agg(
                    pl.col("episode_id").n_unique().alias("episodes"),
                    pl.col("student").n_unique().alias("students"),
                ),
                on=list(CONDITION_KEYS),
            )
            .sort(CONDITION_KEYS)
        ),
        figure_html(
            plot_cohort_trajectories(series),
            "cohort state trajectories",
            sql=STATES_SQL,
        ),
        subheading("First and last day"),
        paragraph("Cohort mean of each state variable on the first and last day, with 95% CIs."),
        html_table(_first_last(cohort_trajectories(series, STATE_VARIABLES))),
        figure_html(plot_students(series), "students of one episode", sql=STATES_SQL),
    ]
    arms = assignments(series)
    if not arms.is_empty():
        effects = intervention_effects(series, window=window)
        for name in sorted(set(arms["intervention"].to_list())):
            parts.append(
                figure_html(
                    plot_cohort_trajectories(series, intervention=name),
                    f"trajectories by arm of {name}",
                    sql=STATES_SQL,
                )
            )
        parts += [
            subheading("Intervention effects"),
            paragraph(
                "Treated minus control over the post-start window: per replicate Welch's "
                "t-test on the students' means; pooled over replicates, OLS on the "
                "student-days with one effect per episode-day (did = difference in "
                "differences against the days before the start, with one effect per "
                "student too) and standard errors cluster-robust by student (episode x "
                "student), so a student's days count as one student, not as many."
            ),
            figure_html(plot_intervention_effects(effects), "intervention effects", sql=STATES_SQL),
            html_table(
                effects.filter(pl.col("scope") == "pooled").select(
                    "param_index",
                    "intervention",
                    "variable",
                    "source",
                    "n_treated",
                    "n_control",
                    "diff",
                    "ci_low",
                    "ci_high",
                    "p_value",
                    "did",
                    "did_ci_low",
                    "did_ci_high",
                    "note",
                )
            ),
        ]
    features = series.filter(pl.col("variable").str.starts_with(FEATURE_PREFIX))
    if not features.is_empty():
        relations = feature_outcome_relations(series).filter(pl.col("n") > 0)
        parts += [
            subheading("Sensing features and self-reports"),
            paragraph(
                "Within students: does a student's outcome move with their own feature "
                "from day to day (repeated-measures correlation after removing each "
                "student's mean and each day's mean, so stable differences between "
                "students and the term's trend do not count; n = student-days). Between "
                "students: do students with more of the feature report more of the "
                "outcome (correlation of the students' means, n = students). Each EMA "
                "answer is paired with the feature of the days it asks about (period): "
                "today and last night the same day, yesterday the day before."
            ),
            html_table(
                relations.select(
                    "param_index",
                    "feature",
                    "outcome",
                    "period",
                    "feature_days",
                    "level",
                    "n",
                    "n_students",
                    "df",
                    "r",
                    "ci_low",
                    "ci_high",
                    "p_value",
                )
            ),
        ]
    questionnaires = questionnaire_change(db)
    if not questionnaires.is_empty():
        parts += [
            subheading("Questionnaires before and after"),
            paragraph(
                "Self-reported totals and domains, occasion 0 (pre) and 1 (post), per student."
            ),
            html_table(questionnaires),
        ]
        for name in sorted(set(arms["intervention"].to_list())):
            by_arm = questionnaire_change(db, intervention=name, series=series)
            parts += [paragraph(f"By arm of {name}:"), html_table(by_arm)]
    return "".join(parts)


def _first_last(trajectories: pl.DataFrame) -> pl.DataFrame:
    """Per condition x source x variable: the first and last day's mean and CI, side by side."""
    keys = [*CONDITION_KEYS, "source", "variable"]
    return (
        trajectories.sort("day")
        .group_by(keys, maintain_order=True)
        .agg(
            pl.col("day").first().alias("first_day"),
            pl.col("mean").first().alias("mean_first"),
            pl.col("ci_low").first().alias("ci_low_first"),
            pl.col("ci_high").first().alias("ci_high_first"),
            pl.col("day").last().alias("last_day"),
            pl.col("mean").last().alias("mean_last"),
            pl.col("ci_low").last().alias("ci_low_last"),
            pl.col("ci_high").last().alias("ci_high_last"),
            pl.col("n").last().alias("n_last"),
        )
        .sort(keys)
    )
