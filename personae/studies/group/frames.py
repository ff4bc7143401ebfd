"""Group dynamics: the frames every group analysis reads, loaded once.

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

:func:`load_group` reads them into a :class:`GroupData`; the other functions
here are the steps the analyses (:mod:`~personae.studies.group.opinions`,
:mod:`~personae.studies.group.talk`) and the report share: accept a path or
loaded data, keep the members, put the episode's context columns first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx
import polars as pl

from personae.analysis.frames import EPISODE_CONTEXT, read_sql, spread_params

#: Roles that speak but hold no opinion; they are not members.
NON_MEMBER_ROLES = ("moderator",)
#: The opinion scale's ends; :func:`~personae.studies.group.opinions.opinion_dynamics` counts members at either end as extreme.
SCALE = (1.0, 5.0)

#: Columns of :func:`opinions` (``param:<name>`` columns follow).
OPINIONS_SCHEMA: dict[str, Any] = EPISODE_CONTEXT | {
    "agent": pl.String,
    "role": pl.String,
    "session": pl.Int64,
    "t": pl.Int64,
    "opinion": pl.Float64,
    "source": pl.String,
}
_MEMBERS: dict[str, Any] = {"episode_id": pl.Int64, "agent": pl.String, "role": pl.String}
_UTTERANCES: dict[str, Any] = {
    "episode_id": pl.Int64,
    "session": pl.Int64,
    "step": pl.Int64,
    "speaker": pl.String,
    "role": pl.String,
    "heard_by": pl.List(pl.String),
}
_NETWORKS: dict[str, Any] = {"episode_id": pl.Int64, "network": pl.String}
_COMPLETE = "JOIN episodes e ON e.id = {0}.episode_id WHERE e.status = 'complete'"


@dataclass(frozen=True)
class GroupData:
    """The frames a group analysis reads, loaded once by :func:`load_group`.

    Attributes:
        episodes: One row per complete episode: context columns and ``param:<name>``.
        members: ``episode_id``, ``agent``, ``role`` of every agent (moderators included).
        utterances: ``episode_id``, ``session``, ``step``, ``speaker``, ``role`` and
            ``heard_by`` (list of names; null = everyone), in speaking order.
        opinions: As returned by :func:`opinions`.
        networks: ``episode_id`` and ``network`` (node-link JSON) of each social graph.
    """

    episodes: pl.DataFrame
    members: pl.DataFrame
    utterances: pl.DataFrame
    opinions: pl.DataFrame
    networks: pl.DataFrame


Source = str | Path | GroupData
OpinionSource = str | Path | GroupData | pl.DataFrame


def load_group(db: str | Path) -> GroupData:
    """Read everything the group analyses need from a database, complete episodes only.

    Raises:
        StoreError: The file is not a personae database.
    """
    episodes = _typed(
        read_sql(
            db,
            "SELECT e.id AS episode_id, e.experiment_id, x.name AS experiment, e.param_index,"
            " e.replicate, e.seed, e.params_json AS params FROM episodes e"
            " JOIN experiments x ON x.id = e.experiment_id WHERE e.status = 'complete'"
            " ORDER BY e.id",
        ),
        EPISODE_CONTEXT,
    )
    members = _typed(
        read_sql(
            db,
            "SELECT a.episode_id, a.name AS agent, a.role FROM agents a "
            + _COMPLETE.format("a")
            + " ORDER BY a.episode_id, a.id",
        ),
        _MEMBERS,
    )
    turns = read_sql(
        db,
        "SELECT t.episode_id, t.session, t.step, a.name AS speaker, a.role, t.visible_to"
        " FROM turns t JOIN agents a ON a.id = t.agent_id "
        + _COMPLETE.format("t")
        + " ORDER BY t.episode_id, t.session, t.step",
    )
    heard = [None if v is None else json.loads(v) for v in turns["visible_to"].to_list()]
    utterances = _typed(
        turns.with_columns(pl.Series("heard_by", heard, dtype=pl.List(pl.String))), _UTTERANCES
    )
    states = read_sql(
        db,
        "SELECT s.episode_id, a.name AS agent, a.role, s.session, s.t, s.value AS opinion,"
        " s.source FROM states s JOIN agents a ON a.id = s.agent_id "
        + _COMPLETE.format("s")
        + " AND s.variable = 'opinion' ORDER BY s.episode_id, s.t, a.id",
    )
    networks = _typed(
        read_sql(
            db,
            "SELECT s.episode_id, s.text AS network FROM states s "
            + _COMPLETE.format("s")
            + " AND s.variable = 'network' AND s.agent_id IS NULL ORDER BY s.episode_id, s.t",
        ),
        _NETWORKS,
    ).unique("episode_id", keep="first", maintain_order=True)
    spread = spread_params(episodes)
    states = _typed(states, {c: OPINIONS_SCHEMA[c] for c in states.columns})
    joined = states.join(episodes, on="episode_id", how="inner", maintain_order="left")
    frame = _typed(joined, OPINIONS_SCHEMA)
    if not frame.is_empty():
        frame = spread_params(frame)
    return GroupData(spread, members, utterances, frame, networks)


def opinions(db: Source) -> pl.DataFrame:
    """The opinion measurements of complete episodes, one row each.

    Returns:
        Context columns (``experiment_id``, ``experiment``, ``episode_id``,
        ``param_index``, ``replicate``, ``seed``, ``params``), ``agent``,
        ``role``, ``session``, ``t`` (utterances so far), ``opinion`` (1-5 or
        null when unreadable), ``source``, then ``param:<name>``.
    """
    return group_data(db).opinions


def episode_network(source: Source, episode_id: int) -> nx.Graph | None:
    """The social graph of an episode (nodes are agent names), or ``None`` if none was stored."""
    rows = group_data(source).networks.filter(pl.col("episode_id") == episode_id)
    if rows.is_empty():
        return None
    graph: nx.Graph = nx.node_link_graph(json.loads(rows["network"][0]), edges="edges")
    return graph


def group_data(source: Source) -> GroupData:
    """``source`` itself when already loaded, else :func:`load_group` of the path."""
    return source if isinstance(source, GroupData) else load_group(source)


def opinion_frame(source: OpinionSource) -> pl.DataFrame:
    """An :func:`opinions` frame from a path, a :class:`GroupData` or a frame (typed to :data:`OPINIONS_SCHEMA`)."""
    if isinstance(source, pl.DataFrame):
        frame = source.with_columns(
            pl.lit(None, dtype).alias(column)
            for column, dtype in OPINIONS_SCHEMA.items()
            if column not in source.columns
        )
        return frame.cast(pl.Schema(OPINIONS_SCHEMA), strict=False)
    return group_data(source).opinions


def _typed(frame: pl.DataFrame, schema: dict[str, Any]) -> pl.DataFrame:
    """``frame`` with exactly ``schema``'s columns and types (missing columns all null)."""
    frame = frame.with_columns(
        pl.lit(None, dtype).alias(c) for c, dtype in schema.items() if c not in frame.columns
    )
    return frame.select(list(schema)).cast(pl.Schema(schema), strict=False)


def members_only(frame: pl.DataFrame) -> pl.DataFrame:
    """The rows whose ``role`` is not in :data:`NON_MEMBER_ROLES` (a null role is a member)."""
    return frame.filter(~pl.col("role").fill_null("member").is_in(NON_MEMBER_ROLES))


def is_param(column: str) -> bool:
    """Whether ``column`` is a spread parameter (``param:<name>``)."""
    return column.startswith("param:")


def context_of(frame: pl.DataFrame) -> pl.DataFrame:
    """One row per episode with the context and ``param:`` columns ``frame`` carries."""
    columns = [
        c for c in frame.columns if (c in EPISODE_CONTEXT and c != "episode_id") or is_param(c)
    ]
    return frame.group_by("episode_id", maintain_order=True).agg(pl.col(c).first() for c in columns)


def with_context(frame: pl.DataFrame, context: pl.DataFrame) -> pl.DataFrame:
    """Context columns first, then ``frame``'s own, then ``param:<name>``."""
    extra = [c for c in context.columns if c not in frame.columns or c == "episode_id"]
    out = frame.join(context.select(extra), on="episode_id", how="left", maintain_order="left")
    head = [c for c in EPISODE_CONTEXT if c in out.columns]
    own = [c for c in frame.columns if c not in head]
    params = sorted(c for c in out.columns if is_param(c) and c not in own)
    missing = {c: t for c, t in EPISODE_CONTEXT.items() if c not in out.columns}
    out = out.with_columns(pl.lit(None, t).alias(c) for c, t in missing.items())
    return out.select([*EPISODE_CONTEXT, *own, *params])


def first_episode(frame: pl.DataFrame, episode_id: int | None) -> int | None:
    """``episode_id`` if given, else the smallest in ``frame`` (``None`` when it is empty)."""
    if episode_id is not None or frame.is_empty():
        return episode_id
    return int(frame["episode_id"].min())  # type: ignore[arg-type]


__all__ = [
    "NON_MEMBER_ROLES",
    "OPINIONS_SCHEMA",
    "SCALE",
    "GroupData",
    "OpinionSource",
    "Source",
    "context_of",
    "episode_network",
    "first_episode",
    "group_data",
    "is_param",
    "load_group",
    "members_only",
    "opinion_frame",
    "opinions",
    "with_context",
]
