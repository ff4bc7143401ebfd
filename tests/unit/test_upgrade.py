"""A database written by personae 0.1.0 still opens, queries, reports and takes new runs.

``tests/data/v0_1_0.db`` was made by the 0.1.0 release: a two-person scenario
with a PHQ-9 probe, a grid of two client styles x 2 replicates, all complete.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from pathlib import Path

from personae import Experiment, FunctionModel, Opening, Persona, Scenario
from personae.analysis.report import write_report
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
    assert migrations == ["m001_initial", "m002_measurements", "m003_honest_rows"]
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
