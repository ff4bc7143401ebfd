"""The embedded server's life, without vLLM: no orphans, stop signals, refusals, restarts.

Real processes throughout: dummy commands started through the same
:class:`ProcessGroup` the server uses, owners killed with ``kill -9``, signals
sent to subprocesses. The watchdog is driven with a small fake server.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from personae.errors import ConfigError, ServerError
from personae.llm.process import ProcessGroup, signals_as_interrupt, sigterm_as_interrupt
from personae.llm.vllm.server import EmbeddedServer
from personae.llm.vllm.watchdog import watch_server

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")

# A leader that starts a grandchild in its group, like vLLM's engine core.
WITH_GRANDCHILD = [
    sys.executable,
    "-c",
    "import subprocess, time; subprocess.Popen(['sleep', '600']); time.sleep(600)",
]
DEAF_TO_SIGTERM = [
    sys.executable,
    "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)",
]

OWNER = textwrap.dedent(
    """
    import json, sys, threading, time
    from personae.llm.process import ProcessGroup

    command, grace, where = json.loads(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
    groups = []
    spawn = lambda: groups.append(ProcessGroup.spawn(command, grace=grace))
    if where == "worker-thread":  # a thread that ends at once, as asyncio.to_thread's may
        thread = threading.Thread(target=spawn)
        thread.start()
        thread.join()
    else:
        spawn()
    print(groups[0].pid, flush=True)
    time.sleep(600)
    """
)


def members(group: int) -> list[int]:
    """The live (non-zombie) processes of a process group."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if fields[2] == str(group) and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def wait_for(condition: Callable[[], bool], timeout: float) -> float:
    """Seconds until ``condition()`` held; fails the test after ``timeout``."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, "timed out"
        time.sleep(0.05)
    return time.monotonic() - start


def start_owner(tmp_path: Path, command: list[str], grace: float, where: str) -> tuple[Any, int]:
    script = tmp_path / "owner.py"
    script.write_text(OWNER)
    owner = subprocess.Popen(
        [sys.executable, str(script), json.dumps(command), str(grace), where],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert owner.stdout is not None
    return owner, int(owner.stdout.readline())


# --------------------------------------------------------------------------- no orphans


@pytest.mark.parametrize("where", ["main-thread", "worker-thread"])
def test_the_group_dies_within_seconds_of_its_owner_killed_with_sigkill(tmp_path, where):
    owner, group = start_owner(tmp_path, WITH_GRANDCHILD, 5.0, where)
    try:
        # leader, watcher and grandchild; and they outlive the thread that spawned them
        wait_for(lambda: len(members(group)) >= 3, 20)
        time.sleep(1.0)
        assert len(members(group)) >= 3
    finally:
        owner.kill()
        owner.wait()
    gone_after = wait_for(lambda: not members(group), 10)
    print(f"{where}: group gone {gone_after:.2f} s after kill -9 of its owner")
    assert gone_after < 3.0


def test_a_command_deaf_to_sigterm_is_killed_after_the_grace(tmp_path):
    owner, group = start_owner(tmp_path, DEAF_TO_SIGTERM, 1.0, "main-thread")
    wait_for(lambda: len(members(group)) >= 2, 20)
    time.sleep(0.5)  # let the command install its handler
    owner.kill()
    owner.wait()
    gone_after = wait_for(lambda: not members(group), 10)
    assert 0.8 < gone_after < 4.0


def test_what_is_left_when_the_command_exits_is_ended():
    leaves_a_child = [
        sys.executable,
        "-c",
        "import subprocess; subprocess.Popen(['sleep', '600'])",
    ]
    group = ProcessGroup.spawn(leaves_a_child)
    assert group.wait(timeout=20) == 0
    wait_for(lambda: not members(group.pid), 5)
    group.end(timeout=1.0)


def test_end_stops_the_group_and_exit_statuses_are_the_commands_own():
    group = ProcessGroup.spawn(WITH_GRANDCHILD)
    wait_for(lambda: len(members(group.pid)) >= 3, 20)
    assert group.returncode is None
    assert group.end(timeout=5.0) == -signal.SIGTERM
    assert not members(group.pid)
    assert group.end() == -signal.SIGTERM  # idempotent

    exits = ProcessGroup.spawn([sys.executable, "-c", "raise SystemExit(3)"])
    assert exits.wait(timeout=20) == 3
    exits.end(timeout=1.0)


def test_a_missing_program_exits_127_and_says_why(tmp_path):
    log = tmp_path / "out.log"
    with log.open("wb") as out:
        group = ProcessGroup.spawn(["/no/such/program"], stdout=out)
        assert group.wait(timeout=20) == 127
        group.end(timeout=1.0)
    assert "cannot run /no/such/program" in log.read_text()


# --------------------------------------------------------------------------- stop signals

RUN = textwrap.dedent(
    """
    import sys
    from personae import Experiment, FunctionModel, Persona, Scenario
    from personae.llm.process import signals_as_interrupt

    sc = Scenario(name="slow", agents=[Persona(name="A"), Persona(name="B")], max_turns=6)
    exp = Experiment(scenario=sc, replicates=40, seed=5)
    model = FunctionModel(lambda m, c: "ok", latency=0.05)
    with signals_as_interrupt():  # what the personae command does
        summary = exp.run(sys.argv[1], model, max_episodes=4)
    with open(sys.argv[2], "w") as out:
        out.write(f"{'interrupted' if summary.interrupted else 'finished'} {summary.complete}")
    print("still writing to the terminal", flush=True)
    """
)


def complete_episodes(db: Path) -> int:
    try:
        with sqlite3.connect(db) as con:
            return int(
                con.execute("SELECT COUNT(*) FROM episodes WHERE status = 'complete'").fetchone()[0]
            )
    except sqlite3.Error:
        return 0


@pytest.mark.parametrize("terminal", ["pipe", "closed-terminal"])
def test_sighup_stops_a_run_the_way_ctrl_c_does(tmp_path, terminal):
    script, db, result = tmp_path / "run.py", tmp_path / "run.db", tmp_path / "result.txt"
    script.write_text(RUN)
    if terminal == "pipe":
        streams, primary = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}, None
    else:  # the run writes to a terminal that goes away, as when an SSH session drops
        import pty

        primary, secondary = pty.openpty()
        streams = {"stdout": secondary, "stderr": secondary}
    # A terminal session delivers SIGHUP; a test run under nohup would have it ignored
    # (and personae respects that), so the child gets the default disposition back.
    proc = subprocess.Popen(
        [sys.executable, str(script), str(db), str(result)],
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL),
        **streams,
    )
    wait_for(lambda: complete_episodes(db) >= 4, 60)
    if primary is not None:
        os.close(secondary)
        os.close(primary)  # the terminal is gone: writing to it now fails with EIO
    proc.send_signal(signal.SIGHUP)
    proc.communicate(timeout=60)

    assert proc.returncode == 0
    word, complete = result.read_text().split()
    assert word == "interrupted" and 4 <= int(complete) < 40
    with sqlite3.connect(db) as con:
        statuses = dict(con.execute("SELECT status, COUNT(*) FROM episodes GROUP BY 1").fetchall())
    assert "running" not in statuses  # the episodes in flight are marked interrupted
    assert statuses["complete"] == int(complete)


def test_an_ignored_sighup_stays_ignored_and_handlers_are_restored():
    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under nohup
    try:
        term = signal.getsignal(signal.SIGTERM)
        with signals_as_interrupt():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            assert callable(signal.getsignal(signal.SIGTERM))
        assert signal.getsignal(signal.SIGTERM) == term
    finally:
        signal.signal(signal.SIGHUP, before)
    assert sigterm_as_interrupt is signals_as_interrupt  # the former name still works


# --------------------------------------------------------------------------- network hosts


def test_serve_on_the_network_without_a_key_is_refused_before_anything_starts(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PERSONAE_API_KEY"}
    log = tmp_path / "vllm.log"
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "personae.cli", "serve", "--host", "0.0.0.0", "--log", str(log)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    message = " ".join(result.stderr.split())
    assert "without an API key" in message and "--api-key" in message
    assert "PERSONAE_API_KEY" in message and "Traceback" not in message
    assert not log.exists()  # nothing was launched
    assert time.monotonic() - started < 60


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20"])
def test_the_library_refuses_a_network_host_without_a_key(host):
    with pytest.raises(ConfigError, match="reachable from the network"):
        EmbeddedServer(host=host)


def test_a_key_opens_the_network_and_stays_out_of_the_record(tmp_path):
    server = EmbeddedServer(host="0.0.0.0", api_key="s3cret", cache_dir=tmp_path)
    assert server.base_url.startswith("http://0.0.0.0:")
    assert "s3cret" not in repr(server)
    EmbeddedServer(host="localhost", cache_dir=tmp_path)  # loopback needs none


# --------------------------------------------------------------------------- restarts


def test_a_restart_keeps_the_old_logs_and_counts_even_when_it_fails(tmp_path):
    log = tmp_path / "vllm.log"
    log.write_text("second run\n")
    (tmp_path / "vllm.log.1").write_text("first run\n")
    server = EmbeddedServer(tmp_path / "missing-model", log_path=log, cache_dir=tmp_path)
    assert server.kept_log_path == tmp_path / "vllm.log.1"

    with pytest.raises(ServerError):
        asyncio.run(server.arestart())

    assert server.restarts == 1 and not server.running
    assert (tmp_path / "vllm.log.1").read_text() == "second run\n"
    assert (tmp_path / "vllm.log.2").read_text() == "first run\n"
    assert not log.exists()  # refused before anything was launched


class FakeServer:
    """Just what the watchdog reads: dies on demand, restarts as scripted."""

    def __init__(self, restart_outcomes: list[bool]) -> None:
        self.running = True
        self.returncode: int | None = None
        self.restarts = 0
        self.outcomes = list(restart_outcomes)
        self.base_url = "http://127.0.0.1:1234/v1"
        self.log_path = Path("vllm.log")
        self.kept_log_path = Path("vllm.log.1")

    def die(self, status: int = -9) -> None:
        self.running, self.returncode = False, status

    async def arestart(self) -> FakeServer:
        self.restarts += 1
        if not self.outcomes.pop(0):
            self.returncode = 1
            raise ServerError("vLLM did not answer")
        self.running, self.returncode = True, None
        return self


async def test_the_watchdog_restarts_a_dead_server_until_its_restarts_are_used_up():
    server = FakeServer([True, False, True])
    lines: list[str] = []
    gave_up: list[bool] = []
    watchdog = asyncio.create_task(
        watch_server(
            server,  # type: ignore[arg-type]
            max_restarts=3,
            say=lines.append,
            interval=0.01,
            on_give_up=lambda: gave_up.append(True),
        )
    )
    server.die()
    await asyncio.sleep(0.2)
    assert server.restarts == 1 and server.running
    assert "stopped (exit code -9); restarting it, attempt 1 of 3; log: vllm.log.1" in lines[0]

    server.die(status=-11)
    await asyncio.sleep(0.2)  # attempt 2 fails, attempt 3 brings it back
    assert server.restarts == 3 and server.running
    assert any("The restart failed: vLLM did not answer" in line for line in lines)

    server.die()
    await asyncio.wait_for(watchdog, 2)  # gives up: no fourth restart
    assert server.restarts == 3 and not server.running
    assert "not restarting it again" in lines[-1]
    assert gave_up == [True]  # the run's client stops waiting for a server given up on


async def test_the_watchdog_leaves_a_running_server_alone_and_stops_when_cancelled():
    server = FakeServer([])
    watchdog = asyncio.create_task(watch_server(server, say=print, interval=0.01))  # type: ignore[arg-type]
    await asyncio.sleep(0.1)
    watchdog.cancel()
    await asyncio.wait([watchdog])
    assert watchdog.cancelled() and server.restarts == 0
