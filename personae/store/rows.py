"""Typed rows, one constructor per table, and checking them when they are handed over.

An episode's rows are the frozen dataclasses below (:class:`TurnRecord`,
:class:`LLMCallRecord`, ...), one per table; ``Record.table`` names the table and
:meth:`Record.values` gives the column values. A sink (the store's writer, a shard
writer, the in-memory log) takes them with ``add(record)`` and checks each one at
hand-over, so a bad value fails the episode that made it, naming the field.

A row that SQLite cannot store (a dict where text belongs, a column the
table does not have, a string with a lone surrogate) used to fail the whole
batch at commit time, and with it every episode whose rows shared the batch.
:func:`check_row` finds the problem at hand-over, in the episode that made
the row, so that episode fails alone with a message naming the table, the
column and the value's type.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import Float, Integer, LargeBinary, String, Text

from personae.errors import StoreError
from personae.store.schema import Base

__all__ = [
    "RECORDS",
    "AgentRecord",
    "LLMCallRecord",
    "MeasurementRecord",
    "MemoryRecord",
    "Record",
    "ScoreRecord",
    "StateRecord",
    "TurnRecord",
    "check_row",
    "clean_text",
    "now",
]


def now() -> str:
    """The current UTC time as ISO 8601, the format of every timestamp column."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


_COLUMNS: dict[type, tuple[str, ...]] = {}


def _columns_of(kind: type[Record]) -> tuple[str, ...]:
    names = _COLUMNS.get(kind)
    if names is None:
        names = _COLUMNS[kind] = tuple(f.name for f in dataclasses.fields(kind))
    return names


@dataclass(frozen=True, kw_only=True, slots=True)
class Record:
    """One row of one episode table. ``episode_id`` is filled in by the sink.

    Example:
        >>> row = StateRecord(id=1, t=0, variable="stress", value=2.0, source="rule")
        >>> row.table, row.values()["variable"]
        ('states', 'stress')
    """

    table: ClassVar[str] = ""
    id: int
    episode_id: int = 0

    def values(self) -> dict[str, Any]:
        """Column name -> value, as the table stores them."""
        return {name: getattr(self, name) for name in _columns_of(type(self))}

    def for_episode(self, episode_id: int) -> Record:
        """The same row, belonging to ``episode_id``."""
        if self.episode_id == episode_id:
            return self
        return dataclasses.replace(self, episode_id=episode_id)


@dataclass(frozen=True, kw_only=True, slots=True)
class AgentRecord(Record):
    """A participant of one episode (table ``agents``)."""

    table: ClassVar[str] = "agents"
    name: str
    role: str
    persona_json: str
    #: The system prompt the agent starts the episode with, as sent to the model.
    system_prompt: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class LLMCallRecord(Record):
    """One request to the model, with its accounting (table ``llm_calls``)."""

    table: ClassVar[str] = "llm_calls"
    agent_id: int | None
    purpose: str
    step: int | None = None
    model: str | None = None
    server: str | None = None
    seed: int | None = None
    params_json: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: float | None = None
    attempts: int | None = None
    finish_reason: str | None = None
    error: str | None = None
    created_at: str = field(default_factory=now)
    raw_text: str | None = None
    raw_bytes: bytes | None = None
    replaced_chars: int | None = None
    #: The endpoint's name (``default``: the run's own server).
    endpoint: str | None = None
    #: The structured-output mechanism used (``structured_outputs``, ``response_format``, ``none``).
    structured: str | None = None
    #: The replica of a pool that answered (its base URL without credentials).
    replica: str | None = None
    #: Prompt tokens the server took from its prefix cache (None: it did not say).
    cached_tokens: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class TurnRecord(Record):
    """One utterance (table ``turns``)."""

    table: ClassVar[str] = "turns"
    session: int = 0
    step: int
    agent_id: int
    visible_to: str | None = None
    content: str
    scripted: int = 0
    llm_call_id: int | None = None
    created_at: str = field(default_factory=now)
    truncated: int = 0
    empty: int = 0
    cleaned: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class MemoryRecord(Record):
    """A memory event, e.g. a rolling summary (table ``memories``)."""

    table: ClassVar[str] = "memories"
    agent_id: int
    session: int
    step: int
    kind: str
    content: str
    llm_call_id: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class StateRecord(Record):
    """A numeric or text observation over time (table ``states``)."""

    table: ClassVar[str] = "states"
    agent_id: int | None = None
    session: int | None = None
    t: int
    variable: str
    value: float | None = None
    text: str | None = None
    source: str


@dataclass(frozen=True, kw_only=True, slots=True)
class MeasurementRecord(Record):
    """One answer to one questionnaire item (table ``measurements``)."""

    table: ClassVar[str] = "measurements"
    agent_id: int
    session: int | None = None
    step: int
    point: str
    occasion: int
    instrument: str
    item: str
    prompt_variant: int
    option_order: str
    position: int
    batch: int
    raw: str | None = None
    value: float | None = None
    valid: int
    reason: str | None = None
    llm_call_id: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ScoreRecord(Record):
    """A scale score of one administration (table ``scores``)."""

    table: ClassVar[str] = "scores"
    agent_id: int
    session: int | None = None
    step: int
    point: str
    occasion: int
    instrument: str
    level: str
    scale: str
    value: float | None = None
    n_items: int
    n_missing: int
    band: str | None = None
    prompt_variant: int | None = None
    option_order: str | None = None
    source: str


#: The typed row of each episode table, by table name.
RECORDS: dict[str, type[Record]] = {
    r.table: r
    for r in (
        AgentRecord,
        LLMCallRecord,
        TurnRecord,
        MemoryRecord,
        StateRecord,
        MeasurementRecord,
        ScoreRecord,
    )
}


@dataclass(frozen=True, slots=True)
class _Column:
    accepts: tuple[type, ...]
    nullable: bool
    kind: str


def _columns(table: str) -> dict[str, _Column]:
    out = {}
    for column in Base.metadata.tables[table].columns:
        accepts: tuple[type, ...]
        if isinstance(column.type, Integer):
            accepts, kind = (int,), "an integer"
        elif isinstance(column.type, Float):
            accepts, kind = (int, float), "a number"
        elif isinstance(column.type, String | Text):
            accepts, kind = (str,), "text"
        elif isinstance(column.type, LargeBinary):
            accepts, kind = (bytes,), "bytes"
        else:  # pragma: no cover - every column of the schema is one of the above
            accepts, kind = (object,), "a value"
        nullable = bool(column.nullable) or column.primary_key or column.default is not None
        out[column.name] = _Column(accepts, nullable, kind)
    return out


_SPECS: dict[str, dict[str, _Column]] = {}


def clean_text(value: str) -> tuple[str, int]:
    """``value`` with every code point UTF-8 cannot encode replaced by U+FFFD.

    Returns:
        The storable text and the number of code points replaced (lone
        surrogates, such as a model reply's ``"\\ud800"`` escape).
    """
    if value.isascii():
        return value, 0
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        replaced = sum(0xD800 <= ord(ch) <= 0xDFFF for ch in value)
        return "".join("\ufffd" if 0xD800 <= ord(ch) <= 0xDFFF else ch for ch in value), replaced
    return value, 0


def check_row(table: str, row: dict[str, Any]) -> dict[str, Any]:
    """Check one row against its table; make its text storable in place.

    Args:
        table: The table the row goes to.
        row: Column name -> value; text with lone surrogates is repaired in place.

    Returns:
        The same row.

    Raises:
        StoreError: An unknown table or column, a missing required value, or a
            value of the wrong type; the message names table, column and type.
    """
    spec = _SPECS.get(table)
    if spec is None:
        if table not in Base.metadata.tables:
            raise StoreError(f"there is no table {table!r} to write a row to")
        spec = _SPECS[table] = _columns(table)
    for name, value in row.items():
        column = spec.get(name)
        if column is None:
            raise StoreError(
                f"a row for {table} has a column {name!r} that the table does not have "
                f"(its columns: {', '.join(spec)})"
            )
        if value is None:
            if not column.nullable:
                raise StoreError(f"a row for {table} has no value for {table}.{name}")
            continue
        if type(value) is str:
            if not value.isascii():
                row[name] = clean_text(value)[0]
            continue
        if not isinstance(value, column.accepts) or (
            isinstance(value, bool) and column.kind != "an integer"
        ):
            raise StoreError(
                f"a row for {table} holds a {type(value).__name__} in {table}.{name}, "
                f"which stores {column.kind}: {_short(value)}"
            )
    missing = [n for n, c in spec.items() if not c.nullable and n not in row]
    if missing:
        raise StoreError(f"a row for {table} has no value for {', '.join(missing)}")
    return row


def count_rows(rows: Mapping[str, list[Any]]) -> int:
    """Rows in a batch, over all tables."""
    return sum(len(batch) for batch in rows.values())


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
