"""Probes: code that runs at chosen points of an episode; monitors: probes that may act.

A probe's function is a :class:`Measure`: ``fn(episode, point)``, sync or
async. It sees the episode through the small surface :class:`ProbeContext`
documents (who takes part, the transcript, the states recorded so far, and
ways to ask and record) and may ask an agent questions in a separate context
with ``episode.ask``, which never touches the conversation or the agent's
memory. It records what it measures with ``episode.record_state``. The
psychometric instruments (:class:`~personae.measures.administer.Questionnaire`,
:class:`~personae.measures.judge.Judge`, :class:`~personae.measures.stance.Stance`)
are measures.

A :class:`Monitor` is a probe whose function may also return actions:
:class:`Stop` ends the episode, :class:`Cue` adds an instruction to a
speaker's next turn. The episode applies them once every probe due at that
point has finished, so always between turns, never in the middle of one.

Moments (:data:`Moment`): ``"start"`` and ``"end"`` of the episode,
``"session_start"`` and ``"session_end"`` of a conversation's session,
``"turn"`` after an utterance (probes with ``every=``), and ``"tick"``, once
per simulated day or tick of a loop that has a clock (``point.step`` is the
tick number). Which moments a scenario fires is ``Scenario.moments``.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, ValidationError

if TYPE_CHECKING:
    from personae.agents.agent import Agent
    from personae.agents.memory import Memory, Utterance
    from personae.engine.episode import Episode
    from personae.engine.sink import EpisodeSink
    from personae.engine.view import Observation
    from personae.llm.base import Completion, Message
    from personae.llm.structured import StructuredOutput

__all__ = [
    "Action",
    "Cue",
    "Measure",
    "Moment",
    "Monitor",
    "Probe",
    "ProbeContext",
    "ProbeFn",
    "ProbePoint",
    "Stop",
]

Moment = Literal["start", "end", "session_start", "session_end", "turn", "tick"]
#: The moments a probe may name in ``at`` (``"turn"`` is reached with ``every=``).
AtMoment = Literal["start", "end", "session_start", "session_end", "tick"]
ProbeFn = Callable[["Episode", "ProbePoint"], Awaitable[Any] | Any]


class ProbePoint(BaseModel):
    """Where in the episode a probe is running.

    Attributes:
        moment: Which moment (see :data:`Moment`).
        session: The conversation's session (a day loop: the day).
        turn: Utterances so far in this session (0 outside a conversation).
        step: Utterances so far in the episode (a day loop: the tick number).
    """

    model_config = ConfigDict(frozen=True)
    moment: Moment
    session: int
    turn: int
    step: int


@runtime_checkable
class ProbeContext(Protocol):
    """What a probe may use of the episode; the engine keeps these stable.

    :class:`~personae.engine.episode.Episode` provides them. Anything else on
    the episode is the loop's own business and may change.

    Attributes:
        scenario: The scenario, this episode's parameters applied.
        seed: The episode seed; derive a probe's own seeds from it.
        names: Participant names in scenario order.
        roles: Role of each participant, by name.
        params: The episode's free parameters.
        agents: The agents by name (persona, memory, prompts), to read.
        agent_ids: Each participant's ``agents`` row id, for rows a probe writes.
        transcript: Every utterance so far.
        log: The sink for rows a probe writes itself (typed records of
            :mod:`personae.store.rows`).
    """

    scenario: Any
    seed: int
    names: tuple[str, ...]
    roles: dict[str, str]
    agents: Mapping[str, Agent]
    agent_ids: dict[str, int]
    transcript: list[Utterance]
    log: EpisodeSink

    @property
    def params(self) -> Mapping[str, Any]: ...

    async def ask(
        self,
        name: str,
        question: str,
        *,
        purpose: str,
        max_tokens: int = 64,
        temperature: float = 0.0,
        response_format: StructuredOutput | Mapping[str, Any] | None = None,
        memory: Memory | None = None,
        step: int | None = None,
    ) -> str:
        """Ask ``name`` outside the conversation; see :meth:`Episode.ask`."""
        ...

    async def ask_recorded(
        self,
        name: str,
        question: str,
        *,
        purpose: str,
        max_tokens: int = 64,
        temperature: float = 0.0,
        response_format: StructuredOutput | Mapping[str, Any] | None = None,
        memory: Memory | None = None,
        step: int | None = None,
    ) -> tuple[str, int]:
        """Like ``ask``, with the ``llm_calls`` row id."""
        ...

    async def call(
        self,
        name: str,
        messages: list[Message],
        *,
        purpose: str,
        step: int,
        seed: int,
        model: Any = None,
        **sampling: Any,
    ) -> tuple[Completion, int]:
        """Send any messages on ``name``'s account; see :meth:`Episode.call`."""
        ...

    def record_state(
        self,
        name: str | None,
        variable: str,
        value: float | None = None,
        *,
        text: str | None = None,
        source: str = "scenario",
        t: int | None = None,
        session: int | None = None,
    ) -> None:
        """Write one observation to ``states``; see :meth:`Episode.record_state`."""
        ...

    def states(
        self, variable: str | None = None, *, agent: str | None = None, source: str | None = None
    ) -> tuple[Observation, ...]:
        """The states recorded so far; see :meth:`Episode.states`."""
        ...

    def next_occasion(self, name: str, key: str) -> int:
        """Count administrations of ``key`` to ``name``: 0, 1, 2, ..."""
        ...


@runtime_checkable
class Measure(Protocol):
    """A probe's function: ``measure(episode, point)``, sync or async.

    It may also have (all optional, found by the engine when present):

    - ``check(names, roles)``: raise :class:`~personae.errors.ConfigError` to
      refuse a scenario it cannot run in (e.g. an unknown respondent);
    - ``describe() -> dict``: its JSON-ready description, stored with the experiment;
    - ``name``: a label for messages (a probe's ``name`` defaults to it).

    A plain function is a Measure. A :class:`Monitor`'s measure may return
    actions (:class:`Stop`, :class:`Cue`, a sequence of them, or None); a
    plain probe's return value is ignored.
    """

    def __call__(self, episode: Episode, point: ProbePoint, /) -> Awaitable[Any] | Any: ...


@runtime_checkable
class _Checks(Protocol):
    def check(self, names: Sequence[str], roles: Mapping[str, str]) -> None: ...


@runtime_checkable
class _Describes(Protocol):
    def describe(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Stop:
    """A monitor's action: end the episode now, for ``reason``.

    The episode finishes the current point's probes, runs its end-of-session
    and end probes, and stops; ``EpisodeResult.end_reason`` (and
    ``episodes.end_reason``) is ``"monitor(<monitor name>): <reason>"``, and a
    ``states`` row (``variable="stop"``, ``source="monitor"``, ``text=reason``)
    records when it happened.
    """

    reason: str


@dataclass(frozen=True, slots=True)
class Cue:
    """A monitor's action: add ``text`` to ``speaker``'s next turn only.

    ``speaker`` is a participant's name or a role held by one participant.
    The cue is appended to the scenario's own cue for that turn, and recorded
    as a ``states`` row (``variable="cue"``, ``source="monitor"``).
    """

    speaker: str
    text: str


Action = Stop | Cue


class Probe(BaseModel):
    """Run ``fn(episode, point)`` at chosen points.

    Args:
        fn: A :class:`Measure`: sync or async callable receiving the episode and
            the :class:`ProbePoint`.
        at: Any of ``"start"`` (before the first utterance), ``"end"`` (after the
            last), ``"session_start"``, ``"session_end"`` (a conversation's
            sessions) and ``"tick"`` (each tick of a loop with a clock, such as
            the cohort's days). A moment the scenario never fires is refused.
        every: Also run after every ``every`` utterances of a session.
        name: A label for error messages and the docs.

    Example:
        >>> async def mood(episode, point):  # doctest: +SKIP
        ...     answer = await episode.ask("Sam", "How do you feel, 1-5?", purpose="mood")
        ...     episode.record_state("Sam", "mood", text=answer, source="probe")
        >>> Probe(mood, at=["start", "end"], every=4)  # doctest: +SKIP
    """

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)
    fn: Callable[..., Any]
    at: tuple[AtMoment, ...] = ()
    every: int | None = Field(default=None, ge=1)
    name: str = ""

    def __init__(self, fn: Any = None, **data: Any) -> None:
        if isinstance(data.get("at"), str):
            data["at"] = (data["at"],)
        fn = data.pop("fn", fn)
        if (fn is not None and not callable(fn)) or _is_instrument(fn):
            from personae.measures.administer import Questionnaire

            settings = {k: data.pop(k) for k in list(data) if k in Questionnaire.model_fields}
            try:
                fn = Questionnaire(instrument=fn, **settings)
            except ValidationError as exc:
                raise ValueError(_first_error(exc)) from None
            data.setdefault("name", fn.name)
        super().__init__(**({"fn": fn} if fn is not None else {}), **data)

    def check(self, names: Sequence[str], roles: Mapping[str, str]) -> None:
        """Let the probe refuse a scenario it cannot run in (e.g. an unknown respondent)."""
        if isinstance(self.fn, _Checks):
            self.fn.check(names, roles)

    def describe(self) -> dict[str, Any]:
        """A JSON-able description, part of the experiment's configuration."""
        fn = self.fn.describe() if isinstance(self.fn, _Describes) else _fn_name(self.fn)
        return {"fn": fn, "at": list(self.at), "every": self.every}

    def due(self, point: ProbePoint) -> bool:
        """Whether the probe runs at ``point``."""
        if point.moment == "turn":
            return self.every is not None and point.turn > 0 and point.turn % self.every == 0
        return point.moment in self.at

    async def __call__(self, episode: Episode, point: ProbePoint) -> Any:
        result = self.fn(episode, point)
        if inspect.isawaitable(result):
            result = await result
        return result

    def actions(self, result: Any) -> tuple[Action, ...]:
        """The actions in what ``fn`` returned: none, for a plain probe."""
        return ()

    def label(self) -> str:
        """The probe's name, or its function's."""
        return self.name or getattr(self.fn, "__qualname__", repr(self.fn))


class Monitor(Probe):
    """A probe that may act: its function returns :class:`Stop`, :class:`Cue`, several, or None.

    Args are :class:`Probe`'s; ``every=1`` runs it after every utterance. A
    monitor should not speak for an agent; it watches (the transcript, the
    states recorded so far, its own questions through ``episode.ask``) and
    decides. Actions are applied between turns, after every probe due at that
    point has finished; see :meth:`personae.engine.episode.Episode.apply`.

    Example:
        >>> def risk(episode, point):  # doctest: +SKIP
        ...     last = episode.transcript[-1]
        ...     if "hopeless" in last.text.lower():
        ...         return Stop("risk: hopelessness")
        >>> Monitor(risk, every=1, name="risk")  # doctest: +SKIP
    """

    def describe(self) -> dict[str, Any]:
        """A JSON-able description, marked as a monitor."""
        return {**super().describe(), "monitor": True}

    def actions(self, result: Any) -> tuple[Action, ...]:
        """The actions in what ``fn`` returned.

        Raises:
            TypeError: ``fn`` returned something other than actions or None.
        """
        if result is None:
            return ()
        items = tuple(result) if isinstance(result, list | tuple) else (result,)
        wrong = [a for a in items if not isinstance(a, Stop | Cue)]
        if wrong:
            raise TypeError(
                f"monitor {self.label()!r} returned {wrong[0]!r}; a monitor returns "
                "Stop(reason), Cue(speaker, text), a list of them, or None"
            )
        return items


def _is_instrument(value: Any) -> bool:
    from personae.measures.instruments import Instrument

    return isinstance(value, Instrument)


def _fn_name(fn: Any) -> str:
    return f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', repr(fn))}"


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(x) for x in err.get("loc", ()))
    return f"{where}: {err.get('msg', '')}" if where else str(err.get("msg", exc))
