"""Rating an agent's Big Five from what it actually said: behaviour next to self-report.

``Probe(Judge(who="client"), at="session_end")`` asks a rater (an LLM call
with a rubric, outside the conversation) to rate the Big Five of ``who`` from
its last ``window`` utterances. The ratings are stored like questionnaire
scores (``scores.source = 'judge'``, ``instrument = 'judge-big5'``, level
``domain``, the IPIP-NEO domain names), with the raw answer in
``measurements``, so self-report and behaviour line up per agent and over time.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from personae.llm.base import JsonSchema
from personae.measures.answers import select_agents
from personae.seeds import derive_seed
from personae.store.rows import MeasurementRecord, ScoreRecord

if TYPE_CHECKING:
    from personae.engine.episode import Episode
    from personae.engine.probes import ProbePoint

#: The judged domains, named as in the IPIP-NEO-120 so the two can be joined.
DOMAINS = ("openness", "conscientiousness", "extraversion", "agreeableness", "neuroticism")
INSTRUMENT = "judge-big5"

RUBRIC = (
    "You are a personality psychologist. You rate a person's Big Five personality "
    "traits from what they said in a conversation, judging only by their words and "
    "how they say them. Use 1 (very low) to 5 (very high) for each trait:\n"
    "- openness: curiosity, imagination, interest in ideas and feelings\n"
    "- conscientiousness: organisation, diligence, self-discipline, reliability\n"
    "- extraversion: sociability, assertiveness, energy, talkativeness\n"
    "- agreeableness: warmth, trust, cooperation, politeness\n"
    "- neuroticism: anxiety, sadness, irritability, vulnerability to stress"
)


def parse_ratings(raw: str) -> dict[str, float | None]:
    """Read the five ratings from a judge's answer (JSON, or ``trait: n`` prose).

    Example:
        >>> parse_ratings('{"openness": 4, "neuroticism": 2}')["openness"]
        4.0
    """
    found: dict[str, Any] = {}
    try:
        data = json.loads(raw)
        if isinstance(data, Mapping):
            found = {str(k).lower(): v for k, v in data.items()}
    except ValueError:
        for domain in DOMAINS:
            match = re.search(rf"{domain}\W{{0,5}}(\d+(?:\.\d+)?)", raw, re.IGNORECASE)
            if match:
                found[domain] = match.group(1)
    out: dict[str, float | None] = {}
    for domain in DOMAINS:
        try:
            value = float(found[domain])
        except (KeyError, TypeError, ValueError):
            value = None
        out[domain] = value if value is not None and 1 <= value <= 5 else None
    return out


class Judge(BaseModel):
    """Rate the Big Five of ``who`` from its recent utterances.

    Args:
        who: Names or roles of the agents rated (default: every agent).
        window: How many of the agent's most recent utterances the judge reads.
        rubric: The judge's instructions (default: :data:`RUBRIC`).
        model: A separate :class:`~personae.llm.base.ChatModel` for the judge, or
            the name of a run's endpoint (default: the endpoint the scenario binds
            ``judge`` to, else the run's default model).
        temperature: Sampling temperature of the ratings.
        constrain: Constrain the answer to a JSON schema (vLLM structured outputs).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)
    who: tuple[str, ...] | str | None = None
    window: int = Field(default=12, ge=1)
    rubric: str = RUBRIC
    model: Any = None
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    constrain: bool = True

    @field_validator("who", mode="before")
    @classmethod
    def _tuple(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @property
    def name(self) -> str:
        return INSTRUMENT

    def describe(self) -> dict[str, Any]:
        """A JSON-able description, part of the experiment's configuration."""
        data = self.model_dump(mode="json", exclude={"model"})
        data["judge_model"] = (
            f"endpoint:{self.model}"
            if isinstance(self.model, str)
            else getattr(self.model, "name", None)
        )
        return data

    def check(self, names: Sequence[str], roles: Mapping[str, str]) -> None:
        self.respondents(names, roles)

    def respondents(self, names: Sequence[str], roles: Mapping[str, str]) -> list[str]:
        return select_agents(self.who, names, roles, "judge: who")

    def messages(self, name: str, lines: Sequence[str]) -> list[dict[str, str]]:
        said = "\n".join(f"- {line}" for line in lines)
        ask = (
            f"Here is what {name} said, in order:\n{said}\n\n"
            "Rate this person's Big Five traits. Reply in JSON with the keys "
            + ", ".join(DOMAINS)
            + ", each an integer from 1 to 5."
        )
        return [{"role": "system", "content": self.rubric}, {"role": "user", "content": ask}]

    def _constraint(self) -> JsonSchema | None:
        if not self.constrain:
            return None
        rating = {"type": "integer", "enum": [1, 2, 3, 4, 5]}
        schema = {
            "type": "object",
            "properties": dict.fromkeys(DOMAINS, rating),
            "required": list(DOMAINS),
            "additionalProperties": False,
        }
        return JsonSchema(schema)

    async def __call__(self, episode: Episode, point: ProbePoint) -> None:
        names = self.respondents(episode.names, episode.roles)
        await asyncio.gather(*(self.rate(episode, point, name) for name in names))

    async def rate(self, episode: Episode, point: ProbePoint, name: str) -> None:
        """Rate ``name`` once and record the ratings; nothing when it has not spoken yet."""
        lines = [u.text for u in episode.transcript if u.speaker == name][-self.window :]
        if not lines:
            return
        occasion = episode.next_occasion(name, INSTRUMENT)
        completion, call_id = await episode.call(
            name,
            self.messages(name, lines),  # type: ignore[arg-type]
            purpose="judge",
            step=point.step,
            seed=derive_seed(episode.seed, "judge", name, occasion),
            model=self.model,
            max_tokens=80,
            temperature=self.temperature,
            response_format=self._constraint(),
        )
        raw = completion.text.strip()
        record_judged(episode, point, name, occasion, parse_ratings(raw), raw, call_id)


def record_judged(
    episode: Episode,
    point: ProbePoint,
    name: str,
    occasion: int,
    ratings: Mapping[str, float | None],
    raw: str,
    call_id: int,
) -> None:
    """Record a judge's ratings: one ``measurements`` row and one ``scores`` row per domain."""
    for position, (domain, value) in enumerate(ratings.items()):
        agent_id = episode.agent_ids[name]
        episode.log.add(
            MeasurementRecord(
                id=episode.log.new_id("measurements"),
                agent_id=agent_id,
                session=point.session,
                step=point.step,
                point=point.moment,
                occasion=occasion,
                instrument=INSTRUMENT,
                item=domain,
                prompt_variant=0,
                option_order="forward",
                position=position,
                batch=0,
                raw=raw,
                value=value,
                valid=int(value is not None),
                reason=None if value is not None else ("empty" if not raw else "unparseable"),
                llm_call_id=call_id,
            )
        )
        episode.log.add(
            ScoreRecord(
                id=episode.log.new_id("scores"),
                agent_id=agent_id,
                session=point.session,
                step=point.step,
                point=point.moment,
                occasion=occasion,
                instrument=INSTRUMENT,
                level="domain",
                scale=domain,
                value=value,
                n_items=int(value is not None),
                n_missing=int(value is None),
                band=None,
                prompt_variant=None,
                option_order=None,
                source="judge",
            )
        )
