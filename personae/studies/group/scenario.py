"""Built-in scenario: a group discussing a proposition on a social network.

N members drawn from a persona population (per episode, from its seed)
discuss a proposition. Who speaks next and who hears a message are
parameters; opinions (agreement 1-5) are measured as side-effect-free probes
before the first message, every ``every`` messages and at the end, in
``states`` (``variable = 'opinion'``); the episode's network is stored there too
(``variable = 'network'``).

Parameters (grid names): ``n_agents`` (3 or more), ``graph`` (complete,
small_world, scale_free, ring, random; or pass ``network=`` a
:class:`~personae.world.networks.Network` with any networkx graph),
``k``/``p``/``m`` (generator parameters), ``speaker`` (round_robin, random,
moderator, activity, neighbours), ``hearing`` (everyone, neighbours),
``every``, ``topic``, ``words``, ``max_turns``, ``memory_window``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import networkx as nx

from personae.agents.persona import Persona
from personae.engine.probes import Probe
from personae.engine.scenario import Scenario
from personae.engine.turns import (
    ActivityWeighted,
    Moderated,
    Neighbours,
    RandomOrder,
    RoundRobin,
    TurnPolicy,
)
from personae.errors import ConfigError
from personae.measures.stance import Stance
from personae.world.networks import Network

MODERATOR = Persona(
    name="Moderator",
    role="moderator",
    background="A neutral discussion moderator who keeps the conversation fair and moving.",
    style="brief and neutral",
)

SPEAKERS = ("round_robin", "random", "moderator", "activity", "neighbours")


def _policy(speaker: str) -> TurnPolicy:
    policies: dict[str, TurnPolicy] = {
        "round_robin": RoundRobin(),
        "random": RandomOrder(),
        "moderator": Moderated(moderator=MODERATOR.name),
        "activity": ActivityWeighted(),
        "neighbours": Neighbours(),
    }
    if speaker not in policies:
        raise ConfigError(f"speaker must be one of {', '.join(SPEAKERS)}, got {speaker!r}")
    return policies[speaker]


def _statement(params: Mapping[str, Any]) -> str:
    from personae.studies.debate.propositions import proposition

    return proposition(str(params["topic"])).text


def _rules(params: Mapping[str, Any]) -> str:
    from personae.studies.debate.propositions import proposition

    topic = proposition(str(params["topic"]))
    return (
        f'You are taking part in a group discussion on the proposition: "{topic.text}" '
        f"{topic.description} Share your own view honestly, react to what others said, and "
        f"write only your own message, in at most {params['words']} words."
    )


def _configure(scenario: Scenario, params: Mapping[str, Any]) -> Scenario:
    n = int(params["n_agents"])
    if n < 3:
        raise ConfigError(f"a group discussion needs n_agents >= 3, got {n}")
    speaker = str(params["speaker"])
    members = tuple(Persona(name=f"Member {i + 1}", role="member") for i in range(n))
    agents = (*members, MODERATOR) if speaker == "moderator" else members
    network = scenario.network
    if network is None or network.graph is None:
        network = Network(
            kind=params["graph"],
            k=min(int(params["k"]), n - 1),
            p=float(params["p"]),
            m=int(params["m"]),
            members=("member",),
        )
    stance = Stance(_statement, who="member", variable="opinion")
    every = int(params["every"])
    rules = {"member": _rules(params)}
    if speaker == "moderator":
        rules["moderator"] = "Invite members to speak and keep the discussion fair."
    return Scenario.model_validate(
        {
            **dict(scenario),
            "agents": agents,
            "turns": _policy(speaker),
            "network": network,
            "rules": rules,
            "probes": (Probe(stance, at=["start", "end"], every=every, name="opinion"),),
        }
    )


def _randomize(scenario: Scenario, seed: int) -> Scenario:
    from personae.world.population import Population

    members = [p for p in scenario.agents if p.role == "member"]
    drawn = Population().sample(len(members), seed, role="member", name_prefix=None)
    taken = {p.name for p in scenario.agents if p.role != "member"}
    renamed = {}
    for old, new in zip(members, drawn, strict=True):
        name = new.name if new.name not in taken else f"{new.name} {old.name.split()[-1]}"
        taken.add(name)
        renamed[old.name] = new.model_copy(update={"name": name})
    agents = tuple(renamed.get(p.name, p) for p in scenario.agents)
    network = scenario.network
    if network is not None and network.graph is not None:
        mapping = {old: new.name for old, new in renamed.items()}
        network = network.model_copy(update={"graph": nx.relabel_nodes(network.graph, mapping)})
    return scenario.model_copy(update={"agents": agents, "network": network})


def group(
    *,
    n_agents: int = 6,
    graph: str = "small_world",
    speaker: str = "random",
    hearing: str = "neighbours",
    max_turns: int = 12,
    every: int = 6,
    topic: str = "t13",
    words: int = 40,
    network: Network | None = None,
) -> Scenario:
    """The group discussion scenario.

    Args:
        n_agents: Members (3 to hundreds).
        graph: Kind of social graph drawn per episode (see
            :func:`~personae.world.networks.social_graph`).
        speaker: Turn-taking: round_robin, random, moderator (a moderator agent
            picks), activity (extraverts speak more), neighbours (a neighbour of
            the last speaker answers).
        hearing: ``everyone`` or only the speaker's graph ``neighbours``.
        max_turns: Messages in the discussion.
        every: Measure opinions every this many messages.
        topic: A proposition id (see ``personae.studies.debate.propositions``).
        words: Words per message at most.
        network: A fixed network (e.g. ``Network(graph=my_networkx_graph)`` over
            ``Member 1`` ... names), instead of ``graph``.
    """
    base = Scenario(
        name="group",
        agents=tuple(
            Persona(name=f"Member {i + 1}", role="member") for i in range(max(n_agents, 3))
        ),
        max_turns=max_turns,
        max_tokens=2 * words,
        temperature=0.9,
        memory_window=12,
        network=network,
        params={
            "n_agents": n_agents,
            "graph": graph,
            "k": 4,
            "p": 0.1,
            "m": 2,
            "speaker": speaker,
            "every": every,
            "topic": topic,
            "words": words,
        },
        configure=_configure,
        randomize=_randomize,
    )
    configured = _configure(base, base.params)
    return Scenario.model_validate({**dict(configured), "hearing": hearing})
