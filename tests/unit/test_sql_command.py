"""``personae sql`` reads and nothing else: no file created, every input answered cleanly.

Most tests run the command in-process through :func:`personae.cli.main`, the
function the ``personae`` script calls, so exit codes are the real ones. Ctrl-C
and read-only storage need a process of their own.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from personae.cli import main
from personae.errors import StoreError
from personae.store.database import Database
from personae.store.readonly import connect_readonly, json_records, query

REFUSED = "Nothing was created or changed"


def personae_sql(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """Run ``personae sql ARGS`` as the script does; return (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["personae", "sql", *args])
    with pytest.raises(SystemExit) as stopped:
        main()
    captured = capsys.readouterr()
    code = stopped.value.code
    return (code if isinstance(code, int) else 1), captured.out, captured.err


def listing(folder: Path) -> dict[str, bytes]:
    """Every file under a folder with its bytes (the -shm index excepted: readers touch it)."""
    return {
        str(p.relative_to(folder)): b"" if p.name.endswith("-shm") else p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def db(tmp_path, monkeypatch, capsys) -> Path:
    """A personae database, read once so SQLite's own -wal and -shm files exist."""
    path = tmp_path / "x.db"
    Database(path).close()
    assert personae_sql(monkeypatch, capsys, str(path), "SELECT 1")[0] == 0
    monkeypatch.chdir(tmp_path)  # where a relative 'x2.db' would be created
    return path


@pytest.mark.parametrize(
    "statement",
    [
        "ATTACH 'x2.db' AS x",
        "ATTACH 'file:x2.db?mode=rwc' AS x",
        "attach database 'sub/x2.db' as x",
        "VACUUM INTO 'y.db'",
        "VACUUM",
        "VACUUM main INTO 'file:y.db'",
        "DETACH main",
        "/* first */ ATTACH ':memory:' AS m",
    ],
)
def test_attach_detach_vacuum_are_refused_and_create_no_file(
    db, tmp_path, monkeypatch, capsys, statement
):
    before = listing(tmp_path)
    code, out, err = personae_sql(monkeypatch, capsys, str(db), statement)
    assert code == 2, err
    assert "read-only" in err and "attach or detach a database file" in err and REFUSED in err
    assert "Traceback" not in err and out == ""
    assert listing(tmp_path) == before


@pytest.mark.parametrize(
    ("statement", "fragment"),
    [
        ("DELETE FROM experiments", "DELETE on experiments"),
        ("UPDATE turns SET content = 'x'", "UPDATE on turns"),
        ("INSERT INTO experiments(name) VALUES ('x')", "INSERT on experiments"),
        ("DROP TABLE turns", "schema"),
        ("CREATE TABLE t(x)", "schema"),
        ("CREATE TEMP TABLE t(x)", "schema"),
        ("CREATE INDEX i ON turns(step)", "change the database"),
        ("REINDEX", "REINDEX"),
        ("ANALYZE", "change the database"),
        ("BEGIN", "transaction"),
        ("SAVEPOINT s", "transaction"),
        ("PRAGMA user_version = 3", "PRAGMA user_version = 3"),
        ("PRAGMA journal_mode = DELETE", "PRAGMA journal_mode = DELETE"),
        ("PRAGMA wal_checkpoint", "PRAGMA wal_checkpoint"),
        ("PRAGMA writable_schema = 1", "PRAGMA writable_schema = 1"),
        ("PRAGMA query_only = 0", "PRAGMA query_only = 0"),
        ("SELECT load_extension('x')", "load_extension()"),
    ],
)
def test_writes_and_setting_pragmas_are_refused(
    db, tmp_path, monkeypatch, capsys, statement, fragment
):
    before = listing(tmp_path)
    code, _, err = personae_sql(monkeypatch, capsys, str(db), statement)
    assert code == 2, err
    assert "read-only" in err and fragment in err and REFUSED in err
    assert "Traceback" not in err
    assert listing(tmp_path) == before


@pytest.mark.parametrize(
    ("statement", "first_line"),
    [
        ("PRAGMA table_info(turns)", "cid,name,type,notnull,dflt_value,pk"),
        ("PRAGMA index_list('turns')", "seq,name,unique,origin,partial"),
        ("PRAGMA user_version", "user_version"),
        ("PRAGMA application_id", "application_id"),
        ("PRAGMA quick_check", "quick_check"),
        ("SELECT name FROM pragma_table_info('turns') LIMIT 1", "name"),
        ("SELECT value FROM json_each('[1, 2]')", "value"),
        (
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 3) "
            "SELECT SUM(x) AS s FROM c",
            "s",
        ),
        ("SELECT COUNT(*) AS n FROM transcript", "n"),
        ("EXPLAIN QUERY PLAN SELECT * FROM turns WHERE episode_id = 1", "id,parent,notused,detail"),
        ("  SELECT 1 AS one;  ", "one"),
        ("SELECT 1 AS one; -- done", "one"),
        ("SELECT 1 AS one;;", "one"),
        ("SELECT '?;' AS q -- not a parameter; not a second statement", "q"),
    ],
)
def test_reads_work(db, tmp_path, monkeypatch, capsys, statement, first_line):
    before = listing(tmp_path)
    code, out, err = personae_sql(monkeypatch, capsys, str(db), statement, "--format", "csv")
    assert code == 0, err
    assert out.splitlines()[0] == first_line
    assert listing(tmp_path) == before


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ("SELECT 1; SELECT 2", "personae sql runs one statement; got 2"),
        ("SELECT 1; ATTACH 'x2.db' AS x; SELECT 3;", "personae sql runs one statement; got 3"),
        ("", "the query is empty"),
        ("  ;  /* nothing */ ", "the query is empty"),
        ("SELECT ?", "the query has a parameter (?) but personae sql takes none"),
        ("SELECT * FROM turns WHERE id = :id", "the query has a parameter (:id) but"),
        ("SELECT ?1, @b", "the query has a parameter (?1, @b) but"),
        ("SELEC 1", "syntax error"),
        ("SELECT * FROM nowhere", "no such table: nowhere"),
    ],
)
def test_bad_queries_get_one_clear_message(db, tmp_path, monkeypatch, capsys, statement, message):
    before = listing(tmp_path)
    code, out, err = personae_sql(monkeypatch, capsys, str(db), statement)
    assert code == 2, err
    assert message in err and "Traceback" not in err and out == ""
    assert len(err.strip().splitlines()) == 1
    assert listing(tmp_path) == before


@pytest.mark.parametrize(
    "name", ["a b.db", "x#1.db", "what?.db", "100%.db", "%41.db", "persönae.db", "d #?%é/p.db"]
)
def test_paths_with_uri_characters_open_that_file(tmp_path, monkeypatch, capsys, name):
    path = tmp_path / name
    path.parent.mkdir(exist_ok=True)
    Database(path).close()
    monkeypatch.chdir(tmp_path)
    before = set(listing(tmp_path))
    code, out, err = personae_sql(
        monkeypatch, capsys, str(path), "PRAGMA application_id", "-f", "csv"
    )
    assert code == 0, err
    assert out.splitlines() == ["application_id", str(0x50455253)]
    created = set(listing(tmp_path)) - before
    assert created <= {f"{name}-wal", f"{name}-shm"}  # SQLite's own, beside that file only


def test_json_keeps_blobs_repeated_names_and_stays_valid(db, monkeypatch, capsys):
    code, out, err = personae_sql(
        monkeypatch,
        capsys,
        str(db),
        "SELECT x'00ff' AS b, 1 AS a, 2 AS a, 3 AS a, 1e999 AS inf, -1e999 AS ninf, "
        "NULL AS n, 'é' AS t, 1.5 AS f",
        "--format",
        "json",
    )
    assert code == 0, err

    def no_constants(name: str) -> None:
        raise AssertionError(f"invalid JSON constant {name}")

    records = json.loads(out, parse_constant=no_constants)
    assert records == [
        {
            "b": {"base64": "AP8="},
            "a": 1,
            "a_2": 2,
            "a_3": 3,
            "inf": None,
            "ninf": None,
            "n": None,
            "t": "é",
            "f": 1.5,
        }
    ]


def test_repeated_names_do_not_take_a_real_columns_name():
    assert list(json_records(["a", "a", "a_2"], [(1, 2, 3)])[0].items()) == [
        ("a", 1),
        ("a_3", 2),
        ("a_2", 3),
    ]


def test_csv_and_table_show_blobs_and_print_brackets_as_text(db, monkeypatch, capsys):
    code, out, _ = personae_sql(
        monkeypatch, capsys, str(db), "SELECT x'00ff' AS b, NULL AS n", "-f", "csv"
    )
    assert code == 0 and out.splitlines() == ["b,n", "x'00ff',"]
    code, out, err = personae_sql(
        monkeypatch,
        capsys,
        str(db),
        "SELECT x'00ff' AS b, zeroblob(100) AS big, '[/]' AS \"[bold]x\", NULL AS n",
    )
    assert code == 0, err
    assert "x'00ff'" in out and "(100 bytes)" in out and "NULL" in out
    assert "[/]" in out and "[bold]x" in out


def test_library_query_still_takes_parameters(db):
    assert query(db, "SELECT ? AS v, :n AS n", ("x", 2)) == (["v", "n"], [("x", 2)])
    with pytest.raises(StoreError, match="one statement; got 2"):
        query(db, "SELECT 1; SELECT 2")


def test_connections_for_analysis_refuse_attach_too(db, tmp_path):
    before = listing(tmp_path)
    con = connect_readonly(db)
    try:
        with pytest.raises(sqlite3.DatabaseError, match="not authorized"):
            con.execute("ATTACH 'x2.db' AS x")
        with pytest.raises(sqlite3.DatabaseError):
            con.execute("VACUUM INTO 'y.db'")
        assert con.execute("SELECT COUNT(*) FROM turns").fetchone() == (0,)
    finally:
        con.close()
    assert listing(tmp_path) == before


def test_unreadable_and_missing_files(tmp_path, monkeypatch, capsys):
    code, _, err = personae_sql(monkeypatch, capsys, str(tmp_path / "none.db"), "SELECT 1")
    assert code == 2 and "no database at" in err
    text = tmp_path / "notes.db"
    text.write_text("not sqlite " * 100)
    code, _, err = personae_sql(monkeypatch, capsys, str(text), "SELECT 1")
    assert code == 2 and "is not an SQLite database" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.db"]


def test_ctrl_c_stops_a_runaway_query(tmp_path):
    path = tmp_path / "x.db"
    Database(path).close()
    shm = tmp_path / "x.db-shm"
    assert not shm.exists()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "personae.cli",
            "sql",
            str(path),
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT MAX(x) FROM c",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not shm.exists():  # SQLite makes it when the command opens the database
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the command never opened the database"
            time.sleep(0.05)
        time.sleep(1.0)  # now inside the endless statement
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert err.strip() == "interrupted: the query was stopped; nothing was changed."
    assert out == ""


READ_ONLY_MOUNT = """
set -e
for d in "$@"; do mount --bind "$d" "$d"; mount -o remount,bind,ro "$d"; done
touch "$1/probe" 2>/dev/null && { echo "still writable"; exit 3; }
exec "$PYTHON" -c '
import sys
from personae.errors import StoreError
from personae.store.readonly import query
print(query(sys.argv[1], "SELECT COUNT(*) AS n FROM experiments"))
try:
    query(sys.argv[2], "SELECT 1")
except StoreError as exc:
    print(exc)
' "$1/x.db" "$2/x.db"
"""


def test_read_only_storage_is_readable(tmp_path):
    """A real read-only mount (user and mount namespaces): no -shm can be made.

    Tests run as root, for whom chmod 0555 changes nothing, so the directories
    are bind-mounted read-only in a namespace of the test's own, where even
    root gets EROFS. Skipped where unshare or namespaces are unavailable.
    """
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "-rm", "true"], check=False).returncode:
        pytest.skip("needs unshare with user and mount namespaces for a read-only mount")
    clean, logged = tmp_path / "clean", tmp_path / "logged"
    clean.mkdir()
    logged.mkdir()
    Database(clean / "x.db").close()
    assert sorted(p.name for p in clean.iterdir()) == ["x.db"]
    # A WAL that still holds a commit: what a run killed before its checkpoint leaves.
    writer = sqlite3.connect(logged / "x.db")
    writer.execute(f"PRAGMA application_id={0x50455253}")
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("CREATE TABLE t(x)")
    writer.commit()
    shutil.copy(logged / "x.db", tmp_path / "x.db.copy")
    shutil.copy(logged / "x.db-wal", tmp_path / "x.db-wal.copy")
    writer.close()
    shutil.copy(tmp_path / "x.db.copy", logged / "x.db")
    shutil.copy(tmp_path / "x.db-wal.copy", logged / "x.db-wal")
    r = subprocess.run(
        [unshare, "-rm", "sh", "-c", READ_ONLY_MOUNT, "sh", str(clean), str(logged)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHON": sys.executable},
    )
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "(['n'], [(0,)])"
    assert "on read-only storage" in lines[1] and "Copy the database and its -wal" in lines[1]
    assert sorted(p.name for p in clean.iterdir()) == ["x.db"]
