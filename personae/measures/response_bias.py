"""Response biases: do scale scores shift with option order or prompt wording?

Each respondent (one agent in one episode at one occasion) may answer the same
scale in several forms (``design="cross"``: prompt variants x option orders).
Its forms are then repeated measures of one person, and the tests here treat
them so: a paired t-test (or Wilcoxon signed-rank) on each respondent's
difference between option orders or between two wordings, a repeated-measures
ANOVA (or Friedman test) across wordings. Only where respondents did not
answer the forms being compared (``design="rotate"``: one form per
administration) do the tests fall back to independent samples (Welch's t,
Mann-Whitney, one-way ANOVA, Kruskal-Wallis); the ``design`` and ``test``
columns of every result say which was used.

Ignoring the pairing costs a lot of power: a planted wording effect that a
repeated-measures test finds at p = 7e-12 gives p = .003 as independent groups.

scipy runs the t, Wilcoxon and independent tests, pingouin the
repeated-measures ANOVA and the Friedman test; both are imported inside the
functions.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import polars as pl

if TYPE_CHECKING:
    import numpy as np

#: The columns identifying one respondent: one agent in one episode at one occasion.
RESPONDENT = ("episode_id", "agent_id", "occasion")

_SCORE_KEYS = ("instrument", "level", "scale")
_SCORE_COLUMNS = (
    *RESPONDENT,
    *_SCORE_KEYS,
    "value",
    "prompt_variant",
    "option_order",
)
_RESULT_SCHEMA = {
    "design": pl.String,
    "n_respondents": pl.Int64,
    "test": pl.String,
    "statistic": pl.Float64,
    "p": pl.Float64,
    "reason": pl.String,
}
_CI_SCHEMA = {"difference": pl.Float64, "ci_low": pl.Float64, "ci_high": pl.Float64}


def option_order_asymmetry(
    scores: pl.DataFrame,
    *,
    orders: tuple[str, str] = ("forward", "reversed"),
    method: Literal["t", "rank"] = "t",
    ci: float = 0.95,
) -> pl.DataFrame:
    """Does a scale score shift when the response options are listed in reverse?

    **Paired** when respondents answered the scale in both orders: each
    respondent's forward minus reversed score, taken within each prompt variant
    it answered in both orders and averaged over those variants, is tested
    against 0 by a one-sample t-test (``method="t"``, with a confidence
    interval) or the Wilcoxon signed-rank test (``method="rank"``, zero
    differences dropped). **Independent** (every administration a separate
    sample: Welch's t-test or Mann-Whitney U) only when fewer than 2
    respondents answered both orders.

    Args:
        scores: Scale scores with columns ``episode_id``, ``agent_id``,
            ``occasion``, ``instrument``, ``level``, ``scale``, ``value``,
            ``prompt_variant``, ``option_order``. Null values are dropped.
        orders: The ``option_order`` values of forward and of reversed
            administrations; rows with other values are ignored.
        method: ``"t"`` or ``"rank"``.
        ci: Confidence level of the interval of ``difference`` (t tests only).

    Returns:
        One row per instrument and scale: ``n_forward``, ``n_reversed``,
        ``mean_forward``, ``mean_reversed`` (over administrations),
        ``difference`` (forward minus reversed: the mean paired difference, or
        the difference of means when independent), ``ci_low``, ``ci_high``,
        ``design`` (``paired`` or ``independent``), ``n_respondents`` (pairs
        used), ``test`` (``paired t``, ``wilcoxon``, ``welch``,
        ``mann-whitney``), ``statistic``, ``p`` and ``reason`` (why the test is
        null: too few scores, no variance, all paired differences zero).

    Raises:
        ValueError: A column is missing or ``method`` is unknown.
    """
    _check(scores, method, ("t", "rank"))
    forward, reversed_ = orders
    rows = []
    for key, group in _by_scale(scores):
        a = group.filter(pl.col("option_order") == forward)["value"]
        b = group.filter(pl.col("option_order") == reversed_)["value"]
        rows.append(
            {
                **key,
                "n_forward": a.len(),
                "n_reversed": b.len(),
                "mean_forward": a.mean(),
                "mean_reversed": b.mean(),
                **_contrast(group, "option_order", forward, reversed_, method, ci),
            }
        )
    return pl.DataFrame(
        rows,
        schema={
            **dict.fromkeys(_SCORE_KEYS, pl.String),
            "n_forward": pl.Int64,
            "n_reversed": pl.Int64,
            "mean_forward": pl.Float64,
            "mean_reversed": pl.Float64,
            **_CI_SCHEMA,
            **_RESULT_SCHEMA,
        },
    )


def prompt_variant_sensitivity(
    scores: pl.DataFrame, *, method: Literal["anova", "rank", "kruskal"] = "anova"
) -> pl.DataFrame:
    """Does a scale score depend on which wording of the prompt was used?

    Each respondent's score per variant is first averaged over option orders.
    **Repeated measures** over the respondents who answered every variant of
    the scale: :func:`pingouin.rm_anova` (``method="anova"``; with 3 or more
    variants the Greenhouse-Geisser corrected p) or :func:`pingouin.friedman`
    (``method="rank"``). **Independent** groups (every administration a
    separate sample: one-way ANOVA or Kruskal-Wallis, from scipy) only when
    fewer than 2 respondents answered every variant.

    Args:
        scores: Scale scores with the columns listed in
            :func:`option_order_asymmetry`. Null values are dropped.
        method: ``"anova"`` or ``"rank"`` (``"kruskal"`` is the old name of ``"rank"``).

    Returns:
        One row per instrument and scale: ``n_variants``, ``mean_<variant>`` for
        each variant (sorted; over administrations), ``max_difference``
        (largest minus smallest variant mean), ``design`` (``repeated`` or
        ``independent``), ``n_respondents`` (respondents in the
        repeated-measures test), ``test`` (``rm_anova``, ``rm_anova (GG)``,
        ``friedman``, ``anova``, ``kruskal``), ``statistic`` (F, Q or H), ``p``
        and ``reason`` (why the test is null). Use
        :func:`prompt_variant_contrasts` for which wording differs, by how much.

    Raises:
        ValueError: A column is missing or ``method`` is unknown.
    """
    _check(scores, method, ("anova", "rank", "kruskal"))
    rank = method != "anova"
    variants = sorted(
        str(v) for v in scores.filter(pl.col("value").is_not_null())["prompt_variant"].unique()
    )
    rows = []
    for key, group in _by_scale(scores):
        groups = {
            str(k[0]): g["value"].to_numpy()
            for k, g in group.partition_by("prompt_variant", as_dict=True).items()
        }
        means = {v: float(x.mean()) for v, x in groups.items()}
        row: dict[str, Any] = {**key, "n_variants": len(groups)}
        row.update({f"mean_{v}": means.get(v) for v in variants})
        row["max_difference"] = max(means.values()) - min(means.values()) if means else None
        wide = _per_respondent(group, "prompt_variant").drop_nulls()
        if len(groups) >= 2 and wide.height >= 2:
            row.update(_repeated(wide, rank))
        else:
            test = "kruskal" if rank else "anova"
            row.update(design="independent", n_respondents=wide.height)
            row.update(_test(test, *groups.values()))
        rows.append(row)
    return pl.DataFrame(
        rows,
        schema={
            **dict.fromkeys(_SCORE_KEYS, pl.String),
            "n_variants": pl.Int64,
            **{f"mean_{v}": pl.Float64 for v in variants},
            "max_difference": pl.Float64,
            **_RESULT_SCHEMA,
        },
    )


def prompt_variant_contrasts(
    scores: pl.DataFrame,
    *,
    reference: int | None = None,
    method: Literal["t", "rank"] = "t",
    ci: float = 0.95,
) -> pl.DataFrame:
    """How much each wording moves a scale score, against a reference wording.

    For each variant other than ``reference``: each respondent's score in that
    variant minus its score in the reference, within each option order it
    answered in both and averaged over those orders, tested as in
    :func:`option_order_asymmetry` (paired t or Wilcoxon; Welch or
    Mann-Whitney when fewer than 2 respondents answered both wordings). ``p_holm``
    adjusts the p-values of one scale for its several contrasts (Holm).

    Args:
        scores: Scale scores with the columns listed in :func:`option_order_asymmetry`.
        reference: The reference variant; default the lowest.
        method: ``"t"`` or ``"rank"``.
        ci: Confidence level of the interval (t tests only).

    Returns:
        One row per instrument x scale x variant: ``variant``, ``reference``,
        ``difference`` (variant minus reference), ``ci_low``, ``ci_high``,
        ``design``, ``n_respondents``, ``test``, ``statistic``, ``p``,
        ``p_holm``, ``reason``.

    Raises:
        ValueError: A column is missing or ``method`` is unknown.
    """
    _check(scores, method, ("t", "rank"))
    rows = []
    for key, group in _by_scale(scores):
        present = sorted(group["prompt_variant"].unique().to_list())
        base = present[0] if reference is None else reference
        contrasts = [
            {
                **key,
                "variant": v,
                "reference": base,
                **_contrast(group, "prompt_variant", v, base, method, ci),
            }
            for v in present
            if v != base
        ]
        rows.extend(_holm(contrasts))
    return pl.DataFrame(
        rows,
        schema={
            **dict.fromkeys(_SCORE_KEYS, pl.String),
            "variant": pl.Int64,
            "reference": pl.Int64,
            **_CI_SCHEMA,
            **_RESULT_SCHEMA,
            "p_holm": pl.Float64,
        },
    ).select(pl.exclude("reason", "p_holm"), "p_holm", "reason")


# --- shared steps -----------------------------------------------------------------------------


def _check(scores: pl.DataFrame, method: str, allowed: Sequence[str]) -> None:
    if method not in allowed:
        raise ValueError(f"method must be one of {', '.join(map(repr, allowed))}, got {method!r}.")
    missing = [c for c in _SCORE_COLUMNS if c not in scores.columns]
    if missing:
        raise ValueError(f"the frame lacks column(s) {missing}.")


def _by_scale(scores: pl.DataFrame) -> list[tuple[dict[str, Any], pl.DataFrame]]:
    valid = scores.with_columns(pl.col("value").cast(pl.Float64)).filter(
        pl.col("value").is_not_null() & pl.col("value").is_not_nan()
    )
    parts = valid.partition_by(list(_SCORE_KEYS), as_dict=True, maintain_order=True)
    return [(dict(zip(_SCORE_KEYS, k, strict=True)), g) for k, g in parts.items()]


def _per_respondent(group: pl.DataFrame, factor: str) -> pl.DataFrame:
    """Respondents x levels of ``factor``: each cell the mean over the other forms."""
    return (
        group.group_by([*RESPONDENT, factor])
        .agg(pl.col("value").mean())
        .with_columns(pl.col(factor).cast(pl.String))
        .pivot(on=factor, index=list(RESPONDENT), values="value")
    )


def _contrast(
    group: pl.DataFrame, factor: str, a: Any, b: Any, method: str, ci: float
) -> dict[str, Any]:
    """Level ``a`` minus level ``b`` of ``factor``: paired within respondents where possible."""
    other = "prompt_variant" if factor == "option_order" else "option_order"
    keys = [*RESPONDENT, other]
    rows_a = group.filter(pl.col(factor) == a).group_by(keys).agg(pl.col("value").mean())
    rows_b = group.filter(pl.col(factor) == b).group_by(keys).agg(pl.col("value").mean())
    diffs = (
        rows_a.join(rows_b, on=keys, how="inner", nulls_equal=True, suffix="_b")
        .group_by(list(RESPONDENT))
        .agg((pl.col("value") - pl.col("value_b")).mean().alias("d"))["d"]
        .to_numpy()
    )
    if len(diffs) >= 2:
        out = {"design": "paired", "n_respondents": len(diffs)}
        out |= _test("paired t" if method == "t" else "wilcoxon", diffs, ci=ci)
        return out | {"difference": float(diffs.mean())}
    x = group.filter(pl.col(factor) == a)["value"].to_numpy()
    y = group.filter(pl.col(factor) == b)["value"].to_numpy()
    out = {"design": "independent", "n_respondents": len(diffs)}
    out |= _test("welch" if method == "t" else "mann-whitney", x, y, ci=ci)
    both = len(x) and len(y)
    return out | {"difference": float(x.mean() - y.mean()) if both else None}


def _repeated(wide: pl.DataFrame, rank: bool) -> dict[str, Any]:
    """Repeated-measures ANOVA or Friedman test on a complete respondents x variants table."""
    import numpy as np
    import pandas as pd
    import pingouin

    levels = [c for c in wide.columns if c not in RESPONDENT]
    out: dict[str, Any] = {"design": "repeated", "n_respondents": wide.height, "reason": None}
    out |= {"test": "friedman" if rank else "rm_anova", "statistic": None, "p": None}
    values = wide.select(levels).to_numpy()
    within = values - values.mean(axis=1, keepdims=True)
    if np.ptp(within) == 0:
        return out | {"reason": "no variance within respondents; the test is undefined"}
    if np.allclose(within - within.mean(axis=0), 0):
        reason = "every respondent differs alike between variants (no residual variance)"
        return out | {"reason": f"{reason}; the test is undefined (read the means)"}
    long = pd.DataFrame(
        {
            "subject": np.repeat(np.arange(wide.height), len(levels)),
            "variant": np.tile(levels, wide.height),
            "value": values.ravel(),
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if rank:
            record = pingouin.friedman(long, dv="value", within="variant", subject="subject")
            statistic, p = _field(record, "Q"), _field(record, "p_unc", "p-unc")
        else:
            correct = len(levels) > 2
            record = pingouin.rm_anova(
                long, dv="value", within="variant", subject="subject", correction=correct
            )
            statistic = _field(record, "F")
            p = _field(record, "p_GG_corr", "p-GG-corr") if correct else None
            p = p if p is not None else _field(record, "p_unc", "p-unc")
            out["test"] = "rm_anova (GG)" if correct else "rm_anova"
    if statistic is None or p is None:
        return out | {"reason": f"{out['test']} is undefined for these scores"}
    return out | {"statistic": statistic, "p": p}


def _field(table: Any, *names: str) -> float | None:
    """The first row's value of the first column present: pingouin renamed p-unc to p_unc."""
    import math

    for name in names:
        if name in table.columns:
            value = float(table[name].iloc[0])
            return value if math.isfinite(value) else None
    return None


def _test(test: str, *samples: np.ndarray, ci: float = 0.95) -> dict[str, Any]:
    """Run a scipy test; a degenerate case gives a null statistic and p with a reason."""
    import numpy as np
    from scipy import stats

    out: dict[str, Any] = {"test": test, "statistic": None, "p": None, "reason": None}
    out |= {"ci_low": None, "ci_high": None}
    if test in ("paired t", "wilcoxon"):
        (diffs,) = samples
        if len(diffs) < 2:
            out["reason"] = f"{len(diffs)} pair(s); at least 2 are needed"
        elif not np.any(diffs):
            out["reason"] = "every paired difference is zero"
        elif test == "paired t" and np.ptp(diffs) == 0:
            out["reason"] = "every paired difference is the same; the t-test is undefined"
    elif len(samples) < 2:
        out["reason"] = f"{len(samples)} group(s) with scores; at least 2 are needed"
    elif min(len(s) for s in samples) < 2:
        out["reason"] = "a group has fewer than 2 scores"
    elif all(np.ptp(s) == 0 for s in samples):
        out["reason"] = "no variance within groups; the test is undefined (read the means)"
    if out["reason"] is not None:
        return out
    run = {
        "paired t": lambda: stats.ttest_1samp(samples[0], 0.0),
        "wilcoxon": lambda: stats.wilcoxon(samples[0]),
        "welch": lambda: stats.ttest_ind(samples[0], samples[1], equal_var=False),
        "mann-whitney": lambda: stats.mannwhitneyu(samples[0], samples[1]),
        "anova": lambda: stats.f_oneway(*samples),
        "kruskal": lambda: stats.kruskal(*samples),
    }[test]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = run()
        except ValueError as exc:
            return out | {"reason": f"{test} failed: {exc}"}
        if test in ("paired t", "welch"):
            low, high = result.confidence_interval(ci)
            out |= {"ci_low": float(low), "ci_high": float(high)}
    statistic, p = float(result.statistic), float(result.pvalue)
    if np.isfinite(statistic) and np.isfinite(p):
        return out | {"statistic": statistic, "p": p}
    return out | {"reason": f"{test} is undefined for these scores (statistic {statistic})"}


def _holm(contrasts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add ``p_holm``: Holm's step-down adjustment over one scale's contrasts.

    Written out rather than taken from statsmodels' ``multipletests``, which
    runs a full garbage collection on every call (about half a second).
    """
    tested = sorted((c["p"], i) for i, c in enumerate(contrasts) if c["p"] is not None)
    adjusted: dict[int, float] = {}
    running = 0.0
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (len(tested) - rank) * p))
        adjusted[i] = running
    return [c | {"p_holm": adjusted.get(i)} for i, c in enumerate(contrasts)]
