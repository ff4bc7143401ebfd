"""The cohort on the shared core: its settings, its day loop, its asks as tick probes, its twin."""

from __future__ import annotations

import asyncio
import json
import random
import warnings

import polars as pl
import pytest
from pydantic import ValidationError

from personae import FunctionModel
from personae.engine.probes import Monitor, Probe, Stop
from personae.engine.turns import RoundRobin
from personae.errors import ConfigError
from personae.studies.cohort.builtin import student_cohort
from personae.studies.cohort.loop import load_term
from personae.studies.cohort.scenario import CONVERSATION_FIELDS, Cohort, students
from personae.studies.cohort.term.ema import COHORT_EMA
from personae.studies.cohort.term.mental_state import STATE_VARIABLES, simulate


def answers(messages, call):
    rf = call.response_format or {}
    if rf.get("type") == "json":
        props = rf["schema"]["properties"]
        return json.dumps({k: (2 if "enum" in v else 1) for k, v in props.items()})
    if rf.get("type") == "choice":
        return rf["choices"][call.seed % len(rf["choices"])]
    return f"words {call.seed}"


def small(**kw):
    kw.setdefault("n_students", 4)
    kw.setdefault("days", 4)
    kw.setdefault("questionnaires", "none")
    return student_cohort(**kw)


async def run(scenario, seed=1, model=None):
    model = model or FunctionModel(answers)
    episode = scenario.new_episode(model, seed=seed)
    result = await episode.run()
    return episode, result, model


# -- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize("field", CONVERSATION_FIELDS)
def test_a_conversation_setting_is_refused_naming_it(field):
    value = {"turns": RoundRobin(), "sessions": 2, "max_turns": 3}.get(field)
    with pytest.raises(ValidationError, match=f"a Cohort has no setting '{field}'"):
        Cohort(name="term", agents=students(3), **{field: value})


def test_the_grid_cannot_set_a_conversation_setting():
    with pytest.raises(ConfigError, match="unknown parameter 'sessions'"):
        small().with_params({"sessions": 2})
    assert small().with_params({"days": 6}).days == 6  # the built-in's own parameter


@pytest.mark.parametrize(
    "probe",
    [Probe(lambda e, p: None, at="session_start"), Probe(lambda e, p: None, every=2)],
    ids=["session_start", "every"],
)
def test_a_probe_the_day_loop_never_reaches_is_refused(probe):
    with pytest.raises(ValidationError, match="never reaches"):
        Cohort(name="term", agents=students(3), probes=(probe,))


# -- the day loop -----------------------------------------------------------------------------


async def test_a_tick_probe_runs_each_evening_from_that_days_memory():
    seen = []

    async def last_diary(episode, point):
        raw = await episode.ask("Student 1", "How was today?", purpose="probe", step=point.step)
        prompt = [c for c in model.calls if c.messages[-1]["content"] == "How was today?"][-1]
        seen.append((point.moment, point.step, point.session, prompt.messages[-2]["content"]))
        episode.record_state("Student 1", "probe", text=raw, source="probe", t=point.step)

    model = FunctionModel(answers)
    cohort = Cohort(
        name="term",
        agents=students(3),
        days=3,
        ema_rate=0.0,
        probes=(Probe(last_diary, at="tick"),),
    )
    episode, result, _ = await run(cohort, model=model)
    assert [s[:3] for s in sorted(seen)] == [("tick", d, d) for d in range(3)]
    # each answer came from the memory the student had when its day ended
    assert [s[3].split(" (")[0] for s in sorted(seen)] == [
        "Diary: Day 1",
        "Diary: Day 2",
        "Diary: Day 3",
    ]
    assert result.end_reason == "days(3)"
    assert len([r for r in episode.log.rows["states"] if r["variable"] == "probe"]) == 3


async def test_the_ema_and_interviews_are_tick_probes_writing_the_same_rows():
    from personae.studies.cohort.scenario import Interview

    cohort = small().model_copy(
        update={"interviews": (Interview(day=2, question="How is it going?"),)}
    )
    assert [(p.name, p.at) for p in cohort.asks()] == [
        ("ema", ("tick",)),
        ("interviews", ("tick",)),
    ]
    episode, _, _ = await run(cohort)
    ema = [r for r in episode.log.rows["states"] if r["source"] == "ema"]
    assert {r["variable"] for r in ema} == {i.variable for i in COHORT_EMA}
    assert sorted({r["t"] for r in ema}) == [0, 1, 2, 3] and len(ema) == 4 * 4 * len(COHORT_EMA)
    calls = [r for r in episode.log.rows["llm_calls"] if r["purpose"] in ("ema", "interview")]
    assert sorted({(r["purpose"], r["step"]) for r in calls if r["purpose"] == "interview"}) == [
        ("interview", 2)
    ]
    assert {r["step"] for r in calls if r["purpose"] == "ema"} == {0, 1, 2, 3}
    interview = [r for r in episode.log.rows["states"] if r["variable"] == "interview"]
    assert len(interview) == 4 and {(r["t"], r["source"]) for r in interview} == {(2, "interview")}


async def test_ema_rate_draws_who_answers_each_day_from_the_seed():
    def due(episode):
        return sorted(
            (r["t"], r["agent_id"])
            for r in episode.log.rows["states"]
            if r["variable"] == "ema_mood"
        )

    a, _, _ = await run(small(ema_rate=0.5, n_students=6), seed=3)
    b, _, _ = await run(small(ema_rate=0.5, n_students=6), seed=3)
    assert due(a) == due(b) and 0 < len(due(a)) < 6 * 4


async def test_same_seed_same_rows_whatever_the_timing():
    def jittery(seed):
        rng = random.Random(seed)

        async def reply(messages, call):
            await asyncio.sleep(rng.random() / 200)
            return answers(messages, call)

        return FunctionModel(reply)

    def rows(episode):
        turns = sorted((r["session"], r["step"], r["content"]) for r in episode.log.rows["turns"])
        calls = sorted((r["purpose"], r["step"], r["seed"]) for r in episode.log.rows["llm_calls"])
        states = sorted(
            (r["variable"], r["agent_id"] or 0, r["t"], r["value"] or 0.0, r["text"] or "")
            for r in episode.log.rows["states"]
        )
        return turns, calls, states

    scenario = small(n_students=6, days=3, conversations=2.0)
    first, _, _ = await run(scenario, seed=5, model=jittery(1))
    second, _, _ = await run(scenario, seed=5, model=jittery(2))
    assert first.log.rows["turns"], "the pairs talked"
    assert rows(first) == rows(second)
    steps = sorted(r["step"] for r in first.log.rows["turns"])
    assert steps == list(range(len(steps)))  # one step per utterance, none shared


async def test_peer_talk_goes_through_speak_and_stays_between_the_pair():
    episode, _, _ = await run(small(n_students=6, days=2, conversations=2.0))
    peer = [r for r in episode.log.rows["llm_calls"] if r["purpose"] == "peer"]
    assert len(peer) == len(episode.log.rows["turns"]) > 0
    names = {v: k for k, v in episode.agent_ids.items()}
    for turn in episode.log.rows["turns"]:
        heard = json.loads(turn["visible_to"])
        assert heard[0] == names[turn["agent_id"]] and len(heard) == 2


async def test_a_monitor_at_the_tick_stops_the_term():
    def enough(episode, point):
        return Stop("two days are enough") if point.step == 1 else None

    cohort = small(days=6).model_copy(
        update={"probes": (Monitor(enough, at="tick", name="enough"),)}
    )
    episode, result, _ = await run(cohort)
    assert result.end_reason == "monitor(enough): two days are enough"
    days = {r["t"] for r in episode.log.rows["states"] if r["source"] == "rule"}
    assert max(days) < 6


# -- one term preparation -----------------------------------------------------------------------


@pytest.mark.parametrize("intervention", ["none", "extra_sleep", "fewer_deadlines"])
async def test_the_model_free_twin_gives_the_cohorts_states(intervention):
    """With no peer talk and no journal, simulate() on the same term is the cohort's rule."""
    cohort = small(n_students=6, days=8, conversations=0.0, intervention=intervention)
    episode, _, _ = await run(cohort, seed=4)
    traits = {p.name: dict(p.big_five) for p in episode.scenario.agents}
    features, calendar = load_term(episode.scenario, episode.students, 4)
    twin = simulate(
        episode.scenario.rule,
        features,
        calendar,
        traits,
        interventions=list(episode.scenario.interventions),
        assignment=episode.assignment,
    )
    names = {v: k for k, v in episode.agent_ids.items()}
    ran = pl.DataFrame(
        [
            {"student": names[r["agent_id"]], "day": r["t"], r["variable"]: r["value"]}
            for r in episode.log.rows["states"]
            if r["source"] == "rule"
        ]
    )
    ran = ran.group_by("student", "day").agg(
        pl.col(v).drop_nulls().first() for v in STATE_VARIABLES
    )
    expected = twin.sort("student", "day")
    got = ran.sort("student", "day").select(expected.columns)
    assert got.height == 6 * 8
    assert got.equals(expected)


# -- the term modules -------------------------------------------------------------------------


def test_to_folder_is_deprecated_and_the_writer_takes_any_source(tmp_path):
    from personae.studies.cohort.term.calendar import Term
    from personae.studies.cohort.term.studentlife import StudentLife
    from personae.studies.cohort.term.studentlife_writer import write_studentlife
    from personae.studies.cohort.term.synthetic import SyntheticTerm

    term = SyntheticTerm(3, Term(n_days=4), seed=2)
    with pytest.warns(DeprecationWarning, match="write_studentlife"):
        old = term.to_folder(tmp_path / "old")
    new = write_studentlife(term, tmp_path / "new", seed=1)
    days = Term(n_days=4)
    assert StudentLife(old, term=days).features().height == 12
    assert StudentLife(new, term=days).features().height == 12
    # a StudentLife copy is a source too: written again, it reads back
    again = write_studentlife(StudentLife(new, term=days), tmp_path / "again")
    assert StudentLife(again, term=days).students() == ["u00", "u01", "u02"]


def test_old_names_still_import_from_their_old_modules():
    from personae.environments import sensing, studentlife
    from personae.studies.cohort.term import calendar, schema, studentlife_writer, synthetic

    assert sensing.SyntheticTerm is synthetic.SyntheticTerm and sensing.Term is calendar.Term
    assert sensing.stress_score is schema.stress_score is studentlife.stress_score
    assert studentlife.write_studentlife is studentlife_writer.write_studentlife
    assert "ema_items" in dir(sensing) and "ema_items" not in studentlife.__all__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from personae.scenarios.cohort import STATE_VARIABLES as old
        from personae.scenarios.cohort import CohortEpisode  # noqa: F401
    assert old is STATE_VARIABLES
    with pytest.raises(AttributeError):
        sensing.nothing_here  # noqa: B018


async def test_the_ema_and_the_rating_are_asked_from_only_the_memories_they_need():
    model = FunctionModel(answers)
    await run(small(days=6, conversations=2.0), model=model)

    def history(call):
        return [m["content"] for m in call.messages[1:-1]]

    ema = [c for c in model.calls if (c.response_format or {}).get("type") == "json"]
    rating = [c for c in model.calls if "How did your conversation" in c.messages[-1]["content"]]
    assert len(ema) == 4 * 6 and rating
    for call in ema:  # that day only: its talk (two lines, if any), then its diary line
        lines = history(call)
        assert len(lines) in (1, 3) and lines[-1].startswith("Diary: Day ")
        assert sum("Diary:" in line for line in lines) == 1
    for call in rating:  # that conversation's two lines, nothing else remembered
        lines = history(call)
        assert len(lines) == 2 and not any("Diary:" in line for line in lines)
