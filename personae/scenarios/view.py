"""What turn-taking policies, stop conditions and cues get to see."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from personae.agents.memory import Utterance


@dataclass(frozen=True, slots=True)
class TurnView:
    """A read-only view of the conversation at one point.

    Attributes:
        session: Session index, from 0.
        turn: Utterances so far in this session (the opening line included).
        step: Utterances so far in the episode.
        names: Participant names in scenario order.
        roles: Role of each participant, by name.
        last: The latest utterance, if any.
        history: This session's utterances in order.
        params: The episode's parameters.
        rng: The episode's seeded random generator for turn-taking choices.
        max_turns: The session's utterance limit.
        graph: The episode's social network, if the scenario has one.
    """

    session: int
    turn: int
    step: int
    names: tuple[str, ...]
    roles: Mapping[str, str]
    last: Utterance | None
    history: Sequence[Utterance]
    params: Mapping[str, Any]
    rng: random.Random
    max_turns: int
    graph: Any = None
