"""Persuasion analysis on hand-made debate databases (real schema) and synthetic frames."""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from handmade import HandMadeDb

from personae.analysis import cumulative_link, persuasion, persuasion_report
from personae.analysis.report import write_report

T_975_DF2 = 4.302652729911275  # scipy.stats.t.ppf(0.975, 2)
DATA = Path(__file__).parent / "data"
# Written by benchmarks/r/persuasion_clm.R (R 4.2.2, ordinal 2022.11-16) from persuasion_clm.csv.
R_REFERENCE = json.loads((DATA / "persuasion_clm_reference.json").read_text(encoding="utf-8"))


class DebateStore(HandMadeDb):
    """Writes debates the way the debate scenario stores them: params, two agents, states, turns."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, scenario="debate")
        self.count = 0

    def debate(
        self,
        *,
        opponent: str = "ai",
        personalised: bool = False,
        strength: str = "low",
        side: str = "pro",
        pre: float | None = 3,
        post: float | None = 4,
        turns: Sequence[float | None] = (),
        status: str = "complete",
        big_five: dict[str, float] | None = None,
        demographics: dict[str, object] | None = None,
    ) -> int:
        self.count += 1
        episode = self.count
        params = {
            "opponent": opponent,
            "personalised": personalised,
            "topic": f"t{episode:02d}",
            "strength": strength,
            "opponent_side": side,
            "rounds": 3,
        }
        self.con.execute(
            "INSERT INTO episodes (id, experiment_id, param_index, replicate, params_json, seed,"
            " status, n_turns) VALUES (?, 1, ?, 0, ?, 0, ?, ?)",
            (episode, episode, json.dumps(params), status, 2 * len(turns)),
        )
        persona = {
            "name": "Pat",
            "role": "participant",
            "big_five": big_five or {"O": 3.0, "C": 3.0, "E": 3.0, "A": 3.0, "N": 3.0},
            "demographics": demographics or {"age": 34, "gender": "female"},
        }
        participant, rival = 2 * episode, 2 * episode + 1
        self.con.executemany(
            "INSERT INTO agents (id, episode_id, name, role, persona_json) VALUES (?, ?, ?, ?, ?)",
            [
                (participant, episode, "Pat", "participant", json.dumps(persona)),
                (rival, episode, "Opp", "opponent", json.dumps({"name": "Opp"})),
            ],
        )
        states: list[tuple[int, float | None, str]] = [(0, pre, "pre")]
        for index, value in enumerate(turns):
            step = 2 * index + 1
            for speaker, offset in ((rival, 0), (participant, 1)):
                self.con.execute(
                    "INSERT INTO turns (episode_id, session, step, agent_id, content, scripted, created_at)"
                    " VALUES (?, 0, ?, ?, 'words', 0, 'now')",
                    (episode, step - 1 + offset, speaker),
                )
            states.append((step, value, "turn"))
        states.append((2 * len(turns), post, "post"))
        self.con.executemany(
            "INSERT INTO states (episode_id, agent_id, session, t, variable, value, text, source)"
            " VALUES (?, ?, 0, ?, 'agreement', ?, ?, ?)",
            [(episode, participant, t, v, str(v), source) for t, v, source in states],
        )
        return episode

    def score(self, episode: int, scale: str, value: float, occasion: int = 0) -> None:
        self.con.execute(
            "INSERT INTO scores (episode_id, agent_id, session, step, point, occasion, instrument,"
            " level, scale, value, n_items, n_missing, prompt_variant, option_order, source)"
            " VALUES (?, ?, 0, 0, 'start', ?, 'ipip-neo-120', 'domain', ?, ?, 24, 0, 0,"
            " 'forward', 'self_report')",
            (episode, 2 * episode, occasion, scale, value),
        )


def synthetic(seed: int = 7, n: int = 400, planted: float = 1.0) -> pl.DataFrame:
    """Debates whose latent post-agreement (toward the opponent) gets ``planted`` log odds
    in the personalised-AI condition only; sides are random, so re-orientation is exercised."""
    rng = np.random.default_rng(seed)
    cells = [("human", False), ("human", True), ("ai", False), ("ai", True)]
    rows = []
    for i in range(n):
        opponent, personalised = cells[i % 4]
        strength = ["low", "moderate", "high"][rng.integers(3)]
        side = ["pro", "con"][rng.integers(2)]
        pre = int(rng.choice([1, 2, 3, 4, 5], p=[0.15, 0.25, 0.3, 0.2, 0.1]))
        effect = planted if (opponent, personalised) == ("ai", True) else 0.0
        strength_effect = {"low": 0.3, "moderate": 0.0, "high": -0.3}[strength]
        latent = 0.9 * pre + effect + strength_effect + rng.logistic()
        post = int(np.digitize(latent, [1.5, 2.5, 3.5, 4.5])) + 1
        sign = 1 if side == "pro" else -1  # raw agreement from agreement toward the opponent
        rows.append(
            {
                "opponent": opponent,
                "personalised": personalised,
                "strength": strength,
                "opponent_side": side,
                "pre": float(3 + sign * (pre - 3)),
                "post": float(3 + sign * (post - 3)),
                "agreeableness": float(rng.uniform(1, 5)),
            }
        )
    return pl.DataFrame(rows)


# --- debates ------------------------------------------------------------------------------------


def test_shift_is_toward_the_opponent_for_both_sides(tmp_path: Path) -> None:
    store = DebateStore(tmp_path / "d.db")
    store.debate(side="pro", pre=2, post=4)  # toward pro opponent: +2
    store.debate(side="con", pre=4, post=2, personalised=True)  # toward con opponent: +2
    store.debate(side="con", pre=2, post=4, opponent="human")  # away from con opponent: -2
    store.debate(side="pro", pre=3, post=None)  # unreadable post
    store.debate(side="pro", pre=1, post=5, status="failed")  # does not count
    table = persuasion.debates(store.done()).sort("episode_id")
    assert table["episode_id"].to_list() == [1, 2, 3, 4]
    assert table["shift"].to_list() == [2.0, 2.0, -2.0, None]
    assert table["any_shift"].to_list() == [True, True, False, None]
    assert table["pre_toward"].to_list() == [2.0, 2.0, 4.0, 3.0]
    assert table["post_toward"].to_list() == [4.0, 4.0, 2.0, None]
    assert table["condition"].to_list() == ["AI", "AI personalised", "human", "AI"]
    assert table["opponent_side"].to_list() == ["pro", "con", "con", "pro"]
    assert table["personalised"].dtype == pl.Boolean
    row = table.row(0, named=True)
    assert row["topic"] == "t01" and row["rounds"] == 3 and row["strength"] == "low"
    assert row["target_A"] == 3.0 and row["age"] == 34 and row["gender"] == "female"
    assert row["agreeableness"] is None  # not measured


def test_debates_reads_measured_traits_and_the_first_readable_answers(tmp_path: Path) -> None:
    store = DebateStore(tmp_path / "d.db")
    episode = store.debate(big_five={"A": 4.5, "O": 1.5}, demographics={"education": "PhD"})
    store.score(episode, "agreeableness", 4.0)
    store.score(episode, "openness", 2.0)
    store.score(episode, "openness", 5.0, occasion=1)  # not the baseline
    store.con.execute(  # a second, unreadable post answer later does not erase the readable one
        "INSERT INTO states (episode_id, agent_id, t, variable, value, text, source)"
        " VALUES (?, ?, 9, 'agreement', NULL, 'no idea', 'post')",
        (episode, 2 * episode),
    )
    row = persuasion.debates(store.done()).row(0, named=True)
    assert (row["agreeableness"], row["openness"], row["neuroticism"]) == (4.0, 2.0, None)
    assert (row["target_A"], row["target_O"], row["target_C"]) == (4.5, 1.5, None)
    assert row["education"] == "PhD" and row["post"] == 4.0


def test_empty_database_gives_documented_empty_frames(tmp_path: Path) -> None:
    db = DebateStore(tmp_path / "e.db").done()
    table = persuasion.debates(db)
    assert table.is_empty() and list(table.schema) == list(persuasion.DEBATES_SCHEMA)
    assert persuasion.stances(db).columns == list(persuasion.STANCES_SCHEMA)
    assert persuasion.shift_by_condition(db).is_empty()
    curves = persuasion.stance_curves(db)
    assert curves.is_empty() and "mean_toward" in curves.columns
    assert persuasion_report.section().build(db) is None


# --- shift by condition -------------------------------------------------------------------------


def test_shift_by_condition_share_mean_and_t_interval() -> None:
    frame = pl.DataFrame(
        {
            "opponent": ["ai", "ai", "ai", "human", "human", "human"],
            "personalised": [True, True, True, False, False, False],
            "shift": [1.0, 2.0, 3.0, 0.0, -1.0, None],
        }
    )
    stats = persuasion.shift_by_condition(frame, by=["opponent"])
    human, ai = stats.rows(named=True)  # human first: the natural order
    assert ai["opponent"] == "ai" and ai["n"] == 3 and ai["n_toward"] == 3
    assert ai["share_toward"] == 1.0 and ai["share_away"] == 0.0
    assert ai["mean_shift"] == pytest.approx(2.0) and ai["sd_shift"] == pytest.approx(1.0)
    half = T_975_DF2 / math.sqrt(3)
    assert (ai["ci_low"], ai["ci_high"]) == pytest.approx((2 - half, 2 + half))
    assert human["n"] == 2 and human["share_toward"] == 0.0 and human["share_away"] == 0.5
    assert human["mean_shift"] == pytest.approx(-0.5)
    by_condition = persuasion.shift_by_condition(frame, by=["condition"])
    assert by_condition["condition"].to_list() == ["human", "AI personalised"]
    single = persuasion.shift_by_condition(frame.head(1), by=["opponent"]).row(0, named=True)
    assert single["ci_low"] is None and single["mean_shift"] == 1.0
    with pytest.raises(ValueError, match="topic"):
        persuasion.shift_by_condition(frame, by=["topic_group"])


# --- ordinal regression -------------------------------------------------------------------------


def test_proportional_model_recovers_the_planted_personalised_ai_effect() -> None:
    planted = math.exp(1.0)  # the synthetic debates have a linear pre effect: this model is right
    model = persuasion.ordinal_regression(synthetic(planted=1.0), model="proportional")
    terms = {row["term"]: row for row in model.iter_rows(named=True)}
    assert list(terms) == [
        "human personalised",
        "AI",
        "AI personalised",
        "strength moderate",
        "strength high",
        "pre-agreement",
    ]
    ai_p = terms["AI personalised"]
    assert ai_p["ci_low"] > 1 and ai_p["ci_low"] < planted < ai_p["ci_high"]
    assert ai_p["odds_ratio"] == pytest.approx(math.exp(ai_p["coef"]))
    assert ai_p["p"] < 0.01
    for null in ("AI", "human personalised"):
        assert terms[null]["ci_low"] < 1 < terms[null]["ci_high"]
    assert terms["pre-agreement"]["coef"] == pytest.approx(0.9, abs=0.25)
    assert model["n"].to_list() == [400] * 6 and model["converged"].all()
    assert set(model["kind"]) == {"condition", "strength", "control"}
    assert set(model["model"]) == {"proportional"} and model["note"].is_null().all()


def test_published_model_is_the_default_and_recovers_the_planted_effect() -> None:
    model = persuasion.ordinal_regression(synthetic(planted=1.0))
    assert model["term"].to_list() == ["human personalised", "AI", "AI personalised"]
    assert set(model["model"]) == {"published"} and model["converged"].all()
    ai_p = model.row(2, named=True)
    assert ai_p["ci_low"] < math.exp(1.0) < ai_p["ci_high"] and ai_p["p"] < 0.01
    assert ai_p["odds_ratio"] == pytest.approx(math.exp(ai_p["coef"]))
    assert ai_p["ci_low"] == pytest.approx(math.exp(ai_p["coef"] - 1.959964 * ai_p["se"]))
    with_thresholds = persuasion.ordinal_regression(synthetic(planted=1.0), thresholds=True)
    thresholds = with_thresholds.filter(pl.col("kind") == "threshold")
    assert thresholds["term"].to_list()[:5] == ["1|2", "2|3", "3|4", "4|5", "1|2, pre 2"]
    assert thresholds["odds_ratio"].is_null().all() and thresholds["p"].is_null().all()
    with pytest.raises(ValueError, match="model must be one of"):
        persuasion.ordinal_regression(synthetic(), model="linear")  # type: ignore[arg-type]


# --- the published model against R's ordinal ----------------------------------------------------


def _r_name(term: str) -> str:
    """The name R's clm gives a personae term (``1|2, pre 2`` is ``1|2.pre2``)."""
    if term in persuasion.CONDITION_ORDER:
        return f"treatment{term}"
    if "|" in term:
        cut, _, level = term.partition(", pre ")
        return f"{cut}.pre{level}" if level else f"{cut}.(Intercept)"
    return {"strength moderate": "strengthmoderate", "strength high": "strengthhigh"}.get(
        term, "pre_linear"
    )


def _reference_debates() -> pl.DataFrame:
    return pl.read_csv(DATA / "persuasion_clm.csv")


@pytest.mark.parametrize("model", ["published", "proportional"])
def test_estimates_match_r_ordinal_clm(model: str) -> None:
    reference = R_REFERENCE["published" if model == "published" else "alternative"]
    values = zip(reference["coef"], reference["se"], strict=True)
    expected = dict(zip(reference["names"], values, strict=True))
    fit = persuasion.ordinal_regression(_reference_debates(), model=model, thresholds=True)  # type: ignore[arg-type]
    assert fit["converged"].all() and fit["n"][0] == reference["n"] == 600
    names = [
        _r_name(t) if model == "published" else _r_name(t).replace(".(Intercept)", "")
        for t in fit["term"]
    ]
    assert sorted(names) == sorted(expected)
    for name, coef, se in zip(names, fit["coef"], fit["se"], strict=True):
        assert coef == pytest.approx(expected[name][0], rel=1e-5, abs=1e-8), name
        assert se == pytest.approx(expected[name][1], rel=1e-5), name


def test_proportional_odds_test_matches_r_nominal_test() -> None:
    test = persuasion.proportional_odds_test(_reference_debates()).row(0, named=True)
    reference = R_REFERENCE["nominal_test"]
    assert test["loglik_nominal"] == pytest.approx(R_REFERENCE["published"]["loglik"], abs=1e-6)
    loglik = R_REFERENCE["proportional_factor"]["loglik"]
    assert test["loglik_proportional"] == pytest.approx(loglik, abs=1e-6)
    assert test["statistic"] == pytest.approx(reference["statistic"], abs=1e-6)
    assert test["df"] == reference["df"] == 12 and test["p"] == pytest.approx(reference["p"])
    assert test["converged"] and test["n"] == 600


def test_proportional_model_understates_the_published_odds_ratio_when_pre_is_not_proportional() -> (
    None
):
    data = _reference_debates()
    published = persuasion.ordinal_regression(data).filter(pl.col("term") == "AI personalised")
    alternative = persuasion.ordinal_regression(data, model="proportional").filter(
        pl.col("term") == "AI personalised"
    )
    ratio = alternative["odds_ratio"][0] / published["odds_ratio"][0]
    assert 0.9 < ratio < 0.97  # about 5% low on these debates, where pre is far from proportional


def test_the_engine_reparameterises_thresholds_as_ordinal_does() -> None:
    rng = np.random.default_rng(5)
    strata = rng.integers(0, 3, 300)
    x = rng.integers(0, 2, (300, 1)).astype(float)
    y = np.digitize(0.8 * x[:, 0] + 0.6 * strata + rng.logistic(size=300), [0.0, 1.0, 2.0])
    fit = cumulative_link.fit_cumulative_link(y, x, strata)
    assert fit.converged and fit.n_params == 3 * 3 + 1 and fit.n == 300
    estimates, errors = cumulative_link.nominal_parameters(fit)
    assert estimates[0] == pytest.approx(fit.thresholds[0])  # theta_j: the first stratum's
    assert estimates[2] == pytest.approx(fit.thresholds[2] - fit.thresholds[0])  # delta_j,s
    assert np.all(errors > 0) and fit.beta_se.shape == (1,)
    with pytest.raises(ValueError, match="no stratum has two outcome categories"):
        cumulative_link.fit_cumulative_link([0, 0, 1], [[0.0], [1.0], [0.0]], [0, 0, 1])


def test_sparse_cells_are_dropped_or_reported_not_estimable() -> None:
    data = _reference_debates()
    toward_pre = pl.when(pl.col("opponent_side") == "pro").then("pre").otherwise(6 - pl.col("pre"))
    toward_post = (
        pl.when(pl.col("opponent_side") == "pro").then("post").otherwise(6 - pl.col("post"))
    )
    data = data.with_columns(toward_pre.alias("pre_toward"), toward_post.alias("post_toward"))
    # pre 1: every debate ends at 1 (no information); pre 5: none ends at 1 (1|2 not estimable)
    sparse = data.filter(
        ((pl.col("pre_toward") != 1) | (pl.col("post_toward") == 1))
        & ((pl.col("pre_toward") != 5) | (pl.col("post_toward") != 1))
    )
    n_single = sparse.filter(pl.col("pre_toward") == 1).height
    fit = persuasion.ordinal_regression(sparse, thresholds=True)
    assert fit["converged"].all() and fit["n"][0] == sparse.height - n_single
    note = fit["note"][0]
    assert f"Left out: the {n_single} debates at pre-agreement 1, all ending at 1" in note
    assert "Answers never given (pre-agreement: answers) 5: 1: the thresholds" in note
    terms = dict(zip(fit["term"], fit["coef"], strict=True))
    assert "1|2, pre 1" not in terms and terms["1|2"] is not None  # pre 2 is now the first level
    assert terms["1|2, pre 5"] is None and terms["2|3, pre 5"] is not None
    # Leaving out the uninformative debates by hand gives the same fit.
    by_hand = persuasion.ordinal_regression(sparse.filter(pl.col("pre_toward") != 1))
    assert by_hand["coef"].to_list() == pytest.approx(fit["coef"].to_list()[:3], rel=1e-6)


def test_ordinal_regression_factorial_design_and_published_comparison() -> None:
    data = synthetic(planted=1.0)
    factorial = persuasion.ordinal_regression(data, design="factorial")
    assert factorial["term"].to_list() == [
        "opponent AI",
        "personalised",
        "opponent AI x personalised",
    ]
    proportional = persuasion.ordinal_regression(
        data, design="factorial", strength=False, model="proportional"
    )
    assert proportional["term"].to_list() == [*factorial["term"], "pre-agreement"]
    cells = persuasion.ordinal_regression(data)
    side = persuasion.published_comparison(cells)
    row = side.filter(pl.col("term") == "AI personalised").row(0, named=True)
    assert (row["published_or"], row["published_ci_low"], row["published_ci_high"]) == (
        1.812,
        1.260,
        2.607,
    )
    assert row["published_p"] == "< 0.01" and row["model_n"] == 400
    assert row["model_or"] == cells.filter(pl.col("term") == "AI personalised")["odds_ratio"][0]
    assert row["model"] == "published" and "as published" in row["model_spec"]
    assert "nominal = ~ pre" in row["source"]
    ai = side.filter(pl.col("term") == "AI").row(0, named=True)
    assert ai["published_p"] == "0.30" and ai["published_or"] is None
    alone = persuasion.published_comparison()
    assert alone["model_or"].is_null().all() and alone.height == 2
    assert alone["model"].is_null().all()
    other = persuasion.published_comparison(
        persuasion.ordinal_regression(data, model="proportional")
    ).row(0, named=True)
    assert other["model"] == "proportional" and "not the published" in other["model_spec"]


def test_ordinal_regression_explains_what_is_missing() -> None:
    data = synthetic(n=80)
    one_condition = data.filter((pl.col("opponent") == "ai") & pl.col("personalised"))
    with pytest.raises(ValueError, match="only one condition"):
        persuasion.ordinal_regression(one_condition)
    constant = data.with_columns(pl.lit("pro").alias("opponent_side"), pl.lit(3.0).alias("post"))
    with pytest.raises(ValueError, match="two outcome levels"):
        persuasion.ordinal_regression(constant)
    with pytest.raises(ValueError, match="reference condition 'human' is not in the data"):
        persuasion.ordinal_regression(data.filter(pl.col("opponent") == "ai"))
    no_side = data.with_columns(pl.lit(None, pl.String).alias("opponent_side"))
    with pytest.raises(ValueError, match="opponent_side"):
        persuasion.ordinal_regression(no_side)
    flat_pre = data.with_columns(pl.lit("pro").alias("opponent_side"), pl.lit(3.0).alias("pre"))
    with pytest.raises(ValueError, match="'pre-agreement' is the same"):
        persuasion.ordinal_regression(flat_pre)
    ai_personalised = (pl.col("opponent") == "ai") & pl.col("personalised")
    confounded = data.with_columns(
        pl.when(ai_personalised).then(pl.lit("high")).otherwise(pl.lit("low")).alias("strength")
    )
    with pytest.raises(ValueError, match="'strength high' is collinear"):
        persuasion.ordinal_regression(confounded, model="proportional")
    with pytest.raises(ValueError, match="'pre-agreement' is the same"):
        persuasion.proportional_odds_test(flat_pre)


def test_ordinal_regression_flags_complete_separation() -> None:
    data = synthetic(n=80)
    top = pl.when(pl.col("opponent_side") == "pro").then(5.0).otherwise(1.0)
    ai_personalised = (pl.col("opponent") == "ai") & pl.col("personalised")
    separated = data.with_columns(
        pl.when(ai_personalised).then(top).otherwise("post").alias("post")
    )
    assert not persuasion.ordinal_regression(separated)["converged"].any()
    assert not persuasion.ordinal_regression(separated, model="proportional")["converged"].any()


# --- trait moderators ---------------------------------------------------------------------------


def test_trait_moderators_recover_a_planted_slope() -> None:
    rng = np.random.default_rng(3)
    n = 300
    agreeableness = rng.uniform(1, 5, n)
    conditions = np.array(["human", "AI", "AI personalised"])[np.arange(n) % 3]
    shift = 0.5 * agreeableness + 0.8 * (conditions == "AI personalised") + rng.normal(0, 0.5, n)
    frame = pl.DataFrame(
        {
            "condition": conditions,
            "shift": shift,
            "agreeableness": agreeableness,
            "target_O": rng.uniform(1, 5, n),
        }
    )
    result = persuasion.trait_moderators(frame, ("agreeableness", "openness", "N"))
    agree, openness, neuro = result.rows(named=True)
    assert agree["source"] == "measured" and agree["n"] == n
    assert agree["ci_low"] < 0.5 < agree["ci_high"] and agree["p"] < 1e-6
    assert openness["source"] == "target" and openness["column"] == "target_O"
    assert openness["ci_low"] < 0 < openness["ci_high"]
    assert neuro["trait"] == "neuroticism" and neuro["coef"] is None and neuro["reason"]


# --- stance curves ------------------------------------------------------------------------------


def test_stances_and_curves_on_hand_made_debates(tmp_path: Path) -> None:
    store = DebateStore(tmp_path / "s.db")
    store.debate(side="pro", pre=2, turns=[3, None, 4], post=4, personalised=True)
    store.debate(side="con", pre=4, turns=[3, 2, 2], post=1, personalised=True)
    store.debate(side="pro", opponent="human", pre=3, turns=[3, 3, 3], post=3)
    db = store.done()
    steps = persuasion.stances(db)
    first = steps.filter(pl.col("episode_id") == 1)
    assert first["index"].to_list() == [0, 1, 2, 3, 4]
    assert first["point"].to_list() == ["pre", "turn", "turn", "turn", "post"]
    assert first["t"].to_list() == [0, 1, 3, 5, 6]
    assert first["toward"].to_list() == [2.0, 3.0, None, 4.0, 4.0]
    assert first["change"].to_list() == [0.0, 1.0, None, 2.0, 2.0]
    second = steps.filter(pl.col("episode_id") == 2)
    assert second["toward"].to_list() == [2.0, 3.0, 4.0, 4.0, 5.0]  # 6 - agreement: con side
    curves = persuasion.stance_curves(steps)
    ai = curves.filter(pl.col("condition") == "AI personalised")
    assert ai["index"].to_list() == [0, 1, 2, 3, 4]
    assert ai["n"].to_list() == [2, 2, 1, 2, 2]
    assert ai["mean_toward"].to_list() == pytest.approx([2.0, 3.0, 4.0, 4.0, 4.5])
    assert ai["point"].to_list() == ["pre", "turn", "turn", "turn", "post"]
    last = ai.row(4, named=True)
    half = 12.706204736174707 * math.sqrt(0.5) / math.sqrt(2)  # t(0.975, 1) x sd / sqrt(n)
    assert (last["ci_low"], last["ci_high"]) == pytest.approx((4.5 - half, 4.5 + half))
    assert ai.row(2, named=True)["ci_low"] is None  # one value
    assert curves.filter(pl.col("condition") == "human")["mean_change"].to_list() == [0.0] * 5


# --- figures and report section -----------------------------------------------------------------


def _report_db(tmp_path: Path) -> Path:
    store = DebateStore(tmp_path / "r.db")
    pattern = [(2, 4), (3, 3), (1, 3), (4, 5), (3, 2), (2, 2), (5, 4), (1, 1)]
    for i, (pre, post) in enumerate(pattern * 3):
        store.debate(
            opponent="ai" if i % 2 else "human",
            personalised=bool(i % 4 >= 2),
            strength=["low", "moderate", "high"][i % 3],
            side="pro" if i % 5 else "con",
            pre=pre,
            post=post,
            turns=[pre, post],
        )
    return store.done()


def test_section_builds_persuasion_html_with_figures(tmp_path: Path) -> None:
    db = _report_db(tmp_path)
    part = persuasion_report.section()
    assert part.title == "Persuasion"
    body = part.build(db)
    assert body is not None and body.count("<img") >= 2
    assert "Ordinal regression" in body and "Stance turn by turn" in body
    assert "nominal = ~ pre" in body and "Alternative, not the published model" in body
    page = write_report(db, tmp_path / "r.html", sections=[part]).read_text(encoding="utf-8")
    assert ">Persuasion</h2>" in page and "<img" in page and "This section failed" not in page


def test_section_shows_a_regression_error_instead_of_failing(tmp_path: Path) -> None:
    store = DebateStore(tmp_path / "one.db")
    for pre, post in [(2, 3), (3, 3), (4, 5)]:
        store.debate(opponent="ai", personalised=True, pre=pre, post=post)
    body = persuasion_report.section().build(store.done())
    assert body is not None and "Not estimated: only one condition" in body
    assert "No stance was measured during the debates" in body


def test_section_is_none_without_debates(tmp_path: Path) -> None:
    db = DebateStore(tmp_path / "n.db").done()
    con = sqlite3.connect(db)
    con.execute(
        "INSERT INTO episodes (id, experiment_id, param_index, replicate, params_json, seed,"
        " status) VALUES (1, 1, 0, 0, '{}', 0, 'complete')"
    )
    con.execute(
        "INSERT INTO states (episode_id, t, variable, value, source)"
        " VALUES (1, 0, 'mood', 0.5, 'probe')"
    )
    con.commit()
    con.close()
    assert persuasion_report.section().build(db) is None


def test_plots_return_figures_and_save(tmp_path: Path) -> None:
    db = _report_db(tmp_path)
    table = persuasion.debates(db)
    fig = persuasion_report.plot_shift_by_condition(table, path=tmp_path / "shift.png")
    assert fig.axes and (tmp_path / "shift.png").stat().st_size > 0
    model = persuasion.ordinal_regression(synthetic(n=200))
    forest = persuasion_report.plot_odds_ratios(model, path=tmp_path / "or.png")
    labels = [t.get_text() for t in forest.axes[0].get_yticklabels()]
    assert "AI personalised" in labels and "pre-agreement" not in labels
    legend = forest.axes[0].get_legend()
    assert legend is not None and "published" in [t.get_text() for t in legend.get_texts()]
    curves = persuasion_report.plot_stance_curves(db, path=tmp_path / "curves.png")
    ticks = [t.get_text() for t in curves.axes[0].get_xticklabels()]
    assert ticks[0] == "pre" and ticks[-1] == "post"
    empty = persuasion_report.plot_stance_curves(
        persuasion.stances(DebateStore(tmp_path / "x.db").done())
    )
    assert empty.texts
