"""Framework overhead with a zero-latency model: turns per second, repeated.

The same experiment as ``personae bench``'s fake case (counseling, 200 episodes
of 40 utterances, max_tokens 32, FunctionModel.echo, a real SQLite file). Each
repeat runs in this process; the first pays for imports and graph compilation.

Compare two trees back to back on one machine, alternating, e.g. this tree and
an older release checked out as a worktree:

    .venv/bin/python benchmarks/fake_overhead.py 3
    (cd ../old && PYTHONPATH=. ../main/.venv/bin/python ../main/benchmarks/fake_overhead.py 3)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path

from personae import Experiment, FunctionModel
from personae.runner.run import run_experiment

try:
    from personae.studies import counseling
except ImportError:  # a release before 0.3.0
    from personae.scenarios.builtin import counseling


def experiment(episodes: int, turns: int) -> Experiment:
    scenario = counseling(max_turns=turns, min_turns=turns + 1).with_params({"max_tokens": 32})
    return Experiment(scenario=scenario, replicates=episodes, seed=1234, name="bench")


async def once(episodes: int, turns: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        summary = await run_experiment(
            experiment(episodes, turns), Path(folder) / "fake.db", FunctionModel.echo(record=False)
        )
    return summary.turns_per_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repeats", type=int, nargs="?", default=3)
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--turns", type=int, default=40)
    args = parser.parse_args()
    rates = [asyncio.run(once(args.episodes, args.turns)) for _ in range(args.repeats)]
    print("turns/s:", ", ".join(f"{r:.0f}" for r in rates), f"(mean {statistics.mean(rates):.0f})")


if __name__ == "__main__":
    main()
