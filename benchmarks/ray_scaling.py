"""Fake-model throughput through the Ray executor: 1 worker against 2 (and the local executor).

The Ray case of ``personae bench`` (:func:`personae.bench_cases.ray_scaling`)
with its own episode count: the experiment of ``benchmarks/fake_overhead.py``
(counseling, episodes of 40 utterances, max_tokens 32, the zero-latency echo
model, a real SQLite file), run three ways in one process, one after the other:

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

``personae bench --case ray --fake-episodes 200`` measures the same, as a table.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from personae.bench_cases import ray_scaling


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--turns", type=int, default=40)
    parser.add_argument("--episodes-per-worker", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="personae-ray-") as tmp:
        report = ray_scaling(
            args.episodes, args.turns, Path(tmp), episodes_per_worker=args.episodes_per_worker
        )
    report["config"] = {**vars(args), "cpus": os.cpu_count()}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
