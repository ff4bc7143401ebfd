"""Opening a personae SQLite file: checks, pragmas, migrations, and episode bookkeeping.

All methods here are synchronous; the run-time path goes through
:class:`personae.store.writer.Writer`, which calls them from one worker thread
so the event loop never blocks on SQLite.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, func, insert, select, text, update
from sqlalchemy.exc import DatabaseError, OperationalError

from personae.errors import StoreError
from personae.store.migrations import migrate
from personae.store.schema import (
    APPLICATION_ID,
    EPISODE_TABLES,
    AgentRow,
    EpisodeRow,
    ExperimentRow,
    LLMCallRow,
    MeasurementRow,
    MemoryRow,
    ScoreRow,
    StateRow,
    TurnRow,
)

#: Tables whose ids are allocated by the writer, so rows can point at each other before commit.
ID_TABLES: dict[str, Any] = {
    "agents": AgentRow,
    "llm_calls": LLMCallRow,
    "turns": TurnRow,
    "memories": MemoryRow,
    "states": StateRow,
    "measurements": MeasurementRow,
    "scores": ScoreRow,
}


def now() -> str:
    """The current UTC time as ISO 8601, the format of every timestamp column."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _check_foreign(path: Path) -> None:
    """Refuse a file that exists but is not a personae database, before touching it."""
    if not path.exists() or path.stat().st_size == 0:
        return
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            app_id = con.execute("PRAGMA application_id").fetchone()[0]
            tables = [
                r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")
            ]
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise StoreError(
            f"{path} is not an SQLite database ({exc}). Give --db a new file name or an "
            "existing personae database; personae will not overwrite another program's file."
        ) from None
    if app_id != APPLICATION_ID and tables:
        shown = ", ".join(sorted(tables)[:8])
        raise StoreError(
            f"{path} is an SQLite database from another program (tables: {shown}). "
            "personae only writes to its own databases; give --db a new file name."
        )


class Database:
    """A personae SQLite file opened for writing.

    Args:
        path: The database file; created with the schema if it does not exist.

    Raises:
        StoreError: The file belongs to another program, is not SQLite, or is locked.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _check_foreign(self.path)
        self.engine: Engine = create_engine(f"sqlite:///{self.path}")

        @event.listens_for(self.engine, "connect")
        def _pragmas(dbapi_con: sqlite3.Connection, _record: object) -> None:
            cur = dbapi_con.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=10000")
            cur.close()

        try:
            with self.engine.begin() as conn:
                conn.execute(text(f"PRAGMA application_id={APPLICATION_ID}"))
                migrate(conn)
        except OperationalError as exc:
            raise StoreError(f"could not open {self.path}: {exc.orig}") from None
        except DatabaseError as exc:
            raise StoreError(f"{self.path} is not a usable SQLite database: {exc.orig}") from None
        self._next_id = {name: self._max_id(name) + 1 for name in ID_TABLES}

    def _max_id(self, table: str) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.max(ID_TABLES[table].id))).scalar() or 0)

    def allocate_ids(self, table: str, count: int = 1) -> int:
        """Reserve ``count`` ids in ``table`` and return the first one."""
        first = self._next_id[table]
        self._next_id[table] = first + count
        return first

    # -- experiments and episodes -------------------------------------------------------

    def ensure_experiment(
        self,
        *,
        name: str,
        scenario: str,
        config: Mapping[str, Any],
        config_hash: str,
        seed: int,
        model: str | None,
        server_info: Mapping[str, Any] | None,
        code_version: str | None,
    ) -> int:
        """Return the id of the experiment with this configuration, creating it if new."""
        with self.engine.begin() as conn:
            found = conn.execute(
                select(ExperimentRow.id).where(ExperimentRow.config_hash == config_hash)
            ).scalar()
            if found is not None:
                conn.execute(
                    update(ExperimentRow)
                    .where(ExperimentRow.id == found)
                    .values(model=model, server_info=json.dumps(server_info or {}))
                )
                return int(found)
            result = conn.execute(
                insert(ExperimentRow).values(
                    name=name,
                    scenario=scenario,
                    config_hash=config_hash,
                    config_json=json.dumps(config, sort_keys=True, default=str),
                    seed=seed,
                    model=model,
                    server_info=json.dumps(server_info or {}),
                    code_version=code_version,
                    created_at=now(),
                )
            )
            return int(result.inserted_primary_key[0])  # type: ignore[index]

    def find_experiment(self, config_hash: str) -> int | None:
        """The id of the experiment with this configuration hash, if stored."""
        with self.engine.connect() as conn:
            found = conn.execute(
                select(ExperimentRow.id).where(ExperimentRow.config_hash == config_hash)
            ).scalar()
        return None if found is None else int(found)

    def episode_statuses(self, experiment_id: int) -> dict[tuple[int, int], tuple[int, str]]:
        """Map (param_index, replicate) to (episode id, status) for an experiment."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    EpisodeRow.param_index, EpisodeRow.replicate, EpisodeRow.id, EpisodeRow.status
                ).where(EpisodeRow.experiment_id == experiment_id)
            )
            return {(r[0], r[1]): (r[2], r[3]) for r in rows}

    def reset_episodes(self, episode_ids: Iterable[int]) -> None:
        """Delete every row of unfinished episodes so they can be run again from scratch."""
        ids = list(episode_ids)
        if not ids:
            return
        marks = ",".join(str(int(i)) for i in ids)
        with self.engine.begin() as conn:
            for table in EPISODE_TABLES:
                conn.execute(text(f"DELETE FROM {table} WHERE episode_id IN ({marks})"))
            conn.execute(
                update(EpisodeRow)
                .where(EpisodeRow.id.in_(ids))
                .values(status="pending", error=None, n_turns=None, end_reason=None)
            )

    def create_episodes(self, experiment_id: int, specs: Iterable[Mapping[str, Any]]) -> None:
        """Insert pending episode rows (param_index, replicate, params, seed) not yet present."""
        rows = [
            {
                "experiment_id": experiment_id,
                "param_index": s["param_index"],
                "replicate": s["replicate"],
                "params_json": json.dumps(s["params"], sort_keys=True, default=str),
                "seed": s["seed"],
                "status": "pending",
            }
            for s in specs
        ]
        if rows:
            with self.engine.begin() as conn:
                conn.execute(insert(EpisodeRow), rows)

    def commit_batch(
        self, rows: Mapping[str, list[dict[str, Any]]], episode_updates: list[dict[str, Any]]
    ) -> None:
        """Write a batch of rows and episode status changes in one transaction.

        Status changes are applied after the rows, so an episode marked complete
        in this batch has all its rows committed with it.
        """
        with self.engine.begin() as conn:
            for table in ID_TABLES:
                batch = rows.get(table)
                if batch:
                    # executemany needs the same keys in every row; absent ones are NULL.
                    keys = set().union(*batch)
                    uniform = [r if len(r) == len(keys) else dict.fromkeys(keys) | r for r in batch]
                    conn.execute(insert(ID_TABLES[table]), uniform)
            for upd in episode_updates:
                values = {k: v for k, v in upd.items() if k != "id"}
                conn.execute(update(EpisodeRow).where(EpisodeRow.id == upd["id"]).values(values))

    def close(self) -> None:
        """Checkpoint the WAL and release the file."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
        except OperationalError:
            pass
        self.engine.dispose()
