"""Reading agents' answers: the option chosen, refusals, and who answers.

The parsers are tolerant: a number (``"4"``, ``"I'd say 4."``), an option
label, or a JSON object of numbered answers for a batch. An answer that cannot
be read is never an error: it comes back with a reason (``"empty"``,
``"refusal"``, ``"out_of_range"``, ``"unparseable"``), stored with the raw text
and ``valid = 0``. :func:`option_value` codes a chosen position back to the
instrument's value, whichever order the options were shown in.

Example:
    >>> parse_answer("4 (moderately)", ["a", "b", "c", "d", "e"])
    Parsed(position=4, reason=None)
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from personae.errors import ConfigError

if TYPE_CHECKING:
    from personae.measures.instruments import Option

#: How the options are shown: ``"forward"`` (lowest value first) or ``"reversed"``.
OptionOrder = Literal["forward", "reversed"]

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


def option_labels(options: Sequence[Option], order: OptionOrder) -> list[str]:
    """The options' labels in the order they are shown (position 1 first)."""
    labels = [o.label for o in options]
    return labels if order == "forward" else labels[::-1]


def option_value(options: Sequence[Option], position: int, order: OptionOrder) -> int:
    """The value of the option shown at ``position`` (1-based) in ``order``.

    Example:
        With options valued 1..5 shown reversed, position 1 is the option valued 5.
    """
    index = position - 1 if order == "forward" else len(options) - position
    return int(options[index].value)


__all__ = [
    "OptionOrder",
    "Parsed",
    "option_labels",
    "option_value",
    "parse_answer",
    "parse_batch",
    "select_agents",
]
