"""Group dynamics: how the members' opinions move, and when the group agrees.

Both functions take a database path, a :class:`~personae.studies.group.frames.GroupData`
or an :func:`~personae.studies.group.frames.opinions` frame, and return a polars
frame (empty, with its documented columns, when there is nothing to analyse).
The distribution indices are :mod:`personae.analysis.stats`'.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from personae.analysis.frames import EPISODE_CONTEXT
from personae.analysis.stats import bimodality_coefficient, esteban_ray
from personae.studies.group.frames import (
    SCALE,
    OpinionSource,
    context_of,
    is_param,
    members_only,
    opinion_frame,
    with_context,
)


def opinion_dynamics(opinions: OpinionSource, scale: tuple[float, float] = SCALE) -> pl.DataFrame:
    """The distribution of members' opinions at every measurement time of every episode.

    Several readings of one member at one ``t`` are averaged; unreadable ones are left out.

    Args:
        opinions: A database path, a :class:`GroupData` or an :func:`opinions` frame.
        scale: The scale's ends; a member at either end counts as extreme.

    Returns:
        One row per episode x ``t``: context columns, ``t``, ``n`` (readable
        opinions), ``n_missing``, ``mean``, ``variance`` (population variance:
        the members are the whole group), ``min``, ``max``, ``range``,
        ``bimodality`` (:func:`bimodality_coefficient`), ``extreme_share``
        (share of members at either end of the scale), ``esteban_ray``
        (:func:`esteban_ray`), then ``param:<name>``.
    """
    frame = members_only(opinion_frame(opinions))
    per_member = frame.group_by("episode_id", "t", "agent").agg(pl.col("opinion").mean())
    rows = []
    groups = per_member.partition_by("episode_id", "t", as_dict=True)
    for (episode_id, t), group in sorted(groups.items(), key=lambda item: item[0]):
        values = group["opinion"].drop_nulls().to_list()
        n = len(values)
        mean = sum(values) / n if n else None
        low, high = (min(values), max(values)) if n else (None, None)
        rows.append(
            {
                "episode_id": episode_id,
                "t": t,
                "n": n,
                "n_missing": group.height - n,
                "mean": mean,
                "variance": sum((v - mean) ** 2 for v in values) / n if mean is not None else None,
                "min": low,
                "max": high,
                "range": high - low if high is not None and low is not None else None,
                "bimodality": bimodality_coefficient(values),
                "extreme_share": (
                    sum(v <= scale[0] or v >= scale[1] for v in values) / n if n else None
                ),
                "esteban_ray": esteban_ray(values),
            }
        )
    schema: dict[str, Any] = dict.fromkeys(("episode_id", "t", "n", "n_missing"), pl.Int64)
    schema |= dict.fromkeys(
        ("mean", "variance", "min", "max", "range", "bimodality", "extreme_share", "esteban_ray"),
        pl.Float64,
    )
    return with_context(pl.DataFrame(rows, schema=schema), context_of(frame))


def time_to_consensus(opinions: OpinionSource, tolerance: float = 0.5) -> pl.DataFrame:
    """When each discussion reached consensus, and whether it held.

    Consensus at ``t`` means the range of readable member opinions (max - min)
    is at most ``tolerance``; times with fewer than two readable opinions
    neither make nor break it. ``t_consensus`` is the first measured ``t`` from
    which consensus holds at every later measurement up to the end, so a
    consensus that was reached and then broken does not count.

    Args:
        opinions: A database path, a :class:`GroupData` or an :func:`opinions` frame.
        tolerance: The largest range that counts as consensus.

    Returns:
        One row per episode: context columns, ``tolerance``, ``t_first`` (first
        ``t`` within tolerance, held or not), ``t_consensus`` (null if never
        reached for good), ``consensus`` (bool), ``broken`` (reached at some
        point but not held to the end), ``t_last``, ``range_last``,
        ``mean_last``, then ``param:<name>``.
    """
    dynamics = opinion_dynamics(opinions).filter(pl.col("n") >= 2).sort("episode_id", "t")
    rows = []
    for (episode_id,), group in dynamics.partition_by("episode_id", as_dict=True).items():
        within = [r <= tolerance for r in group["range"].to_list()]
        times = group["t"].to_list()
        t_first = next((t for t, ok in zip(times, within, strict=True) if ok), None)
        t_consensus = None
        for t, ok in zip(reversed(times), reversed(within), strict=True):
            if not ok:
                break
            t_consensus = t
        rows.append(
            {
                "episode_id": episode_id,
                "tolerance": float(tolerance),
                "t_first": t_first,
                "t_consensus": t_consensus,
                "consensus": t_consensus is not None,
                "broken": t_first is not None and t_consensus is None,
                "t_last": times[-1],
                "range_last": group["range"][-1],
                "mean_last": group["mean"][-1],
            }
        )
    schema = {
        "episode_id": pl.Int64,
        "tolerance": pl.Float64,
        "t_first": pl.Int64,
        "t_consensus": pl.Int64,
        "consensus": pl.Boolean,
        "broken": pl.Boolean,
        "t_last": pl.Int64,
        "range_last": pl.Float64,
        "mean_last": pl.Float64,
    }
    context = dynamics.select([c for c in dynamics.columns if c in EPISODE_CONTEXT or is_param(c)])
    return with_context(pl.DataFrame(rows, schema=schema), context.unique("episode_id"))


__all__ = ["opinion_dynamics", "time_to_consensus"]
