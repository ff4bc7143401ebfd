"""What an evaluator is: named dimensions with integer ranges, instructions, and a scope.

An :class:`Evaluator` rates a finished ``episode``, one ``agent`` in it, or each
``turn``. It asks its judge for a JSON object with one integer per dimension
(constrained to the dimension's range by a JSON schema) and a short
``rationale``; :meth:`Evaluator.read` turns the raw answer into values, keeping
what cannot be read as ``None`` with a reason, as questionnaires do.

Define one in Python::

    Evaluator(
        name="warmth",
        scope="agent",
        who=("counselor",),
        instructions="Rate how warm the counselor is.",
        dimensions=[Dimension(name="warmth", low=1, high=5, wording="1 cold ... 5 warm")],
    )

or in a TOML file read by :func:`load_evaluator` (see ``docs/evaluators.md``).
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from personae.errors import ConfigError
from personae.llm.structured import JsonSchema

__all__ = ["Dimension", "Evaluator", "Reading", "Scope", "load_evaluator"]

#: What one rating covers: a whole episode, one agent in it, or one turn.
Scope = Literal["episode", "agent", "turn"]

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


class Dimension(BaseModel):
    """One rated dimension: an integer from ``low`` to ``high`` and what the values mean.

    Args:
        name: Lower-case identifier (letters, digits, ``_``), the key in the judge's JSON.
        low: Lowest allowed value.
        high: Highest allowed value.
        wording: What the dimension is and what its ends mean, shown to the judge.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    low: int
    high: int
    wording: str = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value) or value == "rationale":
            raise ValueError(
                f"dimension name {value!r} must be lower-case letters, digits and '_' "
                "(starting with a letter), and not 'rationale'"
            )
        return value

    @model_validator(mode="after")
    def _range(self) -> Dimension:
        if self.low >= self.high:
            raise ValueError(
                f"dimension {self.name!r}: low ({self.low}) must be below high ({self.high})"
            )
        return self


@dataclass(frozen=True, slots=True)
class Reading:
    """A judge's answer read: each dimension's value (None when unreadable), why not, the rationale."""

    values: dict[str, float | None]
    reasons: dict[str, str | None]
    rationale: str | None


class Evaluator(BaseModel):
    """A judge of stored conversations, defined once and run by ``personae evaluate``.

    Args:
        name: Lower-case identifier, stored in ``evaluations.evaluator``.
        version: Stored with every score; change it when the wording changes,
            so old and new scores are never mixed and a rerun rates again.
        scope: ``"episode"``, ``"agent"`` (one rating per agent named in ``who``)
            or ``"turn"`` (one rating per turn of an agent named in ``who``).
        dimensions: The rated dimensions, at least one.
        instructions: The judge's system prompt: who it is and how to rate.
        who: Agent names or roles rated (scopes ``agent`` and ``turn``; None: everyone).
        mean_dimension: When set, also store the mean of the valid dimensions
            under this name (e.g. Sotopia's ``overall``); it is valid only when
            every dimension is.
        context_turns: Scope ``turn``: how many earlier turns the judge sees.
        with_profile: Show the rated agent's persona (``agents.persona_json``) to the judge.
        other_episodes: Scope ``agent``: also show the same persona's lines (the
            same name and role in the same experiment) from up to this many other
            complete episodes, for consistency across episodes; an agent with no
            other episode is not rated.
        source: Where the dimensions come from (a citation), for the docs and report.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    version: str = "1"
    scope: Scope = "episode"
    dimensions: tuple[Dimension, ...] = Field(min_length=1)
    instructions: str = Field(min_length=1)
    who: tuple[str, ...] | None = None
    mean_dimension: str | None = None
    context_turns: int = Field(default=4, ge=0)
    with_profile: bool = False
    other_episodes: int = Field(default=0, ge=0)
    source: str = ""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not re.match(r"^[a-z][a-z0-9_-]{0,63}$", value):
            raise ValueError(
                f"evaluator name {value!r} must be lower-case letters, digits, '_' or '-'"
            )
        return value

    @field_validator("who", mode="before")
    @classmethod
    def _who(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _unique(self) -> Evaluator:
        names = [d.name for d in self.dimensions]
        if self.mean_dimension is not None:
            names.append(self.mean_dimension)
        doubled = sorted({n for n in names if names.count(n) > 1})
        if doubled:
            raise ValueError(f"evaluator {self.name!r} names the dimension {doubled[0]!r} twice")
        return self

    @property
    def stored_dimensions(self) -> tuple[str, ...]:
        """Every dimension stored per rating: the rated ones, then the mean if any."""
        names = tuple(d.name for d in self.dimensions)
        return (*names, self.mean_dimension) if self.mean_dimension else names

    def response_format(self) -> JsonSchema:
        """The constrained output: one integer per dimension in its range, and a short rationale."""
        properties: dict[str, Any] = {
            d.name: {"type": "integer", "minimum": d.low, "maximum": d.high}
            for d in self.dimensions
        }
        properties["rationale"] = {"type": "string", "maxLength": 400}
        return JsonSchema(
            {
                "type": "object",
                "properties": properties,
                "required": ["rationale", *(d.name for d in self.dimensions)],
                "additionalProperties": False,
            },
            name=f"evaluation_{self.name.replace('-', '_')}"[:64],
        )

    def rubric(self) -> str:
        """The system prompt: the instructions, then each dimension with its range and wording."""
        lines = [self.instructions.strip(), "", "Rate these dimensions:"]
        for d in self.dimensions:
            lines.append(f"- {d.name} (an integer from {d.low} to {d.high}): {d.wording}")
        keys = ", ".join(d.name for d in self.dimensions)
        lines += [
            "",
            f'Reply with one JSON object with the keys "rationale" (one or two short sentences) '
            f"and {keys}.",
        ]
        return "\n".join(lines)

    def read(self, raw: str) -> Reading:
        """Read a judge's raw answer: values in range, else None with a reason.

        Reasons: ``"empty"``, ``"unparseable"`` (no JSON object), ``"missing"``
        (the key is absent), ``"not_integer"``, ``"out_of_range"``.

        Example:
            >>> e = Evaluator(name="x", instructions="Rate.", dimensions=[
            ...     Dimension(name="goal", low=0, high=10, wording="goal reached")])
            >>> e.read('{"goal": 12, "rationale": "ok"}').reasons["goal"]
            'out_of_range'
        """
        text = raw.strip()
        data = _json_object(text)
        if data is None:
            data = _truncated_object(text, [d.name for d in self.dimensions])
        values: dict[str, float | None] = {}
        reasons: dict[str, str | None] = {}
        for d in self.dimensions:
            if data is None:
                values[d.name], reasons[d.name] = None, "empty" if not text else "unparseable"
                continue
            if d.name not in data:
                values[d.name], reasons[d.name] = None, "missing"
                continue
            value = data[d.name]
            if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
                value = int(value)
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if isinstance(value, bool) or not isinstance(value, int):
                values[d.name], reasons[d.name] = None, "not_integer"
            elif not d.low <= value <= d.high:
                values[d.name], reasons[d.name] = None, "out_of_range"
            else:
                values[d.name], reasons[d.name] = float(value), None
        if self.mean_dimension is not None:
            rated = [values[d.name] for d in self.dimensions]
            if all(v is not None for v in rated):
                values[self.mean_dimension] = sum(v for v in rated if v is not None) / len(rated)
                reasons[self.mean_dimension] = None
            else:
                values[self.mean_dimension], reasons[self.mean_dimension] = None, "incomplete"
        rationale = data.get("rationale") if data is not None else None
        return Reading(values, reasons, str(rationale) if rationale is not None else None)


def _json_object(text: str) -> Mapping[str, Any] | None:
    """The JSON object in ``text`` (the whole text, else the outermost braces), or None."""
    for candidate in (text, *(m.group(0) for m in [_OBJECT.search(text)] if m)):
        try:
            data = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(data, Mapping):
            return data
    return None


def _truncated_object(text: str, names: list[str]) -> Mapping[str, Any] | None:
    """The complete ``"name": integer`` pairs of a JSON object cut off (by ``max_tokens``).

    A constrained answer that ran out of tokens in its rationale still holds
    the integers written before it; they are read, the rationale is not.
    """
    if not text.lstrip().startswith("{"):
        return None
    found = {}
    for name in names:
        match = re.search(rf'"{name}"\s*:\s*(-?\d+)\s*[,}}]', text)
        if match:
            found[name] = int(match.group(1))
    return found or None


def load_evaluator(path: str | Path) -> Evaluator:
    """Read an evaluator from a TOML file.

    The file holds the :class:`Evaluator` fields at the top level and one
    ``[[dimensions]]`` table per dimension (``name``, ``low``, ``high``,
    ``wording``).

    Raises:
        ConfigError: The file is missing, is not TOML, or does not define a
            valid evaluator; the message names the file and the field.
    """
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"no evaluator file {file}; give the path of a TOML file") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{file} is not a readable TOML file: {exc}") from None
    try:
        return Evaluator.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ConfigError(
            f"{file} does not define a valid evaluator: {where}: {first['msg']}"
        ) from None
