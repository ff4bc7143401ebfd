"""Student cohort: mental-state trajectories, intervention effects and the sensing-EMA link.

What is read (written by the cohort scenario; see ``docs/cohort.md``), from
complete episodes and agents with role ``student``:

- ``states`` with ``variable`` in :data:`STATE_VARIABLES` and ``source`` ``rule``
  (the daily rule) or ``llm`` (changes the model inferred), ``t`` = day;
- EMA answers: ``variable`` in :data:`EMA_VARIABLES`, ``source = 'ema'``,
  ``value`` numeric, ``text`` the raw answer;
- sensing features: ``variable = 'feature:<name>'``, ``source = 'sensing'``;
- interventions: ``variable = 'treated:<name>'``, ``value`` 1 (treated) or 0
  (control), ``t`` = the start day; where an episode has such rows, its
  students without one are controls;
- questionnaires pre (occasion 0) and post (occasion 1) in ``scores``;
- ``episodes.params_json``, e.g. ``{"n_students": 12, "days": 14, "source":
  "synthetic"}``, spread into ``param:<name>`` columns.

A *unit* is one student in one episode (``episode_id`` x ``student``);
replicates are episodes of the same parameter set. Functions take a database
path, a :func:`state_series` frame, or any frame with ``student``, ``day`` and
either ``variable``/``value`` columns (long) or one column per variable (wide,
e.g. :func:`personae.environments.mental_state.simulate`'s output or a
StudentLife features frame, whose sensing columns are read as
``feature:<name>``). They return polars frames with documented columns, empty
when there is nothing to analyse. scipy, statsmodels and matplotlib are
imported only where used.

Example:
    >>> series = state_series("runs/cohort.db")  # doctest: +SKIP
    >>> intervention_effects(series, window=(0, None))  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from personae.analysis.frames import EPISODE_CONTEXT, read_sql, spread_params
from personae.environments.mental_state import STATE_VARIABLES
from personae.environments.sensing import FEATURES

if TYPE_CHECKING:
    pass

#: EMA answers the cohort scenario writes (source ``ema``).
EMA_VARIABLES = ("ema_stress", "ema_mood", "ema_sleep", "ema_social")
#: Sources of mental-state rows.
STATE_SOURCES = ("rule", "llm")
#: Daily sensing features; stored as ``feature:<name>``.
SENSING_FEATURES = FEATURES
FEATURE_PREFIX = "feature:"
TREATED_PREFIX = "treated:"
#: (feature, outcome) pairs :func:`feature_outcome_correlations` reads by default.
DEFAULT_PAIRS: tuple[tuple[str, str], ...] = (
    ("feature:sleep_minutes", "ema_stress"),
    ("feature:sleep_minutes", "ema_sleep"),
    ("feature:conversation_minutes", "ema_mood"),
    ("feature:conversation_count", "ema_social"),
    ("feature:sleep_minutes", "stress"),
    ("feature:conversation_minutes", "mood"),
)

#: Columns of :func:`state_series` (``param:<name>`` columns follow).
SERIES_SCHEMA: dict[str, Any] = EPISODE_CONTEXT | {
    "student": pl.String,
    "role": pl.String,
    "session": pl.Int64,
    "day": pl.Int64,
    "variable": pl.String,
    "value": pl.Float64,
    "text": pl.String,
    "source": pl.String,
}
_CONDITION = ["experiment_id", "param_index"]
_UNIT = ["episode_id", "student"]
_CI: dict[str, Any] = {"ci_low": pl.Float64, "ci_high": pl.Float64}
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
#: Columns of :func:`feature_outcome_correlations`.
CORRELATION_SCHEMA: dict[str, Any] = {
    "experiment_id": pl.Int64,
    "param_index": pl.Int64,
    "feature": pl.String,
    "outcome": pl.String,
    "lag": pl.Int64,
    "within": pl.Boolean,
    "n": pl.Int64,
    "n_students": pl.Int64,
    "pearson_r": pl.Float64,
    "pearson_ci_low": pl.Float64,
    "pearson_ci_high": pl.Float64,
    "pearson_p": pl.Float64,
    "spearman_r": pl.Float64,
    "spearman_ci_low": pl.Float64,
    "spearman_ci_high": pl.Float64,
    "spearman_p": pl.Float64,
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

Cohort = str | Path | pl.DataFrame
Values = Cohort | Sequence[pl.DataFrame] | Mapping[str, Sequence[float]]


# --- frames -------------------------------------------------------------------------------------


def state_series(db: str | Path, role: str | None = "student") -> pl.DataFrame:
    """Every ``states`` row of the students of complete episodes, one row each.

    Args:
        db: A personae database.
        role: Agents read; ``None`` reads every agent.

    Returns:
        :data:`SERIES_SCHEMA` (``student`` = agent name, ``day`` = ``t``),
        then ``param:<name>`` for every episode parameter.
    """
    where = "" if role is None else "AND a.role = '" + role.replace("'", "''") + "'"
    frame = read_sql(
        db,
        "SELECT x.name AS experiment, e.experiment_id, s.episode_id, e.param_index, e.replicate,"
        " e.seed, e.params_json AS params, a.name AS student, a.role, s.session, s.t AS day,"
        " s.variable, s.value, s.text, s.source FROM states s"
        " JOIN episodes e ON e.id = s.episode_id JOIN experiments x ON x.id = e.experiment_id"
        f" JOIN agents a ON a.id = s.agent_id WHERE e.status = 'complete' {where}"
        " ORDER BY s.episode_id, a.name, s.variable, s.t, s.id",
    )
    return spread_params(_conform(frame, SERIES_SCHEMA))


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
    frame = _load(data)
    values = _unit_days(frame, variables or (*STATE_VARIABLES, *EMA_VARIABLES))
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
    half = pl.Series("t", [_t_crit(n) for n in stats["n"].to_list()], dtype=pl.Float64)
    stats = stats.with_columns(
        (pl.lit(half) * pl.col("sd") / pl.col("n").sqrt()).alias("h")
    ).with_columns(
        (pl.col("mean") - pl.col("h")).alias("ci_low"),
        (pl.col("mean") + pl.col("h")).alias("ci_high"),
    )
    return stats.select(list(schema)).cast(pl.Schema(schema)).sort(keys)


def assignments(data: Cohort) -> pl.DataFrame:
    """Who was treated by which intervention, from the ``treated:<name>`` rows.

    Returns:
        :data:`ASSIGNMENT_SCHEMA`, one row per unit x intervention: ``treated``
        is ``value > 0.5``; a student of an episode with rows for the
        intervention but none of their own is a control; ``start_day`` is the
        earliest ``t`` of the intervention's rows in the episode.
    """
    frame = _load(data)
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
    - per replicate (``scope = 'replicate'``): Welch's t-test and its 95% CI
      (Welch-Satterthwaite df);
    - pooled over the replicates of a parameter set (``scope = 'pooled'``): OLS
      of the unit means on treatment with one fixed effect per episode, so each
      replicate is compared within itself, with HC1 (heteroscedasticity-robust)
      standard errors and t-based 95% CIs. Episodes without both arms are left out.

    Args:
        data: A database or a :func:`state_series` frame.
        variables: Default the state and EMA variables found.
        window: Post-window offsets from the start day.

    Returns:
        :data:`EFFECT_SCHEMA`; ``note`` says why a CI is missing.
    """
    frame = _load(data)
    arms = assignments(frame)
    values = _unit_days(frame, variables or (*STATE_VARIABLES, *EMA_VARIABLES))
    if arms.is_empty() or values.is_empty():
        return pl.DataFrame(schema=EFFECT_SCHEMA)
    joined = values.join(
        arms.select(*_UNIT, "intervention", "treated", "start_day"), on=_UNIT, how="inner"
    ).with_columns((pl.col("day") - pl.col("start_day")).alias("rel"))
    post = pl.col("rel") >= window[0]
    if window[1] is not None:
        post = post & (pl.col("rel") <= window[1])
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
    for _, group in units.partition_by(measure, as_dict=True, maintain_order=True).items():
        for _, episode in group.partition_by("episode_id", as_dict=True).items():
            rows.append(_effect_row(episode, "replicate"))
        rows.append(_effect_row(group, "pooled"))
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
        wide = _with_arm(wide, series if series is not None else _load(scores), intervention)
    if wide.is_empty():
        return pl.DataFrame(schema=schema)
    stats = wide.group_by(keys).agg(
        pl.len().alias("n"),
        pl.col("pre").mean().alias("mean_pre"),
        pl.col("post").mean().alias("mean_post"),
        pl.col("change").mean().alias("mean_change"),
        pl.col("change").std().alias("sd"),
    )
    half = pl.Series("t", [_t_crit(n) for n in stats["n"].to_list()], dtype=pl.Float64)
    error = pl.lit(half) * pl.col("sd") / pl.col("n").sqrt()
    stats = stats.with_columns(
        (pl.col("mean_change") - error).alias("ci_low"),
        (pl.col("mean_change") + error).alias("ci_high"),
    )
    return stats.select(list(schema)).cast(pl.Schema(schema)).sort(keys)


# --- sensing against self-report ----------------------------------------------------------------


def feature_outcome_correlations(
    data: Cohort | Sequence[pl.DataFrame],
    pairs: Sequence[tuple[str, str]] = DEFAULT_PAIRS,
    lag: int = 0,
    within: bool = False,
) -> pl.DataFrame:
    """Correlation of each sensing feature with an outcome across student-days.

    A feature on day ``d`` is paired with the outcome of the same unit on day
    ``d + lag`` (``lag=1``: does last night's sleep go with tomorrow's stress).
    Rows of one unit-day are averaged first (sources too). With ``within``,
    both are centred on each unit's mean, so only day-to-day variation within
    students counts. CIs use Fisher's z: ``tanh(atanh(r) +- 1.96 * se)`` with
    ``se = 1/sqrt(n-3)`` (Pearson) or ``sqrt(1.06/(n-3))`` (Spearman,
    Fieller, Hartley & Pearson 1957).

    Args:
        data: A database, a frame, or several frames (e.g. a StudentLife
            features frame and an EMA frame) stacked as one.
        pairs: ``(feature, outcome)`` variable names.
        lag: Days from feature to outcome.
        within: Centre on unit means first.

    Returns:
        :data:`CORRELATION_SCHEMA`, one row per condition x pair with data.
    """
    frame = _load(data)
    values = (
        _unit_days(frame, None)
        .group_by(*_CONDITION, *_UNIT, "variable", "day")
        .agg(pl.col("value").mean())
    )
    rows: list[dict[str, Any]] = []
    for feature, outcome in pairs:
        x = values.filter(pl.col("variable") == feature).select(
            *_CONDITION, *_UNIT, (pl.col("day") + lag).alias("day"), pl.col("value").alias("x")
        )
        y = values.filter(pl.col("variable") == outcome).select(
            *_UNIT, "day", pl.col("value").alias("y")
        )
        paired = x.join(y, on=[*_UNIT, "day"], how="inner")
        if within:
            paired = paired.with_columns(
                (pl.col("x") - pl.col("x").mean().over(_UNIT)),
                (pl.col("y") - pl.col("y").mean().over(_UNIT)),
            )
        for key, group in paired.partition_by(_CONDITION, as_dict=True).items():
            stats = _correlate(group["x"].to_numpy(), group["y"].to_numpy())
            rows.append(
                dict(zip(_CONDITION, key, strict=True))
                | {"feature": feature, "outcome": outcome, "lag": lag, "within": within}
                | {"n": group.height, "n_students": group.select(_UNIT).n_unique()}
                | stats
            )
    return pl.DataFrame(rows, schema=CORRELATION_SCHEMA).sort(*_CONDITION, "feature", "outcome")


def compare_correlations(
    simulated: Cohort | Sequence[pl.DataFrame],
    real: Cohort | Sequence[pl.DataFrame],
    pairs: Sequence[tuple[str, str]] = DEFAULT_PAIRS,
    lag: int = 0,
    within: bool = False,
    method: str = "pearson",
) -> pl.DataFrame:
    """Simulated and real feature-outcome correlations side by side.

    Either side may be a :func:`feature_outcome_correlations` result or data
    for it. The real side is pooled into one group; each simulated condition is
    compared with it. The gap is tested as two independent correlations:
    ``z = (atanh(r_sim) - atanh(r_real)) / sqrt(1/(n_sim-3) + 1/(n_real-3))``.

    Returns:
        ``experiment_id``, ``param_index``, ``feature``, ``outcome``, ``lag``,
        ``method``, ``n_sim``, ``r_sim``, ``ci_low_sim``, ``ci_high_sim``,
        ``n_real``, ``r_real``, ``ci_low_real``, ``ci_high_real``, ``gap``
        (sim - real), ``z``, ``p_value``.
    """
    if method not in ("pearson", "spearman"):
        raise ValueError(f"method must be 'pearson' or 'spearman', got {method!r}")
    sims = _correlations(simulated, pairs, lag, within)
    reals = _correlations(real, pairs, lag, within, pooled=True)
    pick = {
        f"{method}_r": "r",
        f"{method}_ci_low": "ci_low",
        f"{method}_ci_high": "ci_high",
    }
    left = sims.select(*_CONDITION, "feature", "outcome", "lag", "n", *pick).rename(
        {"n": "n_sim"} | {k: f"{v}_sim" for k, v in pick.items()}
    )
    right = (
        reals.select("feature", "outcome", "lag", "n", *pick)
        .unique(["feature", "outcome", "lag"], keep="first")
        .rename({"n": "n_real"} | {k: f"{v}_real" for k, v in pick.items()})
    )
    out = left.join(right, on=["feature", "outcome", "lag"], how="full", coalesce=True)
    tests = [
        _fisher_difference(a, na, b, nb)
        for a, na, b, nb in out.select("r_sim", "n_sim", "r_real", "n_real").iter_rows()
    ]
    out = out.with_columns(
        pl.lit(method).alias("method"),
        (pl.col("r_sim") - pl.col("r_real")).alias("gap"),
        pl.Series("z", [t[0] for t in tests], dtype=pl.Float64),
        pl.Series("p_value", [t[1] for t in tests], dtype=pl.Float64),
    )
    columns = [
        *_CONDITION,
        "feature",
        "outcome",
        "lag",
        "method",
        "n_sim",
        "r_sim",
        "ci_low_sim",
        "ci_high_sim",
        "n_real",
        "r_real",
        "ci_low_real",
        "ci_high_real",
        "gap",
        "z",
        "p_value",
    ]
    return out.select(columns).sort("feature", "outcome", *_CONDITION, nulls_last=True)


def compare_distributions(
    simulated: Values, real: Values, variables: Sequence[str] | None = None
) -> pl.DataFrame:
    """Per variable: mean and SD of simulated and real values and the two-sample KS test.

    Args:
        simulated, real: Data as for :func:`cohort_trajectories` (every row
            counts, not unit means), a list of such frames, or a mapping of
            variable to values.
        variables: Default the variables both sides have.

    Returns:
        ``variable``, ``n_sim``, ``mean_sim``, ``sd_sim``, ``n_real``,
        ``mean_real``, ``sd_real``, ``mean_diff`` (sim - real),
        ``ks_statistic``, ``ks_p`` (``scipy.stats.ks_2samp``).
    """
    from scipy.stats import ks_2samp

    sim, ref = _values_by_variable(simulated), _values_by_variable(real)
    names = variables if variables is not None else sorted(set(sim) & set(ref))
    rows = []
    for name in names:
        a, b = sim.get(name, np.array([])), ref.get(name, np.array([]))
        ks = ks_2samp(a, b) if a.size and b.size else None
        rows.append(
            {
                "variable": name,
                "n_sim": int(a.size),
                "mean_sim": _mean(a),
                "sd_sim": _sd(a),
                "n_real": int(b.size),
                "mean_real": _mean(b),
                "sd_real": _sd(b),
                "mean_diff": float(a.mean() - b.mean()) if a.size and b.size else None,
                "ks_statistic": _finite(ks.statistic) if ks is not None else None,
                "ks_p": _finite(ks.pvalue) if ks is not None else None,
            }
        )
    schema: dict[str, Any] = {"variable": pl.String, "n_sim": pl.Int64} | dict.fromkeys(
        ("mean_sim", "sd_sim"), pl.Float64
    )
    schema |= {"n_real": pl.Int64} | dict.fromkeys(
        ("mean_real", "sd_real", "mean_diff", "ks_statistic", "ks_p"), pl.Float64
    )
    return pl.DataFrame(rows, schema=schema)


# --- figures ------------------------------------------------------------------------------------


#: Which StudentLife EMA answer stands for each simulated EMA variable.
EMA_SOURCES: dict[str, tuple[str, str]] = {
    "ema_stress": ("stress", "level"),
    "ema_mood": ("mood", "valence"),
    "ema_sleep": ("sleep", "hour"),
    "ema_social": ("social", "number"),
}


def source_series(source: Any) -> pl.DataFrame:
    """A sensing source (a StudentLife copy, a synthetic term) as a long series like :func:`state_series`.

    Features become ``feature:<name>``; the EMA answers named in
    :data:`EMA_SOURCES` become ``ema_*`` (stress as its monotonic score).
    Several answers on one day are averaged.
    """
    features = source.features().drop("date", strict=False)
    long = _long(features)
    ema = source.ema()
    parts = [long]
    for variable, (kind, item) in EMA_SOURCES.items():
        picked = ema.filter((pl.col("kind") == kind) & (pl.col("item") == item))
        if picked.is_empty():
            continue
        daily = picked.group_by("student", "day").agg(pl.col("value").mean())
        parts.append(_long(daily.with_columns(pl.lit(variable).alias("variable"))))
    return pl.concat(parts, how="diagonal_relaxed")


def validation(
    db: str | Path, source: Any, pairs: Sequence[tuple[str, str]] = DEFAULT_PAIRS, lag: int = 0
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Simulated cohort vs real data: feature-outcome correlations and distributions, with gaps.

    Args:
        db: The database of a cohort experiment.
        source: The real data, e.g. ``StudentLife("/path/to/studentlife")``.
        pairs: (feature, outcome) pairs to correlate.
        lag: Days between feature and outcome.

    Returns:
        ``(compare_correlations(...), compare_distributions(...))`` over the EMA variables.
    """
    simulated = state_series(db)
    real = source_series(source)
    correlations = compare_correlations(simulated, real, pairs, lag=lag)
    variables = [v for v in EMA_SOURCES if v in set(real["variable"].to_list())]
    distributions = compare_distributions(
        simulated.filter(pl.col("variable").is_in(variables)),
        real.filter(pl.col("variable").is_in(variables)),
        variables,
    )
    return correlations, distributions


def _conform(frame: pl.DataFrame, schema: Mapping[str, Any]) -> pl.DataFrame:
    frame = frame.with_columns(
        pl.lit(None, dtype).alias(c) for c, dtype in schema.items() if c not in frame.columns
    )
    extra = [c for c in frame.columns if c not in schema]
    return frame.select(*schema, *extra).cast(pl.Schema(schema), strict=False)


def _load(data: Cohort | Sequence[pl.DataFrame]) -> pl.DataFrame:
    """A long frame with :data:`SERIES_SCHEMA` from any accepted input."""
    if isinstance(data, str | Path):
        return state_series(data)
    if isinstance(data, pl.DataFrame):
        return _long(data)
    frames = [_long(f) for f in data]
    if not frames:
        return pl.DataFrame(schema=SERIES_SCHEMA)
    return pl.concat(frames, how="diagonal_relaxed")


def _long(frame: pl.DataFrame) -> pl.DataFrame:
    if "variable" not in frame.columns or "value" not in frame.columns:
        ids = [c for c in frame.columns if c in SERIES_SCHEMA or c.startswith("param:")]
        measured = [c for c in frame.columns if c not in ids and frame.schema[c].is_numeric()]
        frame = frame.unpivot(on=measured, index=ids, variable_name="variable").with_columns(
            pl.col("value").cast(pl.Float64)
        )
        named = pl.col("variable")
        frame = frame.with_columns(
            pl.when(named.is_in(SENSING_FEATURES))
            .then(pl.lit(FEATURE_PREFIX) + named)
            .otherwise(named)
            .alias("variable")
        )
    if "source" not in frame.columns:
        frame = frame.with_columns(
            pl.when(pl.col("variable").str.starts_with(FEATURE_PREFIX))
            .then(pl.lit("sensing"))
            .when(pl.col("variable").str.starts_with("ema_"))
            .then(pl.lit("ema"))
            .otherwise(pl.lit("rule"))
            .alias("source")
        )
    if "t" in frame.columns and "day" not in frame.columns:
        frame = frame.rename({"t": "day"})
    if "agent" in frame.columns and "student" not in frame.columns:
        frame = frame.rename({"agent": "student"})
    defaults = {"experiment_id": 0, "param_index": 0, "replicate": 0, "episode_id": 0}
    frame = frame.with_columns(
        pl.lit(v).alias(k) for k, v in defaults.items() if k not in frame.columns
    )
    return _conform(frame, SERIES_SCHEMA)


def _unit_days(frame: pl.DataFrame, variables: Sequence[str] | None) -> pl.DataFrame:
    """One value per unit x day x variable x source (rows averaged), nulls dropped."""
    keys = [*_CONDITION, "replicate", *_UNIT, "source", "variable", "day"]
    if frame.is_empty():
        return pl.DataFrame(schema={k: SERIES_SCHEMA[k] for k in keys} | {"value": pl.Float64})
    chosen = frame.filter(pl.col("value").is_not_null() & pl.col("value").is_not_nan())
    if variables is not None:
        chosen = chosen.filter(pl.col("variable").is_in(list(variables)))
    return chosen.group_by(keys).agg(pl.col("value").mean()).sort(keys)


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


def _effect_row(units: pl.DataFrame, scope: str) -> dict[str, Any]:
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
    if scope == "replicate":
        post, note = _welch(treated["post"].to_numpy(), control["post"].to_numpy())
        changes = units.filter(pl.col("change").is_not_null())
        did, did_note = _welch(
            changes.filter(pl.col("treated"))["change"].to_numpy(),
            changes.filter(~pl.col("treated"))["change"].to_numpy(),
        )
        if changes.is_empty():
            did_note = "no days before the start"
        method = "welch"
    else:
        post, note = _fixed_effects(units, "post")
        did, did_note = _fixed_effects(units.filter(pl.col("change").is_not_null()), "change")
        method = "ols episode fixed effects, HC1"
    row |= {"diff": post[0], "ci_low": post[1], "ci_high": post[2], "p_value": post[3]}
    row |= {"did": did[0], "did_ci_low": did[1], "did_ci_high": did[2], "did_p": did[3]}
    notes = [n for n in (note, f"did: {did_note}" if did_note else None) if n]
    return row | {"method": method, "note": "; ".join(notes) or None}


Estimate = tuple[float | None, float | None, float | None, float | None]
_NONE: Estimate = (None, None, None, None)


def _welch(a: np.ndarray, b: np.ndarray) -> tuple[Estimate, str | None]:
    """(diff, ci_low, ci_high, p) of mean(a) - mean(b) by Welch's t-test."""
    if a.size == 0 or b.size == 0:
        return _NONE, "an arm is empty"
    diff = float(a.mean() - b.mean())
    if a.size < 2 or b.size < 2:
        return (diff, None, None, None), "fewer than 2 units in an arm"
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = math.sqrt(va + vb)
    if se == 0:
        return (diff, diff, diff, None), "no variance within arms"
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    from scipy.stats import t

    half = float(t.ppf(0.975, df)) * se
    p = float(2 * t.sf(abs(diff) / se, df))
    return (diff, diff - half, diff + half, p), None


def _fixed_effects(units: pl.DataFrame, column: str) -> tuple[Estimate, str | None]:
    """Treatment coefficient of OLS ``y ~ treated + episode`` with HC1 errors."""
    both = units.group_by("episode_id").agg(pl.col("treated").n_unique().alias("arms"))
    keep = both.filter(pl.col("arms") == 2)["episode_id"].to_list()
    units = units.filter(pl.col("episode_id").is_in(keep))
    if units.is_empty():
        return _NONE, "no episode with both arms" + (
            "" if column == "post" else " and days before the start"
        )
    episodes = sorted(set(units["episode_id"].to_list()))
    y = units[column].to_numpy().astype(float)
    x = np.column_stack(
        [units["treated"].to_numpy().astype(float)]
        + [(units["episode_id"] == e).to_numpy().astype(float) for e in episodes]
    )
    if y.size - x.shape[1] < 1:
        return _NONE, "too few units for the pooled model"
    import statsmodels.api as sm

    fit = sm.OLS(y, x).fit(cov_type="HC1", use_t=True)
    diff = float(fit.params[0])
    low, high = (float(v) for v in np.asarray(fit.conf_int())[0])
    se = float(np.asarray(fit.bse)[0])
    if not math.isfinite(se) or se == 0:
        return (diff, diff, diff, None), "no variance within arms"
    return (diff, low, high, _finite(np.asarray(fit.pvalues)[0])), None


def _correlate(x: np.ndarray, y: np.ndarray) -> dict[str, float | None]:
    out: dict[str, float | None] = {
        k: None for k in CORRELATION_SCHEMA if k.startswith(("pearson", "spearman"))
    }
    n = x.size
    if n < 4 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return out
    from scipy.stats import pearsonr, spearmanr

    for name, test, scale in (("pearson", pearsonr, 1.0), ("spearman", spearmanr, 1.06)):
        result = test(x, y)
        r = _finite(result.statistic)
        if r is None:
            continue
        half = 1.96 * math.sqrt(scale / (n - 3))
        z = math.atanh(max(-0.999999, min(0.999999, r)))
        out |= {
            f"{name}_r": r,
            f"{name}_ci_low": math.tanh(z - half),
            f"{name}_ci_high": math.tanh(z + half),
            f"{name}_p": _finite(result.pvalue),
        }
    return out


def _correlations(
    data: Cohort | Sequence[pl.DataFrame],
    pairs: Sequence[tuple[str, str]],
    lag: int,
    within: bool,
    pooled: bool = False,
) -> pl.DataFrame:
    """``data`` itself when it already is a correlations frame, else its correlations."""
    if isinstance(data, pl.DataFrame) and "pearson_r" in data.columns:
        return data
    frame = _load(data)
    if pooled:  # real data: one group, whatever its condition columns say
        frame = frame.with_columns(pl.lit(0, pl.Int64).alias(c) for c in _CONDITION)
    return feature_outcome_correlations(frame, pairs, lag, within)


def _fisher_difference(
    a: float | None, na: int | None, b: float | None, nb: int | None
) -> tuple[float | None, float | None]:
    if a is None or b is None or na is None or nb is None or na < 4 or nb < 4:
        return None, None
    from scipy.stats import norm

    clip = 0.999999
    z = (math.atanh(max(-clip, min(clip, a))) - math.atanh(max(-clip, min(clip, b)))) / math.sqrt(
        1 / (na - 3) + 1 / (nb - 3)
    )
    return z, float(2 * norm.sf(abs(z)))


def _values_by_variable(data: Values) -> dict[str, np.ndarray]:
    if isinstance(data, Mapping):
        return {str(k): _clean(np.asarray(v, dtype=float)) for k, v in data.items()}
    frame = _load(data).filter(pl.col("value").is_not_null())
    return {
        str(key[0]): _clean(group["value"].to_numpy().astype(float))
        for key, group in frame.partition_by("variable", as_dict=True).items()
    }


def _clean(values: np.ndarray) -> np.ndarray:
    return values[np.isfinite(values)]


def _mean(values: np.ndarray) -> float | None:
    return float(values.mean()) if values.size else None


def _sd(values: np.ndarray) -> float | None:
    return float(values.std(ddof=1)) if values.size >= 2 else None


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _t_crit(n: int) -> float | None:
    if n < 2:
        return None
    from scipy.stats import t

    return float(t.ppf(0.975, n - 1))


def _insert(schema: Mapping[str, Any], name: str, dtype: Any, after: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in schema.items():
        out[key] = value
        if key == after:
            out[name] = dtype
    return out


def _first_last(traj: pl.DataFrame) -> pl.DataFrame:
    keys = [*_CONDITION, "source", "variable"]
    return (
        traj.sort("day")
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
