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

Example:
    >>> data = load_group("runs/town_hall.db")  # doctest: +SKIP
    >>> time_to_consensus(data, tolerance=0.5)  # doctest: +SKIP
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import networkx as nx
import polars as pl

from personae.analysis.frames import EPISODE_CONTEXT, read_sql, spread_params

if TYPE_CHECKING:
    pass

#: Roles that speak but hold no opinion; they are not members.
NON_MEMBER_ROLES = ("moderator",)
#: The opinion scale's ends; :func:`opinion_dynamics` counts members at either end as extreme.
SCALE = (1.0, 5.0)
#: Polarisation sensitivity of the Esteban-Ray index (the largest value their axioms allow).
ESTEBAN_RAY_ALPHA = 1.6
#: Sarle's bimodality coefficient above this (the value of a uniform distribution) hints at bimodality.
BIMODALITY_THRESHOLD = 5 / 9

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
    return _data(db).opinions


def episode_network(source: Source, episode_id: int) -> nx.Graph | None:
    """The social graph of an episode (nodes are agent names), or ``None`` if none was stored."""
    rows = _data(source).networks.filter(pl.col("episode_id") == episode_id)
    if rows.is_empty():
        return None
    graph: nx.Graph = nx.node_link_graph(json.loads(rows["network"][0]), edges="edges")
    return graph


# --- opinions -----------------------------------------------------------------------------------


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
    frame = _members_only(_opinion_frame(opinions))
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
    return _with_context(pl.DataFrame(rows, schema=schema), _context_of(frame))


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
    context = dynamics.select([c for c in dynamics.columns if c in EPISODE_CONTEXT or _is_param(c)])
    return _with_context(pl.DataFrame(rows, schema=schema), context.unique("episode_id"))


def bimodality_coefficient(values: Sequence[float]) -> float | None:
    """Sarle's bimodality coefficient with the small-sample correction (SAS's formula).

    ``BC = (G1^2 + 1) / (G2 + 3 (n-1)^2 / ((n-2)(n-3)))`` with ``G1`` the
    adjusted sample skewness and ``G2`` the adjusted excess kurtosis. A normal
    sample gives about 1/3, a uniform one 5/9 and two separated clusters up to
    1; values above 5/9 (:data:`BIMODALITY_THRESHOLD`) hint at bimodality.

    Returns:
        The coefficient, or ``None`` with fewer than four values or no spread.
    """
    n = len(values)
    if n < 4:
        return None
    mean = sum(values) / n
    m2, m3, m4 = (sum((v - mean) ** k for v in values) / n for k in (2, 3, 4))
    if m2 <= 1e-12:
        return None
    g1 = m3 / m2**1.5
    skew = g1 * math.sqrt(n * (n - 1)) / (n - 2)
    excess = (n - 1) / ((n - 2) * (n - 3)) * ((n + 1) * (m4 / m2**2 - 3) + 6)
    return (skew**2 + 1) / (excess + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3)))


def esteban_ray(values: Sequence[float], alpha: float = ESTEBAN_RAY_ALPHA) -> float | None:
    """Esteban-Ray polarisation ``sum_i sum_j p_i^(1+alpha) p_j |y_i - y_j|`` (K = 1).

    ``y`` are the distinct opinions and ``p`` their shares (Esteban, J.-M., &
    Ray, D. (1994). On the measurement of polarization. *Econometrica*, 62(4),
    819-851). 0 when all agree; on a 1-5 scale two equal camps at 1 and 5 give
    about 0.66 with ``alpha = 1.6``.
    """
    if not values:
        return None
    shares: dict[float, float] = defaultdict(float)
    for v in values:
        shares[v] += 1 / len(values)
    return sum(
        p ** (1 + alpha) * q * abs(y - z) for y, p in shares.items() for z, q in shares.items()
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
    data = _data(source)
    members = _members_only(data.members).select("episode_id", "agent")
    counts = (
        _members_only(data.utterances)
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
    return _with_context(out, data.episodes).sort("episode_id", "agent")


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
    data = _data(source)
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
    return _with_context(out, data.episodes).sort("episode_id")


def gini(values: Sequence[float]) -> float | None:
    """The Gini coefficient ``sum_i sum_j |x_i - x_j| / (2 n^2 mean)``; ``None`` if all are 0."""
    n = len(values)
    total = sum(values)
    if n == 0 or total <= 0:
        return None
    return sum(abs(a - b) for a in values for b in values) / (2 * n * total)


def gini_normalised(values: Sequence[float]) -> float | None:
    """The Gini coefficient divided by its maximum for ``n`` values, ``(n - 1) / n``.

    0 when all are equal, 1 when one value holds everything, whatever ``n``;
    ``None`` if all are 0 or ``n < 2``.

    Example:
        >>> gini_normalised([1.0, 0.0, 0.0, 0.0]), gini([1.0, 0.0, 0.0, 0.0])
        (1.0, 0.75)
    """
    n = len(values)
    raw = gini(values)
    if raw is None or n < 2:
        return None
    return raw * n / (n - 1)


def normalised_entropy(shares: Sequence[float]) -> float | None:
    """Shannon entropy of ``shares`` (summing to 1) divided by ``log n``; ``None`` for n < 2."""
    if len(shares) < 2 or sum(shares) <= 0:
        return None
    return -sum(p * math.log(p) for p in shares if p > 0) / math.log(len(shares))


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
    data = _data(source)
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
    return _with_context(out, data.episodes).sort("episode_id", "replier", "addressee")


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
    data = _data(source)
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
    return _with_context(pl.DataFrame(rows, schema=schema), data.episodes)


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
    data = _data(source)
    frame = _members_only(data.opinions).filter(pl.col("opinion").is_not_null())
    readings = frame.group_by("episode_id", "agent", "t").agg(pl.col("opinion").mean())
    series: dict[int, dict[str, list[tuple[int, float]]]] = defaultdict(lambda: defaultdict(list))
    for episode_id, agent, t, value in readings.sort("t").iter_rows():
        series[episode_id][agent].append((t, value))
    messages: dict[int, list[tuple[int, str, set[str] | None]]] = defaultdict(list)
    for episode_id, step, speaker, heard_by in (
        _members_only(data.utterances)
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
    return _with_context(out, data.episodes).sort("episode_id", "speaker", "listener")


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
        edges, members, context = source, None, _context_of(source)
    else:
        data = _data(source)
        edges, members, context = influence(data), _members_only(data.members), data.episodes
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
    return _with_context(out, context).sort("episode_id", "agent")


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


# --- one table per episode ----------------------------------------------------------------------


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
    data = _data(source)
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
    return _with_context(out, data.episodes).sort("episode_id")


# --- figures ------------------------------------------------------------------------------------


def _data(source: Source) -> GroupData:
    return source if isinstance(source, GroupData) else load_group(source)


def _opinion_frame(source: OpinionSource) -> pl.DataFrame:
    if isinstance(source, pl.DataFrame):
        frame = source.with_columns(
            pl.lit(None, dtype).alias(column)
            for column, dtype in OPINIONS_SCHEMA.items()
            if column not in source.columns
        )
        return frame.cast(pl.Schema(OPINIONS_SCHEMA), strict=False)
    return _data(source).opinions


def _typed(frame: pl.DataFrame, schema: dict[str, Any]) -> pl.DataFrame:
    """``frame`` with exactly ``schema``'s columns and types (missing columns all null)."""
    frame = frame.with_columns(
        pl.lit(None, dtype).alias(c) for c, dtype in schema.items() if c not in frame.columns
    )
    return frame.select(list(schema)).cast(pl.Schema(schema), strict=False)


def _members_only(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.filter(~pl.col("role").fill_null("member").is_in(NON_MEMBER_ROLES))


def _is_param(column: str) -> bool:
    return column.startswith("param:")


def _context_of(frame: pl.DataFrame) -> pl.DataFrame:
    """One row per episode with the context and ``param:`` columns ``frame`` carries."""
    columns = [
        c for c in frame.columns if (c in EPISODE_CONTEXT and c != "episode_id") or _is_param(c)
    ]
    return frame.group_by("episode_id", maintain_order=True).agg(pl.col(c).first() for c in columns)


def _with_context(frame: pl.DataFrame, context: pl.DataFrame) -> pl.DataFrame:
    """Context columns first, then ``frame``'s own, then ``param:<name>``."""
    extra = [c for c in context.columns if c not in frame.columns or c == "episode_id"]
    out = frame.join(context.select(extra), on="episode_id", how="left", maintain_order="left")
    head = [c for c in EPISODE_CONTEXT if c in out.columns]
    own = [c for c in frame.columns if c not in head]
    params = sorted(c for c in out.columns if _is_param(c) and c not in own)
    missing = {c: t for c, t in EPISODE_CONTEXT.items() if c not in out.columns}
    out = out.with_columns(pl.lit(None, t).alias(c) for c, t in missing.items())
    return out.select([*EPISODE_CONTEXT, *own, *params])


def _pick(frame: pl.DataFrame, episode_id: int | None) -> int | None:
    if episode_id is not None or frame.is_empty():
        return episode_id
    return int(frame["episode_id"].min())  # type: ignore[arg-type]


__all__ = [
    "GroupData",
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
