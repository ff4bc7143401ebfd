"""What every sink must do. Add an implementation by adding one parameter to a fixture.

``episode_sink`` covers every sink an episode writes to (the in-memory log, the
store's writer through :class:`WriterLog`; a shard writer later). ``durable``
covers the run sinks that commit to a file (the store's :class:`Writer`).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from personae.engine.sink import MemoryLog, WriterLog
from personae.errors import StoreError
from personae.store import Database, Writer
from personae.store.ids import BLOCK
from personae.store.rows import AgentRecord, LLMCallRecord, Record, StateRecord, TurnRecord


def episodes(db: Path, n: int) -> Database:
    """A database holding an experiment with episodes 1..n (rows need their episode)."""
    database = Database(db)
    experiment_id = database.ensure_experiment(
        name="x", scenario="x", config={}, config_hash="h", seed=0, model=None,
        server_info=None, code_version=None,
    )  # fmt: skip
    database.create_episodes(
        experiment_id,
        [{"param_index": 0, "replicate": r, "params": {}, "seed": r} for r in range(n)],
    )
    return database


class MemoryHarness:
    def __init__(self, tmp_path: Path) -> None:
        self.logs: dict[int, MemoryLog] = {}

    async def open(self) -> None:
        pass

    def sink(self, episode_id: int) -> MemoryLog:
        return self.logs.setdefault(episode_id, MemoryLog(episode_id))

    async def rows(self, table: str) -> list[dict[str, Any]]:
        return [row for log in self.logs.values() for row in log.rows[table]]

    async def close(self) -> None:
        pass


class WriterHarness:
    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "sink.db"
        self.logs: dict[int, WriterLog] = {}

    async def open(self) -> None:
        self.database = episodes(self.path, 2)
        self.writer = await Writer(self.database).start()

    def sink(self, episode_id: int) -> WriterLog:
        return self.logs.setdefault(episode_id, WriterLog(self.writer, episode_id))

    async def rows(self, table: str) -> list[dict[str, Any]]:
        await self.writer.flush()
        con = sqlite3.connect(self.path)
        con.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in con.execute(f"SELECT * FROM {table} ORDER BY id")]
        finally:
            con.close()

    async def close(self) -> None:
        await self.writer.close()
        self.database.close()


@pytest.fixture(
    params=[
        pytest.param(MemoryHarness, id="memory"),
        pytest.param(WriterHarness, id="writer"),
    ]
)
def episode_sink(request, tmp_path) -> Any:
    return request.param(tmp_path)


def within(harness: Any, body: Callable[[], Any]) -> Any:
    async def main() -> Any:
        await harness.open()
        try:
            return await body()
        finally:
            await harness.close()

    return asyncio.run(main())


def some_rows(sink: Any) -> list[Record]:
    agent = AgentRecord(id=sink.new_id("agents"), name="Lee", role="counselor", persona_json="{}")
    call = LLMCallRecord(
        id=sink.new_id("llm_calls"), agent_id=agent.id, purpose="turn", seed=7, completion_tokens=3
    )
    turn = TurnRecord(id=sink.new_id("turns"), step=1, agent_id=agent.id, content="Hi, Sam.",
                      llm_call_id=call.id)  # fmt: skip
    state = StateRecord(id=sink.new_id("states"), t=1, variable="mood", value=2.5, source="rule")
    return [agent, call, turn, state]


def test_typed_rows_are_stored_with_their_values(episode_sink):
    async def body() -> None:
        sink = episode_sink.sink(2)
        made = some_rows(sink)
        for record in made:
            sink.add(record)
        for record in made:
            (stored,) = [r for r in await episode_sink.rows(record.table) if r["id"] == record.id]
            want = record.for_episode(2).values()
            assert {k: stored[k] for k in want} == want

    within(episode_sink, body)


def test_an_episodes_row_ids_are_distinct_and_in_its_own_block(episode_sink):
    async def body() -> None:
        ids = [episode_sink.sink(e).new_id("turns") for e in (1, 2) for _ in range(3)]
        assert len(set(ids)) == 6
        assert [i // BLOCK for i in ids] == [1, 1, 1, 2, 2, 2]

    within(episode_sink, body)


def test_a_malformed_record_is_refused_at_hand_over_naming_the_field(episode_sink):
    async def body() -> None:
        sink = episode_sink.sink(1)
        bad = StateRecord(id=sink.new_id("states"), t=0, variable="v", text={"a": 1}, source="x")  # type: ignore[arg-type]
        with pytest.raises(StoreError, match=r"a dict in states\.text, which stores text"):
            sink.add(bad)
        assert await episode_sink.rows("states") == []

    within(episode_sink, body)


def test_the_older_table_and_dict_form_is_still_taken(episode_sink):
    async def body() -> None:
        sink = episode_sink.sink(1)
        row_id = sink.new_id("states")
        sink.add("states", {"id": row_id, "t": 0, "variable": "v", "value": 1.0, "source": "x"})
        (stored,) = await episode_sink.rows("states")
        assert (stored["id"], stored["episode_id"], stored["value"]) == (row_id, 1, 1.0)

    within(episode_sink, body)


# -- run sinks that commit to a file -----------------------------------------------------


class RecordingDatabase(Database):
    """The real database, noting what each commit held."""

    commits: list[tuple[list[tuple[str, int]], list[dict[str, Any]]]]

    def commit_batch(self, rows, episode_updates) -> None:  # type: ignore[no-untyped-def]
        super().commit_batch(rows, episode_updates)
        held = [(table, r["episode_id"]) for table, batch in rows.items() for r in batch]
        self.commits.append((held, list(episode_updates)))


@pytest.fixture(params=[pytest.param("writer", id="writer")])
def durable(request, tmp_path) -> Callable[[Database], Any]:
    return lambda database: Writer(database, batch_size=3, interval=0.01)


def test_an_episode_is_marked_complete_only_with_or_after_all_its_rows(durable, tmp_path):
    database = RecordingDatabase(tmp_path / "x.db")
    database.commits = []
    experiment_id = database.ensure_experiment(
        name="x", scenario="x", config={}, config_hash="h", seed=0, model=None,
        server_info=None, code_version=None,
    )  # fmt: skip
    database.create_episodes(
        experiment_id, [{"param_index": 0, "replicate": r, "params": {}, "seed": r} for r in (0, 1)]
    )

    async def main() -> None:
        async with durable(database) as writer:
            one, two = WriterLog(writer, 1), WriterLog(writer, 2)
            for turn in range(4):
                for log in (one, two):
                    log.add(StateRecord(id=log.new_id("states"), t=turn, variable="v", source="x"))
                    await asyncio.sleep(0)
                if turn == 2:
                    writer.update_episode(1, status="complete")
            writer.update_episode(2, status="complete")

    asyncio.run(main())
    database.close()
    committed: dict[int, int] = {1: 0, 2: 0}
    completed = []
    for held, updates in database.commits:
        for _, episode_id in held:
            committed[episode_id] += 1
        for update in updates:
            if update.get("status") == "complete":
                # everything handed over before the status change is in by now
                assert committed[update["id"]] >= (3 if update["id"] == 1 else 4)
                completed.append(update["id"])
    assert completed == [1, 2] and len(database.commits) > 1


def test_a_row_sqlite_refuses_fails_only_its_episode(durable, tmp_path):
    database = episodes(tmp_path / "x.db", 2)

    async def main() -> Writer:
        async with durable(database) as writer:
            for episode_id in (1, 2):
                log = WriterLog(writer, episode_id)
                for record in some_rows(log):
                    log.add(record)
                if episode_id == 2:  # a second "Lee" breaks UNIQUE(episode_id, name) at commit
                    log.add(AgentRecord(id=log.new_id("agents"), name="Lee", role="x",
                                        persona_json="{}"))  # fmt: skip
                writer.update_episode(episode_id, status="complete")
        return writer

    writer = asyncio.run(main())
    database.close()
    assert set(writer.lost) == {2} and "UNIQUE" in writer.lost[2]
    con = sqlite3.connect(tmp_path / "x.db")
    assert con.execute("SELECT id, status FROM episodes ORDER BY id").fetchall() == [
        (1, "complete"),
        (2, "failed"),
    ]
    assert con.execute("SELECT DISTINCT episode_id FROM agents").fetchall() == [(1,)]
