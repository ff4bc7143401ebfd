"""Trait vectors on a tiny random-weight model: building, files, refusal, monitoring, CLI."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm
from typer.testing import CliRunner

from personae.agents import Persona
from personae.analysis.drift import drift_summary, trajectories
from personae.errors import ConfigError
from personae.llm.base import Message
from personae.llm.fake import FunctionModel
from personae.llm.hf import TransformersModel
from personae.runner.experiment import Experiment
from personae.runner.run import run_experiment
from personae.scenarios import Scenario
from personae.store.database import Database
from personae.vectors import (
    Recipe,
    TraitSpec,
    big_five_traits,
    build_vectors,
    load_traits,
    load_vectors,
    save_vectors,
    separation,
)
from personae.vectors.frames import activation_scores
from personae.vectors.monitor import monitor_database
from tests.support.tiny_hf import tiny_model

CALM = TraitSpec(
    name="calm",
    description="stays relaxed",
    high=("You are calm and relaxed.", "You are serene and at peace."),
    low=("You are tense and frantic.", "You are panicked and on edge."),
    questions=tuple(f"Question number {i}: how do you feel today?" for i in range(6)),
)


def _model(seed: int = 0) -> TransformersModel:
    hf, tokenizer = tiny_model(seed=seed, layers=3)
    return TransformersModel(model=hf, tokenizer=tokenizer, name=f"tiny-{seed}", device="cpu")


@pytest.fixture(scope="module")
def model() -> TransformersModel:
    return _model()


def test_separation_matches_a_planted_effect() -> None:
    rng = np.random.default_rng(0)
    high, low = rng.normal(1.0, 1.0, 4000), rng.normal(0.0, 1.0, 4000)
    d, auc = separation(high, low)
    assert d == pytest.approx(1.0, abs=0.05)
    assert auc == pytest.approx(norm.cdf(1.0 / np.sqrt(2)), abs=0.02)  # binormal AUC
    assert separation(low, high)[0] == pytest.approx(-d)


def test_vectors_are_mean_differences_and_the_best_held_out_layer_is_chosen(
    model: TransformersModel,
) -> None:
    vectors = build_vectors(model, [CALM], Recipe(questions=6, held_out=1 / 3))
    trait = vectors["calm"]

    # Extraction: both pairs, the questions before the seeded split.
    recipe = vectors.recipe
    assert recipe["criterion"].startswith("largest held-out Cohen's d")

    def chats(prompt: str, qs: list[str]) -> list[list[Message]]:
        return [[{"role": "system", "content": prompt}, {"role": "user", "content": q}] for q in qs]

    questions = list(CALM.questions)
    random.Random("0:calm").shuffle(questions)
    train = questions[:4]
    high = [a for p in CALM.high for a in model.encode(chats(p, train), [1, 2, 3])]
    low = [a for p in CALM.low for a in model.encode(chats(p, train), [1, 2, 3])]
    for layer in (1, 2, 3):
        expected = np.mean([h[layer] for h in high], 0) - np.mean([lo[layer] for lo in low], 0)
        np.testing.assert_allclose(trait.vector(layer), expected, atol=1e-5)
    assert [s["layer"] for s in trait.separation] == [1, 2, 3]
    best = max(trait.separation, key=lambda s: s["cohen_d"])
    assert trait.layer == best["layer"]
    assert vectors.model["fingerprint"] == model.identity().fingerprint


def test_a_vectors_file_round_trips_and_is_refused_for_another_model(
    model: TransformersModel, tmp_path: Path
) -> None:
    vectors = build_vectors(model, [CALM], Recipe(questions=6))
    path = save_vectors(vectors, tmp_path / "calm.safetensors")

    loaded = load_vectors(path, model=model.identity().as_dict())
    np.testing.assert_allclose(loaded["calm"].vectors, vectors["calm"].vectors)
    assert loaded["calm"].layer == vectors["calm"].layer
    assert loaded.recipe["traits"]["calm"]["high"] == list(CALM.high)
    assert len(loaded.digest) == 64

    other = _model(seed=1)
    with pytest.raises(ConfigError, match="another model's weights"):
        load_vectors(path, model=other.identity().as_dict())
    with pytest.raises(ConfigError, match="no trait 'joy'"):
        loaded["joy"]
    (tmp_path / "junk.safetensors").write_bytes(b"not a file")
    with pytest.raises(ConfigError, match="cannot read"):
        load_vectors(tmp_path / "junk.safetensors")


def test_steering_with_a_trait_vector_moves_its_projection(model: TransformersModel) -> None:
    trait = build_vectors(model, [CALM], Recipe(questions=6))["calm"]
    chat = [{"role": "user", "content": "How are you?"}]
    plain = model.encode([chat], [trait.layer])[0][trait.layer]
    steered = model.encode([chat], [trait.layer], steering=[trait.steer(2.0)])[0][trait.layer]
    assert trait.project(steered) - trait.project(plain) == pytest.approx(2.0, abs=1e-4)


def test_big_five_traits_use_persona_cards_and_ipip_items() -> None:
    (neuroticism,) = big_five_traits(("neuroticism",))
    assert "very high neuroticism" in neuroticism.high[0]
    assert "very low neuroticism" in neuroticism.low[0]
    assert len(neuroticism.questions) == 24
    assert (
        neuroticism.questions[0]
        == "Do you worry about things? Tell me about it in a few sentences."
    )
    with pytest.raises(ConfigError, match="not Big Five"):
        big_five_traits(("grit",))


def test_users_add_traits_in_toml(tmp_path: Path) -> None:
    path = tmp_path / "traits.toml"
    path.write_text(
        '[[trait]]\nname = "optimism"\ndescription = "expects the best"\n'
        'high = ["You are hopeful."]\nlow = ["You are gloomy."]\n'
        'questions = ["How will next year go?", "And work?", "And love?"]\n'
    )
    (spec,) = load_traits(path)
    assert spec.name == "optimism" and spec.high == ("You are hopeful.",)
    path.write_text(
        '[[trait]]\nname = "x"\nhigh = ["a", "b"]\nlow = ["c"]\nquestions = ["1", "2", "3"]\n'
    )
    with pytest.raises(ConfigError, match=r"trait x .*in pairs"):
        load_traits(path)


def _database(tmp_path: Path) -> Path:
    db = tmp_path / "run.db"
    scenario = Scenario(name="pair", agents=(Persona(name="Ann"), Persona(name="Bo")), max_turns=4)
    experiment = Experiment(scenario=scenario, replicates=2, seed=3)
    asyncio.run(run_experiment(experiment, db, FunctionModel.echo()))
    return db


def test_monitoring_records_projections_per_turn_and_agent_and_resumes(
    model: TransformersModel, tmp_path: Path
) -> None:
    db = _database(tmp_path)
    vectors = load_vectors(
        save_vectors(build_vectors(model, [CALM], Recipe(questions=6)), tmp_path / "v.safetensors")
    )
    database = Database(db)
    try:
        first = monitor_database(database, model, vectors)
        again = monitor_database(database, model, vectors)
        experiment_id = database.find_experiment(
            Experiment(
                scenario=Scenario(
                    name="pair", agents=(Persona(name="Ann"), Persona(name="Bo")), max_turns=4
                ),
                replicates=2,
                seed=3,
            ).identity("echo")
        )
        assert experiment_id is not None
        assert database.incomplete_rows(experiment_id) == {}  # resume stays honest
    finally:
        database.close()

    with sqlite3.connect(db) as conn:
        n_turns = conn.execute("SELECT COUNT(*) FROM turns").fetchone()[0]
        rows = conn.execute(
            "SELECT s.episode_id, a.name, s.t, s.variable, s.value, t.content, a.system_prompt "
            "FROM states s JOIN agents a ON a.id = s.agent_id "
            "JOIN turns t ON t.episode_id = s.episode_id AND t.step = s.t AND t.agent_id = s.agent_id "
            "WHERE s.source = 'activation' ORDER BY s.episode_id, s.t, s.variable"
        ).fetchall()
    assert first.episodes == 2 and first.turns == n_turns and first.rows == 2 * n_turns
    assert again.episodes == 0 and again.skipped == 2
    assert len(rows) == 2 * n_turns
    assert {r[3] for r in rows} == {"vector:calm", "vector:calm:reply"}

    # The drift analysis reads the projections like any other measure.
    frame = activation_scores(db)
    assert frame.height == 2 * n_turns
    paths = trajectories(frame, instrument="vector", level="domain", source="activation")
    assert set(paths["scale"]) == {"calm"} and paths["slope"].is_not_null().all()
    summary = drift_summary(frame, instrument="vector", source="activation", reference="sample")
    assert set(summary["agent"]) == {"Ann", "Bo"} and (summary["respondents"] == 2).all()

    # The first turn's projection is the speaker's prompt's last token on the unit vector.
    *_, value, _content, system_prompt = rows[0]
    chat: list[Message] = [
        {"role": "system", "content": system_prompt},
        {"role": "user", "content": "(The conversation begins. You speak first.)"},
    ]
    trait = vectors["calm"]
    expected = trait.project(model.encode([chat], [trait.layer])[0][trait.layer])
    assert value == pytest.approx(expected, abs=1e-4)

    # A later turn, read from the speaker's shared pass, equals a pass of its own.
    episode_id, speaker, step = rows[-1][0], rows[-1][1], rows[-1][2]
    with sqlite3.connect(db) as conn:
        history = conn.execute(
            "SELECT a.name, t.content, a.system_prompt FROM turns t "
            "JOIN agents a ON a.id = t.agent_id WHERE t.episode_id = ? AND t.step < ? "
            "ORDER BY t.step",
            (episode_id, step),
        ).fetchall()
        [(own_prompt,)] = conn.execute(
            "SELECT system_prompt FROM agents WHERE episode_id = ? AND name = ?",
            (episode_id, speaker),
        ).fetchall()
    chat = [{"role": "system", "content": own_prompt}]
    for name, content, _prompt in history:
        chat.append({"role": "assistant" if name == speaker else "user", "content": content})
    later = [r for r in rows if r[0] == episode_id and r[2] == step and r[3] == "vector:calm"]
    alone = trait.project(model.encode([chat], [trait.layer])[0][trait.layer])
    assert later[0][4] == pytest.approx(alone, abs=1e-4)


def test_monitoring_refuses_vectors_of_another_model(
    model: TransformersModel, tmp_path: Path
) -> None:
    db = _database(tmp_path)
    vectors = build_vectors(_model(seed=1), [CALM], Recipe(questions=6))
    database = Database(db)
    try:
        with pytest.raises(ConfigError, match="built on model"):
            monitor_database(database, model, vectors)
    finally:
        database.close()


def test_vectors_show_prints_the_chosen_layers(model: TransformersModel, tmp_path: Path) -> None:
    from personae.commands.vectors import vectors_app

    path = save_vectors(
        build_vectors(model, [CALM], Recipe(questions=6)), tmp_path / "v.safetensors"
    )
    result = CliRunner().invoke(vectors_app, ["show", str(path)])
    assert result.exit_code == 0, result.output
    assert "calm" in result.output and "tiny-0" in result.output


def test_the_commands_build_show_and_monitor_with_a_model_folder(tmp_path: Path) -> None:
    import typer

    from personae.commands.vectors import monitor, vectors_app

    hf, tokenizer = tiny_model(layers=3)
    folder = tmp_path / "tiny-model"
    hf.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    traits = tmp_path / "traits.toml"
    traits.write_text(
        '[[trait]]\nname = "calm"\nhigh = ["You are calm.", "You are serene."]\n'
        'low = ["You are tense.", "You are frantic."]\n'
        'questions = ["How are you?", "How was work?", "How do you sleep?"]\n'
    )
    app = typer.Typer()
    app.add_typer(vectors_app, name="vectors")
    app.command()(monitor)
    runner = CliRunner()
    out = tmp_path / "calm.safetensors"

    built = runner.invoke(
        app,
        [
            *("vectors", "build", "--out", str(out), "--model-path", str(folder)),
            *("--trait-file", str(traits), "--questions", "3", "--device", "cpu"),
        ],
    )
    assert built.exit_code == 0, built.output
    db = _database(tmp_path)
    first = runner.invoke(
        app, ["monitor", str(db), "--vectors", str(out), "--model-path", str(folder)]
    )
    again = runner.invoke(
        app, ["monitor", str(db), "--vectors", str(out), "--model-path", str(folder)]
    )

    assert first.exit_code == 0, first.output
    assert "Monitored 2 episodes" in first.output
    assert "Monitored 0 episodes" in again.output
    assert "2 already monitored" in " ".join(again.output.split())
    with sqlite3.connect(db) as conn:
        [(n,)] = conn.execute("SELECT COUNT(*) FROM states WHERE source = 'activation'").fetchall()
    assert n > 0
    missing = runner.invoke(app, ["monitor", str(tmp_path / "none.db"), "--vectors", str(out)])
    assert isinstance(missing.exception, ConfigError)


def test_online_tracking_matches_the_offline_monitor(
    model: TransformersModel, tmp_path: Path
) -> None:
    from personae.vectors.probes import track_traits

    vectors = load_vectors(
        save_vectors(build_vectors(model, [CALM], Recipe(questions=6)), tmp_path / "v.safetensors")
    )
    online_db = tmp_path / "online.db"
    scenario = Scenario(
        name="pair",
        agents=(Persona(name="Ann"), Persona(name="Bo")),
        max_turns=4,
        probes=(track_traits(model, vectors),),
    )
    asyncio.run(
        run_experiment(Experiment(scenario=scenario, seed=3), online_db, FunctionModel.echo())
    )
    offline_db = tmp_path / "offline.db"
    plain = scenario.model_copy(update={"probes": ()})
    asyncio.run(
        run_experiment(Experiment(scenario=plain, seed=3), offline_db, FunctionModel.echo())
    )
    database = Database(offline_db)
    try:
        monitor_database(database, model, vectors)
    finally:
        database.close()

    sql = (
        "SELECT a.name, s.t, s.value FROM states s JOIN agents a ON a.id = s.agent_id "
        "WHERE s.source = 'activation' AND s.variable = 'vector:calm' ORDER BY s.t"
    )
    with sqlite3.connect(online_db) as conn:
        online = conn.execute(sql).fetchall()
    with sqlite3.connect(offline_db) as conn:
        offline = conn.execute(sql).fetchall()
    assert len(online) == len(offline) > 0
    for (name, t, value), (name_off, t_off, value_off) in zip(online, offline, strict=True):
        assert (name, t) == (name_off, t_off)
        assert value == pytest.approx(value_off, abs=1e-4)


def test_response_source_averages_over_generated_replies(model: TransformersModel) -> None:
    recipe = Recipe(source="response", questions=6, max_tokens=4, rollouts=2)
    vectors = build_vectors(model, [CALM], recipe)
    prompt_based = build_vectors(model, [CALM], Recipe(questions=6))

    trait = vectors["calm"]
    assert trait.vectors.shape == (3, model.hidden_size)
    assert vectors.recipe["source"] == "response" and vectors.recipe["rollouts"] == 2
    assert not np.allclose(trait.vectors, prompt_based["calm"].vectors)
    assert len(trait.separation) == 3
    with pytest.raises(ConfigError, match="source"):
        Recipe(source="logits")  # type: ignore[arg-type]


def test_a_judge_filters_the_rollouts_that_build_a_vector(model: TransformersModel) -> None:
    from itertools import count

    from personae.llm.fake import FunctionModel

    asked = count()
    judge = FunctionModel(lambda messages, call: str(next(asked) % 5 + 1), name="judge")
    recipe = Recipe(source="response", questions=6, max_tokens=4, rollouts=2, judge=True)
    filtered = build_vectors(model, [CALM], recipe, judge=judge)
    unfiltered = build_vectors(
        model, [CALM], Recipe(source="response", questions=6, max_tokens=4, rollouts=2)
    )
    # 2 prompts x 6 questions x 2 rollouts per pole, high pole first: each reply rated once,
    # with the ratings 1, 2, 3, 4, 5, 1, ... in the order asked.
    assert len(judge.calls) == 48
    ratings = [i % 5 + 1 for i in range(48)]
    kept_high = sum(r >= 4 for r in ratings[:24])
    kept_low = sum(r <= 2 for r in ratings[24:])
    score = filtered["calm"].separation[0]
    assert (score["kept_high"], score["kept_low"]) == (kept_high, kept_low) == (9, 10)
    assert "Trait: calm: stays relaxed" in judge.calls[0].messages[-1]["content"]
    assert not np.allclose(filtered["calm"].vectors, unfiltered["calm"].vectors)
    assert filtered.recipe["judge"] is True
    with pytest.raises(ConfigError, match="source='response'"):
        Recipe(judge=True)
