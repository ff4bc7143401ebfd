"""Schema migrations as an ordered list, each applied once and recorded.

A migration is a function of a SQLAlchemy connection registered with
:func:`migration`. They run in list order inside one transaction each, and the
names applied are kept in ``_migrations``. Append new ones at the end; never
edit or reorder those already released.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Connection, text

from personae.store.schema import ADDED_COLUMNS, VIEWS, Base

Migration = Callable[[Connection], None]
MIGRATIONS: list[tuple[str, Migration]] = []


def migration(fn: Migration) -> Migration:
    """Register ``fn`` as the next migration, named after the function."""
    MIGRATIONS.append((fn.__name__, fn))
    return fn


@migration
def m001_initial(conn: Connection) -> None:
    Base.metadata.create_all(conn)
    for name, sql in VIEWS.items():
        conn.execute(text(f"CREATE VIEW IF NOT EXISTS {name} AS {sql}"))


@migration
def m002_measurements(conn: Connection) -> None:
    """Questionnaire answers, scale scores and the ``trait_scores`` view."""
    Base.metadata.create_all(
        conn, tables=[Base.metadata.tables["measurements"], Base.metadata.tables["scores"]]
    )
    conn.execute(text(f"CREATE VIEW IF NOT EXISTS trait_scores AS {VIEWS['trait_scores']}"))


@migration
def m003_honest_rows(conn: Connection) -> None:
    """Raw completions, replaced characters, truncated/empty/cleaned turns, episode keys.

    Written to run on any earlier database: a column is added only where it is
    missing (``m001`` creates the tables from the current schema, so a new file
    has them already), and every view is rebuilt from its current definition.
    """
    for table, columns in ADDED_COLUMNS.items():
        present = {row[1] for row in conn.execute(text(f"PRAGMA table_info({table})"))}
        for name, ddl in columns:
            if name not in present:
                conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {name} {ddl}"))
    for name, sql in VIEWS.items():
        conn.execute(text(f"DROP VIEW IF EXISTS {name}"))
        conn.execute(text(f"CREATE VIEW {name} AS {sql}"))


def migrate(conn: Connection) -> list[str]:
    """Apply every migration not yet recorded; return the names applied."""
    conn.execute(
        text("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT)")
    )
    done = {row[0] for row in conn.execute(text("SELECT name FROM _migrations"))}
    applied = []
    for name, fn in MIGRATIONS:
        if name in done:
            continue
        fn(conn)
        conn.execute(
            text("INSERT INTO _migrations (name, applied_at) VALUES (:n, :t)"),
            {"n": name, "t": datetime.now(UTC).isoformat()},
        )
        applied.append(name)
    return applied
