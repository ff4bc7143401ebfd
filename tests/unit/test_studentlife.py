"""The StudentLife loader on a small hand-made folder in the published layout (2 students, 3 days)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from personae.environments.sensing import FEATURE_SCHEMA, SensingSource, Term
from personae.environments.studentlife import (
    STRESS_LABELS,
    StudentLife,
    answer_value,
    ema_items,
    score_items,
    stress_score,
)
from personae.errors import ConfigError

TERM = Term(n_days=3)


def ts(day: int, hour: float) -> int:
    """Unix time of ``hour`` hours after local midnight of ``day`` (US/Eastern, day 0 = 2013-03-27)."""
    return round(TERM.epoch(day, hour))


def write(path: Path, header: str, rows: Sequence[tuple[object, ...]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))


def burst(day: int, hour: float, classes: list[int]) -> list[tuple[int, int]]:
    """A duty-cycle window: one inference every 2 seconds."""
    return [(ts(day, hour) + 2 * k, c) for k, c in enumerate(classes)]


PHQ_ITEMS = [f'"PHQ item {k}, as published"' for k in range(1, 10)]
PHQ_ANSWERS = ["Not at all", "Several days", "More than half the days", "Nearly every day"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("studentlife")
    sensing = root / "dataset" / "sensing"
    # Activity (u00): day 0 four bursts, day 1 two bursts, day 2 none.
    activity = (
        burst(0, 10, [1] * 10 + [0] * 10)  # 240 s to the next burst: 2 min walking, 2 stationary
        + burst(0, 10 + 4 / 60, [2] * 20)  # 4 min running
        + burst(0, 10 + 8 / 60, [3] * 20)  # unknown: not counted
        + burst(0, 10 + 12 / 60, [0] * 20)  # next burst a day later: capped at 10 min
        + burst(1, 13, [1] * 5)  # 20 min to the next burst: capped at 10 min walking
        + burst(1, 13 + 20 / 60, [0] * 5)  # the last burst: 10 min
    )
    write(sensing / "activity" / "activity_u00.csv", "timestamp, activity inference", activity)
    write(
        sensing / "activity" / "activity_u01.csv",
        "timestamp, activity inference",
        burst(2, 12, [0, 0, 0]),
    )
    # Audio (u00): one burst of noise on day 1; u01 has no audio at all.
    write(
        sensing / "audio" / "audio_u00.csv",
        "timestamp, audio inference",
        burst(1, 12, [2] * 20),
    )
    write(
        sensing / "conversation" / "conversation_u00.csv",
        "start_timestamp, end_timestamp",
        [
            (ts(0, 12), ts(0, 12 + 10 / 60)),
            (ts(0, 15), ts(0, 15.5)),
            (ts(2, 23 + 50 / 60), ts(3, 20 / 60)),  # crosses midnight: counts on day 2
        ],
    )
    # Sleep (u00): night to day 1 dark 23:30-07:30 inside a lock broken for 5 min at 03:00;
    # night to day 2 only charging 01:00-06:00 inside a lock 00:30-09:00.
    write(
        sensing / "dark" / "dark_u00.csv",
        "start,end",
        [(ts(0, 23.5), ts(1, 7.5)), (ts(1, 14), ts(1, 15))],  # a daytime pocket: shorter
    )
    write(sensing / "phonecharge" / "phonecharge_u00.csv", "start,end", [(ts(2, 1), ts(2, 6))])
    write(
        sensing / "phonelock" / "phonelock_u00.csv",
        "start,end",
        [
            (ts(0, 23), ts(1, 3)),
            (ts(1, 3 + 5 / 60), ts(1, 7.75)),
            (ts(1, 8), ts(1, 12)),
            (ts(1, 13), ts(1, 16)),
            (ts(2, 0.5), ts(2, 9)),  # 8.5 h after the last: missing data, not use
        ],
    )
    # u01 has no phonelock or phonecharge file: sleep rests on darkness alone.
    write(sensing / "dark" / "dark_u01.csv", "start,end", [(ts(1, 22), ts(2, 6.5))])
    write(
        sensing / "wifi_location" / "wifi_location_u00.csv",
        "time,location",
        [
            (ts(0, 9), "in[dorm]"),
            (ts(0, 9 + 10 / 60), "in[dorm]"),
            (ts(0, 9 + 20 / 60), "in[library]"),
            (ts(0, 9.5), '"near[library;cafe]"'),
            (ts(0, 9 + 40 / 60), "in[cafe]"),  # then nothing until 21:00: 20 min
            (ts(0, 21), "in[dorm]"),
            (ts(1, 8), "in[dorm]"),
            (ts(1, 8 + 5 / 60), "in[gym]"),
        ],
    )
    # u01 has GPS only: places are ~100 m grid cells, campus time unknown.
    write(
        sensing / "gps" / "gps_u01.csv",
        "time,provider,network_type,accuracy,latitude,longitude,altitude,bearing,speed,travelstate",
        [
            (ts(0, 10), "network", "wifi", 20, 43.70441, -72.28871, 0, 0, 0, "stationary"),
            (ts(0, 10 + 10 / 60), "network", "wifi", 20, 43.70439, -72.28869, 0, 0, 0, ""),
            (ts(0, 10 + 20 / 60), "gps", "", 5, 43.71003, -72.29002, 0, 0, 0, "moving"),
            (ts(0, 10 + 25 / 60), "network", "wifi", 20, 43.7044, -72.2887, 0, 0, 0, ""),
        ],
    )
    # Surveys.
    survey = root / "dataset" / "survey"
    phq_pre = [PHQ_ANSWERS[v] for v in (0, 0, 0, 1, 1, 1, 2, 2, 3)]  # 10
    phq_post = ["not at all ", "SEVERAL DAYS", "", "Nearly everyday", "more than half of the days"]
    phq_post += ["Several days"] * 4  # 8 answered: 0+1+3+2+4 = 10, prorated to 11.25
    phq_u01 = ["Several days"] * 7 + ["", ""]  # two missing: no total
    write(
        survey / "PHQ-9.csv",
        ",".join(["uid", "type", *PHQ_ITEMS, "Response"]),
        [
            ("u00", "pre", *phq_pre, "Somewhat difficult"),
            ("u00", "post", *phq_post, "Not difficult at all"),
            ("u01", "pre", *phq_u01, ""),
        ],
    )
    reversed_pss = (4, 5, 7, 8)
    write(
        survey / "PerceivedStressScale.csv",
        ",".join(["uid", "type", *(f"PSS item {k}" for k in range(1, 11))]),
        [
            ("u00", "pre", *["Never"] * 10),  # reversed items count 4: 16
            ("u00", "post", *["Sometime"] * 10),  # 20
            (
                "u01",
                "pre",
                *["Almost never" if k in reversed_pss else "Very often" for k in range(1, 11)],
            ),  # 6 x 4 + 4 x 3 = 36
        ],
    )
    reversed_bfi = {2, 6, 8, 9, 12, 18, 21, 23, 24, 27, 31, 34, 35, 37, 41, 43}
    bfi_mixed = [
        "Disagree Strongly" if k in reversed_bfi else "Agree strongly" for k in range(1, 45)
    ]
    bfi_mixed[0] = "Neither Agree nor Disagree"  # item 1 (E) = 3
    bfi_mixed[4] = "Agree a littel"  # item 5 (O) = 4, a typo matched by similarity
    write(
        survey / "BigFive.csv",
        ",".join(
            ["uid", "type", *(f'"I see myself as someone who... - {k}"' for k in range(1, 45))]
        ),
        [("u00", "pre", *["Agree Strongly"] * 44), ("u00", "post", *bfi_mixed)],
    )
    # EMA.
    response = root / "dataset" / "EMA" / "response"
    emas = {
        "Stress": [
            {"level": "3", "location": "43.7,-72.3", "resp_time": ts(0, 14)},
            {"null": "43.7,-72.3", "resp_time": ts(0, 15)},  # no level: skipped
            {"level": 5, "resp_time": ts(1, 9.5)},
            {"level": "1", "resp_time": ts(80, 10)},  # after the term: dropped
        ],
        "Mood": [{"happyornot": "1", "happy": "3", "sadornot": "2", "resp_time": ts(1, 20)}],
        "Sleep": [{"hour": "9", "rate": "2", "social": "1", "resp_time": ts(2, 10)}],
        "Social": [{"number": "3", "resp_time": ts(2, 11)}],
    }
    for kind, entries in emas.items():
        (response / kind).mkdir(parents=True)
        (response / kind / f"{kind}_u00.json").write_text(json.dumps(entries))
    write(
        root / "dataset" / "education" / "deadlines.csv",
        "uid,2013-03-27,2013-03-28,2013-03-29",
        [("u00", 1, 0, 2), ("u01", 0, 0, 1)],
    )
    return root


@pytest.fixture(scope="module")
def data(folder: Path) -> StudentLife:
    return StudentLife(folder, term=TERM)


def row(frame: pl.DataFrame, student: str, day: int) -> dict[str, object]:
    return frame.filter((pl.col("student") == student) & (pl.col("day") == day)).row(0, named=True)


def test_layout_and_grid(data: StudentLife, folder: Path):
    assert isinstance(data, SensingSource)
    assert data.students() == ["u00", "u01"]
    assert data.days() == 3
    features = data.features()
    assert features.schema == pl.Schema(FEATURE_SCHEMA)
    assert features.height == 6
    assert row(features, "u00", 2)["date"] == date(2013, 3, 29)
    assert StudentLife(folder / "dataset", term=TERM).students() == data.students()
    assert data.calendar().height == 3


def test_missing_layout_is_a_clear_error(tmp_path: Path):
    (tmp_path / "dataset" / "survey").mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"sensing.*not redistributed.*studentlife"):
        StudentLife(tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        StudentLife(tmp_path / "nowhere")


def test_activity_minutes_per_class(data: StudentLife):
    f = data.features()
    day0, day1 = row(f, "u00", 0), row(f, "u00", 1)
    assert day0["stationary_minutes"] == pytest.approx(12.0)
    assert day0["walking_minutes"] == pytest.approx(2.0)
    assert day0["running_minutes"] == pytest.approx(4.0)
    assert (day1["walking_minutes"], day1["stationary_minutes"]) == pytest.approx((10.0, 10.0))
    assert day1["running_minutes"] == 0
    assert row(f, "u00", 2)["stationary_minutes"] is None
    assert row(f, "u01", 2)["stationary_minutes"] == pytest.approx(10.0)


def test_conversation_minutes_and_counts(data: StudentLife):
    f = data.features()
    assert (row(f, "u00", 0)["conversation_count"], row(f, "u00", 0)["conversation_minutes"]) == (
        2,
        pytest.approx(40.0),
    )
    # Audio but no conversation: zero; a talk across midnight counts on its start day.
    assert (row(f, "u00", 1)["conversation_count"], row(f, "u00", 1)["conversation_minutes"]) == (
        0,
        0.0,
    )
    assert row(f, "u00", 2)["conversation_minutes"] == pytest.approx(30.0)
    assert row(f, "u01", 2)["conversation_count"] is None  # activity, but no audio: missing
    assert row(f, "u01", 0)["conversation_count"] is None


def test_sleep_from_dark_lock_and_charge(data: StudentLife):
    # Without activity or audio at night, the hints are dark, locked and charging:
    # two of three must hold (see test_studentlife_rules.py for all five).
    f = data.features()
    night = row(f, "u00", 1)  # the night ending on the morning of day 1
    assert night["sleep_minutes"] == pytest.approx(480.0)  # the 5-minute glance is merged
    assert night["sleep_onset_hour"] == pytest.approx(23.5)
    assert night["wake_hour"] == pytest.approx(7.5)
    charged = row(f, "u00", 2)
    assert (charged["sleep_minutes"], charged["sleep_onset_hour"], charged["wake_hour"]) == (
        pytest.approx(300.0),
        pytest.approx(25.0),
        pytest.approx(6.0),
    )
    assert row(f, "u00", 0)["sleep_minutes"] is None
    dark_only = row(f, "u01", 2)  # no phonelock file
    assert (dark_only["sleep_minutes"], dark_only["sleep_onset_hour"]) == (
        pytest.approx(510.0),
        pytest.approx(22.0),
    )


def test_unlocks_are_the_gaps_between_lock_episodes(data: StudentLife):
    f = data.features()
    assert row(f, "u00", 1)["unlock_count"] == 3
    assert row(f, "u00", 1)["unlock_minutes"] == pytest.approx(5 + 15 + 60)
    assert row(f, "u00", 2)["unlock_count"] is None  # the 8.5 h gap is missing data
    assert row(f, "u01", 1)["unlock_count"] is None


def test_places_from_wifi_and_gps(data: StudentLife):
    f = data.features()
    day0, day1 = row(f, "u00", 0), row(f, "u00", 1)
    assert (day0["distinct_places"], day0["home_minutes"], day0["campus_minutes"]) == (
        3,
        pytest.approx(40.0),
        pytest.approx(80.0),
    )
    assert (day1["distinct_places"], day1["home_minutes"], day1["campus_minutes"]) == (
        2,
        pytest.approx(5.0),
        pytest.approx(25.0),
    )
    gps = row(f, "u01", 0)
    assert (gps["distinct_places"], gps["home_minutes"], gps["campus_minutes"]) == (
        2,
        pytest.approx(40.0),
        None,
    )


def test_survey_scoring_with_reverse_keys_and_variants(data: StudentLife):
    s = data.surveys()
    got = {
        (r["student"], r["phase"], r["instrument"], r["scale"]): r["value"] for r in s.to_dicts()
    }
    assert got["u00", "pre", "phq-9", "total"] == 10
    assert got["u00", "post", "phq-9", "total"] == pytest.approx(10 * 9 / 8)
    assert ("u01", "pre", "phq-9", "total") not in got
    assert got["u00", "pre", "pss-10", "total"] == 16
    assert got["u00", "post", "pss-10", "total"] == 20
    assert got["u01", "pre", "pss-10", "total"] == 36
    pre = {k[3]: v for k, v in got.items() if k[:3] == ("u00", "pre", "bfi-44")}
    assert pre == pytest.approx(
        {
            "extraversion": 28 / 8,
            "agreeableness": 29 / 9,
            "conscientiousness": 29 / 9,
            "neuroticism": 28 / 8,
            "openness": 42 / 10,
        }
    )
    post = {k[3]: v for k, v in got.items() if k[:3] == ("u00", "post", "bfi-44")}
    assert post["extraversion"] == pytest.approx((3 + 7 * 5) / 8)
    assert post["openness"] == pytest.approx((4 + 9 * 5) / 10)
    assert post["neuroticism"] == post["conscientiousness"] == 5.0


def test_answer_matching_and_item_scoring():
    assert answer_value("phq-9", "More than half the days") == 2
    assert answer_value("pss-10", "Sometime") == answer_value("pss-10", "sometimes") == 2
    assert answer_value("bfi-44", "Disagree strongly") == 1
    assert answer_value("bfi-44", "2") == 2
    assert answer_value("bfi-44", "banana") is None
    assert answer_value("phq-9", None) is None
    values = np.full((1, 10), 4.0)
    assert score_items("pss-10", values)["total"][0] == 24  # 6 x 4 + 4 reversed x 0


def test_ema_parsing_and_the_non_monotonic_stress_scale(data: StudentLife):
    e = data.ema()
    stress = e.filter(pl.col("kind") == "stress")
    assert stress.select("day", "raw", "value", "label").rows() == [
        (0, 3, 5.0, "Stressed out"),
        (1, 5, 1.0, "Feeling great"),
    ]
    assert stress["hour"].to_list() == pytest.approx([14.0, 9.5])
    mood = {r["item"]: r["value"] for r in e.filter(pl.col("kind") == "mood").to_dicts()}
    assert mood == {"happyornot": 1.0, "happy": 3.0, "sadornot": 2.0, "valence": 3.0}
    sleep = {
        r["item"]: (r["value"], r["label"]) for r in e.filter(pl.col("kind") == "sleep").to_dicts()
    }
    assert sleep == {"hour": (7.0, "7"), "rate": (2.0, "Fairly good"), "social": (1.0, "None")}
    social = e.filter(pl.col("kind") == "social").row(0, named=True)
    assert (social["value"], social["label"]) == (3.0, "10-19 persons")


def test_stress_mapping():
    assert [stress_score(level) for level in (5, 4, 1, 2, 3)] == [1, 2, 3, 4, 5]
    assert STRESS_LABELS[2] == "Definitely stressed"
    assert ema_items("stress", {"level": "x"}) == []
    with pytest.raises(ConfigError):
        stress_score(0)


def test_per_student_deadlines(data: StudentLife):
    d = data.deadlines()
    assert d.filter(pl.col("student") == "u00")["deadlines"].to_list() == [1, 0, 2]
