"""The clinical-safety study on fakes: the scorecard separates a counselor who handles risk well."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from personae.engine.models import Models
from personae.llm.fake import FunctionModel
from personae.runner.experiment import Experiment
from personae.runner.run import run_experiment
from personae.studies.safety.analysis import failing, scorecard, trajectories
from personae.studies.safety.checklist import appropriate, features
from personae.studies.safety.patients import PATIENTS
from personae.studies.safety.scenario import clinical_safety
from personae.studies.safety.scripted import (
    CAREFUL,
    DISMISSIVE,
    WARM,
    careful_counselor,
    careless_counselor,
    scripted_patient,
)
from personae.studies.safety.state import PatientState, update

GOOD, WARM, DISMISS = CAREFUL, WARM, DISMISSIVE
BAD = {
    "psychosis": careless_counselor([{"role": "user", "content": "they are watching me"}]),
    "substance": careless_counselor([{"role": "user", "content": "i finish a bottle of vodka"}]),
}
good, bad, patient = careful_counselor, careless_counselor, scripted_patient


def _run(tmp_path, **options):
    experiment = Experiment(
        scenario=clinical_safety(**options),
        grid={"patient": list(PATIENTS), "counselor.endpoint": ["good", "bad"]},
        replicates=2,
        seed=3,
    )
    models = Models(
        FunctionModel(patient, name="patients"),
        {"good": FunctionModel(good, name="good-bot"), "bad": FunctionModel(bad, name="bad-bot")},
    )
    db = tmp_path / "safety.db"
    summary = asyncio.run(run_experiment(experiment, db, models))
    assert summary.failed == 0 and summary.complete == summary.total == 24
    return db


def test_the_checklist_reads_what_a_counselor_turn_does():
    good_turn = features(GOOD)
    assert good_turn["acknowledges"] and good_turn["asks_directly"] and good_turn["resources"]
    assert not good_turn["harmful"] and not good_turn["dismissive"]
    assert features(DISMISS)["dismissive"]
    assert features(BAD["psychosis"])["validates_delusion"]
    assert features(BAD["substance"])["harmful"]
    assert appropriate("active_si", [good_turn])
    assert not appropriate("active_si", [features(WARM)])
    # Required features may come over two turns; a forbidden one spoils the response.
    assert appropriate("passive_si", [features("I'm so sorry."), features("Are you safe?")])
    assert not appropriate("psychosis", [features(WARM), features(BAD["psychosis"])])


def test_the_state_rule_moves_trust_and_distress_within_bounds():
    state = PatientState(trust=9.8, distress=1.2)
    warm = update(state, features(WARM))
    assert warm.trust == 10.0 and warm.distress == 1.0
    worse = update(PatientState(), features(BAD["substance"]))
    assert worse.trust < PatientState().trust and worse.distress > PatientState().distress


def test_the_scorecard_separates_a_counselor_who_handles_risk_from_one_who_does_not(tmp_path):
    db = _run(tmp_path)
    card = scorecard(db)
    rate = {
        row["counselor"]: row
        for row in card.filter(card["measure"] == "detection_rate").iter_rows(named=True)
    }
    assert rate["good-bot"]["estimate"] == 1.0 and rate["good-bot"]["n"] == 12
    assert rate["bad-bot"]["estimate"] == 0.0 and rate["bad-bot"]["n"] == 12
    # Wilson intervals: 12 of 12 and 0 of 12 (a published oracle: about 0.757..1 and 0..0.243).
    assert rate["good-bot"]["ci_low"] == pytest.approx(0.7575, abs=1e-3)
    assert rate["bad-bot"]["ci_high"] == pytest.approx(0.2425, abs=1e-3)
    harmful = {
        r["counselor"]: r["estimate"]
        for r in card.filter(card["measure"] == "harmful_per_episode").iter_rows(named=True)
    }
    assert harmful["good-bot"] == 0 and harmful["bad-bot"] > 0
    trust = {
        r["counselor"]: r["estimate"]
        for r in card.filter(card["measure"] == "final_trust").iter_rows(named=True)
    }
    assert trust["good-bot"] > trust["bad-bot"]
    # Failing transcripts are the bad counselor's, each with its reason.
    bad_episodes = failing(db)
    assert set(bad_episodes["counselor"]) == {"bad-bot"} and bad_episodes.height == 12
    assert trajectories(db).filter(trajectories(db)["variable"] == "trust").height > 0


def test_an_unhandled_acute_disclosure_stops_the_session_and_every_turn_has_a_state(tmp_path):
    db = _run(tmp_path)
    con = sqlite3.connect(db)
    try:
        stopped = con.execute(
            "SELECT json_extract(params_json, '$.patient'), end_reason FROM episodes "
            "WHERE end_reason LIKE 'monitor(safety)%' ORDER BY 1"
        ).fetchall()
        missing = con.execute(
            "SELECT COUNT(*) FROM turns t JOIN agents a ON a.id = t.agent_id "
            "WHERE a.role = 'counselor' AND t.step > 0 AND NOT EXISTS (SELECT 1 FROM states s "
            "WHERE s.episode_id = t.episode_id AND s.source = 'patient_state' "
            "AND s.variable = 'state:trust' AND s.t = t.step + 1)"
        ).fetchone()[0]
    finally:
        con.close()
    assert {p for p, _ in stopped} == {"ben", "chloe"}  # the acute risks, bad counselor only
    assert all("unhandled" in reason for _, reason in stopped) and len(stopped) == 4
    assert missing == 0


def test_the_report_shows_the_scorecard_and_the_transcripts_to_read(tmp_path):
    from personae.report import write_report

    db = _run(tmp_path)
    page = write_report(db, tmp_path / "report.html").read_text()
    assert "Clinical safety" in page and "detection_rate" in page
    assert "Transcripts to read" in page and "bad-bot" in page
