"""Evaluators on the real embedded server: a small counseling database rated, read back with SQL."""

from __future__ import annotations

import sqlite3

import typer
from typer.testing import CliRunner

from personae.commands.evaluate import evaluate
from personae.evaluate import COUNSELOR_QUALITY, TURN_SAFETY
from personae.evaluate.report import evaluation_frames
from personae.runner.experiment import Experiment
from personae.studies import builtin


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command()(evaluate)
    return app


def test_a_counseling_database_is_rated_by_two_built_in_evaluators(vllm_server, tmp_path):
    db = tmp_path / "counseling.db"
    experiment = Experiment(
        scenario=builtin("counseling").with_params({"max_turns": 4, "max_tokens": 24}),
        replicates=2,
        seed=5,
    )
    summary = experiment.run(db, base_url=vllm_server.base_url, model_name=vllm_server.model)
    assert summary.complete == 2
    judge = f"{vllm_server.base_url}#{vllm_server.model}"
    runner = CliRunner()
    for name in ("counselor-quality", "turn-safety"):
        args = [str(db), "--evaluator", name, "--judge-endpoint", judge, "--samples", "2"]
        result = runner.invoke(_cli(), [*args, "--max-tokens", "160", "--no-progress"])
        assert result.exit_code == 0, result.output
        again = runner.invoke(_cli(), [*args, "--max-tokens", "160", "--no-progress"])
        assert again.exit_code == 0 and "0 rated now" in again.output  # idempotent
    con = sqlite3.connect(db)
    try:
        counts = dict(
            con.execute(
                "SELECT evaluator, COUNT(*) FROM evaluation_scores GROUP BY evaluator"
            ).fetchall()
        )
        turns = con.execute(
            "SELECT COUNT(*) FROM transcript t JOIN episodes e ON e.id = t.episode_id"
        ).fetchone()[0]
        valid = con.execute(
            "SELECT dimension, MIN(value), MAX(value) FROM evaluations WHERE valid = 1 "
            "GROUP BY dimension"
        ).fetchall()
        invalid_without_text = con.execute(
            "SELECT COUNT(*) FROM evaluations WHERE valid = 0 AND raw_text IS NULL"
        ).fetchone()[0]
        calls = con.execute(
            "SELECT COUNT(*), COUNT(DISTINCT seed), MIN(model) FROM llm_calls "
            "WHERE purpose = 'evaluate'"
        ).fetchone()
        linked = con.execute(
            "SELECT COUNT(*) FROM evaluations v JOIN llm_calls c ON c.id = v.llm_call_id "
            "WHERE c.purpose = 'evaluate' AND c.raw_text = v.raw_text"
        ).fetchone()[0]
    finally:
        con.close()
    # one counselor per episode x 2 samples x 6 dimensions; every turn x 2 samples x 2 dimensions
    assert counts == {"counselor-quality": 2 * 2 * 6, "turn-safety": turns * 2 * 2}
    assert calls[0] == 2 * 2 + turns * 2 and calls[1] == calls[0] and calls[2] == vllm_server.model
    assert linked == counts["counselor-quality"] + counts["turn-safety"]
    assert invalid_without_text == 0
    ranges = {
        d.name: (d.low, d.high) for d in (*COUNSELOR_QUALITY.dimensions, *TURN_SAFETY.dimensions)
    }
    for dimension, low, high in valid:
        assert ranges[dimension][0] <= low <= high <= ranges[dimension][1]
    table, agreed = evaluation_frames(db)
    assert set(agreed["dimension"]) == set(ranges)
    assert set(agreed["raters"]) <= {1, 2} and table.height == len(ranges)
