"""Probes: code that runs at chosen points of an episode and writes rows.

A probe sees the episode through :class:`personae.scenarios.episode.Episode`
(transcript, personas, memory snapshots) and may ask an agent questions in a
separate context with ``episode.ask``, which never touches the conversation or
the agent's memory. It records what it measures with ``episode.record_state``.
The psychometric instruments build on this hook.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

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

    def __init__(self, fn: ProbeFn | None = None, **data: Any) -> None:
        if isinstance(data.get("at"), str):
            data["at"] = (data["at"],)
        super().__init__(**({"fn": fn} if fn is not None else {}), **data)

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
