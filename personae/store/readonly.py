"""Read-only access for people and analysis: ``personae sql`` and ``personae show``."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from personae.errors import StoreError
from personae.store.schema import APPLICATION_ID


def connect_readonly(path: str | Path) -> sqlite3.Connection:
    """Open a personae database so that no statement can change it.

    Raises:
        StoreError: The file is missing, not SQLite, or not a personae database.
    """
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"no database at {path}: run an experiment with --db {path} first.")
    try:
        con = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)
        con.execute("PRAGMA query_only=ON")
        app_id = con.execute("PRAGMA application_id").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path} is not an SQLite database ({exc}).") from None
    if app_id != APPLICATION_ID:
        con.close()
        raise StoreError(f"{path} is not a personae database (it was written by another program).")
    return con


def query(
    path: str | Path, sql: str, params: tuple[Any, ...] = ()
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run one read-only statement and return (column names, rows).

    Raises:
        StoreError: The statement would write, or SQLite rejected it; the message says why.
    """
    con = connect_readonly(path)
    try:
        cur = con.execute(sql, params)
        columns = [d[0] for d in cur.description or ()]
        return columns, cur.fetchall()
    except sqlite3.OperationalError as exc:
        msg = str(exc)
        if "readonly" in msg or "read-only" in msg or "query_only" in msg:
            raise StoreError(
                "personae sql opens the database read-only and refused a statement that "
                f"would change it ({msg}). Nothing was changed."
            ) from None
        raise StoreError(f"SQLite rejected the query: {msg}.") from None
    except sqlite3.Warning as exc:
        raise StoreError(f"SQLite rejected the query: {exc}.") from None
    finally:
        con.close()
