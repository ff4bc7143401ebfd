"""Persuasion in figures and in the report: shift by condition, odds ratios, stance curves.

The numbers come from :mod:`personae.studies.debate.analysis`; this module draws
them (matplotlib, imported lazily) and builds the "Persuasion" report section.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from personae.analysis.frames import read_sql
from personae.analysis.plots import empty_figure, finish_figure, palette, subplot_grid
from personae.report.html import Section, figure_html, html_table, paragraph, subheading
from personae.studies.debate.analysis import (
    AGREEMENT_HIGH,
    AGREEMENT_LOW,
    PARTICIPANT_ROLE,
    PUBLISHED,
    Debates,
    debates,
    ordinal_regression,
    proportional_odds_test,
    published_comparison,
    shift_by_condition,
    stance_curves,
    stances,
    trait_moderators,
)
from personae.studies.debate.frames import level_label, natural_order

#: The rows behind the debate's figures (the data links of the report).
STANCES_SQL = (
    "SELECT e.experiment_id, e.param_index, e.params_json, s.episode_id, a.name AS agent, "
    "s.t AS step, s.source, s.value FROM states s JOIN episodes e ON e.id = s.episode_id "
    "JOIN agents a ON a.id = s.agent_id WHERE s.variable = 'agreement' "
    "AND e.status = 'complete' ORDER BY s.episode_id, s.t"
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure


__all__ = [
    "plot_odds_ratios",
    "plot_shift_by_condition",
    "plot_stance_curves",
    "section",
]


def plot_shift_by_condition(
    data: Debates, by: Sequence[str] = ("condition",), path: str | Path | None = None
) -> Figure:
    """Mean shift toward the opponent per group with 95% CI error bars; labels give n and share."""
    stats = shift_by_condition(data, by).filter(pl.col("n") > 0)
    if stats.is_empty():
        return finish_figure(empty_figure("no debate with a pre- and post-agreement"), path)
    fig, axes = subplot_grid(1, size=(max(4.0, 1.3 * stats.height), 3.6))
    ax = axes[0]
    labels = [" / ".join(level_label(v) for v in row) for row in stats.select(by).iter_rows()]
    x = list(range(stats.height))
    means = stats["mean_shift"].to_list()
    low = [m - lo if lo is not None else 0.0 for m, lo in zip(means, stats["ci_low"], strict=True)]
    high = [h - m if h is not None else 0.0 for m, h in zip(means, stats["ci_high"], strict=True)]
    ax.errorbar(x, means, yerr=[low, high], fmt="o", capsize=4, color="tab:blue")
    for i, (n, share) in enumerate(zip(stats["n"], stats["share_toward"], strict=True)):
        ax.annotate(
            f"n={n}\n{share:.0%} toward",
            (i, means[i]),
            xytext=(6, 0),
            fontsize=7,
            textcoords="offset points",
            va="center",
        )
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_xticks(x, labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("shift toward the opponent (points)")
    ax.set_title("Mean shift toward the opponent (95% CI)", fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    return finish_figure(fig, path)


def plot_odds_ratios(
    model: pl.DataFrame, include_controls: bool = False, path: str | Path | None = None
) -> Figure:
    """Forest plot of an :func:`ordinal_regression` result on a log axis, published values marked.

    Args:
        model: The regression frame (threshold rows are never drawn).
        include_controls: Also draw the linear pre-agreement of the proportional
            model and other controls.
        path: Save the figure here as PNG.
    """
    drawn = ["condition", "strength", *(["control"] if include_controls else [])]
    terms = model.filter(pl.col("kind").is_in(drawn))
    terms = terms.filter(pl.col("odds_ratio").is_not_null() & pl.col("ci_high").is_finite())
    if terms.is_empty():
        return finish_figure(empty_figure("no odds ratio to draw"), path)
    fig, axes = subplot_grid(1, size=(5.5, 0.6 * terms.height + 1.2))
    ax = axes[0]
    y = list(range(terms.height))[::-1]
    for yi, row in zip(y, terms.iter_rows(named=True), strict=True):
        ax.plot([row["ci_low"], row["ci_high"]], [yi, yi], color="tab:blue")
        ax.plot(row["odds_ratio"], yi, "o", color="tab:blue", label="this model")
        published = PUBLISHED.get(row["term"], {})
        if published.get("odds_ratio") is not None:
            yp = yi - 0.25
            ax.plot([published["ci_low"], published["ci_high"]], [yp, yp], color="grey")
            ax.plot(published["odds_ratio"], yp, "D", color="grey", label="published")
    ax.axvline(1, color="black", linestyle="--", linewidth=0.8)
    ax.set_xscale("log")
    from matplotlib.ticker import FixedLocator, NullFormatter, StrMethodFormatter

    low, high = ax.get_xlim()
    ticks = [t for t in (0.1, 0.25, 0.5, 1, 2, 4, 10, 25, 100) if low <= t <= high]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(StrMethodFormatter("{x:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_yticks(y, terms["term"].to_list(), fontsize=8)
    ax.set_xlabel("odds ratio of ending closer to the opponent (95% CI)")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    ax.legend(unique.values(), unique.keys(), fontsize=7, loc="best")
    name = terms["model"][0] if "model" in terms.columns else None
    label = f"{name} model, " if name else ""
    ax.set_title(
        f"Ordinal regression ({label}n = {terms['n'][0]}); published: Salvi et al.", fontsize=9
    )
    ax.grid(alpha=0.3, axis="x")
    return finish_figure(fig, path)


def plot_stance_curves(
    data: str | Path | pl.DataFrame, by: str = "condition", path: str | Path | None = None
) -> Figure:
    """Mean stance toward the opponent after each turn, one line and 95% CI band per group."""
    curves = stance_curves(data, [by])
    if curves.is_empty():
        return finish_figure(empty_figure("no stance measured during the debates"), path)
    fig, axes = subplot_grid(1, size=(6.0, 3.8))
    ax = axes[0]
    groups = natural_order(curves.select(by).unique(), [by])[by].to_list()
    for group, colour in zip(groups, palette(len(groups)), strict=True):
        line = curves.filter(pl.col(by).eq_missing(group))
        x = line["index"].to_list()
        ax.plot(
            x, line["mean_toward"].to_list(), marker="o", color=colour, label=level_label(group)
        )
        band = line.drop_nulls(["ci_low", "ci_high"])
        ax.fill_between(
            band["index"].to_list(),
            band["ci_low"].to_list(),
            band["ci_high"].to_list(),
            color=colour,
            alpha=0.15,
            linewidth=0,
        )
    ticks = curves.group_by("index").agg(pl.col("point").mode().sort().first()).sort("index")
    labels = [p if p != "turn" else str(i) for i, p in ticks.iter_rows()]
    ax.set_xticks(ticks["index"].to_list(), labels)
    ax.set_xlabel("after opponent turn (pre = before the debate, post = after it)")
    ax.set_ylim(AGREEMENT_LOW - 0.2, AGREEMENT_HIGH + 0.2)
    ax.set_ylabel(f"agreement toward the opponent ({AGREEMENT_LOW}-{AGREEMENT_HIGH})")
    ax.set_title("Stance over the debate (mean, 95% CI)", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return finish_figure(fig, path)


# --- report section -----------------------------------------------------------------------------


def section() -> Section:
    """The report section "Persuasion"; its builder returns ``None`` for a database without debates."""

    return Section("Persuasion", _section_html)


def _section_html(db: Path) -> str | None:
    """HTML of the persuasion section: shifts, ordinal regression, trait moderators, stance curves."""
    found = read_sql(
        db,
        "SELECT COUNT(*) AS n FROM states s JOIN episodes e ON e.id = s.episode_id"
        " WHERE e.status = 'complete' AND s.variable = 'agreement'"
        " AND s.source IN ('pre', 'post')",
    )
    if not found["n"][0]:
        return None
    table = debates(db)
    if table.is_empty():
        return paragraph(f"Agreement was measured, but no agent has the role {PARTICIPANT_ROLE!r}.")
    shifted = table.filter(pl.col("shift").is_not_null())
    share = shifted.select(pl.col("any_shift").cast(pl.Float64).mean()).item()
    parts = [
        paragraph(
            f"{table.height} complete debates, {shifted.height} with a readable pre- and "
            f"post-agreement and a side; {float(share or 0):.0%} of them moved "
            "toward the opponent. Shift = sign(opponent side) x (post - pre), positive = "
            "toward the opponent."
        ),
        subheading("Shift toward the opponent by condition"),
        figure_html(
            plot_shift_by_condition(table),
            "mean shift toward the opponent",
            sql=STANCES_SQL,
        ),
        html_table(shift_by_condition(table, ["condition"])),
        paragraph("By opponent, personalisation and opinion strength:"),
        html_table(shift_by_condition(table)),
        subheading("Ordinal regression"),
        paragraph(
            "The published model of Salvi et al. (2025), ordinal::clm(post ~ treatment, "
            "nominal = ~ pre): a partial proportional-odds logit of post-debate agreement "
            "toward the opponent on the condition (reference: human, not personalised), with "
            "pre-debate agreement as a factor whose effects differ between thresholds "
            "(nominal) and no topic term."
        ),
    ]
    try:
        model = ordinal_regression(table)
    except ValueError as exc:
        parts.append(paragraph(f"Not estimated: {exc}.", "note"))
    else:
        parts += [
            html_table(model),
            figure_html(
                plot_odds_ratios(model),
                "odds ratios of the ordinal regression",
                sql=STANCES_SQL,
            ),
            paragraph(
                "Does pre-agreement act proportionally? Likelihood-ratio test of the model "
                "above against the proportional-odds model with pre-agreement as a factor "
                "(ordinal's nominal_test); a small p says its effects differ between "
                "thresholds, as the published model allows:"
            ),
            html_table(proportional_odds_test(table)),
            paragraph("Published result beside this model:"),
            html_table(published_comparison(model)),
        ]
    try:
        alternative = ordinal_regression(table, model="proportional")
    except ValueError as exc:
        alternative_html = paragraph(f"Not estimated: {exc}.", "note")
    else:
        alternative_html = html_table(alternative)
    parts += [
        paragraph(
            "Alternative, not the published model: proportional odds with pre-debate "
            "agreement as one linear term and opinion-strength dummies."
        ),
        alternative_html,
    ]
    moderators = trait_moderators(table, ("agreeableness", "openness"))
    parts += [
        subheading("Trait moderators"),
        paragraph(
            "OLS of the shift on each trait (measured where given, else the target), with the "
            "condition as control."
        ),
        html_table(moderators),
    ]
    steps = stances(db)
    if steps.filter(pl.col("point") == "turn").is_empty():
        parts.append(
            paragraph("No stance was measured during the debates (no 'turn' states).", "note")
        )
    else:
        parts += [
            subheading("Stance turn by turn"),
            figure_html(
                plot_stance_curves(steps),
                "stance toward the opponent per turn",
                sql=STANCES_SQL,
            ),
            html_table(stance_curves(steps)),
        ]
    return "".join(parts)


# --- shared steps -------------------------------------------------------------------------------
