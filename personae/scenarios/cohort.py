r"""Student cohorts: mental state driven by smartphone sensing through a simulated term.

A :class:`Cohort` is a scenario whose agents are students and whose clock is
the day. Its graph::

    START -> begin (pre-term probes) -> day --(more days)--> day
                                            \--(last day)--> finish (post-term probes) -> END

Each day, for every student at once (never one student after another):

1. that day's sensing features (synthetic or the user's StudentLife copy,
   with interventions applied to the treated students from their start day)
   are recorded in ``states`` (``feature:<name>``, source ``sensing``);
2. some pairs of neighbours in the peer network talk (two short turns, in
   ``turns`` with ``session`` = day and ``visible_to`` the pair), then each
   rates how the conversation felt (``interaction``, -1..1);
3. the documented state rule (:class:`~personae.environments.mental_state.StateRule`)
   updates stress, mood, energy, sleep debt and connectedness (source ``rule``);
   optionally the student writes a short journal and a second call infers a
   state change from it (source ``llm``);
4. the day is added to the student's memory as a diary line (with the
   social-media post the student saw that day, if a ``feed`` is set: its
   effects entered step 3 as events; ``media`` rows, source ``media``);
5. students due for an EMA answer it in persona (``ema_stress`` with the
   StudentLife labels, ``ema_mood``, ``ema_sleep``, ``ema_social``; the items
   and the period each asks about are
   :data:`~personae.environments.ema.COHORT_EMA`);
6. scheduled interviews are asked in a separate context and change nothing.

Steps 5 and 6 change nothing, so they are asked from a snapshot of each
student's memory at the end of the day and run while the next day goes on:
the server always has work from both. The post-term probes wait for them.

Questionnaires before and after the term are ordinary probes at ``start``
and ``end`` (``Probe("phq-9", who="student", at=["start", "end"])``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
from collections.abc import Coroutine, Mapping
from datetime import date
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from pydantic import BaseModel, ConfigDict, Field, field_validator

from personae.agents.memory import Utterance
from personae.errors import ConfigError
from personae.scenarios.episode import Episode, EpisodeResult
from personae.scenarios.probes import ProbePoint
from personae.scenarios.scenario import Scenario
from personae.seeds import derive_seed

if TYPE_CHECKING:
    import polars as pl

    from personae.llm.base import ChatModel
    from personae.scenarios.log import EpisodeLog

#: State variables written each day (source ``rule`` or ``llm``).
STATE_VARIABLES = ("stress", "mood", "energy", "sleep_debt", "connectedness")


WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

VALENCE = ("Very negative", "Negative", "Neutral", "Positive", "Very positive")


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


class DayState(TypedDict):
    day: int
    step: int


class Cohort(Scenario):
    """A cohort of students through a term (see the module docstring).

    Args (beyond :class:`~personae.scenarios.scenario.Scenario`'s):
        days: Days simulated (70 = the 10-week term).
        sensing: The feature source.
        rule: The daily state rule.
        interventions: Applied to treated students from their start day.
        ema_rate: Chance a student answers the EMA on a given day.
        ema_window: How many of the student's latest memories (diary lines and
            what was said) the EMA is answered from; None for the whole memory
            window. An EMA asks about today, and the prompt is most of the cost
            of a cohort run on a CPU server.
        conversations: Expected peer conversations per student per day.
        journal: Add the LLM journal step (a journal, then an inferred state change).
        feed: Social-media exposure (:class:`~personae.environments.media.Feed`),
            or None for none.
        interviews: Questions asked on given days, changing nothing.
    """

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

    def model_post_init(self, context: Any, /) -> None:
        if self.rule is None:
            from personae.environments.mental_state import StateRule

            object.__setattr__(self, "rule", StateRule())

    def new_episode(self, model: ChatModel, *, seed: int, log: EpisodeLog | None = None) -> Episode:
        return CohortEpisode(self, model, seed=seed, log=log)

    def graph(self) -> Any:
        graph: StateGraph[Any, Any, Any, Any] = StateGraph(DayState, context_schema=CohortEpisode)
        graph.add_node("begin", _begin)
        graph.add_node("day", _day)
        graph.add_node("finish", _finish)
        graph.add_edge(START, "begin")
        graph.add_conditional_edges("begin", _next, ["day", "finish"])
        graph.add_conditional_edges("day", _next, ["day", "finish"])
        graph.add_edge("finish", END)
        return graph

    def describe(self) -> dict[str, Any]:
        data = super().describe()
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


async def _begin(state: DayState, runtime: Runtime[Any]) -> dict[str, Any]:
    return await runtime.context.begin(state)


async def _day(state: DayState, runtime: Runtime[Any]) -> dict[str, Any]:
    return await runtime.context.run_day(state)


async def _finish(state: DayState, runtime: Runtime[Any]) -> dict[str, Any]:
    return await runtime.context.finish(state)


async def _next(state: DayState, runtime: Runtime[Any]) -> str:
    return "day" if state["day"] < runtime.context.scenario.days else "finish"


class CohortEpisode(Episode):
    """One cohort run once: its sensing data, states, conversations and answers."""

    scenario: Cohort

    def __init__(
        self, scenario: Cohort, model: ChatModel, *, seed: int, log: EpisodeLog | None = None
    ) -> None:
        super().__init__(scenario, model, seed=seed, log=log)
        from personae.environments.interventions import apply, assign, traits_by_day
        from personae.environments.mental_state import fill_features, initial_state

        self.students = [p.name for p in self.scenario.agents if p.role == "student"]
        self.traits = {
            p.name: dict(p.big_five) for p in self.scenario.agents if p.role == "student"
        }
        features, calendar = self._sensing()
        interventions = list(self.scenario.interventions)
        self.assignment = assign(interventions, self.students, derive_seed(seed, "interventions"))
        applied = apply(
            interventions,
            fill_features(features, rule=self.scenario.rule),
            calendar,
            self.traits,
            self.assignment,
        )
        self.features = _by_student_day(applied.features)
        self.events = _by_student_day(applied.calendar)
        self.traits_on = traits_by_day(applied.traits)
        self._expose()
        self.state = {s: initial_state(self.traits[s], self.scenario.rule) for s in self.students}
        self.day_rng = random.Random(derive_seed(seed, "days"))
        self._step = 0
        self._pending: list[asyncio.Future[Any]] = []
        starts = {i.name: i.start_day for i in interventions}
        for row in self.assignment.iter_rows(named=True):
            self.record_state(
                row["student"],
                f"treated:{row['intervention']}",
                float(bool(row["treated"])),
                source="intervention",
                t=starts.get(row["intervention"], 0),
            )

    # -- set-up -----------------------------------------------------------------------------

    def _expose(self) -> None:
        """Draw the term's social-media exposures; their effects join the day's events."""
        feed = self.scenario.feed
        if feed is None or feed.rate <= 0:
            return
        from personae.environments.media import add_exposures

        graph = self.graph

        def neighbours(student: str) -> list[str]:
            return sorted(map(str, graph.neighbors(student))) if graph and student in graph else []

        exposures = feed.draw(
            self.students, self.scenario.days, derive_seed(self.seed, "feed"), neighbours
        )
        self.events = add_exposures(self.events, exposures)
        for row in exposures.iter_rows(named=True):
            self.record_state(
                row["student"],
                "media",
                1.0,
                text=f"{row['kind']}: {row['text']}",
                source="media",
                t=int(row["day"]),
            )

    def _sensing(self) -> tuple[pl.DataFrame, pl.DataFrame]:
        sensing = self.scenario.sensing
        days = self.scenario.days
        if sensing.source == "studentlife":
            from personae.environments.studentlife import StudentLife

            if not sensing.path:
                raise ConfigError("sensing source 'studentlife' needs path= the dataset folder")
            source: Any = StudentLife(sensing.path)
        else:
            from personae.environments.sensing import SyntheticTerm, Term

            personas = [p for p in self.scenario.agents if p.role == "student"]
            source = SyntheticTerm.from_personas(
                personas, term=Term(n_days=days), seed=derive_seed(self.seed, "sensing")
            )
        # The source's student ids (u00, u01, ...) become the agents' names, in order.
        mapping = dict(zip(source.students(), self.students, strict=False))
        features = source.features().filter(pl_col("student").is_in(list(mapping)))
        features = features.with_columns(pl_col("student").replace(mapping))
        calendar = source.calendar()
        return features.filter(pl_col("day") < days), calendar.filter(pl_col("day") < days)

    async def run(self) -> EpisodeResult:
        try:
            state = await self._compiled_from.compiled.ainvoke(
                {"day": 0, "step": 0},
                context=self,
                config={"recursion_limit": self.scenario.days + 10},
            )
        finally:
            for pending in self._pending:  # only left after a failure
                pending.cancel()
            if self._pending:
                await asyncio.gather(*self._pending, return_exceptions=True)
        return EpisodeResult(
            transcript=tuple(self.transcript),
            end_reason=f"days({state['day']})",
            calls=self.calls,
            completion_tokens=self.completion_tokens,
        )

    def _point(self, moment: Any, day: int) -> ProbePoint:
        return ProbePoint(moment=moment, session=day, turn=0, step=day)

    async def _probes(self, moment: Any, day: int) -> None:
        await self.probe_at(self._point(moment, day))

    # -- graph nodes ------------------------------------------------------------------------

    async def begin(self, state: DayState) -> dict[str, Any]:
        await self._probes("start", 0)
        return {"day": 0}

    async def finish(self, state: DayState) -> dict[str, Any]:
        await asyncio.gather(self._probes("end", state["day"]), self._drain())
        return {}

    async def _drain(self) -> None:
        """Wait for every day's EMAs and interviews still in flight."""
        while self._pending:
            await self._pending.pop(0)

    async def run_day(self, state: DayState) -> dict[str, Any]:
        day = state["day"]
        today = {s: self.features.get((s, day), {}) for s in self.students}
        for student, row in today.items():
            for name in _features():
                value = row.get(name)
                if value is not None:
                    self.record_state(
                        student, f"feature:{name}", float(value), source="sensing", t=day
                    )
        interactions = await self._conversations(day)
        for student in self.students:
            self.state[student] = self.scenario.rule.step(
                self.state[student],
                today[student],
                self.events.get((student, day), {}),
                self.traits_on.get((student, day), self.traits[student]),
                interactions.get(student, []),
            )
        if self.scenario.journal:
            await asyncio.gather(*(self._journal(s, day, today[s]) for s in self.students))
        for student in self.students:
            values = self.state[student].as_dict()
            for name in STATE_VARIABLES:
                self.record_state(student, name, float(values[name]), source="rule", t=day)
            self._diary(student, day, today[student])
        due = [s for s in self.students if self.day_rng.random() < self.scenario.ema_rate]
        # EMAs and interviews change nothing, so they need not hold up tomorrow: each is
        # asked from a memory snapshot taken now and runs while the next day's
        # conversations do (the server gets both at once). ``finish`` waits for them.
        asks = [self._ema(s, day, self._recent(s, self.scenario.ema_window)) for s in due]
        asks += self._interviews(day)
        if asks:
            self._pending.append(asyncio.gather(*asks))
        return {"day": day + 1}

    # -- the day's parts --------------------------------------------------------------------

    async def _conversations(self, day: int) -> dict[str, list[float]]:
        rng = random.Random(derive_seed(self.seed, "conversations", day))
        pairs: list[tuple[str, str]] = []
        busy: set[str] = set()
        edges = sorted(tuple(sorted(map(str, e))) for e in self.graph.edges) if self.graph else []
        rng.shuffle(edges)
        rate = self.scenario.conversations
        for a, b in edges:
            if a in busy or b in busy:
                continue
            sociability = (self.traits[a].get("E", 3.0) + self.traits[b].get("E", 3.0)) / 6.0
            degree = max(1, (self.graph.degree(a) + self.graph.degree(b)) / 2) if self.graph else 1
            if rng.random() < min(1.0, 2 * rate * sociability / degree):
                pairs.append((a, b) if rng.random() < 0.5 else (b, a))
                busy |= {a, b}
        out: dict[str, list[float]] = {}
        results = await asyncio.gather(*(self._talk(a, b, day) for a, b in pairs))
        for (a, b), (va, vb) in zip(pairs, results, strict=True):
            out.setdefault(a, []).append(va)
            out.setdefault(b, []).append(vb)
        return out

    async def _talk(self, a: str, b: str, day: int) -> tuple[float, float]:
        cue = f"You run into {b} on day {day + 1} of term. Start a short conversation (one or two sentences)."
        await self._say(a, b, day, cue)
        await self._say(b, a, day, f"{a} just spoke to you. Reply in one or two sentences.")
        return await asyncio.gather(self._valence(a, b, day), self._valence(b, a, day))

    async def _say(self, name: str, other: str, day: int, cue: str) -> Utterance:
        agent = self.agents[name]
        step = self._step
        completion, call_id = await self.call(
            name,
            agent.messages(cue),
            purpose="peer",
            step=step,
            seed=derive_seed(self.seed, "peer", name, day, step),
            max_tokens=self.scenario.max_tokens,
            temperature=self.scenario.temperature,
            top_p=self.scenario.top_p,
        )
        self._step += 1
        return self.hear_reply(
            name, completion, call_id, session=day, step=step, others=[other], heard=[name, other]
        )

    async def _valence(self, name: str, other: str, day: int) -> float:
        from personae.measures.administer import parse_answer

        options = "\n".join(f"{i}. {label}" for i, label in enumerate(VALENCE, 1))
        raw = await self.ask(
            name,
            f"How did your conversation with {other} just now make you feel?\n{options}\n"
            "Answer with the number only.",
            purpose="interaction",
            max_tokens=4,
            response_format={"type": "choice", "choices": ["1", "2", "3", "4", "5"]},
            step=day,
        )
        parsed = parse_answer(raw, VALENCE)
        valence = 0.0 if parsed.position is None else (parsed.position - 3) / 2
        self.record_state(
            name, "interaction", valence, text=f"{other}: {raw}", source="peer", t=day
        )
        return valence

    def _diary(self, student: str, day: int, row: Mapping[str, Any]) -> None:
        self.agents[student].memory.add(
            Utterance(
                "Diary",
                diary_line(
                    day, row, self.events.get((student, day), {}), self.state[student].as_dict()
                ),
                day,
                self._step,
            )
        )

    def _recent(self, student: str, count: int | None) -> Any:
        """A snapshot of the student's memory keeping only the latest ``count`` entries."""
        snapshot = self.agents[student].memory.snapshot()
        if count is not None:
            del snapshot.entries[:-count]
        return snapshot

    async def _ema(self, student: str, day: int, memory: Any) -> None:
        from personae.environments.ema import (
            COHORT_EMA,
            COHORT_SOURCE,
            checkin_question,
            checkin_schema,
        )

        raw = await self.ask(
            student,
            checkin_question(COHORT_EMA),
            purpose="ema",
            max_tokens=48,
            response_format={"type": "json", "schema": checkin_schema(COHORT_EMA)},
            memory=memory,
            step=day,
        )
        answers = _json_object(raw)
        # Each item declares the period it asks about (personae.environments.ema), which
        # the analysis follows when pairing answers with sensing days.
        for item in COHORT_EMA:
            value, label = item.read(answers.get(item.field))
            self.record_state(
                student, item.variable, value, text=label or raw, source=COHORT_SOURCE, t=day
            )

    async def _journal(self, student: str, day: int, row: Mapping[str, Any]) -> None:
        text = await self.ask(
            student,
            "Write a short journal entry (two or three sentences) about your day.",
            purpose="journal",
            max_tokens=96,
            temperature=self.scenario.temperature,
            step=day,
        )
        self.record_state(student, "journal", None, text=text, source="llm", t=day)
        current = self.state[student].as_dict()
        schema = {
            "type": "object",
            "properties": {
                k: {"type": "integer", "minimum": -20, "maximum": 20}
                for k in ("stress", "mood", "energy", "connectedness")
            },
            "required": ["stress", "mood", "energy", "connectedness"],
            "additionalProperties": False,
        }
        raw = await self.ask(
            student,
            f'Here is the journal entry you just wrote: "{text}"\n'
            f"Your current levels (0-100): stress {current['stress']:.0f}, mood {current['mood']:.0f}, "
            f"energy {current['energy']:.0f}, connectedness {current['connectedness']:.0f}.\n"
            "By how much did today change each level (-20 to 20)? Reply in JSON.",
            purpose="journal-state",
            max_tokens=64,
            response_format={"type": "json", "schema": schema},
            step=day,
        )
        deltas = _json_object(raw)
        changes = {
            k: _number(deltas.get(k), -20, 20)
            for k in ("stress", "mood", "energy", "connectedness")
        }
        self.state[student] = adjusted(
            self.state[student], {k: v for k, v in changes.items() if v is not None}
        )
        for k, v in changes.items():
            self.record_state(student, f"llm_delta:{k}", v, text=raw, source="llm", t=day)

    def _interviews(self, day: int) -> list[Coroutine[Any, Any, None]]:
        """The day's interviews, each with the student's memory as it is now."""
        asked = [
            (i, s)
            for i in self.scenario.interviews
            if i.day == day
            for s in (i.who or self.students)
            if s in self.students
        ]

        async def one(interview: Interview, student: str, memory: Any) -> None:
            answer = await self.ask(
                student,
                interview.question,
                purpose="interview",
                max_tokens=96,
                temperature=self.scenario.temperature,
                memory=memory,
                step=day,
            )
            self.record_state(
                student,
                "interview",
                None,
                text=f"Q: {interview.question}\nA: {answer}",
                source="interview",
                t=day,
            )

        return [one(i, s, self._recent(s, None)) for i, s in asked]


def diary_line(
    day: int, row: Mapping[str, Any], events: Mapping[str, Any], state: Mapping[str, float]
) -> str:
    """The day as the student remembers it: what the phone saw, what was due, how it felt."""
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


def _features() -> tuple[str, ...]:
    from personae.environments.sensing import FEATURES

    return FEATURES


def pl_col(name: str) -> Any:
    import polars as pl

    return pl.col(name)


def _by_student_day(features: pl.DataFrame) -> dict[tuple[str, int], dict[str, Any]]:
    return {(r["student"], int(r["day"])): r for r in features.iter_rows(named=True)}


def _json_object(raw: str) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError:
        start, end = raw.find("{"), raw.rfind("}")
        try:
            data = json.loads(raw[start : end + 1]) if start >= 0 < end else {}
        except ValueError:
            data = {}
    return data if isinstance(data, dict) else {}


def _number(value: Any, low: float, high: float) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if low <= number <= high else None


def students(n: int) -> tuple[Any, ...]:
    """Placeholder students ``Student 1`` ... ``Student n`` (replaced per episode by draws)."""
    from personae.agents.persona import Persona

    return tuple(Persona(name=f"Student {i + 1}", role="student") for i in range(n))


__all__ = ["Cohort", "CohortEpisode", "Interview", "Sensing", "diary_line", "students"]
