"""Giving a questionnaire to agents mid-simulation, as a side-effect-free probe.

``Probe("ipip-neo-120", who="client", at=["start", "session_end"])`` builds a
:class:`Questionnaire` and runs it at those points. Each item is asked in a
separate context (the agent's persona and a snapshot of its memory, see
:meth:`personae.engine.episode.Episode.ask`), so the conversation and the
agent's memory are unchanged by it.

Controls recorded per answer (table ``measurements``):

- ``prompt_variant``: which of the :data:`PROMPT_VARIANTS` wordings was used;
- ``option_order``: ``"forward"`` (lowest option first) or ``"reversed"``; the
  options are numbered by position, so a reversed form really changes which
  number means what;
- ``position``: the item's place in the seeded shuffle; ``batch``: which
  request carried it (one item per request by default).

Each administration (one agent, one occasion) uses one form (a variant and an
order) chosen by seed from those allowed, or every form with ``design="cross"``.
Answers are constrained to the option numbers with vLLM structured outputs
where the server supports it (``constrain=True``), and parsed by a tolerant
parser otherwise; refusals and unparseable answers are stored with their raw
text and ``valid = 0``, never raising.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from personae.agents.memory import Memory
from personae.errors import ConfigError
from personae.llm.base import Choice, JsonSchema
from personae.measures.answers import (
    OptionOrder,
    Parsed,
    option_labels,
    option_value,
    parse_answer,
    parse_batch,
    select_agents,
)
from personae.seeds import derive_seed
from personae.store.rows import MeasurementRecord, ScoreRecord

if TYPE_CHECKING:
    from personae.engine.episode import Episode
    from personae.engine.probes import ProbePoint
    from personae.measures.instruments import Instrument


@dataclass(frozen=True, slots=True)
class Wording:
    """One way of asking an item: lead-in, statement, options and answer instructions."""

    intro: str
    one: str
    many: str
    choose: str
    answer: str


#: The wordings an item is asked with (``prompt_variant`` indexes this tuple).
PROMPT_VARIANTS: tuple[Wording, ...] = (
    Wording(
        intro="{stem}",
        one='Statement: "{statement}"',
        many="Statements:\n{statements}",
        choose="Options:",
        answer="Answer with the number of one option only.",
    ),
    Wording(
        intro="Please answer honestly, as yourself, right now. {stem}",
        one='"{statement}"',
        many="{statements}",
        choose="Choose one:",
        answer="Reply with the number only.",
    ),
    Wording(
        intro="Think about how you see yourself at this moment.\n{stem}",
        one="Item: {statement}",
        many="Items:\n{statements}",
        choose="Response options:",
        answer="Respond with a single number from the list.",
    ),
)

BATCH_ANSWER = (
    "Answer every statement. Reply in JSON, mapping each statement's number to the "
    'number of the option you choose, e.g. {"1": 2, "2": 4}.'
)


def split_stem(stem: str) -> tuple[str, str]:
    """Split a stem like ``"How accurately ...? You ..."`` into the question and the lead-in.

    A stem ending in ``"..."`` is completed by each item (IPIP items read
    ``"Worry about things"``, shown as ``"You worry about things."``).

    Example:
        >>> split_stem("How accurately does this describe you? You ...")
        ('How accurately does this describe you?', 'You')
    """
    text = stem.strip()
    if not text.endswith("..."):
        return text, ""
    body = text[:-3].rstrip()
    cut = max(body.rfind("? "), body.rfind(". "), body.rfind(": "))
    if cut < 0:
        return "", body
    return body[: cut + 1].strip(), body[cut + 2 :].strip()


def complete_statement(lead: str, text: str) -> str:
    """The item as one statement, e.g. ``("You", "Worry about things") -> "You worry about things."``."""
    if not lead:
        return text
    first = text[:1].lower() if text[1:2].islower() else text[:1]
    sentence = f"{lead} {first}{text[1:]}"
    return sentence if sentence.endswith((".", "?", "!")) else sentence + "."


class Questionnaire(BaseModel):
    """How an instrument is given: to whom, which items, with which controls.

    Args:
        instrument: A bundled instrument's name (``"ipip-neo-120"``, ``"phq-9"``,
            ``"gad-7"``, ``"pss-10"``), a path to an instrument file, or an
            :class:`~personae.measures.instruments.Instrument`.
        who: Names or roles of the agents who answer (default: every agent).
        items, domains, facets: Give only these items, domains or facets.
        variants: Indices into :data:`PROMPT_VARIANTS` allowed (default: all three).
        option_orders: Option orders allowed (default: both).
        design: ``"rotate"``: each administration uses one form (variant and
            order) picked by seed; ``"cross"``: every form, each a full administration.
        shuffle: Shuffle the item order (seeded) per administration.
        batch_size: Items per request (1: each item in its own request).
        memory: ``"snapshot"``: the agent answers with its memory of the
            conversation so far; ``"none"``: from its persona only.
        temperature: Sampling temperature of the answers.
        constrain: Constrain answers with vLLM structured outputs (turn off for
            servers that do not support them; the parser copes either way).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)
    instrument: Any
    who: tuple[str, ...] | None = None
    items: tuple[str, ...] | None = None
    domains: tuple[str, ...] | None = None
    facets: tuple[str, ...] | None = None
    variants: tuple[int, ...] = (0, 1, 2)
    option_orders: tuple[OptionOrder, ...] = ("forward", "reversed")
    design: Literal["rotate", "cross"] = "rotate"
    shuffle: bool = True
    batch_size: int = Field(default=1, ge=1, le=30)
    memory: Literal["snapshot", "none"] = "snapshot"
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    constrain: bool = True

    @field_validator("who", "items", "domains", "facets", mode="before")
    @classmethod
    def _tuple(cls, value: Any) -> Any:
        if isinstance(value, str | int):
            return (str(value),)
        if isinstance(value, Sequence):
            return tuple(str(v) for v in value)
        return value

    @field_validator("variants")
    @classmethod
    def _variants(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        bad = [v for v in value if not 0 <= v < len(PROMPT_VARIANTS)]
        if bad or not value:
            raise ValueError(
                f"variants must be a non-empty subset of 0..{len(PROMPT_VARIANTS) - 1}, got {value}"
            )
        return value

    @field_validator("instrument", mode="before")
    @classmethod
    def _instrument(cls, value: Any) -> Any:
        from personae.measures.instruments import Instrument, load_instrument

        if isinstance(value, Instrument):
            return value
        try:
            return load_instrument(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    def model_post_init(self, context: Any, /) -> None:
        if self.items or self.domains or self.facets:
            try:
                subset = self.instrument.subset(
                    items=self.items, domains=self.domains, facets=self.facets
                )
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
            object.__setattr__(self, "instrument", subset)

    @property
    def name(self) -> str:
        """The instrument's name, as stored in ``measurements.instrument``."""
        return str(self.instrument.name)

    def describe(self) -> dict[str, Any]:
        """A JSON-able description, part of the experiment's configuration."""
        data = self.model_dump(mode="json", exclude={"instrument"})
        data["instrument"] = self.name
        data["n_items"] = len(self.instrument.items)
        return data

    def check(self, names: Sequence[str], roles: Mapping[str, str]) -> None:
        """Raise :class:`ConfigError` if ``who`` names nobody in the scenario."""
        self.respondents(names, roles)

    def respondents(self, names: Sequence[str], roles: Mapping[str, str]) -> list[str]:
        """The names of the agents who answer."""
        return select_agents(self.who, names, roles, f"questionnaire {self.name!r}: who")

    def forms(self, rng: random.Random) -> list[tuple[int, OptionOrder]]:
        """The (variant, option order) forms of one administration."""
        every = list(itertools.product(self.variants, self.option_orders))
        return every if self.design == "cross" else [rng.choice(every)]

    async def __call__(self, episode: Episode, point: ProbePoint) -> None:
        names = self.respondents(episode.names, episode.roles)
        await asyncio.gather(*(self.administer(episode, point, name) for name in names))

    async def administer(self, episode: Episode, point: ProbePoint, name: str) -> None:
        """Give the questionnaire to ``name`` once and record answers and scores."""
        occasion = episode.next_occasion(name, self.name)
        rng = random.Random(derive_seed(episode.seed, "form", self.name, name, occasion))
        memory = None
        if self.memory == "none":
            memory = Memory(name, len(episode.names) > 2)
        for variant, order in self.forms(rng):
            items = list(self.instrument.items)
            if self.shuffle:
                random.Random(
                    derive_seed(
                        episode.seed, "item-order", self.name, name, occasion, variant, order
                    )
                ).shuffle(items)
            batches = [
                items[i : i + self.batch_size] for i in range(0, len(items), self.batch_size)
            ]
            answers = await asyncio.gather(
                *(
                    self._ask_batch(episode, point, name, batch, variant, order, memory)
                    for batch in batches
                )
            )
            values: dict[str, float | None] = {}
            position = 0
            for index, (batch, (parsed, raw, call_id)) in enumerate(
                zip(batches, answers, strict=True)
            ):
                for item, answer, text in zip(batch, parsed, raw, strict=True):
                    value = None
                    if answer.position is not None:
                        value = float(self._value(answer.position, order))
                    values[item.id] = value
                    episode.log.add(
                        MeasurementRecord(
                            id=episode.log.new_id("measurements"),
                            agent_id=episode.agent_ids[name],
                            session=point.session,
                            step=point.step,
                            point=point.moment,
                            occasion=occasion,
                            instrument=self.name,
                            item=item.id,
                            prompt_variant=variant,
                            option_order=order,
                            position=position,
                            batch=index,
                            raw=text,
                            value=value,
                            valid=int(value is not None),
                            reason=answer.reason,
                            llm_call_id=call_id,
                        )
                    )
                    position += 1
            record_scores(
                episode,
                self.instrument,
                name,
                point,
                occasion,
                values,
                variant=variant,
                order=order,
                source="self_report",
            )

    def _value(self, position: int, order: OptionOrder) -> int:
        return option_value(self.instrument.options, position, order)

    def _labels(self, order: OptionOrder) -> list[str]:
        return option_labels(self.instrument.options, order)

    def prompt(self, items: Sequence[Any], variant: int, order: OptionOrder) -> str:
        """The question text for one item, or several numbered items for a batch."""
        labels = self._labels(order)
        options = "\n".join(f"{i}. {label}" for i, label in enumerate(labels, 1))
        stem, lead = split_stem(self.instrument.stem)
        wording = PROMPT_VARIANTS[variant]
        if len(items) == 1:
            body = wording.one.format(statement=complete_statement(lead, items[0].text))
            answer = wording.answer
        else:
            statements = "\n".join(
                f"{i}. {complete_statement(lead, item.text)}" for i, item in enumerate(items, 1)
            )
            body = wording.many.format(statements=statements)
            answer = BATCH_ANSWER
        intro = wording.intro.format(stem=stem).strip()
        return f"{intro}\n\n{body}\n\n{wording.choose}\n{options}\n\n{answer}"

    def _constraint(self, count: int) -> Choice | JsonSchema | None:
        if not self.constrain:
            return None
        k = len(self.instrument.options)
        if count == 1:
            return Choice(str(i) for i in range(1, k + 1))
        schema = {
            "type": "object",
            "properties": {
                str(i): {"type": "integer", "enum": list(range(1, k + 1))}
                for i in range(1, count + 1)
            },
            "required": [str(i) for i in range(1, count + 1)],
            "additionalProperties": False,
        }
        return JsonSchema(schema)

    async def _ask_batch(
        self,
        episode: Episode,
        point: ProbePoint,
        name: str,
        items: Sequence[Any],
        variant: int,
        order: OptionOrder,
        memory: Memory | None,
    ) -> tuple[list[Parsed], list[str], int]:
        question = self.prompt(items, variant, order)
        raw, call_id = await episode.ask_recorded(
            name,
            question,
            purpose=f"measure:{self.name}",
            max_tokens=8 if len(items) == 1 else 10 * len(items) + 16,
            temperature=self.temperature,
            response_format=self._constraint(
                len(items)
            ),  # Episode.ask still annotates a dict; it takes typed ones
            memory=memory,
            step=point.step,
        )
        labels = self._labels(order)
        if len(items) == 1:
            return [parse_answer(raw, labels)], [raw], call_id
        return parse_batch(raw, len(items), labels), [raw] * len(items), call_id


def record_scores(
    episode: Episode,
    instrument: Instrument,
    name: str,
    point: ProbePoint,
    occasion: int,
    values: Mapping[str, float | None],
    *,
    variant: int | None,
    order: str | None,
    source: str,
) -> None:
    """Score one administration and add its rows to ``scores``."""
    from personae.measures.scoring import score

    for s in score(instrument, values):
        episode.log.add(
            ScoreRecord(
                id=episode.log.new_id("scores"),
                agent_id=episode.agent_ids[name],
                session=point.session,
                step=point.step,
                point=point.moment,
                occasion=occasion,
                instrument=instrument.name,
                level=s.level,
                scale=s.scale,
                value=s.value,
                n_items=s.n_items,
                n_missing=s.n_missing,
                band=s.band,
                prompt_variant=variant,
                option_order=order,
                source=source,
            )
        )


__all__ = [
    "BATCH_ANSWER",
    "PROMPT_VARIANTS",
    "OptionOrder",
    "Questionnaire",
    "Wording",
    "complete_statement",
    "record_scores",
    "split_stem",
]
