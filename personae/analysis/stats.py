"""The statistical methods the analyses share, one implementation each.

Every study analysis (debate, group, cohort) and every method analysis (drift,
agreement) computes its tests and intervals here, so one Welch test, one
Pearson correlation and one t-interval serve them all. The numbers come from
scipy and statsmodels (imported inside the functions that need them); what is
written here is only what those libraries do not offer as one call: the
guards for too little data (which return ``None`` and say why instead of
raising or returning NaN), the vectorised t-interval over a frame's rows, the
fixed-effects ("within") transform, and the descriptive indices of a
distribution (Gini, normalised entropy, Sarle's bimodality coefficient,
Esteban-Ray polarisation).

Example:
    >>> welch([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]).estimate
    -3.0
    >>> round(t_critical(3), 3)
    4.303
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np
import polars as pl

from personae.analysis.frames import finite

#: Polarisation sensitivity of the Esteban-Ray index (the largest value their axioms allow).
ESTEBAN_RAY_ALPHA = 1.6
#: Sarle's bimodality coefficient above this (the value of a uniform distribution) hints at bimodality.
BIMODALITY_THRESHOLD = 5 / 9


class Estimate(NamedTuple):
    """An estimate with its confidence interval and two-sided p-value (each ``None`` if unknown).

    Attributes:
        estimate: The point estimate (a difference, a coefficient).
        ci_low: Lower bound of the confidence interval.
        ci_high: Upper bound.
        p_value: Two-sided p-value of ``estimate = 0``.
        note: Why part of it is missing, or ``None``.
    """

    estimate: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    note: str | None = None


class Correlation(NamedTuple):
    """A Pearson correlation with its test.

    Attributes:
        n: Complete pairs used.
        r: Pearson r, or ``None`` (see ``reason``).
        p: Two-sided p-value of r = 0.
        ci_low: Lower bound of the 95% confidence interval (Fisher z).
        ci_high: Upper bound of the 95% confidence interval.
        reason: Why ``r`` is ``None``.
    """

    n: int
    r: float | None
    p: float | None
    ci_low: float | None
    ci_high: float | None
    reason: str | None


# --- descriptives and t-intervals ---------------------------------------------------------------


def mean(values: Sequence[float] | np.ndarray) -> float | None:
    """The arithmetic mean, or ``None`` for no values."""
    array = np.asarray(values, dtype=float)
    return float(array.mean()) if array.size else None


def sd(values: Sequence[float] | np.ndarray) -> float | None:
    """The sample standard deviation (``ddof=1``), or ``None`` for fewer than two values."""
    array = np.asarray(values, dtype=float)
    return float(array.std(ddof=1)) if array.size >= 2 else None


def t_critical(n: int, confidence: float = 0.95) -> float | None:
    """The two-sided Student t quantile for a mean of ``n`` values (``n - 1`` df).

    Returns:
        ``scipy.stats.t.ppf(0.5 + confidence / 2, n - 1)``, or ``None`` for ``n < 2``.
    """
    if n < 2:
        return None
    from scipy.stats import t

    return float(t.ppf(0.5 + confidence / 2, n - 1))


def t_intervals(
    means: Iterable[float | None],
    sds: Iterable[float | None],
    counts: Iterable[int | None],
    confidence: float = 0.95,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Student t intervals and one-sample p-values of many means from their SD and count.

    For each mean, ``mean -/+ t(n - 1) * sd / sqrt(n)`` and the two-sided p of
    ``mean = 0``, elementwise. NaN where ``n < 2`` or the SD is missing; an SD
    of 0 gives a zero-width interval.

    Returns:
        ``(ci_low, ci_high, p)`` as float arrays.

    Example:
        Shifts 1, 2 and 3 (mean 2, SD 1) give 2 -/+ 4.303 / sqrt(3):

        >>> low, high, _ = t_intervals([2.0], [1.0], [3])
        >>> round(float(low[0]), 3), round(float(high[0]), 3)
        (-0.484, 4.484)
    """
    from scipy.stats import t

    m = np.array([np.nan if v is None else v for v in means], dtype=float)
    s = np.array([np.nan if v is None else v for v in sds], dtype=float)
    n = np.array([np.nan if v is None else v for v in counts], dtype=float)
    usable = n >= 2
    df = np.where(usable, n - 1, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        se = s / np.sqrt(n)
        half = t.ppf(0.5 + confidence / 2, df) * se
        p = 2 * t.sf(np.abs(m / se), df)
    return m - half, m + half, p


def with_t_interval(
    frame: pl.DataFrame,
    mean: str,
    sd: str,
    n: str = "n",
    *,
    confidence: float = 0.95,
    low: str = "ci_low",
    high: str = "ci_high",
) -> pl.DataFrame:
    """``frame`` with the t-interval (:func:`t_intervals`) of each row's mean as two columns.

    Args:
        frame: One row per group with its mean, SD and count.
        mean: The column of means.
        sd: The column of SDs.
        n: The column of counts.
        confidence: The interval's coverage.
        low: Name of the lower-bound column.
        high: Name of the upper-bound column.

    Returns:
        ``frame`` plus ``low`` and ``high`` (null for fewer than two values).
    """
    lows, highs, _ = t_intervals(
        frame[mean].cast(pl.Float64).to_list(),
        frame[sd].cast(pl.Float64).to_list(),
        frame[n].to_list(),
        confidence,
    )
    return frame.with_columns(
        pl.Series(low, lows, dtype=pl.Float64).fill_nan(None),
        pl.Series(high, highs, dtype=pl.Float64).fill_nan(None),
    )


# --- two groups ---------------------------------------------------------------------------------


def welch(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> Estimate:
    """``mean(a) - mean(b)`` with Welch's t-test and its 95% CI (``scipy.stats.ttest_ind``).

    Welch-Satterthwaite degrees of freedom: no equal-variance assumption.

    Returns:
        The difference, CI and p; with an empty arm everything is ``None``,
        with fewer than 2 values in an arm only the difference is given, and
        with no variance in either arm the CI is the difference itself and p
        is ``None``. ``note`` says which.
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.size == 0 or y.size == 0:
        return Estimate(None, note="an arm is empty")
    diff = float(x.mean() - y.mean())
    if x.size < 2 or y.size < 2:
        return Estimate(diff, note="fewer than 2 units in an arm")
    if x.var() == 0 and y.var() == 0:
        return Estimate(diff, diff, diff, None, "no variance within arms")
    from scipy.stats import ttest_ind

    test = ttest_ind(x, y, equal_var=False)
    low, high = test.confidence_interval(0.95)
    return Estimate(diff, finite(low), finite(high), finite(test.pvalue))


# --- correlations -------------------------------------------------------------------------------


def pearson(x: Iterable[Any], y: Iterable[Any]) -> Correlation:
    """Pearson r over complete pairs with its p-value and 95% CI (:func:`scipy.stats.pearsonr`).

    Pairs where either value is missing or not finite are left out.

    Returns:
        The correlation; ``r`` is ``None`` with fewer than 3 pairs or no
        variance, and the CI with fewer than 4 pairs.
    """
    xs_in = x.to_list() if isinstance(x, pl.Series) else list(x)
    ys_in = y.to_list() if isinstance(y, pl.Series) else list(y)
    pairs = [
        (a, b)
        for a, b in zip(xs_in, ys_in, strict=True)
        if finite(a) is not None and finite(b) is not None
    ]
    n = len(pairs)
    if n < 3:
        return Correlation(n, None, None, None, None, f"fewer than 3 pairs ({n})")
    xs, ys = zip(*pairs, strict=True)
    if len(set(xs)) == 1 or len(set(ys)) == 1:
        return Correlation(n, None, None, None, None, "no variance")
    from scipy.stats import pearsonr

    result = pearsonr(xs, ys)
    low, high = result.confidence_interval(0.95) if n > 3 else (None, None)
    return Correlation(
        n, finite(result.statistic), finite(result.pvalue), finite(low), finite(high), None
    )


def correlation_test(r: float, df: int) -> dict[str, float | None]:
    """t-test p and Fisher-z 95% CI of a (partial) correlation with ``df`` residual df.

    ``t = r sqrt(df / (1 - r^2))`` on ``df`` degrees of freedom and
    ``tanh(atanh(r) -/+ 1.96 / sqrt(df - 1))``: for a plain Pearson r of
    ``n`` pairs (``df = n - 2``) the same as :func:`scipy.stats.pearsonr`.

    Returns:
        ``r`` (clipped to [-1, 1]), ``ci_low``, ``ci_high``, ``p_value``.
    """
    from scipy.stats import norm, t

    r = max(-1.0, min(1.0, r))
    clipped = max(-0.999999999, min(0.999999999, r))
    statistic = clipped * math.sqrt(df / (1 - clipped**2))
    half = float(norm.ppf(0.975)) / math.sqrt(df - 1)
    z = math.atanh(clipped)
    return {
        "r": r,
        "ci_low": math.tanh(z - half),
        "ci_high": math.tanh(z + half),
        "p_value": float(2 * t.sf(abs(statistic), df)),
    }


def fisher_difference(
    a: float | None, df_a: int | None, b: float | None, df_b: int | None
) -> tuple[float | None, float | None]:
    """z-test of two independent correlations: ``(z, two-sided p)``.

    ``z = (atanh(a) - atanh(b)) / sqrt(1/(df_a - 1) + 1/(df_b - 1))``, where
    ``df`` is ``n - 2`` for a Pearson r (so ``df - 1 = n - 3``, Fisher's
    variance). ``(None, None)`` when either side is missing or ``df < 2``.
    """
    if a is None or b is None or df_a is None or df_b is None or df_a < 2 or df_b < 2:
        return None, None
    from scipy.stats import norm

    clip = 0.999999
    z = (math.atanh(max(-clip, min(clip, a))) - math.atanh(max(-clip, min(clip, b)))) / math.sqrt(
        1 / (df_a - 1) + 1 / (df_b - 1)
    )
    return z, float(2 * norm.sf(abs(z)))


# --- fixed effects ------------------------------------------------------------------------------


def demean(values: np.ndarray, groups: Sequence[np.ndarray], tol: float = 1e-11) -> np.ndarray:
    """Residuals of ``values`` (rows x columns) on the dummies of every grouping in ``groups``.

    The fixed-effects ("within") transform: with one grouping its means are
    subtracted (exact); with several (unit and day) the means are subtracted in
    turn until nothing moves (alternating projections, as reghdfe and fixest do).

    Args:
        values: One row per observation.
        groups: Integer codes ``0..k-1`` per observation, one array per grouping.
        tol: Stop when no mean moves by more than ``tol`` times the largest value.

    Example:
        >>> demean(np.array([[1.0], [3.0], [5.0]]), [np.array([0, 0, 1])]).ravel().tolist()
        [-1.0, 1.0, 0.0]
    """
    out = np.array(values, dtype=float, copy=True)
    counts = [np.maximum(np.bincount(g), 1) for g in groups]
    scale = max(1.0, float(np.abs(out).max(initial=0.0)))
    for _ in range(1 if len(groups) == 1 else 100_000):
        moved = 0.0
        for codes, count in zip(groups, counts, strict=True):
            for j in range(out.shape[1]):
                means = np.bincount(codes, weights=out[:, j], minlength=count.size) / count
                out[:, j] -= means[codes]
                moved = max(moved, float(np.abs(means).max(initial=0.0)))
        if moved <= tol * scale:
            break
    return out


def dummy_rank(groups: Sequence[np.ndarray]) -> int:
    """Rank of the dummies of one or two groupings together: the degrees of freedom they take.

    One grouping: its number of groups. Two (units and days): both numbers less
    the connected components of the graph linking each unit to the days it was
    seen on (one per episode when every unit shares a day with another).

    Raises:
        ValueError: More than two groupings.

    Example:
        >>> dummy_rank([np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1])])
        3
    """
    if len(groups) == 1:
        return int(groups[0].max()) + 1 if groups[0].size else 0
    if len(groups) != 2:
        raise ValueError(f"dummy_rank takes one or two groupings, got {len(groups)}")
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    first, second = groups
    n_first, n_second = int(first.max()) + 1, int(second.max()) + 1
    size = n_first + n_second
    graph = coo_matrix((np.ones(first.size), (first, second + n_first)), shape=(size, size))
    components, _ = connected_components(graph, directed=False)
    return n_first + n_second - int(components)


def fixed_effects_slope(
    y: np.ndarray,
    x: np.ndarray,
    effects: Sequence[np.ndarray],
    clusters: np.ndarray,
    *,
    nested: int = 0,
) -> Estimate:
    """Slope of ``y`` on ``x`` with the ``effects`` absorbed, cluster-robust by ``clusters``.

    The dummies are absorbed (:func:`demean`) rather than estimated, which
    gives the same coefficient and residuals with a one-column regression
    (statsmodels OLS). Errors are cluster-robust (the CR0 sandwich) with the
    CR1 small-sample factor ``G/(G-1) * (N-1)/(N-K)``, where ``K`` is 1 plus
    the rank of the dummies less ``nested`` (dummies nested in the clusters,
    e.g. the units' own effects when clustering by unit, which fixest and
    Stata do not count), and the CI and p use t with ``G - 1`` df.

    Args:
        y: The outcome, one value per observation.
        x: The regressor.
        effects: One or two groupings (codes) whose effects to absorb.
        clusters: Cluster codes ``0..G-1``.
        nested: How many of the dummies are nested in the clusters.

    Returns:
        The slope, CI and p; ``None`` with fewer than 3 clusters or no
        residual df, a zero-width CI when ``x`` has no variance left.
    """
    n, n_clusters = y.shape[0], int(clusters.max()) + 1 if clusters.size else 0
    rank = dummy_rank(effects)
    k = 1 + rank - nested
    if n_clusters < 3 or n - 1 - rank < 1:
        return Estimate(None, note="too few units for the pooled model")
    import statsmodels.api as sm
    from scipy.stats import t

    within = demean(np.column_stack([y, x]), effects)
    fit = sm.OLS(within[:, 0], within[:, 1:]).fit(
        cov_type="cluster", cov_kwds={"groups": clusters, "use_correction": False}
    )
    slope = float(np.asarray(fit.params)[0])
    variance = float(np.asarray(fit.cov_params())[0, 0])
    se = math.sqrt(max(variance, 0.0) * n_clusters / (n_clusters - 1) * (n - 1) / (n - k))
    if not math.isfinite(se) or se <= 1e-12 * max(1.0, abs(slope)):
        return Estimate(slope, slope, slope, None, "no variance within arms")
    half = float(t.ppf(0.975, n_clusters - 1)) * se
    p = float(2 * t.sf(abs(slope) / se, n_clusters - 1))
    return Estimate(slope, slope - half, slope + half, p)


# --- indices of a distribution ------------------------------------------------------------------


def gini(values: Sequence[float]) -> float | None:
    """The Gini coefficient ``sum_i sum_j |x_i - x_j| / (2 n^2 mean)``; ``None`` if all are 0.

    Example:
        >>> gini([1.0, 0.0, 0.0, 0.0])
        0.75
    """
    n = len(values)
    total = sum(values)
    if n == 0 or total <= 0:
        return None
    return sum(abs(a - b) for a in values for b in values) / (2 * n * total)


def gini_normalised(values: Sequence[float]) -> float | None:
    """The Gini coefficient divided by its maximum for ``n`` values, ``(n - 1) / n``.

    0 when all are equal, 1 when one value holds everything, whatever ``n``;
    ``None`` if all are 0 or ``n < 2``.

    Example:
        >>> gini_normalised([1.0, 0.0, 0.0, 0.0]), gini([1.0, 0.0, 0.0, 0.0])
        (1.0, 0.75)
    """
    n = len(values)
    raw = gini(values)
    if raw is None or n < 2:
        return None
    return raw * n / (n - 1)


def normalised_entropy(shares: Sequence[float]) -> float | None:
    """Shannon entropy of ``shares`` (summing to 1) divided by ``log n``; ``None`` for n < 2."""
    if len(shares) < 2 or sum(shares) <= 0:
        return None
    return -sum(p * math.log(p) for p in shares if p > 0) / math.log(len(shares))


def bimodality_coefficient(values: Sequence[float]) -> float | None:
    """Sarle's bimodality coefficient with the small-sample correction (SAS's formula).

    ``BC = (G1^2 + 1) / (G2 + 3 (n-1)^2 / ((n-2)(n-3)))`` with ``G1`` the
    adjusted sample skewness and ``G2`` the adjusted excess kurtosis. A normal
    sample gives about 1/3, a uniform one 5/9 and two separated clusters up to
    1; values above 5/9 (:data:`BIMODALITY_THRESHOLD`) hint at bimodality.

    Returns:
        The coefficient, or ``None`` with fewer than four values or no spread.
    """
    n = len(values)
    if n < 4:
        return None
    average = sum(values) / n
    m2, m3, m4 = (sum((v - average) ** k for v in values) / n for k in (2, 3, 4))
    if m2 <= 1e-12:
        return None
    g1 = m3 / m2**1.5
    skew = g1 * math.sqrt(n * (n - 1)) / (n - 2)
    excess = (n - 1) / ((n - 2) * (n - 3)) * ((n + 1) * (m4 / m2**2 - 3) + 6)
    return (skew**2 + 1) / (excess + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3)))


def esteban_ray(values: Sequence[float], alpha: float = ESTEBAN_RAY_ALPHA) -> float | None:
    """Esteban-Ray polarisation ``sum_i sum_j p_i^(1+alpha) p_j |y_i - y_j|`` (K = 1).

    ``y`` are the distinct values and ``p`` their shares (Esteban, J.-M., &
    Ray, D. (1994). On the measurement of polarization. *Econometrica*, 62(4),
    819-851). 0 when all agree; on a 1-5 scale two equal camps at 1 and 5 give
    about 0.66 with ``alpha = 1.6``.
    """
    if not values:
        return None
    shares: dict[float, float] = defaultdict(float)
    for v in values:
        shares[v] += 1 / len(values)
    return sum(
        p ** (1 + alpha) * q * abs(y - z) for y, p in shares.items() for z, q in shares.items()
    )


__all__ = [
    "BIMODALITY_THRESHOLD",
    "ESTEBAN_RAY_ALPHA",
    "Correlation",
    "Estimate",
    "bimodality_coefficient",
    "correlation_test",
    "demean",
    "dummy_rank",
    "esteban_ray",
    "fisher_difference",
    "fixed_effects_slope",
    "gini",
    "gini_normalised",
    "mean",
    "normalised_entropy",
    "pearson",
    "sd",
    "t_critical",
    "t_intervals",
    "welch",
    "with_t_interval",
]
