"""`personae run` against the loopback fault server: exit codes, messages, bad paths."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from tests.support.fault_server import FaultServer

SCENARIO = """
    from personae import Experiment, Opening, Persona, Probe, Scenario

    def unstorable(episode, point):
        if episode.seed % 2:
            episode.record_state("Sam", "mood", text={"not": "text"})

    scenario = Scenario(
        name="pair",
        agents=[Persona(name="Lee", role="counselor"), Persona(name="Sam", role="client")],
        opening=Opening(speaker="Lee", text="Hello."),
        max_turns=4,
        probes=[Probe(unstorable, at="end")],
    )
    experiment = Experiment(scenario=scenario, replicates=6, seed=11)
"""


def personae(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "personae.cli", *args],
        capture_output=True,
        timeout=120,
        **kwargs,
    )


@pytest.fixture
def server():
    with FaultServer(model="fault-model") as running:
        yield running


def test_failed_episodes_exit_3_and_the_rest_are_kept(server, tmp_path):
    path = tmp_path / "pair.py"
    path.write_text(textwrap.dedent(SCENARIO))
    db = tmp_path / "x.db"
    r = personae("run", str(path), "--db", str(db), "--base-url", server.base_url, text=True)
    assert r.returncode == 3, r.stderr
    assert "episode(s) failed" in r.stderr and "states.text" in r.stderr
    assert "Traceback" not in r.stderr
    con = sqlite3.connect(db)
    statuses = dict(con.execute("SELECT status, COUNT(*) FROM episodes GROUP BY 1").fetchall())
    con.close()
    assert statuses["failed"] + statuses["complete"] == 6 and statuses["complete"] > 0


def test_credentials_in_the_base_url_are_never_stored_or_printed(server, tmp_path):
    path = tmp_path / "pair.py"
    path.write_text(textwrap.dedent(SCENARIO).replace("replicates=6", "replicates=1"))
    db = tmp_path / "x.db"
    url = server.base_url.replace("http://", "http://alice:s3cret@")
    r = personae("run", str(path), "--db", str(db), "--base-url", url, text=True)
    assert "s3cret" not in r.stdout + r.stderr
    con = sqlite3.connect(db)
    stored = con.execute("SELECT server_info FROM experiments").fetchall()
    con.close()
    assert stored and all("s3cret" not in s and "alice" not in s for (s,) in stored)


@pytest.mark.parametrize("where", ["folder", "under-a-file"])
def test_a_db_path_that_cannot_be_a_database_gets_one_paragraph(where, tmp_path):
    if where == "folder":
        db = tmp_path
    else:
        (tmp_path / "file").write_text("x")
        db = tmp_path / "file" / "x.db"
    r = personae("run", "counseling", "--db", str(db), text=True)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert ("is a folder" in r.stderr) if where == "folder" else ("is a file" in r.stderr)


def test_a_name_that_is_not_utf8_is_refused(tmp_path):
    name = os.fsdecode(b"bad\xff")
    r = personae("run", "counseling", "--db", str(tmp_path / "x.db"), "--name", name, text=True)
    assert r.returncode == 2
    assert "not valid UTF-8" in r.stderr and "Traceback" not in r.stderr
