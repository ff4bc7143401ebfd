"""Bad input at the command line: one clear paragraph, exit code 2, nothing counted complete."""

import sqlite3
import subprocess
import sys
import textwrap

import pytest


def personae(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "personae.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def write(tmp_path, name, body):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return str(path)


def test_unknown_parameter_is_named(tmp_path):
    r = personae("run", "counseling", "--grid", "client.mood=1,2", "--db", str(tmp_path / "x.db"))
    assert r.returncode == 2
    assert "unknown persona field" in r.stderr or "unknown parameter 'client.mood'" in r.stderr
    assert "Traceback" not in r.stderr


def test_unknown_builtin_lists_builtins(tmp_path):
    r = personae("run", "counselling", "--db", str(tmp_path / "x.db"))
    assert r.returncode == 2
    assert "no built-in scenario 'counselling'" in r.stderr and "counseling" in r.stderr


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("x = (\n", "syntax error at line 1"),
        ("import math\nvalue = math.pi\n", "defines no Scenario or Experiment"),
        (
            "from personae import Persona\np = Persona(name='A', big_five={'N': 9})\n",
            "big_five",
        ),
        ("raise RuntimeError('boom')\n", "RuntimeError at line 1 while loading: boom"),
    ],
)
def test_broken_scenario_files(tmp_path, body, fragment):
    path = write(tmp_path, "scenario.py", body)
    r = personae("run", path, "--db", str(tmp_path / "x.db"))
    assert r.returncode == 2, r.stderr
    assert fragment in r.stderr
    assert "Traceback" not in r.stderr


def test_missing_scenario_file(tmp_path):
    r = personae("run", str(tmp_path / "nope.py"))
    assert r.returncode == 2 and "does not exist" in r.stderr


def test_unreachable_server_fails_fast_and_counts_nothing(tmp_path):
    db = tmp_path / "x.db"
    r = personae("run", "counseling", "--db", str(db), "--base-url", "http://127.0.0.1:9/v1")
    assert r.returncode == 2
    assert "could not reach" in r.stderr.lower() and "127.0.0.1:9" in r.stderr
    assert not db.exists()  # nothing is created by a run that failed before any episode


def test_foreign_database_is_refused(tmp_path):
    db = tmp_path / "shop.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE orders (id INTEGER)")
    con.commit()
    con.close()
    r = personae("run", "counseling", "--db", str(db), "--base-url", "http://127.0.0.1:9/v1")
    assert r.returncode == 2 and "another program" in r.stderr
    r = personae("sql", str(db), "SELECT 1")
    assert r.returncode == 2 and "not a personae database" in r.stderr


def test_sql_refuses_writes_and_reports_bad_sql(tmp_path):
    from personae.store import Database

    db = tmp_path / "x.db"
    Database(db).close()
    r = personae("sql", str(db), "DELETE FROM experiments")
    assert r.returncode == 2 and "read-only" in r.stderr
    r = personae("sql", str(db), "SELEC 1")
    assert r.returncode == 2 and "syntax error" in r.stderr
    r = personae("sql", str(db), "SELECT 1 AS one, 'a' AS two", "--format", "csv")
    assert r.returncode == 0 and r.stdout.splitlines() == ["one,two", "1,a"]
    r = personae("sql", str(db), "SELECT 1 AS one", "--format", "json")
    assert r.returncode == 0 and '"one": 1' in r.stdout


def test_bad_option_value(tmp_path):
    r = personae("run", "counseling", "--replicates", "0", "--db", str(tmp_path / "x.db"))
    assert r.returncode == 2 and "replicates" in r.stderr
