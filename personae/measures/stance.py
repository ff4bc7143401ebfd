"""Stance probes: how much does an agent agree with a proposition, right now?

``Probe(Stance("Should ...?", who="participant"), at=["start", "end"])`` asks
each respondent, in a separate context (persona + memory snapshot, never part
of the conversation), to rate its agreement on 1-5 and writes one ``states``
row per answer: ``variable`` (default ``"agreement"``), ``value`` (NULL when
unreadable), ``text`` (the raw answer), ``t`` (utterances so far) and
``source``: ``"pre"`` at the start, ``"post"`` at the end, ``"turn"`` after an
utterance, ``"session_end"`` / ``"session_start"`` otherwise.

The proposition may depend on the episode: pass ``statement`` as a callable of
the episode's parameters (e.g. the topic drawn for it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from personae.llm.base import Choice
from personae.measures.answers import parse_answer, select_agents

if TYPE_CHECKING:
    from personae.engine.episode import Episode
    from personae.engine.probes import ProbePoint

#: The agreement scale, 1 to 5.
AGREEMENT = (
    "Strongly disagree",
    "Disagree",
    "Neither agree nor disagree",
    "Agree",
    "Strongly agree",
)

SOURCES = {"start": "pre", "end": "post", "turn": "turn"}


class Stance(BaseModel):
    """Rate agreement with a proposition on 1-5, as a side-effect-free probe.

    Args:
        statement: The proposition, or ``statement(params) -> str`` for one that
            depends on the episode's parameters.
        who: Names or roles of the respondents (default: everyone).
        after: With ``Probe(..., every=1)``: only after utterances by these
            names or roles (e.g. ``"opponent"``: after every opponent turn).
        variable: The ``states.variable`` written.
        temperature: Sampling temperature of the answers.
        constrain: Constrain answers to ``1``-``5`` (vLLM structured outputs).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)
    statement: str | Callable[[Mapping[str, Any]], str]
    who: tuple[str, ...] | str | None = None
    after: tuple[str, ...] | str | None = None
    variable: str = Field(default="agreement", min_length=1)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    constrain: bool = True

    def __init__(self, statement: Any = None, /, **data: Any) -> None:
        super().__init__(**({"statement": statement} if statement is not None else {}), **data)

    @field_validator("who", "after", mode="before")
    @classmethod
    def _tuple(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @property
    def name(self) -> str:
        return f"stance:{self.variable}"

    def describe(self) -> dict[str, Any]:
        """A JSON-able description, part of the experiment's configuration."""
        statement = self.statement
        shown = statement if isinstance(statement, str) else getattr(statement, "__qualname__", "")
        return {
            "stance": shown,
            "who": self.who,
            "after": self.after,
            "variable": self.variable,
            "temperature": self.temperature,
            "constrain": self.constrain,
        }

    def check(self, names: Sequence[str], roles: Mapping[str, str]) -> None:
        select_agents(self.who, names, roles, "stance who")
        select_agents(self.after, names, roles, "stance after")

    def _match(self, wanted: Any, names: Sequence[str], roles: Mapping[str, str]) -> list[str]:
        return select_agents(wanted, names, roles, "stance")

    def question(self, params: Mapping[str, Any]) -> str:
        """The question put to a respondent."""
        statement = self.statement if isinstance(self.statement, str) else self.statement(params)
        options = "\n".join(f"{i}. {label}" for i, label in enumerate(AGREEMENT, 1))
        return (
            "How much do you agree with this proposition, right now?\n\n"
            f'"{statement}"\n\n{options}\n\nAnswer with the number only.'
        )

    async def __call__(self, episode: Episode, point: ProbePoint) -> None:
        if point.moment == "turn" and self.after is not None:
            last = episode.transcript[-1].speaker if episode.transcript else None
            if last is None or last not in self._match(self.after, episode.names, episode.roles):
                return
        names = self._match(self.who, episode.names, episode.roles)
        question = self.question(episode.params)
        constraint = (
            Choice(str(i) for i in range(1, len(AGREEMENT) + 1)) if self.constrain else None
        )

        async def one(name: str) -> None:
            raw = await episode.ask(
                name,
                question,
                purpose=self.name,
                max_tokens=8,
                temperature=self.temperature,
                response_format=constraint,  # Episode.ask still annotates a dict; it takes typed ones
                step=point.step,
            )
            parsed = parse_answer(raw, AGREEMENT)
            episode.record_state(
                name,
                self.variable,
                None if parsed.position is None else float(parsed.position),
                text=raw,
                source=SOURCES.get(point.moment, point.moment),
                t=point.step,
                session=point.session,
            )

        await asyncio.gather(*(one(n) for n in names))
