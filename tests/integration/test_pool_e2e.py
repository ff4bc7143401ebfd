"""A replica pool under a real experiment: one real vLLM server and one loopback server that dies.

The pool's second replica is a fault server serving the same model name; it is
killed while the run is under way. Every episode must still complete, with the
requests answered by both replicas and the dead one's episodes moved to the
real server.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

from personae import Experiment, Opening, Persona, Scenario
from personae.llm.pool import build_pool
from personae.runner.run import run_experiment
from tests.support.fault_server import FaultServer


def _scenario() -> Scenario:
    host = Persona(name="Ada", role="host", background="Runs a small bakery.")
    guest = Persona(name="Ben", role="guest", background="Buys bread there every morning.")
    return Scenario(
        name="bakery",
        agents=(host, guest),
        rules={"host": "Answer in one sentence.", "guest": "Answer in one sentence."},
        opening=Opening(speaker="Ada", text="Good morning Ben, the usual?"),
        max_turns=5,
    )


def _replicas_recorded(db: Path) -> dict[str, int]:
    """Stored model calls per ``llm_calls.replica``."""
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT replica, COUNT(*) FROM llm_calls GROUP BY 1").fetchall()
        return {str(replica): int(n) for replica, n in rows}
    finally:
        con.close()


async def test_an_experiment_survives_a_replica_dying(vllm_server: Any, tmp_path: Path) -> None:
    experiment = Experiment(scenario=_scenario(), grid={"max_tokens": [24]}, replicates=6, seed=5)
    db = tmp_path / "pool.db"
    with FaultServer(model=vllm_server.model, delay_s=0.5) as doomed:
        pool = build_pool(
            [vllm_server.base_url, doomed.base_url],
            vllm_server.model,
            max_in_flight=8,
            timeout=300.0,
            server_wait=60.0,
            check_interval=0.5,
        )

        async def kill_mid_run() -> None:
            deadline = time.monotonic() + 600
            while doomed.replies < 4 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await asyncio.to_thread(doomed.kill)

        killer = asyncio.create_task(kill_mid_run())
        try:
            summary = await run_experiment(experiment, db, pool)
        finally:
            await killer
            await pool.aclose()

    assert (summary.completed, summary.failed) == (6, 0), summary.errors
    real, dead = pool.stats()
    assert dead.requests >= 4 and real.requests > 0, "both replicas answered"
    assert (dead.up, dead.taken_out) == (False, 1)
    assert real.up and real.failures == 0
    assert real.sessions > 3, "the dead replica's sessions moved to the real server"
    assert real.open_sessions == dead.open_sessions == 0
    # Every stored call names the replica that answered it.
    assert _replicas_recorded(db) == {real.url: real.requests, dead.url: dead.requests}
