"""Experiments end to end: the real embedded vLLM server, real SQLite files, the real CLI."""

import csv
import io
import os
import signal
import sqlite3
import subprocess
import sys
import time

from e2e import ROOT, personae, q

from personae import Experiment
from personae.scenarios.builtin import counseling


def test_counseling_experiment_lands_in_sqlite(vllm_server, tmp_path):
    db = tmp_path / "counseling.db"
    r = personae(
        "run",
        "counseling",
        "--replicates",
        "3",
        "--set",
        "max_turns=6",
        "--set",
        "max_tokens=48",
        "--db",
        str(db),
        "--base-url",
        vllm_server.base_url,
        "--no-progress",
    )
    assert r.returncode == 0, r.stderr
    assert q(db, "SELECT status, COUNT(*) FROM episodes GROUP BY 1") == [("complete", 3)]
    # every episode: as many turns as it says, both speakers, turns numbered without gaps
    for episode_id, n_turns in q(db, "SELECT id, n_turns FROM episodes"):
        steps = [
            s
            for (s,) in q(
                db, f"SELECT step FROM turns WHERE episode_id = {episode_id} ORDER BY step"
            )
        ]
        assert steps == list(range(n_turns))
        assert 2 <= n_turns <= 6
        roles = {
            r
            for (r,) in q(
                db, f"SELECT DISTINCT role FROM transcript WHERE episode_id = {episode_id}"
            )
        }
        assert roles == {"counselor", "client"}
    calls = q(db, "SELECT seed, model, server, completion_tokens, finish_reason FROM llm_calls")
    assert calls and all(seed is not None for seed, *_ in calls)
    assert {m for _, m, *_ in calls} == {vllm_server.model}
    assert all(s and s.startswith("vllm") for _, _, s, *_ in calls)
    assert all(tokens > 0 for *_, tokens, _ in calls)
    assert len({seed for seed, *_ in calls}) == len(calls)
    # and a person can read it with the CLI
    r = personae("sql", str(db), "SELECT speaker, text FROM transcript LIMIT 5", "--format", "csv")
    assert r.returncode == 0
    assert len(list(csv.reader(io.StringIO(r.stdout)))) == 6  # header + 5 rows
    r = personae("show", str(db))
    assert r.returncode == 0 and "counseling" in r.stdout


def test_same_seed_reproduces_the_same_transcript(vllm_server, tmp_path):
    # One request at a time, so each is computed alone: batches of another composition
    # can differ in the last bits and change sampled tokens (see README, Reproducibility).
    # The server's prefix cache is off by default for the same reason.
    exp = Experiment(
        scenario=counseling(max_turns=4), grid={"max_tokens": [48]}, replicates=3, seed=21
    )
    texts = []
    for name in ("a.db", "b.db"):
        summary = exp.run(tmp_path / name, base_url=vllm_server.base_url, max_in_flight=1)
        assert summary.complete == 3
        texts.append(
            q(
                tmp_path / name,
                "SELECT replicate, step, speaker, text FROM transcript ORDER BY 1, 2",
            )
        )
    assert texts[0] == texts[1]
    other = Experiment(
        scenario=counseling(max_turns=4), grid={"max_tokens": [48]}, replicates=3, seed=22
    )
    other.run(tmp_path / "c.db", base_url=vllm_server.base_url, max_in_flight=1)
    assert (
        q(tmp_path / "c.db", "SELECT replicate, step, speaker, text FROM transcript ORDER BY 1, 2")
        != texts[0]
    )


def test_resume_after_kill_loses_and_duplicates_nothing(vllm_server, tmp_path):
    db = tmp_path / "resume.db"
    args = [
        *("run", "counseling", "--replicates", "8", "--set", "max_turns=4"),
        *("--set", "max_tokens=48", "--db", str(db), "--base-url", vllm_server.base_url),
        *("--max-in-flight", "3", "--no-progress"),
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "personae.cli", *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    complete_before: list = []
    while time.monotonic() < deadline:
        time.sleep(1)
        if db.exists():
            try:
                complete_before = q(db, "SELECT id FROM episodes WHERE status = 'complete'")
            except sqlite3.OperationalError:
                continue
            if len(complete_before) >= 2:
                break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 2 <= len(complete_before) < 8, "the run should be killed mid-way"
    assert q(db, "PRAGMA integrity_check") == [("ok",)]
    kept = q(db, "SELECT episode_id, step, text FROM transcript ORDER BY 1, 2")
    killed_complete = {i for (i,) in q(db, "SELECT id FROM episodes WHERE status = 'complete'")}

    r = personae(*args)  # the same command again resumes
    assert r.returncode == 0, r.stderr
    assert q(db, "SELECT status, COUNT(*) FROM episodes GROUP BY 1") == [("complete", 8)]
    assert q(db, "SELECT COUNT(*) FROM experiments") == [(1,)]
    after = q(db, "SELECT episode_id, step, text FROM transcript ORDER BY 1, 2")
    assert [row for row in after if row[0] in killed_complete] == kept
    assert q(
        db,
        "SELECT COUNT(*) FROM (SELECT episode_id, session, step FROM turns GROUP BY 1, 2, 3 HAVING COUNT(*) > 1)",
    ) == [(0,)]
    assert q(db, "SELECT SUM(n_turns) FROM episodes") == q(db, "SELECT COUNT(*) FROM turns")
    assert q(db, "PRAGMA integrity_check") == [("ok",)]


def test_readme_scenario_runs_from_the_command_line(vllm_server, tmp_path):
    db = tmp_path / "mine.db"
    r = personae(
        "run",
        "examples/mentoring.py",
        "--replicates",
        "1",
        "--set",
        "max_turns=4",
        "--db",
        str(db),
        "--base-url",
        vllm_server.base_url,
        "--no-progress",
    )
    assert r.returncode == 0, r.stderr
    # the file's grid (two styles) x the command line's replicates
    assert q(db, "SELECT COUNT(*), SUM(status = 'complete') FROM episodes") == [(2, 2)]
    assert {s for (s,) in q(db, "SELECT DISTINCT speaker FROM transcript")} == {"Ada", "Ben"}


def test_a_model_the_server_does_not_serve_is_named(vllm_server, tmp_path):
    r = personae(
        "run",
        "counseling",
        "--db",
        str(tmp_path / "x.db"),
        "--base-url",
        vllm_server.base_url,
        "--model",
        "gpt-imaginary",
    )
    assert r.returncode == 2
    assert "gpt-imaginary" in r.stderr and vllm_server.model in r.stderr
