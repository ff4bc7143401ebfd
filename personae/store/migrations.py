"""Schema migrations as an ordered list, each applied once and recorded.

A migration is a function of a SQLAlchemy connection registered with
:func:`migration`. They run in list order inside one transaction, and the
names applied are kept in ``_migrations``. Append new ones at the end; never
edit or reorder those already released.

Every migration spells out what it creates with the frozen DDL of
:mod:`personae.store.ddl`, never with the current ORM models of
:mod:`personae.store.schema`: a new file goes through exactly the steps an
upgraded 0.1.0 file went through, so the two end with the same schema, and a
later ``ADD COLUMN`` migration finds the column missing on both.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Connection, text

from personae.errors import StoreError
from personae.store import ddl
from personae.store.ids import BLOCK

Migration = Callable[[Connection], None]
MIGRATIONS: list[tuple[str, Migration]] = []


def migration(fn: Migration) -> Migration:
    """Register ``fn`` as the next migration, named after the function."""
    MIGRATIONS.append((fn.__name__, fn))
    return fn


@migration
def m001_initial(conn: Connection) -> None:
    """The tables, indexes and views of the first release (0.1.0), as it wrote them."""
    for statement in (*ddl.V0_1_0_TABLES, *ddl.V0_1_0_INDEXES):
        conn.execute(text(statement))
    for name, sql in ddl.V0_1_0_VIEWS.items():
        conn.execute(text(f"CREATE VIEW {name} AS {sql}"))


@migration
def m002_measurements(conn: Connection) -> None:
    """Questionnaire answers, scale scores and the ``trait_scores`` view, where missing."""
    for statement in ddl.V0_1_0_MEASUREMENT_TABLES:
        conn.execute(text(statement))
    sql = ddl.V0_1_0_VIEWS["trait_scores"]
    conn.execute(text(f"CREATE VIEW IF NOT EXISTS trait_scores AS {sql}"))


@migration
def m003_honest_rows(conn: Connection) -> None:
    """Raw completions, replaced characters, truncated/empty/cleaned turns, episode keys.

    A column is added only where it is missing (files made by 0.2.0 created
    them in ``m001``), and every view is rebuilt from its 0.2.0 definition.
    """
    for table, columns in ddl.V0_2_0_ADDED_COLUMNS.items():
        present = {row[1] for row in conn.execute(text(f"PRAGMA table_info({table})"))}
        for name, type_ in columns:
            if name not in present:
                conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {name} {type_}"))
    for name, sql in ddl.V0_2_0_VIEWS.items():
        conn.execute(text(f"DROP VIEW IF EXISTS {name}"))
        conn.execute(text(f"CREATE VIEW {name} AS {sql}"))


#: Tables whose rows take ids from their episode's block (:mod:`personae.store.ids`).
_BLOCK_TABLES = ("agents", "llm_calls", "turns", "memories", "states", "measurements", "scores")


@migration
def m004_row_id_blocks(conn: Connection) -> None:
    """From here on, an episode's rows take ids from its own block (see :mod:`personae.store.ids`).

    Changes no table. Rows written before kept the ids ``max(id) + 1`` gave
    them; this checks, once, that all of them lie in block 0 (below ``2**32``),
    the one block no episode owns, so no old id can meet a new one.

    Raises:
        StoreError: A table already holds an id at or past ``2**32``.
    """
    for table in _BLOCK_TABLES:
        top = conn.execute(text(f"SELECT MAX(id) FROM {table}")).scalar()
        if top is not None and int(top) >= BLOCK:
            raise StoreError(
                f"{table} holds the row id {top}, at or past 2**32, numbered by an older "
                "personae; this version gives ids from 2**32 on to the rows of each episode "
                "and cannot add to this file. Write new runs to a new file."
            )


@migration
def m005_agent_prompts(conn: Connection) -> None:
    """``agents.system_prompt``: the system prompt each agent was given, as rendered.

    Agents stored before have it NULL (``personae prompt`` renders it again
    from the scenario). No view changes.
    """
    _add_columns(conn, ddl.V0_3_0_ADDED_COLUMNS)


def _add_columns(conn: Connection, added: dict[str, tuple[tuple[str, str], ...]]) -> None:
    for table, columns in added.items():
        present = {row[1] for row in conn.execute(text(f"PRAGMA table_info({table})"))}
        for name, type_ in columns:
            if name not in present:
                conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {name} {type_}"))


@migration
def m006_endpoints(conn: Connection) -> None:
    """``llm_calls.endpoint``, ``structured`` and ``replica``: where each call went and how.

    The endpoint's name (``default`` for the run's own server), the
    structured-output mechanism the call used, and the replica of a pool that
    answered. Calls stored before have them NULL. No view changes.
    """
    _add_columns(conn, ddl.V0_3_0_ENDPOINT_COLUMNS)


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


@migration
def m007_evaluations(conn: Connection) -> None:
    """``evaluations``: evaluators' scores of stored episodes, and the ``evaluation_scores`` view.

    One row per (episode, agent or turn, evaluator and version, dimension,
    sample, judge), with the value, whether it could be read, the judge's
    rationale and raw answer, and the ``llm_calls`` row of the judge's call.
    """
    conn.execute(text(ddl.V0_3_0_EVALUATION_TABLE))
    conn.execute(text(ddl.V0_3_0_EVALUATION_INDEX))
    for name, sql in ddl.V0_3_0_EVALUATION_VIEWS.items():
        conn.execute(text(f"DROP VIEW IF EXISTS {name}"))
        conn.execute(text(f"CREATE VIEW {name} AS {sql}"))


@migration
def m008_replay(conn: Connection) -> None:
    """``experiments.replay`` and ``llm_calls.cached_tokens``: the replay mode and what it saved.

    The mode an experiment was run in (``exact`` or ``fast``, see
    :mod:`personae.runner.replay`; NULL for experiments made before, which ran
    ``exact`` unless the embedded server's prefix cache was turned on by hand,
    as their ``server_info`` says), and the prompt tokens of each call the
    server took from its prefix cache (NULL where it did not say). No view changes.
    """
    _add_columns(conn, ddl.V0_3_0_REPLAY_COLUMNS)
