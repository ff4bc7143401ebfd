"""Rows added to finished episodes after the fact: activation monitoring, evaluators.

An instrument that reads a stored transcript later (``personae monitor``,
``personae evaluate``) adds rows to episodes that are already complete. Those
rows take the next ids of the episode's own block (:mod:`personae.store.ids`),
and the episode's ``row_counts`` grows by what was added in the same
transaction, so a later resume of the experiment does not mistake the new
rows for a mismatch and run the episode again::

    appender = EpisodeAppender(database)
    call_id = appender.new_id("llm_calls", episode_id)
    appender.add(LLMCallRecord(id=call_id, episode_id=episode_id, agent_id=None, purpose="evaluate"))
    appender.commit()          # one transaction; nothing is written before
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from typing import Any

from sqlalchemy import func, insert, select, update

from personae.errors import StoreError
from personae.store.database import ID_TABLES, Database
from personae.store.ids import BLOCK, first_id
from personae.store.rows import Record, check_row
from personae.store.schema import EPISODE_TABLES, EpisodeRow

__all__ = ["EpisodeAppender"]


class EpisodeAppender:
    """Collects rows for stored episodes and writes them, with their counts, in one commit.

    Args:
        database: The open database the episodes are in.
    """

    def __init__(self, database: Database) -> None:
        self.database = database
        self._next: dict[tuple[str, int], int] = {}
        self._rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._added: dict[int, Counter[str]] = defaultdict(Counter)

    def new_id(self, table: str, episode_id: int) -> int:
        """The next free id of ``table`` in ``episode_id``'s block.

        Raises:
            StoreError: ``table`` has no per-episode ids.
        """
        if table not in ID_TABLES:
            raise StoreError(f"{table} is not a table of episode rows")
        key = (table, episode_id)
        if key not in self._next:
            column = ID_TABLES[table].id
            low = first_id(episode_id)
            with self.database.engine.connect() as conn:
                top = conn.execute(
                    select(func.max(column)).where(column > low, column < low + BLOCK)
                ).scalar()
            self._next[key] = int(top or low) + 1
        value = self._next[key]
        self._next[key] = value + 1
        return value

    def add(self, record: Record) -> None:
        """Queue one row (its ``episode_id`` set); checked now, written at :meth:`commit`.

        Raises:
            StoreError: The row does not fit its table (the message names the column).
        """
        if record.episode_id <= 0:
            raise StoreError(f"a row added after the fact needs its episode id: {record!r}")
        self._rows[record.table].append(check_row(record.table, record.values()))
        self._added[record.episode_id][record.table] += 1

    @property
    def pending(self) -> int:
        """Rows queued and not yet committed."""
        return sum(len(rows) for rows in self._rows.values())

    def commit(self) -> None:
        """Write the queued rows and grow each episode's ``row_counts`` by them, atomically."""
        if not self.pending:
            return
        with self.database.engine.begin() as conn:
            for table, rows in self._rows.items():
                conn.execute(insert(ID_TABLES[table]), rows)
            for episode_id, added in self._added.items():
                stored = conn.execute(
                    select(EpisodeRow.row_counts).where(EpisodeRow.id == episode_id)
                ).scalar()
                if stored is None:
                    continue  # an episode from before counts were kept: nothing to grow
                counts = json.loads(stored)
                for table, n in added.items():
                    if table in EPISODE_TABLES:
                        counts[table] = int(counts.get(table, 0)) + n
                conn.execute(
                    update(EpisodeRow)
                    .where(EpisodeRow.id == episode_id)
                    .values(row_counts=json.dumps(counts, sort_keys=True))
                )
        self._rows.clear()
        self._added.clear()
