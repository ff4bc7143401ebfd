"""Networks, hearing rules, group turn-taking, stance probes, per-episode draws (recording fakes)."""

from __future__ import annotations

import json
from collections import Counter
from itertools import pairwise

import networkx as nx
import pytest

from personae import (
    ActivityWeighted,
    Episode,
    FunctionModel,
    Neighbours,
    Network,
    Persona,
    Probe,
    RandomOrder,
    Scenario,
)
from personae.measures.stance import Stance


def crowd(n: int) -> tuple[Persona, ...]:
    return tuple(Persona(name=f"P{i}", role="member") for i in range(n))


def line_graph(names):
    g = nx.Graph()
    g.add_edges_from(pairwise(names))
    return g


async def test_only_neighbours_hear_a_message_and_visible_to_says_who():
    people = crowd(5)
    names = [p.name for p in people]
    sc = Scenario(
        name="line",
        agents=people,
        turns=RandomOrder(),
        max_turns=30,
        network=Network(graph=line_graph(names)),
        hearing="neighbours",
    )
    episode = Episode(sc, FunctionModel.echo(), seed=7)
    result = await episode.run()
    graph = line_graph(names)
    for u in result.transcript:
        near = {u.speaker, *graph.neighbors(u.speaker)}
        for name, agent in episode.agents.items():
            assert (u in agent.memory.entries) == (name in near)
    rows = episode.log.rows["turns"]
    for row, u in zip(rows, result.transcript, strict=True):
        assert set(json.loads(row["visible_to"])) == {u.speaker, *graph.neighbors(u.speaker)}
    # A non-neighbour never sees a message, not even in the prompt it answers from.
    p0_prompts = [
        c for c in episode.model.calls if c.messages[0]["content"].startswith("You are P0")
    ]
    for call in p0_prompts:
        text = " ".join(m["content"] for m in call.messages[1:])
        for u in result.transcript:
            if u.speaker not in ("P0", "P1"):
                assert u.text not in text


async def test_network_is_drawn_per_episode_from_its_seed_and_stored():
    sc = Scenario(
        name="sw",
        agents=crowd(10),
        max_turns=2,
        network=Network(kind="small_world", k=4, p=0.3),
        hearing="neighbours",
    )

    def edges(seed):
        episode = Episode(sc, FunctionModel.echo(), seed=seed)
        state = [r for r in episode.log.rows["states"] if r["variable"] == "network"]
        data = json.loads(state[0]["text"])
        return sorted(tuple(sorted((e["source"], e["target"]))) for e in data["edges"])

    assert edges(1) == edges(1)
    assert edges(1) != edges(2)


def test_network_and_hearing_errors_name_the_problem():
    with pytest.raises(ValueError, match="needs a network"):
        Scenario(name="x", agents=crowd(3), hearing="neighbours")
    with pytest.raises(ValueError, match="small_world needs"):
        Scenario(name="x", agents=crowd(3), network=Network(kind="small_world", k=4))
    stranger = nx.Graph([("P0", "Zed")])
    with pytest.raises(ValueError, match="Zed"):
        Scenario(name="x", agents=crowd(3), network=Network(graph=stranger))


async def test_neighbours_policy_passes_the_turn_along_edges():
    people = crowd(6)
    names = [p.name for p in people]
    graph = line_graph(names)
    sc = Scenario(
        name="n", agents=people, turns=Neighbours(), max_turns=40, network=Network(graph=graph)
    )
    result = await Episode(sc, FunctionModel.echo(), seed=3).run()
    for a, b in pairwise(result.transcript):
        assert graph.has_edge(a.speaker, b.speaker)


async def test_activity_weighted_policy_favours_extraverts():
    people = (
        Persona(name="Loud", big_five={"E": 5}),
        Persona(name="Quiet", big_five={"E": 1}),
        Persona(name="Mid", big_five={"E": 3}),
    )
    sc = Scenario(name="a", agents=people, turns=ActivityWeighted(allow_repeat=True), max_turns=300)
    result = await Episode(sc, FunctionModel.echo(record=False), seed=5).run()
    counts = Counter(u.speaker for u in result.transcript)
    assert counts["Loud"] > counts["Mid"] > counts["Quiet"]
    fixed = ActivityWeighted(weights={"Quiet": 10.0})
    result = await Episode(
        sc.model_copy(update={"turns": fixed}), FunctionModel.echo(record=False), seed=5
    ).run()
    assert Counter(u.speaker for u in result.transcript).most_common(1)[0][0] == "Quiet"


def test_activity_weights_must_name_participants():
    with pytest.raises(ValueError, match="Nobody"):
        Scenario(name="a", agents=crowd(3), turns=ActivityWeighted(weights={"Nobody": 1.0}))


async def test_stance_probe_records_pre_turn_post_without_side_effects(dialogue):
    stance = Stance("Cats are better than dogs.", who="Sam", after="Lee")

    def reply(messages, call):
        if call.response_format:
            return "4"
        return f"line {call.seed}"

    plain = await Episode(dialogue, FunctionModel(reply), seed=2).run()
    sc = dialogue.model_copy(update={"probes": (Probe(stance, at=["start", "end"], every=1),)})
    episode = Episode(sc, FunctionModel(reply), seed=2)
    result = await episode.run()
    assert result.transcript == plain.transcript
    rows = [r for r in episode.log.rows["states"] if r["variable"] == "agreement"]
    sources = [r["source"] for r in rows]
    assert sources[0] == "pre" and sources[-1] == "post"
    # After each of Lee's generated turns (the scripted opening is part of starting the session).
    lee_turns = [u.step + 1 for u in result.transcript if u.speaker == "Lee" and u.step > 0]
    assert [r["t"] for r in rows if r["source"] == "turn"] == lee_turns
    assert all(r["value"] == 4.0 for r in rows)


async def test_randomize_draws_per_episode_and_the_draw_is_reported(dialogue):
    def draw(scenario, seed):
        return scenario.model_copy(update={"params": {**scenario.params, "colour": f"c{seed % 7}"}})

    sc = dialogue.model_copy(update={"randomize": draw, "params": {"colour": None}})
    a, b = Episode(sc, FunctionModel.echo(), seed=1), Episode(sc, FunctionModel.echo(), seed=2)
    assert a.params["colour"] == Episode(sc, FunctionModel.echo(), seed=1).params["colour"]
    assert a.drawn == {"colour": a.params["colour"]}
    assert {a.params["colour"], b.params["colour"]} <= {f"c{i}" for i in range(7)}


async def test_memory_window_bounds_the_prompt():
    sc = Scenario(name="w", agents=crowd(3), max_turns=20, memory_window=4)
    model = FunctionModel.echo()
    await Episode(sc, model, seed=1).run()
    assert max(len(c.messages) for c in model.calls) <= 1 + 4
