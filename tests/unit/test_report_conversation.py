"""The report on a real database made with the fakes: the conversation section, hidden
sections, and labels that name the condition."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import polars as pl
import pytest

from personae import Experiment, FunctionModel, Opening, Persona, Scenario
from personae.analysis import plots
from personae.llm.base import Completion
from personae.report.conversation import conversation_frame
from personae.report.page import write_report

RESERVED_REPLY = "Fine."
VERBOSE_REPLY = "Well, where do I start. " * 12  # 288 characters, cut by max_tokens


def _reply(messages, call) -> Completion | str:
    system = messages[0]["content"]
    if system.startswith("You are Ada"):
        return "How so?"
    if "say little" in system:  # the reserved style's card text
        return RESERVED_REPLY
    if len(messages) > 4:  # later verbose turns: only a stage direction, cleaned to nothing
        return "(sighs)"
    return Completion(text=VERBOSE_REPLY, model="fake", finish_reason="length")


@pytest.fixture(scope="module")
def support_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A custom support-group scenario, client style reserved vs verbose, 3 replicates each."""
    scenario = Scenario(
        name="support",
        agents=[
            Persona(name="Ada", role="host"),
            Persona(name="Ben", role="client", style="plain"),
        ],
        opening=Opening(speaker="Ada", text="Welcome, Ben. How was your week?"),
        max_turns=6,
    )
    experiment = Experiment(
        scenario=scenario,
        grid={"client.style": ["reserved", "verbose"]},
        replicates=3,
        seed=3,
        name="support-test",
    )
    db = tmp_path_factory.mktemp("conv") / "support.db"
    summary = asyncio.run(experiment.arun(db, FunctionModel(_reply), progress=False))
    assert summary.complete == 6
    return db


def _sql(db: Path, query: str) -> list[tuple]:
    con = sqlite3.connect(db)
    try:
        return con.execute(query).fetchall()
    finally:
        con.close()


def test_conversation_numbers_match_sql(support_db: Path) -> None:
    frame = conversation_frame(support_db)
    expected = _sql(
        support_db,
        "SELECT e.param_index, COUNT(DISTINCT t.episode_id), COUNT(*), AVG(LENGTH(t.content)), "
        "MAX(LENGTH(t.content)), SUM(t.truncated), SUM(t.empty) FROM turns t "
        "JOIN episodes e ON e.id = t.episode_id WHERE e.status = 'complete' AND t.scripted = 0 "
        "GROUP BY e.param_index ORDER BY e.param_index",
    )
    assert frame.height == len(expected) == 2
    for row, (_, episodes, replies, mean_chars, max_chars, truncated, empty) in zip(
        frame.iter_rows(named=True), expected, strict=True
    ):
        assert (row["episodes"], row["replies"]) == (episodes, replies)
        assert row["mean_chars"] == pytest.approx(mean_chars)
        assert row["max_chars"] == max_chars
        assert (row["truncated"], row["empty"]) == (truncated, empty)
        assert row["share_truncated"] == pytest.approx(truncated / replies)
        assert row["share_empty"] == pytest.approx(empty / replies)
    reserved, verbose = frame.row(0, named=True), frame.row(1, named=True)
    # What the fake said, so the section tells the two conditions apart.
    assert reserved["truncated"] == 0 and reserved["empty"] == 0
    assert verbose["truncated"] > 0 and verbose["empty"] > 0


def test_conversation_by_role_leaves_out_scripted_lines(support_db: Path) -> None:
    by_role = conversation_frame(support_db, by=("role",))
    host = by_role.filter(pl.col("role") == "host")
    (scripted,) = _sql(support_db, "SELECT COUNT(*) FROM turns WHERE scripted = 1")[0]
    (host_replies,) = _sql(
        support_db,
        "SELECT COUNT(*) FROM turns t JOIN agents a ON a.id = t.agent_id "
        "WHERE a.role = 'host' AND t.scripted = 0",
    )[0]
    assert scripted == 6  # one opening per episode, not a reply
    assert int(host["replies"].sum()) == host_replies


def test_labels_carry_the_condition(support_db: Path) -> None:
    frame = conversation_frame(support_db)
    assert frame["condition"].to_list() == [
        "client.style=reserved (set 0)",
        "client.style=verbose (set 1)",
    ]
    assert plots.condition_label(2, None) == "set 2"
    assert (
        plots.persona_label(
            "Sam", 1, '{"client.style": "reserved", "max_turns": 10}', ["client.style"]
        )
        == "Sam: client.style=reserved (set 1)"
    )


def test_report_shows_conversations_and_hides_study_sections(support_db: Path) -> None:
    page = write_report(support_db).read_text(encoding="utf-8")
    assert ">Conversations<" in page
    assert "client.style=reserved (set 0)" in page and "client.style=verbose (set 1)" in page
    assert "were cut by max_tokens" in page
    for title in ("Persuasion", "Group dynamics", "Student cohort", "Trait drift"):
        assert title not in page, title
    assert "Nothing to show" not in page


def test_a_database_without_turns_has_no_conversation_section(tmp_path: Path) -> None:
    from personae.store.database import Database

    db = tmp_path / "fresh.db"
    Database(db).close()
    assert conversation_frame(db).is_empty()
    assert ">Conversations<" not in write_report(db).read_text(encoding="utf-8")


def test_figure_legends_keep_out_of_the_plots() -> None:
    """Many series lengthen the figure below the panels instead of covering them."""
    rows = []
    for index in range(10):
        for occasion in (0, 1):
            rows.append(
                {
                    "experiment_id": 1,
                    "episode_id": index,
                    "param_index": index,
                    "params": f'{{"client.style": "style number {index}"}}',
                    "agent": "Sam",
                    "replicate": 0,
                    "occasion": occasion,
                    "instrument": "phq-9",
                    "level": "total",
                    "scale": "phq-9",
                    "value": 10.0 - occasion * (index % 3),
                    "source": "self_report",
                }
            )
    scores = pl.DataFrame(rows)
    few = plots.plot_clinical_change(scores.filter(pl.col("param_index") < 2))
    many = plots.plot_clinical_change(scores)
    for fig in (few, many):
        assert all(ax.get_legend() is None for ax in fig.axes)  # nothing drawn over the lines
        assert len(fig.legends) == 1


def test_figure_legend_grows_the_figure_not_over_the_panel() -> None:
    fig, axes = plots.subplot_grid(1)
    for index in range(12):
        axes[0].plot([0, 1], [index, index], label=f"Sam: client.style=style {index} (set {index})")
    before = fig.get_size_inches().copy()
    plots.figure_legend(fig, axes)
    after = fig.get_size_inches()
    assert after[0] == before[0] and after[1] > before[1] + 1.0  # 12 rows of a narrow figure
    assert axes[0].get_legend() is None and len(fig.legends) == 1
