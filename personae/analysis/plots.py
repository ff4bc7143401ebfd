"""Figures of trait drift: trajectories, target vs measured, self-report vs judge, clinical change.

Each function takes a database path or a :func:`personae.analysis.drift.trait_scores`
frame and returns a matplotlib ``Figure``, saved as a PNG when ``path`` is given.
Figures are built without ``pyplot`` (no global state, no display needed) and
rendered by the Agg canvas; matplotlib is imported only when a figure is drawn.

Example:
    >>> plot_trajectories("runs/counseling.db", path="drift.png")  # doctest: +SKIP
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import polars as pl

from personae.analysis import agreement, drift

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: Domain order in panels and legends.
DOMAIN_ORDER = ("openness", "conscientiousness", "extraversion", "agreeableness", "neuroticism")
#: At most this many personas get a legend entry; the rest are drawn unlabelled.
MAX_LEGEND = 12


def plot_trajectories(
    scores: drift.Scores,
    instrument: str = "ipip-neo-120",
    level: str = "domain",
    source: str = "self_report",
    band: Literal["range", "ci"] = "range",
    scales: Sequence[str] | None = None,
    path: str | Path | None = None,
) -> Figure:
    """Scores over occasions, one panel per scale, one line per persona (mean over replicates).

    Args:
        scores: A database path or a trait-scores frame.
        instrument, level, source: Which scores.
        band: Shade the replicates' ``range`` (min to max) or the 95% ``ci`` of the mean.
        scales: Panels to draw; default every scale found (domains in O C E A N order).
        path: Save the figure here as PNG.

    Returns:
        The figure; a persona's target, where it has one, is a dashed line in its colour.
    """
    traj = drift.trajectories(scores, instrument, level, source).filter(
        pl.col("value").is_not_null()
    )
    found = _ordered(traj["scale"].unique().to_list())
    panels = [s for s in scales if s in found] if scales is not None else found
    if not panels:
        return finish_figure(empty_figure(f"no {instrument} {level} scores"), path)
    fig, axes = subplot_grid(len(panels))
    stats = (
        traj.group_by(["experiment_id", "param_index", "agent", "scale", "occasion"])
        .agg(
            pl.col("value").mean().alias("mean"),
            pl.col("value").min().alias("low"),
            pl.col("value").max().alias("high"),
            pl.col("value").std().fill_null(0).alias("sd"),
            pl.len().alias("n"),
            pl.col("target").first(),
            pl.col("params").first(),
        )
        .sort("occasion")
    )
    if band == "ci":
        half = 1.96 * pl.col("sd") / pl.col("n").cast(pl.Float64).sqrt()
        stats = stats.with_columns(
            (pl.col("mean") - half).alias("low"), (pl.col("mean") + half).alias("high")
        )
    personas = (
        stats.select("experiment_id", "param_index", "agent", "params")
        .unique(["experiment_id", "param_index", "agent"], maintain_order=True)
        .sort("experiment_id", "param_index", "agent")
    )
    colours = palette(personas.height)
    varying = varying_keys(personas)
    for index, persona in enumerate(personas.iter_rows(named=True)):
        label = persona_label(
            persona["agent"],
            persona["param_index"],
            persona["params"],
            varying.get(persona["experiment_id"]),
        )
        mine = stats.filter(
            (pl.col("experiment_id") == persona["experiment_id"])
            & (pl.col("param_index") == persona["param_index"])
            & (pl.col("agent") == persona["agent"])
        )
        for ax, scale in zip(axes, panels, strict=False):
            line = mine.filter(pl.col("scale") == scale)
            if line.is_empty():
                continue
            x = line["occasion"].to_list()
            ax.plot(
                x,
                line["mean"].to_list(),
                marker="o",
                color=colours[index],
                label=label if index < MAX_LEGEND else None,
            )
            ax.fill_between(
                x,
                line["low"].to_list(),
                line["high"].to_list(),
                color=colours[index],
                alpha=0.15,
                linewidth=0,
            )
            target = line["target"].drop_nulls()
            if not target.is_empty():
                ax.axhline(target[0], color=colours[index], linestyle="--", linewidth=0.8)
    from matplotlib.ticker import MaxNLocator

    for ax, scale in zip(axes, panels, strict=False):
        ax.set_title(scale)
        ax.set_xlabel("occasion")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"{instrument} {level} score")
    shading = "replicate range" if band == "range" else "95% CI over replicates"
    fig.suptitle(f"Trajectories ({source}); lines: mean, shading: {shading}", fontsize=10)
    figure_legend(fig, axes)
    return finish_figure(fig, path)


def plot_target_vs_measured(
    scores: drift.Scores,
    instrument: str = "ipip-neo-120",
    judge: str = "judge-big5",
    path: str | Path | None = None,
) -> Figure:
    """Persona target against measured domain score: self-report at baseline (o) and judge (x).

    One colour per domain; points on the dashed identity line hit the target.
    """
    pairs = agreement.target_pairs(scores, instrument, judge)
    own = pairs.filter(pl.col("measure") == "self-report baseline")
    judged = pairs.filter(pl.col("measure") == "judge all")
    if own.is_empty() and judged.is_empty():
        return finish_figure(empty_figure("no domain scores with persona targets"), path)
    fig, axes = subplot_grid(1, size=(6.4, 4.6))  # the legend sits to the right
    ax = axes[0]
    scales = _ordered({*own["scale"].to_list(), *judged["scale"].to_list()})
    colours = dict(zip(scales, palette(len(scales)), strict=True))
    for scale in scales:
        for part, marker, name in ((own, "o", "self-report"), (judged, "x", "judge")):
            points = part.filter(pl.col("scale") == scale)
            if not points.is_empty():
                ax.scatter(
                    points["target"].to_list(),
                    points["value"].to_list(),
                    marker=marker,
                    color=colours[scale],
                    alpha=0.7,
                    label=f"{scale} ({name})",
                )
    _identity(ax)
    ax.set_xlabel("persona target (1-5)")
    ax.set_ylabel("measured score")
    ax.set_title("Target vs measured: o self-report at baseline, x judge", fontsize=10)
    fig.legend(fontsize=7, loc="outside right upper")
    return finish_figure(fig, path)


def plot_self_vs_judge(
    scores: drift.Scores,
    instrument: str = "ipip-neo-120",
    judge: str = "judge-big5",
    path: str | Path | None = None,
) -> Figure:
    """Self-reported against judged domain score of the same agent at the same point."""
    pairs = agreement.self_judge_pairs(scores, instrument, judge)
    if pairs.is_empty():
        return finish_figure(
            empty_figure("no self-report and judge scores at the same points"), path
        )
    fig, axes = subplot_grid(1, size=(6.4, 4.6))  # the legend sits to the right
    ax = axes[0]
    scales = _ordered(pairs["scale"].unique().to_list())
    for scale, colour in zip(scales, palette(len(scales)), strict=True):
        points = pairs.filter(pl.col("scale") == scale)
        ax.scatter(
            points["judge"].to_list(),
            points["self_report"].to_list(),
            color=colour,
            alpha=0.7,
            label=scale,
        )
    _identity(ax)
    ax.set_xlabel("judged from what the agent said")
    ax.set_ylabel("self-report")
    ax.set_title("Self-report vs judged behaviour", fontsize=10)
    fig.legend(fontsize=7, loc="outside right upper")
    return finish_figure(fig, path)


def plot_clinical_change(
    scores: drift.Scores,
    instruments: Sequence[str] = drift.CLINICAL,
    path: str | Path | None = None,
) -> Figure:
    """Slope chart of clinical totals, first to last occasion, one panel per instrument.

    Lines are green where the total fell (better on PHQ-9, GAD-7 and PSS-10),
    red where it rose and grey where it stayed.
    """
    change = drift.clinical_change(scores, instruments)
    found = [i for i in instruments if i in set(change["instrument"].to_list())]
    if not found:
        return finish_figure(empty_figure("no clinical totals"), path)
    fig, axes = subplot_grid(len(found), size=(3.2, 3.3), sharey=False)
    for ax, name in zip(axes, found, strict=False):
        rows = change.filter(pl.col("instrument") == name)
        for first, last in zip(
            rows["value_first"].to_list(), rows["value_last"].to_list(), strict=True
        ):
            colour = "tab:green" if last < first else "tab:red" if last > first else "grey"
            ax.plot([0, 1], [first, last], color=colour, marker="o", alpha=0.6)
        means = rows.select(pl.col("value_first", "value_last").mean()).row(0)
        ax.plot(
            [0, 1],
            list(means),
            color="black",
            linewidth=2.5,
            label="mean",
        )
        ax.set_xticks([0, 1], ["first", "last"])
        ax.set_xlim(-0.2, 1.2)
        ax.set_title(f"{name} (n={rows.height})")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("total score")
    axes[-1].plot([], [], color="tab:green", marker="o", label="lower at last")
    axes[-1].plot([], [], color="tab:red", marker="o", label="higher at last")
    figure_legend(fig, axes)  # below the panels: a legend inside would cover lines
    return finish_figure(fig, path)


def png_bytes(fig: Figure, dpi: int = 100) -> bytes:
    """Render a figure to PNG bytes (for embedding in HTML)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


# --- drawing helpers ----------------------------------------------------------------------------


def subplot_grid(
    panels: int, size: tuple[float, float] = (3.2, 3.0), sharey: bool = True
) -> tuple[Figure, list[Axes]]:
    from matplotlib.figure import Figure

    columns = min(panels, 5)
    rows = -(-panels // columns)
    fig = Figure(figsize=(size[0] * columns, size[1] * rows), layout="constrained")
    grid = fig.subplots(rows, columns, squeeze=False, sharey=sharey)
    axes = [ax for row in grid for ax in row]
    for ax in axes[panels:]:
        ax.set_visible(False)
    return fig, axes[:panels]


def empty_figure(message: str) -> Figure:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 1.5))
    fig.text(0.5, 0.5, message, ha="center", va="center")
    return fig


def finish_figure(fig: Figure, path: str | Path | None) -> Figure:
    if path is not None:
        fig.savefig(path, format="png", dpi=100, bbox_inches="tight")
    return fig


def palette(count: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if count <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(count)]


def _identity(ax: Axes) -> None:
    low, high = min(ax.get_xlim()[0], ax.get_ylim()[0]), max(ax.get_xlim()[1], ax.get_ylim()[1])
    ax.plot([low, high], [low, high], color="grey", linestyle="--", linewidth=1)
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_aspect("equal")
    ax.grid(alpha=0.3)


def figure_legend(fig: Figure, axes: Sequence[Axes]) -> None:
    """One figure legend below the panels, each label once, sized so the panels keep their room.

    As many columns as fit the figure's width at the longest label; the figure
    grows by the legend's height, so many series lengthen the figure instead
    of shrinking the plots.
    """
    found: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            found.setdefault(label, handle)
    handles, labels = list(found.values()), list(found)
    if not handles:
        return
    width, height = fig.get_size_inches()
    longest = max(len(label) for label in labels)
    # fontsize 7: about 0.055 in per character, plus the line sample and padding.
    entry = 0.055 * longest + 0.6
    columns = max(1, min(len(labels), int(width // entry)))
    rows = -(-len(labels) // columns)
    fig.set_size_inches(width, height + 0.18 * rows + 0.15)
    fig.legend(handles, labels, loc="outside lower center", ncols=columns, fontsize=7)


def _ordered(scales: Any) -> list[str]:
    """Domains in O C E A N order, other scales after them alphabetically."""
    names = set(scales)
    return [d for d in DOMAIN_ORDER if d in names] + sorted(names - set(DOMAIN_ORDER))


def condition_label(
    param_index: int, params: str | None, keys: Sequence[str] | None = None, width: int = 48
) -> str:
    """A parameter set as a reader sees it: ``client.style=reserved (set 1)``.

    Args:
        param_index: The set's number within its experiment.
        params: The set's ``params_json``.
        keys: Show only these parameters (those that vary within the experiment,
            see :func:`varying_keys`); all when None.
        width: Longest text before the parameters are shortened with "…".

    Returns:
        ``"k=v, k2=v2 (set N)"``, or ``"set N"`` for a set without parameters.

    Example:
        >>> condition_label(1, '{"client.style": "reserved", "max_turns": 10}', ["client.style"])
        'client.style=reserved (set 1)'
    """
    try:
        values = json.loads(params) if params else {}
    except ValueError:
        values = {}
    if not isinstance(values, dict):
        values = {}
    shown = {k: v for k, v in values.items() if keys is None or k in keys} or values
    if not shown:
        return f"set {param_index}"
    text = ", ".join(f"{k}={v}" for k, v in shown.items())
    text = text if len(text) <= width else text[: width - 1] + "…"
    return f"{text} (set {param_index})"


def persona_label(
    agent: str, param_index: int, params: str | None, keys: Sequence[str] | None = None
) -> str:
    """An agent in a parameter set: ``Sam: client.style=reserved (set 1)`` (see :func:`condition_label`)."""
    return f"{agent}: {condition_label(param_index, params, keys, width=40)}"


def varying_keys(sets: pl.DataFrame) -> dict[int, list[str]]:
    """Per experiment, the parameters whose value differs between its parameter sets.

    Args:
        sets: Rows with ``experiment_id`` and ``params`` (``params_json``), one or
            more per parameter set.

    Returns:
        ``{experiment_id: [parameter, ...]}``; an experiment whose sets all
        agree (or that has one set) maps to an empty list.
    """
    out: dict[int, list[str]] = {}
    for (experiment,), group in sets.group_by("experiment_id"):
        seen: dict[str, set[str]] = {}
        for raw in group["params"].to_list():
            try:
                values = json.loads(raw) if raw else {}
            except ValueError:
                values = {}
            for key, value in values.items() if isinstance(values, dict) else ():
                seen.setdefault(key, set()).add(json.dumps(value, sort_keys=True))
        out[int(experiment)] = [k for k, v in seen.items() if len(v) > 1]
    return out


# The 0.2 private name, kept working until 0.4.
_persona_label = persona_label
