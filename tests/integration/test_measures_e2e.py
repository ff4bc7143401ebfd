"""Questionnaires and the judge on the real embedded server, read back with SQL."""

from e2e import personae, q

from personae import Experiment, Judge, Probe
from personae.scenarios.builtin import counseling


def test_questionnaire_subset_and_judge_land_in_scores(vllm_server, tmp_path):
    probes = (
        Probe("ipip-neo-120", who="client", at=["start", "end"], domains=["N"], facets=None),
        Probe("phq-9", who="client", at="end", batch_size=9),
        Probe(Judge(who="client", window=4), at="end"),
    )
    scenario = counseling(max_turns=4, min_turns=5).model_copy(update={"probes": probes})
    db = tmp_path / "measures.db"
    summary = Experiment(scenario=scenario, replicates=2, seed=3).run(
        db, base_url=vllm_server.base_url, max_in_flight=32
    )
    assert summary.complete == 2
    # 24 neuroticism items twice, the 9 PHQ-9 items once, 5 judged domains, per episode.
    counts = dict(q(db, "SELECT instrument, COUNT(*) FROM measurements GROUP BY 1"))
    assert counts == {"ipip-neo-120": 2 * 2 * 24, "phq-9": 2 * 9, "judge-big5": 2 * 5}
    # Answers were constrained to the options: every item answer is a valid option value.
    invalid = q(
        db, "SELECT COUNT(*) FROM measurements WHERE instrument = 'ipip-neo-120' AND valid = 0"
    )
    assert invalid == [(0,)]
    [(low, high)] = q(
        db, "SELECT MIN(value), MAX(value) FROM measurements WHERE instrument = 'ipip-neo-120'"
    )
    assert 1 <= low <= high <= 5
    rows = q(
        db,
        "SELECT agent, instrument, level, scale, occasion, value FROM trait_scores "
        "WHERE instrument = 'ipip-neo-120' AND level = 'domain' ORDER BY episode_id, occasion",
    )
    assert [(r[0], r[3], r[4]) for r in rows] == [("Maya", "neuroticism", o) for o in (0, 1)] * 2
    assert all(1.0 <= r[5] <= 5.0 for r in rows)
    facets = q(db, "SELECT COUNT(DISTINCT scale) FROM trait_scores WHERE level = 'facet'")
    assert facets == [(6,)]
    phq = q(db, "SELECT value, band FROM trait_scores WHERE instrument = 'phq-9'")
    assert len(phq) == 2 and all(v is None or 0 <= v <= 27 for v, _ in phq)
    judged = q(db, "SELECT COUNT(*) FROM trait_scores WHERE source = 'judge'")
    assert judged == [(10,)]
    # The questionnaire never entered the conversation.
    leaked = q(db, "SELECT COUNT(*) FROM transcript WHERE text LIKE '%accurately%'")
    assert leaked == [(0,)]


def test_report_writes_html_with_drift_figures(vllm_server, tmp_path):
    probes = (
        Probe(
            "ipip-neo-120", who="client", at=["start", "end"], items=[str(i) for i in range(1, 21)]
        ),
    )
    scenario = counseling(max_turns=4, min_turns=5).model_copy(update={"probes": probes})
    db = tmp_path / "drift.db"
    Experiment(scenario=scenario, grid={"client": ["maya", "james"]}, replicates=2).run(
        db, base_url=vllm_server.base_url, max_in_flight=32
    )
    r = personae("report", str(db), "--out", str(tmp_path / "r.html"))
    assert r.returncode == 0, r.stderr
    html = (tmp_path / "r.html").read_text()
    assert "Trait drift" in html
    assert "data:image/png;base64," in html
