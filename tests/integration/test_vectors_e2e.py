"""Trait vectors on the bundled SmolLM2-135M, on the CPU: build, monitor, steer, read back with SQL.

Kept under two minutes: a three-question recipe, two four-turn counseling
episodes from the shared server, one steered episode generated in process.
"""

from __future__ import annotations

import json
import os

from e2e import q

from personae import Experiment
from personae.llm.hf import TransformersModel
from personae.scenarios.builtin import counseling
from personae.store.database import Database
from personae.vectors import (
    BIG_FIVE_DOMAINS,
    Recipe,
    big_five_traits,
    build_vectors,
    load_vectors,
    save_vectors,
)
from personae.vectors.frames import activation_scores
from personae.vectors.monitor import monitor_database
from personae.vectors.probes import steer_probe

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def test_big_five_vectors_monitor_and_steer_the_bundled_model(vllm_server, tmp_path):
    model = TransformersModel(device="cpu", max_batch=16)
    assert model.num_layers == 30 and model.hidden_size == 576

    vectors = build_vectors(model, big_five_traits(), Recipe(questions=3))
    path = save_vectors(vectors, tmp_path / "big5.safetensors")
    loaded = load_vectors(path, model=model.identity().as_dict())
    assert list(loaded.traits) == list(BIG_FIVE_DOMAINS)
    for trait in loaded.traits.values():
        assert 1 <= trait.layer <= 30 and trait.vectors.shape == (30, 576)
        assert len(trait.separation) == 30

    # A small counseling database from the shared vLLM server, then monitored.
    db = tmp_path / "counseling.db"
    scenario = counseling(max_turns=4, min_turns=5)
    summary = Experiment(scenario=scenario, grid={"client": ["maya", "james"]}, seed=5).run(
        db, base_url=vllm_server.base_url, max_in_flight=16
    )
    assert summary.complete == 2
    database = Database(db)
    try:
        done = monitor_database(database, model, loaded)
    finally:
        database.close()
    [(n_turns,)] = q(db, "SELECT COUNT(*) FROM turns")
    assert done.turns == n_turns and done.rows == n_turns * 5 * 2
    rows = q(
        db,
        "SELECT a.role, s.variable, COUNT(*), MIN(s.value) < MAX(s.value) FROM states s "
        "JOIN agents a ON a.id = s.agent_id WHERE s.source = 'activation' "
        "AND s.variable = 'vector:neuroticism' GROUP BY a.role ORDER BY a.role",
    )
    assert {r[0] for r in rows} == {"client", "counselor"}
    assert sum(r[2] for r in rows) == n_turns and all(r[3] for r in rows)
    frame = activation_scores(db)
    assert set(frame["scale"]) == set(BIG_FIVE_DOMAINS) and frame.height == n_turns * 10

    # One client steered towards neuroticism, generated on the transformers backend.
    steered_db = tmp_path / "steered.db"
    probe = steer_probe(path, who="Maya", trait="neuroticism", alpha=8.0, from_step=1)
    short = counseling(max_turns=4, min_turns=5).model_copy(
        update={"probes": (probe,), "max_tokens": 24}
    )
    result = Experiment(scenario=short, seed=5).run(steered_db, model=model)
    assert result.complete == 1
    [(value, source)] = q(
        steered_db,
        "SELECT s.value, s.source FROM states s JOIN agents a ON a.id = s.agent_id "
        "WHERE a.name = 'Maya' AND s.variable = 'steer:neuroticism'",
    )
    assert (value, source) == (8.0, "intervention")
    calls = q(
        steered_db,
        "SELECT a.name, c.params_json FROM llm_calls c JOIN agents a ON a.id = c.agent_id "
        "WHERE c.purpose = 'turn'",
    )
    steered = [
        (name, "steer" in json.loads(params or "{}").get("extensions", {}))
        for name, params in calls
    ]
    # Maya's turns after the steering began carry it; the counselor's never do.
    assert ("Maya", True) in steered
    assert all(not on for name, on in steered if name != "Maya")
