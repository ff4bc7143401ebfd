"""The report's evaluation section: scores by grid condition with t-intervals, and agreement.

For each evaluator (and version) and dimension, the valid samples of one item
(episode, agent or turn) are averaged first, so an item counts once; the
items of each parameter set then give a mean with its Student t interval
(:func:`personae.analysis.stats.with_t_interval`). Next to every score stands
the judge's agreement over all items of that dimension (Krippendorff's alpha,
ICC(2,1), ICC(2,k); :mod:`personae.evaluate.agreement`) and the share of
answers that could not be read.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import polars as pl

from personae.analysis.frames import read_sql
from personae.analysis.stats import with_t_interval
from personae.evaluate.agreement import agreement
from personae.report.html import Section, html_table, paragraph, subheading

__all__ = ["evaluation_frames", "section"]

_SQL = (
    "SELECT episode_id, param_index, params, agent, turn_id, step, evaluator, "
    "evaluator_version, dimension, sample, value, valid, judge_endpoint, judge_model "
    "FROM evaluation_scores"
)


def evaluation_frames(db: str | Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(scores by condition, agreement)`` of every evaluation in ``db``.

    Returns:
        The first frame has one row per evaluator, dimension and parameter
        set: ``items``, ``mean``, ``sd``, ``ci_low``, ``ci_high``,
        ``invalid_share``, with ``alpha``, ``icc``, ``icc_k`` joined; the second
        the agreement per evaluator and dimension (see :func:`agreement`).
        Both empty when nothing was evaluated.
    """
    try:
        rows = read_sql(db, _SQL)
    except sqlite3.OperationalError as exc:  # a file from before evaluations has no view
        if "no such table" in str(exc):
            return pl.DataFrame(), pl.DataFrame()
        raise
    if rows.is_empty():
        return pl.DataFrame(), pl.DataFrame()
    rows = rows.with_columns(
        (pl.col("evaluator") + "@" + pl.col("evaluator_version")).alias("evaluator"),
        pl.col("value").cast(pl.Float64),
    )
    agreed = agreement(rows)
    per_item = rows.group_by(
        ["evaluator", "dimension", "param_index", "params", "episode_id", "agent", "turn_id"]
    ).agg(
        pl.col("value").filter(pl.col("valid") == 1).mean().alias("value"),
        (1 - pl.col("valid").mean()).alias("invalid_share"),
    )
    grouped = (
        per_item.group_by(["evaluator", "dimension", "param_index", "params"])
        .agg(
            pl.col("value").drop_nulls().len().alias("items"),
            pl.col("value").mean().alias("mean"),
            pl.col("value").std().alias("sd"),
            pl.col("invalid_share").mean(),
        )
        .sort("evaluator", "dimension", "param_index")
    )
    table = with_t_interval(grouped, "mean", "sd", "items").join(
        agreed.select("evaluator", "dimension", "alpha", "icc", "icc_k"),
        on=["evaluator", "dimension"],
        how="left",
    )
    return table, agreed


def _build(db: Path) -> str | None:
    table, agreed = evaluation_frames(db)
    if table.is_empty():
        return None
    parts = [
        paragraph(
            "Scores that evaluators (LLM judges, see docs/evaluators.md) gave the stored "
            "episodes: per parameter set, the mean over items (an item's samples averaged "
            "first) with its 95% t interval. alpha is Krippendorff's alpha (interval) of the "
            "judge's repeated samples (and judges) over all items of the dimension; icc is "
            "ICC(2,1), the reliability of one rating, icc_k ICC(2,k), of the mean of the "
            "samples. Values near 0 mean the judge agrees with itself no better than chance; "
            "read the scores next to them accordingly. Empty agreement: a single sample per "
            "item (run personae evaluate with --samples 2 or more), or no variation at all "
            "(every rating the same, so agreement is undefined)."
        )
    ]
    for (name,), part in table.group_by(["evaluator"], maintain_order=True):
        parts.append(subheading(str(name)))
        parts.append(html_table(part.drop("evaluator")))
    parts.append(subheading("Judge agreement per dimension"))
    parts.append(html_table(agreed))
    return "".join(parts)


def section() -> Section:
    """The evaluation section of the report (nothing shown when no evaluation is stored)."""
    return Section("Evaluations", _build)
