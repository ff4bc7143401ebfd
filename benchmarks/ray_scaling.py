"""Fake-model throughput through the Ray executor: 1 worker against 2 (and the local executor).

The experiment of ``benchmarks/fake_overhead.py`` (counseling, episodes of 40
utterances, max_tokens 32, the zero-latency echo model, a real SQLite file),
run three ways in one process, one after the other:

* ``local``: the local executor, every episode a task of this event loop;
* ``ray-1``, ``ray-2``: the Ray executor with 1 and 2 actors on a local
  cluster; each actor loads the scenario from a file and calls its own echo
  model, and the rows of each episode come back to this process's writer.

Turns per second count everything from handing out the jobs to the last
commit, actor start-up included (the cluster itself is started once, before).
``driver_cpu_s`` is the CPU time this process spent meanwhile: with Ray, the
hand-over of rows and the writer, so ``turns_per_driver_cpu_s`` is about the
most turns per second one driver could store with workers on other machines.
Prints one JSON object::

    .venv/bin/python benchmarks/ray_scaling.py --episodes 200
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from personae import FunctionModel
from personae.loading import load_target
from personae.runner.executors import Executor, LocalExecutor, RayExecutor
from personae.runner.experiment import Experiment, as_experiment
from personae.runner.jobs import (
    EpisodeJob,
    EpisodeOutcome,
    ModelEndpoint,
    run_episode,
    scenario_identity,
)
from personae.store import Database, Writer

SCENARIO = """
from personae import Experiment
from personae.studies import counseling

scenario = counseling(max_turns={turns}, min_turns={turns} + 1).with_params({{"max_tokens": 32}})
experiment = Experiment(scenario=scenario, replicates={episodes}, seed=1234, name="bench")
"""


def jobs_for(db: Path, experiment: Experiment, target: str) -> list[EpisodeJob]:
    """What the runner does before handing out jobs: the episode rows, then one job each."""
    database = Database(db)
    try:
        experiment_id = database.ensure_experiment(
            name=experiment.label,
            scenario=experiment.scenario.name,
            config=experiment.config(),
            config_hash=experiment.identity("echo"),
            seed=experiment.seed,
            model="echo",
            server_info=None,
            code_version=None,
        )
        specs = experiment.episodes()
        database.create_episodes(
            experiment_id,
            [
                {"param_index": s.param_index, "replicate": s.replicate, "params": s.params}
                | {"seed": s.seed, "key": s.key}
                for s in specs
            ],
        )
        ids = {k: i for k, (i, _, _) in database.episodes_by_key(experiment_id).items()}
    finally:
        database.close()
    identity = scenario_identity(experiment)
    endpoint = ModelEndpoint("echo", "echo")
    return [EpisodeJob(target, s, ids[(s.key, s.replicate)], endpoint, identity) for s in specs]


async def once(
    executor: Executor, experiment: Experiment, target: str, folder: Path, tag: str
) -> dict[str, Any]:
    db = folder / f"{tag}.db"
    jobs = jobs_for(db, experiment, target)
    database = Database(db)
    outcomes: list[EpisodeOutcome] = []
    try:
        writer = Writer(database)
        await writer.start()
        run = functools.partial(run_episode, sink=writer)
        if isinstance(executor, LocalExecutor):  # in this process: the loaded experiment
            run = functools.partial(
                run_episode,
                sink=writer,
                model=FunctionModel.echo(record=False),
                experiment=experiment,
            )
        started, cpu = time.perf_counter(), time.process_time()
        await executor.map(jobs, run, outcomes.append)
        await writer.close()
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        database.close()
    turns = sum(o.turns for o in outcomes)
    complete = sum(o.status == "complete" for o in outcomes)
    return {
        "episodes": complete,
        "turns": turns,
        "elapsed_s": round(elapsed, 2),
        "turns_per_s": round(turns / elapsed, 1),
        # this process's CPU (its threads included): for Ray, what the driver's
        # hand-over and writer cost, so turns / driver_cpu_s bounds what one driver takes
        "driver_cpu_s": round(cpu, 2),
        "turns_per_driver_cpu_s": round(turns / cpu, 1) if cpu else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--turns", type=int, default=40)
    parser.add_argument("--episodes-per-worker", type=int, default=64)
    args = parser.parse_args()

    import ray

    with tempfile.TemporaryDirectory(prefix="personae-ray-") as tmp:
        folder = Path(tmp)
        target = folder / "bench.py"
        target.write_text(SCENARIO.format(turns=args.turns, episodes=args.episodes))
        experiment = as_experiment(load_target(str(target)))
        started = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        cluster_s = time.perf_counter() - started
        try:
            report: dict[str, Any] = {"cluster_start_s": round(cluster_s, 1)}
            runs: list[tuple[str, Executor]] = [
                ("local", LocalExecutor(256)),
                ("ray-1", RayExecutor(workers=1, episodes_per_worker=args.episodes_per_worker)),
                ("ray-2", RayExecutor(workers=2, episodes_per_worker=args.episodes_per_worker)),
            ]
            for tag, executor in runs:
                report[tag] = asyncio.run(once(executor, experiment, str(target), folder, tag))
        finally:
            ray.shutdown()
    report["ray_2_over_1"] = round(
        report["ray-2"]["turns_per_s"] / report["ray-1"]["turns_per_s"], 2
    )
    report["config"] = {**vars(args), "cpus": os.cpu_count()}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
