"""Turn-taking policies: who speaks next.

Each policy is a small frozen pydantic model. ``choose`` sees a
:class:`TurnView`; the moderator policy also asks a model, so the engine
always calls the async ``achoose``.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from personae.engine.view import TurnView
from personae.errors import ConfigError
from personae.llm.structured import Choice

if TYPE_CHECKING:
    from personae.engine.episode import Episode


class TurnPolicy(BaseModel):
    """Base of turn-taking policies."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def check(self, names: tuple[str, ...]) -> None:
        """Raise ConfigError if the policy names someone not in the scenario."""

    def choose(self, view: TurnView) -> str:
        """Return the name of the next speaker."""
        raise NotImplementedError

    async def achoose(self, view: TurnView, episode: Episode) -> str:
        """Async form used by the engine; defaults to :meth:`choose`."""
        return self.choose(view)


def _after(names: tuple[str, ...], last: str | None) -> str:
    if last is None or last not in names:
        return names[0]
    return names[(names.index(last) + 1) % len(names)]


class RoundRobin(TurnPolicy):
    """Everyone in turn, in scenario order (or ``order``), continuing after the last speaker."""

    kind: Literal["round_robin"] = "round_robin"
    order: tuple[str, ...] | None = None

    def check(self, names: tuple[str, ...]) -> None:
        _check_names(self.order or (), names, "RoundRobin.order")

    def choose(self, view: TurnView) -> str:
        order = self.order or view.names
        return _after(order, view.last.speaker if view.last else None)


class Script(TurnPolicy):
    """A fixed speaking order, repeated from the start when it runs out."""

    kind: Literal["script"] = "script"
    order: tuple[str, ...] = Field(min_length=1)

    def check(self, names: tuple[str, ...]) -> None:
        _check_names(self.order, names, "Script.order")

    def choose(self, view: TurnView) -> str:
        return self.order[view.turn % len(self.order)]


class RandomOrder(TurnPolicy):
    """A random participant each turn, from the episode's seeded generator.

    Args:
        allow_repeat: Whether the last speaker may speak again at once.
    """

    kind: Literal["random"] = "random"
    allow_repeat: bool = False

    def choose(self, view: TurnView) -> str:
        pool = list(view.names)
        if not self.allow_repeat and view.last is not None and len(pool) > 1:
            pool.remove(view.last.speaker)
        return view.rng.choice(pool)


class Moderated(TurnPolicy):
    """A moderator agent picks the next speaker by name.

    The moderator answers in a separate context (never part of the
    conversation); its call is recorded with purpose ``"moderator"``. If its
    answer names nobody, the turn falls back to round robin and the raw answer
    is recorded in ``states`` as ``moderator_unparsed``.

    Args:
        moderator: Name of the agent that moderates (it may also take part).
        candidates: Who may be chosen; default everyone but the moderator.
    """

    kind: Literal["moderated"] = "moderated"
    moderator: str
    candidates: tuple[str, ...] | None = None

    def check(self, names: tuple[str, ...]) -> None:
        _check_names((self.moderator, *(self.candidates or ())), names, "Moderated")

    def pool(self, view: TurnView) -> tuple[str, ...]:
        if self.candidates:
            return self.candidates
        return tuple(n for n in view.names if n != self.moderator) or view.names

    async def achoose(self, view: TurnView, episode: Episode) -> str:
        pool = self.pool(view)
        question = (
            "You are moderating this conversation. Who should speak next? "
            f"Answer with exactly one name from: {', '.join(pool)}."
        )
        answer = await episode.ask(
            self.moderator,
            question,
            purpose="moderator",
            max_tokens=12,
            temperature=0.0,
            response_format=Choice(list(pool)),
        )
        for name in sorted(pool, key=len, reverse=True):
            if re.search(rf"\b{re.escape(name)}\b", answer, re.IGNORECASE):
                return name
        episode.record_state(self.moderator, "moderator_unparsed", text=answer, source="moderator")
        return _after(pool, view.last.speaker if view.last else None)


class ActivityWeighted(TurnPolicy):
    """A random participant each turn, drawn with weights: some people talk more.

    Args:
        weights: Weight per name; absent names weigh 1. Default: each persona's
            extraversion target (3 when unset), so extraverts speak more.
        momentum: Add this much weight per utterance already made in the
            session (rich get richer); 0 turns it off.
        allow_repeat: Whether the last speaker may speak again at once.
    """

    kind: Literal["activity"] = "activity"
    weights: dict[str, float] | None = None
    momentum: float = Field(default=0.0, ge=0.0)
    allow_repeat: bool = False

    def check(self, names: tuple[str, ...]) -> None:
        _check_names(tuple(self.weights or ()), names, "ActivityWeighted.weights")
        if self.weights and any(w < 0 for w in self.weights.values()):
            raise ConfigError("ActivityWeighted.weights must not be negative")

    async def achoose(self, view: TurnView, episode: Episode) -> str:
        base = self.weights or {p.name: p.big_five.get("E", 3.0) for p in episode.scenario.agents}
        spoken = Counter(u.speaker for u in view.history)
        pool = [
            n
            for n in view.names
            if self.allow_repeat or view.last is None or n != view.last.speaker
        ]
        pool = pool or list(view.names)
        weights = [base.get(n, 1.0) + self.momentum * spoken[n] for n in pool]
        if sum(weights) <= 0:
            weights = [1.0] * len(pool)
        return view.rng.choices(pool, weights=weights)[0]


class Neighbours(TurnPolicy):
    """Someone who heard the last speaker answers: a random neighbour in the network.

    Falls back to a random participant when there is no last speaker, no
    network, or the last speaker has no neighbours.
    """

    kind: Literal["neighbours"] = "neighbours"

    def choose(self, view: TurnView) -> str:
        graph = view.graph
        last = view.last.speaker if view.last else None
        if graph is not None and last is not None and last in graph:
            near = sorted(str(n) for n in graph.neighbors(last))
            if near:
                return view.rng.choice(near)
        pool = [n for n in view.names if n != last] or list(view.names)
        return view.rng.choice(pool)


def _check_names(used: tuple[str, ...], names: tuple[str, ...], where: str) -> None:
    unknown = [n for n in used if n not in names]
    if unknown:
        raise ConfigError(
            f"{where} names {', '.join(map(repr, unknown))}, who is not in the scenario "
            f"(participants: {', '.join(names)})."
        )
