"""What every executor must do. Add an implementation by adding one parameter to ``executor``.

Each test runs the same experiment through the executor (directly, or via the
runner with a real SQLite file) against the fake echo model; no server.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from personae import Experiment, FunctionModel
from personae.runner.executors import Executor, LocalExecutor, RayExecutor
from personae.runner.jobs import EpisodeJob, EpisodeOutcome, EpisodeSpec
from personae.runner.run import run_experiment


@pytest.fixture(
    params=[
        pytest.param(lambda: LocalExecutor(max_episodes=3), id="local"),
        pytest.param(lambda: LocalExecutor(max_episodes=1), id="local-serial"),
        # Jobs built in code with an in-process model run in this process; the same
        # checks on Ray actors (scenario file, served model) are in test_ray_executor.py.
        pytest.param(
            lambda: RayExecutor(workers=2, episodes_per_worker=3, run_here=True), id="ray"
        ),
    ]
)
def executor(request) -> Executor:
    return request.param()


def jobs(n: int) -> list[EpisodeJob]:
    return [EpisodeJob(None, EpisodeSpec(0, i, {}, seed=i), episode_id=i + 1) for i in range(n)]


def test_it_implements_the_protocol(executor):
    assert isinstance(executor, Executor)


def test_every_job_runs_once_and_every_outcome_is_reported_once(executor):
    ran: list[int] = []
    reported: list[EpisodeOutcome] = []

    async def run(job: EpisodeJob) -> EpisodeOutcome:
        ran.append(job.episode_id)
        await asyncio.sleep(0.001 * (job.episode_id % 3))
        return EpisodeOutcome(job.episode_id, "complete")

    asyncio.run(executor.map(jobs(10), run, reported.append))
    assert sorted(ran) == list(range(1, 11))
    assert sorted(o.episode_id for o in reported) == list(range(1, 11))


def test_cancelling_map_stops_the_unfinished_and_keeps_what_finished(executor):
    cancelled: list[int] = []
    reported: list[EpisodeOutcome] = []

    async def main() -> None:
        hold = asyncio.Event()

        async def run(job: EpisodeJob) -> EpisodeOutcome:
            try:
                if job.episode_id > 1:
                    await hold.wait()
            except asyncio.CancelledError:
                cancelled.append(job.episode_id)
                raise
            return EpisodeOutcome(job.episode_id, "complete")

        task = asyncio.create_task(executor.map(jobs(4), run, reported.append))
        while not reported:
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert [o.episode_id for o in reported] == [1]
    assert cancelled and 1 not in cancelled


# -- through the runner, into a database -------------------------------------------------


def run(experiment: Experiment, db: Path, executor: Executor, model=None):
    return asyncio.run(
        run_experiment(experiment, db, model or FunctionModel.echo(), executor=executor)
    )


def table(db: Path, sql: str) -> list[tuple]:
    con = sqlite3.connect(db)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.fixture
def experiment(dialogue) -> Experiment:
    return Experiment(scenario=dialogue, grid={"client.style": ["plain", "verbose"]}, replicates=3)


def test_all_episodes_run_once(executor, experiment, tmp_path):
    summary = run(experiment, tmp_path / "x.db", executor)
    assert (summary.completed, summary.failed, summary.turns, summary.calls) == (6, 0, 36, 30)
    per_episode = table(tmp_path / "x.db", "SELECT COUNT(*) FROM turns GROUP BY episode_id")
    assert per_episode == [(6,)] * 6


def test_resume_skips_complete_episodes_and_redoes_the_rest(executor, experiment, tmp_path):
    db = tmp_path / "x.db"
    run(experiment, db, executor)
    con = sqlite3.connect(db)
    con.execute("UPDATE episodes SET status = 'interrupted' WHERE id IN (2, 5)")
    con.execute("DELETE FROM turns WHERE episode_id = 2 AND step > 1")
    con.commit()
    con.close()
    summary = run(experiment, db, executor)
    assert (summary.already_complete, summary.completed) == (4, 2)
    assert table(db, "SELECT COUNT(*) FROM turns GROUP BY episode_id") == [(6,)] * 6


def test_ctrl_c_keeps_complete_episodes_and_marks_the_others_interrupted(
    executor, experiment, tmp_path
):
    db = tmp_path / "x.db"
    # 6 episodes of 5 calls: after 25 answers at least one episode has all its
    # replies (at most 4 each otherwise) and at least one is still waiting.
    answered, waiting = [0], [0]

    async def main():
        hold = asyncio.Event()

        async def reply(messages, call):
            if answered[0] >= 25:
                waiting[0] += 1
                await hold.wait()
            answered[0] += 1
            return f"reply {call.seed}"

        model = FunctionModel(reply, name="echo")
        task = asyncio.create_task(run_experiment(experiment, db, model, executor=executor))
        while not waiting[0]:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # the episodes with all their replies finish
        task.cancel()
        return await task

    summary = asyncio.run(main())
    assert summary.interrupted and 1 <= summary.completed <= 5
    statuses = dict(table(db, "SELECT status, COUNT(*) FROM episodes GROUP BY 1"))
    assert statuses["complete"] == summary.completed
    assert statuses["interrupted"] >= 1 and set(statuses) <= {"complete", "interrupted", "pending"}
    complete_rows = (
        "SELECT t.* FROM turns t JOIN episodes e ON e.id = t.episode_id "
        "WHERE e.status = 'complete' ORDER BY t.id"
    )
    kept = table(db, complete_rows)
    rerun = run(experiment, db, executor)
    assert (rerun.already_complete, rerun.complete) == (summary.completed, 6)
    assert set(kept) <= set(table(db, complete_rows))  # complete episodes were not redone
    assert table(db, "SELECT COUNT(*) FROM turns GROUP BY episode_id") == [(6,)] * 6


def test_the_same_seed_gives_the_same_rows(executor, experiment, tmp_path):
    run(experiment, tmp_path / "a.db", executor)
    run(experiment, tmp_path / "b.db", LocalExecutor(max_episodes=1))
    for sql in (
        "SELECT id, episode_id, step, agent_id, content, llm_call_id FROM turns ORDER BY id",
        "SELECT id, episode_id, agent_id, seed, params_json FROM llm_calls ORDER BY id",
        "SELECT id, episode_id, name, persona_json FROM agents ORDER BY id",
    ):
        assert table(tmp_path / "a.db", sql) == table(tmp_path / "b.db", sql)


def test_an_executor_of_the_02_protocol_still_runs_with_a_warning(experiment, tmp_path):
    class Serial:
        async def map(self, specs, run_one):
            for spec in specs:
                await run_one(spec)

    with pytest.warns(DeprecationWarning, match="map\\(jobs, run, report\\)"):
        summary = run(experiment, tmp_path / "x.db", Serial())
    assert summary.completed == 6
