"""Replay modes: `--replay exact|fast` is recorded, kept across resumes, and checked against the server.

Against the loopback fault server with a simulated prefix cache (its answers say,
as vLLM's do, how many prompt tokens came from the cache, and its ``/metrics``
says whether the cache is on).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from personae import Experiment, FunctionModel, Opening, Persona, Scenario
from personae.errors import ConfigError
from personae.runner.replay import replay_conflict, server_prefix_caching
from personae.runner.run import run_experiment, run_sync
from personae.store import Database
from tests.support.fault_server import FaultServer

SCENARIO = """
    from personae import Experiment, Opening, Persona, Scenario

    scenario = Scenario(
        name="pair",
        agents=[Persona(name="Lee", role="counselor"), Persona(name="Sam", role="client")],
        opening=Opening(speaker="Lee", text="Hello."),
        max_turns=4,
    )
    experiment = Experiment(scenario=scenario, replicates={n}, seed=11)
"""


def personae(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "personae.cli", *args], capture_output=True, text=True, timeout=120
    )


def run_on(server, path, db, *extra):
    """``personae run PATH --db DB --base-url SERVER ...``."""
    return personae("run", str(path), "--db", str(db), "--base-url", server.base_url, *extra)


def scenario_file(tmp_path, replicates=2):
    path = tmp_path / "pair.py"
    path.write_text(textwrap.dedent(SCENARIO.format(n=replicates)))
    return path


def stored(db, sql):
    con = sqlite3.connect(db)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_fast_mode_is_recorded_with_what_the_cache_saved_per_call(tmp_path):
    path, db = scenario_file(tmp_path), tmp_path / "x.db"
    with FaultServer(model="m", prefix_cache=True) as server:
        r = run_on(server, path, db, "--replay", "fast")
    assert r.returncode == 0, r.stderr
    assert stored(db, "SELECT replay FROM experiments") == [("fast",)]
    calls = stored(db, "SELECT prompt_tokens, cached_tokens FROM llm_calls ORDER BY id")
    assert calls and all(c is not None and 0 <= c <= p for p, c in calls)
    # the history repeats: later prompts start like earlier ones
    assert sum(c for _, c in calls) > 0
    assert "from the prefix cache" in r.stdout and "fast" in r.stdout
    info = json.loads(stored(db, "SELECT server_info FROM experiments")[0][0])
    assert info["prefix_caching"] is True  # what the server said on /metrics


def test_a_resume_keeps_the_recorded_mode_and_refuses_another_in_one_paragraph(tmp_path):
    path, db = scenario_file(tmp_path), tmp_path / "x.db"
    with FaultServer(model="m", prefix_cache=True) as server:
        first = run_on(server, path, db, "--replay", "fast")
        assert first.returncode == 0, first.stderr
        grown = scenario_file(tmp_path, replicates=3)
        refused = run_on(server, grown, db, "--replay", "exact")
        resumed = run_on(server, grown, db)
    assert refused.returncode == 2
    assert "was run with --replay fast" in refused.stderr and "Traceback" not in refused.stderr
    assert resumed.returncode == 0, resumed.stderr
    assert stored(db, "SELECT replay FROM experiments") == [("fast",)]
    assert stored(db, "SELECT COUNT(*) FROM episodes WHERE status = 'complete'") == [(3,)]


def test_a_bad_mode_gets_one_paragraph_and_exit_2(tmp_path):
    r = personae(
        "run", str(scenario_file(tmp_path)), "--db", str(tmp_path / "x.db"), "--replay", "quick"
    )
    assert r.returncode == 2
    assert "--replay must be 'exact'" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x.db").exists()


def test_exact_mode_against_a_server_with_its_cache_on_says_so(tmp_path):
    path, db = scenario_file(tmp_path, replicates=1), tmp_path / "x.db"
    with FaultServer(model="m", prefix_cache=True) as server:
        r = run_on(server, path, db)
    assert r.returncode == 0, r.stderr
    assert "prefix cache on" in r.stderr and "--replay fast" in r.stderr
    assert stored(db, "SELECT replay FROM experiments") == [("exact",)]


def test_the_old_prefix_caching_flag_still_works_as_fast(tmp_path):
    path, db = scenario_file(tmp_path, replicates=1), tmp_path / "x.db"
    with FaultServer(model="m", prefix_cache=False) as server:
        r = run_on(server, path, db, "--prefix-caching")
    assert r.returncode == 0, r.stderr
    assert "--prefix-caching is deprecated" in r.stderr
    assert stored(db, "SELECT replay FROM experiments") == [("fast",)]
    assert stored(db, "SELECT DISTINCT cached_tokens FROM llm_calls") == [(0,)]


def pair(replicates=1):
    scenario = Scenario(
        name="pair",
        agents=[Persona(name="Lee", role="counselor"), Persona(name="Sam", role="client")],
        opening=Opening(speaker="Lee", text="Hello."),
        max_turns=4,
    )
    return Experiment(scenario=scenario, replicates=replicates, seed=3)


def test_a_conflicting_mode_is_refused_before_an_embedded_server_is_started(tmp_path):
    db = tmp_path / "x.db"
    # an experiment run in fast mode on a model named as the embedded server's
    model = FunctionModel(lambda m, c: "Fine.", name="smollm2")
    asyncio.run(run_experiment(pair(), db, model, replay="fast"))
    with pytest.raises(ConfigError, match="was run with --replay fast"):
        run_sync(pair(replicates=2), db, replay="exact")  # no server was needed to refuse


def test_a_database_from_before_modes_reads_its_mode_from_its_server_info(tmp_path):
    db = tmp_path / "x.db"
    asyncio.run(run_experiment(pair(), db, FunctionModel(lambda m, c: "Fine.")))
    con = sqlite3.connect(db)
    con.execute("UPDATE experiments SET replay = NULL, server_info = '{\"prefix_caching\": true}'")
    con.commit()
    con.close()
    database = Database(db)
    try:
        assert database.replay_of(1) == "fast"
    finally:
        database.close()


def test_the_conflict_rule_and_the_metrics_reading():
    assert replay_conflict(None, "fast", "x") is None
    assert replay_conflict("exact", None, "x") is None
    assert "--replay exact" in (replay_conflict("exact", "fast", "x") or "")
    assert server_prefix_caching('vllm:cache_config_info{enable_prefix_caching="False"} 1') is False
