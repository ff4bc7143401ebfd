"""The scenario engine on the recording fakes: turn order, termination, prompts, seeds, probes."""

import itertools

import pytest

from personae import (
    Episode,
    FunctionModel,
    MaxTurns,
    Moderated,
    Opening,
    Persona,
    Probe,
    RandomOrder,
    RoundRobin,
    Says,
    Scenario,
    Script,
    ScriptedModel,
    When,
)
from personae.errors import ConfigError


def speakers(result):
    return [u.speaker for u in result.transcript]


def trio():
    return tuple(Persona(name=n) for n in ("Ann", "Bob", "Cat"))


async def test_round_robin_alternates_after_opening(dialogue):
    result = await Episode(dialogue, FunctionModel.echo(), seed=1).run()
    assert speakers(result) == ["Lee", "Sam"] * 3
    assert result.end_reason == "max_turns(6)"


async def test_script_follows_fixed_order():
    sc = Scenario(name="s", agents=trio(), turns=Script(order=("Cat", "Ann", "Ann")), max_turns=5)
    result = await Episode(sc, FunctionModel.echo(), seed=1).run()
    assert speakers(result) == ["Cat", "Ann", "Ann", "Cat", "Ann"]


async def test_random_order_is_seeded_and_never_repeats_speaker():
    sc = Scenario(name="r", agents=trio(), turns=RandomOrder(), max_turns=30)
    a = speakers(await Episode(sc, FunctionModel.echo(), seed=5).run())
    b = speakers(await Episode(sc, FunctionModel.echo(), seed=5).run())
    c = speakers(await Episode(sc, FunctionModel.echo(), seed=6).run())
    assert a == b
    assert a != c
    assert all(x != y for x, y in itertools.pairwise(a))
    assert set(a) == {"Ann", "Bob", "Cat"}


async def test_moderator_chooses_next_speaker_in_a_separate_context():
    def model_fn(messages, call):
        # The moderator is asked a question naming the candidates.
        if "Who should speak next" in messages[-1]["content"]:
            return "I pick Cat."
        return "hello"

    model = FunctionModel(model_fn)
    sc = Scenario(name="m", agents=trio(), turns=Moderated(moderator="Ann"), max_turns=3)
    episode = Episode(sc, model, seed=1)
    result = await episode.run()
    assert speakers(result) == ["Cat", "Cat", "Cat"]
    # The moderator's question never entered anyone's memory.
    assert all("Who should speak next" not in u.text for u in result.transcript)
    assert all(
        "Who should speak next" not in m["content"] for m in episode.agents["Ann"].messages()
    )
    assert sum(r["purpose"] == "moderator" for r in episode.log.rows["llm_calls"]) == 3


async def test_moderator_answer_naming_nobody_falls_back_and_is_recorded():
    model = FunctionModel(lambda m, c: "no idea")
    sc = Scenario(name="m", agents=trio(), turns=Moderated(moderator="Ann"), max_turns=2)
    episode = Episode(sc, model, seed=1)
    await episode.run()
    assert [r["variable"] for r in episode.log.rows["states"]] == ["moderator_unparsed"] * 2


def test_policies_naming_strangers_fail_at_definition():
    with pytest.raises(Exception, match="'Zed'"):
        Scenario(name="x", agents=trio(), turns=Script(order=("Ann", "Zed")))


async def test_says_stops_only_after_min_turns(pair):
    model = ScriptedModel(["fine", "goodbye", "ok", "goodbye then", "x", "y"])
    sc = Scenario(name="g", agents=pair, until=Says("goodbye", min_turns=4), max_turns=10)
    result = await Episode(sc, model, seed=1).run()
    assert [u.text for u in result.transcript] == ["fine", "goodbye", "ok", "goodbye then"]
    assert result.end_reason == "says(goodbye)"


async def test_conditions_compose_and_predicates_see_the_view(pair):
    stop = MaxTurns(3) | When(
        lambda v: v.last is not None and "stop" in v.last.text, label="stop-word"
    )
    sc = Scenario(name="w", agents=pair, until=stop, max_turns=10)
    result = await Episode(sc, ScriptedModel(["a", "stop", "c"]), seed=1).run()
    assert result.end_reason == "stop-word"
    assert len(result.transcript) == 2


async def test_prompts_are_prefix_stable_and_history_append_only(dialogue):
    model = FunctionModel.echo()
    await Episode(dialogue, model, seed=2).run()
    by_agent: dict[str, list] = {}
    for call in model.calls:
        by_agent.setdefault(call.messages[0]["content"], []).append(call.messages)
    assert len(by_agent) == 2  # one byte-identical system prompt per agent
    for prompts in by_agent.values():
        for earlier, later in itertools.pairwise(prompts):
            assert later[: len(earlier)] == earlier


async def test_cue_reaches_this_prompt_only(pair):
    sc = Scenario(name="c", agents=pair, max_turns=4, cue=lambda v, who: f"turn {v.turn}")
    model = FunctionModel.echo()
    await Episode(sc, model, seed=1).run()
    assert model.calls[1].messages[-1]["content"] == "(turn 1)"
    assert all(m["content"] != "(turn 0)" for m in model.calls[1].messages)


async def test_sampling_seeds_derive_from_episode_seed(dialogue):
    def seeds(seed):
        model = FunctionModel.echo()
        return model, Episode(dialogue, model, seed=seed)

    m1, e1 = seeds(11)
    await e1.run()
    m2, e2 = seeds(11)
    await e2.run()
    m3, e3 = seeds(12)
    await e3.run()
    s1 = [c.seed for c in m1.calls]
    assert s1 == [c.seed for c in m2.calls]
    assert s1 != [c.seed for c in m3.calls]
    assert len(set(s1)) == len(s1)
    assert [r["seed"] for r in e1.log.rows["llm_calls"]] == s1


async def test_probes_run_at_chosen_points_without_side_effects(dialogue):
    seen = []

    async def probe(episode, point):
        before = [m.copy() for m in episode.agents["Sam"].messages()]
        answer = await episode.ask("Sam", "Rate your mood 1-5.", purpose="mood")
        assert episode.agents["Sam"].messages() == before
        episode.record_state("Sam", "mood", text=answer, source="probe")
        seen.append((point.moment, point.turn))

    sc = dialogue.model_copy(update={"probes": (Probe(probe, at=("start", "end"), every=2),)})
    model = FunctionModel.echo()
    episode = Episode(sc, model, seed=3)
    result = await episode.run()
    assert seen == [("start", 0), ("turn", 2), ("turn", 4), ("turn", 6), ("end", 6)]
    assert all("Rate your mood" not in u.text for u in result.transcript)
    assert len(episode.log.rows["states"]) == 5
    assert sum(c.messages[-1]["content"] == "Rate your mood 1-5." for c in model.calls) == 5


async def test_sessions_carry_memory_as_recorded_summaries(dialogue):
    sc = dialogue.model_copy(update={"sessions": 2, "max_turns": 4})
    model = FunctionModel(lambda m, c: "NOTE" if "note for yourself" in m[-1]["content"] else "hi")
    episode = Episode(sc, model, seed=1)
    result = await episode.run()
    assert [u.session for u in result.transcript] == [0] * 4 + [1] * 4
    assert len(episode.log.rows["memories"]) == 2
    second = [c for c in model.calls if c.messages[-1]["content"] != "NOTE"][-1]
    assert "Session 1: NOTE" in second.messages[0]["content"]
    # The second session's history starts afresh after the summary.
    assert second.messages[1]["content"] == "Hi Sam, what brings you in?"


def test_grid_parameters_apply_and_unknown_ones_are_named(dialogue):
    s = dialogue.with_params({"client.style": "verbose", "Sam.big_five.N": 2, "max_turns": 3})
    assert s.persona("Sam").style == "verbose"
    assert s.persona("Sam").big_five == {"N": 2.0}
    assert s.max_turns == 3
    with pytest.raises(ConfigError, match="unknown parameter 'colour'"):
        dialogue.with_params({"colour": "red"})
    with pytest.raises(ConfigError, match="outside 1-5"):
        dialogue.with_params({"Sam.big_five.N": 9})


def test_a_misspelt_parameter_gets_a_suggestion_and_the_whole_list(dialogue):
    with pytest.raises(ConfigError) as caught:
        dialogue.with_params({"client.bigfive.N": 2})
    message = str(caught.value)
    assert "Did you mean 'client.big_five.N'?" in message
    assert "max_turns" in message and "temperature" in message and "style" in message
    assert "..." not in message


async def test_round_robin_with_explicit_order():
    sc = Scenario(name="o", agents=trio(), turns=RoundRobin(order=("Cat", "Bob")), max_turns=4)
    result = await Episode(sc, FunctionModel.echo(), seed=1).run()
    assert speakers(result) == ["Cat", "Bob", "Cat", "Bob"]


def test_opening_speaker_must_take_part(pair):
    with pytest.raises(Exception, match="opening speaker"):
        Scenario(name="x", agents=pair, opening=Opening(speaker="Zed", text="hi"))


async def test_the_episode_offers_probes_the_declared_surface_and_measures_fit_it(dialogue):
    from personae import Judge, Questionnaire
    from personae.engine import Measure, ProbeContext
    from personae.measures.stance import Stance

    episode = Episode(dialogue, FunctionModel.echo(), seed=1)
    assert isinstance(episode, ProbeContext)
    measures = [
        Questionnaire(instrument="gad-7", who="client"),
        Judge(who="client"),
        Stance("Cats are better than dogs."),
        lambda episode, point: None,
    ]
    assert all(isinstance(m, Measure) for m in measures)
    # the optional parts are found and used: a measure's check refuses a scenario
    with pytest.raises(ValueError, match="Kim"):
        Scenario(
            name="x",
            agents=dialogue.agents,
            probes=(Probe(Questionnaire(instrument="gad-7", who="Kim"), at="end"),),
        )
