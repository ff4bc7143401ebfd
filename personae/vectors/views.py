"""Three views of a trait side by side: self-report, judged behaviour, activation projection.

For the same agents in the same episodes, :func:`three_views` puts next to
each other, per respondent (an agent in an episode) and Big Five trait:

* ``self_report``: the questionnaire's domain score (``source='self_report'``),
  averaged over the occasions it was given;
* ``judge``: the judge's rating of the agent's behaviour (``source='judge'``);
* ``activation``: the mean projection of the agent's turns on the trait vector
  (``personae monitor``; the last prompt token before each turn);
* ``target``: the persona's Big Five target, where it set one.

:func:`view_correlations` then gives the Pearson correlations across
respondents, per trait and pair of views (convergent validity: the same trait
seen two ways), and, as the multitrait-multimethod baseline, the mean absolute
correlation between *different* traits across the same two views
(discriminant validity: it should be lower). :func:`view_changes` correlates
the change from the first to the last occasion of each view (over time).
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import polars as pl

from personae.analysis.drift import trait_scores
from personae.analysis.stats import pearson
from personae.analysis.trait_frames import BIG_FIVE_DOMAINS
from personae.vectors.frames import activation_scores

__all__ = ["VIEWS", "three_views", "view_changes", "view_correlations"]

VIEWS = ("self_report", "judge", "activation", "target")
"""The views compared, in order (``target`` is the persona's set level)."""

_KEYS = ["experiment_id", "episode_id", "param_index", "agent", "scale"]


def _measures(db: str | Path) -> pl.DataFrame:
    """Per respondent, trait, view and occasion: the value (long form)."""
    domains = list(BIG_FIVE_DOMAINS.values())
    scores = trait_scores(db).filter((pl.col("level") == "domain") & pl.col("scale").is_in(domains))
    asked = scores.filter(pl.col("source").is_in(["self_report", "judge"])).select(
        *_KEYS, pl.col("source").alias("view"), "occasion", "value", "target"
    )
    seen = (
        activation_scores(db)
        .filter((pl.col("instrument") == "vector") & pl.col("scale").is_in(domains))
        .select(*_KEYS, pl.lit("activation").alias("view"), "occasion", "value", "target")
    )
    return pl.concat([asked, seen], how="vertical_relaxed")


def three_views(db: str | Path) -> pl.DataFrame:
    """One row per respondent and Big Five trait with a column per view (see the module docstring).

    Args:
        db: A personae database.

    Returns:
        Columns ``experiment_id``, ``episode_id``, ``param_index``, ``agent``,
        ``scale``, then ``self_report``, ``judge``, ``activation``, ``target``
        (null where a view has no value). Empty when no view has values.
    """
    long = _measures(db)
    schema = {
        "experiment_id": pl.Int64,
        "episode_id": pl.Int64,
        "param_index": pl.Int64,
        "agent": pl.String,
        "scale": pl.String,
        **dict.fromkeys(VIEWS, pl.Float64),
    }
    if long.is_empty():
        return pl.DataFrame(schema=schema)
    means = long.group_by([*_KEYS, "view"]).agg(pl.col("value").mean())
    wide = means.pivot(on="view", index=_KEYS, values="value")
    targets = long.group_by(_KEYS).agg(pl.col("target").drop_nulls().first())
    wide = wide.join(targets, on=_KEYS, how="left")
    for view in VIEWS:
        if view not in wide.columns:
            wide = wide.with_columns(pl.lit(None, dtype=pl.Float64).alias(view))
    return wide.select(list(schema)).cast(schema).sort(_KEYS)  # type: ignore[arg-type]


def view_correlations(views: pl.DataFrame) -> pl.DataFrame:
    """Convergent and discriminant correlations across respondents, per pair of views.

    Args:
        views: :func:`three_views`.

    Returns:
        One row per trait (``scale``) and view pair: ``view_a``, ``view_b``,
        ``n`` (respondents with both), ``r``, ``ci_low``, ``ci_high``, ``p``,
        and ``discriminant_mean_abs_r``: the mean |r| of this trait's ``view_a``
        with the *other* traits' ``view_b`` (what ``r`` should exceed).
    """
    rows = []
    wide = {
        view: views.pivot(on="scale", index=["episode_id", "agent"], values=view)
        for view in VIEWS
        if views[view].is_not_null().any()
    }
    traits = sorted(views["scale"].unique().to_list())
    for view_a, view_b in combinations([v for v in VIEWS if v in wide], 2):
        joined = wide[view_a].join(
            wide[view_b], on=["episode_id", "agent"], how="inner", suffix="__b"
        )
        for trait in traits:
            if trait not in wide[view_a].columns or trait not in wide[view_b].columns:
                continue
            same = pearson(joined[trait], joined[f"{trait}__b"])
            others = [
                pearson(joined[trait], joined[f"{other}__b"]).r
                for other in traits
                if other != trait and f"{other}__b" in joined.columns
            ]
            found = [abs(r) for r in others if r is not None]
            rows.append(
                {
                    "scale": trait,
                    "view_a": view_a,
                    "view_b": view_b,
                    "n": same.n,
                    "r": same.r,
                    "ci_low": same.ci_low,
                    "ci_high": same.ci_high,
                    "p": same.p,
                    "discriminant_mean_abs_r": sum(found) / len(found) if found else None,
                }
            )
    schema = {
        "scale": pl.String,
        "view_a": pl.String,
        "view_b": pl.String,
        "n": pl.Int64,
        "r": pl.Float64,
        "ci_low": pl.Float64,
        "ci_high": pl.Float64,
        "p": pl.Float64,
        "discriminant_mean_abs_r": pl.Float64,
    }
    return pl.DataFrame(rows, schema=schema, orient="row")


def view_changes(db: str | Path) -> pl.DataFrame:
    """Per respondent and trait, the first-to-last change of each view (over time).

    Returns:
        ``_KEYS`` plus a ``<view>_change`` column per measured view (last
        occasion minus first; null with a single occasion).
    """
    long = _measures(db)
    if long.is_empty():
        return pl.DataFrame(schema={k: pl.String for k in _KEYS})
    ends = (
        long.group_by([*_KEYS, "view", "occasion"])
        .agg(pl.col("value").mean())
        .sort("occasion")
        .group_by([*_KEYS, "view"])
        .agg(
            pl.when(pl.len() > 1)
            .then(pl.col("value").last() - pl.col("value").first())
            .alias("change")
        )
    )
    wide = ends.pivot(on="view", index=_KEYS, values="change")
    return wide.rename({v: f"{v}_change" for v in wide.columns if v not in _KEYS}).sort(_KEYS)
