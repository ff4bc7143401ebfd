"""personae.analysis.stats against scipy, statsmodels and textbook values."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from scipy import stats as sp

from personae.analysis import stats

# Anscombe's quartet, data set I: r = 0.816 (Anscombe 1973).
ANSCOMBE_X = [10.0, 8.0, 13.0, 9.0, 11.0, 14.0, 6.0, 4.0, 12.0, 7.0, 5.0]
ANSCOMBE_Y = [8.04, 6.95, 7.58, 8.81, 8.33, 9.96, 7.24, 4.26, 10.84, 4.82, 5.68]


def test_mean_and_sample_sd() -> None:
    values = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]
    assert stats.mean(values) == 5.0
    assert stats.sd(values) == pytest.approx(np.std(values, ddof=1))  # 2.138
    assert stats.mean([]) is None and stats.sd([1.0]) is None


def test_t_critical_matches_the_t_table() -> None:
    assert stats.t_critical(3) == pytest.approx(4.303, abs=5e-4)  # df 2, two-sided 95%
    assert stats.t_critical(31) == pytest.approx(2.042, abs=5e-4)  # df 30
    assert stats.t_critical(11, confidence=0.99) == pytest.approx(sp.t.ppf(0.995, 10))
    assert stats.t_critical(1) is None


def test_t_intervals_are_scipys_one_sample_t() -> None:
    samples = [[1.0, 2.0, 3.0], [0.5, -1.0, 2.5, 4.0, 1.0], [3.0]]
    means = [float(np.mean(s)) for s in samples]
    sds = [float(np.std(s, ddof=1)) if len(s) > 1 else None for s in samples]
    low, high, p = stats.t_intervals(means, sds, [len(s) for s in samples])
    for i, sample in enumerate(samples[:2]):
        test = sp.ttest_1samp(sample, 0.0)
        expected = test.confidence_interval(0.95)
        assert (low[i], high[i]) == (pytest.approx(expected.low), pytest.approx(expected.high))
        assert p[i] == pytest.approx(test.pvalue)
    assert math.isnan(low[2]) and math.isnan(high[2]) and math.isnan(p[2])


def test_with_t_interval_adds_columns_null_for_one_value() -> None:
    frame = pl.DataFrame({"n": [3, 1, 4], "m": [2.0, 5.0, 1.0], "s": [1.0, None, 0.0]})
    out = stats.with_t_interval(frame, "m", "s")
    half = 4.302652729911275 / math.sqrt(3)
    assert out["ci_low"][0] == pytest.approx(2 - half)
    assert out["ci_high"][0] == pytest.approx(2 + half)
    assert out["ci_low"][1] is None and out["ci_high"][1] is None
    assert (out["ci_low"][2], out["ci_high"][2]) == (1.0, 1.0)  # no spread: no width


def test_welch_is_scipys_unequal_variance_t_test() -> None:
    a = [19.1, 22.4, 20.8, 21.5, 23.9, 18.7]
    b = [15.2, 16.8, 25.1, 12.9, 19.3, 14.4, 17.0]
    test = sp.ttest_ind(a, b, equal_var=False)
    interval = test.confidence_interval(0.95)
    result = stats.welch(a, b)
    assert result.estimate == pytest.approx(np.mean(a) - np.mean(b))
    assert result.ci_low == pytest.approx(interval.low)
    assert result.ci_high == pytest.approx(interval.high)
    assert result.p_value == pytest.approx(test.pvalue)
    assert result.note is None


def test_welch_says_why_it_cannot_test() -> None:
    assert stats.welch([], [1.0, 2.0]) == stats.Estimate(None, note="an arm is empty")
    one = stats.welch([3.0], [1.0, 2.0])
    assert one.estimate == 1.5 and one.ci_low is None and "fewer than 2" in (one.note or "")
    flat = stats.welch([2.0, 2.0], [1.0, 1.0])
    assert (flat.estimate, flat.ci_low, flat.ci_high, flat.p_value) == (1.0, 1.0, 1.0, None)


def test_pearson_matches_anscombe_and_scipy() -> None:
    result = stats.pearson(ANSCOMBE_X, ANSCOMBE_Y)
    oracle = sp.pearsonr(ANSCOMBE_X, ANSCOMBE_Y)
    interval = oracle.confidence_interval(0.95)
    assert result.r == pytest.approx(0.816, abs=5e-4)
    assert result.r == pytest.approx(oracle.statistic)
    assert result.p == pytest.approx(oracle.pvalue)
    assert (result.ci_low, result.ci_high) == (
        pytest.approx(interval.low),
        pytest.approx(interval.high),
    )
    assert result.n == 11


def test_pearson_drops_incomplete_pairs_and_names_the_reason() -> None:
    x = pl.Series([1.0, 2.0, None, 4.0, float("nan"), 5.0])
    y = pl.Series([2.0, 1.0, 3.0, 5.0, 1.0, 4.0])
    complete = stats.pearson(x, y)
    assert complete.n == 4
    assert complete.r == pytest.approx(sp.pearsonr([1, 2, 4, 5], [2, 1, 5, 4]).statistic)
    assert stats.pearson([1.0, 2.0], [1.0, 2.0]).reason == "fewer than 3 pairs (2)"
    assert stats.pearson([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]).reason == "no variance"
    assert stats.pearson([1.0, 2.0, 3.0], [1.0, 3.0, 2.0]).ci_low is None  # CI needs 4 pairs


def test_correlation_test_with_n_minus_2_df_is_pearsonr() -> None:
    oracle = sp.pearsonr(ANSCOMBE_X, ANSCOMBE_Y)
    interval = oracle.confidence_interval(0.95)
    out = stats.correlation_test(float(oracle.statistic), len(ANSCOMBE_X) - 2)
    assert out["p_value"] == pytest.approx(oracle.pvalue)
    assert (out["ci_low"], out["ci_high"]) == (
        pytest.approx(interval.low),
        pytest.approx(interval.high),
    )


def test_fisher_difference_of_two_independent_correlations() -> None:
    # r = .6 (n = 50) vs r = .3 (n = 60): z = (atanh .6 - atanh .3) / sqrt(1/47 + 1/57)
    z, p = stats.fisher_difference(0.6, 48, 0.3, 58)
    expected = (math.atanh(0.6) - math.atanh(0.3)) / math.sqrt(1 / 47 + 1 / 57)
    assert z == pytest.approx(expected)  # 1.947
    assert p == pytest.approx(2 * sp.norm.sf(expected))
    assert stats.fisher_difference(None, 10, 0.3, 10) == (None, None)
    assert stats.fisher_difference(0.5, 1, 0.3, 10) == (None, None)


def _dummies(codes: np.ndarray) -> np.ndarray:
    return np.eye(int(codes.max()) + 1)[codes]


def test_demean_gives_the_residuals_on_the_dummies() -> None:
    rng = np.random.default_rng(3)
    units = np.repeat(np.arange(5), 6)
    days = np.tile(np.arange(6), 5)
    keep = rng.random(units.size) > 0.2  # unbalanced: alternating projections must converge
    units, days = units[keep], days[keep]
    values = rng.normal(size=(units.size, 2))
    design = np.column_stack([_dummies(units), _dummies(days)])
    fitted = design @ np.linalg.lstsq(design, values, rcond=None)[0]
    assert stats.demean(values, [units, days]) == pytest.approx(values - fitted, abs=1e-8)
    assert stats.dummy_rank([units, days]) == np.linalg.matrix_rank(design)
    assert stats.dummy_rank([units]) == 5
    with pytest.raises(ValueError, match="one or two groupings"):
        stats.dummy_rank([units, days, units])


def test_fixed_effects_slope_is_statsmodels_with_dummies_and_clustered_errors() -> None:
    import pandas as pd
    import statsmodels.formula.api as smf

    rng = np.random.default_rng(7)
    units = np.repeat(np.arange(8), 5)
    days = np.tile(np.arange(5), 8)
    x = (units % 2).astype(float) * (days >= 2)
    y = 0.8 * x + 0.3 * days + rng.normal(size=units.size) + units * 0.1
    data = pd.DataFrame({"y": y, "x": x, "day": days, "unit": units})
    oracle = smf.ols("y ~ x + C(day)", data).fit(
        cov_type="cluster", cov_kwds={"groups": units}, use_t=True
    )
    low, high = oracle.conf_int().loc["x"]
    result = stats.fixed_effects_slope(y, x, [days], units)
    assert result.estimate == pytest.approx(oracle.params["x"])
    assert (result.ci_low, result.ci_high) == (pytest.approx(low), pytest.approx(high))
    assert result.p_value == pytest.approx(oracle.pvalues["x"])
    two_way = stats.fixed_effects_slope(y, x, [units, days], units, nested=8)
    both = smf.ols("y ~ x + C(unit) + C(day)", data).fit()
    assert two_way.estimate == pytest.approx(both.params["x"])
    assert stats.fixed_effects_slope(y[:10], x[:10], [days[:10]], units[:10]).estimate is None


def test_gini_against_the_sorted_formula() -> None:
    values = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0]
    ordered = sorted(values)
    n = len(values)
    by_rank = 2 * sum((i + 1) * v for i, v in enumerate(ordered)) / (n * sum(values)) - (n + 1) / n
    assert stats.gini(values) == pytest.approx(by_rank)
    assert stats.gini([1.0, 0.0, 0.0, 0.0]) == 0.75
    assert stats.gini_normalised([1.0, 0.0, 0.0, 0.0]) == 1.0
    assert stats.gini([0.0, 0.0]) is None and stats.gini_normalised([2.0]) is None


def test_normalised_entropy_is_scipys_entropy_over_log_n() -> None:
    shares = [0.5, 0.25, 0.125, 0.125]
    assert stats.normalised_entropy(shares) == pytest.approx(sp.entropy(shares) / math.log(4))
    assert stats.normalised_entropy([0.25] * 4) == pytest.approx(1.0)
    assert stats.normalised_entropy([0.5, 0.5, 0.0, 0.0]) == pytest.approx(0.5)
    assert stats.normalised_entropy([1.0]) is None


def test_bimodality_coefficient_from_scipys_unbiased_moments() -> None:
    sample = [1.0, 2.0, 2.0, 3.0, 5.0, 4.0, 1.0, 5.0, 5.0]
    n = len(sample)
    g1, g2 = sp.skew(sample, bias=False), sp.kurtosis(sample, bias=False)
    expected = (g1**2 + 1) / (g2 + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3)))
    assert stats.bimodality_coefficient(sample) == pytest.approx(expected)
    assert stats.bimodality_coefficient([1.0] * 10 + [5.0] * 10) > stats.BIMODALITY_THRESHOLD
    assert stats.bimodality_coefficient([3.0] * 5) is None
    assert stats.bimodality_coefficient([1.0, 2.0, 3.0]) is None


def test_esteban_ray_of_two_camps_and_of_consensus() -> None:
    # Two equal camps at 1 and 5: 2 * 0.5^(1 + 1.6) * 0.5 * 4 (Esteban & Ray 1994, K = 1)
    assert stats.esteban_ray([1.0, 5.0] * 5) == pytest.approx(4 * 0.5**2.6)
    assert stats.esteban_ray([3.0] * 6) == 0
    assert stats.esteban_ray([1.0, 5.0], alpha=1.0) == pytest.approx(2 * 0.5**2 * 0.5 * 4)
    assert stats.esteban_ray([]) is None
