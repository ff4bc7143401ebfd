"""Three views of a trait: self-report, judge and activation side by side, on hand-made data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from handmade import HandMadeDb
from scipy import stats

from personae.report.html import Section
from personae.vectors.report import section
from personae.vectors.views import three_views, view_changes, view_correlations


def _database(tmp_path: Path, n: int = 10) -> tuple[Path, dict[str, np.ndarray]]:
    """n clients; activation neuroticism = 2 x self-report + noise; agreeableness unrelated."""
    rng = np.random.default_rng(3)
    planted = {
        "self_n": rng.uniform(1, 5, n),
        "judge_n": rng.uniform(1, 5, n),
        "self_a": rng.uniform(1, 5, n),
        "act_a": rng.normal(0, 1, n),
    }
    planted["act_n"] = 2 * planted["self_n"] + rng.normal(0, 0.3, n)
    db = HandMadeDb(tmp_path / "views.db")
    for i in range(n):
        episode = db.add_episode({}, param_index=i)
        agent = db.add_agent(episode, "Sam", "client", {"name": "Sam", "big_five": {"N": 4.0}})
        rows = [
            ("neuroticism", "self_report", "ipip-neo-120", planted["self_n"][i]),
            ("neuroticism", "judge", "judge-big5", planted["judge_n"][i]),
            ("agreeableness", "self_report", "ipip-neo-120", planted["self_a"][i]),
        ]
        for scale, source, instrument, value in rows:
            db.con.execute(
                "INSERT INTO scores (episode_id, agent_id, session, step, point, occasion, "
                "instrument, level, scale, value, n_items, n_missing, prompt_variant, "
                "option_order, source) VALUES (?, ?, 0, 0, 'end', 0, ?, 'domain', ?, ?, 24, 0, "
                "0, 'forward', ?)",
                (episode, agent, instrument, scale, float(value), source),
            )
        for t, (scale, value) in enumerate(
            [("neuroticism", planted["act_n"][i]), ("agreeableness", planted["act_a"][i])]
        ):
            # Two turns per trait: the mean of the two is the planted value.
            for step, shift in ((1, -0.5), (3, 0.5)):
                db.con.execute(
                    "INSERT INTO states (episode_id, agent_id, session, t, variable, value, "
                    "text, source) VALUES (?, ?, 0, ?, ?, ?, 'abc', 'activation')",
                    (episode, agent, step + t, f"vector:{scale}", float(value + shift)),
                )
    return db.done(), planted


def test_three_views_puts_each_measure_in_its_column(tmp_path: Path) -> None:
    db, planted = _database(tmp_path)
    views = three_views(db)

    neuro = views.filter(views["scale"] == "neuroticism").sort("episode_id")
    np.testing.assert_allclose(neuro["self_report"], planted["self_n"])
    np.testing.assert_allclose(neuro["judge"], planted["judge_n"])
    np.testing.assert_allclose(neuro["activation"], planted["act_n"])  # mean over turns
    assert (neuro["target"] == 4.0).all()
    agree = views.filter(views["scale"] == "agreeableness")
    assert agree["judge"].is_null().all() and agree["target"].is_null().all()


def test_correlations_match_scipy_and_show_convergent_over_discriminant(tmp_path: Path) -> None:
    db, planted = _database(tmp_path)
    table = view_correlations(three_views(db))

    row = table.filter(
        (table["scale"] == "neuroticism")
        & (table["view_a"] == "self_report")
        & (table["view_b"] == "activation")
    ).row(0, named=True)
    expected = stats.pearsonr(planted["self_n"], planted["act_n"])
    assert row["n"] == 10
    assert row["r"] == pytest.approx(expected.statistic)
    assert row["p"] == pytest.approx(expected.pvalue)
    other = abs(stats.pearsonr(planted["self_n"], planted["act_a"]).statistic)
    assert row["discriminant_mean_abs_r"] == pytest.approx(other)
    assert row["r"] > 0.9 > row["discriminant_mean_abs_r"]


def test_changes_over_time_per_view(tmp_path: Path) -> None:
    db, _planted = _database(tmp_path)
    changes = view_changes(db)
    assert changes["activation_change"].to_list() == pytest.approx([1.0] * 20)
    assert changes["self_report_change"].is_null().all()  # one occasion only


def test_the_report_section_shows_the_table_and_says_when_there_is_nothing(
    tmp_path: Path,
) -> None:
    db, _planted = _database(tmp_path)
    made = section()
    assert isinstance(made, Section)
    html = made.build(db)
    assert html is not None and "self_report" in html and "activation" in html
    empty = HandMadeDb(tmp_path / "empty.db").done()
    assert made.build(empty) is None
