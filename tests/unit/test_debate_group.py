"""The built-in debate and group scenarios on the recording fakes."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from personae import Episode, FunctionModel
from personae.errors import ConfigError
from personae.scenarios.builtin.debate import debate, debate_experiment, phase_of
from personae.scenarios.builtin.group import SPEAKERS, group


def talk(messages, call):
    if call.response_format:
        return "3"
    return f"argument {call.seed}"


async def run(scenario, seed=1, model=None):
    model = model or FunctionModel(talk)
    episode = Episode(scenario, model, seed=seed)
    result = await episode.run()
    return episode, result, model


def opponent_system(model):
    prompts = {c.messages[0]["content"] for c in model.calls if not c.response_format}
    return [p for p in prompts if "persuade your opponent" in p]


async def test_debate_phases_sides_and_stance_points():
    episode, result, model = await run(debate(opponent_side="pro", topic="t01"))
    roles = [episode.roles[u.speaker] for u in result.transcript]
    assert roles == ["participant", "opponent"] * 3
    assert [phase_of(t, 3) for t in range(6)] == ["opening"] * 2 + ["rebuttal"] * 2 + [
        "conclusion"
    ] * 2
    cues = [c.messages[-1]["content"] for c in model.calls if not c.response_format]
    assert "opening" in cues[0] and "rebuttal" in cues[2] and "conclusion" in cues[5]
    system = {c.messages[0]["content"] for c in model.calls}
    assert any("argue in favour of (PRO)" in s and "persuade" in s for s in system)
    assert any("argue against (CON)" in s and "persuade" not in s for s in system)
    states = [r for r in episode.log.rows["states"] if r["variable"] == "agreement"]
    assert [r["source"] for r in states] == ["pre", "turn", "turn", "turn", "post"]
    participant = episode.agent_ids[result.transcript[0].speaker]
    assert {r["agent_id"] for r in states} == {participant}
    assert episode.params["opponent_side"] == "pro" and "opponent_side" not in episode.drawn


async def test_personalisation_puts_the_participants_profile_in_the_opponents_prompt():
    _, _, plain = await run(debate(personalised=False, topic="t05"), seed=4)
    tailored_ep, _, tailored = await run(debate(personalised=True, topic="t05"), seed=4)
    participant = tailored_ep.scenario.agents[0]
    [plain_prompt] = opponent_system(plain)
    [tailored_prompt] = opponent_system(tailored)
    assert "what you know about your opponent" not in plain_prompt
    assert "what you know about your opponent" in tailored_prompt
    demo = participant.demographics
    for value in (demo.gender, str(demo.age), demo.education, demo.political_affiliation):
        assert value and value in tailored_prompt
    # The participant itself never sees the profile line.
    participant_prompts = [
        c.messages[0]["content"]
        for c in tailored.calls
        if "persuade your opponent" not in c.messages[0]["content"]
    ]
    assert all("what you know about your opponent" not in p for p in participant_prompts)


async def test_participant_topic_and_side_are_drawn_per_episode():
    sc = debate(strength="high")
    draws = set()
    for seed in range(6):
        ep = Episode(sc, FunctionModel(talk), seed=seed)
        draws.add((ep.scenario.agents[0].name, ep.params["topic"], ep.params["opponent_side"]))
        assert ep.params["strength"] == "high"
    assert len(draws) > 3
    same = Episode(sc, FunctionModel(talk), seed=0)
    assert (same.scenario.agents[0].name, same.params["topic"]) in {(d[0], d[1]) for d in draws}


def test_debate_experiment_is_the_published_grid():
    exp = debate_experiment(replicates=2)
    combos = exp.combinations()
    assert len(combos) == 2 * 2 * 3
    assert {c["opponent"] for c in combos} == {"ai", "human"}
    with pytest.raises(ConfigError, match="opponent"):
        debate(opponent="robot")


@pytest.mark.parametrize("speaker", SPEAKERS)
async def test_group_runs_with_every_turn_policy(speaker):
    sc = group(n_agents=5, speaker=speaker, max_turns=8, every=4, graph="ring")
    episode, result, _ = await run(sc, seed=2)
    members = [p.name for p in episode.scenario.agents if p.role == "member"]
    assert len(members) == 5 and len(set(members)) == 5
    opinions = [r for r in episode.log.rows["states"] if r["variable"] == "opinion"]
    assert Counter(r["t"] for r in opinions) == {0: 5, 4: 5, 8: 10}  # every 4, and at the end
    assert len(result.transcript) == 8


async def test_group_hearing_follows_the_drawn_network():
    episode, result, _ = await run(group(n_agents=8, graph="small_world", max_turns=10), seed=3)
    [network] = [r for r in episode.log.rows["states"] if r["variable"] == "network"]
    data = json.loads(network["text"])
    edges = {frozenset((e["source"], e["target"])) for e in data["edges"]}
    for row, u in zip(episode.log.rows["turns"], result.transcript, strict=True):
        heard = set(json.loads(row["visible_to"])) - {u.speaker}
        assert all(frozenset((u.speaker, h)) in edges for h in heard)


def test_group_grid_parameters_and_errors():
    sc = group()
    big = sc.with_params({"n_agents": 50, "graph": "scale_free", "hearing": "everyone"})
    assert len(big.agents) == 50 and big.network.kind == "scale_free"
    with pytest.raises(ConfigError, match="n_agents"):
        sc.with_params({"n_agents": 2})
    with pytest.raises(ConfigError, match="speaker"):
        sc.with_params({"speaker": "loudest"})


async def test_group_on_a_given_graph_keeps_its_edges_after_members_are_drawn():
    import networkx as nx

    from personae import Network

    star = nx.star_graph(["Member 1", "Member 2", "Member 3", "Member 4"])
    sc = group(n_agents=4, network=Network(graph=star), max_turns=6)
    episode, result, _ = await run(sc, seed=5)
    hub = episode.scenario.agents[0].name
    assert hub != "Member 1"
    for row, u in zip(episode.log.rows["turns"], result.transcript, strict=True):
        heard = set(json.loads(row["visible_to"]))
        assert heard == set(episode.names) if u.speaker == hub else heard == {u.speaker, hub}
