"""Student cohorts: mental state driven by smartphone sensing through a simulated term.

A :class:`Cohort` is a scenario whose agents are students and whose clock is
the day. It shares the core of every scenario (:class:`~personae.engine.scenario.ScenarioBase`:
agents, rules, probes, sampling, parameters, network, memory window) and
replaces the conversation (sessions, turns, stop conditions) with days: its
loop (:mod:`personae.studies.cohort.loop`), each day for every student at once,

1. records the day's sensing features (synthetic or the user's StudentLife
   copy, interventions applied to the treated students from their start day)
   in ``states`` (``feature:<name>``, source ``sensing``);
2. lets some pairs of neighbours in the peer network talk (a line each, in
   ``turns`` with ``session`` = day and ``visible_to`` the pair), and each
   rates how it felt (``interaction``, -1..1, source ``peer``);
3. updates stress, mood, energy, sleep debt and connectedness with the state
   rule (:class:`~personae.studies.cohort.term.mental_state.StateRule`, source
   ``rule``); optionally the student writes a short journal and a second call
   infers a state change from it (source ``llm``);
4. adds the day to the student's memory as a diary line (with the
   social-media post the student saw that day, if a ``feed`` is set);
5. fires the ``"tick"`` probes: the EMA check-in of the students due that day
   (``ema_stress`` with the StudentLife labels, ``ema_mood``, ``ema_sleep``,
   ``ema_social``; :data:`~personae.studies.cohort.term.ema.COHORT_EMA`), the
   day's interviews (:class:`Interview`), and any probe of the scenario's own
   with ``at="tick"`` (:mod:`personae.studies.cohort.asks`).

Questionnaires before and after the term are ordinary probes at ``start`` and
``end`` (``Probe("phq-9", who="student", at=["start", "end"])``).

Example:
    >>> from personae.studies.cohort.scenario import Cohort, students
    >>> cohort = Cohort(name="term", agents=students(4), days=7, ema_rate=0.5)
    >>> cohort.moments
    ('start', 'end', 'tick')
    >>> Cohort(name="term", agents=students(4), sessions=2)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    pydantic_core._pydantic_core.ValidationError: 1 validation error for Cohort
    ...a Cohort has no setting 'sessions'...
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import date
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from personae.engine.scenario import ScenarioBase
from personae.moved import moved_names

if TYPE_CHECKING:
    from personae.engine.sink import EpisodeLog
    from personae.llm.base import ChatModel
    from personae.studies.cohort.loop import CohortEpisode

__all__ = ["CONVERSATION_FIELDS", "Cohort", "Interview", "Sensing", "diary_line", "students"]

#: Settings of a conversation (:class:`~personae.engine.scenario.Scenario`) that a cohort has not.
CONVERSATION_FIELDS = (
    "opening",
    "turns",
    "until",
    "max_turns",
    "sessions",
    "carry_memory",
    "cue",
    "hearing",
)

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class Interview(BaseModel):
    """A question put to students on a given day, in a separate context.

    Args:
        day: The day (from 0) after whose events it is asked.
        question: What to ask.
        who: Student names (default: every student).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    day: int = Field(ge=0)
    question: str = Field(min_length=1)
    who: tuple[str, ...] | None = None

    @field_validator("who", mode="before")
    @classmethod
    def _tuple(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value


class Sensing(BaseModel):
    """Where the daily features come from.

    Args:
        source: ``"synthetic"`` (a seeded stand-in, drawn per episode) or
            ``"studentlife"`` (the user's own copy of the dataset at ``path``).
        path: The folder holding StudentLife's ``dataset/``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    source: Literal["synthetic", "studentlife"] = "synthetic"
    path: str | None = None


class Cohort(ScenarioBase):
    """A cohort of students through a term (see the module docstring).

    Args (beyond :class:`~personae.engine.scenario.ScenarioBase`'s):
        days: Days simulated (70 = the 10-week term).
        sensing: The feature source.
        rule: The daily state rule (default
            :class:`~personae.studies.cohort.term.mental_state.StateRule`).
        interventions: Applied to treated students from their start day.
        ema_rate: Chance a student answers the EMA on a given day.
        ema_window: How many of the student's latest memories (diary lines and
            what was said) the EMA is answered from; None for the whole memory
            window. An EMA asks about today, and the prompt is most of the cost
            of a cohort run on a CPU server.
        conversations: Expected peer conversations per student per day.
        journal: Add the LLM journal step (a journal, then an inferred state change).
        feed: Social-media exposure (:class:`~personae.studies.cohort.term.media.Feed`),
            or None for none.
        interviews: Questions asked on given days, changing nothing.

    A cohort has no conversation settings (:data:`CONVERSATION_FIELDS`: turns,
    sessions, stop conditions, ...); giving one is an error. Its probes may run
    at ``"start"``, ``"end"`` and ``"tick"`` (the end of each day; the point's
    ``step`` and ``session`` are the day).

    Raises:
        pydantic.ValidationError: A field is invalid, or a conversation setting is given.
    """

    moments: ClassVar[tuple[str, ...]] = ("start", "end", "tick")

    days: int = Field(default=14, ge=1, le=400)
    sensing: Sensing = Sensing()
    rule: Any = None
    interventions: tuple[Any, ...] = ()
    ema_rate: float = Field(default=1.0, ge=0.0, le=1.0)
    ema_window: int | None = Field(default=4, ge=1)
    conversations: float = Field(default=0.3, ge=0.0, le=5.0)
    journal: bool = False
    feed: Any = None
    interviews: tuple[Interview, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _no_conversation(cls, data: Any) -> Any:
        given = [f for f in CONVERSATION_FIELDS if isinstance(data, Mapping) and f in data]
        if given:
            raise ValueError(
                f"a Cohort has no setting {given[0]!r}: its students talk in pairs each day "
                "(conversations=) and it runs for days=, without sessions, turns or stop "
                f"conditions (none of {', '.join(CONVERSATION_FIELDS)})"
            )
        return data

    def model_post_init(self, context: Any, /) -> None:
        if self.rule is None:
            from personae.studies.cohort.term.mental_state import StateRule

            object.__setattr__(self, "rule", StateRule())

    def asks(self) -> tuple[Any, ...]:
        """The day's asks as ``"tick"`` probes: the EMA check-in, then the interviews.

        They are built from :attr:`ema_rate`, :attr:`ema_window` and
        :attr:`interviews` (see :mod:`personae.studies.cohort.asks`); the loop
        runs them with the scenario's own probes at each tick.
        """
        from personae.studies.cohort.asks import cohort_asks

        return cohort_asks(self)

    def new_episode(
        self, model: ChatModel, *, seed: int, log: EpisodeLog | None = None
    ) -> CohortEpisode:
        """The :class:`~personae.studies.cohort.loop.CohortEpisode` that runs this cohort once."""
        from personae.studies.cohort.loop import CohortEpisode

        return CohortEpisode(self, model, seed=seed, log=log)

    def graph(self) -> Any:
        """The day loop's graph (:func:`personae.studies.cohort.loop.build_graph`)."""
        from personae.studies.cohort.loop import build_graph

        return build_graph(self)

    def graph_input(self) -> dict[str, Any]:
        return {"day": 0}

    def recursion_limit(self) -> int:
        return self.days + 10

    def describe(self) -> dict[str, Any]:
        data = super().describe()
        if self.memory_window:
            data["memory_window"] = self.memory_window
        data["cohort"] = {
            "days": self.days,
            "sensing": self.sensing.model_dump(),
            "rule": self.rule.model_dump() if hasattr(self.rule, "model_dump") else repr(self.rule),
            "interventions": [
                i.model_dump(mode="json") if hasattr(i, "model_dump") else repr(i)
                for i in self.interventions
            ],
            "ema_rate": self.ema_rate,
            "ema_window": self.ema_window,
            "conversations": self.conversations,
            "journal": self.journal,
            "feed": self.feed.model_dump() if self.feed is not None else None,
            "interviews": [i.model_dump() for i in self.interviews],
        }
        return data


def diary_line(
    day: int, row: Mapping[str, Any], events: Mapping[str, Any], state: Mapping[str, float]
) -> str:
    """The day as the student remembers it: what the phone saw, what was due, how it felt.

    Example:
        >>> diary_line(0, {"sleep_minutes": 420}, {"exam": True}, {"stress": 60, "mood": 40, "energy": 50})
        'Day 1: slept 7.0 h, an exam. You feel: stress 60/100, mood 40/100, energy 50/100.'
    """
    parts = [f"Day {day + 1}"]
    when = row.get("date")
    if isinstance(when, date):
        parts[0] += f" ({WEEKDAYS[when.weekday()]})"
    facts = []
    if row.get("sleep_minutes") is not None:
        facts.append(f"slept {row['sleep_minutes'] / 60:.1f} h")
    if row.get("conversation_count") is not None:
        facts.append(f"{int(row['conversation_count'])} conversations")
    active = sum(float(row.get(k) or 0) for k in ("walking_minutes", "running_minutes"))
    if active:
        facts.append(f"{active:.0f} min on your feet")
    if events.get("deadlines"):
        facts.append(f"{int(events['deadlines'])} deadline(s)")
    if events.get("exam"):
        facts.append("an exam")
    feel = (
        f"stress {state['stress']:.0f}/100, mood {state['mood']:.0f}/100, "
        f"energy {state['energy']:.0f}/100"
    )
    seen = f" Online: {events['post']}" if events.get("post") else ""
    return f"{parts[0]}: " + ", ".join(facts or ["no phone data"]) + f".{seen} You feel: {feel}."


def adjusted(state: Any, deltas: Mapping[str, float]) -> Any:
    """``state`` with ``deltas`` added to its 0-100 variables, kept within 0-100."""
    values = state.as_dict()
    for key, delta in deltas.items():
        values[key] = min(100.0, max(0.0, values[key] + delta))
    return dataclasses.replace(state, **values)


def students(n: int) -> tuple[Any, ...]:
    """Placeholder students ``Student 1`` ... ``Student n`` (replaced per episode by draws)."""
    from personae.agents.persona import Persona

    return tuple(Persona(name=f"Student {i + 1}", role="student") for i in range(n))


# Names this module had before the loop moved out, kept until 0.4.
_MOVED = {
    "CohortEpisode": "personae.studies.cohort.loop",
    "STATE_VARIABLES": "personae.studies.cohort.term.mental_state",
    "VALENCE": "personae.studies.cohort.talk",
}

__getattr__ = moved_names(__name__, _MOVED)
