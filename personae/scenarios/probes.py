"""Probes: code that runs at chosen points of an episode and writes rows.

A probe sees the episode through :class:`personae.scenarios.episode.Episode`
(transcript, personas, memory snapshots) and may ask an agent questions in a
separate context with ``episode.ask``, which never touches the conversation or
the agent's memory. It records what it measures with ``episode.record_state``.
The psychometric instruments build on this hook.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

if TYPE_CHECKING:
    from personae.scenarios.episode import Episode

Moment = Literal["start", "end", "session_start", "session_end", "turn"]
ProbeFn = Callable[["Episode", "ProbePoint"], Awaitable[None] | None]


class ProbePoint(BaseModel):
    """Where in the episode a probe is running."""

    model_config = ConfigDict(frozen=True)
    moment: Moment
    session: int
    turn: int
    step: int


class Probe(BaseModel):
    """Run ``fn(episode, point)`` at chosen points.

    Args:
        fn: Sync or async callable receiving the episode and the :class:`ProbePoint`.
        at: Any of ``"start"`` (before the first utterance), ``"end"`` (after the
            last), ``"session_start"``, ``"session_end"``.
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
    at: tuple[Literal["start", "end", "session_start", "session_end"], ...] = ()
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
        check = getattr(self.fn, "check", None)
        if callable(check):
            check(names, roles)

    def describe(self) -> dict[str, Any]:
        """A JSON-able description, part of the experiment's configuration."""
        describe = getattr(self.fn, "describe", None)
        fn = describe() if callable(describe) else _fn_name(self.fn)
        return {"fn": fn, "at": list(self.at), "every": self.every}

    def due(self, point: ProbePoint) -> bool:
        """Whether the probe runs at ``point``."""
        if point.moment == "turn":
            return self.every is not None and point.turn > 0 and point.turn % self.every == 0
        return point.moment in self.at

    async def __call__(self, episode: Episode, point: ProbePoint) -> None:
        result = self.fn(episode, point)
        if inspect.isawaitable(result):
            await result

    def label(self) -> str:
        return self.name or getattr(self.fn, "__qualname__", repr(self.fn))


def _is_instrument(value: Any) -> bool:
    from personae.measures.instruments import Instrument

    return isinstance(value, Instrument)


def _fn_name(fn: Any) -> str:
    return f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', repr(fn))}"


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(x) for x in err.get("loc", ()))
    return f"{where}: {err.get('msg', '')}" if where else str(err.get("msg", exc))
