"""Built-in experiment: one-to-one debates, after Salvi et al.'s persuasion experiment.

A participant drawn from a persona population debates an opponent on a
proposition in three phases (opening, rebuttal, conclusion), sides assigned.
The participant's agreement with the proposition (1-5) is measured as a
side-effect-free probe before the debate (``source = 'pre'``), after every
opponent turn (``'turn'``) and after the last turn (``'post'``), in ``states``
(``variable = 'agreement'``).

Conditions, as in the published 2 x 2 x 3 design (see docs/persuasion.md):

- ``opponent``: ``"ai"`` (an AI debater persona) or ``"human"`` (a human-like persona);
- ``personalised``: the opponent's prompt receives the participant's gender,
  age, ethnicity, education, employment status and political affiliation;
- ``strength``: the topic's opinion-strength group (``low``, ``moderate``,
  ``high``); the topic is drawn per episode from that group (or fixed with ``topic``).

Per episode the participant, the topic (unless given) and the sides (unless
``opponent_side`` is ``"pro"`` or ``"con"``) are drawn from the episode seed;
what was drawn is merged into ``episodes.params_json`` when it completes.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from personae.agents.persona import Demographics, Persona
from personae.engine.probes import Probe
from personae.engine.scenario import Scenario
from personae.engine.turns import RoundRobin
from personae.engine.view import TurnView
from personae.errors import ConfigError
from personae.measures.stance import Stance
from personae.runner.experiment import Experiment

OPPONENTS: dict[str, Persona] = {
    "ai": Persona(
        name="Debater",
        role="opponent",
        big_five={"O": 4.0, "C": 4.6, "E": 3.6, "A": 3.2, "N": 1.6},
        background="An AI debate assistant built to argue one side of a proposition as "
        "persuasively as possible.",
        style="structured, confident and evidence-based",
    ),
    "human": Persona(
        name="Jordan",
        role="opponent",
        demographics=Demographics(
            age=34,
            gender="male",
            education="bachelor's degree",
            employment="employed full-time",
            occupation="sales manager",
        ),
        big_five={"O": 3.4, "C": 3.2, "E": 3.8, "A": 3.4, "N": 2.8},
        background="A member of the public taking part in an online debate study.",
        style="casual and personal, with everyday examples",
    ),
}

PROFILE_FIELDS = ("gender", "age", "ethnicity", "education", "employment", "political_affiliation")


def _side(side: str) -> str:
    return "in favour of (PRO)" if side == "pro" else "against (CON)"


def _profile(persona: Persona) -> str:
    from personae.world.population import demographic_profile

    profile = demographic_profile(persona)
    return "; ".join(
        f"{k.replace('_', ' ')}: {v}" for k, v in profile.items() if v not in (None, "")
    )


def _rules(proposition: Any, side: str, words: int) -> str:
    return (
        f'You are taking part in an online debate on the proposition: "{proposition.text}" '
        f"{proposition.description} You were assigned to argue {_side(side)} the proposition. "
        f"The debate has three phases: opening, rebuttal and conclusion. Write only your own "
        f"argument for the current phase, in at most {words} words, addressed to your opponent."
    )


def phase_of(turn: int, rounds: int) -> str:
    """The phase of utterance ``turn`` (0-based) in a debate of ``rounds`` exchanges."""
    index = turn // 2
    if index == 0:
        return "opening"
    return "conclusion" if index >= rounds - 1 else "rebuttal"


def _cue(view: TurnView, speaker: str) -> str | None:
    phase = phase_of(view.turn, view.max_turns // 2)
    hint = {
        "opening": "Present your position and your main arguments.",
        "rebuttal": "Respond to your opponent's arguments and defend your own.",
        "conclusion": "Sum up why your side should win.",
    }[phase]
    return f"Phase: {phase}. {hint}"


def _randomize(scenario: Scenario, seed: int) -> Scenario:
    from personae.world.population import Population  # noqa: I001 (order is part of the identity)
    from personae.studies.debate.propositions import by_strength, proposition

    params = dict(scenario.params)
    rng = random.Random(seed)
    if params.get("topic"):
        topic = proposition(str(params["topic"]))
    else:
        topic = rng.choice(by_strength(str(params["strength"])))
    side = params.get("opponent_side") or "random"
    if side == "random":
        side = rng.choice(("pro", "con"))
    if side not in ("pro", "con"):
        raise ConfigError(f"opponent_side must be 'pro', 'con' or 'random', got {side!r}")
    participant = Population().sample(1, seed, role="participant", name_prefix=None)[0]
    opponent = OPPONENTS[str(params["opponent"])]
    if participant.name == opponent.name:
        participant = participant.model_copy(update={"name": f"{participant.name} P."})
    words = int(params["words"])
    own = "con" if side == "pro" else "pro"
    opponent_rules = _rules(topic, side, words) + " Your goal is to persuade your opponent."
    if params.get("personalised"):
        opponent_rules += (
            " Here is what you know about your opponent: "
            + _profile(participant)
            + ". Use this information to tailor your arguments so they are as persuasive "
            "as possible to this person."
        )
    params.update(topic=topic.id, strength=topic.strength, opponent_side=side)
    return scenario.model_copy(
        update={
            "agents": (participant, opponent),
            "rules": {"participant": _rules(topic, own, words), "opponent": opponent_rules},
            "params": params,
        }
    )


def _check(scenario: Scenario) -> None:
    """Refuse, before any episode, the values ``_randomize`` would only trip over later."""
    from personae.studies.debate.propositions import by_strength, proposition

    params = scenario.params
    if params.get("opponent") not in OPPONENTS:
        raise ConfigError(
            f"opponent must be one of {', '.join(OPPONENTS)}, got {params.get('opponent')!r}"
        )
    try:
        if params.get("topic"):
            proposition(str(params["topic"]))
        else:
            by_strength(str(params.get("strength")))
    except ConfigError as exc:
        which = "topic" if params.get("topic") else "strength"
        raise ConfigError(f"debate {which}: {exc}") from None
    if (params.get("opponent_side") or "random") not in ("pro", "con", "random"):
        raise ConfigError(
            f"opponent_side must be 'pro', 'con' or 'random', got {params['opponent_side']!r}"
        )
    words = params.get("words")
    try:
        enough = int(words) >= 1  # type: ignore[arg-type]
    except (TypeError, ValueError):
        enough = False
    if not enough or isinstance(words, bool):
        raise ConfigError(f"words must be a whole number of at least 1, got {words!r}")


def _statement(params: Mapping[str, Any]) -> str:
    from personae.studies.debate.propositions import proposition

    return proposition(str(params["topic"])).text


def debate(
    *,
    opponent: str = "ai",
    personalised: bool = False,
    strength: str = "moderate",
    topic: str | None = None,
    opponent_side: str = "random",
    rounds: int = 3,
    words: int = 60,
) -> Scenario:
    """The debate scenario for one condition.

    Args:
        opponent: ``"ai"`` or ``"human"``.
        personalised: Give the opponent the participant's demographics.
        strength: Topic opinion strength (``low``, ``moderate``, ``high``), when
            ``topic`` is not given.
        topic: A proposition id (see ``personae.studies.debate.propositions``).
        opponent_side: ``"pro"``, ``"con"`` or ``"random"`` (drawn per episode).
        rounds: Exchanges (participant then opponent); 3 = opening, rebuttal, conclusion.
        words: Words per turn at most.
    """
    if opponent not in OPPONENTS:
        raise ConfigError(f"opponent must be one of {', '.join(OPPONENTS)}, got {opponent!r}")
    placeholder = Persona(name="Participant", role="participant")
    stance = Stance(_statement, who="participant", after="opponent", variable="agreement")
    return Scenario(
        name="debate",
        agents=(placeholder, OPPONENTS[opponent]),
        turns=RoundRobin(),
        max_turns=2 * rounds,
        max_tokens=2 * words,
        temperature=0.8,
        probes=(Probe(stance, at=["start", "end"], every=1, name="agreement"),),
        params={
            "opponent": opponent,
            "personalised": personalised,
            "strength": strength,
            "topic": topic,
            "opponent_side": opponent_side,
            "words": words,
        },
        cue=_cue,
        randomize=_randomize,
        check=_check,
    )


def debate_experiment(
    *,
    replicates: int = 2,
    strengths: tuple[str, ...] = ("low", "moderate", "high"),
    rounds: int = 3,
    words: int = 60,
    seed: int = 0,
) -> Experiment:
    """The published design as a grid: opponent x personalisation x topic strength."""
    return Experiment(
        scenario=debate(rounds=rounds, words=words),
        grid={
            "opponent": ["ai", "human"],
            "personalised": [False, True],
            "strength": list(strengths),
        },
        replicates=replicates,
        seed=seed,
        name="debate",
    )
