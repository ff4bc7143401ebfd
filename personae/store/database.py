"""Opening a personae SQLite file: checks, pragmas, migrations, and episode bookkeeping.

All methods here are synchronous; the run-time path goes through
:class:`personae.store.writer.Writer`, which calls them from one worker thread
so the event loop never blocks on SQLite.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, func, insert, select, text, update
from sqlalchemy.exc import DatabaseError, OperationalError

from personae.errors import StoreError
from personae.store.ids import legacy_ceiling
from personae.store.migrations import migrate
from personae.store.rows import now
from personae.store.schema import (
    APPLICATION_ID,
    EPISODE_TABLES,
    AgentRow,
    EpisodeRow,
    EvaluationRow,
    ExperimentRow,
    LLMCallRow,
    MeasurementRow,
    MemoryRow,
    ScoreRow,
    StateRow,
    TurnRow,
)

#: Seconds opening a database waits for another program's write lock.
OPEN_WAIT = 120.0

#: Tables whose ids are allocated by the writer, so rows can point at each other before commit.
ID_TABLES: dict[str, Any] = {
    "agents": AgentRow,
    "llm_calls": LLMCallRow,
    "turns": TurnRow,
    "memories": MemoryRow,
    "states": StateRow,
    "measurements": MeasurementRow,
    "scores": ScoreRow,
    "evaluations": EvaluationRow,
}


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


def _defaults(table: str, keys: set[str]) -> dict[str, Any]:
    columns = ID_TABLES[table].__table__.columns
    out = {}
    for key in keys:
        default = columns[key].default
        out[key] = default.arg if default is not None and default.is_scalar else None
    return out


def _check_path(path: Path) -> None:
    """Make the folder of a new database, or say in one paragraph why it cannot be."""
    if path.is_dir():
        raise StoreError(
            f"{path} is a folder; --db takes the name of a database file, e.g. {path / 'runs.db'}."
        )
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise StoreError(
                f"cannot create {path}: {parent} is a file, not a folder. Give --db a path "
                "whose folders are folders."
            )
        if parent.exists():
            break
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"cannot create the folder {path.parent} for {path.name}: "
            f"{exc.strerror or exc}. Give --db a path in a folder you can write to."
        ) from None


class Database:
    """A personae SQLite file opened for writing.

    Args:
        path: The database file; created with the schema if it does not exist.

    Raises:
        StoreError: The file belongs to another program, is not SQLite, or is locked.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        _check_path(self.path)
        _check_foreign(self.path)
        # Connect by path, not by URL: a file name may hold '?', '#' or '%'.
        target = str(self.path)
        self.engine: Engine = create_engine(
            "sqlite://",
            creator=lambda: sqlite3.connect(target, check_same_thread=False),
        )

        @event.listens_for(self.engine, "connect")
        def _pragmas(dbapi_con: sqlite3.Connection, _record: object) -> None:
            cur = dbapi_con.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=10000")
            cur.close()

        started = time.monotonic()
        while True:
            try:
                with self.engine.begin() as conn:
                    conn.execute(text(f"PRAGMA application_id={APPLICATION_ID}"))
                    migrate(conn)
                break
            except OperationalError as exc:
                # Another program holding the write lock is waited out for a while.
                locked = "locked" in str(exc.orig) or "busy" in str(exc.orig)
                if locked and time.monotonic() - started < OPEN_WAIT:
                    time.sleep(1.0)
                    continue
                raise StoreError(f"could not open {self.path}: {exc.orig}") from None
            except DatabaseError as exc:
                raise StoreError(
                    f"{self.path} is not a usable SQLite database: {exc.orig}"
                ) from None
        self._next_id = {name: self._max_legacy_id(name) + 1 for name in ID_TABLES}

    def _max_legacy_id(self, table: str) -> int:
        """The largest id in block 0, where the ``max(id) + 1`` numbering of old files lives."""
        column = ID_TABLES[table].id
        with self.engine.connect() as conn:
            top = conn.execute(select(func.max(column)).where(column < legacy_ceiling())).scalar()
        return int(top or 0)

    def allocate_ids(self, table: str, count: int = 1) -> int:
        """Reserve ``count`` ids in ``table`` outside every episode's block; return the first.

        The rows of an episode take ids from its own block (:mod:`personae.store.ids`);
        this numbering, ``max(id) + 1`` below ``2**32``, is what older files used
        and what :meth:`Writer.new_id <personae.store.writer.Writer.new_id>` still
        gives (until 0.4).

        Raises:
            StoreError: Block 0 of ``table`` is full.
        """
        first = self._next_id[table]
        if first + count > legacy_ceiling():
            raise StoreError(
                f"{self.path}: {table} has no legacy row ids left below 2**32; give rows "
                "ids from their episode's block (personae.store.ids.first_id)"
            )
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
        replay: str | None = None,
    ) -> int:
        """Return the id of the experiment with this identity, creating it if new.

        ``config_hash`` is the experiment's identity (which does not include its
        extent: replicates and grid values); an experiment found again has its
        stored configuration updated to ``config``, so a grown grid is recorded.
        ``replay`` (the run's replay mode) is recorded when given; the caller
        checks first that it agrees with the one stored (:meth:`replay_of`).
        """
        with self.engine.begin() as conn:
            found = conn.execute(
                select(ExperimentRow.id).where(ExperimentRow.config_hash == config_hash)
            ).scalar()
            config_json = json.dumps(config, sort_keys=True, default=str)
            if found is not None:
                conn.execute(
                    update(ExperimentRow)
                    .where(ExperimentRow.id == found)
                    .values(
                        model=model,
                        server_info=json.dumps(server_info or {}),
                        config_json=config_json,
                        **({"replay": replay} if replay is not None else {}),
                    )
                )
                return int(found)
            result = conn.execute(
                insert(ExperimentRow).values(
                    name=name,
                    scenario=scenario,
                    config_hash=config_hash,
                    config_json=config_json,
                    seed=seed,
                    model=model,
                    server_info=json.dumps(server_info or {}),
                    code_version=code_version,
                    created_at=now(),
                    replay=replay,
                )
            )
            return int(result.inserted_primary_key[0])  # type: ignore[index]

    def replay_of(self, experiment_id: int) -> str | None:
        """The replay mode an experiment was run in; None if there is no such experiment.

        An experiment made before modes were recorded ran ``fast`` if its
        embedded server had the prefix cache on (its ``server_info`` says),
        else ``exact``.
        """
        with self.engine.connect() as conn:
            row = conn.execute(
                select(ExperimentRow.replay, ExperimentRow.server_info).where(
                    ExperimentRow.id == experiment_id
                )
            ).one_or_none()
        if row is None:
            return None
        if row.replay is not None:
            return str(row.replay)
        try:
            info = json.loads(row.server_info or "{}")
        except ValueError:
            info = {}
        return "fast" if isinstance(info, dict) and info.get("prefix_caching") is True else "exact"

    def code_version(self, experiment_id: int) -> str | None:
        """The personae version that began an experiment."""
        with self.engine.connect() as conn:
            return conn.execute(
                select(ExperimentRow.code_version).where(ExperimentRow.id == experiment_id)
            ).scalar()

    def find_experiment(self, config_hash: str) -> int | None:
        """The id of the experiment with this identity, if stored."""
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

    def episodes_by_key(self, experiment_id: int) -> dict[tuple[str, int], tuple[int, int, str]]:
        """Map (parameter key, replicate) to (episode id, param_index, status).

        The key is the canonical JSON of the episode's grid parameters; rows
        written before keys were stored are matched by their parameters as
        first written (``params_json`` before any drawn values were merged in,
        which for those rows is the same text).
        """
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    EpisodeRow.param_key,
                    EpisodeRow.params_json,
                    EpisodeRow.replicate,
                    EpisodeRow.id,
                    EpisodeRow.param_index,
                    EpisodeRow.status,
                ).where(EpisodeRow.experiment_id == experiment_id)
            )
            return {(r[0] or r[1], r[2]): (r[3], r[4], r[5]) for r in rows}

    def incomplete_rows(self, experiment_id: int) -> dict[int, str]:
        """Complete episodes of an experiment whose rows are not all stored.

        Compares each complete episode's stored rows with the counts recorded
        when it completed (``episodes.row_counts``), or, for episodes written
        before counts were recorded, its turns with ``n_turns``. Also finds a
        generated turn whose model-call row is missing.

        Returns:
            Episode id -> what is missing, e.g. ``"turns: 192 of 200"``.
        """
        problems: dict[int, str] = {}
        with self.engine.connect() as conn:
            expected = {
                int(r[0]): (json.loads(r[1]) if r[1] else {}, r[2])
                for r in conn.execute(
                    select(EpisodeRow.id, EpisodeRow.row_counts, EpisodeRow.n_turns).where(
                        EpisodeRow.experiment_id == experiment_id,
                        EpisodeRow.status == "complete",
                    )
                )
            }
            if not expected:
                return problems
            stored: dict[str, dict[int, int]] = {}
            for table in EPISODE_TABLES:
                stored[table] = {
                    int(r[0]): int(r[1])
                    for r in conn.execute(
                        text(
                            f"SELECT t.episode_id, COUNT(*) FROM {table} t JOIN episodes e "
                            "ON e.id = t.episode_id WHERE e.experiment_id = :x "
                            "AND e.status = 'complete' GROUP BY t.episode_id"
                        ),
                        {"x": experiment_id},
                    )
                }
            orphans = {
                int(r[0])
                for r in conn.execute(
                    text(
                        "SELECT DISTINCT t.episode_id FROM turns t JOIN episodes e "
                        "ON e.id = t.episode_id LEFT JOIN llm_calls c ON c.id = t.llm_call_id "
                        "WHERE e.experiment_id = :x AND e.status = 'complete' "
                        "AND t.scripted = 0 AND c.id IS NULL"
                    ),
                    {"x": experiment_id},
                )
            }
        for episode_id, (counts, n_turns) in expected.items():
            if not counts and n_turns is not None:
                counts = {"turns": n_turns}
            short = [
                f"{table}: {stored[table].get(episode_id, 0)} of {want}"
                for table, want in sorted(counts.items())
                if stored.get(table, {}).get(episode_id, 0) != want
            ]
            if episode_id in orphans:
                short.append("a generated turn has no llm_calls row")
            if short:
                problems[episode_id] = ", ".join(short)
        return problems

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
                .values(
                    status="pending", error=None, n_turns=None, end_reason=None, row_counts=None
                )
            )

    def create_episodes(self, experiment_id: int, specs: Iterable[Mapping[str, Any]]) -> None:
        """Insert pending episode rows (param_index, replicate, params, seed, key) not yet present."""
        rows = [
            {
                "experiment_id": experiment_id,
                "param_index": s["param_index"],
                "replicate": s["replicate"],
                "params_json": json.dumps(s["params"], sort_keys=True, default=str),
                "param_key": s.get("key"),
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
                    # executemany needs the same keys in every row; absent ones take
                    # the column's default (NULL where it has none).
                    keys = set().union(*batch)
                    uniform = [
                        r if len(r) == len(keys) else _defaults(table, keys) | r for r in batch
                    ]
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
