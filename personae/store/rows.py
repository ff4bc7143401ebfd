"""Checking rows when they are handed to the writer, not when they are committed.

A row that SQLite cannot store (a dict where text belongs, a column the
table does not have, a string with a lone surrogate) used to fail the whole
batch at commit time, and with it every episode whose rows shared the batch.
:func:`check_row` finds the problem at hand-over, in the episode that made
the row, so that episode fails alone with a message naming the table, the
column and the value's type.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Float, Integer, LargeBinary, String, Text

from personae.errors import StoreError
from personae.store.schema import Base

__all__ = ["check_row", "clean_text"]


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
