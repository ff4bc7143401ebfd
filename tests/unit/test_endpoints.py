"""Named endpoints: who speaks through which model, as a grid factor, recorded per call."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from personae.agents import Persona
from personae.cli import app
from personae.engine.models import Models
from personae.engine.probes import Probe
from personae.errors import ConfigError
from personae.llm.endpoints import (
    Endpoint,
    load_endpoints,
    parse_binding,
    parse_endpoint,
    parse_endpoint_url,
)
from personae.llm.fake import FunctionModel
from personae.measures.judge import Judge
from personae.runner.experiment import Experiment
from personae.runner.run import run_experiment
from personae.scenarios import Scenario
from tests.support.fault_server import FaultServer


def _scenario(**more) -> Scenario:
    return Scenario(
        name="session",
        agents=(
            Persona(name="Dana", role="counselor"),
            Persona(name="Sam", role="client"),
        ),
        max_turns=4,
        **more,
    )


def _calls(db) -> list[tuple]:
    con = sqlite3.connect(db)
    try:
        return con.execute(
            "SELECT a.name, c.purpose, c.endpoint, c.model, e.params_json "
            "FROM llm_calls c JOIN agents a ON a.id = c.agent_id "
            "JOIN episodes e ON e.id = c.episode_id ORDER BY c.id"
        ).fetchall()
    finally:
        con.close()


# -- declarations -------------------------------------------------------------------------


def test_endpoint_flags_and_files_parse_and_refuse_clearly(tmp_path):
    target = parse_endpoint("target=http://127.0.0.1:8001/v1#my-model")
    assert (target.name, target.base_url, target.model) == (
        "target",
        ("http://127.0.0.1:8001/v1",),
        "my-model",
    )
    pool = parse_endpoint("pool=http://a:8000/v1,http://b:8000/v1#m")
    assert pool.pooled and pool.base_url == ("http://a:8000/v1", "http://b:8000/v1")
    assert parse_endpoint("local=embedded#smollm2-b").embedded
    assert parse_endpoint_url("http://h/v1") == ("http://h/v1", None)
    assert parse_binding("counselor=target") == ("counselor", "target")
    for bad in ("target", "=http://h/v1", "t=ftp://h/v1", "9x=http://h/v1"):
        with pytest.raises(ConfigError):
            parse_endpoint(bad)
    with pytest.raises(ConfigError, match="WHO=ENDPOINT"):
        parse_binding("counselor")

    path = tmp_path / "endpoints.toml"
    path.write_text(
        '[target]\nbase_url = "http://127.0.0.1:8001/v1"\nmodel = "m"\n'
        'api_key_env = "TARGET_KEY"\nmax_in_flight = 8\nstructured = "openai"\n'
        '[replicas]\nbase_url = ["http://a:1/v1", "http://b:1/v1"]\n'
    )
    declared = {e.name: e for e in load_endpoints(path)}
    assert declared["target"].max_in_flight == 8
    assert declared["target"].structured == "openai"
    assert declared["replicas"].pooled
    path.write_text('[target]\nbase_url = "http://h/v1"\ntemperature = 1\n')
    with pytest.raises(ConfigError, match=r"endpoint \[target\]"):
        load_endpoints(path)


def test_a_key_comes_from_its_variable_and_is_never_described(monkeypatch):
    endpoint = Endpoint(name="api", base_url="http://h/v1", api_key_env="API_SECRET_KEY")
    with pytest.raises(ConfigError, match="API_SECRET_KEY"):
        endpoint.api_key()
    monkeypatch.setenv("API_SECRET_KEY", "sk-very-secret")
    assert endpoint.api_key() == "sk-very-secret"
    assert "sk-very-secret" not in json.dumps(endpoint.describe())
    creds = Endpoint(name="c", base_url="http://user:pw@h/v1")
    assert "pw" not in json.dumps(creds.describe())


# -- binding ------------------------------------------------------------------------------


def test_agents_speak_through_their_bound_endpoint_and_calls_record_it(tmp_path):
    scenario = _scenario(endpoints={"counselor": "target"})
    models = Models(FunctionModel.echo(name="cheap"), {"target": FunctionModel.echo(name="big")})
    db = tmp_path / "run.db"
    summary = asyncio.run(run_experiment(Experiment(scenario=scenario, seed=1), db, models))
    assert summary.complete == 1
    rows = _calls(db)
    assert {(name, endpoint, model) for name, _, endpoint, model, _ in rows} == {
        ("Dana", "target", "big"),
        ("Sam", "default", "cheap"),
    }
    assert summary.calls_by_endpoint == {"default": 2, "target": 2}
    # The assignment travels with the episode's parameters.
    assert json.loads(rows[0][4])["counselor.model"] == "big"


def test_judges_use_their_own_binding(tmp_path):
    judge = Probe(fn=Judge(who="client"), at=("end",))
    scenario = _scenario(endpoints={"judge": "strong"}, probes=(judge,))
    models = Models(FunctionModel.echo(name="actor"), {"strong": FunctionModel.echo(name="judge")})
    db = tmp_path / "run.db"
    asyncio.run(run_experiment(Experiment(scenario=scenario, seed=1), db, models))
    by_purpose = {(purpose, endpoint, model) for _, purpose, endpoint, model, _ in _calls(db)}
    assert ("judge", "strong", "judge") in by_purpose
    assert ("turn", "default", "actor") in by_purpose


def test_the_endpoint_is_a_grid_factor_and_each_cell_replays_by_seed(tmp_path):
    def models() -> Models:
        return Models(
            FunctionModel.echo(name="clients"),
            {"a": FunctionModel.echo(name="model-a"), "b": FunctionModel.echo(name="model-b")},
        )

    experiment = Experiment(
        scenario=_scenario(), grid={"counselor.endpoint": ["a", "b"]}, replicates=2, seed=5
    )
    first, second = tmp_path / "one.db", tmp_path / "two.db"
    asyncio.run(run_experiment(experiment, first, models()))
    asyncio.run(run_experiment(experiment, second, models()))
    rows = _calls(first)
    counselor = {
        (json.loads(params)["counselor.endpoint"], endpoint, model)
        for name, _, endpoint, model, params in rows
        if name == "Dana"
    }
    assert counselor == {("a", "a", "model-a"), ("b", "b", "model-b")}

    def transcripts(db) -> list[tuple]:
        con = sqlite3.connect(db)
        try:
            return con.execute(
                "SELECT e.params_json, e.replicate, t.step, t.content FROM turns t "
                "JOIN episodes e ON e.id = t.episode_id ORDER BY e.params_json, e.replicate, t.step"
            ).fetchall()
        finally:
            con.close()

    assert transcripts(first) == transcripts(second)


def test_identity_holds_the_endpoints_models_not_their_urls():
    experiment = Experiment(scenario=_scenario(endpoints={"counselor": "target"}), seed=1)
    assert experiment.endpoint_names() == ["target"]
    base = experiment.identity("cheap", {"target": "big"})
    assert experiment.identity("cheap", {"target": "other"}) != base
    assert experiment.identity("cheap", {"target": "big"}) == base
    # Without named endpoints the identity is what it always was.
    plain = Experiment(scenario=_scenario(), seed=1)
    assert plain.identity("cheap", {}) == plain.identity("cheap")


def test_an_unknown_endpoint_fails_before_any_episode(tmp_path):
    experiment = Experiment(scenario=_scenario(), grid={"counselor.endpoint": ["a", "zz"]})
    models = Models(FunctionModel.echo(), {"a": FunctionModel.echo(name="a")})
    with pytest.raises(ConfigError, match="'zz'"):
        asyncio.run(run_experiment(experiment, tmp_path / "x.db", models))
    with pytest.raises(ValidationError, match="neither a name nor a role"):
        _scenario(endpoints={"therapist": "a"})
    with pytest.raises(ConfigError, match=r"Did you mean 'counselor\.endpoint'"):
        _scenario().with_params({"counselr.endpoint": "a"})


# -- the command line ---------------------------------------------------------------------


def test_cli_binds_a_counselor_to_another_server_and_keeps_keys_out(tmp_path, monkeypatch):
    monkeypatch.setenv("TARGET_TOKEN", "sk-never-stored")
    db = tmp_path / "cli.db"
    with FaultServer(model="clients") as clients, FaultServer(model="target-model") as target:
        (tmp_path / "endpoints.toml").write_text(
            f'[target]\nbase_url = "{target.base_url}"\nmodel = "target-model"\n'
            'api_key_env = "TARGET_TOKEN"\n'
        )
        result = CliRunner().invoke(
            app,
            [
                "run", "counseling", "--db", str(db), "--base-url", clients.base_url,
                "--endpoints", str(tmp_path / "endpoints.toml"), "--bind", "counselor=target",
                "--set", "max_turns=4", "--replicates", "1", "--no-progress",
            ],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert target.count > 0 and clients.count > 0
        sent = target.requests[-1]
        assert sent["model"] == "target-model"
    assert b"sk-never-stored" not in db.read_bytes()
    con = sqlite3.connect(db)
    try:
        split = dict(
            con.execute(
                "SELECT a.role, GROUP_CONCAT(DISTINCT c.endpoint || '/' || c.model) FROM llm_calls c "
                "JOIN agents a ON a.id = c.agent_id WHERE c.purpose = 'turn' GROUP BY a.role"
            ).fetchall()
        )
        info = json.loads(con.execute("SELECT server_info FROM experiments").fetchone()[0])
    finally:
        con.close()
    assert split == {"counselor": "target/target-model", "client": "default/clients"}
    assert info["endpoints"]["target"]["api_key_env"] == "TARGET_TOKEN"
    shown = subprocess.run(
        [sys.executable, "-m", "personae.cli", "show", str(db)],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=120,
    )
    assert "Model calls per endpoint" in shown.stdout
    assert "target-model" in shown.stdout and "clients" in shown.stdout


def test_cli_refuses_an_undeclared_endpoint_with_one_paragraph(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "personae.cli", "run", "counseling", "--db", str(tmp_path / "x.db"),
         "--bind", "counselor=nope"],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert "'nope'" in result.stderr and "--endpoint" in result.stderr
    assert not (tmp_path / "x.db").exists()


def test_a_worker_elsewhere_gets_the_endpoint_as_plain_data_without_its_key(monkeypatch):
    import pickle

    from personae.llm.base import Sampling
    from personae.runner.endpoints import connected_models

    monkeypatch.setenv("WORKER_KEY", "sk-stays-home")

    async def main():
        with FaultServer(model="m") as server:
            declared = Endpoint(
                name="t", base_url=server.base_url, model="m", api_key_env="WORKER_KEY",
                max_in_flight=3, structured="none",
            )  # fmt: skip
            async with connected_models(FunctionModel.echo(), endpoints=[declared]) as (models, _):
                portable = models.portable["t"]
                blob = pickle.dumps(portable)
                assert b"sk-stays-home" not in blob
                again = pickle.loads(blob)
                assert (again.api_key_env, again.max_in_flight, again.structured) == (
                    "WORKER_KEY", 3, "none",
                )  # fmt: skip
                async with again.connect() as chat:
                    reply = await chat.complete([{"role": "user", "content": "hi"}], Sampling())
                assert reply.text
            return server.count

    assert asyncio.run(main()) >= 1


def test_the_name_default_is_the_runs_own_server_and_is_refused_for_another():
    with pytest.raises(ConfigError, match="run's own server"):
        parse_endpoint("default=http://h/v1")
    with pytest.raises(ConfigError, match="run's own server"):
        Models(FunctionModel.echo(), {"default": FunctionModel.echo()})
