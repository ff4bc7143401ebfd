"""The cohort's daily asks, as probes at the end of each day (``at="tick"``).

Two asks change nothing in the simulation, so they are probes: they run
through the engine's probe machinery at each day's ``"tick"`` point, together
with any ``"tick"`` probe of the scenario's own, and write ``states`` rows
through the episode's sink (:meth:`~personae.engine.episode.Episode.record_state`):

- :class:`Checkin`, the EMA: each student due that day (a seeded draw with
  chance ``Cohort.ema_rate``) answers the items of
  :data:`~personae.studies.cohort.term.ema.COHORT_EMA` in persona, from what
  it remembers of that day (its diary line and what it said and heard), at
  most the latest ``Cohort.ema_window`` entries: the items ask about today and
  last night, which the day's diary line holds, so earlier days would only add
  prompt tokens;
  one ``states`` row per item (``ema_stress``, ``ema_mood``, ``ema_sleep``,
  ``ema_social``; source ``ema``; ``t`` the day; the label or raw answer in ``text``).
- :class:`Interviews`: the day's :class:`~personae.studies.cohort.scenario.Interview`
  questions, answered from the whole memory at the end of the day; one
  ``interview`` row each (source ``interview``, ``text`` ``"Q: ...\\nA: ..."``).

A point's ``step`` is the day. The cohort's loop starts a day's tick probes
when the day is over and lets them run while the next day goes on (see
:mod:`personae.studies.cohort.loop`); they read the students' memories as
they were at the end of their day (:meth:`CohortEpisode.memory_on`).

The peer-conversation ratings and the journal are not asks: their answers move
the state, so they are steps of the loop.

Example:
    >>> from personae.studies.cohort.scenario import Cohort, students
    >>> cohort = Cohort(name="term", agents=students(3), ema_rate=0.5, ema_window=None)
    >>> [(p.name, p.at) for p in cohort_asks(cohort)]
    [('ema', ('tick',))]
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from personae.engine.probes import Probe, ProbePoint
from personae.seeds import derive_seed
from personae.studies.cohort.term.ema import (
    COHORT_EMA,
    COHORT_SOURCE,
    EmaItem,
    checkin_question,
    checkin_schema,
)

if TYPE_CHECKING:
    from personae.studies.cohort.loop import CohortEpisode
    from personae.studies.cohort.scenario import Cohort, Interview

__all__ = ["Checkin", "Interviews", "cohort_asks", "json_object"]


@dataclass(frozen=True, kw_only=True)
class Checkin:
    """The daily EMA check-in (see the module docstring).

    Args:
        rate: Chance a student answers on a given day (drawn per day from the
            episode seed, so the same students are due whatever the timing).
        window: At most this many of the day's latest memory entries are in the
            prompt; None for all of the day's.
        items: The EMA items (one JSON field each).
        max_tokens: Longest answer.
    """

    rate: float = 1.0
    window: int | None = 4
    items: tuple[EmaItem, ...] = COHORT_EMA
    max_tokens: int = 48

    def due(self, episode: CohortEpisode, day: int) -> list[str]:
        """The students who answer on ``day``, in cohort order."""
        rng = random.Random(derive_seed(episode.seed, "ema", day))
        return [s for s in episode.students if rng.random() < self.rate]

    async def __call__(self, episode: CohortEpisode, point: ProbePoint) -> None:
        day = point.step
        await asyncio.gather(*(self.ask(episode, s, day) for s in self.due(episode, day)))

    async def ask(self, episode: CohortEpisode, student: str, day: int) -> None:
        """Ask one student and record one ``states`` row per item."""
        raw = await episode.ask(
            student,
            checkin_question(self.items),
            purpose="ema",
            max_tokens=self.max_tokens,
            response_format={"type": "json", "schema": checkin_schema(self.items)},
            memory=episode.memory_on(student, day, self.window, today=True),
            step=day,
        )
        answers = json_object(raw)
        # Each item declares the period it asks about (term.ema), which the analysis
        # follows when pairing answers with sensing days.
        for item in self.items:
            value, label = item.read(answers.get(item.field))
            episode.record_state(
                student, item.variable, value, text=label or raw, source=COHORT_SOURCE, t=day
            )


@dataclass(frozen=True, kw_only=True)
class Interviews:
    """The scheduled interview questions, each asked on its day (see the module docstring).

    Args:
        interviews: The questions, their days and respondents.
        max_tokens: Longest answer.
    """

    interviews: tuple[Interview, ...]
    max_tokens: int = 96

    async def __call__(self, episode: CohortEpisode, point: ProbePoint) -> None:
        day = point.step
        asked = [
            (interview, student)
            for interview in self.interviews
            if interview.day == day
            for student in (interview.who or episode.students)
            if student in episode.students
        ]
        await asyncio.gather(*(self.ask(episode, i.question, s, day) for i, s in asked))

    async def ask(self, episode: CohortEpisode, question: str, student: str, day: int) -> None:
        """Ask one student one question and record the exchange."""
        answer = await episode.ask(
            student,
            question,
            purpose="interview",
            max_tokens=self.max_tokens,
            temperature=episode.scenario.temperature,
            memory=episode.memory_on(student, day),
            step=day,
        )
        episode.record_state(
            student,
            "interview",
            None,
            text=f"Q: {question}\nA: {answer}",
            source="interview",
            t=day,
        )


def cohort_asks(cohort: Cohort) -> tuple[Probe, ...]:
    """The ``"tick"`` probes a cohort's settings ask for (none when ``ema_rate`` is 0 and no interviews)."""
    asks = []
    if cohort.ema_rate > 0:
        checkin = Checkin(rate=cohort.ema_rate, window=cohort.ema_window)
        asks.append(Probe(checkin, at="tick", name="ema"))
    if cohort.interviews:
        asks.append(Probe(Interviews(interviews=cohort.interviews), at="tick", name="interviews"))
    return tuple(asks)


def json_object(raw: str) -> dict[str, Any]:
    """The JSON object in a model's answer (the outermost ``{...}`` if there is text around it).

    Example:
        >>> json_object('Sure! {"stress": 3} Hope that helps.')
        {'stress': 3}
        >>> json_object("no idea")
        {}
    """
    try:
        data = json.loads(raw)
    except ValueError:
        start, end = raw.find("{"), raw.rfind("}")
        try:
            data = json.loads(raw[start : end + 1]) if start >= 0 < end else {}
        except ValueError:
            data = {}
    return data if isinstance(data, dict) else {}
