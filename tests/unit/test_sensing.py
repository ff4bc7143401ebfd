"""The synthetic term: reproducible, realistic, with the term pattern and planted relations."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from scipy import stats

from personae.agents.persona import Persona
from personae.environments.sensing import (
    CALENDAR_SCHEMA,
    EMA_SCHEMA,
    FEATURE_SCHEMA,
    LATENT_SCHEMA,
    STREAMS,
    STRESS_LABELS,
    SURVEY_SCHEMA,
    Effects,
    SensingSource,
    SyntheticTerm,
    Term,
    stress_level,
    stress_score,
)
from personae.environments.studentlife import StudentLife
from personae.errors import ConfigError
from personae.studies.cohort.term.studentlife_writer import write_studentlife


@pytest.fixture(scope="module")
def term() -> SyntheticTerm:
    return SyntheticTerm(seed=0)


@pytest.fixture(scope="module")
def joined(term: SyntheticTerm) -> pl.DataFrame:
    return term.features().join(term.latent(), on=["student", "day"])


def partial_r(frame: pl.DataFrame, x: str, y: str) -> tuple[float, float]:
    """Correlation after removing student and day means (the day means carry the term load)."""
    df = frame.drop_nulls([x, y])
    for col in (x, y):
        df = df.with_columns(
            (
                pl.col(col)
                - pl.col(col).mean().over("student")
                - pl.col(col).mean().over("day")
                + pl.col(col).mean()
            ).alias(col)
        )
    r, p = stats.pearsonr(df[x].to_numpy(), df[y].to_numpy())
    return float(r), float(p)


# --- the interface and the term --------------------------------------------------------------


def test_frames_follow_the_schemas(term: SyntheticTerm):
    assert isinstance(term, SensingSource)
    assert term.students()[:3] == ["u00", "u01", "u02"] and len(term.students()) == 48
    assert term.days() == 70
    assert term.features().schema == pl.Schema(FEATURE_SCHEMA)
    assert term.features().height == 48 * 70
    assert term.calendar().schema == pl.Schema(CALENDAR_SCHEMA)
    assert term.surveys().schema == pl.Schema(SURVEY_SCHEMA)
    assert term.ema().schema == pl.Schema(EMA_SCHEMA)
    assert term.latent().schema == pl.Schema(LATENT_SCHEMA)
    assert term.traits().columns[:2] == ["student", "name"]


def test_default_term_calendar():
    cal = Term().calendar()
    assert cal.height == 70 and cal["week"].max() == 10
    assert cal["date"][0].isoformat() == "2013-03-27"
    assert sorted(set(cal.filter("exam")["week"])) == [4, 5, 10]
    assert cal["deadlines"].sum() >= 10
    weekly = cal.group_by("week").agg(pl.col("load").mean()).sort("week")["load"]
    assert weekly[9] > weekly[1] and weekly[4] > weekly[2]  # finals and midterms weigh most
    short = Term(n_days=14)
    assert all(0 <= d < 14 for d in (*short.exam_days, *short.deadline_days))  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs",
    [{"n_days": 0}, {"exam_days": (80,)}, {"deadline_days": (-1,)}, {"timezone": "Mars/Base"}],
)
def test_term_validation(kwargs: dict[str, object]):
    with pytest.raises(ConfigError):
        Term(**kwargs)  # type: ignore[arg-type]


def test_stress_scale_round_trips():
    assert [stress_level(stress_score(level)) for level in range(1, 6)] == [1, 2, 3, 4, 5]
    with pytest.raises(ConfigError):
        stress_level(6)


# --- reproducibility -------------------------------------------------------------------------


def test_same_seed_same_term_and_growing_keeps_students():
    a, b = SyntheticTerm(n_students=3, seed=5), SyntheticTerm(n_students=3, seed=5)
    for name in ("features", "ema", "surveys", "latent"):
        assert getattr(a, name)().equals(getattr(b, name)())
    bigger = SyntheticTerm(n_students=5, seed=5)
    assert bigger.features().filter(pl.col("student").is_in(a.students())).equals(a.features())
    other = SyntheticTerm(n_students=3, seed=6)
    assert not other.features().equals(a.features())
    assert not other.latent().equals(a.latent())


def test_bad_arguments():
    with pytest.raises(ConfigError):
        SyntheticTerm(n_students=0)
    with pytest.raises(ConfigError):
        SyntheticTerm(n_students=2, missing=0.7)
    with pytest.raises(ConfigError):
        SyntheticTerm(n_students=2, personas=[Persona(name="A")])


# --- distributions ---------------------------------------------------------------------------


def test_distributions_in_their_stated_ranges(term: SyntheticTerm):
    f = term.features()
    mean = {c: f[c].mean() for c in FEATURE_SCHEMA if c not in ("student", "date")}
    assert 390 <= mean["sleep_minutes"] <= 450  # about 7 h
    assert 45 <= f["sleep_minutes"].std() <= 75  # sd about 1 h
    assert 24.5 <= mean["sleep_onset_hour"] <= 25.5  # 00:30-01:30
    assert 60 <= mean["conversation_minutes"] <= 120
    assert 10 <= mean["conversation_count"] <= 25
    assert 60 <= mean["walking_minutes"] <= 100
    assert mean["stationary_minutes"] > 10 * mean["walking_minutes"]
    ran = (f["running_minutes"].drop_nulls() > 0).mean()
    assert 0.02 <= ran <= 0.3  # running is rare
    assert f["distinct_places"].min() >= 3 and f["distinct_places"].max() <= 8
    assert 40 <= mean["unlock_count"] <= 120
    assert (f["home_minutes"] <= f["campus_minutes"]).all()
    weekend = f.filter(pl.col("date").dt.weekday() >= 6)["sleep_minutes"].mean()
    weekday = f.filter(pl.col("date").dt.weekday() < 6)["sleep_minutes"].mean()
    assert weekend - weekday > 20  # lie-ins on Saturday and Sunday mornings


def test_missing_share_per_stream(term: SyntheticTerm):
    f = term.features()
    for columns in STREAMS.values():
        nulls = f.select(pl.col(columns[0]).is_null().mean()).item()
        assert 0.03 <= nulls <= 0.12
        assert (f[columns[0]].is_null() == f[columns[-1]].is_null()).all()  # masked together


def test_term_pattern(joined: pl.DataFrame):
    early = joined.filter(pl.col("day").is_between(7, 20))  # weeks 2-3
    late = joined.filter(pl.col("day") >= 56)  # weeks 9-10
    assert late["sleep_minutes"].mean() < early["sleep_minutes"].mean() - 10
    assert late["stress"].mean() > early["stress"].mean() + 0.3
    assert late["conversation_minutes"].mean() < early["conversation_minutes"].mean()
    assert late["walking_minutes"].mean() < early["walking_minutes"].mean()


# --- planted relations -----------------------------------------------------------------------


def test_sleep_lowers_next_day_stress(joined: pl.DataFrame):
    # sleep_minutes on day d is the night that ends on the morning of day d.
    r, p = partial_r(joined, "sleep_minutes", "stress")
    assert r < -0.15 and p < 1e-6
    lagged = joined.sort("student", "day").with_columns(
        next_stress=pl.col("stress").shift(-1).over("student")
    )
    r_next, _ = stats.pearsonr(
        *lagged.drop_nulls(["sleep_minutes", "next_stress"])
        .select("sleep_minutes", "next_stress")
        .to_numpy()
        .T
    )
    assert r_next < 0


def test_conversation_lifts_mood(joined: pl.DataFrame):
    r, p = partial_r(joined, "conversation_minutes", "mood")
    assert r > 0.1 and p < 1e-6


def test_relations_vanish_when_not_planted():
    flat = SyntheticTerm(
        n_students=24, seed=0, effects=Effects(sleep_stress=0.0, conversation_mood=0.0)
    )
    joined = flat.features().join(flat.latent(), on=["student", "day"])
    assert abs(partial_r(joined, "sleep_minutes", "stress")[0]) < 0.08
    assert abs(partial_r(joined, "conversation_minutes", "mood")[0]) < 0.08


def test_personality_shapes_behaviour(term: SyntheticTerm):
    per_student = (
        term.features()
        .group_by("student")
        .agg(pl.col("conversation_minutes", "sleep_onset_hour", "distinct_places").mean())
        .join(term.traits(), on="student")
    )
    r_e = stats.pearsonr(per_student["extraversion"], per_student["conversation_minutes"])[0]
    r_c = stats.pearsonr(per_student["conscientiousness"], per_student["sleep_onset_hour"])[0]
    assert r_e > 0.3 and r_c < -0.2


def test_from_personas_uses_their_traits():
    people = [Persona(name=f"E{k}", big_five={"E": 4.6}) for k in range(6)]
    people += [Persona(name=f"I{k}", big_five={"E": 1.4}) for k in range(6)]
    term = SyntheticTerm.from_personas(people, seed=3)
    assert term.traits()["name"].to_list() == [p.name for p in people]
    talk = term.features().group_by("student").agg(pl.col("conversation_minutes").mean())
    talk = talk.sort("student")["conversation_minutes"].to_numpy()
    assert talk[:6].mean() > talk[6:].mean() + 20


# --- EMAs and surveys ------------------------------------------------------------------------


def test_ema_follows_the_latent_state(term: SyntheticTerm):
    ema = term.ema()
    stress = ema.filter(pl.col("kind") == "stress")
    share = stress.height / (48 * 70)
    assert 0.33 <= share <= 0.47
    assert set(stress["raw"]) <= set(STRESS_LABELS)
    assert all(STRESS_LABELS[r] == label for r, label in stress.select("raw", "label").rows())
    assert all(stress_score(r) == v for r, v in stress.select("raw", "value").rows())
    with_latent = stress.join(term.latent(), on=["student", "day"])
    assert stats.pearsonr(with_latent["value"], with_latent["stress"])[0] > 0.5
    valence = ema.filter(pl.col("item") == "valence").join(term.latent(), on=["student", "day"])
    assert stats.pearsonr(valence["value"], valence["mood"])[0] > 0.4
    assert set(ema["kind"]) == {"stress", "mood", "sleep", "social"}


def test_surveys_reflect_traits_and_the_term(term: SyntheticTerm):
    s = term.surveys()
    pss = s.filter(pl.col("instrument") == "pss-10").pivot("phase", index="student", values="value")
    assert pss["post"].mean() > pss["pre"].mean()
    assert s.filter(pl.col("instrument") == "phq-9")["value"].is_between(0, 27).all()
    bfi = (
        s.filter((pl.col("instrument") == "bfi-44") & (pl.col("phase") == "pre"))
        .pivot("scale", index="student", values="value")
        .join(term.traits(), on="student", suffix="_trait")
    )
    assert stats.pearsonr(bfi["neuroticism"], bfi["neuroticism_trait"])[0] > 0.8


# --- writing the StudentLife layout ----------------------------------------------------------


def test_to_folder_round_trip(tmp_path: Path):
    source = SyntheticTerm(n_students=3, term=Term(n_days=14), seed=2)
    dataset = write_studentlife(source, tmp_path)
    assert dataset == tmp_path / "dataset" and (dataset / "README_SYNTHETIC.txt").is_file()
    loaded = StudentLife(tmp_path, term=source.term)
    assert loaded.students() == source.students()
    joined = source.features().join(loaded.features(), on=["student", "day"], suffix="_read")
    for column in FEATURE_SCHEMA:
        if column in ("student", "day", "date"):
            continue
        both = joined.filter(pl.col(column).is_not_null())
        original, read = both[column].cast(pl.Float64), both[f"{column}_read"].cast(pl.Float64)
        assert read.null_count() == 0, column
        tolerance = 0.01 if column.endswith("hour") else 1.0
        assert (original - read).abs().max() <= tolerance, column
        if not column.startswith("conversation"):  # a silent sensed day reads as 0
            assert joined[f"{column}_read"].null_count() == joined[column].null_count(), column
    assert loaded.ema().drop("time", "hour").equals(source.ema().drop("time", "hour"))
    surveys = loaded.surveys().join(
        source.surveys(), on=["student", "phase", "instrument", "scale"], suffix="_source"
    )
    assert surveys.height == source.surveys().height
    assert (surveys["value"] - surveys["value_source"]).abs().max() < 1e-3
