"""Validity of the cohort analyses: planted effects recovered, nominal false positives.

Synthetic student terms in the shape the cohort analyses take (one row per
student x day with ``student``, ``day``, ``episode_id``, ``variable``,
``value``, ``source``), with the nuisance structure real cohorts have:
students differ in their levels of every variable (and those levels are
correlated across variables), the term moves everyone at once (a shared
trend plus the shocks of each day), some EMA answers are missing, and a
student's days are serially correlated. On top of that an effect is planted,
or none.

``cases()`` gives what the aggregator (``benchmarks/validity.py``) runs:

- :func:`~personae.analysis.cohort_sensing.feature_outcome_relations`, within
  students: the 95% CI covers the planted day-to-day correlation; with none
  planted (but the trend and the between-student differences present), p < .05
  in about 5% of runs;
- the same, between students: the CI covers the planted correlation of the
  students' means; with none, p < .05 in about 5%;
- :func:`~personae.analysis.cohort.intervention_effects`, pooled over two
  replicates with cluster-robust errors, both the post-window difference and
  the difference in differences: coverage of the planted effect and the rate
  of false positives without one;
- the pairing of EMA answers with sensing days: an item about yesterday
  (StudentLife's social EMA) and a weekly item about the past week, each
  recovered at its planted within-student correlation (pairing with the same
  day would find about none).

``python benchmarks/validity_cohort.py [replications]`` prints coverage and
false-positive rates (default 200 replications; each run takes 20-100 ms).
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np
import polars as pl

from personae.analysis.cohort import feature_outcome_relations, intervention_effects
from personae.environments.ema import STUDENTLIFE_SOURCE, EmaItem
from personae.seeds import derive_seed

#: The planted within-student correlation of a feature with an outcome.
WITHIN_R = 0.3
#: The planted correlation between the students' true levels of a feature and an outcome.
BETWEEN_R = 0.5
#: The planted treated - control difference of the intervention (outcome units).
EFFECT = 1.5
#: Students per replicate, days per term, share of missing EMA answers.
STUDENTS, DAYS, MISSING = 40, 28, 0.2


def term(
    seed: int,
    *,
    within: float = 0.0,
    between: float = 0.6,
    lag: int = 0,
    missing: float = MISSING,
    autocorrelation: float = 0.5,
    students: int = STUDENTS,
    days: int = DAYS,
    outcome: str = "ema_stress",
    source: str = "ema",
) -> pl.DataFrame:
    """A term of one feature (``feature:sleep_minutes``) and one EMA outcome per student-day.

    ``x[i, d] = mx[i] + trend_x[d] + e[i, d]`` and ``y[i, d] = my[i] + trend_y[d]
    + b * e[i, d - lag] + u[i, d]`` with ``e`` iid N(0, 1), ``u`` AR(1) (SD
    ``sqrt(1 - b^2)``), ``(mx, my)`` bivariate normal (SD 1.5, correlation
    ``between``) and trends that move the two in opposite directions over the
    term (so pooled student-days correlate negatively whatever ``b`` is), plus
    shocks of each day shared by everyone.

    Args:
        seed: Seed of the random draws.
        within: The planted within-student correlation (``b``).
        between: Correlation of the students' levels (a nuisance here).
        lag: Days from the feature to the outcome it drives.
        missing: Share of outcome days without an answer.
        autocorrelation: AR(1) coefficient of the outcome's noise.
        students: How many students.
        days: Days in the term.
        outcome: The outcome variable.
        source: The outcome rows' source (its EMA instrument).

    Returns:
        Long rows: ``student``, ``day``, ``variable``, ``value``, ``source``.
    """
    rng = np.random.default_rng(seed)
    levels = rng.multivariate_normal(
        [0, 0], [[2.25, 2.25 * between], [2.25 * between, 2.25]], students
    )
    ramp = np.linspace(-1.5, 1.5, days)
    shocks = rng.normal(0, 0.5, (2, days))
    e = rng.standard_normal((students, days + lag))
    u = np.empty((students, days))
    u[:, 0] = rng.standard_normal(students)
    for d in range(1, days):
        u[:, d] = autocorrelation * u[:, d - 1] + math.sqrt(
            1 - autocorrelation**2
        ) * rng.standard_normal(students)
    x = levels[:, :1] - ramp + shocks[0] + e[:, lag:]
    y = levels[:, 1:] + ramp + shocks[1] + within * e[:, :days] + math.sqrt(1 - within**2) * u
    answered = rng.random((students, days)) >= missing
    return _long({"feature:sleep_minutes": (x, None, "sensing"), outcome: (y, answered, source)})


def within_recovery(seed: int) -> tuple[float, float, float]:
    """Planted within-student r and the 95% CI of the within level (day means removed)."""
    row = _relation(term(_stream(seed, "within"), within=WITHIN_R, autocorrelation=0.0), "within")
    return WITHIN_R, row["ci_low"], row["ci_high"]


def within_null(seed: int) -> tuple[float]:
    """p of the within level with no day-to-day relation, but a shared trend and level differences."""
    return (_relation(term(_stream(seed, "within null")), "within")["p_value"],)


def between_recovery(seed: int) -> tuple[float, float, float]:
    """The planted correlation of the students' means and the 95% CI of the between level.

    What the between level estimates is the correlation of the means a
    student's days give: their true levels (SD 1.5, correlation
    :data:`BETWEEN_R`) plus the day-to-day noise averaged over :data:`DAYS`
    days, which dilutes it a little; every answer is kept, so every mean is
    over the same days.
    """
    frame = term(
        _stream(seed, "between"),
        within=WITHIN_R,
        between=BETWEEN_R,
        missing=0.0,
        autocorrelation=0.0,
    )
    level, noise = 2.25, 1.0 / DAYS
    covariance = BETWEEN_R * level + WITHIN_R * noise
    planted = covariance / (level + noise)
    row = _relation(frame, "between")
    return planted, row["ci_low"], row["ci_high"]


def between_null(seed: int) -> tuple[float]:
    """p of the between level when the students' levels are unrelated (trend, missing answers kept).

    No day-to-day relation either: averaged over a student's days it would
    correlate the means a little (what the between level then rightly reports).
    """
    return (_relation(term(_stream(seed, "between null"), between=0.0), "between")["p_value"],)


def yesterday_recovery(seed: int) -> tuple[float, float, float]:
    """StudentLife's social EMA asks about yesterday: paired with day t - 1, r is recovered."""
    frame = term(
        _stream(seed, "yesterday"),
        within=WITHIN_R,
        lag=1,
        autocorrelation=0.0,
        outcome="ema_social",
        source=STUDENTLIFE_SOURCE,
    )
    row = _relation(frame, "within", [("feature:sleep_minutes", "ema_social")])
    return WITHIN_R, row["ci_low"], row["ci_high"]


#: A weekly item about the past week (paired with the mean of the 7 days before).
WEEKLY = EmaItem(
    variable="ema_week", field="week", question="How was your week?", period="past_week"
)


def past_week_recovery(seed: int) -> tuple[float, float, float]:
    """A weekly past-week item driven by the week's mean feature: its within-student r is recovered.

    The answer on day ``7w`` is ``b * mean(e[7w-7 .. 7w-1]) * sqrt(7) + noise``,
    so its correlation with the week's mean feature is ``b``; the answers are a
    week apart, so their weeks do not overlap.
    """
    rng = np.random.default_rng(_stream(seed, "past week"))
    weeks, students = 8, STUDENTS
    days = 7 * (weeks + 1)
    levels = rng.multivariate_normal([0, 0], [[2.25, 1.35], [1.35, 2.25]], students)
    ramp = np.linspace(-1.5, 1.5, days)
    e = rng.standard_normal((students, days))
    x = levels[:, :1] - ramp + e
    y = np.full((students, days), np.nan)
    for w in range(1, weeks + 1):
        week = e[:, 7 * w - 7 : 7 * w].mean(axis=1) * math.sqrt(7)
        noise = rng.standard_normal(students)
        y[:, 7 * w] = (
            levels[:, 1] + ramp[7 * w] + WITHIN_R * week + math.sqrt(1 - WITHIN_R**2) * noise
        )
    frame = _long(
        {"feature:sleep_minutes": (x, None, "sensing"), "ema_week": (y, ~np.isnan(y), "ema")}
    )
    row = _relation(frame, "within", [("feature:sleep_minutes", "ema_week")], items=[WEEKLY])
    return WITHIN_R, row["ci_low"], row["ci_high"]


def trial(seed: int, effect: float = 0.0, replicates: int = 2) -> pl.DataFrame:
    """Replicates of a term where half the students are treated from mid-term.

    ``y = level + trend + shock of the day (per replicate) + effect * treated * post
    + AR(1) noise`` (coefficient 0.6): students differ (SD 2), the term drifts,
    and a student's days are correlated, so only errors clustered by student are right.
    """
    rng = np.random.default_rng(seed)
    start, parts = DAYS // 2, []
    for episode in range(replicates):
        levels = rng.normal(0, 2.0, STUDENTS)
        trend = np.linspace(0, 2, DAYS) + rng.normal(0, 0.5, DAYS)
        noise = np.empty((STUDENTS, DAYS))
        noise[:, 0] = rng.standard_normal(STUDENTS)
        for d in range(1, DAYS):
            noise[:, d] = 0.6 * noise[:, d - 1] + 0.8 * rng.standard_normal(STUDENTS)
        treated = rng.permutation(STUDENTS) < STUDENTS // 2
        post = np.arange(DAYS) >= start
        y = levels[:, None] + trend + effect * np.outer(treated, post) + noise
        frame = _long({"stress": (y, None, "rule")})
        flags = pl.DataFrame(
            {
                "student": [f"s{i:02d}" for i in range(STUDENTS)],
                "day": start,
                "variable": "treated:program",
                "value": treated.astype(float),
                "source": "intervention",
            }
        )
        ids = [pl.lit(episode).alias("episode_id"), pl.lit(episode).alias("replicate")]
        parts.append(pl.concat([frame, flags], how="diagonal_relaxed").with_columns(ids))
    return pl.concat(parts)


def effect_recovery(seed: int) -> tuple[float, float, float]:
    """Planted effect and the pooled post-window difference's 95% CI."""
    row = _pooled(trial(_stream(seed, "difference"), EFFECT))
    return EFFECT, row["ci_low"], row["ci_high"]


def effect_null(seed: int) -> tuple[float]:
    """p of the pooled post-window difference without an effect."""
    return (_pooled(trial(_stream(seed, "difference null")))["p_value"],)


def did_recovery(seed: int) -> tuple[float, float, float]:
    """Planted effect and the pooled difference in differences' 95% CI."""
    row = _pooled(trial(_stream(seed, "did"), EFFECT))
    return EFFECT, row["did_ci_low"], row["did_ci_high"]


def did_null(seed: int) -> tuple[float]:
    """p of the pooled difference in differences without an effect."""
    return (_pooled(trial(_stream(seed, "did null")))["did_p"],)


def cases() -> list[dict[str, Any]]:
    """The validity checks for ``benchmarks/validity.py``.

    Returns:
        ``{"analysis", "check", "run"}`` dicts: ``recovery`` runs return
        ``(planted, ci_low, ci_high)``, ``null`` runs return ``(p,)``.
    """
    within = "cohort within-person r (feature_outcome_relations)"
    between = "cohort between-person r (feature_outcome_relations)"
    diff = "cohort intervention effect, pooled difference (clustered by student)"
    did = "cohort intervention effect, pooled difference in differences (clustered by student)"
    return [
        {"analysis": within, "check": "recovery", "run": within_recovery},
        {"analysis": within, "check": "null", "run": within_null},
        {"analysis": between, "check": "recovery", "run": between_recovery},
        {"analysis": between, "check": "null", "run": between_null},
        {"analysis": diff, "check": "recovery", "run": effect_recovery},
        {"analysis": diff, "check": "null", "run": effect_null},
        {"analysis": did, "check": "recovery", "run": did_recovery},
        {"analysis": did, "check": "null", "run": did_null},
        {
            "analysis": "cohort EMA pairing: item about yesterday (within-person r)",
            "check": "recovery",
            "run": yesterday_recovery,
        },
        {
            "analysis": "cohort EMA pairing: item about the past week (within-person r)",
            "check": "recovery",
            "run": past_week_recovery,
        },
    ]


def _stream(seed: int, case: str) -> int:
    """The seed of one case's draws: replication ``seed`` of different cases draws independently."""
    return derive_seed(seed, "validity_cohort", case)


def _long(columns: dict[str, tuple[np.ndarray, np.ndarray | None, str]]) -> pl.DataFrame:
    """Long rows from ``{variable: (students x days values, answered mask or None, source)}``."""
    parts = []
    for variable, (values, answered, source) in columns.items():
        keep = np.ones(values.shape, bool) if answered is None else answered
        rows, cols = np.nonzero(keep)
        parts.append(
            pl.DataFrame(
                {
                    "student": [f"s{i:02d}" for i in rows],
                    "day": cols.astype(np.int64),
                    "variable": variable,
                    "value": values[rows, cols],
                    "source": source,
                }
            )
        )
    return pl.concat(parts)


def _relation(
    frame: pl.DataFrame,
    level: str,
    pairs: list[tuple[str, str]] | None = None,
    items: list[EmaItem] | None = None,
) -> dict[str, Any]:
    pairs = pairs or [("feature:sleep_minutes", "ema_stress")]
    out = feature_outcome_relations(frame, pairs, items=items)
    return out.filter(pl.col("level") == level).row(0, named=True)


def _pooled(frame: pl.DataFrame) -> dict[str, Any]:
    effects = intervention_effects(frame, ["stress"])
    return effects.filter(pl.col("scope") == "pooled").row(0, named=True)


if __name__ == "__main__":
    from validity import main as run_validity  # the aggregator beside this file

    sys.exit(
        run_validity(["--only", "cohort", "--reps", sys.argv[1] if len(sys.argv) > 1 else "200"])
    )
