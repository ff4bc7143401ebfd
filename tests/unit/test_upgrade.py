"""Databases written by earlier releases still open, query, report, resume and take new runs.

``tests/data/v0_1_0.db`` was made by the 0.1.0 release: a two-person scenario
with a PHQ-9 probe, a grid of two client styles x 2 replicates, all complete.
``tests/data/v0_2_0.db`` was made by 0.2.0 with ``tests/data/make_v0_2_0.py``:
the same shape, one episode left interrupted.
"""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
import sqlite3
from pathlib import Path

from personae import Experiment, FunctionModel, Opening, Persona, Scenario
from personae.analysis.report import write_report
from personae.report import write_report as report_page
from personae.store import Database, query

OLD = Path(__file__).parents[1] / "data" / "v0_1_0.db"


def copy(tmp_path: Path) -> Path:
    db = tmp_path / "old.db"
    shutil.copyfile(OLD, db)
    return db


def test_an_old_database_is_read_as_it_is(tmp_path):
    db = copy(tmp_path)
    columns, rows = query(db, "SELECT episode_id, speaker, text FROM transcript")
    assert columns == ["episode_id", "speaker", "text"] and len(rows) == 16
    _, scores = query(db, "SELECT COUNT(*) FROM trait_scores WHERE instrument = 'phq-9'")
    assert scores[0][0] > 0


def test_an_old_database_is_upgraded_reported_and_takes_a_new_run(tmp_path):
    db = copy(tmp_path)
    Database(db).close()
    con = sqlite3.connect(db)
    migrations = [r[0] for r in con.execute("SELECT name FROM _migrations ORDER BY rowid")]
    old_turns = con.execute(
        "SELECT COUNT(*), SUM(truncated), SUM(empty) FROM transcript"
    ).fetchone()
    con.close()
    assert migrations == [
        "m001_initial",
        "m002_measurements",
        "m003_honest_rows",
        "m004_row_id_blocks",
        "m005_agent_prompts",
        "m006_endpoints",
        "m007_evaluations",
        "m008_replay",
    ]
    assert old_turns == (16, 0, 0)

    path = write_report(db, tmp_path / "old.html")
    assert "Experiments" in path.read_text()

    scenario = Scenario(
        name="pair",
        agents=[Persona(name="Lee", role="counselor"), Persona(name="Sam", role="client")],
        opening=Opening(speaker="Lee", text="Hello."),
        max_turns=4,
    )
    summary = asyncio.run(
        Experiment(scenario=scenario, replicates=2, seed=9).arun(db, FunctionModel.echo())
    )
    assert summary.completed == 2
    _, counts = query(db, "SELECT experiment_id, COUNT(*) FROM episodes GROUP BY 1 ORDER BY 1")
    assert counts == [(1, 4), (2, 2)]  # the old experiment's episodes are untouched


# -- a database made by the previous release, 0.2.0 ------------------------------------------

V020 = Path(__file__).parents[1] / "data" / "v0_2_0.db"


def _fixture_experiment() -> Experiment:
    """The experiment ``v0_2_0.db`` holds, defined once in the script that made it."""
    path = V020.with_name("make_v0_2_0.py")
    spec = importlib.util.spec_from_file_location("make_v0_2_0", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.experiment()


def test_a_020_database_opens_queries_and_reports(tmp_path):
    db = tmp_path / "v020.db"
    shutil.copyfile(V020, db)
    _, statuses = query(db, "SELECT status, COUNT(*) FROM episodes GROUP BY 1 ORDER BY 1")
    assert statuses == [("complete", 3), ("interrupted", 1)]
    _, talk = query(db, "SELECT COUNT(DISTINCT episode_id), COUNT(*) FROM transcript")
    assert talk == [(3, 12)]  # only complete episodes are shown
    _, phq = query(db, "SELECT COUNT(*) FROM trait_scores WHERE instrument = 'phq-9'")
    assert phq[0][0] == 6
    path = report_page(db, tmp_path / "v020.html")
    assert "v0.2.0 fixture" in path.read_text()


def test_a_020_database_is_resumed_redoing_only_the_unfinished_episode(tmp_path):
    db = tmp_path / "v020.db"
    shutil.copyfile(V020, db)
    con = sqlite3.connect(db)
    kept = {
        table: con.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()
        for table in ("agents", "turns", "llm_calls", "measurements", "scores")
    }
    episodes_before = con.execute(
        "SELECT id, param_index, replicate, seed FROM episodes"
    ).fetchall()
    (unfinished,) = con.execute("SELECT id FROM episodes WHERE status != 'complete'").fetchone()
    con.close()

    summary = asyncio.run(_fixture_experiment().arun(db, FunctionModel.echo()))

    assert (summary.already_complete, summary.completed, summary.failed) == (3, 1, 0)
    con = sqlite3.connect(db)
    assert con.execute("SELECT COUNT(*) FROM experiments").fetchone() == (1,)  # found by identity
    assert con.execute("SELECT id, param_index, replicate, seed FROM episodes").fetchall() == (
        episodes_before
    )
    assert con.execute("SELECT DISTINCT status FROM episodes").fetchall() == [("complete",)]
    for table, rows in kept.items():
        # every row of the complete episodes keeps its id and values
        old_ids = con.execute(
            f"SELECT * FROM {table} WHERE episode_id != ? ORDER BY id", (unfinished,)
        ).fetchall()
        # (a column added since, agents.system_prompt, is NULL on the old rows)
        width = len(rows[0])
        assert [r[:width] for r in old_ids] == [r for r in rows if r[1] != unfinished], table
        assert all(v is None for r in old_ids for v in r[width:]), table
        # the redone episode's rows are numbered in its own block
        new_ids = [
            r[0] for r in con.execute(f"SELECT id FROM {table} WHERE episode_id = ?", (unfinished,))
        ]
        assert new_ids and all(i >> 32 == unfinished for i in new_ids), table
    con.close()
