"""``personae browse``: Datasette on a small real database, read in a real headless browser.

The database is made by the fakes (tests/support/browse_db.py). The browser
test starts the command as a user would (``python -m personae.cli browse DB
--port 0``), reads the URL it prints, and drives Debian's Chromium
(``/usr/bin/chromium``) with Playwright. With ``PERSONAE_SCREENSHOTS=1`` it
saves the transcript page to ``docs/img/browse-transcript.png``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import select
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from personae.browse import browse_metadata, canned_queries, check_database, make_datasette
from tests.support.browse_db import OPENING, make_db

CHROMIUM = "/usr/bin/chromium"
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "img" / "browse-transcript.png"


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    return make_db(tmp_path_factory.mktemp("browse") / "study.db")


def rows(db, sql, params=()):
    con = sqlite3.connect(f"{db.resolve().as_uri()}?immutable=1", uri=True)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def get_json(db, url):
    ds = make_datasette(db)

    async def fetch():
        response = await ds.client.get(url)
        assert response.status_code == 200, response.text[:500]
        return response.json()

    return asyncio.run(fetch())


def personae(*args):
    return subprocess.run(
        [sys.executable, "-m", "personae.cli", *args], capture_output=True, text=True, timeout=60
    )


class Browse:
    """``personae browse`` in a subprocess, stopped with Ctrl-C (SIGINT) at the end."""

    def __init__(self, db: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "personae.cli", "browse", str(db), "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.url = self._read_url()

    def _read_url(self) -> str:
        deadline = time.monotonic() + 20
        seen = ""
        assert self.proc.stderr is not None
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stderr], [], [], 0.2)
            if ready:
                line = self.proc.stderr.readline()
                seen += line
                match = re.search(r"http://127\.0\.0\.1:\d+/", line)
                if match:
                    return match.group(0)
            if self.proc.poll() is not None:
                break
        self.proc.kill()
        raise AssertionError(f"personae browse printed no URL: {seen!r}")

    def stop(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGINT)
        _, stderr = self.proc.communicate(timeout=15)
        return self.proc.returncode, stderr


def test_browser_reads_the_conversation_and_a_canned_query(db):
    from playwright.sync_api import sync_playwright

    before = digest(db)
    episode = 3  # verbose client: a truncated reply, an empty one, states and scores
    turns = rows(
        db,
        "SELECT a.name, t.content FROM turns t JOIN agents a ON a.id = t.agent_id "
        "WHERE t.episode_id = ? ORDER BY t.step",
        (episode,),
    )
    failed_or_cut = rows(
        db,
        "SELECT id FROM episodes WHERE status <> 'complete' OR id IN "
        "(SELECT episode_id FROM turns WHERE truncated = 1 OR empty = 1) "
        "ORDER BY status = 'complete', id",  # the failed ones first
    )
    server = Browse(db)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
            page = browser.new_page(viewport={"width": 1000, "height": 900})
            # From the home page, through the episode's link, to its conversation.
            page.goto(server.url)
            assert "grid cells" in page.content()
            page.goto(f"{server.url}study/episodes")
            page.click(f'a.personae-conversation[href="/-/personae/episode/{episode}"]')
            page.wait_for_selector("ol.conversation li.turn")
            assert page.url == f"{server.url}-/personae/episode/{episode}"
            speakers = [
                s.split(" #")[0] for s in page.locator("li.turn .speaker").all_inner_texts()
            ]
            said = page.locator("li.turn .utterance").all_text_contents()
            assert list(zip(speakers, said, strict=True)) == turns
            assert said[0] == OPENING
            assert page.locator("li.turn .badge", has_text="truncated").count() == 1
            assert page.locator("li.turn .badge.empty").count() == 1
            assert page.locator("li.note.score").count() == 2  # GAD-7 total, start and end
            assert page.locator("li.note.state").count() == 3  # mood every two utterances
            if os.environ.get("PERSONAE_SCREENSHOTS"):
                SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(SCREENSHOT), full_page=True)
            # A canned query, as a table of rows.
            page.goto(f"{server.url}study/problem_episodes")
            ids = page.locator("table.rows-and-columns tbody td.col-episode_id").all_inner_texts()
            assert [int(i) for i in ids] == [i for (i,) in failed_or_cut]
            browser.close()
    finally:
        code, stderr = server.stop()
    assert code == 0, stderr
    assert "the database was not changed" in stderr
    assert "Traceback" not in stderr
    # Immutable: the file is byte for byte the same and SQLite made no -wal or -shm.
    assert digest(db) == before
    assert not db.with_name(db.name + "-wal").exists()
    assert not db.with_name(db.name + "-shm").exists()


def test_metadata_describes_every_table_and_view(db):
    names = {
        n for (n,) in rows(db, "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")
    }
    tables = browse_metadata("study")["databases"]["study"]["tables"]
    for name in names - {"_migrations"}:
        assert tables[name]["title"] and tables[name]["description"], name
        columns = {c for (c,) in rows(db, f"SELECT name FROM pragma_table_info('{name}')")}
        assert set(tables[name].get("facets", [])) <= columns, name
        assert set(tables[name].get("columns", {})) <= columns, name
    assert tables["_migrations"]["hidden"] is True


def test_episode_timeline_interleaves_probes_and_states_by_step(db):
    timeline = get_json(db, "/study/episode_timeline.json?episode_id=3&_shape=array")
    kinds = [(r["step"], r["kind"]) for r in timeline]
    assert kinds == sorted(kinds, key=lambda k: (k[0], k[1] == "turn"))  # probes before turn k
    assert kinds[:3] == [(0, "probe"), (0, "score"), (0, "turn")]
    # the end administration and the last mood, after the 6 utterances
    assert kinds[-3:] == [(6, "probe"), (6, "score"), (6, "state")]
    assert [r["text"] for r in timeline if r["kind"] == "turn"] == [
        t for (t,) in rows(db, "SELECT content FROM turns WHERE episode_id = 3 ORDER BY step")
    ]
    assert [r["step"] for r in timeline if r["kind"] == "state"] == [2, 4, 6]


def test_grid_cells_and_their_episodes(db):
    cells = get_json(db, "/study/grid_cells.json?_shape=array")
    assert [(c["param_index"], c["episodes"], c["complete"], c["failed"]) for c in cells] == [
        (0, 2, 2, 0),
        (1, 2, 2, 0),
        (2, 2, 0, 2),
    ]
    assert '"verbose"' in cells[1]["params"]
    cell = get_json(db, "/study/cell_episodes.json?experiment_id=1&param_index=1&_shape=array")
    assert [(e["episode_id"], e["truncated_turns"], e["empty_turns"]) for e in cell] == [
        (3, 1, 1),
        (4, 1, 1),
    ]


def test_outlying_scores_match_an_independent_computation(db):
    found = get_json(db, "/study/outlying_scores.json?min_z=1&_shape=array")
    scores = pl.DataFrame(
        rows(
            db,
            "SELECT episode_id, param_index, point, occasion, value FROM trait_scores "
            "WHERE value IS NOT NULL",
        ),
        schema=["episode_id", "param_index", "point", "occasion", "value"],
        orient="row",
    )
    cell = ["param_index", "point", "occasion"]
    expected = (
        scores.with_columns(
            z=(pl.col("value") - pl.col("value").mean().over(cell))
            / pl.col("value").std(ddof=0).over(cell)
        )
        .filter(pl.col("z").abs() >= 1)
        .sort("episode_id", "point")
    )
    assert expected.height > 0
    got = sorted((r["episode_id"], r["point"], r["z"]) for r in found)
    want = sorted(
        (e, p, round(z, 2)) for e, p, z in expected.select("episode_id", "point", "z").iter_rows()
    )
    assert got == want


def test_model_calls_count_every_request(db):
    per_model = get_json(db, "/study/model_calls.json?_shape=array")
    assert sum(r["calls"] for r in per_model) == rows(db, "SELECT COUNT(*) FROM llm_calls")[0][0]
    cut = [r for r in per_model if r["cut_by_max_tokens"]]
    assert [(r["model"], r["cut_by_max_tokens"], r["mean_latency_ms"]) for r in cut] == [
        ("fake-model", 2, 12.5)
    ]
    assert sum(r["failed"] or 0 for r in per_model) == 2  # the two broken episodes


def test_every_canned_query_has_a_title_and_runs(db):
    for name, query in canned_queries().items():
        assert query["title"] and query["description"], name
        get_json(db, f"/study/{name}.json?episode_id=1&experiment_id=1&param_index=0&min_z=2")


def test_unknown_episode_is_a_404(db):
    ds = make_datasette(db)

    async def fetch():
        return await ds.client.get("/-/personae/episode/999")

    response = asyncio.run(fetch())
    assert response.status_code == 404
    assert "There is no episode 999" in response.text


@pytest.mark.parametrize("kind", ["missing", "text", "foreign"])
def test_browse_refuses_what_is_not_a_personae_database(tmp_path, kind):
    path = tmp_path / "x.db"
    if kind == "text":
        path.write_text("hello\n")
    elif kind == "foreign":
        con = sqlite3.connect(path)
        con.execute("CREATE TABLE t (x)")
        con.commit()
        con.close()
    r = personae("browse", str(path), "--port", "0")
    assert r.returncode == 2, r.stderr
    assert {
        "missing": "no database at",
        "text": "is not an SQLite database",
        "foreign": "is not a personae database",
    }[kind] in r.stderr
    assert "Traceback" not in r.stderr


def test_browse_names_a_port_in_use(db):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = personae("browse", str(db), "--port", str(port))
    assert r.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in r.stderr and "--port" in r.stderr


def test_a_database_a_run_is_writing_is_read_as_it_is_now(db, tmp_path):
    import shutil

    copy = tmp_path / "running.db"
    shutil.copy(db, copy)
    writer = sqlite3.connect(copy)  # a run in progress: its last commit is still in the -wal
    try:
        writer.execute("PRAGMA wal_autocheckpoint=0")
        writer.execute("UPDATE experiments SET name = 'committed just now'")
        writer.commit()
        assert check_database(copy) is True
        ds = make_datasette(copy, live=True)

        async def fetch():
            return (await ds.client.get("/running/experiments.json?_shape=array")).json()

        assert asyncio.run(fetch())[0]["name"] == "committed just now"
    finally:
        writer.close()


def test_file_names_a_uri_would_misread(db, tmp_path):
    import shutil

    odd = tmp_path / "run #1?%.db"
    shutil.copy(db, odd)
    ds = make_datasette(odd, live=check_database(odd))

    async def fetch():
        return (await ds.client.get("/run-1/episodes.json?_shape=array")).json()

    assert len(asyncio.run(fetch())) == 6
