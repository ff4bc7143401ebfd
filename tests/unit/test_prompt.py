"""Prompts you can cite: ``personae prompt`` prints them, and every episode stores them."""

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from personae import Experiment, FunctionModel
from personae.cli import app
from personae.store import Database
from personae.studies import counseling

V020 = Path(__file__).parents[1] / "data" / "v0_2_0.db"


def prompt(*args: str) -> str:
    result = CliRunner().invoke(app, ["prompt", *args])
    assert result.exit_code == 0, result.output
    return result.output


def block(output: str, heading: str) -> str:
    """The text under one ``## heading`` of the output."""
    start = output.index(f"## {heading}\n\n") + len(f"## {heading}\n\n")
    end = output.find("\n\n## ", start)
    return output[start:end]


def test_every_agent_s_system_prompt_with_its_traits_rules_and_the_turn_cues():
    out = prompt("counseling")
    counselor = block(out, "Dr. Rivera (counselor): system prompt")
    client = block(out, "Maya (client): system prompt")
    assert counselor.startswith("You are Dr. Rivera, the counselor in this conversation.")
    assert "very high agreeableness (4.6/5); low neuroticism (1.6/5)" in counselor
    assert "How you talk: warm, calm and concise" in counselor
    assert "- Speak in one or two sentences and ask at most one question at a time." in counselor
    assert "low extraversion (2.4/5)" in client and "high neuroticism (4.3/5)" in client
    assert "- Core beliefs: I am incompetent; I am a failure, loser" in client
    # the per-turn instructions: the scripted opening, then a cue on the counselor's turns only
    turns = block(out, "Per-turn instructions (session 1)").splitlines()
    assert turns[0] == (
        'turn  0  Dr. Rivera: scripted opening "Hello, I\'m Dr. Rivera. What brings you in today?"'
    )
    assert turns[1] == "turn  1  Maya  (no cue)"
    assert turns[2].startswith("turn  2  Dr. Rivera  cue: (Stage: exploration.")
    assert "cue: (Stage: action." in turns[-2]
    # what a turn's request looks like, placeholders where the transcript goes
    request = block(out, "Dr. Rivera: its first request (placeholders for the transcript)")
    assert request.splitlines() == [
        "[system] <Dr. Rivera's system prompt, above>",
        "[assistant] Hello, I'm Dr. Rivera. What brings you in today?",
        "[user] <Maya's line at turn 1>",
        "[user] (Stage: exploration. Build rapport; ask about the problem, its history or goals.)",
    ]


def test_agent_filters_by_name_or_role():
    by_role = prompt("counseling", "--agent", "client")
    assert "## Maya (client): system prompt" in by_role
    assert "Dr. Rivera (counselor): system prompt" not in by_role
    assert "Dr. Rivera  cue:" not in by_role and "turn  1  Maya  (no cue)" in by_role
    assert prompt("counseling", "--agent", "Maya") == by_role


def test_set_changes_the_rendered_prompt():
    default = prompt("counseling")
    changed = prompt(
        "counseling", "--set", "client.style=verbose", "--set", "counselor.big_five.N=4.8"
    )
    assert "parameters: client.style='verbose', counselor.big_five.N=4.8" in changed
    assert "very high neuroticism (4.8/5)" in changed and "(4.8/5)" not in default
    assert "How you talk: You talk a lot, give long answers" in changed
    assert "How you talk: You talk a lot" not in default


def test_an_unknown_agent_exits_2_with_one_paragraph_naming_the_participants():
    r = subprocess.run(
        [sys.executable, "-m", "personae.cli", "prompt", "counseling", "--agent", "therapist"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2
    assert "no agent 'therapist' in scenario 'counseling'" in r.stderr
    assert "Dr. Rivera (counselor), Maya (client)" in r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""


def test_the_stored_system_prompt_is_what_personae_prompt_prints(tmp_path):
    db = tmp_path / "x.db"
    experiment = Experiment(
        scenario=counseling(max_turns=4, min_turns=2),
        grid={"client.style": ["reserved"], "counselor.big_five.N": [4.8]},
        replicates=2,
    )
    summary = experiment.run(db, FunctionModel.echo())
    assert summary.completed == 2
    out = prompt(
        "counseling", "--set", "client.style=reserved", "--set", "counselor.big_five.N=4.8"
    )
    con = sqlite3.connect(db)
    stored = con.execute("SELECT name, role, system_prompt FROM agents ORDER BY id").fetchall()
    assert len(stored) == 4
    for name, role, system_prompt in stored:
        assert system_prompt == block(out, f"{name} ({role}): system prompt")
    # the transcript view is unaffected
    columns = [c[1] for c in con.execute("PRAGMA table_info(transcript)")]
    assert "system_prompt" not in columns and "speaker" in columns


def test_a_drawn_participant_s_stored_prompt_is_the_one_printed_for_its_replicate(tmp_path):
    db = tmp_path / "x.db"
    from personae.loading import load_target

    debate = load_target("debate")
    fixed = {"opponent": "ai", "personalised": False, "strength": "low"}
    experiment = Experiment(
        scenario=debate.scenario,
        grid={k: [v] for k, v in fixed.items()},
        replicates=2,
        seed=debate.seed,
        name="debate",
    )
    experiment.run(db, FunctionModel.echo())
    con = sqlite3.connect(db)
    rows = con.execute(
        "SELECT e.replicate, a.name, a.role, a.system_prompt FROM agents a "
        "JOIN episodes e ON e.id = a.episode_id WHERE a.role = 'participant' ORDER BY 1"
    ).fetchall()
    assert len(rows) == 2 and rows[0][3] != rows[1][3]  # each replicate drew its own participant
    sets = [f"--set={k}={str(v).lower()}" for k, v in fixed.items()]
    for replicate, name, role, stored in rows:
        out = prompt("debate", *sets, "--replicate", str(replicate))
        assert stored == block(out, f"{name} ({role}): system prompt")


def test_an_old_database_gets_the_column_with_old_rows_null(tmp_path):
    old = tmp_path / "old.db"
    shutil.copyfile(V020, old)
    before = sqlite3.connect(old).execute("SELECT COUNT(*) FROM agents").fetchone()[0]
    Database(old).close()
    con = sqlite3.connect(old)
    assert "system_prompt" in [c[1] for c in con.execute("PRAGMA table_info(agents)")]
    assert con.execute("SELECT COUNT(*), COUNT(system_prompt) FROM agents").fetchone() == (
        before,
        0,
    )
    assert "m005_agent_prompts" in [r[0] for r in con.execute("SELECT name FROM _migrations")]
    assert con.execute("SELECT COUNT(*) FROM transcript").fetchone()[0] > 0
