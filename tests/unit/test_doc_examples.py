"""Every SQL and Python example in README.md and docs/*.md runs, so none can break silently.

The examples run in one folder holding the databases the docs name
(``runs/demo.db``, ``runs/drift.db``, ...), made by tests/support/doc_databases.py
with the real runner and studies on a fake model. Python blocks of one file
share a namespace and run in order (a block may go on from the one before);
``Experiment.run`` without a model gets the fake instead of starting a server.
SQL blocks and ``personae sql`` lines must run, return rows, and return no
column that is NULL in every row (a misspelt JSON key in ``json_extract`` gives
NULLs, not an error). How a doc steers its examples (``no-run``, ``db``,
``file``, ``setup`` comments) is described in tests/support/doc_examples.py.
Each test is named after the block's file and line.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import inspect
import json
import sqlite3
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

from tests.support import doc_databases
from tests.support.doc_examples import Example, all_examples, statements

EXAMPLES = all_examples()
RUN = [e for e in EXAMPLES if e.no_run is None]
#: Blocks kept out of the run, each with its reason in the doc; keep this short.
MAX_NOT_RUN = 6

DOC_MODULE = "__doc_example__"
_namespaces: dict[Path, dict[str, Any]] = {}
_ran: set[str] = set()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return doc_databases.build(tmp_path_factory.mktemp("docs"))


@pytest.fixture
def in_folder(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in the examples' folder, with no server: the fake answers instead."""
    monkeypatch.chdir(folder)
    monkeypatch.setenv("HOME", str(folder / "home"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    from personae import studies
    from personae.llm import backends
    from personae.measures import instruments

    monkeypatch.setattr(backends, "connected_model", doc_databases.fake_connection)
    # An example adds a report section, another registers an instrument; the other
    # tests keep the defaults.
    monkeypatch.setattr(studies, "SECTIONS", list(studies.SECTIONS))
    monkeypatch.setattr(instruments, "_REGISTERED", dict(instruments._REGISTERED))
    monkeypatch.setattr(instruments, "_SCORERS", dict(instruments._SCORERS))
    return folder


def _compile(code: str, example: Example, label: str = "") -> Any:
    # Padded so a traceback's line number is the line in the Markdown file.
    source = "\n" * (example.line - 1) + code
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    return compile(source, f"{example.path}{label}", "exec", flags=flags, dont_inherit=True)


def _run_python(example: Example) -> None:
    namespace = _namespaces.setdefault(example.path, {"__name__": DOC_MODULE})
    if example.setup:
        exec(_compile(example.setup, example, " (setup)"), namespace)
    with warnings.catch_warnings():
        # The docs show the current API: a deprecated name used by an example fails it.
        warnings.filterwarnings("error", category=DeprecationWarning, module=DOC_MODULE)
        result = eval(_compile(example.code, example), namespace)
        if inspect.iscoroutine(result):  # top-level await, as in a notebook cell
            asyncio.run(result)


def _run(example: Example) -> None:
    """Run one example, after the earlier ones of its file (a block may go on from them)."""
    for earlier in RUN:
        if earlier.path == example.path and earlier.line < example.line and earlier.id not in _ran:
            _ran.add(earlier.id)
            with contextlib.suppress(Exception):  # reported by its own test
                _run(earlier)
    _ran.add(example.id)
    if example.kind == "file":
        assert example.file is not None
        Path(example.file).parent.mkdir(parents=True, exist_ok=True)
        Path(example.file).write_text(example.code)
    elif example.kind == "python":
        _run_python(example)
    elif example.kind == "sql":
        _run_sql(example)
    elif example.kind == "cli-sql":
        _run_cli_sql(example)


def _check_rows(where: str, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    empty = [name for i, name in enumerate(columns) if all(row[i] is None for row in rows)]
    assert not empty, f"{where}: column(s) {empty} are NULL in every row: {rows[:3]}"


def _run_sql(example: Example) -> None:
    db = Path(example.db)
    assert db.exists(), f"{example.id}: no database {db} among the docs' databases"
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        returned = 0
        for statement in statements(example.code):
            cursor = con.execute(statement)
            rows = cursor.fetchall()
            returned += len(rows)
            if rows:
                columns = [d[0] for d in cursor.description]
                _check_rows(f"{example.id} ({statement.splitlines()[-1][:60]})", columns, rows)
        assert returned, f"{example.id}: no statement returned a row from {db}"
    finally:
        con.close()


def _run_cli_sql(example: Example) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "personae.cli", *example.argv(), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"{example.id}: {example.code}\n{result.stderr}"
    rows = json.loads(result.stdout)
    assert rows, f"{example.id}: {example.code} returned no rows"
    columns = list(rows[0])
    _check_rows(example.id, columns, [tuple(row.get(c) for c in columns) for row in rows])


@pytest.mark.parametrize("example", RUN, ids=[e.id for e in RUN])
def test_documented_example_runs(example: Example, in_folder: Path) -> None:
    _run(example)


def test_the_docs_have_sql_and_python_examples_to_run() -> None:
    kinds = {e.kind for e in RUN}
    assert {"python", "sql", "cli-sql"} <= kinds
    assert any(e.path.name == "README.md" and e.kind == "python" for e in RUN)


def test_examples_not_run_are_few_say_why_and_still_parse() -> None:
    skipped = [e for e in EXAMPLES if e.no_run is not None]
    assert len(skipped) <= MAX_NOT_RUN, [e.id for e in skipped]
    for example in skipped:
        assert len(example.no_run or "") > 10, f"{example.id}: say why it is not run"
        if example.kind == "python":
            _compile(example.code, example)  # a SyntaxError fails here
