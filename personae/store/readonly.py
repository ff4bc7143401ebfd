"""Read-only access for people and analysis: ``personae sql`` and ``personae show``.

A connection from :func:`connect_readonly` can read a personae database and
nothing else: it is opened with ``mode=ro`` and ``PRAGMA query_only``, and an
SQLite authorizer allows only reading (SELECT, reading columns, functions,
recursive CTEs and the pragmas that report information). ATTACH, DETACH and
VACUUM are refused when SQLite compiles them, before they can create a file,
and no database may be attached at all.

Reading a database in WAL mode makes SQLite create ``x.db-wal`` and
``x.db-shm`` beside it if they are missing, as every reader does; that is how
a reader stays consistent while a run writes. Where they cannot be created
(read-only media), the file is opened ``immutable``.
"""

from __future__ import annotations

import base64
import math
import re
import signal
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from personae.errors import StoreError
from personae.store.schema import APPLICATION_ID

#: Pragmas that only report on the schema or the library, whatever their argument.
READ_PRAGMAS = frozenset(
    {
        "collation_list",
        "compile_options",
        "database_list",
        "foreign_key_check",
        "foreign_key_list",
        "function_list",
        "index_info",
        "index_list",
        "index_xinfo",
        "integrity_check",
        "module_list",
        "pragma_list",
        "quick_check",
        "table_info",
        "table_list",
        "table_xinfo",
    }
)

#: Settings that may be read (``PRAGMA user_version``) but not given a value.
READ_SETTINGS = frozenset(
    {
        "application_id",
        "auto_vacuum",
        "busy_timeout",
        "cache_size",
        "data_version",
        "encoding",
        "foreign_keys",
        "freelist_count",
        "journal_mode",
        "journal_size_limit",
        "locking_mode",
        "max_page_count",
        "mmap_size",
        "page_count",
        "page_size",
        "query_only",
        "recursive_triggers",
        "schema_version",
        "secure_delete",
        "synchronous",
        "temp_store",
        "trusted_schema",
        "user_version",
        "wal_autocheckpoint",
        "writable_schema",
    }
)

# Often enough that Ctrl-C stops a query within milliseconds, rarely enough to cost nothing.
_PROGRESS_STEPS = 10_000

_SCHEMA_TABLES = frozenset({"sqlite_master", "sqlite_temp_master", "sqlite_schema"})

# Quoted names, strings and comments, skipped when looking for parameters.
_PARAMETER = re.compile(
    r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|`[^`]*`|\[[^\]]*\]|--[^\n]*|/\*.*?(?:\*/|$)"""
    r"|(?P<param>\?\d*|[:@$][A-Za-z0-9_]+)",
    re.S,
)
_COMMENT = re.compile(r"--[^\n]*|/\*.*?(?:\*/|$)", re.S)


def connect_readonly(path: str | Path) -> sqlite3.Connection:
    """Open a personae database so that no statement can change it or create a file.

    Args:
        path: The database file.

    Returns:
        A connection that refuses every statement except reads.

    Raises:
        StoreError: The file is missing, unreadable, not SQLite, or not a personae database.
    """
    return _open(Path(path))[0]


def query(
    path: str | Path, sql: str, params: Sequence[Any] = ()
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run one read-only statement and return (column names, rows).

    In the main thread, Ctrl-C stops the statement while SQLite runs it.

    Args:
        path: The database file.
        sql: One SQL statement; a trailing ``;`` and comments are fine.
        params: Values for the statement's ``?`` or ``:name`` parameters.

    Returns:
        The column names, in order and repeated as the statement names them, and the rows.

    Raises:
        StoreError: The statement would write or create a file, there is not exactly
            one statement, a parameter has no value, or SQLite rejected it; the
            message says which.
        KeyboardInterrupt: Ctrl-C stopped the statement.
    """
    con, guard = _open(Path(path))
    try:
        statements = _statements(sql)
        if not statements:
            raise StoreError("the query is empty: give one SQL statement, e.g. 'SELECT 1'.")
        if len(statements) > 1:
            raise StoreError(
                f"personae sql runs one statement; got {len(statements)}. "
                "Run them one at a time; nothing was run."
            )
        with _ctrl_c_stops(con):
            cur = con.execute(statements[0], params)
            columns = [d[0] for d in cur.description or ()]
            return columns, cur.fetchall()
    except sqlite3.ProgrammingError as exc:
        raise _programming_error(exc, sql, params) from None
    except (sqlite3.Error, sqlite3.Warning) as exc:
        msg = str(exc)
        if guard.refused:
            raise StoreError(
                f"personae sql opens the database read-only and refused the statement: it "
                f"would {guard.refused}. Nothing was created or changed."
            ) from None
        if "readonly" in msg or "read-only" in msg or "query_only" in msg:
            raise StoreError(
                "personae sql opens the database read-only and refused a statement that "
                f"would change it ({msg}). Nothing was changed."
            ) from None
        raise StoreError(f"SQLite rejected the query: {msg}.") from None
    finally:
        con.close()


def json_records(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    """Turn rows into JSON-ready objects, one per row, losing no column.

    JSON objects need unique keys, so a repeated column name gets a suffix
    (``SELECT 1 AS a, 2 AS a`` gives ``{"a": 1, "a_2": 2}``). A BLOB becomes
    ``{"base64": "..."}``; an infinite float becomes ``null``, as JSON has no
    Infinity (SQLite itself stores NaN as NULL).

    Args:
        columns: Column names as the statement gave them.
        rows: The rows.

    Returns:
        One dict per row that ``json.dumps(..., allow_nan=False)`` accepts.
    """
    keys = _unique_names(columns)
    return [{k: _json_value(v) for k, v in zip(keys, row, strict=True)} for row in rows]


def blob_literal(value: bytes, max_bytes: int | None = None) -> str:
    """Write a BLOB as SQLite's hex literal, ``x'00ff'``.

    Args:
        value: The BLOB.
        max_bytes: Show at most this many bytes, then an ellipsis and the size.

    Returns:
        The literal, which SQLite reads back as the same BLOB when not shortened.
    """
    if max_bytes is not None and len(value) > max_bytes:
        return f"x'{value[:max_bytes].hex()}…' ({len(value):,} bytes)"
    return f"x'{value.hex()}'"


class _ReadGuard:
    """SQLite authorizer that allows reading only and remembers what it refused."""

    def __init__(self) -> None:
        self.refused: str | None = None

    def __call__(
        self, action: int, arg1: str | None, arg2: str | None, db: str | None, source: str | None
    ) -> int:
        if action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE):
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_FUNCTION and arg2 != "load_extension":
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_PRAGMA and arg1 is not None:
            name = arg1.lower()
            if name in READ_PRAGMAS or (name in READ_SETTINGS and arg2 is None):
                return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_UPDATE and arg1 in _SCHEMA_TABLES:
            # SQLite asks this the first time a statement uses a table-valued function
            # (json_each, pragma_table_info) while it declares the function's table;
            # a real UPDATE of the schema table is refused by SQLite before it asks,
            # and IGNORE would leave any column unchanged.
            return sqlite3.SQLITE_IGNORE
        if self.refused is None:
            self.refused = _describe(action, arg1, arg2)
        return sqlite3.SQLITE_DENY


def _describe(action: int, arg1: str | None, arg2: str | None) -> str:
    """Say what a refused authorizer action would have done, for the error message."""
    if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
        target = f" ({arg1!r})" if arg1 else ""
        return f"attach or detach a database file{target}, which ATTACH, DETACH and VACUUM do"
    if action == sqlite3.SQLITE_PRAGMA:
        value = f" = {arg2}" if arg2 is not None else ""
        return (
            f"run PRAGMA {arg1}{value}, which can change the database or its settings; "
            "personae sql allows the pragmas that read, e.g. PRAGMA table_info(turns)"
        )
    if action in (sqlite3.SQLITE_TRANSACTION, sqlite3.SQLITE_SAVEPOINT):
        return "begin or end a transaction, which one read-only statement does not need"
    if action == sqlite3.SQLITE_FUNCTION:
        return f"call {arg2}(), which could load code into the process"
    writes = (sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE)
    if action in writes and arg1 in _SCHEMA_TABLES:  # asked first for CREATE, DROP, ALTER
        return "change the database's schema (CREATE, DROP or ALTER)"
    names = {
        getattr(sqlite3, n): n.removeprefix("SQLITE_").replace("_", " ")
        for n in dir(sqlite3)
        if n.startswith(("SQLITE_CREATE_", "SQLITE_DROP_", "SQLITE_ALTER_"))
    }
    names.update(
        {
            sqlite3.SQLITE_INSERT: "INSERT",
            sqlite3.SQLITE_UPDATE: "UPDATE",
            sqlite3.SQLITE_DELETE: "DELETE",
            sqlite3.SQLITE_REINDEX: "REINDEX",
            sqlite3.SQLITE_ANALYZE: "ANALYZE",
        }
    )
    what = names.get(action, f"SQLite action {action}")
    on = f" on {arg1}" if arg1 else ""
    return f"change the database ({what}{on})"


def _open(path: Path) -> tuple[sqlite3.Connection, _ReadGuard]:
    if not path.is_file():
        raise StoreError(f"no database at {path}: run an experiment with --db {path} first.")
    # as_uri() percent-encodes '#', '?', '%', spaces and non-ASCII, which a file: URI
    # would otherwise read as its query, fragment or escapes.
    uri = path.resolve().as_uri()
    try:
        try:
            con, app_id = _connect(f"{uri}?mode=ro")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_CANTOPEN:
                raise
            con, app_id = _connect_immutable(path, uri)
    except sqlite3.DatabaseError as exc:
        if getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_CANTOPEN:
            raise StoreError(f"cannot open {path} ({exc}): check that it is readable.") from None
        raise StoreError(f"{path} is not an SQLite database ({exc}).") from None
    if app_id != APPLICATION_ID:
        con.close()
        raise StoreError(f"{path} is not a personae database (it was written by another program).")
    guard = _ReadGuard()
    con.set_authorizer(guard)
    # VACUUM INTO works by attaching its target; with no attachments allowed it cannot
    # create the file even if the authorizer were bypassed.
    con.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
    return con, guard


def _connect(uri: str) -> tuple[sqlite3.Connection, int]:
    """Open a URI read-only and read the application id, which makes SQLite open the file."""
    con = sqlite3.connect(uri, uri=True, isolation_level=None)
    try:
        con.execute("PRAGMA query_only=ON")
        app_id = con.execute("PRAGMA application_id").fetchone()[0]
    except BaseException:
        con.close()
        raise
    return con, int(app_id)


def _connect_immutable(path: Path, uri: str) -> tuple[sqlite3.Connection, int]:
    """Open a WAL database whose -shm file cannot be created (read-only media).

    ``immutable=1`` reads the main file without locks or a -shm. It ignores a
    -wal file, so one that holds data (a run killed before its checkpoint)
    would make the answer silently stale; that case is refused.
    """
    wal = path.with_name(path.name + "-wal")
    if wal.is_file() and wal.stat().st_size > 0:
        raise StoreError(
            f"cannot read {path}: it is on read-only storage and its write-ahead log {wal} "
            "holds data that SQLite can only read with a -shm file it cannot create there. "
            "Copy the database and its -wal file to a writable directory and query the copy."
        )
    return _connect(f"{uri}?mode=ro&immutable=1")


def _statements(sql: str) -> list[str]:
    """Split SQL text where SQLite would end each statement, dropping empty ones."""
    parts: list[str] = []
    start = 0
    for i, char in enumerate(sql):
        if char == ";" and sqlite3.complete_statement(sql[start : i + 1]):
            parts.append(sql[start : i + 1])
            start = i + 1
    parts.append(sql[start:])
    return [p for p in parts if _COMMENT.sub("", p).strip(" \t\r\n\f;")]


def _programming_error(
    exc: sqlite3.ProgrammingError, sql: str, params: Sequence[Any]
) -> StoreError:
    msg = str(exc)
    if "binding" in msg.lower():
        found = list(dict.fromkeys(m["param"] for m in _PARAMETER.finditer(sql) if m["param"]))
        named = f" ({', '.join(found[:3])})" if found else ""
        if not params:
            return StoreError(
                f"the query has a parameter{named} but personae sql takes none: "
                "write the value into the query instead."
            )
        return StoreError(f"the query's parameters{named} do not match its values ({msg}).")
    if "one statement" in msg:
        return StoreError("personae sql runs one statement; got more. Run them one at a time.")
    return StoreError(f"SQLite rejected the query: {msg}.")


@contextmanager
def _ctrl_c_stops(con: sqlite3.Connection) -> Iterator[None]:
    """Within the block, Ctrl-C stops the statement SQLite is running.

    SQLite steps a statement in C, where Python never sees the signal. The
    progress handler runs every few thousand steps and returns the flag the
    SIGINT handler sets; a true value makes SQLite abandon the statement. A
    SIGINT handler the program set itself (or SIG_IGN) is left in place: it
    runs inside the progress handler, and if it raises SQLite stops too.
    """
    stop = False

    def on_sigint(signum: int, frame: Any) -> None:
        nonlocal stop
        stop = True

    con.set_progress_handler(lambda: stop, _PROGRESS_STEPS)
    previous = None
    if (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    ):
        previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    except sqlite3.OperationalError as exc:
        if stop or exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_INTERRUPT:
            raise KeyboardInterrupt from None
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        con.set_progress_handler(None, 0)
    if stop:  # Ctrl-C came after SQLite's last step; stop all the same
        raise KeyboardInterrupt


def _unique_names(columns: Sequence[str]) -> list[str]:
    taken = set(columns)
    used: set[str] = set()
    names = []
    for name in columns:
        unique = name
        if unique in used:
            n = 2
            while f"{name}_{n}" in used or f"{name}_{n}" in taken:  # a_2 may be a real column
                n += 1
            unique = f"{name}_{n}"
        used.add(unique)
        names.append(unique)
    return names


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
