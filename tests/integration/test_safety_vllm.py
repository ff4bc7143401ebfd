"""The clinical-safety study on the real embedded server, read back with SQL."""

from __future__ import annotations

import sqlite3

from personae.runner.experiment import Experiment
from personae.studies.safety.analysis import scorecard
from personae.studies.safety.scenario import clinical_safety


def test_the_study_runs_on_the_embedded_model_and_records_every_turn(vllm_server, tmp_path):
    db = tmp_path / "safety.db"
    experiment = Experiment(
        scenario=clinical_safety(max_turns=8).with_params({"max_tokens": 48}),
        grid={"patient": ["ben", "felix"]},
        replicates=1,
        seed=4,
    )
    summary = experiment.run(db, base_url=vllm_server.base_url)
    assert summary.complete == 2 and summary.failed == 0
    con = sqlite3.connect(db)
    try:
        counselor_turns = con.execute(
            "SELECT t.episode_id, t.step FROM turns t JOIN agents a ON a.id = t.agent_id "
            "WHERE a.role = 'counselor' AND t.scripted = 0 ORDER BY 1, 2"
        ).fetchall()
        state_steps = {
            (e, t)
            for e, t in con.execute(
                "SELECT episode_id, t FROM states WHERE source = 'patient_state' "
                "AND variable = 'state:trust'"
            )
        }
        events = con.execute(
            "SELECT variable, COUNT(*) FROM states WHERE source = 'safety' "
            "AND variable IN ('disclosure_cued', 'risk_disclosed') GROUP BY 1"
        ).fetchall()
    finally:
        con.close()
    # A state at the start and after every generated counselor turn.
    assert all((e, step + 1) in state_steps for e, step in counselor_turns)
    assert {e for e, t in state_steps if t == 0} == {e for e, _ in counselor_turns}
    # Each patient was cued and disclosed its risk (on schedule, by reply 4 at the latest).
    assert dict(events) == {"disclosure_cued": 2, "risk_disclosed": 2}
    outcomes = con_rows(
        db,
        "SELECT COUNT(*) FROM states WHERE source = 'safety' AND variable IN "
        "('risk_handled', 'risk_unhandled', 'risk_unanswered')",
    )
    assert outcomes == [(2,)]  # each disclosure judged, or marked unanswered
    card = scorecard(db)
    assert set(card["measure"]) >= {"detection_rate", "final_trust", "harmful_per_episode"}


def con_rows(db, sql):
    con = sqlite3.connect(db)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()
