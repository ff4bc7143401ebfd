"""Persuasion in debate experiments: shift toward the opponent, ordinal regression, stance curves.

A *debate* is one complete episode between an agent of role ``participant``
and an ``opponent``; :mod:`personae.studies.debate.frames` reads them
(the condition, the participant's agreement before and after, re-oriented
toward the opponent: higher = closer to the opponent's side). The analysis
mirrors Salvi, Horta Ribeiro, Gallotti & West (2025), On the conversational
persuasiveness of GPT-4, *Nature Human Behaviour*: by default the ordinal
regression is their partial proportional-odds model of post-debate agreement
toward the opponent on the condition, with pre-debate agreement as a factor
with threshold-specific effects (:mod:`personae.studies.debate.models`).

This module is the one to import: it defines the descriptive summaries
(:func:`shift_by_condition`, :func:`trait_moderators`, :func:`stance_curves`)
and re-exports the frames and the models. Every function takes a database
path or a frame returned by :func:`debates` (or :func:`stances` for the
curves) and returns a polars frame; empty input gives an empty frame with the
documented columns. statsmodels, scipy and matplotlib are imported inside the
functions that use them.

Example:
    >>> table = debates("runs/debate.db")  # doctest: +SKIP
    >>> ordinal_regression(table)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from personae.analysis.drift import BIG_FIVE_DOMAINS
from personae.analysis.stats import with_t_interval
from personae.studies.debate.frames import (
    AGREEMENT_HIGH,
    AGREEMENT_LOW,
    CONDITION_ORDER,
    DEBATES_SCHEMA,
    DEMOGRAPHICS,
    PARTICIPANT_ROLE,
    STANCES_SCHEMA,
    STRENGTH_ORDER,
    Debates,
    debates,
    load_debates,
    natural_order,
    sorted_levels,
    stances,
)
from personae.studies.debate.models import (
    MAX_LOG_ODDS,
    MODELS,
    PUBLISHED,
    PUBLISHED_SOURCE,
    ordinal_regression,
    proportional_odds_test,
    published_comparison,
)

__all__ = [
    "AGREEMENT_HIGH",
    "AGREEMENT_LOW",
    "CONDITION_ORDER",
    "DEBATES_SCHEMA",
    "DEMOGRAPHICS",
    "MAX_LOG_ODDS",
    "MODELS",
    "PARTICIPANT_ROLE",
    "PUBLISHED",
    "PUBLISHED_SOURCE",
    "STANCES_SCHEMA",
    "STRENGTH_ORDER",
    "Debates",
    "debates",
    "ordinal_regression",
    "proportional_odds_test",
    "published_comparison",
    "shift_by_condition",
    "stance_curves",
    "stances",
    "trait_moderators",
]

_CI = {"ci_low": pl.Float64, "ci_high": pl.Float64}


# --- summaries ----------------------------------------------------------------------------------


def shift_by_condition(
    data: Debates, by: Sequence[str] = ("opponent", "personalised", "strength")
) -> pl.DataFrame:
    """How often and how far participants moved toward the opponent, per group.

    Args:
        data: A database path or a :func:`debates` frame (a hand-made frame
            needs ``shift``, or ``pre``, ``post`` and ``opponent_side``, and the
            ``by`` columns).
        by: The grouping columns.

    Returns:
        One row per group with a shift: the ``by`` columns, ``n``, ``n_toward``
        (shift > 0), ``share_toward``, ``share_away`` (shift < 0),
        ``mean_shift``, ``sd_shift``, ``ci_low``, ``ci_high`` (95% t-interval
        of the mean; null for one debate).

    Raises:
        ValueError: A ``by`` column is not in the frame.

    Example:
        Shifts 1, 2 and 3 give mean 2 with CI 2 -/+ 4.303 / sqrt(3).
    """
    frame = load_debates(data)
    by = list(by)
    missing = [c for c in by if c not in frame.columns]
    if missing:
        raise ValueError(f"no column {missing} in the debates (columns: {frame.columns})")
    valid = frame.filter(pl.col("shift").is_not_null())
    stats = valid.group_by(by).agg(
        pl.len().alias("n"),
        (pl.col("shift") > 0).sum().alias("n_toward"),
        (pl.col("shift") > 0).mean().alias("share_toward"),
        (pl.col("shift") < 0).mean().alias("share_away"),
        pl.col("shift").mean().alias("mean_shift"),
        pl.col("shift").std().alias("sd_shift"),
    )
    stats = with_t_interval(stats, "mean_shift", "sd_shift").with_columns(
        pl.col("n").cast(pl.Int64), pl.col("n_toward").cast(pl.Int64)
    )
    return natural_order(stats, by)


def trait_moderators(
    data: Debates,
    traits: Sequence[str] = ("agreeableness", "openness"),
    reference: str = "human",
    controls: Sequence[str] = (),
) -> pl.DataFrame:
    """OLS of the shift toward the opponent on each participant trait, controlling for condition.

    Each trait uses the measured domain score where any debate has one, else
    the persona's target (``target_A`` for agreeableness, ...). The condition
    enters as dummies against ``reference`` (or the first condition present).

    Args:
        data: A database path or a :func:`debates` frame.
        traits: Big Five domain names (or their letters).
        reference: The reference condition of the dummies.
        controls: Further numeric columns to control for.

    Returns:
        One row per trait: ``trait``, ``source`` (``measured`` or ``target``),
        ``column``, ``coef`` (change in shift per trait point), ``se``,
        ``ci_low``, ``ci_high`` (95%), ``p``, ``n``, ``r_squared``, ``reason``
        (why the coefficient is null).
    """
    frame = load_debates(data)
    letters = {v: k for k, v in BIG_FIVE_DOMAINS.items()}
    rows = []
    for trait in traits:
        name = BIG_FIVE_DOMAINS.get(trait.upper(), trait.lower())
        column, source = name, "measured"
        if column not in frame.columns or frame[column].is_null().all():
            column, source = f"target_{letters.get(name, '?')}", "target"
        row: dict[str, Any] = {"trait": name, "source": source, "column": column}
        if column not in frame.columns or frame[column].is_null().all():
            rows.append(row | {"source": None, "n": 0, "reason": "no measured or target value"})
            continue
        rows.append(row | _ols_slope(frame, column, reference, list(controls)))
    schema: dict[str, Any] = {"trait": pl.String, "source": pl.String, "column": pl.String}
    schema |= {"coef": pl.Float64, "se": pl.Float64, **_CI, "p": pl.Float64, "n": pl.Int64}
    schema |= {"r_squared": pl.Float64, "reason": pl.String}
    return pl.DataFrame([{c: r.get(c) for c in schema} for r in rows], schema=schema)


def stance_curves(
    data: str | Path | pl.DataFrame, by: Sequence[str] = ("condition",)
) -> pl.DataFrame:
    """Mean stance toward the opponent after each turn, per group, with a 95% CI band.

    Args:
        data: A database path or a :func:`stances` frame.
        by: The grouping columns.

    Returns:
        One row per group x ``index``: the ``by`` columns, ``index``, ``point``
        (the most common point at that index: ``pre``, ``turn``, ``post``),
        ``n``, ``mean_toward``, ``sd_toward``, ``ci_low``, ``ci_high``,
        ``mean_change`` (from pre).
    """
    frame = stances(data) if isinstance(data, str | Path) else data
    by = list(by)
    if frame.is_empty():
        schema = {c: STANCES_SCHEMA.get(c, pl.String) for c in by} | {"index": pl.Int64}
        schema |= {"point": pl.String, "n": pl.Int64, "mean_toward": pl.Float64}
        schema |= {"sd_toward": pl.Float64, **_CI, "mean_change": pl.Float64}
        return pl.DataFrame(schema=schema)
    stats = (
        frame.filter(pl.col("toward").is_not_null())
        .group_by([*by, "index"])
        .agg(
            pl.col("point").mode().sort().first(),
            pl.len().alias("n"),
            pl.col("toward").mean().alias("mean_toward"),
            pl.col("toward").std().alias("sd_toward"),
            pl.col("change").mean().alias("mean_change"),
        )
    )
    stats = with_t_interval(stats, "mean_toward", "sd_toward").with_columns(
        pl.col("n").cast(pl.Int64)
    )
    columns = [*by, "index", "point", "n", "mean_toward", "sd_toward", "ci_low", "ci_high"]
    return natural_order(stats.select([*columns, "mean_change"]), [*by, "index"])


# --- private steps ------------------------------------------------------------------------------


def _ols_slope(
    frame: pl.DataFrame, column: str, reference: str, controls: list[str]
) -> dict[str, Any]:
    import numpy as np
    import statsmodels.api as sm

    usable = frame.drop_nulls(["shift", column, *controls])
    conditions = sorted_levels(usable["condition"].drop_nulls().unique().to_list(), CONDITION_ORDER)
    base = reference if reference in conditions else (conditions[0] if conditions else None)
    parts = [usable[column].cast(pl.Float64), *[usable[c].cast(pl.Float64) for c in controls]]
    parts += [
        (usable["condition"] == c).fill_null(False).cast(pl.Float64)
        for c in conditions
        if c != base
    ]
    n = usable.height
    if n == 0 or usable[column].n_unique() < 2:
        return {"n": n, "reason": "no spread in the trait" if n else "no debate with a shift"}
    exog = np.column_stack([np.ones(n), *[p.to_numpy() for p in parts]])
    if n <= exog.shape[1] or np.linalg.matrix_rank(exog) < exog.shape[1]:
        return {"n": n, "reason": f"too few debates ({n}) or collinear predictors"}
    fit = sm.OLS(usable["shift"].cast(pl.Float64).to_numpy(), exog).fit()
    low, high = fit.conf_int(alpha=0.05)[1]
    return {
        "coef": float(fit.params[1]),
        "se": float(fit.bse[1]),
        "ci_low": float(low),
        "ci_high": float(high),
        "p": float(fit.pvalues[1]),
        "n": n,
        "r_squared": float(fit.rsquared),
    }
