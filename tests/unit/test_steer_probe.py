"""Steering as an intervention: the Steer probe, the engine's request extensions, grids."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from personae.agents import Persona
from personae.errors import ConfigError
from personae.llm.base import Sampling
from personae.llm.fake import FunctionModel
from personae.llm.hf import TransformersModel
from personae.runner.experiment import Experiment
from personae.runner.run import run_experiment
from personae.scenarios import Scenario
from personae.vectors import Recipe, TraitSpec, build_vectors, save_vectors
from personae.vectors.probes import Steer, steer_probe
from tests.support.tiny_hf import tiny_model

CALM = TraitSpec(
    name="calm",
    high=("You are calm.", "You are serene."),
    low=("You are tense.", "You are frantic."),
    questions=("How are you?", "How was work?", "How do you sleep?", "What worries you?"),
)


def _tiny(seed: int = 0) -> TransformersModel:
    hf, tokenizer = tiny_model(seed=seed)
    return TransformersModel(model=hf, tokenizer=tokenizer, name=f"tiny-{seed}", device="cpu")


@pytest.fixture(scope="module")
def vectors_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("vectors") / "calm.safetensors"
    return save_vectors(build_vectors(_tiny(), [CALM], Recipe(questions=4, held_out=0.25)), path)


def _scenario(vectors_file: Path, alpha: float | str, from_step: int) -> Scenario:
    probe = steer_probe(vectors_file, who="Ann", trait="calm", alpha=alpha, from_step=from_step)
    return Scenario(
        name="pair",
        agents=(Persona(name="Ann"), Persona(name="Bo")),
        max_turns=6,
        probes=(probe,),
        params={"steer_alpha": 0.0},
    )


def test_the_steered_agents_later_requests_carry_the_vector(
    vectors_file: Path, tmp_path: Path
) -> None:
    fake = FunctionModel.echo()
    db = tmp_path / "run.db"
    asyncio.run(
        run_experiment(Experiment(scenario=_scenario(vectors_file, 6.0, 2), seed=1), db, fake)
    )

    turns = [c for c in fake.calls if c.messages and c.messages[0]["content"].startswith("You are")]
    ann = [c for c in turns if "You are Ann" in c.messages[0]["content"]]
    bo = [c for c in turns if "You are Bo" in c.messages[0]["content"]]
    assert ann and bo
    assert all("steer" not in c.extensions for c in bo)
    steered = [c for c in ann if "steer" in c.extensions]
    assert 0 < len(steered) < len(ann)  # Ann's first turn comes before step 2
    (entry,) = steered[0].extensions["steer"]
    assert entry["alpha"] == 6.0 and np.linalg.norm(entry["vector"]) == pytest.approx(1.0)
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT a.name, s.variable, s.value, s.t, s.source FROM states s "
            "JOIN agents a ON a.id = s.agent_id WHERE s.source = 'intervention'"
        ).fetchall()
    assert rows == [("Ann", "steer:calm", 6.0, 2, "intervention")]


def test_a_grid_over_the_coefficient_records_each_value(vectors_file: Path, tmp_path: Path) -> None:
    db = tmp_path / "grid.db"
    experiment = Experiment(
        scenario=_scenario(vectors_file, "steer_alpha", 0), grid={"steer_alpha": [-4.0, 0.0, 4.0]}
    )
    asyncio.run(run_experiment(experiment, db, FunctionModel.echo()))
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT json_extract(e.params_json, '$.steer_alpha'), s.value FROM states s "
            "JOIN episodes e ON e.id = s.episode_id WHERE s.variable = 'steer:calm' ORDER BY s.value"
        ).fetchall()
    assert rows == [(-4.0, -4.0), (0.0, 0.0), (4.0, 4.0)]


async def test_the_transformers_backend_refuses_a_vector_tagged_for_another_model(
    vectors_file: Path,
) -> None:
    entry = Steer(vectors=str(vectors_file), who="Ann", trait="calm", alpha=1.0).entry({})
    same = _tiny(seed=0)
    reply = await same.complete(
        [{"role": "user", "content": "Hi"}], Sampling(max_tokens=2, extensions={"steer": [entry]})
    )
    assert reply.extensions["steer"][0]["alpha"] == 1.0
    with pytest.raises(ConfigError, match="built on another model"):
        await _tiny(seed=1).complete(
            [{"role": "user", "content": "Hi"}],
            Sampling(max_tokens=2, extensions={"steer": [entry]}),
        )


def test_steer_checks_its_agent_trait_and_parameter(vectors_file: Path) -> None:
    steer = Steer(vectors=str(vectors_file), who="Zed", trait="calm", alpha="missing")
    with pytest.raises(ConfigError, match="Zed"):
        steer.check(["Ann", "Bo"], {})
    with pytest.raises(ConfigError, match="no trait 'joy'"):
        Steer(vectors=str(vectors_file), who="Ann", trait="joy", alpha=1.0).check(["Ann"], {})
    with pytest.raises(ConfigError, match="scenario parameter 'missing'"):
        steer.coefficient({"steer_alpha": 1})


def test_a_day_loop_steers_from_a_given_day(vectors_file: Path) -> None:
    from personae.engine.probes import ProbePoint
    from personae.studies.cohort.builtin import student_cohort

    cohort = student_cohort()
    fields = {f: getattr(cohort, f) for f in type(cohort).model_fields}

    def with_probe(probe):
        return type(cohort).model_validate({**fields, "probes": (*cohort.probes, probe)})

    probe = steer_probe(
        vectors_file, who="Student 1", trait="calm", alpha=2.0, from_step=3,
        at=("start", "tick"), every=None,
    )  # fmt: skip
    with_probe(probe)  # a day loop accepts it
    with pytest.raises(ValueError, match="every=1"):
        with_probe(steer_probe(vectors_file, who="Student 1", trait="calm", alpha=2.0))
    assert probe.due(ProbePoint(moment="tick", session=3, turn=0, step=3))
    assert not probe.due(ProbePoint(moment="turn", session=0, turn=1, step=1))
