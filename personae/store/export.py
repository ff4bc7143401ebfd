"""``personae export``: every table and view of a database as Parquet or CSV files.

One file per table and view (``episodes.parquet``, ``transcript.parquet``, ...),
read through the read-only connection of :mod:`personae.store.readonly`, so the
database is never changed. Column types follow the declared SQLite types:
INTEGER columns stay 64-bit integers, REAL floats, TEXT text, BLOB binary, and
NULL stays null; a column without a declared type (a view's computed column)
takes the type of its values.

Each episode's parameters become real columns: every file with an
``episode_id`` column (and ``episodes`` itself, by its ``id``) gets one
``param_<name>`` column per parameter found in ``episodes.params_json``,
appended after its own columns. Names are made plain (``client.style`` becomes
``param_client_style``); values keep their JSON type (all-integer parameters
are integers, numbers floats, true/false booleans, text text) and lists or
objects stay JSON text. The JSON column itself is kept.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import polars as pl

from personae.store.readonly import blob_literal, connect_readonly

#: Prefix of the parameter columns.
PARAM_PREFIX = "param_"


class ExportFormat(StrEnum):
    """File formats :func:`export` writes."""

    parquet = "parquet"
    csv = "csv"


@dataclass(frozen=True, slots=True)
class ExportedFile:
    """One file written by :func:`export`.

    Attributes:
        name: The table or view.
        kind: ``"table"`` or ``"view"``.
        path: The file.
        rows: Rows written.
        columns: Columns written, the parameter columns included.
    """

    name: str
    kind: str
    path: Path
    rows: int
    columns: int


def export(
    db: str | Path, out: str | Path, format: ExportFormat | str = ExportFormat.parquet
) -> list[ExportedFile]:
    """Write every table and view of a personae database to ``out``, one file each.

    Tables of SQLite itself and personae's bookkeeping (``_migrations``) are
    left out. A file of the same name in ``out`` is replaced; each file is
    written beside its final name and renamed, so a reader never sees half a file.

    Args:
        db: The database file.
        out: The folder to write into; created if missing.
        format: ``"parquet"`` (default) or ``"csv"``.

    Returns:
        What was written, in the order of the database's schema (tables, then views).

    Raises:
        StoreError: The file is missing, not SQLite, or not a personae database.
        ValueError: An unknown format.

    Example:
        >>> files = export("runs/demo.db", "runs/demo-parquet")  # doctest: +SKIP
        >>> pl.read_parquet("runs/demo-parquet/transcript.parquet")  # doctest: +SKIP
    """
    fmt = ExportFormat(format)
    con = connect_readonly(db)
    try:
        objects = con.execute(
            "SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') "
            "AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '\\_%' ESCAPE '\\' "
            "ORDER BY type = 'view', rowid"
        ).fetchall()
        params = episode_params(con)
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for name, kind in objects:
            frame = with_params(
                read_frame(con, name), params, key="id" if name == "episodes" else "episode_id"
            )
            path = folder / f"{name}.{fmt.value}"
            _write(frame, path, fmt)
            written.append(ExportedFile(name, kind, path, frame.height, frame.width))
        return written
    finally:
        con.close()


def read_frame(con: sqlite3.Connection, name: str) -> pl.DataFrame:
    """Read one table or view into a DataFrame whose types follow the declared ones.

    Args:
        con: A connection to the database.
        name: The table or view.

    Returns:
        One column per column of ``name``, in order, typed by its declared SQLite
        type (see the module docstring); a value that does not fit the declared
        type (SQLite lets a column hold any value) widens the column to what fits.
    """
    declared = [(row[1], row[2]) for row in con.execute(f"PRAGMA table_info({_quote(name)})")]
    cursor = con.execute(f"SELECT * FROM {_quote(name)}")
    rows = cursor.fetchall()
    columns = [d[0] for d in cursor.description or ()]
    types = dict(declared)
    series = []
    for i, column in enumerate(columns):
        values = [row[i] for row in rows]
        series.append(_series(column, values, _declared_dtype(types.get(column, ""))))
    return pl.DataFrame(series)


def episode_params(con: sqlite3.Connection) -> pl.DataFrame:
    """One row per episode: ``episode_id`` and its parameters as typed columns.

    Args:
        con: A connection to the database.

    Returns:
        ``episode_id`` followed by ``param_<name>`` columns, in the order the
        names first appear; episodes without a parameter hold null there.
    """
    rows = con.execute("SELECT id, params_json FROM episodes ORDER BY id").fetchall()
    parsed: list[dict[str, Any]] = []
    for _, text in rows:
        try:
            value = json.loads(text) if text else {}
        except ValueError:
            value = {}
        parsed.append(value if isinstance(value, dict) else {})
    keys = list(dict.fromkeys(k for p in parsed for k in p))
    names = param_column_names(keys)
    columns = [pl.Series("episode_id", [r[0] for r in rows], dtype=pl.Int64)]
    for key, column in zip(keys, names, strict=True):
        columns.append(_param_series(column, [p.get(key) for p in parsed]))
    return pl.DataFrame(columns)


def param_column_names(keys: Sequence[str]) -> list[str]:
    """Plain column names for parameter names, unique and in order.

    Args:
        keys: Parameter names as they appear in ``params_json``.

    Returns:
        ``param_`` followed by the name with every run of characters other
        than letters, digits and ``_`` replaced by ``_`` (``client.style`` ->
        ``param_client_style``); a name that would repeat gets ``_2``, ``_3``...

    Example:
        >>> param_column_names(["client.style", "max_turns", "client style"])
        ['param_client_style', 'param_max_turns', 'param_client_style_2']
    """
    names: list[str] = []
    for key in keys:
        base = PARAM_PREFIX + (re.sub(r"[^0-9A-Za-z_]+", "_", key).strip("_") or "value")
        name, n = base, 2
        while name in names:
            name, n = f"{base}_{n}", n + 1
        names.append(name)
    return names


def with_params(frame: pl.DataFrame, params: pl.DataFrame, *, key: str) -> pl.DataFrame:
    """Append the parameter columns to a frame that names an episode in ``key``.

    Args:
        frame: A table or view.
        params: From :func:`episode_params`.
        key: The frame's column holding the episode id.

    Returns:
        ``frame`` with the ``param_*`` columns after its own, row order kept;
        ``frame`` unchanged when it has no ``key`` column or there are no parameters.
    """
    if key not in frame.columns or params.width == 1 or frame[key].dtype != pl.Int64:
        return frame
    extra = [c for c in params.columns[1:] if c not in frame.columns]
    lookup = params.select("episode_id", *extra).rename({"episode_id": key})
    return frame.join(lookup, on=key, how="left", maintain_order="left")


def _declared_dtype(declared: str) -> pl.DataType | None:
    """SQLite's type-affinity rules, mapped to polars types (None: take the values' type)."""
    upper = declared.upper()
    if "INT" in upper:
        return pl.Int64()
    if any(t in upper for t in ("CHAR", "CLOB", "TEXT")):
        return pl.String()
    if "BLOB" in upper:
        return pl.Binary()
    if any(t in upper for t in ("REAL", "FLOA", "DOUB")):
        return pl.Float64()
    return None


def _series(name: str, values: list[Any], dtype: pl.DataType | None) -> pl.Series:
    if dtype is not None:
        try:
            return pl.Series(name, values, dtype=dtype, strict=True)
        except (TypeError, pl.exceptions.PolarsError, OverflowError):
            pass  # a value of another type (SQLite allows it): take the values' type
    return pl.Series(name, values, dtype=_values_dtype(values), strict=False)


def _values_dtype(values: Iterable[Any]) -> pl.DataType:
    kinds = {type(v) for v in values if v is not None}
    if not kinds:
        return pl.String()  # an all-NULL computed column: text is what readers can take
    if kinds == {int}:
        return pl.Int64()
    if kinds <= {int, float}:
        return pl.Float64()
    if kinds == {bytes}:
        return pl.Binary()
    return pl.String()


def _param_series(name: str, values: list[Any]) -> pl.Series:
    kinds = {type(v) for v in values if v is not None}
    if kinds == {bool}:
        return pl.Series(name, values, dtype=pl.Boolean)
    if kinds == {int}:
        return pl.Series(name, values, dtype=pl.Int64)
    if kinds <= {int, float} and kinds:
        return pl.Series(name, [None if v is None else float(v) for v in values], dtype=pl.Float64)
    if kinds == {str} or not kinds:
        return pl.Series(name, values, dtype=pl.String)
    return pl.Series(
        name,
        [
            v if isinstance(v, str) or v is None else json.dumps(v, ensure_ascii=False)
            for v in values
        ],
        dtype=pl.String,
    )


def _write(frame: pl.DataFrame, path: Path, fmt: ExportFormat) -> None:
    partial = path.with_name(f".{path.name}.partial")
    try:
        if fmt is ExportFormat.parquet:
            frame.write_parquet(partial)
        else:
            _csv_ready(frame).write_csv(partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _csv_ready(frame: pl.DataFrame) -> pl.DataFrame:
    """CSV holds text: a BLOB is written as SQLite's hex literal, as ``personae sql`` does."""
    binary = [c for c, t in frame.schema.items() if t == pl.Binary]
    if not binary:
        return frame
    return frame.with_columns(
        pl.col(c).map_elements(blob_literal, return_dtype=pl.String) for c in binary
    )


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
