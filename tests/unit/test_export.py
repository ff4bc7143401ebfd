"""``personae export``: every table and view as Parquet or CSV, parameters as columns, types kept."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import subprocess
import sys

import polars as pl
import pytest

from personae import Experiment, FunctionModel
from personae.store.export import export, param_column_names
from tests.support.browse_db import make_db, scenario


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    return make_db(tmp_path_factory.mktemp("export") / "study.db")


def objects(db):
    con = sqlite3.connect(db)
    try:
        return dict(
            con.execute(
                "SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') "
                "AND name NOT LIKE 'sqlite_%' AND name <> '_migrations'"
            ).fetchall()
        )
    finally:
        con.close()


def sql(db, query):
    con = sqlite3.connect(db)
    try:
        return con.execute(query).fetchall()
    finally:
        con.close()


def personae(*args):
    return subprocess.run(
        [sys.executable, "-m", "personae.cli", *args], capture_output=True, text=True, timeout=60
    )


def test_parquet_has_every_table_and_view_with_every_row(db, tmp_path):
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    files = export(db, tmp_path / "out")
    expected = objects(db)
    assert {f.name: f.kind for f in files} == expected
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        f"{name}.parquet" for name in expected
    )
    for f in files:
        frame = pl.read_parquet(f.path)
        assert frame.height == sql(db, f'SELECT COUNT(*) FROM "{f.name}"')[0][0], f.name
        own = [r[1] for r in sql(db, f"PRAGMA table_info('{f.name}')")]
        assert frame.columns[: len(own)] == own, f.name  # the database's columns, in order
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before


def test_parameters_are_columns_of_every_file_with_an_episode(db, tmp_path):
    export(db, tmp_path)
    episodes = pl.read_parquet(tmp_path / "episodes.parquet")
    assert episodes["param_client_style"].to_list() == [
        json.loads(p)["client.style"] for p in episodes["params_json"]
    ]
    transcript = pl.read_parquet(tmp_path / "transcript.parquet")
    styles = transcript.group_by("param_client_style").agg(pl.col("episode_id").n_unique())
    assert dict(styles.iter_rows()) == {"plain": 2, "verbose": 2}  # complete episodes only
    for name in ("turns", "llm_calls", "states", "scores", "trait_scores", "episode_summary"):
        frame = pl.read_parquet(tmp_path / f"{name}.parquet")
        assert frame.columns[-1] == "param_client_style", name
        joined = frame.join(
            episodes.select("id", "param_client_style"), left_on="episode_id", right_on="id"
        )
        assert (joined["param_client_style"] == joined["param_client_style_right"]).all(), name
    assert "param_client_style" not in pl.read_parquet(tmp_path / "experiments.parquet").columns


def test_types_are_kept(db, tmp_path):
    export(db, tmp_path)
    calls = pl.read_parquet(tmp_path / "llm_calls.parquet")
    assert calls.schema["seed"] == pl.Int64
    assert calls.schema["latency_ms"] == pl.Float64
    assert calls.schema["raw_text"] == pl.String
    assert calls.schema["raw_bytes"] == pl.Binary
    assert calls["raw_bytes"].null_count() == calls.height  # NULL stays null
    turns = pl.read_parquet(tmp_path / "turns.parquet")
    assert turns.schema["truncated"] == pl.Int64 and turns["truncated"].sum() == 2
    states = pl.read_parquet(tmp_path / "states.parquet")
    assert states.schema["value"] == pl.Float64 and states.schema["t"] == pl.Int64
    summary = pl.read_parquet(tmp_path / "episode_summary.parquet")
    # computed columns of a view (COUNT, SUM) take the type of their values
    assert summary.schema["llm_calls"] == pl.Int64
    assert summary.schema["completion_tokens"] == pl.Int64
    episodes = pl.read_parquet(tmp_path / "episodes.parquet")
    assert episodes.filter(pl.col("status") == "failed")["n_turns"].null_count() == 2
    stored = sql(db, "SELECT latency_ms FROM llm_calls ORDER BY id")
    assert calls.sort("id")["latency_ms"].to_list() == [v for (v,) in stored]


def test_parameter_columns_keep_json_types(tmp_path):
    experiment = Experiment(
        scenario=scenario().model_copy(update={"probes": ()}),
        grid={"max_turns": [3, 4], "client.big_five.N": [1.5, 4]},
        seed=1,
    )
    db = tmp_path / "grid.db"
    asyncio.run(experiment.arun(db, FunctionModel.echo()))
    export(db, tmp_path / "out")
    episodes = pl.read_parquet(tmp_path / "out" / "episodes.parquet")
    assert episodes.schema["param_max_turns"] == pl.Int64
    assert episodes.schema["param_client_big_five_N"] == pl.Float64
    assert sorted(episodes["param_max_turns"].to_list()) == [3, 3, 4, 4]


def test_csv_writes_the_same_rows(db, tmp_path):
    export(db, tmp_path / "pq")
    files = export(db, tmp_path / "csv", "csv")
    assert {f.path.suffix for f in files} == {".csv"}
    for f in files:
        parquet = pl.read_parquet(tmp_path / "pq" / f"{f.name}.parquet")
        csv = pl.read_csv(f.path, infer_schema_length=None)
        assert csv.columns == parquet.columns, f.name
        assert csv.height == parquet.height, f.name
    transcript = pl.read_csv(tmp_path / "csv" / "transcript.csv")
    assert transcript.schema["step"] == pl.Int64
    assert transcript["text"].to_list()[:2] == [
        t for (t,) in sql(db, "SELECT text FROM transcript LIMIT 2")
    ]


def test_param_column_names_are_plain_and_unique():
    assert param_column_names(["client.style", "a b", "a-b", "√"]) == [
        "param_client_style",
        "param_a_b",
        "param_a_b_2",
        "param_value",
    ]


def test_cli_exports_and_refuses_what_is_not_a_database(db, tmp_path):
    r = personae("export", str(db), "--format", "csv", "--out", str(tmp_path / "csv"))
    assert r.returncode == 0, r.stderr
    assert "files written to" in r.stdout
    assert (tmp_path / "csv" / "transcript.csv").is_file()
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n")
    r = personae("export", str(text), "--out", str(tmp_path / "x"))
    assert r.returncode == 2
    assert "is not an SQLite database" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x").exists()
    r = personae("export", str(tmp_path / "missing.db"), "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "no database at" in r.stderr
    r = personae("export", str(db), "--format", "xlsx", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "xlsx" in r.stderr
