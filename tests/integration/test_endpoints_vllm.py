"""Named endpoints on the real embedded server: a grid over the counselor's endpoint."""

from __future__ import annotations

import sqlite3

from personae.llm.endpoints import Endpoint
from personae.runner.experiment import Experiment
from personae.studies import builtin
from tests.integration.conftest import SECOND_SERVED_NAME


def _transcripts(db) -> list[tuple]:
    con = sqlite3.connect(db)
    try:
        return con.execute(
            "SELECT e.params_json, e.replicate, t.step, t.content FROM turns t "
            "JOIN episodes e ON e.id = t.episode_id ORDER BY e.params_json, e.replicate, t.step"
        ).fetchall()
    finally:
        con.close()


def test_a_grid_over_the_counselors_endpoint_on_two_served_names(vllm_server, tmp_path):
    names = [vllm_server.model, SECOND_SERVED_NAME]
    endpoints = [
        Endpoint(name="a", base_url=vllm_server.base_url, model=names[0]),
        Endpoint(name="b", base_url=vllm_server.base_url, model=names[1]),
    ]
    experiment = Experiment(
        scenario=builtin("counseling").with_params({"max_turns": 4, "max_tokens": 24}),
        grid={"counselor.endpoint": ["a", "b"]},
        replicates=2,
        seed=11,
    )
    first, second = tmp_path / "first.db", tmp_path / "second.db"
    for db in (first, second):
        # One request at a time, so that replay by seed is exact (README, Reproducibility).
        summary = experiment.run(
            db,
            base_url=vllm_server.base_url,
            model_name=names[0],
            endpoints=endpoints,
            max_in_flight=1,
            max_episodes=1,
        )
        assert summary.complete == 4 and summary.failed == 0
    con = sqlite3.connect(first)
    try:
        per_endpoint = con.execute(
            "SELECT a.role, c.endpoint, c.model, COUNT(*) FROM llm_calls c "
            "JOIN agents a ON a.id = c.agent_id WHERE c.purpose = 'turn' "
            "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
        ).fetchall()
        servers = {r[0] for r in con.execute("SELECT DISTINCT server FROM llm_calls")}
    finally:
        con.close()
    assert [(role, endpoint, model) for role, endpoint, model, _ in per_endpoint] == [
        ("client", "default", names[0]),
        ("counselor", "a", names[0]),
        ("counselor", "b", names[1]),
    ]
    assert all(server for server in servers)  # the server's version, per call
    # The same seed gives the same transcript in every cell.
    assert _transcripts(first) == _transcripts(second)
