"""Group dynamics: opinions, participation, replies and influence in multi-agent discussions.

One episode is one discussion among its *members* (agents whose role is not
``moderator``; a moderator may speak but holds no opinion and enters no
metric). What is read (see ``docs/group.md``):

- ``turns``: one row per utterance, ``step`` 0, 1, 2, ... and ``visible_to``,
  the JSON list of the agent names who heard it (NULL: everyone).
- ``states`` with ``variable = 'opinion'``: a member's agreement with the
  proposition (1-5, NULL when unreadable) measured at ``t`` = utterances so far,
  so a measurement at ``t`` precedes the utterance with ``step = t``.
- ``states`` with ``variable = 'network'``: the social graph as
  ``networkx.node_link_data(graph, edges="edges")`` JSON.

Every function takes a database path or a :class:`GroupData` already loaded
with :func:`load_group` (the opinion functions also take an :func:`opinions`
frame), returns a polars frame, and returns an empty frame with its documented
columns when there is nothing to analyse.

The analyses live in :mod:`~personae.studies.group.frames` (loading),
:mod:`~personae.studies.group.opinions` (opinion dynamics, consensus) and
:mod:`~personae.studies.group.talk` (participation, replies, influence); the
distribution indices (Gini, entropy, bimodality, Esteban-Ray) in
:mod:`personae.analysis.stats`. This module holds :func:`group_summary` and
re-exports the public names of all of them.

Example:
    >>> data = load_group("runs/town_hall.db")  # doctest: +SKIP
    >>> time_to_consensus(data, tolerance=0.5)  # doctest: +SKIP
"""

from __future__ import annotations

import polars as pl

from personae.analysis.stats import (
    BIMODALITY_THRESHOLD,
    ESTEBAN_RAY_ALPHA,
    bimodality_coefficient,
    esteban_ray,
    gini,
    gini_normalised,
    normalised_entropy,
)
from personae.studies.group.frames import (
    NON_MEMBER_ROLES,
    OPINIONS_SCHEMA,
    SCALE,
    GroupData,
    OpinionSource,
    Source,
    episode_network,
    group_data,
    load_group,
    opinions,
    with_context,
)
from personae.studies.group.opinions import opinion_dynamics, time_to_consensus
from personae.studies.group.talk import (
    influence,
    influence_graph,
    influence_summary,
    participation,
    participation_summary,
    reciprocity,
    reply_graph,
    reply_pairs,
)


def group_summary(source: Source, tolerance: float = 0.5) -> pl.DataFrame:
    """One row per episode with the headline numbers of every group analysis.

    Returns:
        Context columns, ``n_members``, ``utterances``, ``mean_first``,
        ``mean_last``, ``variance_first``, ``variance_last``,
        ``bimodality_last``, ``extreme_share_last``, ``esteban_ray_last``
        (first and last measurement), ``t_consensus``, ``consensus``,
        ``broken``, ``gini``, ``gini_normalised``, ``entropy``, ``reciprocity``,
        ``reciprocated_share``, then ``param:<name>``.
    """
    data = group_data(source)
    dynamics = opinion_dynamics(data).filter(pl.col("n") > 0).sort("episode_id", "t")
    ends = dynamics.group_by("episode_id").agg(
        pl.col("mean").first().alias("mean_first"),
        pl.col("mean").last().alias("mean_last"),
        pl.col("variance").first().alias("variance_first"),
        pl.col("variance").last().alias("variance_last"),
        pl.col("bimodality").last().alias("bimodality_last"),
        pl.col("extreme_share").last().alias("extreme_share_last"),
        pl.col("esteban_ray").last().alias("esteban_ray_last"),
    )
    pieces = [
        participation_summary(data).select(
            "episode_id", "n_members", "utterances", "gini", "gini_normalised", "entropy"
        ),
        ends,
        time_to_consensus(data, tolerance).select(
            "episode_id", "t_consensus", "consensus", "broken"
        ),
        reciprocity(data).select("episode_id", "reciprocity", "reciprocated_share"),
    ]
    out = data.episodes.select("episode_id")
    for piece in pieces:
        out = out.join(piece, on="episode_id", how="left", maintain_order="left")
    out = out.select(
        "episode_id",
        "n_members",
        "utterances",
        *[c for c in ends.columns if c != "episode_id"],
        "t_consensus",
        "consensus",
        "broken",
        "gini",
        "gini_normalised",
        "entropy",
        "reciprocity",
        "reciprocated_share",
    )
    return with_context(out, data.episodes).sort("episode_id")


__all__ = [
    "BIMODALITY_THRESHOLD",
    "ESTEBAN_RAY_ALPHA",
    "NON_MEMBER_ROLES",
    "OPINIONS_SCHEMA",
    "SCALE",
    "GroupData",
    "OpinionSource",
    "Source",
    "bimodality_coefficient",
    "episode_network",
    "esteban_ray",
    "gini",
    "gini_normalised",
    "group_summary",
    "influence",
    "influence_graph",
    "influence_summary",
    "load_group",
    "normalised_entropy",
    "opinion_dynamics",
    "opinions",
    "participation",
    "participation_summary",
    "reciprocity",
    "reply_graph",
    "reply_pairs",
    "time_to_consensus",
]
