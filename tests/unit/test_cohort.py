"""The student cohort scenario on the recording fakes."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import pytest

from personae import FunctionModel
from personae.errors import ConfigError
from personae.scenarios.builtin.cohort import student_cohort
from personae.scenarios.cohort import STATE_VARIABLES, Interview


def answers(messages, call):
    rf = call.response_format or {}
    if rf.get("type") == "json":
        props = rf["schema"]["properties"]
        return json.dumps({k: (2 if "enum" in v else 1) for k, v in props.items()})
    if rf.get("type") == "choice":
        return rf["choices"][-1]
    return f"words {call.seed}"


def small(**kw):
    kw.setdefault("n_students", 4)
    kw.setdefault("days", 5)
    kw.setdefault("questionnaires", "none")
    return student_cohort(**kw)


async def run(scenario, seed=1, model=None):
    model = model or FunctionModel(answers)
    episode = scenario.new_episode(model, seed=seed)
    result = await episode.run()
    return episode, result, model


def states(episode, variable=None, source=None):
    return [
        r
        for r in episode.log.rows["states"]
        if (variable is None or r["variable"] == variable)
        and (source is None or r["source"] == source)
    ]


async def test_every_student_has_a_state_for_every_day():
    episode, _, _ = await run(small())
    rows = states(episode, source="rule")
    counts = Counter((r["agent_id"], r["variable"]) for r in rows)
    assert len(counts) == 4 * len(STATE_VARIABLES)
    assert set(counts.values()) == {5}
    assert {r["t"] for r in rows} == set(range(5))
    ema = states(episode, "ema_stress")
    assert len(ema) == 4 * 5 and all(1 <= r["value"] <= 5 for r in ema)
    features = states(episode, "feature:sleep_minutes")
    assert features and all(r["source"] == "sensing" for r in features)


async def test_a_day_runs_all_students_at_once():
    in_flight, peak = 0, 0

    async def slow(messages, call):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return answers(messages, call)

    await run(small(n_students=6, days=2, conversations=0.0), model=FunctionModel(slow))
    assert peak >= 6


async def test_same_seed_same_cohort_and_different_seed_differs():
    def fingerprint(episode):
        return [
            (r["agent_id"], r["variable"], r["t"], r["value"])
            for r in states(episode, source="rule")
        ]

    a, _, _ = await run(small(), seed=3)
    b, _, _ = await run(small(), seed=3)
    c, _, _ = await run(small(), seed=4)
    assert fingerprint(a) == fingerprint(b)
    assert fingerprint(a) != fingerprint(c)
    assert [p.name for p in a.scenario.agents] == [p.name for p in b.scenario.agents]


async def test_intervention_applies_from_its_day_to_the_treated_only():
    plain, _, _ = await run(small(days=8, n_students=6), seed=2)
    treated_run, _, _ = await run(small(days=8, n_students=6, intervention="extra_sleep"), seed=2)
    flags = {
        r["agent_id"]: r["value"]
        for r in states(treated_run)
        if r["variable"] == "treated:extra_sleep"
    }
    assert sorted(flags.values()) == [0.0] * 3 + [1.0] * 3

    def sleep(episode):
        return {
            (r["agent_id"], r["t"]): r["value"] for r in states(episode, "feature:sleep_minutes")
        }

    before, after = sleep(plain), sleep(treated_run)
    for (agent, day), value in after.items():
        if flags[agent] and day >= 4:
            assert value == pytest.approx(before[(agent, day)] + 60)
        else:
            assert value == pytest.approx(before[(agent, day)])


async def test_interviews_change_nothing():
    base = small(days=4)
    asked = base.model_copy(
        update={"interviews": (Interview(day=1, question="How is the term going?"),)}
    )
    plain, _, _ = await run(base, seed=5)
    interviewed, _, _ = await run(asked, seed=5)

    def trace(episode):
        return [
            (r["agent_id"], r["variable"], r["t"], r["value"])
            for r in episode.log.rows["states"]
            if r["variable"] != "interview"
        ]

    assert trace(plain) == trace(interviewed)
    rows = states(interviewed, "interview")
    assert len(rows) == 4 and all("How is the term going?" in r["text"] for r in rows)


async def test_peer_conversations_stay_between_the_pair_and_move_state():
    episode, result, _ = await run(small(n_students=6, days=3, conversations=2.0), seed=1)
    assert result.transcript
    for row in episode.log.rows["turns"]:
        heard = json.loads(row["visible_to"])
        assert len(heard) == 2
    interactions = states(episode, "interaction")
    assert interactions and all(r["value"] == 1.0 for r in interactions)  # "Very positive"


def test_cohort_parameters_and_errors():
    sc = student_cohort()
    big = sc.with_params({"n_students": 48, "days": 70})
    assert len(big.agents) == 48 and big.days == 70
    with pytest.raises(ConfigError, match="intervention"):
        sc.with_params({"intervention": "more_money"})
    with pytest.raises(ConfigError, match="n_students"):
        sc.with_params({"n_students": 1})


def test_validation_lays_simulated_next_to_real_data(tmp_path):
    from personae import Experiment
    from personae.analysis.cohort import source_series, validation
    from personae.environments.studentlife import StudentLife
    from personae.studies.cohort.term.calendar import Term
    from personae.studies.cohort.term.studentlife_writer import write_studentlife
    from personae.studies.cohort.term.synthetic import SyntheticTerm

    db = tmp_path / "cohort.db"
    Experiment(scenario=small(days=6), replicates=1).run(db, FunctionModel(answers, record=False))
    real = StudentLife(
        write_studentlife(SyntheticTerm(6, Term(n_days=6), seed=9), tmp_path / "real")
    )
    series = source_series(real)
    assert {"feature:sleep_minutes", "ema_stress", "ema_sleep"} <= set(series["variable"])
    correlations, distributions = validation(db, real)
    assert not correlations.is_empty() and {"r_sim", "r_real", "gap"} <= set(correlations.columns)
    stress = distributions.filter(distributions["variable"] == "ema_stress")
    assert stress["n_sim"][0] == 4 * 6 and stress["n_real"][0] > 0


def _ema_prompts(model):
    return [c.messages for c in model.calls if "Quick check-in" in c.messages[-1]["content"]]


async def test_the_ema_is_answered_from_that_days_memories_ending_with_its_diary():
    _, _, model = await run(small(days=6, conversations=1.0))
    prompts = _ema_prompts(model)
    assert len(prompts) == 4 * 6
    for messages in prompts:
        assert messages[0]["role"] == "system"
        # system + that day's memories (its talk, two lines, if any, then its diary) + the question
        assert len(messages) - 2 in (1, 3)
        assert sum("Diary:" in m["content"] for m in messages) == 1
    last_day = [m for m in prompts if "Day 6" in m[-2]["content"]]
    assert len(last_day) == 4 and all(m[-2]["content"].startswith("Diary: Day 6") for m in last_day)
    _, _, diary_only = await run(
        small(days=6, conversations=1.0).model_copy(update={"ema_window": 1})
    )
    assert {len(m) for m in _ema_prompts(diary_only)} == {3}  # system, the diary line, the question
