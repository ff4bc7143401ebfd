"""Sensing against self-report in repeated measures: within and between students, EMA periods."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest
from scipy import stats

from personae.analysis import cohort, cohort_sensing
from personae.environments.ema import (
    COHORT_EMA,
    EMA_INSTRUMENTS,
    PERIODS,
    STUDENTLIFE_EMA,
    EmaItem,
    checkin_question,
    checkin_schema,
)
from personae.errors import ConfigError

PAIR = [("feature:sleep_minutes", "ema_stress")]


def panel(
    seed: int = 1,
    students: int = 12,
    days: int = 20,
    within: float = 0.5,
    trend: float = 0.0,
    level_r: float = 0.0,
    missing: float = 0.0,
) -> pl.DataFrame:
    """Wide student-days: x = level + trend + e, y = level - trend + within * e + noise."""
    rng = np.random.default_rng(seed)
    levels = rng.multivariate_normal([0, 0], [[4, 4 * level_r], [4 * level_r, 4]], students)
    ramp = trend * np.linspace(-1, 1, days)
    e = rng.standard_normal((students, days))
    x = levels[:, :1] + ramp + e
    y = levels[:, 1:] - ramp + within * e + rng.standard_normal((students, days))
    rows = [
        {"student": f"s{i:02d}", "day": d, "sleep_minutes": x[i, d], "ema_stress": y[i, d]}
        for i in range(students)
        for d in range(days)
        if rng.random() >= missing
    ]
    return pl.DataFrame(rows)


def level(out: pl.DataFrame, name: str) -> dict:
    return out.filter(pl.col("level") == name).row(0, named=True)


def to_pandas(frame: pl.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(frame.to_dict(as_series=False))


def test_within_is_pingouin_rm_corr_without_day_means() -> None:
    import pingouin as pg

    frame = panel(missing=0.2)
    out = cohort.feature_outcome_relations(frame, PAIR, remove_day_means=False)
    within = level(out, "within")
    ref = pg.rm_corr(to_pandas(frame), "sleep_minutes", "ema_stress", "student").iloc[0]
    assert within["r"] == pytest.approx(ref["r"]) and within["df"] == ref["dof"]
    assert within["p_value"] == pytest.approx(ref["pval"])
    assert (within["ci_low"], within["ci_high"]) == (
        pytest.approx(ref["CI95"][0], abs=0.006),
        pytest.approx(ref["CI95"][1], abs=0.006),
    )
    assert within["n"] == frame.height and within["n_students"] == 12
    assert not within["day_means_removed"] and list(out.columns) == list(cohort.RELATION_SCHEMA)


def test_within_with_day_means_is_two_way_fixed_effects() -> None:
    import statsmodels.formula.api as smf

    frame = panel(missing=0.25, trend=2.0)
    within = level(cohort.feature_outcome_relations(frame, PAIR), "within")
    fit = smf.ols("ema_stress ~ sleep_minutes + C(student) + C(day)", to_pandas(frame)).fit()
    t = fit.tvalues["sleep_minutes"]
    assert within["df"] == fit.df_resid
    assert within["r"] == pytest.approx(t / np.sqrt(t**2 + fit.df_resid), abs=1e-7)
    assert within["p_value"] == pytest.approx(fit.pvalues["sleep_minutes"], rel=1e-5)
    assert within["day_means_removed"]


def test_between_is_pearson_of_student_means_with_n_students() -> None:
    frame = panel(level_r=0.8)
    out = cohort.feature_outcome_relations(frame, PAIR, remove_day_means=False)
    between = level(out, "between")
    means = frame.group_by("student").agg(
        pl.col("sleep_minutes").mean(), pl.col("ema_stress").mean()
    )
    ref = stats.pearsonr(means["sleep_minutes"], means["ema_stress"])
    low, high = ref.confidence_interval()
    assert between["r"] == pytest.approx(ref.statistic) and between["p_value"] == pytest.approx(
        ref.pvalue
    )
    assert (between["ci_low"], between["ci_high"]) == (pytest.approx(low), pytest.approx(high))
    assert (between["n"], between["n_students"], between["df"]) == (12, 12, 10)
    # with every day answered, removing day means shifts every student alike: same r
    same = level(cohort.feature_outcome_relations(frame, PAIR), "between")
    assert same["r"] == pytest.approx(ref.statistic)


def test_level_differences_and_the_term_trend_do_not_make_a_within_relation() -> None:
    # no day-to-day relation, but students' levels correlate and the term moves x and y apart
    frame = panel(seed=4, students=30, days=30, within=0.0, trend=1.5, level_r=0.8)
    pooled = stats.pearsonr(frame["sleep_minutes"], frame["ema_stress"])
    assert pooled.pvalue < 0.001  # what a student-day correlation would have claimed
    out = cohort.feature_outcome_relations(frame, PAIR)
    within = level(out, "within")
    assert within["ci_low"] < 0 < within["ci_high"] and abs(within["r"]) < 0.08
    assert level(out, "between")["r"] > 0.5  # the level differences are between students
    kept = level(cohort.feature_outcome_relations(frame, PAIR, remove_day_means=False), "within")
    assert kept["r"] < -0.3 and kept["p_value"] < 0.001  # the shared trend, not a relation


def test_replicates_are_separate_students() -> None:
    one = panel(seed=1)
    two = pl.concat(
        [
            one.with_columns(pl.lit(1).alias("episode_id")),
            panel(seed=2).with_columns(pl.lit(2).alias("episode_id")),
        ]
    )
    out = cohort.feature_outcome_relations(two, PAIR)
    assert level(out, "within")["n_students"] == 24 and level(out, "between")["n"] == 24
    assert level(out, "within")["n"] == 2 * one.height


def test_too_little_data_gives_null_statistics() -> None:
    frame = panel(students=3, days=2)
    out = cohort.feature_outcome_relations(frame, PAIR)
    assert level(out, "between")["r"] is None and level(out, "within")["r"] is None
    assert cohort.feature_outcome_relations(frame, [("feature:nothing", "ema_stress")]).is_empty()


def _lagged(source: str, outcome: str, lag: int, days: int = 30) -> pl.DataFrame:
    """The outcome on day t follows the feature of day t - lag, nothing else."""
    rng = np.random.default_rng(7)
    rows = []
    for i in range(10):
        x = rng.standard_normal(days + lag)
        for d in range(days):
            rows.append((f"s{i}", d, "feature:conversation_count", x[d + lag], "sensing"))
            rows.append((f"s{i}", d, outcome, x[d] + 0.5 * rng.standard_normal(), source))
    return pl.DataFrame(
        rows, schema=["student", "day", "variable", "value", "source"], orient="row"
    )


def test_pairing_follows_the_period_each_item_asks_about() -> None:
    pair = [("feature:conversation_count", "ema_social")]
    # StudentLife's social EMA counts yesterday's contacts: paired with day t - 1
    real = level(
        cohort.feature_outcome_relations(_lagged("studentlife", "ema_social", 1), pair), "within"
    )
    assert (real["period"], real["feature_days"], real["lag"]) == ("yesterday", "t-1", 1)
    assert real["r"] > 0.8
    same_day = cohort.feature_outcome_relations(
        _lagged("studentlife", "ema_social", 1), pair, lag=0
    )
    assert (
        abs(level(same_day, "within")["r"]) < 0.2
        and level(same_day, "within")["feature_days"] == "t"
    )
    # the cohort's own check-in asks about today
    sim = level(cohort.feature_outcome_relations(_lagged("ema", "ema_social", 0), pair), "within")
    assert (sim["period"], sim["lag"]) == ("today", 0) and sim["r"] > 0.8
    # last night's sleep is filed under the day it ends on
    sleep = cohort.feature_outcome_relations(
        _lagged("ema", "ema_sleep", 0), [("feature:conversation_count", "ema_sleep")]
    )
    assert level(sleep, "within")["period"] == "last_night" and level(sleep, "within")["lag"] == 0


def test_past_week_items_pair_with_the_mean_of_the_seven_days_before() -> None:
    weekly = EmaItem(variable="ema_week", field="week", question="Your week?", period="past_week")
    rng = np.random.default_rng(3)
    rows = []
    for i in range(10):
        x = rng.standard_normal(70)
        for d in range(70):
            if d != 5:  # one missing day: windows over it keep 6 of 7 days
                rows.append((f"s{i}", d, "feature:sleep_minutes", x[d], "sensing"))
        for d in range(7, 70, 7):
            rows.append(
                (f"s{i}", d, "ema_week", x[d - 7 : d].mean() + 0.1 * rng.standard_normal(), "ema")
            )
    frame = pl.DataFrame(
        rows, schema=["student", "day", "variable", "value", "source"], orient="row"
    )
    pair = [("feature:sleep_minutes", "ema_week")]
    out = level(cohort.feature_outcome_relations(frame, pair, items=[weekly]), "within")
    assert (out["period"], out["feature_days"], out["lag"]) == (
        "past_week",
        "mean of t-7..t-1",
        None,
    )
    assert out["r"] > 0.9 and out["n"] == 90
    # not an item of any instrument: paired with the same day
    plain = level(cohort.feature_outcome_relations(frame, pair), "within")
    assert plain["period"] == "today" and plain["r"] < 0.5


def test_every_ema_item_declares_its_period() -> None:
    for items in EMA_INSTRUMENTS.values():
        assert {i.variable for i in items} == set(cohort.EMA_VARIABLES)
        assert all(i.period in PERIODS for i in items)
    periods = {i.variable: i.period for i in STUDENTLIFE_EMA}
    assert periods["ema_social"] == "yesterday" and periods["ema_sleep"] == "last_night"
    assert {i.variable: i.period for i in COHORT_EMA}["ema_social"] == "today"
    assert cohort.EMA_SOURCES["ema_social"] == ("social", "number")
    with pytest.raises(ConfigError, match="period"):
        EmaItem(variable="ema_x", field="x", question="?", period="last_month")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="ema_"):
        EmaItem(variable="x", field="x", question="?", period="today")


def test_the_checkin_is_built_from_the_items() -> None:
    question = checkin_question()
    assert question.startswith(
        "Quick check-in (answer as yourself, about today).\nstress: right now"
    )
    assert "sleep_hours: how many hours did you sleep last night" in question
    assert question.endswith('{"stress": 4, "mood": 3, "sleep_hours": 7, "social": 5}.')
    schema = checkin_schema()
    assert schema["required"] == ["stress", "mood", "sleep_hours", "social"]
    assert schema["properties"]["stress"] == {"type": "integer", "enum": [1, 2, 3, 4, 5]}
    assert schema["properties"]["social"] == {"type": "integer", "minimum": 0, "maximum": 50}
    stress, mood = COHORT_EMA[0], COHORT_EMA[1]
    assert stress.read(3) == (5.0, "Stressed out") and stress.read(9) == (None, None)
    assert mood.read("4") == (4.0, None) and mood.read("n/a") == (None, None)


def test_synthetic_studentlife_social_ema_is_paired_with_yesterday() -> None:
    from personae.environments.sensing import SyntheticTerm, Term

    series = cohort.source_series(SyntheticTerm(16, Term(n_days=40), seed=3, ema_share=0.8))
    social = series.filter(pl.col("variable") == "ema_social")
    assert set(social["source"].to_list()) == {"studentlife"}
    pair = [("feature:conversation_count", "ema_social")]
    paired = level(cohort.feature_outcome_relations(series, pair), "within")
    same_day = level(cohort.feature_outcome_relations(series, pair, lag=0), "within")
    assert paired["lag"] == 1 and paired["r"] > 0.25 and paired["p_value"] < 0.001
    assert abs(same_day["r"]) < paired["r"] / 2


def test_compare_correlations_level_by_level_with_each_sides_periods() -> None:
    pair = [("feature:conversation_count", "ema_social")]
    simulated = _lagged("ema", "ema_social", 0)
    real = _lagged("studentlife", "ema_social", 1)
    out = cohort.compare_correlations(simulated, real, pair)
    assert out["level"].to_list() == ["within", "between"]
    within = out.row(0, named=True)
    assert (within["period_sim"], within["period_real"]) == ("today", "yesterday")
    assert within["gap"] == pytest.approx(within["r_sim"] - within["r_real"])
    assert within["p_value"] > 0.05  # the same relation once each side is paired by its period
    z = (np.arctanh(within["r_sim"]) - np.arctanh(within["r_real"])) / np.sqrt(
        1 / (within["df_sim"] - 1) + 1 / (within["df_real"] - 1)
    )
    assert within["z"] == pytest.approx(z)
    relations = cohort.feature_outcome_relations(simulated, pair)
    again = cohort.compare_correlations(relations, real, pair)
    assert again["r_sim"].to_list() == pytest.approx(out["r_sim"].to_list())
    assert list(out.columns) == list(cohort_sensing.COMPARISON_SCHEMA)
