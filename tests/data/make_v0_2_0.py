"""Makes ``tests/data/v0_2_0.db`` with personae 0.2.0 (the previous release); also the experiment.

Run it with the 0.2.0 code, from a worktree of that release::

    cd /tmp/before && PYTHONPATH=/tmp/before /work/main/.venv/bin/python \\
        /work/main/tests/data/make_v0_2_0.py /work/main/tests/data/v0_2_0.db

The tests import :func:`experiment` from here, so the current code runs the very
experiment the fixture holds (and finds it again by its identity).
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from pathlib import Path

from personae import Experiment, FunctionModel, Opening, Persona, Probe, Scenario

#: The episode left unfinished in the fixture, as (param_index, replicate).
UNFINISHED = (1, 0)


def experiment() -> Experiment:
    """Two people, a PHQ-9 at the end, 2 client styles x 2 replicates."""
    scenario = Scenario(
        name="pair",
        agents=[
            Persona(name="Lee", role="counselor"),
            Persona(name="Sam", role="client", style="reserved"),
        ],
        opening=Opening(speaker="Lee", text="Hello, what brings you in?"),
        max_turns=4,
        probes=[Probe("phq-9", at="end")],
    )
    return Experiment(
        scenario=scenario,
        grid={"Sam.style": ["reserved", "verbose"]},
        replicates=2,
        seed=11,
        name="v0.2.0 fixture",
    )


def main(path: Path) -> None:
    path.unlink(missing_ok=True)
    summary = asyncio.run(experiment().arun(path, FunctionModel.echo()))
    assert summary.completed == 4, summary
    con = sqlite3.connect(path)
    con.execute(
        "UPDATE episodes SET status = 'interrupted', finished_at = NULL, row_counts = NULL "
        "WHERE param_index = ? AND replicate = ?",
        UNFINISHED,
    )
    con.commit()
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.execute("PRAGMA journal_mode=DELETE")
    con.execute("VACUUM")
    con.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
