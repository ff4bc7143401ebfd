"""Cohort analysis on small hand-built databases with the real schema and known answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from handmade import HandMadeDb
from scipy import stats

from personae.analysis import cohort, cohort_report
from personae.analysis.report import write_report


class Store(HandMadeDb):
    """Writes episodes, students, states and scores straight into a personae database."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, scenario="cohort")

    def episode(self, replicate: int = 0, status: str = "complete", param_index: int = 0) -> int:
        params = {"n_students": 12, "days": 14, "source": "synthetic"}
        return self.add_episode(params, param_index=param_index, replicate=replicate, status=status)

    def agent(self, episode: int, name: str, role: str = "student") -> None:
        self.add_agent(episode, name, role)

    def state(
        self, episode: int, name: str, t: int, variable: str, value: float, source: str = "rule"
    ) -> None:
        self.con.execute(
            "INSERT INTO states (episode_id, agent_id, t, variable, value, source)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (episode, self.agents[episode, name], t, variable, value, source),
        )

    def score(self, episode: int, name: str, occasion: int, instrument: str, value: float) -> None:
        self.con.execute(
            "INSERT INTO scores (episode_id, agent_id, step, point, occasion, instrument, level,"
            " scale, value, n_items, n_missing, source) VALUES (?, ?, 0, ?, ?, ?, 'total', ?, ?,"
            " 9, 0, 'self_report')",
            (
                episode,
                self.agents[episode, name],
                "start" if occasion == 0 else "end",
                occasion,
                instrument,
                instrument,
                value,
            ),
        )


def _trial(path: Path, effect: float, replicates: int = 2, students: int = 12) -> Path:
    """Stress drops by ``effect`` for treated students from day 5; mood has no effect."""
    rng = np.random.default_rng(5)
    store = Store(path)
    for rep in range(replicates):
        ep = store.episode(replicate=rep)
        treated = set(rng.choice(students, size=students // 2, replace=False).tolist())
        for i in range(students):
            name = f"s{i:02d}"
            store.agent(ep, name)
            level = rng.normal(50, 5)
            store.state(ep, name, 5, "treated:calm", float(i in treated), "scenario")
            for day in range(10):
                shift = -effect if (i in treated and day >= 5) else 0.0
                store.state(ep, name, day, "stress", level + shift + rng.normal(0, 2))
                store.state(ep, name, day, "mood", 60 + rng.normal(0, 4))
                store.state(ep, name, day, "ema_stress", level + shift + rng.normal(0, 4), "ema")
    store.agent(store.episode(replicate=replicates, status="failed"), "s00")
    return store.done()


@pytest.fixture
def trial(tmp_path: Path) -> Path:
    return _trial(tmp_path / "trial.db", effect=10.0)


def test_state_series_reads_students_of_complete_episodes(tmp_path: Path) -> None:
    store = Store(tmp_path / "c.db")
    ep = store.episode()
    store.agent(ep, "Ann")
    store.agent(ep, "Mod", role="moderator")
    store.state(ep, "Ann", 0, "stress", 40)
    store.state(ep, "Mod", 0, "stress", 99)
    failed = store.episode(replicate=1, status="failed")
    store.agent(failed, "Ann")
    store.state(failed, "Ann", 0, "stress", 1)
    series = cohort.state_series(store.done())
    assert series.height == 1
    row = series.row(0, named=True)
    assert (row["student"], row["day"], row["value"], row["source"]) == ("Ann", 0, 40.0, "rule")
    assert row["param:n_students"] == 12 and row["param:source"] == "synthetic"
    assert list(series.columns[: len(cohort.SERIES_SCHEMA)]) == list(cohort.SERIES_SCHEMA)


def test_trajectories_mean_and_t_interval() -> None:
    frame = pl.DataFrame(
        {"student": ["a", "b", "c", "a"], "day": [0, 0, 0, 1], "stress": [1.0, 2.0, 3.0, 5.0]}
    )
    out = cohort.cohort_trajectories(frame)
    first = out.filter(pl.col("day") == 0).row(0, named=True)
    half = stats.t.ppf(0.975, 2) * 1.0 / np.sqrt(3)
    assert (first["n"], first["mean"], first["sd"]) == (3, 2.0, 1.0)
    assert first["ci_low"] == pytest.approx(2 - half)
    assert first["ci_high"] == pytest.approx(2 + half)
    single = out.filter(pl.col("day") == 1).row(0, named=True)
    assert single["n"] == 1 and single["ci_low"] is None
    assert list(out.columns) == list(cohort.TRAJECTORY_SCHEMA)


def test_trajectories_split_by_arm(trial: Path) -> None:
    out = cohort.cohort_trajectories(trial, ["stress"], intervention="calm")
    late = out.filter(pl.col("day") == 9).sort("arm")
    control, treated = late["mean"].to_list()
    assert late["arm"].to_list() == ["control", "treated"]
    assert control - treated > 5
    assert late["n"].to_list() == [12, 12]  # 6 per arm x 2 replicates


def test_assignments_treat_missing_rows_as_controls(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    ep = store.episode()
    for name in ("a", "b", "c"):
        store.agent(ep, name)
        store.state(ep, name, 0, "stress", 30)
    store.state(ep, "a", 3, "treated:sleep", 1, "scenario")
    out = cohort.assignments(store.done())
    assert out.select("student", "treated", "start_day").rows() == [
        ("a", True, 3),
        ("b", False, 3),
        ("c", False, 3),
    ]


def test_planted_effect_is_recovered_per_replicate_and_pooled(trial: Path) -> None:
    effects = cohort.intervention_effects(trial, ["stress", "ema_stress", "mood"])
    assert set(effects.columns) == set(cohort.EFFECT_SCHEMA)
    pooled = effects.filter(pl.col("scope") == "pooled")
    stress = pooled.filter(pl.col("variable") == "stress").row(0, named=True)
    assert stress["ci_low"] < -10 < stress["ci_high"] < 0
    assert stress["did_ci_low"] < -10 < stress["did_ci_high"] < 0
    assert (stress["n_treated"], stress["n_control"]) == (12, 12)
    assert (stress["start_day"], stress["first_day"], stress["last_day"]) == (5, 5, 9)
    ema = pooled.filter(pl.col("variable") == "ema_stress").row(0, named=True)
    assert ema["source"] == "ema" and ema["ci_high"] < 0
    mood = pooled.filter(pl.col("variable") == "mood").row(0, named=True)
    assert mood["ci_low"] < 0 < mood["ci_high"]
    assert mood["did_ci_low"] < 0 < mood["did_ci_high"]
    replicates = effects.filter((pl.col("scope") == "replicate") & (pl.col("variable") == "stress"))
    assert replicates["replicate"].to_list() == [0, 1]
    # students differ in level (sd 5), so per replicate the change (did) is the sharper contrast
    assert (replicates["diff"] < 0).all() and (replicates["did_ci_high"] < 0).all()


def test_replicate_effect_is_welch_on_unit_means(trial: Path) -> None:
    series = cohort.state_series(trial)
    effects = cohort.intervention_effects(series, ["stress"], window=(2, 4))
    row = effects.filter(pl.col("scope") == "replicate").row(0, named=True)
    arms = cohort.assignments(series).filter(pl.col("episode_id") == row["episode_id"])
    means = (
        series.filter(
            (pl.col("episode_id") == row["episode_id"])
            & (pl.col("variable") == "stress")
            & pl.col("day").is_between(7, 9)
        )
        .group_by("student")
        .agg(pl.col("value").mean())
        .join(arms, on="student")
    )
    a = means.filter(pl.col("treated"))["value"].to_numpy()
    b = means.filter(~pl.col("treated"))["value"].to_numpy()
    test = stats.ttest_ind(a, b, equal_var=False)
    low, high = test.confidence_interval()
    assert row["diff"] == pytest.approx(a.mean() - b.mean())
    assert (row["ci_low"], row["ci_high"]) == (pytest.approx(low), pytest.approx(high))
    assert row["p_value"] == pytest.approx(test.pvalue)
    assert (row["first_day"], row["last_day"]) == (7, 9)


def test_no_effect_when_there_is_none(tmp_path: Path) -> None:
    effects = cohort.intervention_effects(_trial(tmp_path / "null.db", effect=0.0), ["stress"])
    pooled = effects.filter(pl.col("scope") == "pooled").row(0, named=True)
    assert pooled["ci_low"] < 0 < pooled["ci_high"]
    assert cohort.intervention_effects(tmp_path / "null.db", ["nothing"]).is_empty()


def test_effects_without_days_before_the_start_say_so(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    ep = store.episode()
    for i in range(4):
        store.agent(ep, f"s{i}")
        store.state(ep, f"s{i}", 0, "treated:x", float(i % 2), "scenario")
        store.state(ep, f"s{i}", 0, "stress", 10.0 * i)
    row = cohort.intervention_effects(store.done(), ["stress"]).row(0, named=True)
    assert row["diff"] == pytest.approx(10.0)
    assert row["did"] is None and "no days before the start" in row["note"]


def test_pooled_effects_are_ols_on_student_days_clustered_by_student(trial: Path) -> None:
    import pandas as pd
    import statsmodels.formula.api as smf

    series = cohort.state_series(trial)
    pooled = cohort.intervention_effects(series, ["stress"]).filter(pl.col("scope") == "pooled")
    row = pooled.row(0, named=True)
    assert row["method"] == cohort.POOLED_METHOD
    arms = cohort.assignments(series).select("episode_id", "student", "treated", "start_day")
    days = (
        series.filter(pl.col("variable") == "stress")
        .join(arms, on=["episode_id", "student"])
        .with_columns(
            (pl.col("day") >= pl.col("start_day")).alias("post"),
            pl.format("{}-{}", "episode_id", "student").alias("unit"),
            pl.format("{}-{}", "episode_id", "day").alias("cell"),
        )
        .select("value", "treated", "post", "unit", "cell")
    )
    data = pd.DataFrame(days.to_dict(as_series=False))
    units = data["unit"].astype("category").cat.codes
    data["arm"] = data["treated"].astype(float)
    post = data[data["post"]]
    diff = smf.ols("value ~ 0 + arm + C(cell)", post).fit(
        cov_type="cluster", cov_kwds={"groups": units[data["post"]]}, use_t=True
    )
    low, high = diff.conf_int().loc["arm"]
    assert row["diff"] == pytest.approx(diff.params["arm"])
    assert (row["ci_low"], row["ci_high"]) == (pytest.approx(low), pytest.approx(high))
    assert row["p_value"] == pytest.approx(diff.pvalues["arm"])
    # did: two-way fixed effects; the students' effects are nested in the clusters and
    # not counted in the small-sample correction, so start from the uncorrected (CR0) errors
    data["exposed"] = (data["treated"] & data["post"]).astype(float)
    did = smf.ols("value ~ exposed + C(unit) + C(cell)", data).fit(
        cov_type="cluster", cov_kwds={"groups": units, "use_correction": False}, use_t=True
    )
    n, clusters = len(data), units.nunique()
    kept = data["cell"].nunique() - data["cell"].str.split("-").str[0].nunique()
    factor = clusters / (clusters - 1) * (n - 1) / (n - 1 - kept)
    se = did.bse["exposed"] * np.sqrt(factor)
    half = stats.t.ppf(0.975, clusters - 1) * se
    assert row["did"] == pytest.approx(did.params["exposed"])
    assert (row["did_ci_low"], row["did_ci_high"]) == (
        pytest.approx(row["did"] - half),
        pytest.approx(row["did"] + half),
    )


def test_compare_distributions() -> None:
    rng = np.random.default_rng(2)
    real = {"stress": rng.normal(50, 10, 300), "mood": rng.normal(60, 5, 300)}
    sim = {"stress": rng.normal(50, 10, 300), "mood": rng.normal(40, 5, 300)}
    dist = cohort.compare_distributions(sim, real).sort("variable")
    mood, stress = dist.rows(named=True)
    assert mood["mean_diff"] == pytest.approx(np.mean(sim["mood"]) - np.mean(real["mood"]))
    assert mood["ks_statistic"] > 0.7 and mood["ks_p"] < 1e-6
    assert stress["ks_p"] > 0.01 and stress["sd_sim"] == pytest.approx(
        np.std(sim["stress"], ddof=1)
    )
    days = {"student": [f"s{i % 10}" for i in range(200)], "day": [i // 10 for i in range(200)]}
    x = rng.normal(size=200)
    simulated = pl.DataFrame(days | {"sleep_minutes": x, "ema_stress": -x})
    features = pl.DataFrame(days | {"sleep_minutes": x})
    wide = cohort.compare_distributions(simulated, features, ["feature:sleep_minutes"])
    assert wide.row(0, named=True)["ks_statistic"] == pytest.approx(0.0)


def test_questionnaire_change_pre_post_by_arm(tmp_path: Path) -> None:
    store = Store(tmp_path / "q.db")
    ep = store.episode()
    for i, (pre, post) in enumerate([(10, 6), (12, 8), (9, 9), (11, 11)]):
        name = f"s{i}"
        store.agent(ep, name)
        store.state(ep, name, 0, "stress", 40)
        store.state(ep, name, 2, "treated:sleep", float(i < 2), "scenario")
        store.score(ep, name, 0, "phq-9", pre)
        store.score(ep, name, 1, "phq-9", post)
    path = store.done()
    overall = cohort.questionnaire_change(path).row(0, named=True)
    assert (overall["n"], overall["mean_pre"], overall["mean_change"]) == (4, 10.5, -2.0)
    arms = cohort.questionnaire_change(path, intervention="sleep").sort("arm")
    assert arms["arm"].to_list() == ["control", "treated"]
    assert arms["mean_change"].to_list() == [0.0, -4.0]


def test_figures(trial: Path, tmp_path: Path) -> None:
    from matplotlib.figure import Figure

    target = tmp_path / "traj.png"
    assert isinstance(cohort_report.plot_cohort_trajectories(trial, path=target), Figure)
    assert target.stat().st_size > 0
    assert isinstance(cohort_report.plot_students(trial, variables=["stress", "mood"]), Figure)
    effects = cohort.intervention_effects(trial, ["stress", "mood"])
    assert isinstance(cohort_report.plot_intervention_effects(effects), Figure)
    assert isinstance(
        cohort_report.plot_cohort_trajectories(pl.DataFrame({"student": ["a"]})), Figure
    )


def test_section_builds_for_a_cohort_and_not_otherwise(trial: Path, tmp_path: Path) -> None:
    section = cohort_report.section()
    assert section.title == "Student cohort"
    body = section.build(trial)
    assert body is not None and "Student cohort" in body and "<img" in body
    assert "Intervention effects" in body
    page = write_report(trial, tmp_path / "r.html", sections=[section]).read_text()
    assert "<h2>Student cohort</h2>" in page

    assert "Sensing features and self-reports" not in body  # no features in this trial

    store = Store(tmp_path / "ema_only.db")
    ep = store.episode()
    store.agent(ep, "a")
    store.state(ep, "a", 0, "ema_stress", 3, "ema")
    assert section.build(store.done()) is None


def test_trajectories_of_a_simulated_term() -> None:
    from personae.environments.mental_state import StateRule, simulate

    features = pl.DataFrame(
        {"student": ["a", "a", "b", "b"], "day": [0, 1, 0, 1], "sleep_minutes": [240.0] * 4}
    )
    calendar = pl.DataFrame({"day": [0, 1], "deadlines": [0, 0], "exam": [False, False]})
    traits = {"a": {"N": 3}, "b": {"N": 3}}
    states = simulate(StateRule(), features, calendar, traits)
    out = cohort.cohort_trajectories(states, ["sleep_debt"])
    assert out["mean"].to_list() == pytest.approx([3.5, 0.9 * 3.5 + 3.5])
    assert set(out["source"].to_list()) == {"rule"} and out["n"].to_list() == [2, 2]


def test_section_shows_within_and_between_relations(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    store = Store(tmp_path / "sensing.db")
    ep = store.episode()
    for i in range(6):
        name = f"s{i}"
        store.agent(ep, name)
        for day in range(8):
            sleep = 420 + rng.normal(0, 30)
            store.state(ep, name, day, "feature:sleep_minutes", sleep, "sensing")
            store.state(ep, name, day, "stress", 50 - 0.1 * sleep + rng.normal(0, 2))
            store.state(ep, name, day, "ema_social", float(rng.integers(0, 9)), "ema")
            store.state(
                ep, name, day, "feature:conversation_count", float(rng.integers(0, 9)), "sensing"
            )
    body = cohort_report.section().build(store.done())
    assert body is not None and "Sensing features and self-reports" in body
    assert "within" in body and "between" in body and "Within students" in body
