"""Runs that survive write failures, bad rows, outages and a second run on the same file.

Faults are injected where they happen to users: at the SQLite file (another
program holding the write lock, a trigger that refuses one episode's rows,
rows deleted behind personae's back) and at the HTTP layer (the loopback
fault server in ``tests/support``), never by patching library internals.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from personae import Experiment, FunctionModel, Opening, Persona, Probe, Scenario
from personae.errors import StoreError
from personae.llm.wrappers import build_client
from personae.store.runlock import RunLock
from tests.support.fault_server import Fault, FaultServer
from tests.support.lock_holder import hold_lock


def rows(db: Path, sql: str, params: tuple = ()) -> list[tuple]:
    con = sqlite3.connect(db)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def arun(exp: Experiment, db: Path, model=None, **options):
    return asyncio.run(exp.arun(db, model or FunctionModel.echo(), **options))


def every_complete_episode_has_its_rows(db: Path) -> None:
    for episode_id, n_turns, counts in rows(
        db, "SELECT id, n_turns, row_counts FROM episodes WHERE status = 'complete'"
    ):
        stored = rows(db, "SELECT COUNT(*) FROM turns WHERE episode_id = ?", (episode_id,))[0][0]
        assert stored == n_turns
        for table, want in json.loads(counts).items():
            got = rows(db, f"SELECT COUNT(*) FROM {table} WHERE episode_id = ?", (episode_id,))
            assert got[0][0] == want, (episode_id, table)
    assert rows(db, "PRAGMA integrity_check") == [("ok",)]


# -- the database file ----------------------------------------------------------------------


def test_a_database_locked_longer_than_the_busy_timeout_is_waited_out(dialogue, tmp_path):
    db = tmp_path / "x.db"
    exp = Experiment(scenario=dialogue, replicates=6, seed=3)
    slow = FunctionModel.echo(latency=0.4)
    arun(Experiment(scenario=dialogue, replicates=1, seed=99), db)  # the file exists

    result = {}

    def run_it() -> None:
        result["summary"] = arun(exp, db, slow)

    thread = threading.Thread(target=run_it)
    thread.start()
    time.sleep(1.0)  # the run is under way, some rows committed
    with hold_lock(db, seconds=12):
        thread.join(timeout=60)
    thread.join(timeout=60)
    summary = result["summary"]
    assert (summary.completed, summary.failed) == (6, 0)
    assert summary.lock_waits > 0
    assert rows(db, "SELECT COUNT(*) FROM episodes WHERE status = 'complete'") == [(7,)]
    every_complete_episode_has_its_rows(db)


def refuse_rows_of(db: Path, episode_id: int) -> None:
    con = sqlite3.connect(db)
    con.execute(
        f"CREATE TRIGGER refuse BEFORE INSERT ON turns WHEN NEW.episode_id = {episode_id} "
        "BEGIN SELECT RAISE(ABORT, 'injected write failure'); END"
    )
    con.commit()
    con.close()


def test_a_permanent_write_failure_loses_one_episode_and_never_marks_it_complete(
    dialogue, tmp_path
):
    db = tmp_path / "x.db"
    exp = Experiment(scenario=dialogue, replicates=8, seed=5)
    arun(Experiment(scenario=dialogue, replicates=1, seed=99), db)  # episode 1
    refuse_rows_of(db, 4)  # the third episode of the next run
    summary = arun(exp, db)
    assert summary.failed == 1 and summary.completed == 7
    assert list(summary.lost) == [4]
    assert "episode 4" in summary.lost[4] and "injected write failure" in summary.lost[4]
    status = dict(rows(db, "SELECT id, status FROM episodes"))
    assert status[4] != "complete"
    assert [s for i, s in status.items() if i != 4] == ["complete"] * 8
    every_complete_episode_has_its_rows(db)

    # Once the file accepts the rows again, a rerun redoes exactly that episode.
    con = sqlite3.connect(db)
    con.execute("DROP TRIGGER refuse")
    con.commit()
    con.close()
    again = arun(exp, db)
    assert (again.completed, again.already_complete, again.failed) == (1, 7, 0)
    every_complete_episode_has_its_rows(db)


def test_a_complete_episode_missing_rows_is_reset_and_run_again(dialogue, tmp_path, capsys):
    db = tmp_path / "x.db"
    exp = Experiment(scenario=dialogue, replicates=3, seed=2)
    arun(exp, db)
    con = sqlite3.connect(db)
    con.execute("DELETE FROM turns WHERE episode_id = 2 AND step IN (2, 3)")
    con.commit()
    con.close()
    summary = arun(exp, db)
    assert (summary.reset_incomplete, summary.completed, summary.already_complete) == (1, 1, 2)
    assert "missing rows" in capsys.readouterr().err
    every_complete_episode_has_its_rows(db)


def test_one_unstorable_row_fails_one_episode_naming_table_column_and_type(dialogue, tmp_path):
    def bad_probe(episode, point):
        if episode.seed % 2 == 0:
            episode.record_state("Sam", "mood", text={"a": 1})

    scenario = dialogue.model_copy(update={"probes": (Probe(bad_probe, at="end"),)})
    exp = Experiment(scenario=scenario, replicates=12, seed=4)
    seeds = [s.seed for s in exp.episodes()]
    bad = sum(seed % 2 == 0 for seed in seeds)
    assert 0 < bad < 12
    db = tmp_path / "x.db"
    summary = arun(exp, db)
    assert (summary.failed, summary.completed) == (bad, 12 - bad)
    errors = rows(db, "SELECT error FROM episodes WHERE status = 'failed'")
    assert all("states.text" in e and "dict" in e for (e,) in errors)
    every_complete_episode_has_its_rows(db)


def test_a_second_run_on_the_same_database_is_refused_naming_the_holder(dialogue, tmp_path):
    db = tmp_path / "x.db"
    exp = Experiment(scenario=dialogue, replicates=2, seed=1)
    with (
        RunLock(db),
        pytest.raises(StoreError, match=rf"in use by another personae run \(pid {os.getpid()}"),
    ):
        arun(exp, db)
    assert arun(exp, db).completed == 2  # released: the next run goes ahead


def test_a_lock_left_by_a_killed_run_is_taken_over(dialogue, tmp_path):
    db = tmp_path / "x.db"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from personae.store.runlock import RunLock; "
            f"RunLock({str(db)!r}).acquire(); print('held', flush=True); time.sleep(600)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    exp = Experiment(scenario=dialogue, replicates=2, seed=1)
    with pytest.raises(StoreError, match=f"pid {holder.pid}"):
        arun(exp, db)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert arun(exp, db).completed == 2


# -- experiments grow in place --------------------------------------------------------------


def test_more_replicates_and_grid_values_extend_the_same_experiment(dialogue, tmp_path):
    db = tmp_path / "x.db"
    small = Experiment(
        scenario=dialogue, grid={"client.style": ["plain", "upset"]}, replicates=2, seed=8
    )
    arun(small, db)
    before = rows(db, "SELECT id, param_index, replicate, seed FROM episodes ORDER BY id")
    grown = Experiment(
        scenario=dialogue,
        grid={"client.style": ["plain", "verbose", "upset"]},
        replicates=3,
        seed=8,
    )
    summary = arun(grown, db)
    assert (summary.already_complete, summary.completed, summary.total) == (4, 5, 9)
    assert rows(db, "SELECT COUNT(*) FROM experiments") == [(1,)]
    after = rows(db, "SELECT id, param_index, replicate, seed FROM episodes ORDER BY id")
    assert after[: len(before)] == before  # stored episodes keep their ids, indices and seeds
    per_style = rows(
        db,
        "SELECT json_extract(params_json, '$.\"client.style\"'), COUNT(*) FROM episodes "
        "GROUP BY 1 ORDER BY 1",
    )
    assert per_style == [("plain", 3), ("upset", 3), ("verbose", 3)]
    assert len({r[1] for r in after}) == 3


# -- the model server -----------------------------------------------------------------------


def serve_for(exp_model: str, **kwargs) -> FaultServer:
    return FaultServer(model=exp_model, **kwargs).start()


def test_an_outage_longer_than_the_retries_is_waited_out(dialogue, tmp_path):
    server = serve_for("fault-model", delay_s=0.2)
    try:
        exp = Experiment(scenario=dialogue, replicates=6, seed=6)

        async def main():
            model = build_client(server.base_url, "fault-model", server_wait=60)
            run = asyncio.create_task(exp.arun(tmp_path / "x.db", model))
            while server.replies < 6:  # every episode has had a reply; 4 more each to go
                await asyncio.sleep(0.02)
            server.kill()
            await asyncio.sleep(20)  # far past the ~15 s the retries used to last
            server.restart()
            try:
                return await run
            finally:
                await model.aclose()

        summary = asyncio.run(main())
    finally:
        server.kill()
    assert (summary.completed, summary.failed) == (6, 0)
    assert summary.server_outages >= 1 and summary.server_wait_s >= 15
    every_complete_episode_has_its_rows(tmp_path / "x.db")


def test_an_outage_past_server_wait_fails_the_episodes_with_a_clear_reason(dialogue, tmp_path):
    server = serve_for("fault-model")
    server.kill()
    try:
        exp = Experiment(scenario=dialogue, replicates=2, seed=6)

        async def main():
            model = build_client(server.base_url, "fault-model", server_wait=2)
            try:
                return await exp.arun(tmp_path / "x.db", model)
            finally:
                await model.aclose()

        started = time.monotonic()
        summary = asyncio.run(main())
    finally:
        server.kill()
    assert summary.failed == 2
    assert "--server-wait" in summary.errors[0]
    assert time.monotonic() - started < 30


def test_a_hung_request_is_abandoned_and_sent_again(dialogue, tmp_path):
    server = serve_for("fault-model", faults=[Fault("hang", count=1, seconds=None)])
    try:
        exp = Experiment(scenario=dialogue, replicates=1, seed=6)

        async def main():
            model = build_client(server.base_url, "fault-model", timeout=1.0)
            try:
                return await exp.arun(tmp_path / "x.db", model)
            finally:
                await model.aclose()

        summary = asyncio.run(main())
    finally:
        server.kill()
    assert summary.completed == 1
    assert rows(tmp_path / "x.db", "SELECT MAX(attempts) FROM llm_calls") == [(2,)]


# -- replies stored as they came ------------------------------------------------------------


@pytest.fixture
def four() -> Scenario:
    people = [Persona(name=n, role="member") for n in ("Ana", "Bob", "Cai", "Dee")]
    return Scenario(
        name="four",
        agents=people,
        opening=Opening(speaker="Ana", text="Shall we start?"),
        max_turns=6,
    )


def test_replies_are_never_rewritten_to_dots(four, tmp_path):
    server = serve_for(
        "fault-model",
        faults=[
            Fault("speaker", count=1, text="Bob"),
            Fault("stage", count=1, text="(smiles)"),
            Fault("empty", count=1),
            Fault("truncated", count=1),
            Fault("surrogate", count=1),
        ],
    )
    db = tmp_path / "x.db"
    try:
        exp = Experiment(scenario=four, replicates=1, seed=1)

        async def main():
            model = build_client(server.base_url, "fault-model")
            try:
                return await exp.arun(db, model)
            finally:
                await model.aclose()

        assert asyncio.run(main()).completed == 1
    finally:
        server.kill()
    turns = rows(
        db,
        "SELECT t.content, t.truncated, t.empty, t.cleaned, c.raw_text, c.raw_bytes, "
        "c.replaced_chars FROM turns t JOIN llm_calls c ON c.id = t.llm_call_id ORDER BY t.step",
    )
    assert len(turns) == 5
    assert all(content != "..." for content, *_ in turns)
    speaker, stage, empty, truncated, _ = turns
    assert speaker[3] == '["Bob:"]' and speaker[0] and speaker[4].startswith("Bob:")
    assert (stage[0], stage[2], stage[3]) == ("", 1, '["(smiles)"]')
    assert (empty[0], empty[2], empty[3]) == ("", 1, None)
    assert truncated[1] == 1
    # a cut reply ends at its last complete sentence; the unfinished tail is in turns.cleaned
    content, raw, cleaned = truncated[0], truncated[4], json.loads(truncated[3])
    assert raw.startswith(content) and content.rstrip().endswith((".", "!", "?"))
    assert cleaned == [raw[len(content) :].strip()] and cleaned[0]
    surrogate = rows(db, "SELECT raw_text, raw_bytes, replaced_chars FROM llm_calls")
    hits = [r for r in surrogate if r[2]]
    assert len(hits) == 1 and "\ufffd" in hits[0][0] and b"\xed\xa0\x80" in hits[0][1]
    assert rows(db, "SELECT SUM(truncated), SUM(empty) FROM transcript") == [(1, 2)]


def test_a_scenario_code_error_keeps_its_file_and_line(dialogue, tmp_path):
    def cue(view, speaker):
        return {"a": 1}["missing"]

    scenario = dialogue.model_copy(update={"cue": cue})
    db = tmp_path / "x.db"
    summary = arun(Experiment(scenario=scenario, replicates=1, seed=1), db)
    assert summary.failed == 1
    [(error,)] = rows(db, "SELECT error FROM episodes")
    assert "KeyError: 'missing'" in error
    assert f"{Path(__file__)}:" in error and "in cue" in error


KILLED = """
import sys
from personae import Experiment, FunctionModel, Persona, Scenario

sc = Scenario(name="slow", agents=[Persona(name="A"), Persona(name="B")], max_turns=6)
exp = Experiment(scenario=sc, replicates=30, seed=5)
model = FunctionModel(lambda m, c: "ok", latency=float(sys.argv[2]))
summary = exp.run(sys.argv[1], model, max_episodes=4)
print("finished", summary.complete, flush=True)
"""


def test_kill_9_mid_run_keeps_integrity_and_a_rerun_finishes_without_duplicates(tmp_path):
    script = tmp_path / "slow.py"
    script.write_text(KILLED)
    db = tmp_path / "slow.db"
    proc = subprocess.Popen([sys.executable, str(script), str(db), "0.05"])
    deadline = time.monotonic() + 60
    done = 0
    while time.monotonic() < deadline and done < 4:
        time.sleep(0.2)
        try:
            done = rows(db, "SELECT COUNT(*) FROM episodes WHERE status = 'complete'")[0][0]
        except sqlite3.Error:
            continue
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert rows(db, "PRAGMA integrity_check") == [("ok",)]
    every_complete_episode_has_its_rows(db)
    rerun = subprocess.run(
        [sys.executable, str(script), str(db), "0"], capture_output=True, text=True, timeout=120
    )
    assert rerun.stdout.split() == ["finished", "30"], rerun.stderr
    assert rows(db, "SELECT COUNT(*) FROM turns") == [(180,)]
    dupes = (
        "SELECT COUNT(*) FROM (SELECT 1 FROM turns GROUP BY episode_id, step HAVING COUNT(*) > 1)"
    )
    assert rows(db, dupes) == [(0,)]
    every_complete_episode_has_its_rows(db)
