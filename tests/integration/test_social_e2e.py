"""Debate, group discussion and student cohort on the real embedded server, read back with SQL."""

import json

from e2e import personae, q


def test_debate_runs_and_records_agreement_before_during_after(vllm_server, tmp_path):
    db = tmp_path / "debate.db"
    r = personae(
        "run", "debate", "--grid", "opponent=ai,human", "--set", "personalised=true",
        "--set", "strength=low", "--set", "words=30", "--replicates", "1",
        "--db", str(db), "--base-url", vllm_server.base_url, "--no-progress",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert q(db, "SELECT status, COUNT(*) FROM episodes GROUP BY 1") == [("complete", 2)]
    for (episode_id,) in q(db, "SELECT id FROM episodes"):
        roles = q(
            db,
            f"SELECT a.role FROM turns t JOIN agents a ON a.id = t.agent_id "
            f"WHERE t.episode_id = {episode_id} ORDER BY t.step",
        )
        assert [x for (x,) in roles] == ["participant", "opponent"] * 3
        sources = q(
            db,
            f"SELECT source FROM states WHERE episode_id = {episode_id} "
            f"AND variable = 'agreement' ORDER BY t, id",
        )
        assert [s for (s,) in sources] == ["pre", "turn", "turn", "turn", "post"]
    values = q(db, "SELECT value FROM states WHERE variable = 'agreement'")
    assert all(v is None or 1 <= v <= 5 for (v,) in values)
    # What was drawn per episode is in the parameters: topic and sides.
    for (params,) in q(db, "SELECT params_json FROM episodes"):
        drawn = json.loads(params)
        assert drawn["topic"].startswith("t") and drawn["opponent_side"] in ("pro", "con")
    r = personae("report", str(db), "--out", str(tmp_path / "debate.html"))
    assert r.returncode == 0, r.stderr
    assert "Persuasion" in (tmp_path / "debate.html").read_text()


def test_group_discussion_on_a_small_world_graph(vllm_server, tmp_path):
    db = tmp_path / "group.db"
    r = personae(
        "run", "group", "--set", "n_agents=5", "--set", "max_turns=6", "--set", "every=3",
        "--set", "words=25", "--replicates", "1", "--db", str(db),
        "--base-url", vllm_server.base_url, "--no-progress",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    [(network,)] = q(db, "SELECT text FROM states WHERE variable = 'network'")
    edges = {frozenset((e["source"], e["target"])) for e in json.loads(network)["edges"]}
    for speaker, visible in q(
        db, "SELECT a.name, t.visible_to FROM turns t JOIN agents a ON a.id = t.agent_id"
    ):
        heard = set(json.loads(visible)) - {speaker}
        assert heard and all(frozenset((speaker, h)) in edges for h in heard)
    opinions = q(db, "SELECT t, COUNT(*) FROM states WHERE variable = 'opinion' GROUP BY t")
    assert dict(opinions) == {0: 5, 3: 5, 6: 10}
    r = personae("report", str(db), "--out", str(tmp_path / "group.html"))
    assert r.returncode == 0, r.stderr
    assert "Group dynamics" in (tmp_path / "group.html").read_text()


def test_student_cohort_has_states_for_every_student_and_day(vllm_server, tmp_path):
    db = tmp_path / "cohort.db"
    r = personae(
        "run", "student-cohort", "--set", "n_students=4", "--set", "days=3",
        "--set", "questionnaires=none", "--set", "conversations=1.0", "--set", "media=1.0",
        "--replicates", "1",
        "--db", str(db), "--base-url", vllm_server.base_url, "--no-progress",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    rows = q(
        db,
        "SELECT s.variable, COUNT(DISTINCT s.agent_id), COUNT(DISTINCT s.t) FROM states s "
        "WHERE s.source = 'rule' GROUP BY 1",
    )
    assert {v: (a, t) for v, a, t in rows} == {
        v: (4, 3) for v in ("stress", "mood", "energy", "sleep_debt", "connectedness")
    }
    ema = q(db, "SELECT COUNT(*), SUM(value IS NOT NULL) FROM states WHERE variable = 'ema_stress'")
    assert ema[0][0] == 4 * 3 and ema[0][1] >= 10  # constrained JSON answers read back
    # a post every day for everyone, recorded with its kind and text
    assert q(db, "SELECT COUNT(*) FROM states WHERE variable = 'media' AND source = 'media'") == [
        (4 * 3,)
    ]
    r = personae("report", str(db), "--out", str(tmp_path / "cohort.html"))
    assert r.returncode == 0, r.stderr
    assert "Student cohort" in (tmp_path / "cohort.html").read_text()
