"""The one writer task: rows from every episode are buffered and committed in batches.

Episodes hand rows to :class:`Writer` without waiting; each row is checked
at hand-over (:func:`~personae.store.rows.check_row`), so a row SQLite could
not store fails the episode that made it and no other. A background task
commits what has accumulated every ``interval`` seconds (or sooner once
``batch_size`` rows are waiting) in one transaction, on a worker thread so
the event loop never blocks on SQLite.

What ``complete`` means is kept whatever happens to the file:

* An episode status change is committed in the same transaction as, or after,
  every row handed over before it.
* A locked or busy database (another program holding a write lock) is waited
  out: the same batch is tried again with backoff for up to ``write_wait``
  seconds; nothing is dropped.
* When a batch cannot be written for another reason, it is written again one
  episode at a time, so only the episodes whose rows SQLite refuses lose them.
  Those episodes are *lost* (:attr:`Writer.lost`): their later rows are not
  written, they are never marked complete, and they are marked failed (or,
  if even that cannot be written, left unfinished) so that a rerun redoes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import defaultdict
from typing import Any

from sqlalchemy.exc import OperationalError, SQLAlchemyError

from personae.errors import StoreError
from personae.store.database import Database
from personae.store.rows import Record, check_row, count_rows

#: Seconds a batch waits for a locked database before its episodes are given up.
DEFAULT_WRITE_WAIT = 1800.0

_TRANSIENT = ("database is locked", "database table is locked", "database is busy")

Rows = dict[str, list[dict[str, Any]]]


def is_transient(exc: BaseException) -> bool:
    """Whether a write failed only because another connection holds a lock."""
    orig = getattr(exc, "orig", exc)
    return isinstance(exc, OperationalError) and any(t in str(orig).lower() for t in _TRANSIENT)


class Writer:
    """Batches rows for a :class:`Database` and commits them from one task.

    Args:
        db: The open database.
        batch_size: Pending rows that trigger a commit before the interval ends.
        interval: Longest time in seconds a row waits before it is committed.
        write_wait: Seconds a batch keeps retrying a locked database.

    Attributes:
        lost: Episode id -> why its rows could not all be written.
        locked_since: ``time.time()`` since when the database has refused
            writes as locked (None while it accepts them), for the progress bar.
        lock_waits: Times a commit found the database locked.

    Example:
        >>> async with Writer(db) as writer:  # doctest: +SKIP
        ...     writer.add(StateRecord(id=first_id(7) + 1, episode_id=7, t=0, variable="mood",
        ...                            value=2.0, source="rule"))
    """

    def __init__(
        self,
        db: Database,
        *,
        batch_size: int = 2000,
        interval: float = 0.2,
        write_wait: float = DEFAULT_WRITE_WAIT,
    ) -> None:
        self.db = db
        self.batch_size = batch_size
        self.interval = interval
        self.write_wait = write_wait
        self._rows: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        self._updates: list[dict[str, Any]] = []
        self._pending = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._commit_lock = asyncio.Lock()
        self._closing = False
        self.lost: dict[int, str] = {}
        self.locked_since: float | None = None
        self.lock_waits = 0
        self.committed_rows = 0
        self.commits = 0

    def new_id(self, table: str, count: int = 1) -> int:
        """Allocate ids outside every episode's block (the numbering of older files).

        Episode sinks number their rows in the episode's own block instead
        (:class:`~personae.engine.sink.WriterLog`, :mod:`personae.store.ids`);
        this stays for code written against 0.2 and goes in 0.4.
        """
        return self.db.allocate_ids(table, count)

    def add(self, row: Record | str, values: dict[str, Any] | None = None) -> None:
        """Check one typed row and queue it; never waits.

        Takes a record of :mod:`personae.store.rows` (its ``episode_id`` filled
        in), or the older ``add("turns", {...})`` form, kept until 0.4.

        Raises:
            StoreError: The row cannot be stored (see :func:`check_row`; the
                message names the table and the field, e.g. a dict in
                ``states.text``), or its episode already lost rows in a failed write.
        """
        if isinstance(row, Record):
            table, data = row.table, row.values()
        elif isinstance(row, str) and isinstance(values, dict):
            table, data = row, values
        else:
            raise StoreError(
                f"Writer.add takes a typed row (personae.store.rows), not {type(row).__name__}"
            )
        episode_id = data.get("episode_id")
        if episode_id in self.lost:
            raise StoreError(self.lost[episode_id])
        self._rows[table].append(check_row(table, data))
        self._pending += 1
        if self._pending >= self.batch_size:
            self._wake.set()

    def update_episode(self, episode_id: int, **values: Any) -> None:
        """Queue a change to an episode row, applied after every row queued before it."""
        self._updates.append({"id": episode_id, **values})
        self._pending += 1

    async def flush(self) -> None:
        """Commit everything queued so far and wait until it is on disk (or given up)."""
        await self._commit_pending()

    async def start(self) -> Writer:
        """Start the background commit task."""
        self._task = asyncio.create_task(self._run(), name="personae-writer")
        return self

    async def close(self) -> None:
        """Commit what is left and stop the task; safe to call twice."""
        if self._closing:
            return
        self._closing = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._commit_pending()

    async def __aenter__(self) -> Writer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _run(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            await self._commit_pending()

    async def _commit_pending(self) -> None:
        async with self._commit_lock:
            if not self._pending:
                return
            rows, updates = dict(self._rows), self._updates
            self._rows, self._updates = defaultdict(list), []
            self._pending = 0
            # Shielded: a cancelled run must not abandon a transaction half way.
            await asyncio.shield(asyncio.to_thread(self._write, rows, updates))

    # -- on the worker thread ----------------------------------------------------------------

    def _write(self, rows: Rows, updates: list[dict[str, Any]]) -> None:
        rows, updates = self._without_lost(rows, updates)
        try:
            self._with_lock_wait(self.db.commit_batch, rows, updates)
        except SQLAlchemyError as exc:
            self._write_per_episode(rows, updates, exc)
            return
        self.committed_rows += count_rows(rows) + len(updates)
        self.commits += 1

    def _with_lock_wait(self, commit: Any, rows: Rows, updates: list[dict[str, Any]]) -> None:
        """Run ``commit`` until it succeeds, retrying while the database is locked."""
        started = time.monotonic()
        tries = 0
        while True:
            try:
                commit(rows, updates)
            except SQLAlchemyError as exc:
                if not is_transient(exc) or time.monotonic() - started > self.write_wait:
                    raise
                tries += 1
                self.lock_waits += 1
                if self.locked_since is None:
                    self.locked_since = time.time()
                time.sleep(random.uniform(0.0, min(5.0, 0.1 * 2.0**tries)))
                continue
            self.locked_since = None
            return

    def _write_per_episode(
        self, rows: Rows, updates: list[dict[str, Any]], first: SQLAlchemyError
    ) -> None:
        """After a batch failed for good: each episode's rows in a transaction of its own."""
        by_episode: defaultdict[Any, Rows] = defaultdict(lambda: defaultdict(list))
        for table, batch in rows.items():
            for row in batch:
                by_episode[row.get("episode_id")][table].append(row)
        episode_updates: defaultdict[Any, list[dict[str, Any]]] = defaultdict(list)
        for upd in updates:
            episode_updates[upd["id"]].append(upd)
        for episode_id in [*by_episode, *(e for e in episode_updates if e not in by_episode)]:
            part, upds = by_episode.get(episode_id, {}), episode_updates.get(episode_id, [])
            try:
                self._with_lock_wait(self.db.commit_batch, part, upds)
            except SQLAlchemyError as exc:
                self._lose(episode_id, exc, first)
                continue
            self.committed_rows += count_rows(part) + len(upds)
        self.commits += 1

    def _lose(self, episode_id: Any, exc: SQLAlchemyError, first: SQLAlchemyError) -> None:
        reason = str(getattr(exc, "orig", None) or exc).strip() or type(exc).__name__
        message = (
            f"rows of episode {episode_id} could not be written to {self.db.path} ({reason}); "
            "the episode was not kept and will be run again"
        )
        if episode_id is None:  # pragma: no cover - every episode row carries its id
            raise StoreError(message) from first
        self.lost[episode_id] = message
        with contextlib.suppress(SQLAlchemyError):
            self._with_lock_wait(
                self.db.commit_batch, {}, [{"id": episode_id, "status": "failed", "error": message}]
            )

    def _without_lost(
        self, rows: Rows, updates: list[dict[str, Any]]
    ) -> tuple[Rows, list[dict[str, Any]]]:
        """Drop the rows of lost episodes; turn their ``complete`` into ``failed``."""
        if not self.lost:
            return rows, updates
        kept = {
            table: [r for r in batch if r.get("episode_id") not in self.lost]
            for table, batch in rows.items()
        }
        fixed = []
        for upd in updates:
            if upd["id"] in self.lost and upd.get("status") in {"complete", "running"}:
                upd = {"id": upd["id"], "status": "failed", "error": self.lost[upd["id"]]}
            fixed.append(upd)
        return kept, fixed

    def describe_wait(self) -> str:
        """One line for people while the database is locked, else ``""``."""
        if self.locked_since is None:
            return ""
        clock = time.strftime("%H:%M:%S", time.localtime(self.locked_since))
        return f"database locked by another program since {clock}; waiting"
