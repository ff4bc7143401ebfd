r"""The cohort's day loop: a sibling of the conversation loop on the same episode core.

::

    START -> begin (start probes) -> day --(more days)--> day
                                         \--(last day, or a monitor stopped it)--> finish -> END

A :class:`CohortEpisode` is an :class:`~personae.engine.episode.Episode` (agents,
model calls, speaking, asking, states, probes, the sink) plus one prepared term
(:func:`~personae.studies.cohort.term.prepare.prepare_term`) and each student's
mental state. Each day, for every student at once: **sense** (record the day's
features), **converse** (pairs of neighbours talk through
:meth:`~personae.engine.episode.Episode.speak` and rate how it felt), **apply
the rule** (and the journal step, if on), **write the diary**; then the day's
``"tick"`` probes start (the EMA and interviews of
:mod:`personae.studies.cohort.asks`, and the scenario's own).

Tick probes change nothing, so they need not hold up tomorrow: each day's run
while the next day's conversations do (the server gets both at once), from the
students' memories as they were at the end of their day (:meth:`CohortEpisode.memory_on`).
The end probes wait for all of them. The calls and their seeds are the same
whatever the timing, so the same seed gives the same rows.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, TypedDict

import polars as pl
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from personae.agents.memory import Memory, Utterance
from personae.engine.episode import Episode, EpisodeResult
from personae.engine.probes import ProbePoint
from personae.errors import ConfigError
from personae.seeds import derive_seed
from personae.studies.cohort.scenario import Cohort, diary_line
from personae.studies.cohort.talk import converse, journal
from personae.studies.cohort.term.mental_state import STATE_VARIABLES
from personae.studies.cohort.term.prepare import prepare_term
from personae.studies.cohort.term.schema import FEATURES

if TYPE_CHECKING:
    from personae.engine.sink import EpisodeLog
    from personae.llm.base import ChatModel

__all__ = ["CohortEpisode", "DayState", "build_graph", "load_term"]


class DayState(TypedDict):
    """The graph state: the next day to run; the term lives in the episode."""

    day: int


def build_graph(cohort: Cohort) -> StateGraph[Any, Any, Any, Any]:
    """The day loop's graph; its run-time context is a :class:`CohortEpisode`."""
    graph: StateGraph[Any, Any, Any, Any] = StateGraph(DayState, context_schema=CohortEpisode)
    graph.add_node("begin", _begin)
    graph.add_node("day", _day)
    graph.add_node("finish", _finish)
    graph.add_edge(START, "begin")
    graph.add_conditional_edges("begin", _next, ["day", "finish"])
    graph.add_conditional_edges("day", _next, ["day", "finish"])
    graph.add_edge("finish", END)
    return graph


async def _begin(state: DayState, runtime: Runtime[Any]) -> dict[str, Any]:
    await runtime.context.probe_at(_point("start", 0))
    return {"day": 0}


async def _day(state: DayState, runtime: Runtime[Any]) -> dict[str, Any]:
    return await runtime.context.run_day(state["day"])


async def _finish(state: DayState, runtime: Runtime[Any]) -> dict[str, Any]:
    episode = runtime.context
    await asyncio.gather(episode.probe_at(_point("end", state["day"])), episode.drain())
    return {}


async def _next(state: DayState, runtime: Runtime[Any]) -> str:
    episode = runtime.context
    more = state["day"] < episode.scenario.days and episode.stopped is None
    return "day" if more else "finish"


def _point(moment: Any, day: int) -> ProbePoint:
    return ProbePoint(moment=moment, session=day, turn=0, step=day)


class CohortEpisode(Episode):
    """One cohort run once: its term, states, conversations and answers.

    Attributes:
        students: The students' names, in scenario order.
        term: The prepared term (features, events and traits by student-day).
        state: Each student's mental state at the end of the last day run.
        assignment: Who is treated by which intervention.
    """

    scenario: Cohort

    def __init__(
        self, scenario: Cohort, model: ChatModel, *, seed: int, log: EpisodeLog | None = None
    ) -> None:
        super().__init__(scenario, model, seed=seed, log=log)
        cohort = self.scenario
        self.students = [p.name for p in cohort.agents if p.role == "student"]
        traits = {p.name: dict(p.big_five) for p in cohort.agents if p.role == "student"}
        features, calendar = load_term(cohort, self.students, seed)
        self.term = prepare_term(
            cohort.rule,
            features,
            calendar,
            traits,
            list(cohort.interventions),
            students=self.students,
            seed=derive_seed(seed, "interventions"),
        )
        self.assignment = self.term.assignment
        self._expose()
        self.state = {s: self.term.initial_state(s) for s in self.students}
        self.asks = cohort.asks()
        self._step = 0  # utterances so far: the step of peer talk and diary lines
        self._pending: list[asyncio.Future[Any]] = []
        self._evenings: dict[int, dict[str, Memory]] = {}
        starts = {i.name: i.start_day for i in cohort.interventions}
        for row in self.assignment.iter_rows(named=True):
            self.record_state(
                row["student"],
                f"treated:{row['intervention']}",
                float(bool(row["treated"])),
                source="intervention",
                t=starts.get(row["intervention"], 0),
            )

    async def run(self) -> EpisodeResult:
        """Run the term; tick probes still in flight after a failure are cancelled."""
        try:
            state = await self._compiled_from.compiled.ainvoke(
                self.scenario.graph_input(),
                context=self,
                config={"recursion_limit": self.scenario.recursion_limit()},
            )
        finally:
            for pending in self._pending:  # only left after a failure
                pending.cancel()
            if self._pending:
                await asyncio.gather(*self._pending, return_exceptions=True)
        return EpisodeResult(
            transcript=tuple(self.transcript),
            end_reason=self.stopped or f"days({state['day']})",
            calls=self.calls,
            completion_tokens=self.completion_tokens,
        )

    async def run_day(self, day: int) -> dict[str, Any]:
        """One day for every student at once: sense, converse, apply the rule, write the diary."""
        for student in self.students:
            row = self.term.features_on(student, day)
            for name in FEATURES:
                if row.get(name) is not None:
                    value = float(row[name])
                    self.record_state(student, f"feature:{name}", value, source="sensing", t=day)
        interactions = await converse(self, day, first_step=self._step)
        self._step += sum(map(len, interactions.values()))  # two utterances a pair
        for student in self.students:
            self.state[student] = self.term.step(
                self.state[student], student, day, interactions.get(student, [])
            )
        if self.scenario.journal:
            await asyncio.gather(*(journal(self, s, day) for s in self.students))
        for student in self.students:
            values = self.state[student].as_dict()
            for name in STATE_VARIABLES:
                self.record_state(student, name, float(values[name]), source="rule", t=day)
            line = diary_line(
                day,
                self.term.features_on(student, day),
                self.term.events_on(student, day),
                values,
            )
            self.agents[student].memory.add(Utterance("Diary", line, day, self._step))
        self._evening(day)
        return {"day": day + 1}

    async def drain(self) -> None:
        """Wait for every day's tick probes still in flight."""
        while self._pending:
            await self._pending.pop(0)

    # -- memories at the end of a day ---------------------------------------------------------

    def memory_on(
        self, name: str, day: int, window: int | None = None, *, today: bool = False
    ) -> Memory:
        """``name``'s memory as it was at the end of ``day`` (as it is now, if that is later).

        Args:
            name: A participant.
            day: A day whose tick probes may still be running.
            window: Keep only the latest this many entries; None keeps all.
            today: Keep only the entries of ``day`` itself (its diary line and talk).
        """
        kept = self._evenings.get(day, {}).get(name)
        snapshot = (kept or self.agents[name].memory).snapshot()
        if today:
            snapshot.entries[:] = [e for e in snapshot.entries if e.session == day]
        if window is not None:
            del snapshot.entries[:-window]
        return snapshot

    async def ask_recorded(
        self, name: str, question: str, *, memory: Memory | None = None, **options: Any
    ) -> tuple[str, int]:
        """Like :meth:`Episode.ask_recorded`, but about a day whose tick probes are running.

        An ask with ``step`` = such a day and no ``memory`` answers from the
        memory the student had at the end of that day (:meth:`memory_on`), not
        from what the next day has added since; any probe at ``"tick"`` asks so.
        """
        if memory is None and options.get("step") in self._evenings:
            memory = self.memory_on(name, options["step"])
        return await super().ask_recorded(name, question, memory=memory, **options)

    def _evening(self, day: int) -> None:
        """Keep the day's memories and start its tick probes, which run while tomorrow goes on."""
        point = _point("tick", day)
        due = [p for p in (*self.scenario.probes, *self.asks) if p.due(point)]
        if not due:
            return
        self._evenings[day] = {s: self.agents[s].memory.snapshot() for s in self.students}

        async def tick() -> None:
            try:
                await asyncio.gather(
                    self.probe_at(point), *(ask(self, point) for ask in self.asks if ask.due(point))
                )
            finally:
                del self._evenings[day]

        self._pending.append(asyncio.ensure_future(tick()))

    def _expose(self) -> None:
        """Draw the term's social-media exposures; their effects join the day's events."""
        feed = self.scenario.feed
        if feed is None or feed.rate <= 0:
            return
        from personae.studies.cohort.term.media import add_exposures

        graph = self.graph

        def neighbours(student: str) -> list[str]:
            return sorted(map(str, graph.neighbors(student))) if graph and student in graph else []

        exposures = feed.draw(
            self.students, self.scenario.days, derive_seed(self.seed, "feed"), neighbours
        )
        self.term = self.term.with_events(add_exposures(self.term.events, exposures))
        for row in exposures.iter_rows(named=True):
            text = f"{row['kind']}: {row['text']}"
            self.record_state(
                row["student"], "media", 1.0, text=text, source="media", t=int(row["day"])
            )


def load_term(cohort: Cohort, students: list[str], seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The cohort's daily features and calendar for ``days``, named after its students.

    The source's student ids (``u00``, ``u01``, ...) become the students' names,
    in order. A synthetic term is drawn from the personas and ``seed``.

    Raises:
        ConfigError: A StudentLife source has no ``path``.
    """
    sensing, days = cohort.sensing, cohort.days
    source: Any
    if sensing.source == "studentlife":
        from personae.studies.cohort.term.studentlife import StudentLife

        if not sensing.path:
            raise ConfigError("sensing source 'studentlife' needs path= the dataset folder")
        source = StudentLife(sensing.path)
    else:
        from personae.studies.cohort.term.calendar import Term
        from personae.studies.cohort.term.synthetic import SyntheticTerm

        personas = [p for p in cohort.agents if p.role == "student"]
        source = SyntheticTerm.from_personas(
            personas, term=Term(n_days=days), seed=derive_seed(seed, "sensing")
        )
    mapping = dict(zip(source.students(), students, strict=False))
    features = source.features().filter(pl.col("student").is_in(list(mapping)))
    features = features.with_columns(pl.col("student").replace(mapping))
    calendar = source.calendar()
    return features.filter(pl.col("day") < days), calendar.filter(pl.col("day") < days)
