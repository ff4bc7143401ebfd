"""The HTML report and the figures, on small databases with the real schema."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import polars as pl
import pytest

from personae.analysis import plots
from personae.analysis.report import Section, html_table, write_report
from personae.errors import StoreError
from personae.store.database import Database

DOMAINS = {
    "O": "openness",
    "C": "conscientiousness",
    "E": "extraversion",
    "A": "agreeableness",
    "N": "neuroticism",
}


def _database(path: Path, name: str = "drift <demo>", scores: bool = True) -> Path:
    """Two parameter sets x two replicates; IPIP domains and judge at 2 occasions, PHQ-9, answers."""
    Database(path).close()
    con = sqlite3.connect(path)
    con.execute(
        "INSERT INTO experiments (id, name, scenario, config_hash, config_json, seed, model,"
        " created_at) VALUES (1, ?, 'counseling', 'h', '{}', 1, 'fake', 'now')",
        (name,),
    )
    targets = [
        {"O": 3.6, "C": 3.9, "E": 2.4, "A": 3.8, "N": 4.3},
        {"O": 2.8, "C": 3.2, "E": 1.8, "A": 2.9, "N": 3.5},
    ]
    episode = 0
    for param_index, big_five in enumerate(targets):
        for replicate in range(2):
            episode += 1
            con.execute(
                "INSERT INTO episodes (id, experiment_id, param_index, replicate, params_json,"
                " seed, status) VALUES (?, 1, ?, ?, ?, 0, 'complete')",
                (episode, param_index, replicate, json.dumps({"set": param_index})),
            )
            persona = json.dumps({"name": "Sam", "role": "client", "big_five": big_five})
            con.execute(
                "INSERT INTO agents (id, episode_id, name, role, persona_json)"
                " VALUES (?, ?, 'Sam', 'client', ?)",
                (episode, episode, persona),
            )
            if not scores:
                continue
            rows = []
            for occasion, point in enumerate(["start", "session_end"]):
                for letter, scale in DOMAINS.items():
                    value = big_five[letter] - 0.3 * occasion + 0.1 * replicate
                    rows.append(
                        (
                            occasion,
                            point,
                            "ipip-neo-120",
                            "domain",
                            scale,
                            value,
                            None,
                            "self_report",
                        )
                    )
                    if point == "session_end":
                        rows.append(
                            (0, point, "judge-big5", "domain", scale, value - 0.2, None, "judge")
                        )
                total, band = (14, "moderate") if occasion == 0 else (7, "mild")
                rows.append(
                    (
                        occasion,
                        point,
                        "phq-9",
                        "total",
                        "phq-9",
                        total + replicate,
                        band,
                        "self_report",
                    )
                )
            con.executemany(
                "INSERT INTO scores (episode_id, agent_id, session, step, point, occasion,"
                " instrument, level, scale, value, n_items, n_missing, band, prompt_variant,"
                " option_order, source) VALUES (?, ?, 0, 0, ?, ?, ?, ?, ?, ?, 9, 0, ?, 0,"
                " 'forward', ?)",
                [(episode, episode, r[1], r[0], *r[2:]) for r in rows],
            )
            con.executemany(
                "INSERT INTO measurements (episode_id, agent_id, session, step, point, occasion,"
                " instrument, item, prompt_variant, option_order, position, batch, raw, value,"
                " valid, reason) VALUES (?, ?, 0, 0, 'start', 0, 'phq-9', ?, 0, 'forward', ?, ?,"
                " ?, ?, ?, ?)",
                [
                    (episode, episode, str(item), item, item, raw, value, valid, reason)
                    for item in range(1, 10)
                    for raw, value, valid, reason in [
                        ("I won't answer", None, 0, "refusal")
                        if item == 9 and replicate
                        else (str((item + episode) % 4), float((item + episode) % 4), 1, None)
                    ]
                ],
            )
    con.commit()
    con.close()
    return path


def test_report_with_scores_has_sections_figures_and_tables(tmp_path: Path) -> None:
    db = _database(tmp_path / "run.db")
    out = write_report(db)
    assert out == tmp_path / "run.report.html"
    page = out.read_text(encoding="utf-8")
    for title in (
        "Experiments",
        "Trait drift",
        "Measurement quality",
        "Change per persona",
        "Test-retest",
        "Target vs measured",
        "Self-report vs judged behaviour",
        "Clinical change",
        "Invalid answers",
    ):
        assert f">{title}" in page, title
    assert page.count('<img alt="') >= 4
    assert (
        '<img alt="ipip-neo-120 domain scores (self_report) over occasions" src="data:image/png;base64,'
        in page
    )
    assert "moderate -&gt; mild" in page
    assert "drift &lt;demo&gt;" in page and "drift <demo>" not in page  # escaped
    assert "<script" not in page and "http" not in page.split("</style>")[0]
    assert 'class="error"' not in page


def test_report_without_scores_is_still_useful(tmp_path: Path) -> None:
    db = _database(tmp_path / "empty.db", scores=False)
    out = write_report(db, out=tmp_path / "sub" / "page.html")
    page = out.read_text(encoding="utf-8")
    assert out == tmp_path / "sub" / "page.html"
    assert ">Experiments<" in page and "counseling" in page
    assert "<img" not in page
    assert "Trait drift" not in page  # a section with nothing to show is left out


def test_report_of_a_fresh_database(tmp_path: Path) -> None:
    db = tmp_path / "fresh.db"
    Database(db).close()
    page = write_report(db).read_text(encoding="utf-8")
    assert "No experiment has been run into this database yet." in page


def test_report_refuses_a_missing_database(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        write_report(tmp_path / "nope.db")


def test_a_failing_section_does_not_lose_the_report(tmp_path: Path) -> None:
    def broken(db: Path) -> str | None:
        raise RuntimeError("boom <b>")

    def later(db: Path) -> str | None:
        return "<p>later section</p>"

    db = _database(tmp_path / "run.db", scores=False)
    sections = [Section("Broken", broken), Section("Later", later), Section("Idle", lambda _: None)]
    page = write_report(db, sections=sections).read_text(encoding="utf-8")
    assert "This section failed: RuntimeError: boom &lt;b&gt;" in page
    assert "<p>later section</p>" in page
    assert "Idle" not in page and "Nothing to show" not in page


def test_html_table_escapes_and_formats() -> None:
    frame = pl.DataFrame({"<name>": ["a&b"], "r": [0.123456], "p": [1e-9], "ok": [True], "n": [3]})
    table = html_table(frame)
    assert "&lt;name&gt;" in table and "a&amp;b" in table
    assert ">0.123<" in table and ">1.0e-09<" in table and ">yes<" in table and ">3<" in table
    assert "(no rows)" in html_table(frame.clear())


@pytest.mark.parametrize(
    "draw",
    [
        plots.plot_trajectories,
        plots.plot_target_vs_measured,
        plots.plot_self_vs_judge,
        plots.plot_clinical_change,
    ],
    ids=lambda f: f.__name__,
)
def test_figures_save_png_and_survive_empty_input(tmp_path: Path, draw) -> None:
    db = _database(tmp_path / "run.db")
    png = tmp_path / "figure.png"
    fig = draw(db, path=png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert fig.axes
    empty = draw(pl.DataFrame())
    assert empty.texts  # a "no ..." message instead of a crash
    assert plots.png_bytes(empty)[:4] == b"\x89PNG"


def test_each_figure_links_the_query_behind_it_in_browse(tmp_path: Path) -> None:
    import html as html_lib
    import re
    import sqlite3
    import urllib.parse

    db = _database(tmp_path / "run.db")
    page = write_report(db, browse_url="http://127.0.0.1:9999/").read_text(encoding="utf-8")
    links = re.findall(r'<a class="data" href="([^"]+)">data</a>', page)
    assert len(links) == page.count('<img alt="') >= 4
    con = sqlite3.connect(db)
    for link in links:
        url = urllib.parse.urlsplit(html_lib.unescape(link))
        assert (url.netloc, url.path) == ("127.0.0.1:9999", "/run")  # the name browse serves
        [sql] = urllib.parse.parse_qs(url.query)["sql"]
        assert con.execute(sql).fetchall(), sql  # the query runs and has the rows
