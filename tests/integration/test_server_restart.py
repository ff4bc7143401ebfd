"""The embedded server dies mid-run: the watchdog restarts it on the same port.

The run in flight waits out the outage and completes every episode. This test
starts its own server (it kills it, so it cannot share the session's
``vllm_server``): two starts, about 3 to 4 minutes on a 2-core CPU.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest
from rich.console import Console

from personae import Experiment
from personae.llm.connect import connected_model
from personae.runner.run import run_experiment
from personae.scenarios.builtin import counseling

pytestmark = pytest.mark.integration

MESSAGES = [
    {"role": "system", "content": "You are Ana, a nurse. Answer in one sentence."},
    {"role": "user", "content": "How was your shift today?"},
]


def server_leader(port: int) -> int:
    """The pid (also the process group id) of the vLLM API server on ``port``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"vllm.entrypoints.openai.api_server" in argv and str(port).encode() in argv:
            return int(entry.name)
    raise AssertionError(f"no vLLM server on port {port}")


async def wait_for_line(output: io.StringIO, fragment: str, timeout: float) -> float:
    start = time.monotonic()
    while fragment not in output.getvalue():
        assert time.monotonic() - start < timeout, output.getvalue()
        await asyncio.sleep(0.5)
    return time.monotonic() - start


async def turns_stored(db: Path) -> int:
    try:
        con = sqlite3.connect(db)
        try:
            return con.execute("SELECT COUNT(*) FROM turns WHERE scripted = 0").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


async def test_a_run_whose_server_is_killed_restarts_it_and_completes_every_episode(tmp_path):
    log = tmp_path / "vllm.log"
    db = tmp_path / "run.db"
    output = io.StringIO()
    console = Console(file=output, width=400)
    experiment = Experiment(
        scenario=counseling(max_turns=5, min_turns=5).model_copy(update={"max_tokens": 24}),
        replicates=6,
        seed=3,
    )
    async with connected_model(server_log=log, console=console, max_restarts=2) as (chat, info):
        port = int(info["base_url"].rsplit(":", 1)[1].split("/")[0])
        first = await chat.complete(MESSAGES, max_tokens=8, temperature=0.0)
        assert first.text.strip()
        leader = server_leader(port)
        run = asyncio.create_task(run_experiment(experiment, db, chat, console=console))
        while await turns_stored(db) < 6:  # the run is under way: every episode has spoken
            assert not run.done(), output.getvalue()
            await asyncio.sleep(0.5)

        os.killpg(leader, signal.SIGKILL)  # the API server, its engine core, the watcher
        await wait_for_line(output, "restarting it, attempt 1 of 2", 30)
        back_after = await wait_for_line(output, "The embedded server is back", 900)
        print(f"server back {back_after:.0f} s after the restart was announced")
        summary = await asyncio.wait_for(run, 900)
        assert server_leader(port) != leader  # a new server, on the same port

    assert (summary.completed, summary.failed) == (6, 0), summary.errors
    assert summary.server_outages >= 1 and summary.server_wait_s > 10
    con = sqlite3.connect(db)
    try:
        statuses = con.execute("SELECT status, COUNT(*) FROM episodes GROUP BY 1").fetchall()
        assert statuses == [("complete", 6)]
        for episode_id, n_turns, counts in con.execute(
            "SELECT id, n_turns, row_counts FROM episodes"
        ).fetchall():
            stored = con.execute(
                "SELECT COUNT(*) FROM turns WHERE episode_id = ?", (episode_id,)
            ).fetchone()[0]
            assert stored == n_turns == json.loads(counts)["turns"]
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        con.close()
    text = " ".join(output.getvalue().split())
    assert "The embedded server stopped (exit code -9)" in text
    assert f"log: {log}.1" in text
    kept = (tmp_path / "vllm.log.1").read_text(errors="replace")
    assert kept.startswith("# personae:") and f"--port {port}" in kept
    assert log.read_text(errors="replace").startswith("# personae:")  # the new server's own log
