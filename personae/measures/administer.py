"""Giving a questionnaire to agents mid-simulation, as a side-effect-free probe.

``Probe("ipip-neo-120", who="client", at=["start", "session_end"])`` builds a
:class:`Questionnaire` and runs it at those points. Each item is asked in a
separate context (the agent's persona and a snapshot of its memory, see
:meth:`personae.scenarios.episode.Episode.ask`), so the conversation and the
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
import json
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from personae.agents.memory import Memory
from personae.errors import ConfigError
from personae.seeds import derive_seed

if TYPE_CHECKING:
    from personae.measures.instruments import Instrument
    from personae.scenarios.episode import Episode
    from personae.scenarios.probes import ProbePoint

OptionOrder = Literal["forward", "reversed"]


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

_REFUSAL = re.compile(
    r"\b(as an ai|language model|i (?:cannot|can't|can not|won't|am unable|'m unable|"
    r"am not able|'m not able|do not have|don't have)|i'd rather not|prefer not)\b",
    re.IGNORECASE,
)
_LEADING_NUMBER = re.compile(r"^\W*(-?\d+)")
_ANY_NUMBER = re.compile(r"-?\d+")
_PAIR = re.compile(r"\"?(\d+)\"?\s*[:=.)\-]\s*\"?(-?\d+)")


@dataclass(frozen=True, slots=True)
class Parsed:
    """A parsed answer: the chosen position (1-based, as shown) or why there is none."""

    position: int | None
    reason: str | None


def parse_answer(raw: str, labels: Sequence[str]) -> Parsed:
    """Read the option an agent chose from its raw answer.

    Accepts a number (``"4"``, ``"4 - Moderately accurate"``, ``"I'd say 4."``)
    or an option label (``"Moderately accurate"``). Returns the position as it
    was shown (1 = first option listed) or a reason: ``"empty"``,
    ``"refusal"``, ``"out_of_range"`` or ``"unparseable"``.

    Example:
        >>> parse_answer("4 (moderately)", ["a", "b", "c", "d", "e"])
        Parsed(position=4, reason=None)
        >>> parse_answer("As an AI, I cannot rate myself.", ["a", "b"]).reason
        'refusal'
    """
    text = raw.strip()
    if not text:
        return Parsed(None, "empty")
    leading = _LEADING_NUMBER.match(text)
    if leading is None and _REFUSAL.search(text):
        return Parsed(None, "refusal")
    number = leading or _ANY_NUMBER.search(text)
    if number is not None:
        n = int(number.group(1) if number is leading else number.group(0))
        return Parsed(n, None) if 1 <= n <= len(labels) else Parsed(None, "out_of_range")
    lowered = text.lower()
    for position, label in sorted(enumerate(labels, 1), key=lambda p: -len(p[1])):
        if label.lower() in lowered:
            return Parsed(position, None)
    return Parsed(None, "unparseable")


def parse_batch(raw: str, count: int, labels: Sequence[str]) -> list[Parsed]:
    """Read the answers to ``count`` numbered statements from one raw reply (JSON or ``n: k`` lines)."""
    found: dict[int, Any] = {}
    try:
        data = json.loads(raw)
        if isinstance(data, Mapping):
            for key, value in data.items():
                if str(key).strip().isdigit():
                    found[int(str(key).strip())] = value
    except ValueError:
        for key, value in _PAIR.findall(raw):
            found.setdefault(int(key), value)
    out = []
    for i in range(1, count + 1):
        if i not in found:
            out.append(Parsed(None, "refusal" if _REFUSAL.search(raw) else "unparseable"))
        else:
            out.append(parse_answer(str(found[i]), labels))
    return out


def select_agents(
    wanted: Sequence[str] | None, names: Sequence[str], roles: Mapping[str, str], label: str
) -> list[str]:
    """The agents named in ``wanted`` by name or role (everyone when None), in scenario order.

    Raises:
        ConfigError: An entry is neither a name nor a role; ``label`` says whose setting.
    """
    if wanted is None:
        return list(names)
    missing = [w for w in wanted if w not in names and w not in roles.values()]
    if missing:
        raise ConfigError(
            f"{label}={missing[0]!r} is neither a name nor a role here "
            f"(participants: {', '.join(names)})"
        )
    return [n for n in names if n in wanted or roles[n] in wanted]


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
                        "measurements",
                        {
                            "id": episode.log.new_id("measurements"),
                            "agent_id": episode.agent_ids[name],
                            "session": point.session,
                            "step": point.step,
                            "point": point.moment,
                            "occasion": occasion,
                            "instrument": self.name,
                            "item": item.id,
                            "prompt_variant": variant,
                            "option_order": order,
                            "position": position,
                            "batch": index,
                            "raw": text,
                            "value": value,
                            "valid": int(value is not None),
                            "reason": answer.reason,
                            "llm_call_id": call_id,
                        },
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
        options = self.instrument.options
        index = position - 1 if order == "forward" else len(options) - position
        return int(options[index].value)

    def _labels(self, order: OptionOrder) -> list[str]:
        labels = [o.label for o in self.instrument.options]
        return labels if order == "forward" else labels[::-1]

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

    def _constraint(self, count: int) -> dict[str, Any] | None:
        if not self.constrain:
            return None
        k = len(self.instrument.options)
        if count == 1:
            return {"type": "choice", "choices": [str(i) for i in range(1, k + 1)]}
        schema = {
            "type": "object",
            "properties": {
                str(i): {"type": "integer", "enum": list(range(1, k + 1))}
                for i in range(1, count + 1)
            },
            "required": [str(i) for i in range(1, count + 1)],
            "additionalProperties": False,
        }
        return {"type": "json", "schema": schema}

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
            response_format=self._constraint(len(items)),
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
            "scores",
            {
                "id": episode.log.new_id("scores"),
                "agent_id": episode.agent_ids[name],
                "session": point.session,
                "step": point.step,
                "point": point.moment,
                "occasion": occasion,
                "instrument": instrument.name,
                "level": s.level,
                "scale": s.scale,
                "value": s.value,
                "n_items": s.n_items,
                "n_missing": s.n_missing,
                "band": s.band,
                "prompt_variant": variant,
                "option_order": order,
                "source": source,
            },
        )


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
    from personae.measures.judge import INSTRUMENT

    for position, (domain, value) in enumerate(ratings.items()):
        common = {
            "agent_id": episode.agent_ids[name],
            "session": point.session,
            "step": point.step,
            "point": point.moment,
            "occasion": occasion,
            "instrument": INSTRUMENT,
        }
        episode.log.add(
            "measurements",
            {
                "id": episode.log.new_id("measurements"),
                **common,
                "item": domain,
                "prompt_variant": 0,
                "option_order": "forward",
                "position": position,
                "batch": 0,
                "raw": raw,
                "value": value,
                "valid": int(value is not None),
                "reason": None if value is not None else ("empty" if not raw else "unparseable"),
                "llm_call_id": call_id,
            },
        )
        episode.log.add(
            "scores",
            {
                "id": episode.log.new_id("scores"),
                **common,
                "level": "domain",
                "scale": domain,
                "value": value,
                "n_items": int(value is not None),
                "n_missing": int(value is None),
                "band": None,
                "prompt_variant": None,
                "option_order": None,
                "source": "judge",
            },
        )
