"""Group dynamics in figures and in the report: opinion trajectories, participation, influence.

The numbers come from :mod:`personae.studies.group.analysis`; this module draws them
(matplotlib, imported lazily) and builds the "Group dynamics" report section.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import networkx as nx
import polars as pl

from personae.report.html import Section, figure_html, html_table, paragraph, subheading
from personae.studies.group.analysis import (
    BIMODALITY_THRESHOLD,
    SCALE,
    GroupData,
    OpinionSource,
    Source,
    episode_network,
    group_summary,
    influence,
    influence_graph,
    influence_summary,
    load_group,
    participation,
)
from personae.studies.group.frames import (
    first_episode,
    group_data,
    is_param,
    members_only,
    opinion_frame,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure


__all__ = ["plot_influence_graph", "plot_opinions", "plot_participation", "section"]


def plot_opinions(
    opinions: OpinionSource, episode_id: int | None = None, path: str | Path | None = None
) -> Figure:
    """Opinion trajectories of one episode: a line per member and the group mean in black.

    Args:
        opinions: A database path, :class:`GroupData` or :func:`opinions` frame.
        episode_id: The episode; default the first with opinions.
        path: Save the figure here as PNG.
    """
    from personae.analysis.plots import (
        MAX_LEGEND,
        empty_figure,
        finish_figure,
        palette,
        subplot_grid,
    )

    frame = members_only(opinion_frame(opinions)).filter(pl.col("opinion").is_not_null())
    episode_id = first_episode(frame, episode_id)
    frame = frame.filter(pl.col("episode_id").eq_missing(episode_id))
    if frame.is_empty():
        return finish_figure(empty_figure("no opinions"), path)
    per_member = frame.group_by("agent", "t").agg(pl.col("opinion").mean()).sort("t")
    fig, (ax,) = subplot_grid(1, size=(7.0, 4.0))
    agents = sorted(set(per_member["agent"].to_list()))
    for index, (agent, colour) in enumerate(zip(agents, palette(len(agents)), strict=True)):
        line = per_member.filter(pl.col("agent") == agent)
        ax.plot(
            line["t"].to_list(),
            line["opinion"].to_list(),
            marker="o",
            markersize=3,
            color=colour,
            alpha=0.7,
            label=agent if index < MAX_LEGEND else None,
        )
    mean = per_member.group_by("t").agg(pl.col("opinion").mean()).sort("t")
    ax.plot(
        mean["t"].to_list(), mean["opinion"].to_list(), color="black", linewidth=2.5, label="mean"
    )
    ax.set_ylim(SCALE[0] - 0.2, SCALE[1] + 0.2)
    ax.set_xlabel("utterances so far (t)")
    ax.set_ylabel("opinion (agreement, 1-5)")
    ax.set_title(f"Episode {episode_id}: opinions", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return finish_figure(fig, path)


def plot_participation(
    source: Source | pl.DataFrame, episode_id: int | None = None, path: str | Path | None = None
) -> Figure:
    """Each member's share of the utterances in one episode, with the Gini in the title.

    Args:
        source: A database path, :class:`GroupData` or :func:`participation` frame.
        episode_id: The episode; default the first.
        path: Save the figure here as PNG.
    """
    from personae.analysis.plots import empty_figure, finish_figure, subplot_grid

    frame = source if isinstance(source, pl.DataFrame) else participation(source)
    episode_id = first_episode(frame, episode_id)
    rows = frame.filter(pl.col("episode_id").eq_missing(episode_id)).sort(
        "share", "agent", descending=[True, False], nulls_last=True
    )
    if rows.is_empty():
        return finish_figure(empty_figure("no members"), path)
    fig, (ax,) = subplot_grid(1, size=(max(4.0, 0.5 * rows.height + 2), 3.5))
    ax.bar(rows["agent"].to_list(), rows["share"].fill_null(0).to_list(), color="tab:blue")
    ax.axhline(1 / rows.height, color="grey", linestyle="--", linewidth=1, label="equal share")
    ax.set_ylabel("share of utterances")
    ax.tick_params(axis="x", labelrotation=45, labelsize=7)
    ax.legend(fontsize=7)
    ax.set_title(
        f"Episode {episode_id}: participation (normalised Gini {_fmt(rows['gini_normalised'][0])}, "
        f"entropy {_fmt(rows['entropy'][0])})",
        fontsize=10,
    )
    return finish_figure(fig, path)


def plot_influence_graph(
    source: Source | pl.DataFrame, episode_id: int | None = None, path: str | Path | None = None
) -> Figure:
    """The influence graph of one episode: arrows speaker -> listener, width by |weight|.

    Green arrows: listeners moved toward the speaker; red: away. With a
    database or :class:`GroupData` every member is drawn, the social graph's
    ties are shown in light grey and the layout is a spring layout of the
    social graph (else of the influence graph), seeded so it does not change.

    Args:
        source: A database path, :class:`GroupData` or :func:`influence` frame.
        episode_id: The episode; default the first.
        path: Save the figure here as PNG.
    """
    from personae.analysis.plots import empty_figure, finish_figure, subplot_grid

    data: GroupData | None = None
    if isinstance(source, pl.DataFrame):
        edges = source
    else:
        data = group_data(source)
        edges = influence(data)
    episode_id = first_episode(edges if data is None else members_only(data.opinions), episode_id)
    graph = influence_graph(edges, episode_id) if episode_id is not None else nx.DiGraph()
    social = None
    if data is not None and episode_id is not None:
        social = episode_network(data, episode_id)
        graph.add_nodes_from(
            members_only(data.members).filter(pl.col("episode_id") == episode_id)["agent"]
        )
    if len(graph) == 0:
        return finish_figure(empty_figure("no influence graph"), path)
    backdrop = social if social is not None else graph.to_undirected()
    backdrop.add_nodes_from(graph)
    pos = nx.spring_layout(backdrop, seed=0)
    fig, (ax,) = subplot_grid(1, size=(6.0, 5.0))
    if social is not None:
        nx.draw_networkx_edges(social, pos, ax=ax, edge_color="lightgrey", width=1.0)
    weights = [w for _, _, w in graph.edges(data="weight")]
    top = max((abs(w) for w in weights), default=0.0) or 1.0
    nx.draw_networkx_nodes(graph, pos, ax=ax, node_color="white", edgecolors="black", node_size=500)
    nx.draw_networkx_labels(graph, pos, ax=ax, font_size=7)
    nx.draw_networkx_edges(
        graph,
        pos,
        ax=ax,
        edgelist=list(graph.edges),
        width=[0.5 + 4 * abs(w) / top for w in weights],
        edge_color=["tab:green" if w > 0 else "tab:red" if w < 0 else "grey" for w in weights],
        arrows=True,
        arrowsize=12,
        node_size=500,
        connectionstyle="arc3,rad=0.12",
    )
    ax.set_axis_off()
    ax.set_title(
        f"Episode {episode_id}: influence (green toward the speaker, red away)", fontsize=10
    )
    return finish_figure(fig, path)


# --- report section -----------------------------------------------------------------------------


def section(episode_id: int | None = None, tolerance: float = 0.5) -> Section:
    """The "Group dynamics" section of ``personae report``.

    Args:
        episode_id: The episode whose figures and influence table are shown;
            default the first with opinions.
        tolerance: Opinion range that counts as consensus.

    Returns:
        A :class:`~personae.report.html.Section` whose builder returns
        ``None`` when the database holds no opinion states.
    """

    def build(db: Path) -> str | None:
        return _section_html(load_group(db), episode_id, tolerance)

    return Section("Group dynamics", build)


def _section_html(data: GroupData, episode_id: int | None, tolerance: float) -> str | None:
    if data.opinions.is_empty():
        return None
    summary = group_summary(data, tolerance)
    summary = summary.filter(
        pl.col("episode_id").is_in(data.opinions["episode_id"].unique().to_list())
    )
    shown = first_episode(members_only(data.opinions), episode_id)
    params = [c for c in summary.columns if is_param(c)]
    conditions = (
        summary.group_by("experiment_id", "param_index", *params)
        .agg(
            pl.len().alias("episodes"),
            pl.col("n_members").mean(),
            pl.col("consensus").mean().alias("share_consensus"),
            pl.col("t_consensus").mean().alias("mean_t_consensus"),
            pl.col("variance_first").mean(),
            pl.col("variance_last").mean(),
            pl.col("bimodality_last").mean(),
            pl.col("extreme_share_last").mean(),
            pl.col("gini_normalised").mean(),
            pl.col("entropy").mean(),
            pl.col("reciprocity").mean(),
        )
        .sort("experiment_id", "param_index")
    )
    episode_columns = [c for c in summary.columns if c not in ("experiment", "seed", "params")]
    influence_table = influence_summary(data).filter(pl.col("episode_id") == shown)
    parts = [
        paragraph(
            f"{summary.height} discussions with opinion measurements. Consensus: opinion range "
            f"(max - min) <= {tolerance} from some measurement to the end. Bimodality: Sarle's "
            f"coefficient (> {BIMODALITY_THRESHOLD:.3f} hints at two camps); extreme share: "
            "members at either end of the 1-5 scale; Gini (normalised by its maximum (n-1)/n for "
            "n members, so groups of different sizes compare) and entropy of the members' shares of "
            "utterances; reciprocity of the heard-reply graph."
        ),
        subheading("Per condition (means over episodes)"),
        html_table(conditions),
        subheading("Per episode"),
        html_table(summary.select(episode_columns)),
        subheading(f"Episode {shown}"),
        figure_html(
            plot_opinions(data, shown),
            f"episode {shown}: opinion trajectories",
            sql=f"SELECT * FROM states WHERE episode_id = {shown} ORDER BY t, agent_id",
        ),
        figure_html(
            plot_participation(data, shown),
            f"episode {shown}: participation",
            sql=f"SELECT * FROM transcript WHERE episode_id = {shown} ORDER BY step",
        ),
        figure_html(
            plot_influence_graph(data, shown),
            f"episode {shown}: influence graph",
            sql=f"SELECT * FROM transcript WHERE episode_id = {shown} ORDER BY step",
        ),
        paragraph(
            "Influence: a listener's opinion change between two measurements, split equally "
            "over the member messages it heard, signed toward each speaker's opinion.",
            "note",
        ),
        html_table(
            influence_table.select(
                "agent", "out_weight", "in_weight", "out_edges", "in_edges", "pagerank", "community"
            ).sort("pagerank", descending=True, nulls_last=True)
        ),
    ]
    return "".join(parts)


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.2f}"


# --- shared steps -------------------------------------------------------------------------------
