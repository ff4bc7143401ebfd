"""Migrations are frozen: a new file gets the schema earlier releases made, step by step.

``tests/data/schema_v0_2_0.sql`` is ``sqlite_master`` of a new file made by
0.2.0 (see ``tests/data/README``). Its ``m001`` created the then-current
tables, so its column order and DDL text differ from a file that went
0.1.0 -> upgrades; columns, types, constraints, indexes and views do not.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine

from personae.errors import StoreError
from personae.store import Database
from personae.store.ids import BLOCK
from personae.store.migrations import MIGRATIONS
from personae.store.schema import VIEWS, Base

DATA = Path(__file__).parents[1] / "data"
#: The migrations a database made by 0.2.0 has already had.
RELEASED_020 = ("m001_initial", "m002_measurements", "m003_honest_rows")


def schema(con: sqlite3.Connection, *, ordered: bool = False) -> dict[str, Any]:
    """Tables (columns, foreign keys, unique sets), indexes and views, as SQLite reports them."""
    names = con.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
    ).fetchall()
    out: dict[str, Any] = {}
    for kind, name, table, sql in names:
        if kind == "table":
            columns = [
                (c[1], c[2].upper(), c[3], (c[4] or "").strip("'\""), c[5])
                for c in con.execute(f"PRAGMA table_info({name})")
            ]
            keys = sorted(tuple(k[2:5]) for k in con.execute(f"PRAGMA foreign_key_list({name})"))
            uniques = sorted(
                tuple(i[2] for i in con.execute(f"PRAGMA index_info('{ix[1]}')"))
                for ix in con.execute(f"PRAGMA index_list({name})")
                if ix[2] and ix[3] != "c"
            )
            out[f"table {name}"] = (columns if ordered else sorted(columns), keys, uniques)
        elif kind == "index":
            cols = tuple(i[2] for i in con.execute(f"PRAGMA index_info('{name}')"))
            out[f"index {name}"] = (table, cols)
        elif kind == "view":
            out[f"view {name}"] = " ".join(sql.split())
    return out


def fresh(tmp_path: Path) -> sqlite3.Connection:
    db = tmp_path / "new.db"
    Database(db).close()
    return sqlite3.connect(db)


def test_a_new_file_has_the_schema_a_new_020_file_had_plus_the_later_migrations(tmp_path):
    path = tmp_path / "released.db"
    released = sqlite3.connect(path)
    released.executescript((DATA / "schema_v0_2_0.sql").read_text())
    released.close()
    with create_engine(f"sqlite:///{path}").begin() as conn:
        for name, step in MIGRATIONS:
            if name not in RELEASED_020:  # what 0.2.0 did not have yet
                step(conn)
    assert schema(fresh(tmp_path)) == schema(sqlite3.connect(path))


def test_a_new_file_and_an_upgraded_010_file_are_the_same_column_for_column(tmp_path):
    old = tmp_path / "old.db"
    shutil.copyfile(DATA / "v0_1_0.db", old)
    Database(old).close()
    upgraded = schema(sqlite3.connect(old), ordered=True)
    assert schema(fresh(tmp_path), ordered=True) == upgraded


def test_the_orm_models_and_the_migrations_agree(tmp_path):
    """A column added to schema.py without its migration (or the reverse) fails here."""
    con = fresh(tmp_path)
    for table in Base.metadata.sorted_tables:
        stored = {c[1]: c for c in con.execute(f"PRAGMA table_info({table.name})")}
        assert set(stored) == {c.name for c in table.columns}, table.name
        for column in table.columns:
            if not column.primary_key:
                assert bool(stored[column.name][3]) == (not column.nullable), column
    views = dict(con.execute("SELECT name, sql FROM sqlite_master WHERE type = 'view'").fetchall())
    assert {n: " ".join(s.split()) for n, s in views.items()} == {
        n: " ".join(f"CREATE VIEW {n} AS {s}".split()) for n, s in VIEWS.items()
    }


def test_migrations_run_once_in_order_and_are_recorded(tmp_path):
    db = tmp_path / "x.db"
    Database(db).close()
    Database(db).close()
    con = sqlite3.connect(db)
    names = [r[0] for r in con.execute("SELECT name FROM _migrations ORDER BY rowid")]
    assert names == [name for name, _ in MIGRATIONS]
    assert names[:4] == [
        "m001_initial",
        "m002_measurements",
        "m003_honest_rows",
        "m004_row_id_blocks",
    ]
    assert all(re.fullmatch(r"m\d{3}_[a-z0-9_]+", n) for n in names)


def test_an_old_file_whose_ids_already_reach_the_episode_blocks_is_refused(tmp_path):
    old = tmp_path / "old.db"
    shutil.copyfile(DATA / "v0_1_0.db", old)
    con = sqlite3.connect(old)
    con.execute("UPDATE turns SET id = ? WHERE id = (SELECT MIN(id) FROM turns)", (BLOCK,))
    con.commit()
    con.close()
    with pytest.raises(StoreError, match=r"turns holds the row id 4294967296"):
        Database(old)
    # nothing was half-applied: the file is still at 0.1.0's migrations
    con = sqlite3.connect(old)
    assert [r[0] for r in con.execute("SELECT name FROM _migrations")] == [
        "m001_initial",
        "m002_measurements",
    ]
