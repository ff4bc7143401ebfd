"""Student cohort: mental-state trajectories, intervention effects and questionnaires.

What is read (written by the cohort scenario; see ``docs/cohort.md``), from
complete episodes and agents with role ``student``:

- ``states`` with ``variable`` in :data:`STATE_VARIABLES` and ``source`` ``rule``
  (the daily rule) or ``llm`` (changes the model inferred), ``t`` = day;
- EMA answers: ``variable`` in :data:`EMA_VARIABLES`, ``source = 'ema'``,
  ``value`` numeric, ``text`` the raw answer (items and the period each asks
  about: :mod:`personae.studies.cohort.term.ema`);
- sensing features: ``variable = 'feature:<name>'``, ``source = 'sensing'``;
- interventions: ``variable = 'treated:<name>'``, ``value`` 1 (treated) or 0
  (control), ``t`` = the start day; where an episode has such rows, its
  students without one are controls;
- questionnaires pre (occasion 0) and post (occasion 1) in ``scores``;
- ``episodes.params_json``, e.g. ``{"n_students": 12, "days": 14, "source":
  "synthetic"}``, spread into ``param:<name>`` columns.

A *unit* is one student in one episode (``episode_id`` x ``student``);
replicates are episodes of the same parameter set. Functions take a database
path, a :func:`state_series` frame, or any frame
:func:`~personae.studies.cohort.series.as_series` reads. They return polars
frames with documented columns, empty when there is nothing to analyse. scipy
and statsmodels are imported only where used.

Reading the data is :mod:`personae.studies.cohort.series`; sensing features
against self-reports (within and between students) and the comparison with
real data are :mod:`personae.studies.cohort.relations`. Their public names are
importable from here too.

Example:
    >>> series = state_series("runs/cohort.db")  # doctest: +SKIP
    >>> intervention_effects(series, window=(0, None))  # doctest: +SKIP
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from personae.analysis.stats import Estimate, fixed_effects_slope, welch, with_t_interval
from personae.studies.cohort.relations import (
    COMPARISON_SCHEMA,
    DEFAULT_PAIRS,
    EMA_SOURCES,
    LEVELS,
    RELATION_SCHEMA,
    compare_correlations,
    compare_distributions,
    feature_outcome_relations,
    source_series,
    validation,
)
from personae.studies.cohort.series import (
    CONDITION_KEYS,
    EMA_VARIABLES,
    FEATURE_PREFIX,
    SENSING_FEATURES,
    SERIES_SCHEMA,
    STATE_SOURCES,
    TREATED_PREFIX,
    UNIT_KEYS,
    Cohort,
    as_series,
    group_codes,
    state_series,
    unit_days,
)
from personae.studies.cohort.term.mental_state import STATE_VARIABLES

_CONDITION = list(CONDITION_KEYS)
_UNIT = list(UNIT_KEYS)
_CI: dict[str, Any] = {"ci_low": pl.Float64, "ci_high": pl.Float64}
#: How the pooled intervention effects are estimated (the ``method`` of their rows).
POOLED_METHOD = (
    "ols on student-days: episode-day effects (did: + student effects), "
    "cluster-robust SE by student (episode x student), t(students - 1)"
)
#: Columns of :func:`cohort_trajectories` (``arm`` only with an intervention).
TRAJECTORY_SCHEMA: dict[str, Any] = {
    "experiment_id": pl.Int64,
    "param_index": pl.Int64,
    "source": pl.String,
    "variable": pl.String,
    "day": pl.Int64,
    "n": pl.Int64,
    "n_episodes": pl.Int64,
    "mean": pl.Float64,
    "sd": pl.Float64,
} | _CI
#: Columns of :func:`assignments`.
ASSIGNMENT_SCHEMA: dict[str, Any] = {
    "experiment_id": pl.Int64,
    "param_index": pl.Int64,
    "replicate": pl.Int64,
    "episode_id": pl.Int64,
    "student": pl.String,
    "intervention": pl.String,
    "treated": pl.Boolean,
    "start_day": pl.Int64,
}
#: Columns of :func:`intervention_effects`.
EFFECT_SCHEMA: dict[str, Any] = {
    "experiment_id": pl.Int64,
    "param_index": pl.Int64,
    "intervention": pl.String,
    "variable": pl.String,
    "source": pl.String,
    "scope": pl.String,
    "episode_id": pl.Int64,
    "replicate": pl.Int64,
    "start_day": pl.Int64,
    "first_day": pl.Int64,
    "last_day": pl.Int64,
    "n_treated": pl.Int64,
    "n_control": pl.Int64,
    "mean_treated": pl.Float64,
    "mean_control": pl.Float64,
    "diff": pl.Float64,
    **_CI,
    "p_value": pl.Float64,
    "did": pl.Float64,
    "did_ci_low": pl.Float64,
    "did_ci_high": pl.Float64,
    "did_p": pl.Float64,
    "method": pl.String,
    "note": pl.String,
}
#: Columns of :func:`questionnaire_change` (``arm`` only with an intervention).
QUESTIONNAIRE_SCHEMA: dict[str, Any] = {
    "experiment_id": pl.Int64,
    "param_index": pl.Int64,
    "instrument": pl.String,
    "level": pl.String,
    "scale": pl.String,
    "n": pl.Int64,
    "mean_pre": pl.Float64,
    "mean_post": pl.Float64,
    "mean_change": pl.Float64,
} | _CI


# --- trajectories and assignments ---------------------------------------------------------------


def cohort_trajectories(
    data: Cohort, variables: Sequence[str] | None = None, intervention: str | None = None
) -> pl.DataFrame:
    """Mean of each variable per day across students and replicates, with a t-based 95% CI.

    Each unit (student x episode) counts once per day (several rows of one day
    are averaged first); ``ci = mean +- t(0.975, n - 1) * sd / sqrt(n)``.

    Args:
        data: A database, a :func:`state_series` frame or a long/wide frame.
        variables: Variables to summarise; default the state and EMA variables found.
        intervention: Split by the arm (``treated``/``control``) of this intervention.

    Returns:
        :data:`TRAJECTORY_SCHEMA` (plus ``arm`` after ``param_index`` with an
        intervention), one row per condition x source x variable x day.
    """
    frame = as_series(data)
    values = unit_days(frame, variables or (*STATE_VARIABLES, *EMA_VARIABLES))
    keys = [*_CONDITION, "source", "variable", "day"]
    schema = dict(TRAJECTORY_SCHEMA)
    if intervention is not None:
        values = _with_arm(values, frame, intervention)
        keys.insert(2, "arm")
        schema = _insert(schema, "arm", pl.String, after="param_index")
    if values.is_empty():
        return pl.DataFrame(schema=schema)
    stats = values.group_by(keys).agg(
        pl.len().alias("n"),
        pl.col("episode_id").n_unique().alias("n_episodes"),
        pl.col("value").mean().alias("mean"),
        pl.col("value").std().alias("sd"),
    )
    stats = with_t_interval(stats, "mean", "sd")
    return stats.select(list(schema)).cast(pl.Schema(schema)).sort(keys)


def assignments(data: Cohort) -> pl.DataFrame:
    """Who was treated by which intervention, from the ``treated:<name>`` rows.

    Returns:
        :data:`ASSIGNMENT_SCHEMA`, one row per unit x intervention: ``treated``
        is ``value > 0.5``; a student of an episode with rows for the
        intervention but none of their own is a control; ``start_day`` is the
        earliest ``t`` of the intervention's rows in the episode.
    """
    frame = as_series(data)
    rows = frame.filter(pl.col("variable").str.starts_with(TREATED_PREFIX))
    if rows.is_empty():
        return pl.DataFrame(schema=ASSIGNMENT_SCHEMA)
    rows = rows.with_columns(
        pl.col("variable").str.strip_prefix(TREATED_PREFIX).alias("intervention")
    )
    starts = rows.group_by("episode_id", "intervention").agg(pl.col("day").min().alias("start_day"))
    units = frame.select(*_CONDITION, "replicate", *_UNIT).unique()
    flags = rows.group_by(*_UNIT, "intervention").agg((pl.col("value").max() > 0.5).alias("t"))
    out = (
        units.join(starts, on="episode_id", how="inner")
        .join(flags, on=[*_UNIT, "intervention"], how="left")
        .with_columns(pl.col("t").fill_null(False).alias("treated"))
    )
    return (
        out.select(list(ASSIGNMENT_SCHEMA))
        .cast(pl.Schema(ASSIGNMENT_SCHEMA))
        .sort("episode_id", "intervention", "student")
    )


def intervention_effects(
    data: Cohort,
    variables: Sequence[str] | None = None,
    window: tuple[int, int | None] = (0, None),
) -> pl.DataFrame:
    """Treated minus control for each intervention and variable, per replicate and pooled.

    Each unit's values are averaged over the *post* window (days ``start +
    window[0]`` to ``start + window[1]``, inclusive; ``None`` = the last day)
    and over the *pre* window (every day before the start). Then:

    - ``diff``: mean post value of treated units minus controls;
    - ``did`` (difference in differences): the same for each unit's post minus
      pre mean, null when there is no day before the start;
    - per replicate (``scope = 'replicate'``): Welch's t-test on the unit
      means and its 95% CI (``scipy.stats.ttest_ind``, Welch-Satterthwaite df);
    - pooled over the replicates of a parameter set (``scope = 'pooled'``): OLS
      on the student-days (:data:`POOLED_METHOD`). ``diff``: the post-window
      values on treatment with one effect per episode-day, so each replicate
      and each day is compared within itself and the term's trend cancels;
      ``did``: the pre- and post-window values on treatment x post with one
      effect per student and per episode-day (two-way fixed effects), from
      the units with days on both sides. A student's days are not independent
      of each other (stable differences, slow moods), so standard errors are
      cluster-robust by unit (episode x student; statsmodels
      ``cov_type="cluster"``, CR1) and CIs and p use t with units - 1 df.
      Episodes without both arms are left out.

    Args:
        data: A database or a :func:`state_series` frame.
        variables: Default the state and EMA variables found.
        window: Post-window offsets from the start day.

    Returns:
        :data:`EFFECT_SCHEMA`; ``note`` says why a CI is missing.
    """
    frame = as_series(data)
    arms = assignments(frame)
    values = unit_days(frame, variables or (*STATE_VARIABLES, *EMA_VARIABLES))
    if arms.is_empty() or values.is_empty():
        return pl.DataFrame(schema=EFFECT_SCHEMA)
    joined = values.join(
        arms.select(*_UNIT, "intervention", "treated", "start_day"), on=_UNIT, how="inner"
    ).with_columns((pl.col("day") - pl.col("start_day")).alias("rel"))
    post = pl.col("rel") >= window[0]
    if window[1] is not None:
        post = post & (pl.col("rel") <= window[1])
    joined = joined.with_columns(post.alias("post"), (pl.col("rel") < 0).alias("pre"))
    post = pl.col("post")
    keys = [*_CONDITION, "replicate", "intervention", "variable", "source", *_UNIT, "treated"]
    units = (
        joined.group_by(keys)
        .agg(
            pl.col("start_day").first(),
            pl.col("day").filter(post).min().alias("first_day"),
            pl.col("day").filter(post).max().alias("last_day"),
            pl.col("value").filter(post).mean().alias("post"),
            pl.col("value").filter(pl.col("rel") < 0).mean().alias("pre"),
        )
        .filter(pl.col("post").is_not_null())
        .with_columns((pl.col("post") - pl.col("pre")).alias("change"))
    )
    rows: list[dict[str, Any]] = []
    measure = [*_CONDITION, "intervention", "variable", "source"]
    days = joined.filter(pl.col("post") | pl.col("pre")).partition_by(measure, as_dict=True)
    for key, group in units.partition_by(measure, as_dict=True, maintain_order=True).items():
        for _, episode in group.partition_by("episode_id", as_dict=True).items():
            rows.append(_effect_row(episode, "replicate"))
        rows.append(_effect_row(group, "pooled", days[key]))
    out = pl.DataFrame(rows, schema=EFFECT_SCHEMA)
    return out.sort(*measure, "scope", "replicate", descending=[False] * 5 + [True, False])


def questionnaire_change(
    scores: str | Path | pl.DataFrame,
    intervention: str | None = None,
    series: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Questionnaire scores before (occasion 0) and after (occasion 1) the term.

    Self-reported totals (PHQ-9, PSS-10) and domains (IPIP) of students;
    forms of one administration are averaged. ``change`` = post - pre per
    student, its mean with a t-based 95% CI.

    Args:
        scores: A database or a :func:`personae.analysis.drift.trait_scores` frame.
        intervention: Split by arm; the arms come from ``series`` (default read
            from ``scores`` when it is a database path).
        series: A :func:`state_series` frame holding the ``treated:`` rows.

    Returns:
        :data:`QUESTIONNAIRE_SCHEMA` (plus ``arm`` with an intervention).
    """
    from personae.analysis import drift

    frame = drift.trait_scores(scores) if not isinstance(scores, pl.DataFrame) else scores
    schema = dict(QUESTIONNAIRE_SCHEMA)
    keys = [*_CONDITION, "instrument", "level", "scale"]
    if intervention is not None:
        schema = _insert(schema, "arm", pl.String, after="param_index")
        keys.insert(2, "arm")
    if frame.is_empty():
        return pl.DataFrame(schema=schema)
    frame = frame.filter(
        (pl.col("role") == "student")
        & (pl.col("source") == "self_report")
        & (pl.col("level") != "facet")
        & pl.col("occasion").is_in([0, 1])
        & pl.col("value").is_not_null()
    )
    person = ["episode_id", "agent", "instrument", "level", "scale"]
    wide = (
        frame.group_by(*_CONDITION, *person)
        .agg(
            pl.col("value").filter(pl.col("occasion") == 0).mean().alias("pre"),
            pl.col("value").filter(pl.col("occasion") == 1).mean().alias("post"),
        )
        .filter(pl.col("pre").is_not_null() & pl.col("post").is_not_null())
        .with_columns((pl.col("post") - pl.col("pre")).alias("change"))
        .rename({"agent": "student"})
    )
    if intervention is not None:
        if series is None and isinstance(scores, pl.DataFrame):
            raise ValueError("questionnaire_change: pass series= to split a frame by arm")
        wide = _with_arm(wide, series if series is not None else as_series(scores), intervention)
    if wide.is_empty():
        return pl.DataFrame(schema=schema)
    stats = wide.group_by(keys).agg(
        pl.len().alias("n"),
        pl.col("pre").mean().alias("mean_pre"),
        pl.col("post").mean().alias("mean_post"),
        pl.col("change").mean().alias("mean_change"),
        pl.col("change").std().alias("sd"),
    )
    stats = with_t_interval(stats, "mean_change", "sd")
    return stats.select(list(schema)).cast(pl.Schema(schema)).sort(keys)


def _with_arm(values: pl.DataFrame, series: pl.DataFrame, intervention: str) -> pl.DataFrame:
    arms = assignments(series).filter(pl.col("intervention") == intervention)
    labelled = arms.select(
        *_UNIT,
        pl.when(pl.col("treated"))
        .then(pl.lit("treated"))
        .otherwise(pl.lit("control"))
        .alias("arm"),
    )
    return values.join(labelled, on=_UNIT, how="inner")


def _effect_row(
    units: pl.DataFrame, scope: str, days: pl.DataFrame | None = None
) -> dict[str, Any]:
    """One row of :func:`intervention_effects`: ``units`` one row per unit, ``days`` per unit-day."""
    treated = units.filter(pl.col("treated"))
    control = units.filter(~pl.col("treated"))
    first = units.row(0, named=True)
    row: dict[str, Any] = {k: first[k] for k in (*_CONDITION, "intervention", "variable", "source")}
    row |= {
        "scope": scope,
        "episode_id": first["episode_id"] if scope == "replicate" else None,
        "replicate": first["replicate"] if scope == "replicate" else None,
        "start_day": units["start_day"].min(),
        "first_day": units["first_day"].min(),
        "last_day": units["last_day"].max(),
        "n_treated": treated.height,
        "n_control": control.height,
        "mean_treated": treated["post"].mean() if treated.height else None,
        "mean_control": control["post"].mean() if control.height else None,
    }
    if days is None:
        post = welch(treated["post"].to_numpy(), control["post"].to_numpy())
        changes = units.filter(pl.col("change").is_not_null())
        did = welch(
            changes.filter(pl.col("treated"))["change"].to_numpy(),
            changes.filter(~pl.col("treated"))["change"].to_numpy(),
        )
        if changes.is_empty():
            did = did._replace(note="no days before the start")
        method = "welch"
    else:
        post = _pooled_difference(days)
        did = _pooled_did(days)
        method = POOLED_METHOD
    row |= {"diff": post[0], "ci_low": post[1], "ci_high": post[2], "p_value": post[3]}
    row |= {"did": did[0], "did_ci_low": did[1], "did_ci_high": did[2], "did_p": did[3]}
    notes = [n for n in (post.note, f"did: {did.note}" if did.note else None) if n]
    return row | {"method": method, "note": "; ".join(notes) or None}


def _with_both_arms(days: pl.DataFrame) -> pl.DataFrame:
    both = days.group_by("episode_id").agg(pl.col("treated").n_unique().alias("arms"))
    keep = both.filter(pl.col("arms") == 2).select("episode_id")
    return days.join(keep, on="episode_id", how="semi")


def _pooled_difference(days: pl.DataFrame) -> Estimate:
    """Treatment coefficient of ``value ~ treated + episode-day`` over the post-window days."""
    rows = _with_both_arms(days.filter(pl.col("post")))
    if rows.is_empty():
        return Estimate(None, note="no episode with both arms")
    columns = rows.select(pl.col("value").cast(pl.Float64), pl.col("treated").cast(pl.Float64))
    return _clustered(columns.to_numpy(), rows, student_effects=False)


def _pooled_did(days: pl.DataFrame) -> Estimate:
    """Coefficient of treated x post in ``value ~ treated:post + unit + episode-day`` (two-way)."""
    if not days["pre"].any():
        return Estimate(None, note="no days before the start")
    sides = days.group_by(_UNIT).agg(
        pl.col("pre").any().alias("a"), pl.col("post").any().alias("b")
    )
    keep = sides.filter(pl.col("a") & pl.col("b")).select(_UNIT)
    rows = _with_both_arms(days.join(keep, on=_UNIT, how="semi"))
    if rows.is_empty():
        return Estimate(None, note="no episode with both arms and days before the start")
    columns = rows.select(
        pl.col("value").cast(pl.Float64), (pl.col("treated") & pl.col("post")).cast(pl.Float64)
    )
    return _clustered(columns.to_numpy(), rows, student_effects=True)


def _clustered(columns: np.ndarray, rows: pl.DataFrame, *, student_effects: bool) -> Estimate:
    """Slope of ``columns[:, 0]`` on ``columns[:, 1]``, one effect per episode-day (and student).

    Clustered by unit (:func:`~personae.analysis.stats.fixed_effects_slope`);
    the students' own effects are nested in the units and not counted in K.
    """
    units = group_codes(rows, _UNIT)
    effects = [units] if student_effects else []
    effects.append(group_codes(rows, ["episode_id", "day"]))
    nested = int(units.max()) + 1 if student_effects else 0
    return fixed_effects_slope(columns[:, 0], columns[:, 1], effects, units, nested=nested)


def _insert(schema: Mapping[str, Any], name: str, dtype: Any, after: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in schema.items():
        out[key] = value
        if key == after:
            out[name] = dtype
    return out


def feature_outcome_correlations(
    data: Cohort | Sequence[pl.DataFrame],
    pairs: Sequence[tuple[str, str]] = DEFAULT_PAIRS,
    lag: int | None = None,
    within: bool = False,
) -> pl.DataFrame:
    """Deprecated: use :func:`feature_outcome_relations`.

    The old function pooled every student-day as if independent, which
    overstates the evidence; this name now returns the within- and
    between-student relations (``within`` is ignored) and will be removed in
    the next release.
    """
    warnings.warn(
        "feature_outcome_correlations treated student-days as independent and is "
        "replaced by feature_outcome_relations (within- and between-student rows); "
        "this name will be removed in the next release",
        DeprecationWarning,
        stacklevel=2,
    )
    return feature_outcome_relations(data, pairs, lag=lag)


#: Deprecated name of :data:`RELATION_SCHEMA`.
CORRELATION_SCHEMA = RELATION_SCHEMA

__all__ = [
    "ASSIGNMENT_SCHEMA",
    "COMPARISON_SCHEMA",
    "CONDITION_KEYS",
    "CORRELATION_SCHEMA",
    "DEFAULT_PAIRS",
    "EFFECT_SCHEMA",
    "EMA_SOURCES",
    "EMA_VARIABLES",
    "FEATURE_PREFIX",
    "LEVELS",
    "POOLED_METHOD",
    "QUESTIONNAIRE_SCHEMA",
    "RELATION_SCHEMA",
    "SENSING_FEATURES",
    "SERIES_SCHEMA",
    "STATE_SOURCES",
    "STATE_VARIABLES",
    "TRAJECTORY_SCHEMA",
    "TREATED_PREFIX",
    "UNIT_KEYS",
    "Cohort",
    "as_series",
    "assignments",
    "cohort_trajectories",
    "compare_correlations",
    "compare_distributions",
    "feature_outcome_correlations",
    "feature_outcome_relations",
    "intervention_effects",
    "questionnaire_change",
    "source_series",
    "state_series",
    "unit_days",
    "validation",
]
