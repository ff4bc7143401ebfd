"""Stop conditions for a session, composable with ``|`` (either) and ``&`` (both).

Example:
    >>> stop = MaxTurns(16) | Says("goodbye", min_turns=6)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from personae.engine.view import TurnView


class Condition(BaseModel):
    """Base of stop conditions: ``reason(view)`` is a short reason to stop, or None."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    def reason(self, view: TurnView) -> str | None:
        raise NotImplementedError

    def __or__(self, other: Condition) -> Condition:
        return AnyOf(conditions=(self, other))

    def __and__(self, other: Condition) -> Condition:
        return AllOf(conditions=(self, other))


class MaxTurns(Condition):
    """Stop once the session has ``n`` utterances."""

    kind: Literal["max_turns"] = "max_turns"
    n: int = Field(ge=1)

    def __init__(self, n: int | None = None, **data: object) -> None:
        super().__init__(**({"n": n} if n is not None else {}), **data)

    def reason(self, view: TurnView) -> str | None:
        return f"max_turns({self.n})" if view.turn >= self.n else None


class Says(Condition):
    """Stop when the latest utterance matches ``pattern`` (a case-insensitive regex).

    Args:
        pattern: Words or a regular expression, e.g. ``"goodbye|see you"``.
        who: Only utterances by this participant (name or role) count.
        min_turns: Ignore matches before this many utterances in the session
            (no premature closing).
    """

    kind: Literal["says"] = "says"
    pattern: str
    who: str | None = None
    min_turns: int = 0

    def __init__(self, pattern: str | None = None, **data: object) -> None:
        super().__init__(**({"pattern": pattern} if pattern is not None else {}), **data)

    def reason(self, view: TurnView) -> str | None:
        last = view.last
        if last is None or view.turn < self.min_turns:
            return None
        if self.who and self.who not in (last.speaker, view.roles.get(last.speaker)):
            return None
        if re.search(self.pattern, last.text, re.IGNORECASE):
            return f"says({self.pattern})"
        return None


class When(Condition):
    """Stop when ``predicate(view)`` is true."""

    kind: Literal["when"] = "when"
    predicate: Callable[[TurnView], bool]
    label: str = "when"

    def __init__(self, predicate: Callable[[TurnView], bool] | None = None, **data: object) -> None:
        super().__init__(**({"predicate": predicate} if predicate is not None else {}), **data)

    def reason(self, view: TurnView) -> str | None:
        return self.label if self.predicate(view) else None


class AnyOf(Condition):
    """Stop when any of the conditions says so."""

    kind: Literal["any"] = "any"
    conditions: tuple[Condition, ...]

    def reason(self, view: TurnView) -> str | None:
        for c in self.conditions:
            r = c.reason(view)
            if r:
                return r
        return None


class AllOf(Condition):
    """Stop when all the conditions say so."""

    kind: Literal["all"] = "all"
    conditions: tuple[Condition, ...]

    def reason(self, view: TurnView) -> str | None:
        reasons = [c.reason(view) for c in self.conditions]
        return " & ".join(r for r in reasons if r) if all(reasons) else None


class Never(Condition):
    """Never stop early (the scenario's ``max_turns`` still ends each session)."""

    kind: Literal["never"] = "never"

    def reason(self, view: TurnView) -> str | None:
        return None
