"""How far a judge agrees with itself (samples) and with other judges, per dimension.

Every (sample, judge) is a rater and every rated item (episode, agent, turn)
a unit. Per evaluator and dimension:

- **Krippendorff's alpha** (interval metric, ``krippendorff`` package): uses
  every valid value, missing ones included as missing; 1 is perfect agreement,
  0 agreement no better than chance, below 0 systematic disagreement.
- **ICC** (``pingouin.intraclass_corr``) on the items every rater rated:
  ``icc`` is ICC(2,1), two-way random effects, absolute agreement, one rater:
  the reliability of a single rating; ``icc_k`` is ICC(2,k), the reliability
  of the mean of the k ratings, which is what the report's per-item score is.
  With exchangeable samples of one judge (no rater effect) ICC(2,1) and
  ICC(1,1) estimate the same quantity, var(true) / (var(true) + var(noise)).

A judge whose ratings are a true score plus independent noise has alpha and
ICC(2,1) near ``var(true) / (var(true) + var(noise))``; pure noise gives values
near 0 (``tests/unit/test_evaluate.py`` checks both).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import polars as pl

__all__ = ["agreement", "dimension_agreement"]

#: The columns :func:`agreement` returns, in order.
COLUMNS = ("evaluator", "dimension", "items", "raters", "alpha", "icc", "icc_k")


def dimension_agreement(units: pl.DataFrame) -> dict[str, Any]:
    """Alpha and ICC of one dimension's ratings.

    Args:
        units: Columns ``item`` (any hashable), ``rater`` (str) and ``value``
            (float, null for an invalid rating).

    Returns:
        ``items`` and ``raters`` counted, ``alpha``, ``icc``, ``icc_k`` (None
        where they cannot be computed: fewer than two raters or items, or no
        variation at all).
    """
    valid = units.filter(pl.col("value").is_not_null() & pl.col("value").is_not_nan())
    raters = sorted(valid["rater"].unique().to_list())
    items = valid["item"].unique().to_list()
    out: dict[str, Any] = {
        "items": len(items),
        "raters": len(raters),
        "alpha": None,
        "icc": None,
        "icc_k": None,
    }
    if len(raters) < 2 or len(items) < 2:
        return out
    import krippendorff

    index = {item: i for i, item in enumerate(items)}
    rows = {rater: r for r, rater in enumerate(raters)}
    matrix = np.full((len(raters), len(items)), np.nan)
    for item, rater, value in valid.select("item", "rater", "value").iter_rows():
        matrix[rows[rater], index[item]] = value
    paired = int((np.sum(~np.isnan(matrix), axis=0) >= 2).sum())
    values = matrix[~np.isnan(matrix)]
    if paired >= 1 and np.ptp(values) > 0:
        out["alpha"] = _finite(
            krippendorff.alpha(reliability_data=matrix, level_of_measurement="interval")
        )
    complete = ~np.isnan(matrix).any(axis=0)
    # pingouin needs at least 5 values (2 raters x 3 items).
    if (
        complete.sum() >= 2
        and complete.sum() * len(raters) >= 5
        and np.ptp(matrix[:, complete]) > 0
    ):
        out["icc"], out["icc_k"] = _icc(matrix[:, complete])
    return out


def _icc(matrix: np.ndarray) -> tuple[float | None, float | None]:
    import pandas as pd
    import pingouin

    raters, items = matrix.shape
    long = pd.DataFrame(
        {
            "item": np.tile(np.arange(items), raters),
            "rater": np.repeat(np.arange(raters), items),
            "value": matrix.reshape(-1),
        }
    )
    with warnings.catch_warnings():  # pingouin's own use of a deprecated pandas keyword
        warnings.simplefilter("ignore")
        table = pingouin.intraclass_corr(long, targets="item", raters="rater", ratings="value")
    icc = dict(zip(table["Type"], table["ICC"], strict=True))
    # pingouin 0.7 names ICC(2,1) "ICC(A,1)"; earlier releases "ICC2".
    single = icc.get("ICC(A,1)", icc.get("ICC2"))
    mean = icc.get("ICC(A,k)", icc.get("ICC2k"))
    return _finite(single), _finite(mean)


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def agreement(scores: pl.DataFrame) -> pl.DataFrame:
    """Agreement per evaluator and dimension from rows of ``evaluations`` (or its view).

    Args:
        scores: Columns ``evaluator``, ``dimension``, ``episode_id``,
            ``sample``, ``value``, and where present ``agent_id`` (or
            ``agent``), ``turn_id``, ``judge_endpoint``, ``judge_model``. Each
            (sample, judge endpoint, judge model) is a rater.

    Returns:
        One row per evaluator and dimension: ``items``, ``raters``, ``alpha``,
        ``icc`` (ICC(2,1)), ``icc_k`` (ICC(2,k)).
    """
    if scores.is_empty():
        return pl.DataFrame(schema=dict.fromkeys(COLUMNS, pl.Float64))
    unit_cols = [c for c in ("episode_id", "agent_id", "agent", "turn_id") if c in scores.columns]
    rater_cols = [c for c in ("judge_endpoint", "judge_model", "sample") if c in scores.columns]
    frame = scores.with_columns(
        pl.concat_str(
            [pl.col(c).cast(pl.Utf8).fill_null("-") for c in unit_cols], separator="/"
        ).alias("item"),
        pl.concat_str(
            [pl.col(c).cast(pl.Utf8).fill_null("-") for c in rater_cols], separator="/"
        ).alias("rater"),
        pl.col("value").cast(pl.Float64),
    )
    rows = []
    for (name, dimension), group in frame.group_by(["evaluator", "dimension"], maintain_order=True):
        rows.append({"evaluator": name, "dimension": dimension, **dimension_agreement(group)})
    return pl.DataFrame(
        rows,
        schema={
            "evaluator": pl.Utf8,
            "dimension": pl.Utf8,
            "items": pl.Int64,
            "raters": pl.Int64,
            "alpha": pl.Float64,
            "icc": pl.Float64,
            "icc_k": pl.Float64,
        },
    ).sort("evaluator", "dimension")
