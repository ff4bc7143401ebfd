"""Student cohort: sensing features against self-reports, within and between students, and real data.

Student-days are not independent: students differ in their levels of both a
feature and an outcome, and the term moves everyone at once (more load, less
sleep, more stress toward the end). A correlation over pooled student-days
mixes both with the day-to-day relation and treats every day as a new
observation, so it finds relations that are not there. Here each relation is
split in two (Curran & Bauer 2011; Bakdash & Marusich 2017):

- **within** students: does a student's outcome move with their own feature
  from day to day? Both are centred on the unit's mean (repeated-measures
  correlation, :func:`pingouin.rm_corr`) and, by default, on each day's
  mean within the episode as well (``remove_day_means``: the term trend and
  the shocks of a day shared by everyone are not a student's relation). The
  estimate is the partial correlation of the two-way fixed-effects model
  ``outcome ~ feature + unit + episode-day``; ``df = n - units - days + components - 1``
  (exactly :func:`pingouin.rm_corr`'s ``n - units - 1`` without day means).
- **between** students: do students with more of the feature have more of the
  outcome? Pearson r of the units' means (day means removed first, by
  default), with ``n`` = the number of units and ``df = n - 2``.

Each comes with a t-test p-value and a Fisher-z 95% CI (``se = 1/sqrt(df - 1)``).
A unit is one student in one episode, so replicates count their students
separately and never as one.

Each outcome day is paired with the feature of the days its EMA item asks
about (:mod:`personae.studies.cohort.term.ema`): ``today`` and ``last_night`` the
same day, ``yesterday`` the day before, ``past_week`` the mean of the 7 days
before (at least 4 with data). Which instrument an answer belongs to comes
from its row's ``source``: ``ema`` (the cohort's check-in) or ``studentlife``
(:func:`source_series`); outcomes that are not EMA items (states) pair with
the same day.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from personae.analysis.frames import finite
from personae.analysis.stats import (
    correlation_test,
    demean,
    dummy_rank,
    fisher_difference,
    mean,
    pearson,
    sd,
)
from personae.studies.cohort.series import (
    CONDITION_KEYS,
    UNIT_KEYS,
    Cohort,
    as_series,
    group_codes,
    state_series,
    unit_days,
)
from personae.studies.cohort.term.ema import (
    EMA_INSTRUMENTS,
    MIN_WEEK_DAYS,
    PERIOD_LAGS,
    STUDENTLIFE_EMA,
    STUDENTLIFE_SOURCE,
    EmaItem,
    item_periods,
)

#: (feature, outcome) pairs :func:`feature_outcome_relations` reads by default.
DEFAULT_PAIRS: tuple[tuple[str, str], ...] = (
    ("feature:sleep_minutes", "ema_stress"),
    ("feature:sleep_minutes", "ema_sleep"),
    ("feature:conversation_minutes", "ema_mood"),
    ("feature:conversation_count", "ema_social"),
    ("feature:sleep_minutes", "stress"),
    ("feature:conversation_minutes", "mood"),
)
#: The two levels of a relation.
LEVELS = ("within", "between")
#: Columns of :func:`feature_outcome_relations`.
RELATION_SCHEMA: dict[str, Any] = {
    "experiment_id": pl.Int64,
    "param_index": pl.Int64,
    "feature": pl.String,
    "outcome": pl.String,
    "period": pl.String,
    "feature_days": pl.String,
    "lag": pl.Int64,
    "level": pl.String,
    "day_means_removed": pl.Boolean,
    "n": pl.Int64,
    "n_students": pl.Int64,
    "df": pl.Int64,
    "r": pl.Float64,
    "ci_low": pl.Float64,
    "ci_high": pl.Float64,
    "p_value": pl.Float64,
}
#: Columns of :func:`compare_correlations`.
COMPARISON_SCHEMA: dict[str, Any] = {
    "experiment_id": pl.Int64,
    "param_index": pl.Int64,
    "feature": pl.String,
    "outcome": pl.String,
    "level": pl.String,
    "period_sim": pl.String,
    "n_sim": pl.Int64,
    "df_sim": pl.Int64,
    "r_sim": pl.Float64,
    "ci_low_sim": pl.Float64,
    "ci_high_sim": pl.Float64,
    "period_real": pl.String,
    "n_real": pl.Int64,
    "df_real": pl.Int64,
    "r_real": pl.Float64,
    "ci_low_real": pl.Float64,
    "ci_high_real": pl.Float64,
    "gap": pl.Float64,
    "z": pl.Float64,
    "p_value": pl.Float64,
}
#: Which StudentLife EMA answer (kind, item) stands for each simulated EMA variable.
EMA_SOURCES: dict[str, tuple[str, str]] = {
    item.variable: (item.field.split(".", 1)[0], item.field.split(".", 1)[1])
    for item in STUDENTLIFE_EMA
}

Items = Sequence[EmaItem] | Mapping[str, EmaItem]
Values = Cohort | Sequence[pl.DataFrame] | Mapping[str, Sequence[float]]
_CONDITION = list(CONDITION_KEYS)
_UNIT = list(UNIT_KEYS)
_STATS = ("n", "n_students", "df", "r", "ci_low", "ci_high", "p_value")


def feature_outcome_relations(
    data: Cohort | Sequence[pl.DataFrame],
    pairs: Sequence[tuple[str, str]] = DEFAULT_PAIRS,
    *,
    lag: int | None = None,
    remove_day_means: bool = True,
    items: Items | None = None,
) -> pl.DataFrame:
    """Within- and between-student relation of each sensing feature with an outcome.

    See the module docstring for the two estimates and the pairing. Rows of
    one unit-day are averaged first (a variable written by several sources,
    e.g. ``rule`` and ``llm``, too).

    Args:
        data: A database, a frame, or several frames (e.g. a StudentLife
            features frame and an EMA frame) stacked as one.
        pairs: ``(feature, outcome)`` variable names.
        lag: Pair every outcome on day ``t`` with the feature of day ``t - lag``
            instead of following the items' periods.
        remove_day_means: Also remove each day's mean (within an episode):
            the within estimate becomes two-way (unit and day) fixed effects,
            and the between estimate uses day-centred values. On by default:
            a trend common to everyone (the term's load) otherwise shows up
            as a within-student relation.
        items: EMA items whose periods to follow for every source; default
            each row's instrument by its ``source``
            (:data:`~personae.studies.cohort.term.ema.EMA_INSTRUMENTS`).

    Returns:
        :data:`RELATION_SCHEMA`, two rows (``level`` ``within`` and
        ``between``) per condition x pair with data: ``period`` the outcome
        asks about, ``feature_days`` paired with day ``t`` (``lag`` when one
        day), ``n`` student-days (within) or units (between), ``n_students``
        units, ``df``, ``r``, its 95% CI and p; statistics are null where
        there are too few units or days.

    Example:
        >>> feature_outcome_relations("runs/cohort.db")  # doctest: +SKIP
    """
    values = unit_days(as_series(data))
    rows: list[dict[str, Any]] = []
    for feature, outcome in pairs:
        paired, labels = _pair(values, feature, outcome, lag, items)
        for key, group in paired.partition_by(_CONDITION, as_dict=True).items():
            base = dict(zip(_CONDITION, key, strict=True)) | labels
            base |= {"feature": feature, "outcome": outcome}
            base |= {"day_means_removed": remove_day_means}
            rows.append(base | {"level": "within"} | _within(group, remove_day_means))
            rows.append(base | {"level": "between"} | _between(group, remove_day_means))
    out = pl.DataFrame(rows, schema=RELATION_SCHEMA)
    return out.sort(*_CONDITION, "feature", "outcome", pl.col("level") == "between")


def compare_correlations(
    simulated: Cohort | Sequence[pl.DataFrame],
    real: Cohort | Sequence[pl.DataFrame],
    pairs: Sequence[tuple[str, str]] = DEFAULT_PAIRS,
    *,
    lag: int | None = None,
    remove_day_means: bool = True,
) -> pl.DataFrame:
    """Simulated and real feature-outcome relations side by side, within and between students.

    Either side may be a :func:`feature_outcome_relations` result or data for
    it; each side pairs its outcomes by its own instrument's periods (the
    cohort's check-in asks about today's contacts, StudentLife about
    yesterday's). The real side is pooled into one group; each simulated
    condition is compared with it, level by level. The gap is tested as two
    independent correlations: ``z = (atanh(r_sim) - atanh(r_real)) /
    sqrt(1/(df_sim - 1) + 1/(df_real - 1))``.

    Returns:
        :data:`COMPARISON_SCHEMA`: the period, ``n``, ``df``, ``r`` and CI of
        each side, ``gap`` (sim - real), ``z`` and ``p_value``.
    """
    sims = _relations(simulated, pairs, lag, remove_day_means)
    reals = _relations(real, pairs, lag, remove_day_means, pooled=True)
    keys = ["feature", "outcome", "level"]
    shown = ["period", "n", "df", "r", "ci_low", "ci_high"]
    left = sims.select(*_CONDITION, *keys, *shown).rename({c: f"{c}_sim" for c in shown})
    right = (
        reals.select(*keys, *shown)
        .unique(keys, keep="first")
        .rename({c: f"{c}_real" for c in shown})
    )
    out = left.join(right, on=keys, how="full", coalesce=True)
    tests = [
        fisher_difference(a, da, b, db)
        for a, da, b, db in out.select("r_sim", "df_sim", "r_real", "df_real").iter_rows()
    ]
    out = out.with_columns(
        (pl.col("r_sim") - pl.col("r_real")).alias("gap"),
        pl.Series("z", [t[0] for t in tests], dtype=pl.Float64),
        pl.Series("p_value", [t[1] for t in tests], dtype=pl.Float64),
    )
    return (
        out.select(list(COMPARISON_SCHEMA))
        .cast(pl.Schema(COMPARISON_SCHEMA))
        .sort("feature", "outcome", pl.col("level") == "between", *_CONDITION, nulls_last=True)
    )


def compare_distributions(
    simulated: Values, real: Values, variables: Sequence[str] | None = None
) -> pl.DataFrame:
    """Per variable: mean and SD of simulated and real values and the two-sample KS test.

    Every row counts as one value (these describe the spread of answers; they
    are not tests of a relation).

    Args:
        simulated: Data as for :func:`~personae.studies.cohort.series.as_series`,
            a list of such frames, or a mapping of variable to values.
        real: The same for the real side.
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
                "mean_sim": mean(a),
                "sd_sim": sd(a),
                "n_real": int(b.size),
                "mean_real": mean(b),
                "sd_real": sd(b),
                "mean_diff": float(a.mean() - b.mean()) if a.size and b.size else None,
                "ks_statistic": finite(ks.statistic) if ks is not None else None,
                "ks_p": finite(ks.pvalue) if ks is not None else None,
            }
        )
    schema: dict[str, Any] = {"variable": pl.String, "n_sim": pl.Int64} | dict.fromkeys(
        ("mean_sim", "sd_sim"), pl.Float64
    )
    schema |= {"n_real": pl.Int64} | dict.fromkeys(
        ("mean_real", "sd_real", "mean_diff", "ks_statistic", "ks_p"), pl.Float64
    )
    return pl.DataFrame(rows, schema=schema)


def source_series(source: Any) -> pl.DataFrame:
    """A sensing source (a StudentLife copy, a synthetic term) as a long series like :func:`state_series`.

    Features become ``feature:<name>`` (source ``sensing``); the EMA answers of
    :data:`~personae.studies.cohort.term.ema.STUDENTLIFE_EMA` (:data:`EMA_SOURCES`)
    become ``ema_*`` with source ``studentlife``, so the relations pair them
    by that instrument's periods (stress as its monotonic score). Several
    answers on one day are averaged.
    """
    features = source.features().drop("date", strict=False)
    parts = [as_series(features)]
    ema = source.ema()
    for variable, (kind, item) in EMA_SOURCES.items():
        picked = ema.filter((pl.col("kind") == kind) & (pl.col("item") == item))
        if picked.is_empty():
            continue
        daily = picked.group_by("student", "day").agg(pl.col("value").mean())
        daily = daily.with_columns(
            pl.lit(variable).alias("variable"), pl.lit(STUDENTLIFE_SOURCE).alias("source")
        )
        parts.append(as_series(daily))
    return pl.concat(parts, how="diagonal_relaxed")


def validation(
    db: str | Path,
    source: Any,
    pairs: Sequence[tuple[str, str]] = DEFAULT_PAIRS,
    *,
    lag: int | None = None,
    remove_day_means: bool = True,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Simulated cohort vs real data: within- and between-student relations and distributions.

    Args:
        db: The database of a cohort experiment.
        source: The real data, e.g. ``StudentLife("/path/to/studentlife")``.
        pairs: (feature, outcome) pairs to relate.
        lag: Override the items' periods with one lag (see :func:`feature_outcome_relations`).
        remove_day_means: Remove day means as well (see :func:`feature_outcome_relations`).

    Returns:
        ``(compare_correlations(...), compare_distributions(...))`` over the EMA variables.
    """
    simulated = state_series(db)
    real = source_series(source)
    correlations = compare_correlations(
        simulated, real, pairs, lag=lag, remove_day_means=remove_day_means
    )
    variables = [v for v in EMA_SOURCES if v in set(real["variable"].to_list())]
    distributions = compare_distributions(
        simulated.filter(pl.col("variable").is_in(variables)),
        real.filter(pl.col("variable").is_in(variables)),
        variables,
    )
    return correlations, distributions


# --- pairing ------------------------------------------------------------------------------------


def _period_of(source: str, outcome: str, items: Items | None) -> str:
    chosen = items if items is not None else EMA_INSTRUMENTS.get(source, ())
    return item_periods(chosen).get(outcome, "today")


def _days_label(lags: Sequence[int]) -> str:
    def day(k: int) -> str:
        return "t" if k == 0 else f"t-{k}" if k > 0 else f"t+{-k}"

    if len(lags) == 1:
        return day(lags[0])
    return f"mean of {day(max(lags))}..{day(min(lags))}"


def _pair(
    values: pl.DataFrame, feature: str, outcome: str, lag: int | None, items: Items | None
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Unit-days with ``x`` (the feature of the days the outcome is about) and ``y``."""
    at = [*_CONDITION, *_UNIT, "day"]
    x = (
        values.filter(pl.col("variable") == feature)
        .group_by(at)
        .agg(pl.col("value").mean().alias("x"))
    )
    y = values.filter(pl.col("variable") == outcome).select(
        *at, "source", pl.col("value").alias("y")
    )
    periods = {s: _period_of(s, outcome, items) for s in sorted(set(y["source"].to_list()))}
    parts: list[pl.DataFrame] = []
    labels: dict[str, list[Any]] = {"period": [], "feature_days": [], "lag": []}
    for period in sorted(set(periods.values())):
        lags = (lag,) if lag is not None else PERIOD_LAGS[period]
        window = (
            pl.concat([x.with_columns(pl.col("day") + k) for k in lags])
            .group_by(at)
            .agg(pl.col("x").mean(), pl.len().alias("days"))
            .filter(pl.col("days") >= (MIN_WEEK_DAYS if len(lags) > 1 else 1))
        )
        mine = y.filter(pl.col("source").is_in([s for s, p in periods.items() if p == period]))
        parts.append(mine.join(window, on=at, how="inner").select(*at, "x", "y"))
        labels["period"].append(period)
        labels["feature_days"].append(_days_label(lags))
        labels["lag"].append(lags[0] if len(lags) == 1 else None)
    if not parts:
        schema: dict[str, Any] = {c: values.schema[c] for c in at}
        return pl.DataFrame(schema=schema | {"x": pl.Float64, "y": pl.Float64}), {}
    paired = pl.concat(parts).group_by(at).agg(pl.col("x").mean(), pl.col("y").mean()).sort(at)
    joined = {
        "period": "+".join(labels["period"]),
        "feature_days": "+".join(labels["feature_days"]),
        "lag": labels["lag"][0] if len(set(labels["lag"])) == 1 else None,
    }
    return paired, joined


# --- the two levels -----------------------------------------------------------------------------


def _within(group: pl.DataFrame, remove_day_means: bool) -> dict[str, Any]:
    """Partial r of x and y given unit (and episode-day) fixed effects, with its df, CI and p."""
    units = group_codes(group, _UNIT)
    n, n_units = group.height, int(units.max()) + 1
    out: dict[str, Any] = dict.fromkeys(_STATS) | {"n": n, "n_students": n_units}
    groups = [units]
    if remove_day_means:
        groups.append(group_codes(group, ["episode_id", "day"]))
    df = n - dummy_rank(groups) - 1
    if n_units < 3 or df < 2:
        return out
    raw = group.select("x", "y").to_numpy().astype(float)
    resid = demean(raw, groups)
    sx, sy = float(resid[:, 0] @ resid[:, 0]), float(resid[:, 1] @ resid[:, 1])
    if not (_varies(resid[:, 0], raw[:, 0]) and _varies(resid[:, 1], raw[:, 1])):
        return out | {"df": df}
    r = float(resid[:, 0] @ resid[:, 1]) / math.sqrt(sx * sy)
    return out | {"df": df} | correlation_test(r, df)


def _between(group: pl.DataFrame, remove_day_means: bool) -> dict[str, Any]:
    """Pearson r of the units' mean x and y (day-centred first), ``n`` = units."""
    if remove_day_means:
        cell = ["episode_id", "day"]
        group = group.with_columns(
            pl.col("x") - pl.col("x").mean().over(cell), pl.col("y") - pl.col("y").mean().over(cell)
        )
    means = group.group_by(_UNIT).agg(pl.col("x").mean(), pl.col("y").mean())
    n = means.height
    out: dict[str, Any] = dict.fromkeys(_STATS) | {"n": n, "n_students": n, "df": n - 2}
    x, y = means["x"].to_numpy(), means["y"].to_numpy()
    if n < 4 or not (_varies(x, group["x"].to_numpy()) and _varies(y, group["y"].to_numpy())):
        return out
    r = pearson(x, y).r
    if r is None:
        return out
    return out | correlation_test(r, n - 2)


def _varies(values: np.ndarray, raw: np.ndarray) -> bool:
    """Whether ``values`` (derived from ``raw``) vary by more than rounding error."""
    scale = 1.0 + float(np.abs(raw).max(initial=0.0))
    return bool(values.size) and float(np.ptp(values)) > 1e-9 * scale


def _relations(
    data: Cohort | Sequence[pl.DataFrame],
    pairs: Sequence[tuple[str, str]],
    lag: int | None,
    remove_day_means: bool,
    pooled: bool = False,
) -> pl.DataFrame:
    """``data`` itself when it already is a relations frame, else its relations."""
    if isinstance(data, pl.DataFrame) and {"level", "r"} <= set(data.columns):
        return data
    frame = as_series(data)
    if pooled:  # real data: one group, whatever its condition columns say
        frame = frame.with_columns(pl.lit(0, pl.Int64).alias(c) for c in _CONDITION)
    return feature_outcome_relations(frame, pairs, lag=lag, remove_day_means=remove_day_means)


# --- distributions ------------------------------------------------------------------------------


def _values_by_variable(data: Values) -> dict[str, np.ndarray]:
    if isinstance(data, Mapping):
        return {str(k): _clean(np.asarray(v, dtype=float)) for k, v in data.items()}
    frame = as_series(data).filter(pl.col("value").is_not_null())
    return {
        str(key[0]): _clean(group["value"].to_numpy().astype(float))
        for key, group in frame.partition_by("variable", as_dict=True).items()
    }


def _clean(values: np.ndarray) -> np.ndarray:
    return values[np.isfinite(values)]


__all__ = [
    "COMPARISON_SCHEMA",
    "DEFAULT_PAIRS",
    "EMA_SOURCES",
    "LEVELS",
    "RELATION_SCHEMA",
    "compare_correlations",
    "compare_distributions",
    "feature_outcome_relations",
    "source_series",
    "validation",
]
