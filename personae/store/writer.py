"""The one writer task: rows from every episode are buffered and committed in batches.

Episodes hand rows to :class:`Writer` without waiting; a background task
commits what has accumulated every ``interval`` seconds (or sooner once
``batch_size`` rows are waiting) in one transaction, on a worker thread so the
event loop never blocks on SQLite. An episode status change is committed in
the same transaction as, or after, every row handed over before it: an episode
marked complete always has all its rows.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from typing import Any

from personae.errors import StoreError
from personae.store.database import Database


class Writer:
    """Batches rows for a :class:`Database` and commits them from one task.

    Args:
        db: The open database.
        batch_size: Pending rows that trigger a commit before the interval ends.
        interval: Longest time in seconds a row waits before it is committed.

    Example:
        >>> async with Writer(db) as writer:  # doctest: +SKIP
        ...     turn_id = writer.new_id("turns")
        ...     writer.add("turns", {"id": turn_id, ...})
    """

    def __init__(self, db: Database, *, batch_size: int = 2000, interval: float = 0.2) -> None:
        self.db = db
        self.batch_size = batch_size
        self.interval = interval
        self._rows: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        self._updates: list[dict[str, Any]] = []
        self._pending = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._failure: BaseException | None = None
        self.committed_rows = 0
        self.commits = 0

    def new_id(self, table: str, count: int = 1) -> int:
        """Allocate ids for rows of ``table`` that other rows will point at."""
        return self.db.allocate_ids(table, count)

    def add(self, table: str, row: dict[str, Any]) -> None:
        """Queue one row for ``table``; never waits."""
        self._raise_failure()
        self._rows[table].append(row)
        self._pending += 1
        if self._pending >= self.batch_size:
            self._wake.set()

    def update_episode(self, episode_id: int, **values: Any) -> None:
        """Queue a change to an episode row, applied after every row queued before it."""
        self._raise_failure()
        self._updates.append({"id": episode_id, **values})
        self._pending += 1

    async def flush(self) -> None:
        """Commit everything queued so far and wait until it is on disk."""
        self._raise_failure()
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
        self._raise_failure()

    async def __aenter__(self) -> Writer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _run(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            try:
                await self._commit_pending()
            except StoreError:
                return

    async def _commit_pending(self) -> None:
        if not self._pending:
            return
        rows, updates = dict(self._rows), self._updates
        self._rows, self._updates = defaultdict(list), []
        count, self._pending = self._pending, 0
        try:
            # Shielded: a cancelled run must not abandon a transaction half way.
            await asyncio.shield(asyncio.to_thread(self.db.commit_batch, rows, updates))
        except Exception as exc:
            self._failure = exc
            raise StoreError(f"writing to {self.db.path} failed: {exc}") from exc
        self.committed_rows += count
        self.commits += 1

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise StoreError(
                f"writing to {self.db.path} failed earlier: {self._failure}. "
                "Episodes already marked complete are safe; rerun to finish the rest."
            )
