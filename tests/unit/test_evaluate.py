"""Evaluators on the fakes: ranges, invalid answers, idempotent reruns, calibrated agreement."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import sqlite3
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import typer
from typer.testing import CliRunner

from personae.agents import Persona
from personae.commands.evaluate import evaluate
from personae.engine.probes import Probe
from personae.errors import ConfigError
from personae.evaluate import (
    COUNSELOR_QUALITY,
    SOTOPIA,
    Dimension,
    Evaluate,
    Evaluator,
    agreement,
    dimension_agreement,
    evaluate_database,
    load_evaluator,
)
from personae.evaluate.report import evaluation_frames, section
from personae.llm.fake import FunctionModel
from personae.runner.experiment import Experiment
from personae.runner.run import run_experiment
from personae.scenarios import Scenario
from personae.store.database import Database

PEOPLE = (
    Persona(name="Ann", role="counselor"),
    Persona(name="Bo", role="client", background="Bo lost his job and sleeps badly."),
)


def _db(tmp_path: Path, *, turns: int = 4, replicates: int = 2) -> Path:
    db = tmp_path / "run.db"
    scenario = Scenario(name="pair", agents=PEOPLE, max_turns=turns)
    asyncio.run(
        run_experiment(
            Experiment(scenario=scenario, replicates=replicates, seed=3), db, FunctionModel.echo()
        )
    )
    return db


def _rows(db: Path, sql: str) -> list[tuple]:
    con = sqlite3.connect(db)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _run(db: Path, evaluator: Evaluator, model: FunctionModel, **options) -> object:
    database = Database(db)
    try:
        return asyncio.run(evaluate_database(database, evaluator, model, **options))
    finally:
        database.close()


def _sotopia_answer(messages, call) -> str:
    """A judge that is right about the schema it was sent, and rates by the rated agent."""
    schema = call.sampling.response_format.schema
    answer = {
        name: spec["maximum"] for name, spec in schema["properties"].items() if name != "rationale"
    }
    answer["rationale"] = "steady"
    return json.dumps(answer)


# --- definitions -----------------------------------------------------------------------------


def test_the_schema_bounds_every_dimension_to_its_published_range():
    props = SOTOPIA.response_format().schema["properties"]
    ranges = {
        name: (p["minimum"], p["maximum"]) for name, p in props.items() if name != "rationale"
    }
    assert ranges == {
        "believability": (0, 10),
        "relationship": (-5, 5),
        "knowledge": (0, 10),
        "secret": (-10, 0),
        "social_rules": (-10, 0),
        "financial_and_material_benefits": (-5, 5),
        "goal": (0, 10),
    }
    assert props["rationale"]["type"] == "string"
    assert {d.low for d in COUNSELOR_QUALITY.dimensions} == {0}
    assert {d.high for d in COUNSELOR_QUALITY.dimensions} == {6}


def test_reading_keeps_values_in_range_and_says_why_the_others_are_missing():
    reading = SOTOPIA.read(
        'Here: {"believability": 7, "relationship": 9, "knowledge": "4", "secret": 1.5, '
        '"social_rules": -2, "goal": 10, "rationale": "fine"}'
    )
    assert reading.values["believability"] == 7.0 and reading.values["knowledge"] == 4.0
    assert reading.reasons["relationship"] == "out_of_range"
    assert reading.reasons["secret"] == "not_integer"
    assert reading.reasons["financial_and_material_benefits"] == "missing"
    assert reading.values["overall"] is None and reading.reasons["overall"] == "incomplete"
    assert reading.rationale == "fine"
    assert SOTOPIA.read("no idea").reasons["goal"] == "unparseable"
    assert SOTOPIA.read("{}").reasons["goal"] == "missing"
    # an answer cut off by max_tokens in its rationale keeps the integers written before it
    cut = SOTOPIA.read('{"believability": 3, "goal": 2, "secret": -1, "rationale": "Becau')
    assert (cut.values["believability"], cut.values["goal"], cut.values["secret"]) == (3, 2, -1)
    assert cut.reasons["knowledge"] == "missing" and cut.rationale is None
    assert SOTOPIA.read("").reasons["goal"] == "empty"


def test_bad_definitions_are_refused_naming_the_problem():
    with pytest.raises(ValueError, match="low"):
        Dimension(name="x", low=3, high=3, wording="w")
    with pytest.raises(ValueError, match="twice"):
        Evaluator(
            name="e",
            instructions="Rate.",
            dimensions=[Dimension(name="x", low=0, high=1, wording="w")] * 2,
        )


def test_an_evaluator_is_defined_in_a_toml_file(tmp_path):
    path = tmp_path / "warmth.toml"
    path.write_text(
        'name = "warmth"\nversion = "2"\nscope = "agent"\nwho = ["counselor"]\n'
        'instructions = "Rate how warm the counselor is."\n'
        '[[dimensions]]\nname = "warmth"\nlow = 1\nhigh = 5\nwording = "1 cold, 5 warm"\n'
    )
    loaded = load_evaluator(path)
    assert loaded.version == "2" and loaded.who == ("counselor",)
    assert loaded.response_format().schema["properties"]["warmth"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 5,
    }
    path.write_text('name = "warmth"\ninstructions = "x"\n[[dimensions]]\nname = "w"\nlow = 1\n')
    with pytest.raises(ConfigError, match=r"warmth.toml.*dimensions\.0\.high"):
        load_evaluator(path)


# --- running over a database -------------------------------------------------------------------


def test_scores_are_stored_with_calls_and_reruns_ask_nothing_again(tmp_path):
    db = _db(tmp_path)
    judge = FunctionModel(_sotopia_answer)
    first = _run(db, SOTOPIA, judge, samples=2)
    assert (first.items, first.done, first.skipped) == (4, 8, 0)  # 2 episodes x 2 agents, 2 samples
    rows = _rows(
        db,
        "SELECT v.dimension, v.value, v.valid, c.purpose, c.raw_text = v.raw_text FROM evaluations v "
        "JOIN llm_calls c ON c.id = v.llm_call_id",
    )
    assert len(rows) == 8 * 8  # seven dimensions and their mean
    values = {d: v for d, v, *_ in rows}
    assert values["relationship"] == 5 and values["secret"] == 0
    assert values["overall"] == pytest.approx((10 + 5 + 10 + 0 + 0 + 5 + 10) / 7)
    assert {r[3] for r in rows} == {"evaluate"} and all(r[2] == 1 and r[4] == 1 for r in rows)
    # each sample had its own seed
    seeds = _rows(db, "SELECT COUNT(DISTINCT seed) FROM llm_calls WHERE purpose = 'evaluate'")
    assert seeds == [(8,)]
    calls = len(judge.calls)
    again = _run(db, SOTOPIA, judge, samples=2)
    assert (again.done, again.skipped) == (0, 8) and len(judge.calls) == calls
    more = _run(db, SOTOPIA, judge, samples=3)  # one more sample asks only for it
    assert (more.done, more.skipped) == (4, 8)
    database = Database(db)
    try:
        assert database.incomplete_rows(1) == {}  # resume still sees every episode as whole
    finally:
        database.close()


def test_unreadable_and_out_of_range_answers_are_kept_invalid_with_their_raw_text(tmp_path):
    db = _db(tmp_path, replicates=1)

    def judge(messages, call):
        if "Rate Ann" in messages[-1]["content"]:
            return "I would rather not say."
        return json.dumps(
            {"understanding": 9, "rationale": "?"}
            | {d.name: 3 for d in COUNSELOR_QUALITY.dimensions[1:]}
        )

    for who in ("counselor", "client"):
        chosen = COUNSELOR_QUALITY.model_copy(update={"who": (who,)})
        _run(db, chosen, FunctionModel(judge))
    rows = _rows(
        db,
        "SELECT a.name, v.dimension, v.value, v.valid, v.reason, v.raw_text FROM evaluations v JOIN agents a ON a.id = v.agent_id",
    )
    ann = [r for r in rows if r[0] == "Ann"]
    assert len(ann) == 6 and all(r[3] == 0 and r[2] is None and r[4] == "unparseable" for r in ann)
    assert {r[5] for r in ann} == {"I would rather not say."}
    bo = {r[1]: r for r in rows if r[0] == "Bo"}
    assert bo["understanding"][3:5] == (0, "out_of_range") and bo["focus"][2:4] == (3.0, 1)


def test_a_failing_judge_stores_nothing_and_the_next_run_finishes(tmp_path):
    from personae.errors import ModelError

    db = _db(tmp_path, replicates=1)
    broken = FunctionModel(lambda m, c: (_ for _ in ()).throw(ModelError("server gone")))
    summary = _run(db, SOTOPIA, broken)
    assert summary.failed == 2 and summary.done == 0 and "server gone" in summary.errors[0]
    assert _rows(db, "SELECT COUNT(*) FROM evaluations") == [(0,)]
    assert _run(db, SOTOPIA, FunctionModel(_sotopia_answer)).done == 2


def test_the_client_fidelity_judge_sees_the_clients_profile(tmp_path):
    from personae.evaluate import CLIENT_FIDELITY

    db = _db(tmp_path, replicates=1)
    judge = FunctionModel(lambda m, c: "{}")
    _run(db, CLIENT_FIDELITY, judge)
    (call,) = judge.calls
    assert "Bo lost his job" in call.messages[-1]["content"]
    assert "Rate Bo (client)" in call.messages[-1]["content"]


def test_consistency_across_episodes_shows_the_same_personas_other_episodes(tmp_path):
    from personae.evaluate.builtins import PERSONA_CONSISTENCY_ACROSS

    db = _db(tmp_path, replicates=3)
    judge = FunctionModel(lambda m, c: '{"across_episodes": 4, "rationale": "same"}')
    _run(db, PERSONA_CONSISTENCY_ACROSS, judge)
    # Every agent of every episode, each shown its lines from the two other episodes.
    assert len(judge.calls) == 3 * 2
    for call in judge.calls:
        text = call.messages[-1]["content"]
        assert "said in other episodes" in text and text.count("Another episode:") == 2
    rated = _rows(db, "SELECT COUNT(*), MIN(value) FROM evaluations WHERE valid = 1")
    assert rated == [(6, 4.0)]
    # An agent with no other episode is not rated.
    single = _db(tmp_path / "one", replicates=1)
    lonely = FunctionModel(lambda m, c: '{"across_episodes": 4, "rationale": "x"}')
    _run(single, PERSONA_CONSISTENCY_ACROSS, lonely)
    assert lonely.calls == []


# --- agreement ---------------------------------------------------------------------------------


def _planted(n: int, k: int, true_sd: float, noise_sd: float, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    true = rng.normal(50, true_sd, n)
    return pl.DataFrame(
        [
            {
                "item": i,
                "rater": str(r),
                "value": float(np.round(true[i] + rng.normal(0, noise_sd))),
            }
            for i in range(n)
            for r in range(k)
        ]
    )


def test_planted_judge_noise_gives_the_theoretical_alpha_and_icc():
    # reliability = var(true) / (var(true) + var(noise)) = 100 / (100 + 100) = 0.5
    got = dimension_agreement(_planted(1500, 3, 10.0, 10.0, seed=5))
    assert got["alpha"] == pytest.approx(0.5, abs=0.05)
    assert got["icc"] == pytest.approx(0.5, abs=0.05)
    assert got["icc_k"] == pytest.approx(3 * 0.5 / (1 + 2 * 0.5), abs=0.05)  # Spearman-Brown
    high = dimension_agreement(_planted(1500, 2, 10.0, 10.0 / 3, seed=6))
    assert high["alpha"] == pytest.approx(0.9, abs=0.03)
    noise = dimension_agreement(_planted(1500, 3, 0.0, 10.0, seed=7))
    assert abs(noise["alpha"]) < 0.05 and abs(noise["icc"]) < 0.05


def test_agreement_needs_two_raters():
    one = dimension_agreement(_planted(50, 1, 10.0, 1.0, seed=1))
    assert one["raters"] == 1 and one["alpha"] is None and one["icc"] is None
    tiny = pl.DataFrame(
        {"item": [1, 1, 2, 2], "rater": ["a", "b"] * 2, "value": [1.0, 2.0, 4.0, 4.0]}
    )
    small = dimension_agreement(tiny)  # too few values for an ICC; alpha is defined
    assert small["icc"] is None and small["alpha"] is not None


def _true_score(text: str) -> int:
    return 35 + int(hashlib.sha256(text.encode()).hexdigest(), 16) % 31


NOISY = Evaluator(
    name="noisy",
    scope="turn",
    instructions="Rate the turn.",
    dimensions=[Dimension(name="quality", low=0, high=100, wording="0 bad, 100 good")],
)


def test_agreement_over_a_stored_database_recovers_a_planted_noisy_judge(tmp_path):
    db = _db(tmp_path, turns=40, replicates=6)  # 240 turns, each an item
    noise_sd = 9.0

    def judge(messages, call):
        rated = re.search(r"RATED TURN:\n\w+ \(\w+\): (.*)", messages[-1]["content"]).group(1)
        noise = np.random.default_rng(call.sampling.seed).normal(0, noise_sd)
        return json.dumps({"rationale": "r", "quality": round(_true_score(rated) + noise)})

    summary = _run(db, NOISY, FunctionModel(judge), samples=3, temperature=1.0)
    assert summary.done == 720
    texts = [r[0] for r in _rows(db, "SELECT content FROM turns")]
    true_var = float(np.var([_true_score(t) for t in texts], ddof=1))
    expected = true_var / (true_var + noise_sd**2 + 1 / 12)  # rounding adds 1/12
    scores = pl.DataFrame(
        _rows(
            db,
            "SELECT evaluator, dimension, episode_id, agent_id, turn_id, sample, value FROM evaluations",
        ),
        schema=["evaluator", "dimension", "episode_id", "agent_id", "turn_id", "sample", "value"],
        orient="row",
    )
    (row,) = agreement(scores).iter_rows(named=True)
    assert row["items"] == 240 and row["raters"] == 3
    assert row["alpha"] == pytest.approx(expected, abs=0.1)
    assert row["icc"] == pytest.approx(expected, abs=0.1)
    # the report shows the same agreement next to the scores
    table, agreed = evaluation_frames(db)
    assert agreed["alpha"].to_list() == pytest.approx([row["alpha"]])
    assert table["alpha"].to_list() == pytest.approx([row["alpha"]])
    assert (
        table["items"].to_list() == [240]
        and table["ci_low"][0] < table["mean"][0] < table["ci_high"][0]
    )
    html = section().build(db)
    assert html is not None and "alpha" in html and "noisy@1" in html


# --- online ------------------------------------------------------------------------------------


def test_an_evaluator_runs_online_at_the_end_of_an_episode(tmp_path):
    db = tmp_path / "online.db"
    scenario = Scenario(
        name="pair",
        agents=PEOPLE,
        max_turns=4,
        probes=(Probe(Evaluate(evaluator=SOTOPIA), at="end"),),
    )
    model = FunctionModel(
        lambda m, c: _sotopia_answer(m, c) if c.sampling.response_format is not None else "hello"
    )
    asyncio.run(run_experiment(Experiment(scenario=scenario, replicates=2, seed=3), db, model))
    rows = _rows(db, "SELECT COUNT(*), SUM(valid), COUNT(DISTINCT llm_call_id) FROM evaluations")
    assert rows == [(2 * 2 * 8, 2 * 2 * 8, 4)]
    database = Database(db)
    try:
        assert database.incomplete_rows(1) == {}
    finally:
        database.close()


# --- command line ------------------------------------------------------------------------------


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command()(evaluate)
    return app


def test_the_command_refuses_bad_input_with_exit_code_2_and_one_paragraph(tmp_path):
    db = _db(tmp_path, replicates=1)
    runner = CliRunner()
    unknown = runner.invoke(_cli(), [str(db), "--evaluator", "nope"])
    assert unknown.exit_code == 2
    assert "no evaluator 'nope'" in unknown.output and "sotopia" in unknown.output
    assert "Traceback" not in unknown.output
    missing = runner.invoke(_cli(), [str(tmp_path / "none.db"), "--evaluator", "sotopia"])
    assert missing.exit_code == 2 and "no database" in missing.output
    assert not (tmp_path / "none.db").exists()
    nameless = runner.invoke(
        _cli(), [str(db), "--evaluator", "sotopia", "--judge-endpoint", "judge"]
    )
    assert nameless.exit_code == 2 and "neither a URL" in nameless.output
    assert _rows(db, "SELECT COUNT(*) FROM evaluations") == [(0,)]


def test_an_interrupted_run_keeps_what_finished_and_the_rerun_does_the_rest(tmp_path):
    db = _db(tmp_path)
    answered = 0
    never = asyncio.Event()

    async def stalls_after_five(messages, call):
        nonlocal answered
        if answered >= 5:
            await never.wait()  # the judge hangs; the user presses Ctrl-C
        answered += 1
        return _sotopia_answer(messages, call)

    async def interrupted() -> None:
        database = Database(db)
        try:
            task = asyncio.create_task(
                evaluate_database(
                    database, SOTOPIA, FunctionModel(stalls_after_five), samples=4, max_in_flight=2
                )
            )
            while answered < 5:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        finally:
            database.close()

    asyncio.run(interrupted())
    kept = _rows(db, "SELECT COUNT(DISTINCT llm_call_id), COUNT(*) FROM evaluations")
    assert kept == [(5, 5 * 8)]
    rest = _run(db, SOTOPIA, FunctionModel(_sotopia_answer), samples=4)
    assert (rest.skipped, rest.done) == (5, 16 - 5)
    assert _rows(db, "SELECT COUNT(*) FROM evaluations") == [(16 * 8,)]


def test_two_judges_are_raters_of_the_same_items_and_a_biased_one_lowers_agreement(tmp_path):
    db = _db(tmp_path, turns=20, replicates=4)  # 80 turns

    def judge(bias: int):
        def answer(messages, call):
            rated = re.search(r"RATED TURN:\n\w+ \(\w+\): (.*)", messages[-1]["content"]).group(1)
            return json.dumps({"rationale": "r", "quality": _true_score(rated) + bias})

        return answer

    _run(db, NOISY, FunctionModel(judge(0), name="a"), judge_endpoint="http://a/v1")
    same = _rows(db, "SELECT COUNT(*) FROM evaluations")
    _run(db, NOISY, FunctionModel(judge(0), name="a"), judge_endpoint="http://a/v1")
    assert _rows(db, "SELECT COUNT(*) FROM evaluations") == same  # the same judge: skipped
    _run(db, NOISY, FunctionModel(judge(20), name="b"), judge_endpoint="http://b/v1")
    scores = pl.DataFrame(
        _rows(
            db,
            "SELECT evaluator, dimension, episode_id, agent_id, turn_id, sample, judge_endpoint, "
            "judge_model, value FROM evaluations",
        ),
        schema=[
            "evaluator",
            "dimension",
            "episode_id",
            "agent_id",
            "turn_id",
            "sample",
            "judge_endpoint",
            "judge_model",
            "value",
        ],
        orient="row",
    )
    (row,) = agreement(scores).iter_rows(named=True)
    assert row["raters"] == 2 and row["items"] == 80
    # a constant offset of 20 against a true-score variance of ~80: absolute agreement drops
    var = float(np.var([_true_score(t) for (t,) in _rows(db, "SELECT content FROM turns")], ddof=1))
    assert row["icc"] == pytest.approx(var / (var + 20**2 / 2), abs=0.08)
    assert row["alpha"] < 0.5
