"""The Ray executor on a local Ray cluster: episodes in actors, rows in the one database.

One cluster (2 CPUs, no dashboard) serves the module. The model is the
loopback fault server (deterministic replies by seed), reached by every
actor on its own, and the experiment comes from a scenario file, as with
``personae run study.py --executor ray``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest
import ray

from personae import Experiment, FunctionModel
from personae.errors import ConfigError, StoreError
from personae.llm.openai import OpenAIChatModel
from personae.loading import load_target
from personae.runner.executors import (
    Executor,
    LocalExecutor,
    RayExecutor,
    executor_from_options,
)
from personae.runner.executors.ray import EpisodeWorker, hand_over
from personae.runner.experiment import as_experiment
from personae.runner.jobs import EpisodeJob, ModelEndpoint, scenario_identity
from personae.runner.run import run_experiment
from tests.support.fault_server import Fault, FaultServer

SCENARIO = """
from personae import Experiment, Opening, Persona, Scenario

scenario = Scenario(
    name="dialogue",
    agents=[Persona(name="Lee", role="counselor"), Persona(name="Sam", role="client")],
    opening=Opening(speaker="Lee", text="Hi Sam, what brings you in?"),
    max_turns=6,
)
experiment = Experiment(scenario=scenario, grid={"Sam.style": ["plain", "verbose"]},
                        replicates=3, seed=3)
"""
ROWS = (
    "SELECT id, episode_id, step, agent_id, content, llm_call_id FROM turns ORDER BY id",
    "SELECT id, episode_id, agent_id, seed, params_json FROM llm_calls ORDER BY id",
    "SELECT id, episode_id, name, persona_json FROM agents ORDER BY id",
    "SELECT id, status, row_counts FROM episodes ORDER BY id",
)


@pytest.fixture(scope="module")
def cluster():
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("study") / "dialogue.py"
    path.write_text(SCENARIO)
    return path


@pytest.fixture(scope="module")
def server():
    with FaultServer() as fault_server:
        yield fault_server


@pytest.fixture(scope="module")
def reference(study, server, tmp_path_factory) -> Path:
    """The whole experiment run by the local executor: the rows every other run must match."""
    db = tmp_path_factory.mktemp("reference") / "local.db"
    summary = run(study, db, server, LocalExecutor(4))
    assert summary.completed == 6
    return db


def ray_executor(**options) -> RayExecutor:
    return RayExecutor(workers=2, episodes_per_worker=3, **options)


def run(study: Path, db: Path, server: FaultServer, executor: Executor):
    return asyncio.run(start(study, db, server, executor))


async def start(study: Path, db: Path, server: FaultServer, executor: Executor):
    model = OpenAIChatModel(server.base_url, "fault-model")
    try:
        return await run_experiment(
            as_experiment(load_target(str(study))), db, model, executor=executor, target=str(study)
        )
    finally:
        await model.aclose()


def table(db: Path, sql: str) -> list[tuple]:
    con = sqlite3.connect(db)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def complete(db: Path) -> int:
    """Episodes stored complete so far (0 while the file is still being made)."""
    try:
        return table(db, "SELECT COUNT(*) FROM episodes WHERE status = 'complete'")[0][0]
    except sqlite3.OperationalError:
        return 0


def same_rows(db: Path, reference: Path) -> None:
    for sql in ROWS:
        assert table(db, sql) == table(reference, sql), sql


def test_episodes_run_in_actors_and_store_the_rows_of_a_local_run(
    cluster, study, server, reference, tmp_path
):
    executor = ray_executor()
    reported_before = server.count
    summary = run(study, tmp_path / "ray.db", server, executor)
    assert (summary.completed, summary.failed, summary.turns, summary.calls) == (6, 0, 36, 30)
    assert executor.ran_here == 0 and server.count - reported_before == 30
    same_rows(tmp_path / "ray.db", reference)


def test_ctrl_c_keeps_complete_episodes_and_the_local_executor_finishes_the_run(
    cluster, study, server, reference, tmp_path
):
    db = tmp_path / "x.db"
    # The client of the "verbose" episodes is never answered; the "plain" ones finish.
    server.configure(faults=[Fault("hang", match="You talk a lot")])

    async def main():
        task = asyncio.create_task(start(study, db, server, ray_executor()))
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not task.done():
            await asyncio.sleep(0.1)
            if complete(db) == 3:
                break
        task.cancel()
        return await task

    try:
        summary = asyncio.run(main())
    finally:
        server.configure(faults=[])
    assert summary.interrupted and summary.completed == 3
    statuses = dict(table(db, "SELECT status, COUNT(*) FROM episodes GROUP BY 1"))
    assert statuses == {"complete": 3, "interrupted": 3}
    kept = table(db, "SELECT * FROM turns ORDER BY id")
    assert len(kept) == 18  # only the complete episodes' rows

    rerun = run(study, db, server, LocalExecutor(4))
    assert (rerun.already_complete, rerun.completed) == (3, 3)
    assert set(kept) <= set(table(db, "SELECT * FROM turns ORDER BY id"))
    same_rows(db, reference)


def test_a_local_run_is_finished_by_the_ray_executor(cluster, study, server, reference, tmp_path):
    db = tmp_path / "x.db"
    run(study, db, server, LocalExecutor(4))
    con = sqlite3.connect(db)
    con.execute("UPDATE episodes SET status = 'interrupted' WHERE id IN (2, 5)")
    con.execute("DELETE FROM turns WHERE episode_id IN (2, 5) AND step > 1")
    con.commit()
    con.close()
    executor = ray_executor()
    summary = run(study, db, server, executor)
    assert (summary.already_complete, summary.completed, executor.ran_here) == (4, 2, 0)
    same_rows(db, reference)


def test_a_killed_worker_has_its_episodes_redone_and_nothing_duplicated(
    cluster, study, server, reference, tmp_path
):
    db = tmp_path / "x.db"
    executor = ray_executor()
    server.configure(delay_s=0.05)

    async def main():
        seen = server.count
        task = asyncio.create_task(start(study, db, server, executor))
        while server.count < seen + 4:  # episodes are under way in both actors
            await asyncio.sleep(0.02)
        pid = await executor.actors[0].pid.remote()
        os.kill(pid, signal.SIGKILL)
        return await task

    try:
        summary = asyncio.run(main())
    finally:
        server.configure(delay_s=0.0)
    assert executor.redone >= 1
    assert (summary.completed, summary.failed) == (6, 0)
    assert table(db, "SELECT COUNT(*), COUNT(DISTINCT id) FROM turns") == [(36, 36)]
    same_rows(db, reference)


def test_jobs_that_cannot_leave_this_process_are_refused_with_the_reason(dialogue, tmp_path):
    experiment = Experiment(scenario=dialogue, replicates=2)
    with pytest.raises(ConfigError, match="built in Python code"):
        asyncio.run(
            run_experiment(
                experiment, tmp_path / "x.db", FunctionModel.echo(), executor=ray_executor()
            )
        )
    # with run_here they run in this process, and no cluster is needed for them
    executor = ray_executor(run_here=True)
    summary = asyncio.run(
        run_experiment(experiment, tmp_path / "y.db", FunctionModel.echo(), executor=executor)
    )
    assert (summary.completed, executor.ran_here) == (2, 2)


def test_the_command_line_options_name_an_executor():
    assert executor_from_options("local") is None
    assert executor_from_options("local", max_episodes=8).max_episodes == 8
    executor = executor_from_options("ray", "auto", workers=3, episodes_per_worker=16)
    assert isinstance(executor, RayExecutor)
    assert (executor.address, executor.workers, executor.episodes_per_worker) == ("auto", 3, 16)
    assert executor_from_options("ray", "local").address is None
    with pytest.raises(ConfigError, match="one of local, ray"):
        executor_from_options("dask")
    with pytest.raises(ConfigError, match="--executor ray"):
        executor_from_options("local", "auto")


class Refusing:
    """A run sink that refuses the third turn row, as the writer refuses a row it cannot store."""

    def __init__(self) -> None:
        self.turns = 0
        self.updates: list[dict] = []

    def add(self, row) -> None:
        if row.table == "turns":
            self.turns += 1
            if self.turns == 3:
                raise StoreError("turns.content cannot be stored")

    def update_episode(self, episode_id: int, **values) -> None:
        self.updates.append(values)


def test_a_worker_hands_over_rows_then_status_and_a_refused_row_fails_the_episode(study, tmp_path):
    experiment = as_experiment(load_target(str(study)))
    spec = experiment.episodes()[0]
    job = EpisodeJob(
        str(study), spec, 7, ModelEndpoint("echo", "echo"), scenario_identity(experiment)
    )
    outcome, ops = asyncio.run(EpisodeWorker().run(job))  # what an actor runs, without Ray
    assert outcome.status == "complete" and outcome.turns == 6
    assert [op[0] for op in ops] == ["update", *["row"] * (len(ops) - 2), "update"]
    assert ops[0][2]["status"] == "running" and ops[-1][2]["status"] == "complete"

    sink = Refusing()
    handed = hand_over(outcome, ops, sink)
    assert handed.status == "failed" and "cannot be stored" in handed.error
    assert [u["status"] for u in sink.updates] == ["running", "failed"]  # never complete
