"""The store and runner with the fake model and a real SQLite file."""

import asyncio
import sqlite3

import pytest

from personae import Experiment, FunctionModel, Persona, Scenario
from personae.errors import ConfigError, ModelError, StoreError
from personae.store import Database, query
from personae.store.migrations import MIGRATIONS
from personae.store.schema import APPLICATION_ID


def run(exp, db, model=None):
    return asyncio.run(exp.arun(db, model or FunctionModel.echo()))


def rows(db, sql):
    con = sqlite3.connect(db)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_round_trip_episodes_turns_calls(dialogue, tmp_path):
    db = tmp_path / "x.db"
    exp = Experiment(
        scenario=dialogue, grid={"client.style": ["plain", "verbose"]}, replicates=3, seed=9
    )
    summary = run(exp, db)
    assert (summary.completed, summary.failed, summary.total) == (6, 0, 6)
    assert rows(db, "SELECT status, COUNT(*) FROM episodes GROUP BY 1") == [("complete", 6)]
    per_episode = rows(
        db, "SELECT episode_id, COUNT(*), COUNT(DISTINCT speaker) FROM transcript GROUP BY 1"
    )
    assert [(n, k) for _, n, k in per_episode] == [(6, 2)] * 6
    # one call per generated turn, each with its seed and sampling parameters
    calls = rows(db, "SELECT seed, params_json, model FROM llm_calls")
    assert len(calls) == 6 * 5
    assert all(seed is not None and '"temperature"' in params for seed, params, _ in calls)
    assert rows(db, "SELECT DISTINCT replicate FROM episodes ORDER BY 1") == [(0,), (1,), (2,)]
    assert rows(db, "PRAGMA application_id") == [(APPLICATION_ID,)]
    assert rows(db, "PRAGMA journal_mode") == [("wal",)]


def test_rerun_skips_complete_and_redoes_unfinished(dialogue, tmp_path):
    db = tmp_path / "x.db"
    exp = Experiment(scenario=dialogue, replicates=4, seed=1)
    run(exp, db)
    before = rows(db, "SELECT episode_id, step, text FROM transcript ORDER BY 1, 2")
    # Simulate a crash: one episode left running with half its rows.
    con = sqlite3.connect(db)
    con.execute("UPDATE episodes SET status = 'running' WHERE id = 2")
    con.execute("DELETE FROM turns WHERE episode_id = 2 AND step > 2")
    con.commit()
    con.close()
    summary = run(exp, db)
    assert (summary.already_complete, summary.completed) == (3, 1)
    assert rows(db, "SELECT episode_id, step, text FROM transcript ORDER BY 1, 2") == before
    assert rows(db, "SELECT COUNT(*) FROM turns") == [(24,)]
    assert rows(db, "SELECT COUNT(*) FROM experiments") == [(1,)]
    assert rows(db, "PRAGMA integrity_check") == [("ok",)]


def test_seeds_do_not_depend_on_grid_order_or_size(dialogue):
    small = Experiment(scenario=dialogue, grid={"max_turns": [4]}, replicates=2, seed=3)
    large = Experiment(scenario=dialogue, grid={"max_turns": [6, 4]}, replicates=2, seed=3)
    seeds_small = {(tuple(s.params.items()), s.replicate): s.seed for s in small.episodes()}
    seeds_large = {(tuple(s.params.items()), s.replicate): s.seed for s in large.episodes()}
    assert all(seeds_large[k] == v for k, v in seeds_small.items())
    assert len(set(seeds_large.values())) == 4


def test_unknown_grid_parameter_fails_before_running(dialogue):
    with pytest.raises(ConfigError, match="unknown parameter 'mood'"):
        Experiment(scenario=dialogue, grid={"mood": [1, 2]})


def test_failed_episode_is_not_counted_complete(dialogue, tmp_path):
    db = tmp_path / "x.db"

    def flaky(messages, call):
        if call.seed % 3 == 0:
            raise ModelError("the server said no")
        return "fine"

    exp = Experiment(scenario=dialogue, replicates=6, seed=4)
    summary = run(exp, db, FunctionModel(flaky))
    assert summary.failed > 0
    assert summary.completed + summary.failed == 6
    failed = rows(db, "SELECT error FROM episodes WHERE status = 'failed'")
    assert all("the server said no" in e for (e,) in failed)
    assert rows(db, "SELECT COUNT(DISTINCT episode_id) FROM transcript") == [(summary.completed,)]


def test_foreign_database_is_refused_untouched(tmp_path):
    db = tmp_path / "other.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE invoices (id INTEGER)")
    con.commit()
    con.close()
    before = db.read_bytes()
    with pytest.raises(StoreError, match="another program"):
        Database(db)
    assert db.read_bytes() == before
    text = tmp_path / "notes.db"
    text.write_text("hello, not sqlite" * 100)
    with pytest.raises(StoreError, match="not an SQLite database"):
        Database(text)


def test_readonly_query_refuses_writes(dialogue, tmp_path):
    db = tmp_path / "x.db"
    run(Experiment(scenario=dialogue, replicates=1), db)
    cols, data = query(db, "SELECT COUNT(*) AS n FROM turns")
    assert cols == ["n"] and data == [(6,)]
    for statement in (
        "DELETE FROM turns",
        "DROP TABLE turns",
        "INSERT INTO experiments(name) VALUES ('x')",
    ):
        with pytest.raises(StoreError, match="read-only"):
            query(db, statement)
    assert query(db, "SELECT COUNT(*) FROM turns")[1] == [(6,)]
    with pytest.raises(StoreError, match="no such table"):
        query(db, "SELECT * FROM nowhere")


def test_transcript_view_shows_complete_episodes_only(dialogue, tmp_path):
    db = tmp_path / "x.db"
    run(Experiment(scenario=dialogue, replicates=2), db)
    con = sqlite3.connect(db)
    con.execute("UPDATE episodes SET status = 'running' WHERE id = 1")
    con.commit()
    con.close()
    assert rows(db, "SELECT DISTINCT episode_id FROM transcript") == [(2,)]


def test_migrations_are_recorded_once(tmp_path):
    db = tmp_path / "x.db"
    Database(db).close()
    Database(db).close()
    assert rows(db, "SELECT name FROM _migrations ORDER BY name") == [
        (name,) for name, _ in MIGRATIONS
    ]


def test_a_database_from_before_the_measurement_tables_is_upgraded(tmp_path):
    db = tmp_path / "old.db"
    Database(db).close()
    con = sqlite3.connect(db)
    con.executescript(
        "DROP VIEW trait_scores; DROP TABLE scores; DROP TABLE measurements;"
        "DELETE FROM _migrations WHERE name = 'm002_measurements';"
    )
    con.close()
    Database(db).close()
    assert rows(db, "SELECT COUNT(*) FROM trait_scores") == [(0,)]
    assert rows(db, "SELECT COUNT(*) FROM measurements") == [(0,)]


def test_python_entry_point_runs_a_scenario_from_sync_code(tmp_path):
    sc = Scenario(name="tiny", agents=(Persona(name="A"), Persona(name="B")), max_turns=3)
    summary = Experiment(scenario=sc, replicates=2).run(tmp_path / "t.db", FunctionModel.echo())
    assert summary.complete == 2 and summary.turns == 6


def test_completed_episodes_counts_what_a_rerun_would_skip(dialogue, tmp_path):
    from personae.runner.run import completed_episodes

    db = tmp_path / "x.db"
    exp = Experiment(scenario=dialogue, replicates=3)
    assert completed_episodes(exp, db, "echo") == 0
    run(exp, db)
    assert completed_episodes(exp, db, "echo") == 3
    assert completed_episodes(exp, db, "another-model") == 0
