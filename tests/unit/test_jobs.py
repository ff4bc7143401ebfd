"""Episode jobs: picklable, runnable in a fresh process, and ids that no two sinks share."""

from __future__ import annotations

import asyncio
import pickle
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from personae import FunctionModel
from personae.bench_cases import executor_jobs
from personae.loading import load_target
from personae.runner.experiment import EpisodeSpec as FromExperiment
from personae.runner.experiment import Experiment
from personae.runner.jobs import (
    EpisodeJob,
    EpisodeOutcome,
    EpisodeSpec,
    run_episode,
)
from personae.store import Database, Writer
from personae.store.ids import BLOCK

SCENARIO_FILE = """
from personae import Experiment, Opening, Persona, Probe, Scenario

scenario = Scenario(
    name="filed",
    agents=[Persona(name="Lee", role="counselor"), Persona(name="Sam", role="client")],
    opening=Opening(speaker="Lee", text="Hi, how are you?"),
    max_turns=4,
    probes=[Probe("phq-9", at="end")],
)
experiment = Experiment(scenario=scenario, grid={"Sam.style": ["reserved", "verbose"]},
                        replicates=2, seed=3)
"""

TABLES = ("agents", "llm_calls", "turns", "memories", "states", "measurements", "scores")
VOLATILE = {"created_at", "latency_ms", "started_at", "finished_at"}


def coordinate(tmp_path: Path, experiment: Experiment, target: str | None) -> list[EpisodeJob]:
    """What the runner does before handing out jobs: the episode rows, then one job each."""
    return executor_jobs(tmp_path / "main.db", experiment, target)


async def run_into(db: Path, jobs: list[EpisodeJob], **options) -> list[EpisodeOutcome]:
    database = Database(db)
    try:
        async with Writer(database) as writer:
            return [await run_episode(job, writer, **options) for job in jobs]
    finally:
        database.close()


def stored(db: Path, episode_ids: list[int]) -> dict[str, list[tuple]]:
    """Every row of these episodes, without the columns that hold times."""
    con = sqlite3.connect(db)
    marks = ",".join(str(i) for i in episode_ids)
    out = {}
    for table in (*TABLES, "episodes"):
        key = "id" if table == "episodes" else "episode_id"
        cursor = con.execute(f"SELECT * FROM {table} WHERE {key} IN ({marks}) ORDER BY id")
        keep = [i for i, c in enumerate(cursor.description) if c[0] not in VOLATILE]
        out[table] = [tuple(row[i] for i in keep) for row in cursor]
    con.close()
    return out


def row_ids(db: Path) -> dict[str, set[int]]:
    con = sqlite3.connect(db)
    ids = {t: {r[0] for r in con.execute(f"SELECT id FROM {t}")} for t in TABLES}
    con.close()
    return ids


@pytest.fixture
def scenario_file(tmp_path: Path) -> Path:
    path = tmp_path / "filed.py"
    path.write_text(SCENARIO_FILE)
    return path


def test_episode_spec_moved_and_the_old_path_is_the_same_class():
    assert FromExperiment is EpisodeSpec
    assert EpisodeSpec(0, 1, {"a": 1}, seed=5).key == '{"a": 1}'


def test_a_job_and_its_outcome_pickle_without_the_scenario(scenario_file, tmp_path):
    experiment = load_target(str(scenario_file))
    job = coordinate(tmp_path, experiment, str(scenario_file))[0]
    blob = pickle.dumps(job)
    assert pickle.loads(blob) == job
    assert b"personae.engine" not in blob and b"Scenario" not in blob  # plain data only
    outcome = EpisodeOutcome(job.episode_id, "failed", "boom", {"turns": 2}, turns=2)
    assert pickle.loads(pickle.dumps(outcome)) == outcome


def test_a_job_for_a_scenario_file_runs_in_a_fresh_process_to_the_same_rows(
    scenario_file, tmp_path
):
    experiment = load_target(str(scenario_file))
    assert isinstance(experiment, Experiment)
    job = coordinate(tmp_path, experiment, str(scenario_file))[1]
    here, there = tmp_path / "here.db", tmp_path / "there.db"
    shutil.copyfile(tmp_path / "main.db", here)
    shutil.copyfile(tmp_path / "main.db", there)

    (outcome,) = asyncio.run(
        run_into(here, [job], model=FunctionModel.echo(), experiment=experiment)
    )
    (tmp_path / "job.pickle").write_bytes(pickle.dumps(job))
    worker = textwrap.dedent(
        f"""
        import asyncio, pickle, sys
        sys.path.insert(0, {str(Path(__file__).parents[2])!r})
        from tests.unit.test_jobs import run_into
        job = pickle.loads(open({str(tmp_path / "job.pickle")!r}, "rb").read())
        (outcome,) = asyncio.run(run_into(__import__("pathlib").Path({str(there)!r}), [job]))
        sys.stdout.buffer.write(pickle.dumps(outcome))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", worker], capture_output=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr.decode()
    remote = pickle.loads(done.stdout)

    assert outcome.status == remote.status == "complete"
    assert (remote.turns, remote.calls, dict(remote.rows)) == (
        outcome.turns,
        outcome.calls,
        dict(outcome.rows),
    )
    rows_here, rows_there = stored(here, [job.episode_id]), stored(there, [job.episode_id])
    assert rows_here["measurements"] and rows_here["turns"]
    assert rows_here == rows_there


def test_a_worker_refuses_a_scenario_file_changed_since_the_run_began(scenario_file, tmp_path):
    experiment = load_target(str(scenario_file))
    job = coordinate(tmp_path, experiment, str(scenario_file))[0]
    scenario_file.write_text(SCENARIO_FILE.replace("max_turns=4", "max_turns=6"))
    (outcome,) = asyncio.run(run_into(tmp_path / "main.db", [job], model=FunctionModel.echo()))
    assert outcome.status == "failed"
    assert "holds another scenario than the run was started with" in outcome.error
    con = sqlite3.connect(tmp_path / "main.db")
    status = con.execute("SELECT status, error FROM episodes WHERE id = ?", (job.episode_id,))
    assert status.fetchone() == ("failed", outcome.error)


def test_a_job_of_an_experiment_built_in_code_needs_the_experiment(dialogue, tmp_path):
    job = coordinate(tmp_path, Experiment(scenario=dialogue), None)[0]
    (outcome,) = asyncio.run(run_into(tmp_path / "main.db", [job], model=FunctionModel.echo()))
    assert outcome.status == "failed" and "built in Python code" in outcome.error
    (outcome,) = asyncio.run(
        run_into(
            tmp_path / "main.db",
            [job],
            model=FunctionModel.echo(),
            experiment=Experiment(scenario=dialogue),
        )
    )
    assert outcome.status == "complete" and outcome.turns == 6 and outcome.calls == 5


def test_two_writers_on_two_files_never_give_rows_the_same_id(scenario_file, tmp_path):
    experiment = load_target(str(scenario_file))
    jobs = coordinate(tmp_path, experiment, str(scenario_file))
    first, second = tmp_path / "shard-1.db", tmp_path / "shard-2.db"
    shutil.copyfile(tmp_path / "main.db", first)
    shutil.copyfile(tmp_path / "main.db", second)
    asyncio.run(run_into(first, jobs[:2], model=FunctionModel.echo()))
    asyncio.run(run_into(second, jobs[2:], model=FunctionModel.echo()))

    one, two = row_ids(first), row_ids(second)
    for table in ("agents", "llm_calls", "turns", "measurements", "scores"):
        assert one[table] and two[table], table
        assert not one[table] & two[table], table
    # every id sits in its episode's block, so a merge needs no renumbering
    con = sqlite3.connect(second)
    pairs = con.execute("SELECT id, episode_id FROM turns").fetchall()
    assert all(i // BLOCK == e for i, e in pairs)


def test_the_legacy_writer_new_id_stays_below_every_episode_block(tmp_path):
    database = Database(tmp_path / "x.db")
    try:
        writer = Writer(database)
        assert writer.new_id("turns") == 1 and writer.new_id("turns", 3) == 2
        assert writer.new_id("turns") == 5 < BLOCK
    finally:
        database.close()
