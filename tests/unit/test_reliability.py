"""Reliability and response-bias statistics against published and constructed values."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import polars as pl
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from personae.measures import (
    cronbach_alpha,
    icc,
    load_instrument,
    omega_total,
    option_order_asymmetry,
    prompt_variant_sensitivity,
    refusal_rate,
    reliability,
)
from personae.measures.reliability import prompt_variant_contrasts

pingouin = pytest.importorskip("pingouin")


def _exact_sample(cov: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Data whose sample covariance matrix (ddof=1) is exactly ``cov``."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, len(cov)))
    z -= z.mean(axis=0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T
    return z @ np.linalg.cholesky(cov).T


def _one_factor_cov(loadings: list[float]) -> np.ndarray:
    lam = np.array(loadings)
    return np.outer(lam, lam) + np.diag(1 - lam**2)


def _wide(x: np.ndarray) -> pl.DataFrame:
    return pl.DataFrame(x, schema=[f"i{j}" for j in range(x.shape[1])])


# --- Cronbach's alpha ----------------------------------------------------------------------


def test_alpha_matches_the_published_example():
    """Real Statistics' Cronbach's alpha example (15 respondents x 10 items), shipped with
    pingouin as ``cronbach_alpha``; pingouin documents alpha = 0.5917 with 95% CI
    [0.195, 0.84], checked against R ``psych::alpha``."""
    long = pingouin.read_dataset("cronbach_alpha")
    wide = pl.from_dicts(long.to_dict("records")).pivot(on="Items", index="Subj", values="Scores")
    result = cronbach_alpha(wide.drop("Subj"))
    assert result.value == pytest.approx(0.5917188485995826, abs=1e-10)
    assert (result.ci_low, result.ci_high) == pytest.approx((0.195, 0.84))
    assert (result.n_respondents, result.n_items, result.reason) == (15, 10, None)


def test_alpha_uses_complete_cases():
    """pingouin's ``cronbach_wide_missing`` data: alpha = 0.8017 after listwise deletion,
    as R ``psych::alpha(use = "complete.obs")`` gives (pingouin documentation)."""
    data = pingouin.read_dataset("cronbach_wide_missing")  # a pandas frame
    result = cronbach_alpha(data)
    assert result.value == pytest.approx(0.8016949152542373, abs=1e-10)
    assert result.n_respondents == int(data.notna().all(axis=1).sum()) < len(data)


def test_alpha_of_exact_congeneric_data_equals_its_population_value():
    loadings = [0.9, 0.8, 0.5, 0.3, 0.2]
    cov = _one_factor_cov(loadings)
    k = len(loadings)
    population = k / (k - 1) * (1 - np.trace(cov) / cov.sum())
    result = cronbach_alpha(_wide(_exact_sample(cov, 200, seed=1)))
    assert result.value == pytest.approx(population, abs=1e-9)
    assert result.ci_low < result.value < result.ci_high


# --- McDonald's omega ----------------------------------------------------------------------


def test_omega_of_exact_congeneric_data_equals_its_population_value():
    """One-factor population with loadings .9 .8 .5 .3 .2: omega = 2.7^2 / (2.7^2 + 3.17)."""
    cov = _one_factor_cov([0.9, 0.8, 0.5, 0.3, 0.2])
    result = omega_total(_wide(_exact_sample(cov, 200, seed=2)))
    assert result.value == pytest.approx(7.29 / 10.46, abs=1e-5)
    assert (result.ci_low, result.reason, result.n_respondents, result.n_items) == (
        None,
        None,
        200,
        5,
    )


def test_omega_on_simulated_congeneric_data_is_near_population_and_above_alpha():
    rng = np.random.default_rng(20240501)
    lam = np.array([0.9, 0.8, 0.5, 0.3, 0.2])
    factor = rng.standard_normal(3000)
    x = factor[:, None] * lam + rng.standard_normal((3000, 5)) * np.sqrt(1 - lam**2)
    omega, alpha = omega_total(_wide(x)).value, cronbach_alpha(_wide(x)).value
    assert omega == pytest.approx(7.29 / 10.46, abs=0.02)
    # Alpha underestimates reliability when loadings differ (population .652 vs .697).
    assert alpha == pytest.approx(0.6525, abs=0.02)
    assert omega > alpha + 0.02


def test_omega_equals_alpha_for_parallel_items():
    """Equal loadings and error variances: both reduce to Spearman-Brown of the item correlation."""
    cov = _one_factor_cov([0.6] * 6)
    x = _exact_sample(cov, 100, seed=3)
    assert omega_total(_wide(x)).value == pytest.approx(cronbach_alpha(_wide(x)).value, abs=1e-6)
    assert omega_total(_wide(x)).value == pytest.approx(6 * 0.36 / (1 + 5 * 0.36), abs=1e-6)
    rng = np.random.default_rng(7)
    noisy = rng.standard_normal(4000)[:, None] * 0.6 + rng.standard_normal((4000, 6)) * 0.8
    assert omega_total(_wide(noisy)).value == pytest.approx(
        cronbach_alpha(_wide(noisy)).value, abs=0.005
    )


@pytest.mark.parametrize(
    ("dataset", "expected"), [("cronbach_alpha", 0.6900763), ("cronbach_wide_missing", 0.8145851)]
)
def test_omega_agrees_with_a_minres_fit(dataset, expected):
    """Reference: the same one-factor model fitted by minres (factor_analyzer 0.5.1,
    ``method="minres"``) on pingouin's example data, complete cases: the iterated
    principal-axis fit converges to the same unweighted least-squares solution."""
    data = pingouin.read_dataset(dataset)
    if dataset == "cronbach_alpha":
        data = data.pivot(index="Subj", columns="Items", values="Scores")
    assert omega_total(data).value == pytest.approx(expected, abs=1e-6)


def test_omega_is_invariant_to_reflecting_all_items():
    x = _exact_sample(_one_factor_cov([0.7, 0.6, 0.5, 0.4]), 50, seed=4)
    assert omega_total(_wide(-x)).value == pytest.approx(omega_total(_wide(x)).value, abs=1e-9)


# --- degenerate inputs ---------------------------------------------------------------------


def test_constant_answers_give_nulls_with_reasons():
    wide = pl.DataFrame({"a": [3, 3, 3, 3], "b": [3, 3, 3, 3], "c": [3, 3, 3, 3]})
    alpha, omega = cronbach_alpha(wide), omega_total(wide)
    assert alpha.value is None and "no variance" in alpha.reason
    assert omega.value is None and "no item has any variance" in omega.reason


def test_one_constant_item_names_it_for_omega_but_alpha_is_defined():
    wide = pl.DataFrame({"a": [1, 2, 3, 4, 5], "b": [2, 2, 3, 5, 5], "c": [4, 4, 4, 4, 4]})
    assert omega_total(wide).reason == "item(s) c have no variance"
    assert cronbach_alpha(wide).value is not None


def test_two_respondents_or_too_few_items_give_reasons():
    two = pl.DataFrame({"a": [1, 2], "b": [2, 3], "c": [1, 3]})
    assert cronbach_alpha(two).reason == "2 complete respondent(s); at least 3 are needed"
    assert omega_total(two).value is None
    pair = pl.DataFrame({"a": [1, 2, 4, 5], "b": [2, 3, 3, 5]})
    assert omega_total(pair).reason == "2 item(s); at least 3 are needed"
    assert cronbach_alpha(pair).value is not None


def test_duplicated_items_do_not_crash_omega():
    base = np.array([1.0, 2, 3, 4, 5, 2, 4])
    wide = pl.DataFrame({"a": base, "b": base, "c": base, "d": base[::-1]})
    result = omega_total(wide)
    assert (result.value is None) == (result.reason is not None)


# --- reliability over measurements --------------------------------------------------------


def _pss_measurements(n: int, seed: int, noise: float = 0.7) -> pl.DataFrame:
    """PSS-10 answers driven by one latent stress level; "-" items worded the other way."""
    pss = load_instrument("pss-10")
    rng = np.random.default_rng(seed)
    rows = []
    for respondent in range(n):
        stress = rng.normal()
        for item in pss.items:
            sign = 1 if item.keyed == "+" else -1
            value = float(np.clip(np.round(2 + sign * stress + rng.normal(0, noise)), 0, 4))
            rows.append(
                {
                    "episode_id": respondent,
                    "agent_id": 0,
                    "occasion": 0,
                    "item": item.id,
                    "value": value,
                    "valid": 1,
                    "instrument": "pss-10",
                }
            )
    return pl.DataFrame(rows)


def test_reliability_uses_keyed_values_and_matches_cronbach_alpha():
    pss = load_instrument("pss-10")
    measurements = _pss_measurements(60, seed=11)
    (row,) = reliability(pss, measurements).rows(named=True)
    raw = measurements.pivot(on="item", index="episode_id", values="value").drop("episode_id")
    keyed = raw.with_columns((4 - pl.col(c)).alias(c) for c in ("4", "5", "7", "8"))
    assert row["alpha"] == pytest.approx(cronbach_alpha(keyed).value)
    assert row["omega_total"] == pytest.approx(omega_total(keyed).value)
    assert row["alpha"] > 0.8
    assert cronbach_alpha(raw).value < 0.5  # what ignoring the keys would give
    assert (row["instrument"], row["level"], row["scale"]) == ("pss-10", "total", "pss-10")
    assert (row["n_respondents"], row["n_items"], row["reason"]) == (60, 10, None)
    assert row["alpha_ci_low"] < row["alpha"] < row["alpha_ci_high"]


def test_reliability_counts_complete_cases_only():
    pss = load_instrument("pss-10")
    measurements = _pss_measurements(20, seed=12).with_columns(
        valid=pl.when((pl.col("episode_id") < 5) & (pl.col("item") == "3")).then(0).otherwise(1)
    )
    (row,) = reliability(pss, measurements).rows(named=True)
    assert row["n_respondents"] == 15


def test_reliability_of_constant_respondents_is_null_with_reasons_not_an_error():
    neo = load_instrument("ipip-neo-120")
    rows = [
        {"episode_id": e, "agent_id": 0, "occasion": 0, "item": i.id, "value": 4.0, "valid": 1}
        for e in range(5)
        for i in neo.items
    ]
    frame = reliability(neo, pl.DataFrame(rows))
    assert frame.height == 35
    assert frame["alpha"].null_count() == frame["omega_total"].null_count() == 35
    assert frame["reason"].null_count() == 0
    assert frame.columns == [
        "instrument",
        "level",
        "scale",
        "n_respondents",
        "n_items",
        "alpha",
        "alpha_ci_low",
        "alpha_ci_high",
        "omega_total",
        "reason",
    ]


def test_reliability_of_two_respondents_is_null_with_reason():
    pss = load_instrument("pss-10")
    (row,) = reliability(pss, _pss_measurements(2, seed=13)).rows(named=True)
    assert row["alpha"] is None and row["omega_total"] is None
    assert row["reason"] == "2 complete respondent(s); at least 3 are needed"


def test_reliability_refuses_two_answers_per_respondent():
    measurements = _pss_measurements(5, seed=14)
    doubled = pl.concat([measurements.with_columns(option_order=pl.lit(o)) for o in ("f", "r")])
    with pytest.raises(ValueError, match="more than once"):
        reliability(load_instrument("pss-10"), doubled)
    by_order = reliability(
        load_instrument("pss-10"), doubled, respondent=["episode_id", "option_order"]
    )
    assert by_order["n_respondents"].to_list() == [10]


# --- ICC -----------------------------------------------------------------------------------

# Shrout, P. E., & Fleiss, J. L. (1979). Intraclass correlations: Uses in assessing rater
# reliability. Psychological Bulletin, 86(2), 420-428. Their worked example (Table 2):
# 6 targets rated by 4 judges.
SHROUT_FLEISS = [
    [9, 2, 5, 8],
    [6, 1, 3, 2],
    [8, 4, 6, 8],
    [7, 1, 2, 6],
    [10, 5, 6, 9],
    [6, 2, 4, 7],
]


def test_icc_reproduces_shrout_and_fleiss_1979():
    """As published for that example: ICC(1,1)=.17, ICC(2,1)=.29, ICC(3,1)=.71, ICC(1,4)=.44,
    ICC(2,4)=.62, ICC(3,4)=.91."""
    frame = pl.DataFrame(
        [
            {"target": t, "judge": j, "rating": rating}
            for t, ratings in enumerate(SHROUT_FLEISS, 1)
            for j, rating in enumerate(ratings, 1)
        ]
    )
    out = icc(frame, targets="target", raters="judge", ratings="rating")
    published = {
        "ICC(1,1)": 0.17,
        "ICC(2,1)": 0.29,
        "ICC(3,1)": 0.71,
        "ICC(1,k)": 0.44,
        "ICC(2,k)": 0.62,
        "ICC(3,k)": 0.91,
    }
    got = dict(zip(out["shrout_fleiss"], out["icc"], strict=True))
    assert {k: round(v, 2) for k, v in got.items()} == published
    assert set(out.columns) >= {"type", "description", "f", "df1", "df2", "p", "ci_low", "ci_high"}
    assert (out["ci_low"] <= out["icc"]).all() and (out["icc"] <= out["ci_high"]).all()


def test_icc_reads_older_pingouin_names(monkeypatch):
    """pingouin < 0.7 calls the types ICC1 ... ICC3k, and < 0.6 the interval "CI95%"."""
    frame = pl.DataFrame(
        [
            {"target": t, "judge": j, "rating": rating}
            for t, ratings in enumerate(SHROUT_FLEISS, 1)
            for j, rating in enumerate(ratings, 1)
        ]
    )
    expected = icc(frame, "target", "judge", "rating")
    current = pingouin.intraclass_corr
    old = dict(
        zip(expected["type"], ["ICC1", "ICC2", "ICC3", "ICC1k", "ICC2k", "ICC3k"], strict=True)
    )

    def old_pingouin(*args, **kwargs):
        table = current(*args, **kwargs)
        table["Type"] = table["Type"].map(old)
        return table.rename(columns={"CI95": "CI95%"})

    monkeypatch.setattr(pingouin, "intraclass_corr", old_pingouin)
    got = icc(frame, "target", "judge", "rating")
    assert got.drop("icc", "ci_low", "ci_high").equals(expected.drop("icc", "ci_low", "ci_high"))
    assert got["icc"].to_list() == pytest.approx(expected["icc"].to_list())


def test_icc_turns_pingouin_refusals_into_value_errors():
    frame = pl.DataFrame({"target": [1, 2], "judge": [1, 1], "rating": [1.0, 2.0]})
    with pytest.raises(ValueError, match="icc"):
        icc(frame, "target", "judge", "rating")


# --- option order and prompt variants ------------------------------------------------------


def _scores(*, order_effect=0.0, variant_effect=0.0, paired=True, n=30, seed=0, noise=0.3):
    rng = np.random.default_rng(seed)
    rows = []
    for agent in range(n):
        base = rng.normal(3, 0.5)
        for variant in (0, 1, 2):
            for order in ("forward", "reversed"):
                value = base + rng.normal(0, noise)
                value += order_effect if order == "forward" else 0
                value += variant_effect if variant == 2 else 0
                episode = agent if paired else 2 * agent + (order == "reversed")
                rows.append(
                    {
                        "episode_id": episode,
                        "agent_id": agent,
                        "occasion": 0,
                        "instrument": "ipip-neo-120",
                        "level": "domain",
                        "scale": "neuroticism",
                        "value": value,
                        "prompt_variant": variant,
                        "option_order": order,
                    }
                )
    return pl.DataFrame(rows)


def test_option_order_effect_is_detected_with_a_paired_t_test():
    (row,) = option_order_asymmetry(_scores(order_effect=0.5)).rows(named=True)
    assert (row["design"], row["test"], row["n_respondents"]) == ("paired", "paired t", 30)
    assert row["p"] < 1e-6
    assert row["difference"] == pytest.approx(0.5, abs=0.1)
    assert row["ci_low"] < 0.5 < row["ci_high"]
    assert (row["n_forward"], row["n_reversed"]) == (90, 90)
    assert row["mean_forward"] - row["mean_reversed"] == pytest.approx(row["difference"])


def test_paired_t_test_is_the_t_test_of_each_respondents_mean_difference():
    scores = _scores(order_effect=0.2, seed=4)
    forward = scores.filter(pl.col("option_order") == "forward").sort("agent_id", "prompt_variant")
    reversed_ = scores.filter(pl.col("option_order") == "reversed").sort(
        "agent_id", "prompt_variant"
    )
    per_agent = (forward["value"] - reversed_["value"]).to_numpy().reshape(30, 3).mean(axis=1)
    expected = stats.ttest_1samp(per_agent, 0.0)
    (row,) = option_order_asymmetry(scores).rows(named=True)
    assert row["statistic"] == pytest.approx(expected.statistic)
    assert row["p"] == pytest.approx(expected.pvalue)
    (rank,) = option_order_asymmetry(scores, method="rank").rows(named=True)
    assert rank["test"] == "wilcoxon" and rank["p"] == pytest.approx(
        stats.wilcoxon(per_agent).pvalue
    )
    assert rank["ci_low"] is None


def test_option_order_effect_is_detected_with_welch_when_unpaired():
    (row,) = option_order_asymmetry(_scores(order_effect=0.5, paired=False)).rows(named=True)
    assert (row["design"], row["test"], row["n_respondents"]) == ("independent", "welch", 0)
    assert row["p"] < 0.05 and row["ci_low"] < 0.5 < row["ci_high"]
    (rank,) = option_order_asymmetry(_scores(paired=False), method="rank").rows(named=True)
    assert rank["test"] == "mann-whitney"


@pytest.mark.parametrize("paired", [True, False])
def test_no_option_order_effect_is_not_detected(paired):
    (row,) = option_order_asymmetry(_scores(paired=paired, seed=5)).rows(named=True)
    assert row["p"] > 0.05 and row["reason"] is None


def test_option_order_with_identical_answers_gives_a_reason():
    constant = _scores().with_columns(value=pl.lit(3.0))
    (row,) = option_order_asymmetry(constant).rows(named=True)
    assert (row["difference"], row["p"], row["reason"]) == (
        0.0,
        None,
        "every paired difference is zero",
    )


def test_option_order_asymmetry_is_per_scale_and_honours_custom_labels():
    scores = pl.concat(
        [
            _scores(order_effect=0.5),
            _scores(seed=9).with_columns(scale=pl.lit("extraversion")),
        ]
    ).with_columns(option_order=pl.col("option_order").replace({"forward": "A", "reversed": "B"}))
    out = option_order_asymmetry(scores, orders=("A", "B"))
    p = dict(zip(out["scale"], out["p"], strict=True))
    assert p["neuroticism"] < 0.001 and p["extraversion"] > 0.05


@pytest.mark.parametrize(("method", "test"), [("anova", "rm_anova (GG)"), ("rank", "friedman")])
def test_prompt_variant_effect_is_detected_with_repeated_measures(method, test):
    scores = _scores(variant_effect=0.5)
    (row,) = prompt_variant_sensitivity(scores, method=method).rows(named=True)
    assert (row["design"], row["test"], row["n_respondents"]) == ("repeated", test, 30)
    assert row["p"] < 1e-6
    assert row["n_variants"] == 3
    assert row["mean_2"] - row["mean_0"] == pytest.approx(0.5, abs=0.15)
    means = [row["mean_0"], row["mean_1"], row["mean_2"]]
    assert row["max_difference"] == pytest.approx(max(means) - min(means))


def test_rm_anova_matches_pingouin_on_the_order_averaged_scores():
    scores = _scores(variant_effect=0.2, seed=2)
    long = (
        scores.group_by("agent_id", "prompt_variant")
        .agg(pl.col("value").mean())
        .sort("agent_id", "prompt_variant")
    )
    data = pd.DataFrame(long.to_dict(as_series=False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pingouin's own use of a deprecated pandas argument
        expected = pingouin.rm_anova(
            data, dv="value", within="prompt_variant", subject="agent_id", correction=True
        )
    (row,) = prompt_variant_sensitivity(scores).rows(named=True)
    assert row["statistic"] == pytest.approx(float(expected["F"].iloc[0]))
    p_column = "p_GG_corr" if "p_GG_corr" in expected else "p-GG-corr"
    assert row["p"] == pytest.approx(float(expected[p_column].iloc[0]))


def test_repeated_measures_beat_independent_groups_on_the_same_effect():
    """The same planted wording effect, tested with and without the respondents' pairing."""
    scores = _scores(variant_effect=0.2, seed=1, noise=0.2)
    (repeated,) = prompt_variant_sensitivity(scores).rows(named=True)
    rotated = scores.with_columns(
        episode_id=pl.col("agent_id") * 10 + pl.col("prompt_variant")
    )  # every administration a different respondent, as in design="rotate"
    (independent,) = prompt_variant_sensitivity(rotated).rows(named=True)
    assert (independent["design"], independent["test"]) == ("independent", "anova")
    assert repeated["p"] < 1e-4 and independent["p"] > 1000 * repeated["p"]
    (kruskal,) = prompt_variant_sensitivity(rotated, method="kruskal").rows(named=True)
    assert kruskal["test"] == "kruskal"


@pytest.mark.parametrize("method", ["anova", "rank"])
def test_no_prompt_variant_effect_is_not_detected(method):
    (row,) = prompt_variant_sensitivity(_scores(seed=3), method=method).rows(named=True)
    assert row["p"] > 0.05


def test_prompt_variants_without_variance_within_give_a_reason():
    scores = _scores().with_columns(value=pl.col("prompt_variant").cast(pl.Float64))
    (row,) = prompt_variant_sensitivity(scores).rows(named=True)
    assert row["max_difference"] == 2.0 and row["p"] is None
    assert "no residual variance" in row["reason"]
    rotated = scores.with_columns(episode_id=pl.col("agent_id") * 10 + pl.col("prompt_variant"))
    (row,) = prompt_variant_sensitivity(rotated).rows(named=True)
    assert "no variance within groups" in row["reason"]
    (single,) = prompt_variant_sensitivity(scores.filter(pl.col("prompt_variant") == 1)).rows(
        named=True
    )
    assert single["n_variants"] == 1 and "at least 2" in single["reason"]


def test_prompt_variant_contrasts_estimate_each_wording_against_the_reference():
    out = prompt_variant_contrasts(_scores(variant_effect=0.5)).sort("variant")
    assert out["variant"].to_list() == [1, 2] and set(out["reference"]) == {0}
    assert set(out["design"]) == {"paired"} and set(out["test"]) == {"paired t"}
    one, two = out.rows(named=True)
    assert one["ci_low"] < 0 < one["ci_high"]
    assert two["ci_low"] < 0.5 < two["ci_high"] and two["p"] < 1e-6
    holm = multipletests(out["p"].to_list(), method="holm")[1]
    assert out["p_holm"].to_list() == pytest.approx(list(holm))
    against_two = prompt_variant_contrasts(_scores(variant_effect=0.5), reference=2)
    assert against_two["difference"].to_list() == pytest.approx([-two["difference"], -0.5], abs=0.2)


def test_bias_functions_need_the_score_columns_and_a_known_method():
    with pytest.raises(ValueError, match="option_order"):
        option_order_asymmetry(_scores().drop("option_order"))
    with pytest.raises(ValueError, match="method"):
        prompt_variant_sensitivity(_scores(), method="t")  # type: ignore[arg-type]


# --- refusals ------------------------------------------------------------------------------


def test_refusal_rate_counts_invalid_answers_by_reason():
    measurements = pl.DataFrame(
        {
            "instrument": ["phq-9"] * 10 + ["gad-7"] * 5,
            "agent_id": [1] * 5 + [2] * 5 + [1] * 5,
            "valid": [1, 1, 1, 0, 0, 1, 1, 1, 1, 0] + [1] * 5,
            "reason": [None, None, None, "refusal", "refusal", None, None, None, None, "timeout"]
            + [None] * 5,
        }
    )
    out = refusal_rate(measurements)
    assert out.columns == [
        "instrument",
        "n",
        "n_invalid",
        "share_invalid",
        "n_refusal",
        "n_unparseable",
        "n_out_of_range",
        "n_empty",
        "n_timeout",
    ]
    assert out.rows() == [("gad-7", 5, 0, 0.0, 0, 0, 0, 0, 0), ("phq-9", 10, 3, 0.3, 2, 0, 0, 0, 1)]
    per_agent = refusal_rate(measurements, by=["instrument", "agent_id"])
    assert per_agent.filter(pl.col("instrument") == "phq-9")["share_invalid"].to_list() == [
        0.4,
        0.2,
    ]
    overall = refusal_rate(measurements.drop("reason"), by=[])
    assert overall.rows() == [(15, 3, 0.2)]
