"""Monitors (probes that act) and stop conditions that read recorded states."""

import asyncio
import sqlite3

import pytest

from personae import (
    Cue,
    Episode,
    Experiment,
    FunctionModel,
    Monitor,
    Opening,
    Persona,
    Probe,
    Scenario,
    Stop,
    When,
)
from personae.errors import ConfigError


def pair():
    return (Persona(name="Lee", role="counselor"), Persona(name="Sam", role="client"))


def scripted(lines):
    """A model that says ``lines`` in order, one per turn."""
    replies = iter(lines)

    def fn(messages, call):
        return next(replies)

    return FunctionModel(fn)


def stop_on_hopeless(episode, point):
    if "hopeless" in episode.transcript[-1].text.lower():
        return Stop("risk: hopelessness")
    return None


def rows(db, sql):
    con = sqlite3.connect(db)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


async def test_a_monitor_stops_the_episode_after_the_turn_and_keeps_the_reason():
    sc = Scenario(
        name="risk",
        agents=pair(),
        max_turns=10,
        sessions=2,
        probes=(Monitor(stop_on_hopeless, every=1, name="risk"),),
    )
    model = scripted(["How are you?", "I feel hopeless.", "never said", "never said"])
    episode = Episode(sc, model, seed=1)
    result = await episode.run()
    # the turn that triggered the monitor is complete and recorded; nothing follows it
    assert [u.text for u in result.transcript] == ["How are you?", "I feel hopeless."]
    assert result.end_reason == "monitor(risk): risk: hopelessness"
    assert len(model.calls) == 2  # no second session, no summaries
    stops = [r for r in episode.log.rows["states"] if r["variable"] == "stop"]
    assert stops == [
        {
            "id": stops[0]["id"],
            "episode_id": 0,
            "agent_id": None,
            "session": 0,
            "t": 2,
            "variable": "stop",
            "value": None,
            "text": "risk: hopelessness",
            "source": "monitor",
        }
    ]


def test_a_monitor_stop_is_queryable_with_sql(tmp_path):
    sc = Scenario(
        name="risk",
        agents=pair(),
        opening=Opening(speaker="Lee", text="Hello."),
        max_turns=8,
        probes=(Monitor(stop_on_hopeless, every=1, name="risk"),),
    )
    db = tmp_path / "risk.db"
    model = FunctionModel(lambda m, c: "It all feels hopeless." if c.seed % 2 else "I am fine.")
    summary = asyncio.run(Experiment(scenario=sc, replicates=4, seed=3).arun(db, model))
    assert summary.completed == 4
    stopped = rows(
        db,
        "SELECT e.id, e.end_reason, s.t, s.text FROM episodes e "
        "JOIN states s ON s.episode_id = e.id "
        "WHERE s.source = 'monitor' AND s.variable = 'stop' ORDER BY e.id",
    )
    assert stopped  # some replicates drew an odd seed
    for episode_id, end_reason, t, text in stopped:
        assert end_reason == "monitor(risk): risk: hopelessness"
        assert text == "risk: hopelessness"
        # the stop came at the step of the last utterance of that episode
        assert rows(db, f"SELECT MAX(step) + 1 FROM turns WHERE episode_id = {episode_id}") == [
            (t,)
        ]


async def test_a_cue_reaches_the_next_prompt_of_that_speaker_only_once():
    def escalate(episode, point):
        if point.turn == 2:
            return [Cue("counselor", "The client may be at risk: ask about safety.")]
        return None

    sc = Scenario(
        name="cue", agents=pair(), max_turns=5, probes=(Monitor(escalate, every=1, name="esc"),)
    )
    model = FunctionModel.echo()
    episode = Episode(sc, model, seed=1)
    await episode.run()
    prompts = [
        (
            c.messages[0]["content"],
            "ask about safety" in "\n".join(m["content"] for m in c.messages),
        )
        for c in model.calls
    ]
    # Lee speaks at turns 1, 3, 5; the cue was left after turn 2, so only turn 3 carries it
    cued = [has for _, has in prompts]
    assert cued == [False, False, True, False, False]
    assert "ask about safety" in model.calls[2].messages[-1]["content"]
    cues = [r for r in episode.log.rows["states"] if r["variable"] == "cue"]
    assert [(r["agent_id"], r["t"], r["source"]) for r in cues] == [
        (episode.agent_ids["Lee"], 2, "monitor")
    ]


async def test_actions_are_applied_between_turns_never_mid_turn():
    seen = []

    async def slow_monitor(episode, point):
        # a monitor that takes a while: the next turn must wait for it
        await asyncio.sleep(0.01)
        seen.append(("monitor", point.turn, len(episode.transcript)))
        return Stop("enough") if point.turn == 3 else None

    def reply(messages, call):
        seen.append(("model", len(messages)))
        return "fine"

    sc = Scenario(
        name="order",
        agents=pair(),
        max_turns=10,
        probes=(Monitor(slow_monitor, every=1, name="slow"),),
    )
    result = await Episode(sc, FunctionModel(reply), seed=1).run()
    kinds = [s[0] for s in seen]
    # strictly alternating: each turn's call finishes, then the monitor, then the next call
    assert kinds == ["model", "monitor"] * 3
    assert [s[1:] for s in seen if s[0] == "monitor"] == [(1, 1), (2, 2), (3, 3)]
    assert len(result.transcript) == 3


async def test_a_monitor_at_start_can_stop_before_anyone_speaks_and_end_probes_still_run():
    ended = []
    sc = Scenario(
        name="gate",
        agents=pair(),
        probes=(
            Monitor(lambda e, p: Stop("not eligible"), at="start", name="gate"),
            Probe(lambda e, p: ended.append(p.moment), at="end"),
        ),
    )
    model = FunctionModel.echo()
    result = await Episode(sc, model, seed=1).run()
    assert result.transcript == ()
    assert model.calls == []
    assert result.end_reason == "monitor(gate): not eligible"
    assert ended == ["end"]


async def test_a_monitor_returning_something_else_fails_naming_it():
    sc = Scenario(
        name="bad",
        agents=pair(),
        max_turns=3,
        probes=(Monitor(lambda e, p: "stop!", every=1, name="oops"),),
    )
    with pytest.raises(TypeError, match="monitor 'oops' returned 'stop!'"):
        await Episode(sc, FunctionModel.echo(), seed=1).run()


async def test_a_cue_for_someone_not_in_the_scenario_is_refused():
    sc = Scenario(
        name="bad",
        agents=pair(),
        max_turns=3,
        probes=(Monitor(lambda e, p: Cue("Kim", "hello"), every=1, name="who"),),
    )
    with pytest.raises(ConfigError, match="no participant named 'Kim'"):
        await Episode(sc, FunctionModel.echo(), seed=1).run()


async def test_until_can_read_a_recorded_state():
    def distress(episode, point):
        level = float(len(episode.transcript))  # rises by one each utterance
        episode.record_state("Sam", "distress", level, source="probe")

    sc = Scenario(
        name="states",
        agents=pair(),
        max_turns=20,
        probes=(Probe(distress, every=1),),
        until=When(
            lambda view: (view.value("distress", agent="Sam") or 0) >= 4, label="distressed"
        ),
    )
    episode = Episode(sc, FunctionModel.echo(), seed=1)
    result = await episode.run()
    assert result.end_reason == "distressed"
    assert len(result.transcript) == 4
    assert [o.value for o in episode.states("distress", agent="Sam")] == [1.0, 2.0, 3.0, 4.0]
    assert episode.states("distress", agent="Lee") == ()


async def test_a_monitor_can_act_on_states_another_probe_recorded():
    async def score(episode, point):
        await asyncio.sleep(0.01)  # e.g. a classifier call
        episode.record_state("Sam", "risk", 1.0 if "unsafe" in episode.transcript[-1].text else 0.0)

    def watch(episode, point):
        # probes due at one point run together, so the monitor sees the score
        # recorded for an utterance at the next point
        risky = [o for o in episode.states("risk", agent="Sam") if o.value]
        return Stop(f"risk at t={risky[0].t}") if risky else None

    sc = Scenario(
        name="two",
        agents=pair(),
        max_turns=10,
        probes=(Probe(score, every=1), Monitor(watch, every=1, name="watch")),
    )
    model = scripted(["hi", "I feel unsafe", "ok", "ok", "ok"])
    result = await Episode(sc, model, seed=1).run()
    assert result.end_reason == "monitor(watch): risk at t=2"
    assert len(result.transcript) == 3


def monitor_a(episode, point):
    return Stop("a")


def monitor_b(episode, point):
    return Stop("b")


def test_monitors_are_part_of_the_experiment_identity():
    def experiment(fn, every=1):
        sc = Scenario(name="id", agents=pair(), probes=(Monitor(fn, every=every, name="m"),))
        return Experiment(scenario=sc)

    assert experiment(monitor_a).identity() == experiment(monitor_a).identity()
    assert experiment(monitor_a).identity() != experiment(monitor_b).identity()
    assert experiment(monitor_a).identity() != experiment(monitor_a, every=2).identity()
    as_probe = Experiment(
        scenario=Scenario(name="id", agents=pair(), probes=(Probe(monitor_a, every=1, name="m"),))
    )
    assert as_probe.identity() != experiment(monitor_a).identity()
