"""Group dynamics: who spoke, who replied to whom, and who moved whom.

Every function takes a database path or a
:class:`~personae.studies.group.frames.GroupData` and returns a polars frame
(empty, with its documented columns, when there is nothing to analyse), with
the episode's context columns first and ``param:<name>`` last.
"""

from __future__ import annotations

import bisect
import itertools
from collections import defaultdict
from typing import Any

import networkx as nx
import polars as pl

from personae.analysis.stats import gini, gini_normalised, normalised_entropy
from personae.studies.group.frames import (
    NON_MEMBER_ROLES,
    Source,
    context_of,
    group_data,
    members_only,
    with_context,
)

# --- participation ------------------------------------------------------------------------------


def participation(source: Source) -> pl.DataFrame:
    """How much each member spoke.

    Returns:
        One row per episode x member: context columns, ``agent``,
        ``utterances``, ``share`` (of the members' utterances; null if no member
        spoke), and the episode's ``gini``, ``gini_normalised`` and ``entropy``
        (see :func:`participation_summary`), then ``param:<name>``.
    """
    data = group_data(source)
    members = members_only(data.members).select("episode_id", "agent")
    counts = (
        members_only(data.utterances)
        .group_by("episode_id", "speaker")
        .agg(pl.len().cast(pl.Int64).alias("utterances"))
        .rename({"speaker": "agent"})
    )
    per_agent = (
        members.join(counts, on=["episode_id", "agent"], how="left")
        .with_columns(pl.col("utterances").fill_null(0))
        .with_columns(
            pl.when(pl.col("utterances").sum().over("episode_id") > 0)
            .then(pl.col("utterances") / pl.col("utterances").sum().over("episode_id"))
            .alias("share")
        )
    )
    stats = pl.DataFrame(
        [
            (episode_id, gini(shares), gini_normalised(shares), normalised_entropy(shares))
            for (episode_id,), group in per_agent.partition_by("episode_id", as_dict=True).items()
            for shares in [group["share"].fill_null(0.0).to_list()]
        ],
        schema={
            "episode_id": pl.Int64,
            "gini": pl.Float64,
            "gini_normalised": pl.Float64,
            "entropy": pl.Float64,
        },
        orient="row",
    )
    out = per_agent.join(stats, on="episode_id", how="left")
    return with_context(out, data.episodes).sort("episode_id", "agent")


def participation_summary(source: Source) -> pl.DataFrame:
    """Inequality of speaking time per episode.

    ``gini`` is the Gini coefficient of the members' shares,
    ``sum_i sum_j |x_i - x_j| / (2 n^2 mean)``, members who never spoke
    counting as 0 (shares 0.5, 0.5, 0, 0 give 0.5). Its maximum, one member
    speaking alone, is ``(n - 1) / n``, so it grows with group size;
    ``gini_normalised`` divides by that maximum (:func:`gini_normalised`; 2/3
    for the same shares) and is the one to compare across group sizes.
    ``entropy`` is the Shannon entropy of the shares divided by ``log n``
    (1 = everyone spoke equally; shares 0.5, 0.5, 0, 0 give 0.5).

    Returns:
        One row per episode: context columns, ``n_members``, ``utterances``
        (by members), ``moderator_utterances`` (by everyone else), ``silent``
        (members who never spoke), ``top_share``, ``gini``,
        ``gini_normalised``, ``entropy``, then ``param:<name>``.
    """
    data = group_data(source)
    per_agent = participation(data)
    others = (
        data.utterances.filter(pl.col("role").is_in(NON_MEMBER_ROLES))
        .group_by("episode_id")
        .agg(pl.len().cast(pl.Int64).alias("moderator_utterances"))
    )
    out = (
        per_agent.group_by("episode_id")
        .agg(
            pl.len().cast(pl.Int64).alias("n_members"),
            pl.col("utterances").sum(),
            (pl.col("utterances") == 0).sum().cast(pl.Int64).alias("silent"),
            pl.col("share").max().alias("top_share"),
            pl.col("gini").first(),
            pl.col("gini_normalised").first(),
            pl.col("entropy").first(),
        )
        .join(others, on="episode_id", how="left")
        .with_columns(pl.col("moderator_utterances").fill_null(0))
        .select(
            "episode_id",
            "n_members",
            "utterances",
            "moderator_utterances",
            "silent",
            "top_share",
            "gini",
            "gini_normalised",
            "entropy",
        )
    )
    return with_context(out, data.episodes).sort("episode_id")


# --- replies ------------------------------------------------------------------------------------


def reply_pairs(source: Source) -> pl.DataFrame:
    """Who replied to whom: the directed, weighted reply graph of each episode as edges.

    An utterance by member B is a reply to member A when it comes right after
    A's utterance in the same session and B heard A's (B is in its
    ``visible_to``, or ``visible_to`` is null). A speaking twice in a row is no
    reply; a moderator's utterance in between breaks the pair.

    Returns:
        One row per episode x replier x addressee: context columns, ``replier``,
        ``addressee``, ``replies`` (count), then ``param:<name>``.
    """
    data = group_data(source)
    rows = [
        {"episode_id": episode_id, "replier": b, "addressee": a, "replies": n}
        for episode_id, pairs in _replies(data.utterances).items()
        for (b, a), n in pairs.items()
    ]
    schema = {
        "episode_id": pl.Int64,
        "replier": pl.String,
        "addressee": pl.String,
        "replies": pl.Int64,
    }
    out = pl.DataFrame(rows, schema=schema)
    return with_context(out, data.episodes).sort("episode_id", "replier", "addressee")


def reply_graph(pairs: pl.DataFrame, episode_id: int) -> nx.DiGraph:
    """The reply graph of one episode (edge replier -> addressee, attribute ``weight``)."""
    graph = nx.DiGraph()
    for b, a, n in (
        pairs.filter(pl.col("episode_id") == episode_id)
        .select("replier", "addressee", "replies")
        .iter_rows()
    ):
        graph.add_edge(b, a, weight=n)
    return graph


def reciprocity(source: Source) -> pl.DataFrame:
    """How mutual the replies were, per episode (see :func:`reply_pairs` for what a reply is).

    Returns:
        One row per episode: context columns, ``pairs`` (consecutive utterances
        of two different members), ``replies`` (of those, heard by the replier),
        ``unheard`` (the rest), ``edges`` (distinct replier -> addressee),
        ``reciprocity`` (``networkx.reciprocity`` of the binary reply graph:
        share of edges whose reverse exists; null without edges),
        ``reciprocated_share`` (share of replies along an edge whose reverse
        exists), then ``param:<name>``.
    """
    data = group_data(source)
    replies = _replies(data.utterances)
    unheard = _replies(data.utterances, heard=False)
    rows = []
    for (episode_id,) in data.episodes.select("episode_id").iter_rows():
        mine = replies.get(episode_id, {})
        graph = nx.DiGraph()
        graph.add_edges_from(mine)
        total = sum(mine.values())
        mutual = sum(n for (b, a), n in mine.items() if (a, b) in mine)
        lost = sum(unheard.get(episode_id, {}).values())
        rows.append(
            {
                "episode_id": episode_id,
                "pairs": total + lost,
                "replies": total,
                "unheard": lost,
                "edges": graph.number_of_edges(),
                "reciprocity": float(nx.reciprocity(graph)) if graph.number_of_edges() else None,
                "reciprocated_share": mutual / total if total else None,
            }
        )
    schema: dict[str, Any] = dict.fromkeys(
        ("episode_id", "pairs", "replies", "unheard", "edges"), pl.Int64
    )
    schema |= {"reciprocity": pl.Float64, "reciprocated_share": pl.Float64}
    return with_context(pl.DataFrame(rows, schema=schema), data.episodes)


def _replies(utterances: pl.DataFrame, heard: bool = True) -> dict[int, dict[tuple[str, str], int]]:
    """Per episode: (replier, addressee) -> count of heard (or, with heard=False, unheard) replies."""
    out: dict[int, dict[tuple[str, str], int]] = defaultdict(lambda: defaultdict(int))
    rows = utterances.select("episode_id", "session", "speaker", "role", "heard_by").rows()
    for before, now in itertools.pairwise(rows):
        episode_id, session, addressee, addressee_role, audience = before
        same_session = (now[0], now[1]) == (episode_id, session)
        replier, replier_role = now[2], now[3]
        if not same_session or replier == addressee:
            continue
        if addressee_role in NON_MEMBER_ROLES or replier_role in NON_MEMBER_ROLES:
            continue
        if (audience is None or replier in audience) == heard:
            out[episode_id][replier, addressee] += 1
    return out


# --- influence ----------------------------------------------------------------------------------


def influence(source: Source) -> pl.DataFrame:
    """Opinion change of each listener attributed to the members it heard: speaker -> listener edges.

    Rule: take a listener's consecutive readable opinion measurements at
    ``t0 < t1`` and its change ``d = o(t1) - o(t0)``. The messages it heard in
    between are the utterances with ``t0 <= step < t1`` by other members that
    it heard (``visible_to``) and whose speaker already had a readable opinion
    (the speaker's last one measured at or before the message). Each such
    message gets an equal part ``d / m`` of the change (``m`` messages), signed
    toward its speaker: ``d / m * sign(x_speaker - o(t0))``. Positive means
    the listener moved toward the speaker, negative away; a speaker who held
    the listener's opinion gets 0. Intervals without such messages are left
    out (their change is not attributed to anyone), and moderators, holding no
    opinion, get no edges.

    Returns:
        One row per episode x speaker x listener that heard the speaker at least
        once in a measured interval: context columns, ``speaker``, ``listener``,
        ``messages`` (heard), ``intervals``, ``weight`` (sum of attributed
        change), then ``param:<name>``.
    """
    data = group_data(source)
    frame = members_only(data.opinions).filter(pl.col("opinion").is_not_null())
    readings = frame.group_by("episode_id", "agent", "t").agg(pl.col("opinion").mean())
    series: dict[int, dict[str, list[tuple[int, float]]]] = defaultdict(lambda: defaultdict(list))
    for episode_id, agent, t, value in readings.sort("t").iter_rows():
        series[episode_id][agent].append((t, value))
    messages: dict[int, list[tuple[int, str, set[str] | None]]] = defaultdict(list)
    for episode_id, step, speaker, heard_by in (
        members_only(data.utterances)
        .select("episode_id", "step", "speaker", "heard_by")
        .iter_rows()
    ):
        messages[episode_id].append((step, speaker, None if heard_by is None else set(heard_by)))
    rows = []
    for episode_id, by_agent in series.items():
        edges: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0, 0.0])
        said = sorted(messages.get(episode_id, []), key=lambda message: message[0])
        steps = [step for step, _, _ in said]
        for listener, points in by_agent.items():
            for (t0, o0), (t1, o1) in itertools.pairwise(points):
                between = said[bisect.bisect_left(steps, t0) : bisect.bisect_left(steps, t1)]
                heard = [
                    (speaker, x)
                    for step, speaker, audience in between
                    if speaker != listener
                    and (audience is None or listener in audience)
                    and (x := _last_before(by_agent.get(speaker, []), step)) is not None
                ]
                for speaker in {s for s, _ in heard}:
                    edges[speaker, listener][1] += 1
                for speaker, x in heard:
                    edge = edges[speaker, listener]
                    edge[0] += 1
                    edge[2] += (o1 - o0) / len(heard) * _sign(x - o0)
        rows += [
            {
                "episode_id": episode_id,
                "speaker": s,
                "listener": listener,
                "messages": int(m),
                "intervals": int(i),
                "weight": float(w),
            }
            for (s, listener), (m, i, w) in edges.items()
        ]
    schema = {
        "episode_id": pl.Int64,
        "speaker": pl.String,
        "listener": pl.String,
        "messages": pl.Int64,
        "intervals": pl.Int64,
        "weight": pl.Float64,
    }
    out = pl.DataFrame(rows, schema=schema)
    return with_context(out, data.episodes).sort("episode_id", "speaker", "listener")


def influence_graph(edges: pl.DataFrame, episode_id: int) -> nx.DiGraph:
    """The influence graph of one episode: edge speaker -> listener with ``weight`` and ``messages``."""
    graph = nx.DiGraph()
    for speaker, listener, weight, messages in (
        edges.filter(pl.col("episode_id") == episode_id)
        .select("speaker", "listener", "weight", "messages")
        .iter_rows()
    ):
        graph.add_edge(speaker, listener, weight=weight, messages=messages)
    return graph


def influence_summary(source: Source | pl.DataFrame) -> pl.DataFrame:
    """Who moved whom: per member, weighted degrees, influence PageRank and community.

    Args:
        source: A database path or :class:`GroupData` (every member is listed,
            silent ones too), or an :func:`influence` frame (only members on an edge).

    Returns:
        One row per episode x member: context columns (when known), ``agent``,
        ``out_weight`` (sum of weights of its edges as speaker; negative when
        listeners moved away), ``in_weight`` (as listener), ``out_edges``,
        ``in_edges``, ``pagerank`` (PageRank on the graph of positive edges,
        reversed so that rank flows to who did the moving: high = influential),
        ``community`` (0 = largest; ``networkx`` greedy modularity on the
        undirected graph of positive weights, summed both ways; a member
        without positive edges is a community of its own), then ``param:<name>``.
    """
    if isinstance(source, pl.DataFrame):
        edges, members, context = source, None, context_of(source)
    else:
        data = group_data(source)
        edges, members, context = influence(data), members_only(data.members), data.episodes
    rows = []
    episodes = set(edges["episode_id"].to_list())
    if members is not None:
        episodes |= set(members["episode_id"].to_list())
    for episode_id in sorted(episodes):
        graph = influence_graph(edges, episode_id)
        if members is not None:
            graph.add_nodes_from(members.filter(pl.col("episode_id") == episode_id)["agent"])
        rows += _centralities(episode_id, graph)
    schema = {
        "episode_id": pl.Int64,
        "agent": pl.String,
        "out_weight": pl.Float64,
        "in_weight": pl.Float64,
        "out_edges": pl.Int64,
        "in_edges": pl.Int64,
        "pagerank": pl.Float64,
        "community": pl.Int64,
    }
    out = pl.DataFrame(rows, schema=schema)
    return with_context(out, context).sort("episode_id", "agent")


def _centralities(episode_id: int, graph: nx.DiGraph) -> list[dict[str, Any]]:
    if len(graph) == 0:
        return []
    positive = nx.DiGraph()
    positive.add_nodes_from(graph)
    positive.add_weighted_edges_from((u, v, w) for u, v, w in graph.edges(data="weight") if w > 0)
    rank = nx.pagerank(positive.reverse(copy=True), weight="weight")
    undirected = nx.Graph()
    undirected.add_nodes_from(positive)
    for u, v, w in positive.edges(data="weight"):
        prior = undirected.get_edge_data(u, v, {"weight": 0.0})["weight"]
        undirected.add_edge(u, v, weight=prior + w)
    found = nx.community.greedy_modularity_communities(undirected, weight="weight")
    ordered = sorted(found, key=lambda c: (-len(c), sorted(c)))
    community = {node: i for i, nodes in enumerate(ordered) for node in nodes}
    return [
        {
            "episode_id": episode_id,
            "agent": node,
            "out_weight": float(graph.out_degree(node, weight="weight")),
            "in_weight": float(graph.in_degree(node, weight="weight")),
            "out_edges": graph.out_degree(node),
            "in_edges": graph.in_degree(node),
            "pagerank": rank.get(node),
            "community": community.get(node),
        }
        for node in sorted(graph)
    ]


def _last_before(points: list[tuple[int, float]], step: int) -> float | None:
    """The last reading at ``t <= step`` (a reading at t precedes the utterance with step t)."""
    value = None
    for t, v in points:
        if t > step:
            break
        value = v
    return value


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


__all__ = [
    "influence",
    "influence_graph",
    "influence_summary",
    "participation",
    "participation_summary",
    "reciprocity",
    "reply_graph",
    "reply_pairs",
]
