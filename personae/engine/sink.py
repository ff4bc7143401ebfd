"""Where an episode's rows go: the store's writer, or memory for quick runs and tests.

Rows are the typed records of :mod:`personae.store.rows` (one per table). A sink
checks each record when it is handed over, so a malformed one fails the episode
that made it with a message naming the field, not a later commit.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Protocol

from personae.errors import StoreError
from personae.store.ids import BLOCK, first_id
from personae.store.rows import RECORDS, Record, check_row

__all__ = ["EpisodeLog", "EpisodeSink", "MemoryLog", "WriterLog", "as_record"]


class EpisodeSink(Protocol):
    """Receives every row an episode produces.

    ``new_id`` allocates an id so a row can be referenced (a turn points at
    its LLM call) before anything is committed; a sink for a stored episode
    numbers them in the episode's block (:mod:`personae.store.ids`).
    """

    def new_id(self, table: str) -> int: ...

    def add(self, row: Record) -> None: ...


#: The name this protocol had before typed rows; kept until 0.4.
EpisodeLog = EpisodeSink


def as_record(row: Record | str, values: dict[str, Any] | None = None) -> Record:
    """A typed record from a record, or from the older ``(table, dict)`` form."""
    if isinstance(row, Record):
        return row
    kind = RECORDS.get(row)
    if kind is None or values is None:
        raise TypeError(f"add() takes a typed row (personae.store.rows), not {row!r}")
    check_row(row, {"episode_id": 0, **values})
    return kind(**values)


class MemoryLog:
    """Keeps rows in lists, by table; for running a scenario without a database.

    Args:
        episode_id: Whose rows these are. Given, rows are numbered in that
            episode's block of ids and tagged with it, as the store would;
            left at 0, rows are numbered 1, 2, 3, ... per table.

    Attributes:
        rows: Column values of every row added, by table.
        records: The typed rows themselves, in the order they were added.
    """

    def __init__(self, episode_id: int = 0) -> None:
        self.episode_id = episode_id
        self.rows: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        self.records: list[Record] = []
        self._ids = _EpisodeIds(episode_id)

    def new_id(self, table: str) -> int:
        return self._ids.next(table)

    def add(self, row: Record | str, values: dict[str, Any] | None = None) -> None:
        record = as_record(row, values)
        if self.episode_id:
            record = record.for_episode(self.episode_id)
        self.rows[record.table].append(check_row(record.table, record.values()))
        self.records.append(record)


class WriterLog:
    """Sends one episode's rows to a run sink (the store's :class:`~personae.store.writer.Writer`).

    Each row is tagged with the episode id and numbered in the episode's own
    block of ids (:mod:`personae.store.ids`), so rows of different episodes
    never share an id, whichever writer or file they go to.

    Args:
        writer: Anything with ``add(record)``: the run's writer, a shard writer.
        episode_id: The episode the rows belong to.

    Attributes:
        counts: Rows handed over so far, by table; stored with the episode when
            it completes so that a later run can check that all of them are there.
    """

    def __init__(self, writer: Any, episode_id: int) -> None:
        self.writer = writer
        self.episode_id = episode_id
        self.counts: defaultdict[str, int] = defaultdict(int)
        self._ids = _EpisodeIds(episode_id)

    def new_id(self, table: str) -> int:
        return self._ids.next(table)

    def add(self, row: Record | str, values: dict[str, Any] | None = None) -> None:
        record = as_record(row, values).for_episode(self.episode_id)
        self.writer.add(record)
        self.counts[record.table] += 1


class _EpisodeIds:
    """Row ids of one episode, counted per table inside its block (1, 2, ... for episode 0)."""

    def __init__(self, episode_id: int) -> None:
        self.base = first_id(episode_id) if episode_id else 0
        self.used: defaultdict[str, int] = defaultdict(int)

    def next(self, table: str) -> int:
        self.used[table] += 1
        if self.used[table] >= BLOCK:
            raise StoreError(f"episode rows of {table} past {BLOCK - 1} have no id left")
        return self.base + self.used[table]
