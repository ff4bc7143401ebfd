"""The students' daily mental-state rule, the no-model simulation and interventions."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from pydantic import ValidationError

from personae.environments.interventions import Intervention, apply, assign, traits_by_day
from personae.environments.mental_state import (
    STATE_VARIABLES,
    MentalState,
    StateRule,
    fill_features,
    initial_state,
    simulate,
)
from personae.errors import ConfigError

MID = {"O": 3, "C": 3, "E": 3, "A": 3, "N": 3}
RULE = StateRule()
#: A typical day: every feature at the rule's reference, so only relaxation acts.
TYPICAL = {
    "sleep_minutes": 450.0,
    "conversation_minutes": 120.0,
    "conversation_count": 8,
    "walking_minutes": 40.0,
    "running_minutes": 20.0,
}
CALM = {"deadlines": 0, "exam": False}


def _features(students: list[str], days: int, **columns: object) -> pl.DataFrame:
    rows = [
        {"student": s, "day": d, **TYPICAL, **{k: v for k, v in columns.items()}}
        for s in students
        for d in range(days)
    ]
    return pl.DataFrame(rows)


def _calendar(days: int, deadlines: int = 0) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "day": list(range(days)),
            "deadlines": [deadlines] * days,
            "exam": [False] * days,
            "week": [d // 7 for d in range(days)],
        }
    )


# --- the rule -----------------------------------------------------------------------------------


def test_short_night_adds_its_shortfall_to_debt_and_stress_by_the_coefficients() -> None:
    start = RULE.initial_state(MID)
    after = RULE.step(start, TYPICAL | {"sleep_minutes": 240}, CALM, MID)
    assert after.sleep_debt == pytest.approx(3.5)
    assert after.stress - start.stress == pytest.approx(RULE.stress_per_sleep_debt_hour * 3.5)
    energy = -RULE.energy_per_sleep_hour * 3.5 - RULE.energy_per_sleep_debt_hour * 3.5
    assert after.energy - start.energy == pytest.approx(energy)
    assert after.connectedness == pytest.approx(start.connectedness)


def test_surplus_sleep_repays_debt_and_old_debt_decays() -> None:
    state = MentalState(stress=35, mood=60, energy=60, sleep_debt=4.0, connectedness=50)
    after = RULE.step(state, TYPICAL | {"sleep_minutes": 570}, CALM, MID)  # 2 h surplus
    assert after.sleep_debt == pytest.approx(0.9 * 4.0 - 0.5 * 2.0)
    assert RULE.step(state, TYPICAL, CALM, MID).sleep_debt == pytest.approx(3.6)


def test_neutral_day_relaxes_toward_the_trait_baseline() -> None:
    base = RULE.baseline(MID)
    state = MentalState(stress=80, mood=20, energy=10, sleep_debt=0, connectedness=90)
    after = RULE.step(state, TYPICAL, CALM, MID)
    for name in ("stress", "energy", "connectedness"):
        old, target = getattr(state, name), getattr(base, name)
        assert getattr(after, name) == pytest.approx(old + RULE.relaxation * (target - old))
    # mood also gets the (documented) push from stress above its baseline
    mood = 20 + RULE.relaxation * (base.mood - 20) - RULE.mood_per_stress * (after.stress - 35)
    assert after.mood == pytest.approx(mood)
    steady = RULE.step(base, TYPICAL, CALM, MID)
    assert steady == base


def test_baseline_follows_traits() -> None:
    anxious = RULE.baseline(MID | {"N": 5})
    outgoing = RULE.baseline(MID | {"E": 5})
    assert anxious.stress == pytest.approx(35 + 2 * RULE.stress_per_neuroticism)
    assert anxious.mood < RULE.baseline(MID).mood < outgoing.mood
    assert outgoing.connectedness == pytest.approx(50 + 2 * RULE.connectedness_per_extraversion)
    assert initial_state(MID) == RULE.baseline(MID)
    assert RULE.baseline({"neuroticism": 5}) == anxious  # names work as well as letters


def test_higher_neuroticism_gets_more_stress_from_the_same_deadline() -> None:
    gains = {}
    for level in (1, 3, 5):
        traits = MID | {"N": level}
        start = RULE.initial_state(traits)
        after = RULE.step(start, TYPICAL, {"deadlines": 1, "exam": False}, traits)
        gains[level] = after.stress - start.stress
    assert gains[1] == pytest.approx(RULE.stress_per_deadline * 0.5)
    assert gains[3] == pytest.approx(RULE.stress_per_deadline)
    assert gains[5] == pytest.approx(RULE.stress_per_deadline * 1.5)


def test_peer_interactions_move_mood_and_connectedness() -> None:
    start = RULE.initial_state(MID)
    warm = RULE.step(start, TYPICAL, CALM, MID, interactions=[1.0, 0.5])
    cold = RULE.step(start, TYPICAL, CALM, MID, interactions=[-1.0])
    assert warm.mood - start.mood == pytest.approx(RULE.mood_per_interaction * 1.5)
    assert warm.connectedness - start.connectedness == pytest.approx(
        RULE.connectedness_per_interaction * 1.5
    )
    assert cold.mood < start.mood and cold.connectedness < start.connectedness
    with pytest.raises(ConfigError, match="valence"):
        RULE.step(start, TYPICAL, CALM, MID, interactions=[2.0])


def test_isolation_lets_connectedness_decay() -> None:
    state = RULE.initial_state(MID)
    for _ in range(5):
        state = RULE.step(state, TYPICAL | {"conversation_count": 0}, CALM, MID)
    assert state.connectedness < RULE.baseline(MID).connectedness - 5


def test_values_stay_in_their_ranges_on_extreme_days() -> None:
    worst = {"sleep_minutes": 0, "conversation_minutes": 0, "conversation_count": 0}
    best = {"sleep_minutes": 900, "conversation_minutes": 900, "conversation_count": 60}
    for row, events, valence in (
        (worst, {"deadlines": 20, "exam": True, "stress": 50}, -1.0),
        (best, {"mood": 50, "energy": 50}, 1.0),
    ):
        state = RULE.initial_state(MID | {"N": 5})
        for _ in range(40):
            state = RULE.step(state, row, events, MID | {"N": 5}, [valence] * 5)
            for name in ("stress", "mood", "energy", "connectedness"):
                assert 0.0 <= getattr(state, name) <= 100.0
            assert 0.0 <= state.sleep_debt <= RULE.max_sleep_debt
    assert state.sleep_debt == 0.0


def test_missing_features_count_as_the_reference() -> None:
    start = MentalState(stress=60, mood=40, energy=50, sleep_debt=2, connectedness=30)
    expected = RULE.step(start, TYPICAL, CALM, MID)
    assert RULE.step(start, {}, {}, MID) == expected
    nan = dict.fromkeys(TYPICAL, math.nan) | {"walking_minutes": None}
    assert RULE.step(start, nan, {"deadlines": None}, MID) == expected


def test_fill_features_carries_the_last_value_then_the_reference() -> None:
    frame = pl.DataFrame(
        {
            "student": ["a", "a", "a", "b", "b"],
            "day": [0, 1, 2, 0, 1],
            "sleep_minutes": [None, 300.0, None, 420.0, None],
            "conversation_count": [3, None, None, None, None],
        }
    )
    carried = fill_features(frame)
    assert carried["sleep_minutes"].to_list() == [450.0, 300.0, 300.0, 420.0, 420.0]
    assert carried["conversation_count"].to_list() == [3.0, 3.0, 3.0, 8.0, 8.0]
    reference = fill_features(frame, missing="reference")
    assert reference["sleep_minutes"].to_list() == [450.0, 300.0, 450.0, 420.0, 450.0]
    with pytest.raises(ConfigError):
        fill_features(frame, missing="zero")  # type: ignore[arg-type]


def test_state_and_rule_are_validated() -> None:
    with pytest.raises(ConfigError, match="stress"):
        MentalState(stress=120, mood=50, energy=50, sleep_debt=0, connectedness=50)
    with pytest.raises(ConfigError, match="sleep_debt"):
        MentalState(stress=20, mood=50, energy=50, sleep_debt=-1, connectedness=50)
    with pytest.raises(ValidationError):
        StateRule(relaxaton=0.5)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        StateRule(relaxation=1.5)
    with pytest.raises(ConfigError, match="Big Five"):
        RULE.baseline({"X": 3})
    with pytest.raises(ConfigError, match="1-5"):
        RULE.baseline({"N": 7})
    assert set(RULE.initial_state(MID).as_dict()) == set(STATE_VARIABLES)
    assert StateRule.model_fields["relaxation"].description  # every coefficient is documented
    assert all(f.description for f in StateRule.model_fields.values())


# --- simulate -----------------------------------------------------------------------------------


def test_simulate_reproduces_less_sleep_more_stress() -> None:
    rng = np.random.default_rng(3)
    students = [f"s{i:02d}" for i in range(10)]
    hours = dict(zip(students, np.linspace(5.0, 8.5, len(students)), strict=True))
    rows = [
        TYPICAL
        | {"student": s, "day": d, "sleep_minutes": float(60 * hours[s] + rng.normal(0, 20))}
        for s in students
        for d in range(21)
    ]
    traits = {s: MID for s in students}
    out = simulate(RULE, pl.DataFrame(rows), _calendar(21, deadlines=0), traits)
    assert out.columns == ["student", "day", *STATE_VARIABLES]
    assert out.height == 10 * 21
    means = out.filter(pl.col("day") >= 7).group_by("student").agg(pl.col("stress").mean())
    means = means.sort("student")
    r = np.corrcoef([hours[s] for s in means["student"]], means["stress"].to_numpy())[0, 1]
    assert r < -0.9


def test_simulate_fills_gaps_and_covers_students_without_rows() -> None:
    features = _features(["a"], 4).with_columns(
        pl.when(pl.col("day") == 2).then(None).otherwise(240.0).alias("sleep_minutes")
    )
    out = simulate(RULE, features, _calendar(4), {"a": MID, "b": MID})
    debt = out.filter(pl.col("student") == "a")["sleep_debt"].to_list()
    # day 2 is missing and carries day 1's 4 hours of sleep
    assert debt[2] == pytest.approx(0.9 * debt[1] + 3.5)
    quiet = out.filter(pl.col("student") == "b")
    assert quiet["stress"].to_list() == pytest.approx([RULE.baseline(MID).stress] * 4)


def test_simulate_applies_interactions_and_calendar() -> None:
    calendar = _calendar(3).with_columns(
        pl.Series("exam", [False, True, False]), pl.Series("deadlines", [0, 0, 2])
    )
    out = simulate(RULE, _features(["a"], 3), calendar, {"a": MID}, {("a", 0): [1.0]}).sort("day")
    base = RULE.baseline(MID)
    assert out["mood"][0] == pytest.approx(base.mood + RULE.mood_per_interaction)
    assert out["stress"][1] == pytest.approx(base.stress + RULE.stress_per_exam)


# --- interventions ------------------------------------------------------------------------------


def test_assignment_is_reproducible_and_respects_share() -> None:
    students = [f"s{i}" for i in range(20)]
    sleep = Intervention(name="sleep", kind="extra_sleep", amount=60, share=0.3)
    first = assign([sleep], students, seed=11)
    assert first.columns == ["student", "intervention", "treated"]
    assert int(first["treated"].sum()) == 6
    assert first.equals(assign([sleep], list(reversed(students)), seed=11))
    draws = {tuple(assign([sleep], students, seed=s)["treated"].to_list()) for s in range(5)}
    assert len(draws) > 1
    everyone = assign([Intervention(name="all", kind="extra_sleep", amount=60)], students, 1)
    assert everyone["treated"].all()


def test_assignment_limits_to_listed_students_and_needs_unique_names() -> None:
    listed = Intervention(
        name="t", kind="trait", trait="N", amount=-1, students=("a", "b", "c", "d"), share=0.5
    )
    out = assign([listed], ["a", "b", "c", "d", "e", "f"], seed=2)
    treated = set(out.filter(pl.col("treated"))["student"].to_list())
    assert len(treated) == 2 and treated <= {"a", "b", "c", "d"}
    with pytest.raises(ConfigError, match="unique"):
        assign([listed, listed], ["a"], seed=2)


def test_intervention_is_validated() -> None:
    with pytest.raises(ValidationError, match="trait"):
        Intervention(name="x", kind="trait", amount=1)
    with pytest.raises(ValidationError, match="end_day"):
        Intervention(name="x", kind="extra_sleep", amount=1, start_day=5, end_day=2)
    with pytest.raises(ValidationError, match="share"):
        Intervention(name="x", kind="fewer_deadlines", amount=2)
    with pytest.raises(ValidationError):
        Intervention(name="x", kind="extra_sleep", amount=1, dose=3)  # type: ignore[call-arg]


def test_apply_acts_on_treated_students_from_the_start_day_only() -> None:
    features = _features(["a", "b", "c"], 6)
    calendar = _calendar(6, deadlines=2)
    traits = {"a": MID, "b": MID, "c": {"N": 2}}
    kept = (features.clone(), calendar.clone())
    interventions = [
        Intervention(name="sleep", kind="extra_sleep", amount=60, start_day=2, end_day=4),
        Intervention(name="social", kind="more_social", amount=30, start_day=3),
        Intervention(name="relief", kind="fewer_deadlines", amount=0.5, start_day=1),
        Intervention(name="calm", kind="trait", trait="neuroticism", amount=-1.5, start_day=4),
    ]
    table = pl.DataFrame(
        {
            "student": ["a", "b", "c"] * 4,
            "intervention": [i.name for i in interventions for _ in range(3)],
            "treated": [True, False, True] * 4,
        }
    )
    out = apply(interventions, features, calendar, traits, table)
    assert features.equals(kept[0]) and calendar.equals(kept[1])  # inputs untouched

    def column(frame: pl.DataFrame, student: str, name: str) -> list[float]:
        return frame.filter(pl.col("student") == student).sort("day")[name].to_list()

    assert column(out.features, "a", "sleep_minutes") == [450, 450, 510, 510, 510, 450]
    assert column(out.features, "b", "sleep_minutes") == [450] * 6
    assert column(out.features, "c", "conversation_minutes") == [120] * 3 + [150] * 3
    assert column(out.features, "c", "conversation_count") == [8] * 3 + [11] * 3
    assert column(out.calendar, "a", "deadlines") == [2, 1, 1, 1, 1, 1]
    assert column(out.calendar, "b", "deadlines") == [2] * 6
    assert column(out.traits, "a", "N") == [3, 3, 3, 3, 1.5, 1.5]
    assert column(out.traits, "c", "N") == [2, 2, 2, 2, 1, 1]  # clipped at 1
    assert column(out.traits, "b", "N") == [3] * 6
    assert column(out.traits, "c", "O") == [None] * 6
    by_day = traits_by_day(out.traits)
    assert by_day["a", 3]["N"] == 3 and by_day["a", 4]["N"] == 1.5
    assert by_day["c", 0] == {"N": 2.0}


def test_simulated_intervention_changes_only_treated_students_after_start() -> None:
    students = [f"s{i}" for i in range(8)]
    features = _features(students, 10, sleep_minutes=360.0)
    sleep = Intervention(name="sleep", kind="extra_sleep", amount=90, start_day=5, share=0.5)
    traits = {s: MID for s in students}
    treated = simulate(RULE, features, _calendar(10), traits, interventions=[sleep], seed=4)
    plain = simulate(RULE, features, _calendar(10), traits)
    table = assign([sleep], students, seed=4)
    arms = dict(zip(table["student"], table["treated"], strict=True))
    joined = treated.join(plain, on=["student", "day"], suffix="_plain")
    for row in joined.iter_rows(named=True):
        same = row["sleep_debt"] == pytest.approx(row["sleep_debt_plain"])
        if row["day"] < 5 or not arms[row["student"]]:
            assert same and row["stress"] == pytest.approx(row["stress_plain"])
        else:
            assert row["sleep_debt"] < row["sleep_debt_plain"]


def test_apply_takes_a_calendar_per_student() -> None:
    calendar = pl.DataFrame(
        {"student": ["a", "a", "b", "b"], "day": [0, 1, 0, 1], "deadlines": [2, 2, 4, 4]}
    ).with_columns(pl.lit(False).alias("exam"))
    relief = Intervention(name="relief", kind="fewer_deadlines", amount=1.0, start_day=1)
    table = assign([relief], ["a", "b"], seed=0)
    out = apply([relief], _features(["a", "b"], 2), calendar, {"a": MID, "b": MID}, table)
    assert out.calendar.sort("student", "day")["deadlines"].to_list() == [2, 0, 4, 0]
