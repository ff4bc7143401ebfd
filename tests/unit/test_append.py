"""Rows added to complete episodes after the fact keep resume honest."""

from __future__ import annotations

import asyncio

from personae.agents import Persona
from personae.llm.fake import FunctionModel
from personae.runner.experiment import Experiment
from personae.runner.run import run_experiment
from personae.scenarios import Scenario
from personae.store.append import EpisodeAppender
from personae.store.database import Database
from personae.store.ids import block_of
from personae.store.rows import StateRecord


def _experiment() -> Experiment:
    scenario = Scenario(
        name="pair",
        agents=(Persona(name="Ann"), Persona(name="Bo")),
        max_turns=4,
    )
    return Experiment(scenario=scenario, replicates=2, seed=3)


def test_appended_rows_take_the_episodes_block_and_do_not_trigger_a_rerun(tmp_path):
    db = tmp_path / "run.db"
    experiment = _experiment()
    asyncio.run(run_experiment(experiment, db, FunctionModel.echo()))
    database = Database(db)
    try:
        with database.engine.connect() as conn:
            episode_ids = [r[0] for r in conn.exec_driver_sql("SELECT id FROM episodes")]
        appender = EpisodeAppender(database)
        for episode_id in episode_ids:
            for t in range(3):
                appender.add(
                    StateRecord(
                        id=appender.new_id("states", episode_id),
                        episode_id=episode_id,
                        t=t,
                        variable="projection",
                        value=0.5,
                        source="activation",
                    )
                )
        appender.commit()
        with database.engine.connect() as conn:
            rows = list(
                conn.exec_driver_sql(
                    "SELECT id, episode_id FROM states WHERE source = 'activation'"
                )
            )
        assert len(rows) == 3 * len(episode_ids)
        assert all(block_of(row_id) == episode_id for row_id, episode_id in rows)
        assert len({row_id for row_id, _ in rows}) == len(rows)
        experiment_id = database.find_experiment(experiment.identity("echo"))
        assert experiment_id is not None
        assert database.incomplete_rows(experiment_id) == {}
    finally:
        database.close()
    again = asyncio.run(run_experiment(experiment, db, FunctionModel.echo()))
    assert again.already_complete == 2 and again.completed == 0
