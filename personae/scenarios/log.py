"""Where an episode's rows go: the store's writer, or memory for quick runs and tests."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Protocol


class EpisodeLog(Protocol):
    """Receives every row an episode produces.

    ``new_id`` allocates an id so a row can be referenced (a turn points at
    its LLM call) before anything is committed.
    """

    def new_id(self, table: str) -> int: ...

    def add(self, table: str, row: dict[str, Any]) -> None: ...


class MemoryLog:
    """Keeps rows in lists, by table; for running a scenario without a database."""

    def __init__(self) -> None:
        self.rows: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        self._ids: defaultdict[str, int] = defaultdict(int)

    def new_id(self, table: str) -> int:
        self._ids[table] += 1
        return self._ids[table]

    def add(self, table: str, row: dict[str, Any]) -> None:
        self.rows[table].append(row)


class WriterLog:
    """Sends rows to the store's :class:`~personae.store.writer.Writer`, tagged with the episode id.

    Attributes:
        counts: Rows handed over so far, by table; stored with the episode when
            it completes so that a later run can check that all of them are there.
    """

    def __init__(self, writer: Any, episode_id: int) -> None:
        self.writer = writer
        self.episode_id = episode_id
        self.counts: defaultdict[str, int] = defaultdict(int)

    def new_id(self, table: str) -> int:
        return int(self.writer.new_id(table))

    def add(self, table: str, row: dict[str, Any]) -> None:
        row["episode_id"] = self.episode_id
        self.writer.add(table, row)
        self.counts[table] += 1
