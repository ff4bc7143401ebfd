"""What turn-taking policies, stop conditions, cues and monitors get to see."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from personae.agents.memory import Utterance

__all__ = ["STATE_HISTORY", "Observation", "RecordedStates", "TurnView"]

#: Observations kept in memory per (participant, variable); older ones are only
#: in the database. Enough for a conversation's per-turn measures or a term of days.
STATE_HISTORY = 512


@dataclass(frozen=True, slots=True)
class Observation:
    """One row an episode recorded in ``states``, as loops and monitors read it back.

    Attributes:
        agent: The participant's name, or None for the episode as a whole.
        variable: What was observed (e.g. ``"mood"``, ``"stop"``).
        value: The number, if any.
        text: The text, if any.
        t: When: the step (conversation) or the day (a day loop).
        session: The session, where the recorder gave one.
        source: Who recorded it (``"probe"``, ``"monitor"``, ``"rule"``, ...).
    """

    agent: str | None
    variable: str
    value: float | None
    text: str | None
    t: int
    session: int | None
    source: str


class RecordedStates:
    """The states an episode has recorded so far, newest last, bounded per series.

    Each (participant, variable) series keeps its latest ``limit``
    observations, so a long day loop does not grow without bound; the
    database keeps everything.
    """

    def __init__(self, limit: int = STATE_HISTORY) -> None:
        self.limit = limit
        self._series: dict[tuple[str | None, str], deque[tuple[int, Observation]]] = {}
        self._count = 0

    def add(self, observation: Observation) -> None:
        """Keep ``observation`` (dropping its series' oldest beyond the limit)."""
        key = (observation.agent, observation.variable)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = deque(maxlen=self.limit)
        self._count += 1
        series.append((self._count, observation))

    def select(
        self, variable: str | None = None, *, agent: str | None = None, source: str | None = None
    ) -> tuple[Observation, ...]:
        """Observations matching every filter given, in the order they were recorded."""
        found = [
            entry
            for (who, name), series in self._series.items()
            if (variable is None or name == variable) and (agent is None or who == agent)
            for entry in series
            if source is None or entry[1].source == source
        ]
        found.sort(key=lambda entry: entry[0])
        return tuple(observation for _, observation in found)


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
        recorded: The states recorded so far; read them with :meth:`states`
            and :meth:`value`.

    Example:
        >>> until = When(lambda view: (view.value("distress", agent="client") or 0) >= 4)  # doctest: +SKIP
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
    recorded: RecordedStates | None = None

    def states(
        self, variable: str | None = None, *, agent: str | None = None, source: str | None = None
    ) -> tuple[Observation, ...]:
        """The states recorded so far in this episode, oldest first.

        Args:
            variable: Only this variable.
            agent: Only this participant's (a name).
            source: Only rows from this source (``"probe"``, ``"monitor"``, ...).
        """
        if self.recorded is None:
            return ()
        return self.recorded.select(variable, agent=agent, source=source)

    def value(self, variable: str, *, agent: str | None = None) -> float | None:
        """The latest number recorded for ``variable`` (and ``agent``), or None."""
        for observation in reversed(self.states(variable, agent=agent)):
            if observation.value is not None:
                return observation.value
        return None
