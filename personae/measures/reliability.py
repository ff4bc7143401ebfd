"""Reliability statistics over simulated respondents, and refusal rates.

The response-bias tests (option order, prompt wording) live in
:mod:`personae.measures.response_bias` and are re-exported here.

The coefficients come from well-kept libraries: Cronbach's alpha and the ICC
from pingouin, the one-factor model behind McDonald's omega from statsmodels,
the tests from scipy. They are imported inside the functions, because pingouin
alone takes seconds to import.

Simulated respondents often answer constantly. Nothing here raises on such
data: a coefficient or test that cannot be computed is null, with a ``reason``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import polars as pl

from personae.measures.instruments import Instrument
from personae.measures.response_bias import (
    option_order_asymmetry,
    prompt_variant_contrasts,
    prompt_variant_sensitivity,
)
from personae.measures.scoring import check_measurements, keyed_answers

__all__ = [
    "INVALID_REASONS",
    "RESPONDENT",
    "Coefficient",
    "cronbach_alpha",
    "icc",
    "omega_total",
    "option_order_asymmetry",
    "prompt_variant_contrasts",
    "prompt_variant_sensitivity",
    "refusal_rate",
    "reliability",
]

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

#: The columns identifying one simulated respondent at one occasion.
RESPONDENT = ("episode_id", "agent_id", "occasion")
#: The reasons an answer can be invalid, always counted by :func:`refusal_rate`.
INVALID_REASONS = ("refusal", "unparseable", "out_of_range", "empty")


class Coefficient(NamedTuple):
    """A reliability coefficient, or why it could not be computed.

    Attributes:
        value: The coefficient, or ``None``.
        ci_low: Lower bound of its confidence interval, where one is computed.
        ci_high: Upper bound of its confidence interval, where one is computed.
        n_respondents: Complete cases used.
        n_items: Items (columns).
        reason: Why ``value`` is ``None``; ``None`` when it is not.
    """

    value: float | None
    ci_low: float | None
    ci_high: float | None
    n_respondents: int
    n_items: int
    reason: str | None = None


def cronbach_alpha(wide: pl.DataFrame | pd.DataFrame, *, ci: float = 0.95) -> Coefficient:
    """Cronbach's alpha of a respondents x items table, with Feldt's confidence interval.

    Rows with a missing answer are dropped first (complete cases), so the
    interval uses the number of respondents actually scored. Computed by
    :func:`pingouin.cronbach_alpha`, which rounds the interval to 3 decimals.

    Args:
        wide: One row per respondent, one numeric column per item (keyed values).
        ci: Confidence level of the interval.

    Returns:
        The coefficient; ``value`` is ``None`` with a ``reason`` for fewer than
        2 items, fewer than 3 complete respondents, or a constant total score.

    Example:
        >>> import polars as pl
        >>> wide = pl.DataFrame({"a": [1, 2, 3, 4], "b": [2, 2, 3, 5], "c": [1, 3, 3, 4]})
        >>> round(cronbach_alpha(wide).value, 3)
        0.947
    """
    import numpy as np

    x, columns = _complete_cases(wide)
    n, k = x.shape
    reason = _too_small(n, k, min_items=2)
    if reason is None and np.ptp(x.sum(axis=1)) == 0:
        reason = "no variance in the total score (every respondent has the same total)"
    if reason is not None:
        return Coefficient(None, None, None, n, k, reason)
    import pandas as pd
    import pingouin

    alpha, (low, high) = pingouin.cronbach_alpha(pd.DataFrame(x, columns=columns), ci=ci)
    return Coefficient(float(alpha), float(low), float(high), n, k)


def omega_total(wide: pl.DataFrame | pd.DataFrame) -> Coefficient:
    """McDonald's omega-total of a respondents x items table from a one-factor model.

    ``omega = (sum of loadings)^2 / ((sum of loadings)^2 + sum of uniquenesses)``,
    with the loadings of one factor fitted to the items' correlation matrix by
    iterated principal-axis factoring run to convergence (the unweighted least
    squares solution that R's ``psych::fa`` calls minres), via
    :class:`statsmodels.multivariate.factor.Factor`. Being on the correlation
    matrix, it is the reliability of the standardised sum, as in ``psych::omega``.
    Complete cases only.

    Args:
        wide: One row per respondent, one numeric column per item (keyed values).

    Returns:
        The coefficient (no interval); ``value`` is ``None`` with a ``reason`` for
        fewer than 3 items (one factor is not identified), fewer than 3 complete
        respondents, an item without variance, a failed fit, or a Heywood case
        (an item's communality above 1).
    """
    import numpy as np

    x, columns = _complete_cases(wide)
    n, k = x.shape
    reason = _too_small(n, k, min_items=3)
    if reason is None:
        constant = [c for c, sd in zip(columns, x.std(axis=0), strict=True) if sd == 0]
        if len(constant) == k:
            reason = "no item has any variance (every respondent answered alike)"
        elif constant:
            reason = f"item(s) {', '.join(constant)} have no variance"
    if reason is not None:
        return Coefficient(None, None, None, n, k, reason)
    loadings, uniqueness, reason = _one_factor(np.corrcoef(x, rowvar=False), n)
    if reason is None and uniqueness.min() < -1e-6:
        worst = columns[int(uniqueness.argmin())]
        reason = f"Heywood case: item {worst} has a communality above 1"
    if reason is not None:
        return Coefficient(None, None, None, n, k, reason)
    common = float(loadings.sum()) ** 2
    return Coefficient(common / (common + float(uniqueness.clip(min=0).sum())), None, None, n, k)


def _one_factor(corr: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, str | None]:
    import numpy as np
    from statsmodels.multivariate.factor import Factor

    # Squared multiple correlations start the iteration; a singular matrix has none.
    for smc in (True, False):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit = Factor(corr=corr, n_factor=1, method="pa", smc=smc, nobs=n).fit(
                    maxiter=5000, tol=1e-9
                )
        except np.linalg.LinAlgError:
            continue
        except ValueError as exc:
            return np.empty(0), np.empty(0), f"the one-factor model failed: {exc}"
        loadings, uniqueness = np.asarray(fit.loadings)[:, 0], np.asarray(fit.uniqueness)
        if np.isfinite(loadings).all() and np.isfinite(uniqueness).all():
            return loadings, uniqueness, None
    return np.empty(0), np.empty(0), "the one-factor model failed (singular correlation matrix)"


def _complete_cases(wide: Any) -> tuple[np.ndarray, list[str]]:
    import numpy as np

    if isinstance(wide, pl.DataFrame):
        columns = list(wide.columns)
        x = wide.select(pl.all().cast(pl.Float64)).to_numpy()
    else:
        columns = [str(c) for c in wide.columns]
        x = np.asarray(wide.to_numpy(dtype=float, na_value=np.nan), dtype=float)
    x = x.reshape(len(x), len(columns))
    return x[~np.isnan(x).any(axis=1)], columns


def _too_small(n: int, k: int, *, min_items: int) -> str | None:
    if k < min_items:
        return f"{k} item(s); at least {min_items} are needed"
    if n < 3:
        return f"{n} complete respondent(s); at least 3 are needed"
    return None


def reliability(
    instrument: Instrument,
    measurements: pl.DataFrame,
    respondent: Sequence[str] = RESPONDENT,
) -> pl.DataFrame:
    """Internal consistency of every scale across simulated respondents.

    Uses keyed (reverse-scored) valid answers and, per scale, the respondents
    who answered all of its items.

    Args:
        instrument: The instrument administered.
        measurements: One row per answer: ``item``, ``value``, ``valid`` and the
            ``respondent`` columns (an ``instrument`` column, if present, is
            filtered to this instrument).
        respondent: The columns identifying one respondent; each may answer an
            item once. Add ``prompt_variant`` and ``option_order`` when each
            respondent was administered several versions.

    Returns:
        One row per scale: ``instrument``, ``level``, ``scale``,
        ``n_respondents``, ``n_items``, ``alpha``, ``alpha_ci_low``,
        ``alpha_ci_high``, ``omega_total`` and ``reason`` (why a coefficient is
        null, prefixed by its name when only one is).

    Raises:
        ValueError: A column is missing, an item is answered twice by one
            respondent, or an answer lies outside the option range.
    """
    respondent = list(respondent)
    answers = keyed_answers(instrument, check_measurements(instrument, measurements, respondent))
    rows = []
    for scale in instrument.scales():
        sub = answers.filter(pl.col("item").is_in(scale.items))
        if sub.height:
            wide = sub.pivot(on="item", index=respondent, values="value")
            wide = wide.with_columns(
                pl.lit(None, dtype=pl.Float64).alias(i)
                for i in scale.items
                if i not in wide.columns
            ).select(scale.items)
        else:
            wide = pl.DataFrame(schema=dict.fromkeys(scale.items, pl.Float64))
        alpha, omega = cronbach_alpha(wide), omega_total(wide)
        rows.append(
            {
                "instrument": instrument.name,
                "level": scale.level,
                "scale": scale.scale,
                "n_respondents": alpha.n_respondents,
                "n_items": len(scale.items),
                "alpha": alpha.value,
                "alpha_ci_low": alpha.ci_low,
                "alpha_ci_high": alpha.ci_high,
                "omega_total": omega.value,
                "reason": _reasons(alpha=alpha.reason, omega_total=omega.reason),
            }
        )
    return pl.DataFrame(
        rows,
        schema={
            "instrument": pl.String,
            "level": pl.String,
            "scale": pl.String,
            "n_respondents": pl.Int64,
            "n_items": pl.Int64,
            "alpha": pl.Float64,
            "alpha_ci_low": pl.Float64,
            "alpha_ci_high": pl.Float64,
            "omega_total": pl.Float64,
            "reason": pl.String,
        },
    )


def _reasons(**reasons: str | None) -> str | None:
    given = {k: v for k, v in reasons.items() if v}
    if not given:
        return None
    if len(set(given.values())) == 1 and len(given) == len(reasons):
        return next(iter(given.values()))
    return "; ".join(f"{k}: {v}" for k, v in given.items())


def _require(frame: pl.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"the frame lacks column(s) {missing}.")


def refusal_rate(
    measurements: pl.DataFrame, *, by: Sequence[str] = ("instrument",)
) -> pl.DataFrame:
    """How often answers were invalid, and why.

    Args:
        measurements: One row per answer with ``valid`` (0/1), the ``by``
            columns and, optionally, ``reason`` (why an invalid answer is
            invalid: ``refusal``, ``unparseable``, ``out_of_range``, ``empty``, ...).
        by: Grouping columns, e.g. ``["instrument", "agent_id"]``; empty for one row.

    Returns:
        Per group: ``n``, ``n_invalid``, ``share_invalid`` and, with a ``reason``
        column, ``n_<reason>`` for the four standard reasons and any other
        reason found.

    Example:
        >>> m = pl.DataFrame({"instrument": ["phq-9"] * 4, "valid": [1, 0, 0, 1],
        ...                   "reason": [None, "refusal", "empty", None]})
        >>> refusal_rate(m)["share_invalid"].to_list()
        [0.5]
    """
    by = list(by)
    _require(measurements, ["valid", *by])
    invalid = pl.col("valid") == 0
    aggs = [pl.len().cast(pl.Int64).alias("n"), invalid.sum().cast(pl.Int64).alias("n_invalid")]
    if "reason" in measurements.columns:
        found = measurements.filter(invalid)["reason"].drop_nulls().unique().to_list()
        reasons = [*INVALID_REASONS, *sorted(str(r) for r in found if r not in INVALID_REASONS)]
        aggs += [
            (invalid & (pl.col("reason") == r)).sum().cast(pl.Int64).alias(f"n_{r}")
            for r in reasons
        ]
    out = measurements.group_by(by).agg(aggs).sort(by) if by else measurements.select(aggs)
    return out.with_columns((pl.col("n_invalid") / pl.col("n")).alias("share_invalid")).select(
        *by, "n", "n_invalid", "share_invalid", pl.exclude(*by, "n", "n_invalid", "share_invalid")
    )


# Shrout & Fleiss (1979) names and descriptions of pingouin's ICC types.
_SHROUT_FLEISS = {
    "ICC(1,1)": ("ICC(1,1)", "single rater, one-way random effects"),
    "ICC(A,1)": ("ICC(2,1)", "single rater, two-way random effects, absolute agreement"),
    "ICC(C,1)": ("ICC(3,1)", "single rater, two-way mixed effects, consistency"),
    "ICC(1,k)": ("ICC(1,k)", "mean of k raters, one-way random effects"),
    "ICC(A,k)": ("ICC(2,k)", "mean of k raters, two-way random effects, absolute agreement"),
    "ICC(C,k)": ("ICC(3,k)", "mean of k raters, two-way mixed effects, consistency"),
}
# pingouin before 0.7 names the types ICC1 ... ICC3k (and before 0.6 the interval "CI95%").
_PINGOUIN_NAMES = dict(
    zip(("ICC1", "ICC2", "ICC3", "ICC1k", "ICC2k", "ICC3k"), _SHROUT_FLEISS, strict=True)
)


def icc(
    frame: pl.DataFrame,
    targets: str,
    raters: str,
    ratings: str,
    *,
    nan_policy: Literal["raise", "omit"] = "raise",
) -> pl.DataFrame:
    """Intraclass correlations (all six Shrout & Fleiss forms) via :func:`pingouin.intraclass_corr`.

    Args:
        frame: Long format, one rating per row.
        targets: Column of what is rated (e.g. agent).
        raters: Column of who or what rates (e.g. replicate, occasion).
        ratings: Column of the ratings (e.g. a scale score).
        nan_policy: ``"omit"`` drops targets with a missing rating.

    Returns:
        One row per form: ``type`` (pingouin 0.7's name, e.g. ``"ICC(A,1)"``,
        whatever the installed version calls it), ``shrout_fleiss`` (e.g.
        ``"ICC(2,1)"``), ``description``, ``icc``, ``f``, ``df1``, ``df2``, ``p``,
        ``ci_low``, ``ci_high`` (95%).

    Raises:
        ValueError: pingouin refused the data (too few targets or raters,
            an unbalanced design, missing ratings with ``nan_policy="raise"``).
    """
    import pandas as pd
    import pingouin

    data = pd.DataFrame(frame.select(targets, raters, ratings).to_dict(as_series=False))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = pingouin.intraclass_corr(
                data=data, targets=targets, raters=raters, ratings=ratings, nan_policy=nan_policy
            )
    except AssertionError as exc:
        raise ValueError(f"icc: {exc}") from None
    rows = []
    for record in table.to_dict("records"):
        name = _PINGOUIN_NAMES.get(str(record["Type"]), str(record["Type"]))
        shrout_fleiss, description = _SHROUT_FLEISS.get(name, (name, ""))
        low, high = record["CI95"] if "CI95" in record else record["CI95%"]
        rows.append(
            {
                "type": name,
                "shrout_fleiss": shrout_fleiss,
                "description": description,
                "icc": float(record["ICC"]),
                "f": float(record["F"]),
                "df1": int(record["df1"]),
                "df2": int(record["df2"]),
                "p": float(record["pval"]),
                "ci_low": float(low),
                "ci_high": float(high),
            }
        )
    return pl.DataFrame(rows)
