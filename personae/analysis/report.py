"""``personae report``: one self-contained HTML page about an experiment database.

The page is a list of :class:`Section`\\ s. Each section's builder takes the
database path and returns an HTML fragment, or ``None`` when the database holds
nothing for it; later analyses (persuasion, group dynamics, student cohorts)
add a builder to :data:`SECTIONS` or pass their own list to :func:`write_report`.
Figures are embedded as base64 PNG and there is no script or remote resource,
so the file can be mailed or archived as is.

Example:
    >>> write_report("runs/counseling.db")  # doctest: +SKIP
    PosixPath('runs/counseling.report.html')
"""

from __future__ import annotations

import base64
import html
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from personae.analysis import agreement, drift
from personae.analysis.frames import read_sql
from personae.errors import StoreError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

SectionBuilder = Callable[[Path], str | None]


@dataclass(frozen=True)
class Section:
    """A titled part of the report.

    Attributes:
        title: The heading, also shown in the table of contents.
        build: Takes the database path; returns an HTML fragment (escaped by
            the builder) or ``None`` when there is nothing to show.
    """

    title: str
    build: SectionBuilder


def write_report(
    db: str | Path, out: str | Path | None = None, sections: Sequence[Section] | None = None
) -> Path:
    """Write the HTML report of a personae database.

    A section whose analysis fails shows the error instead of its content, so
    one broken analysis does not cost the rest of the report.

    Args:
        db: The database.
        out: The HTML file; default ``<db stem>.report.html`` next to the database.
        sections: The sections, in order; default :data:`SECTIONS`.

    Returns:
        The path written.

    Raises:
        StoreError: ``db`` is missing or not a personae database.
    """
    db = Path(db)
    read_sql(db, "SELECT 1")  # fail early, with the store's message, on a wrong file
    target = Path(out) if out is not None else db.with_name(f"{db.stem}.report.html")
    shown: list[tuple[str, str]] = []
    empty: list[str] = []
    for section in SECTIONS if sections is None else sections:
        try:
            body = section.build(db)
        except StoreError:
            raise
        except Exception as exc:  # one failing analysis must not lose the whole report
            logger.warning("report section %r failed", section.title, exc_info=True)
            body = _p(f"This section failed: {type(exc).__name__}: {exc}", "error")
        if body is None:
            empty.append(section.title)
        else:
            shown.append((section.title, body))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(_page(db, shown, empty), encoding="utf-8")
    return target


# --- sections -----------------------------------------------------------------------------------


def experiments_section(db: Path) -> str | None:
    """Experiments (name, scenario, model, episodes complete/total) and their parameter sets."""
    experiments = read_sql(
        db,
        "SELECT x.id, x.name, x.scenario, x.model, x.seed, x.created_at, "
        "COALESCE(SUM(e.status = 'complete'), 0) AS complete, "
        "COALESCE(SUM(e.status = 'failed'), 0) AS failed, COUNT(e.id) AS episodes "
        "FROM experiments x LEFT JOIN episodes e ON e.experiment_id = x.id "
        "GROUP BY x.id ORDER BY x.id",
    )
    if experiments.is_empty():
        return _p("No experiment has been run into this database yet.")
    grid = read_sql(
        db,
        "SELECT experiment_id, param_index, params_json AS params, COUNT(*) AS episodes, "
        "SUM(status = 'complete') AS complete FROM episodes "
        "GROUP BY experiment_id, param_index ORDER BY experiment_id, param_index",
    )
    return (
        html_table(experiments)
        + _h3("Parameter sets")
        + _p("Episodes per parameter set; only complete episodes enter the analyses below.")
        + html_table(grid)
    )


def trait_drift_section(db: Path) -> str | None:
    """Trajectories, change, stability and validity of questionnaire and judged scores."""
    scores = drift.trait_scores(db)
    if scores.is_empty():
        return None
    from personae.analysis import plots

    parts = [
        _p(
            f"{scores.height} scale scores from {scores['episode_id'].n_unique()} "
            "complete episodes; forms of one administration are averaged."
        )
    ]
    for instrument, source, level in _plottable(scores):
        parts.append(
            figure_html(
                plots.plot_trajectories(scores, instrument, level, source),
                f"{instrument} {level} scores ({source}) over occasions",
            )
        )
    not_facets = pl.col("level") != "facet"
    summary = drift.drift_summary(scores, instrument=None, level=None, source=None)
    parts += [
        _h3("Change per persona"),
        _p(
            "Baseline = first occasion, last = last occasion, per persona (agent x parameter "
            "set); the 95% CI of the mean change is a Student t interval over its replicates. "
            "Reference = where the SD and reliability of the reliable change index come from: "
            "published norms shipped with personae (norms), never the simulated replicates, "
            "whose spread is seed noise. Effect size = mean change / reference SD; reliable = "
            "Jacobson-Truax |RCI| > 1.96. Scales without a shipped norm (the IPIP-NEO-120 "
            "domains) get no effect size or RCI here: pass reference_sd= and reliability= to "
            "drift.drift_summary."
        ),
        html_table(summary.filter(not_facets).select(_SUMMARY_COLUMNS)),
    ]
    retest = agreement.test_retest(scores, instrument=None, level=None, source=None)
    parts += [
        _h3("Test-retest"),
        _p("Pearson r across respondents between the baseline and each one's last occasion."),
        html_table(retest.filter(not_facets).drop("first", "second")),
    ]
    icc = agreement.icc_across_replicates(
        scores, instrument=None, level=None, source=None, types=["ICC1"]
    ).filter(not_facets)
    parts += [
        _h3("Agreement across replicates (ICC1 per occasion)"),
        _p(
            "Targets: personas (agent x parameter set); raters: replicates; one-way ICC(1,1) "
            "of a single replicate. drift.icc_across_replicates gives every type with its "
            "95% CI."
        ),
        _icc_table(icc),
    ]
    if not agreement.target_pairs(scores).is_empty():
        parts += [
            _h3("Target vs measured (convergent validity)"),
            figure_html(plots.plot_target_vs_measured(scores), "persona target vs measured"),
            html_table(agreement.convergent_validity(scores)),
        ]
    if not agreement.self_judge_pairs(scores).is_empty():
        parts += [
            _h3("Self-report vs judged behaviour"),
            _p("Questionnaire and judge at the same point (same episode, agent, session, point)."),
            figure_html(plots.plot_self_vs_judge(scores), "self-report vs judge"),
            html_table(agreement.self_vs_judge(scores)),
        ]
    clinical = drift.clinical_change(scores)
    if not clinical.is_empty():
        parts += [
            _h3("Clinical change"),
            figure_html(plots.plot_clinical_change(scores), "clinical totals, first vs last"),
            html_table(_clinical_summary(clinical)),
            _h3("Band transitions, with the reliable change verdict"),
            _p(
                "A band transition (PHQ-9 9 -> 10 is mild -> moderate) is no change unless the "
                "RCI says so: verdict = Jacobson-Truax RCI against the published norm "
                "(reference columns in drift.clinical_change). Jacobson-Truax category: "
                "recovered = reliable improvement ending on the functional side of the cut-off "
                "(criterion b, 2 SD above the general-population mean, unless clinical norms "
                "are passed)."
            ),
            html_table(
                clinical.group_by("instrument", "transition", "verdict", "jt_category")
                .agg(pl.len().alias("respondents"))
                .sort("instrument", "respondents", descending=[False, True])
            ),
        ]
    return "".join(parts)


def measurement_quality_section(db: Path) -> str | None:
    """Invalid answers, internal consistency, option-order and prompt-variant effects."""
    measurements = _complete_rows(
        db,
        "measurements",
        "m.episode_id, m.agent_id, m.occasion, m.instrument, m.item, m.prompt_variant, "
        "m.option_order, m.value, m.valid, m.reason",
    )
    if measurements.is_empty():
        return None
    try:
        from personae.measures.reliability import (
            option_order_asymmetry,
            prompt_variant_sensitivity,
            refusal_rate,
        )
    except ImportError as exc:
        invalid = measurements.group_by("instrument").agg(
            pl.len().alias("n"), (pl.col("valid") == 0).sum().alias("n_invalid")
        )
        return (
            _h3("Invalid answers")
            + html_table(invalid.with_columns((pl.col("n_invalid") / pl.col("n")).alias("share")))
            + _p(f"Reliability and response-bias statistics unavailable: {exc}.", "note")
        )
    parts = [
        _h3("Invalid answers (refusals, unparseable, out of range)"),
        html_table(refusal_rate(measurements, by=["instrument"])),
        _p("Per form (prompt variant x option order):"),
        html_table(refusal_rate(measurements, by=["instrument", "prompt_variant", "option_order"])),
        _h3("Internal consistency"),
        _p(
            "Cronbach's alpha and McDonald's omega-total per scale across respondents (each "
            "agent x occasion x form). Read: >= .70 acceptable, >= .80 good, >= .90 excellent."
        ),
        _reliability_tables(measurements),
    ]
    scores = _complete_rows(
        db,
        "scores",
        "s.episode_id, s.agent_id, s.occasion, s.instrument, s.level, s.scale, s.value, "
        "s.prompt_variant, s.option_order, s.source",
    ).filter((pl.col("source") == "self_report") & (pl.col("level") != "facet"))
    tests = _p(
        "Each respondent (agent x occasion) that answered several forms is compared with "
        "itself: paired t-test on its forward minus reversed score, repeated-measures ANOVA "
        "across wordings (Greenhouse-Geisser p with 3 or more). Independent-samples tests "
        "only where respondents answered one form each; the design and test columns say which."
    )
    if scores["option_order"].n_unique() > 1:
        parts += [
            _h3("Option-order asymmetry"),
            tests,
            html_table(option_order_asymmetry(scores)),
        ]
    if scores["prompt_variant"].n_unique() > 1:
        parts += [
            _h3("Prompt-variant sensitivity"),
            *([] if scores["option_order"].n_unique() > 1 else [tests]),
            html_table(prompt_variant_sensitivity(scores)),
        ]
    if scores["option_order"].n_unique() <= 1 or scores["prompt_variant"].n_unique() <= 1:
        parts.append(
            _p(
                "Option-order or prompt-variant effects need more than one order or variant: "
                "set option_orders / variants on the questionnaire probe.",
                "note",
            )
        )
    return "".join(parts)


def persuasion_section(db: Path) -> str | None:
    """Debates: shift toward the opponent, the ordinal regression, stance curves."""
    from personae.analysis.persuasion_report import build_section

    return build_section(db)


def group_section(db: Path) -> str | None:
    """Group discussions: opinion dynamics, participation, replies, influence."""
    from personae.analysis.group_report import section

    return section().build(db)


def cohort_section(db: Path) -> str | None:
    """Student cohorts: state trajectories, per-student panels, interventions, validation."""
    from personae.analysis.cohort_report import section

    return section().build(db)


#: The report's sections, in order; append a :class:`Section` to add one.
SECTIONS: list[Section] = [
    Section("Experiments", experiments_section),
    Section("Trait drift", trait_drift_section),
    Section("Measurement quality", measurement_quality_section),
    Section("Persuasion", persuasion_section),
    Section("Group dynamics", group_section),
    Section("Student cohort", cohort_section),
]


# --- pieces -------------------------------------------------------------------------------------


def html_table(frame: pl.DataFrame, digits: int = 3, max_rows: int = 200) -> str:
    """Render a polars frame as an HTML table, every cell escaped.

    Floats are rounded to ``digits``, nulls shown empty, ``param:`` columns and
    ``params`` JSON kept as text. Rows past ``max_rows`` are left out with a note.
    """
    if frame.is_empty():
        return _p("(no rows)", "note")
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for row in frame.head(max_rows).iter_rows():
        cells = "".join(_cell(value, digits) for value in row)
        rows.append(f"<tr>{cells}</tr>")
    more = ""
    if frame.height > max_rows:
        more = _p(f"{frame.height - max_rows} more rows not shown (of {frame.height}).", "note")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>{more}"


def figure_html(fig: Figure, caption: str) -> str:
    """Embed a figure as a base64 PNG ``<img>`` with an escaped caption."""
    from personae.analysis.plots import png_bytes

    data = base64.b64encode(png_bytes(fig)).decode("ascii")
    text = html.escape(caption)
    return (
        f'<figure><img alt="{text}" src="data:image/png;base64,{data}">'
        f"<figcaption>{text}</figcaption></figure>"
    )


def _cell(value: Any, digits: int) -> str:
    if value is None:
        return "<td></td>"
    if isinstance(value, bool):
        return f"<td>{'yes' if value else 'no'}</td>"
    if isinstance(value, float):
        small = value != 0 and abs(value) < 10**-digits
        return (
            f'<td class="num">{value:.1e}</td>'
            if small
            else f'<td class="num">{value:.{digits}f}</td>'
        )
    if isinstance(value, int):
        return f'<td class="num">{value}</td>'
    return f"<td>{html.escape(str(value))}</td>"


def paragraph(text: str, css: str | None = None) -> str:
    """A ``<p>`` with ``text`` escaped, optionally with a CSS class (e.g. ``note``)."""
    attr = f' class="{css}"' if css else ""
    return f"<p{attr}>{html.escape(text)}</p>"


def subheading(text: str) -> str:
    """An ``<h3>`` with ``text`` escaped."""
    return f"<h3>{html.escape(text)}</h3>"


_p = paragraph
_h3 = subheading


def _icc_table(icc: pl.DataFrame) -> str:
    """ICCs with occasions as columns, or one sentence when none could be computed."""
    if icc["icc"].is_not_null().sum() == 0:
        reasons = sorted({str(r) for r in icc["reason"].drop_nulls()})
        return _p(f"Not computed: {'; '.join(reasons) or 'no scores'}.", "note")
    keys = ["experiment_id", "instrument", "source", "scale"]
    wide = (
        icc.sort("occasion")
        .with_columns(pl.format("occasion {}", "occasion").alias("at"))
        .pivot(on="at", index=keys, values="icc")
    )
    sizes = icc.group_by(keys).agg(pl.col("n_targets").max(), pl.col("n_raters").max())
    return html_table(wide.join(sizes, on=keys, how="left").sort(keys))


_SUMMARY_COLUMNS = [
    "instrument",
    "source",
    "scale",
    "persona",
    "respondents",
    "target",
    "baseline_mean",
    "last_mean",
    "mean_change",
    "change_ci_low",
    "change_ci_high",
    "reference",
    "effect_size",
    "share_reliable",
    "mean_slope",
]


def _plottable(scores: pl.DataFrame) -> list[tuple[str, str, str]]:
    """(instrument, source, level) to draw: domains, or totals of instruments without domains."""
    found = scores.select("instrument", "source", "level").unique()
    out = []
    for (instrument, source), group in found.group_by("instrument", "source"):
        levels = set(group["level"].to_list())
        level = "domain" if "domain" in levels else "total" if "total" in levels else None
        if level is not None:
            out.append((str(instrument), str(source), level))
    return sorted(out, key=lambda key: (key[1] != "self_report", key[0]))


def _clinical_summary(clinical: pl.DataFrame) -> pl.DataFrame:
    return (
        clinical.group_by("instrument", "param_index", "agent")
        .agg(
            pl.len().alias("respondents"),
            pl.col("value_first").mean().alias("mean_first"),
            pl.col("value_last").mean().alias("mean_last"),
            pl.col("change").mean().alias("mean_change"),
            pl.col("band_changed").sum().alias("band_changed"),
            (pl.col("verdict") == "reliable improvement").sum().alias("reliably_improved"),
            (pl.col("verdict") == "reliable deterioration").sum().alias("reliably_worse"),
        )
        .sort("instrument", "param_index", "agent")
    )


def _complete_rows(db: Path, table: str, columns: str) -> pl.DataFrame:
    """Rows of ``measurements`` or ``scores`` from complete episodes (empty if the table is absent)."""
    if read_sql(db, f"SELECT name FROM sqlite_master WHERE name = '{table}'").is_empty():
        return pl.DataFrame()
    alias = table[0]
    return read_sql(
        db,
        f"SELECT {columns} FROM {table} {alias} JOIN episodes e ON e.id = {alias}.episode_id "
        "WHERE e.status = 'complete'",
    )


def _reliability_tables(measurements: pl.DataFrame) -> str:
    from personae.measures.instruments import load_instrument
    from personae.measures.reliability import reliability

    tables, notes = [], []
    respondent = ("episode_id", "agent_id", "occasion", "prompt_variant", "option_order")
    for name in sorted(set(measurements["instrument"].to_list())):
        if name == "judge-big5":
            continue  # one rating per domain: no items to be consistent with
        try:
            tables.append(reliability(load_instrument(name), measurements, respondent))
        except Exception as exc:  # an unknown user instrument must not hide the others
            notes.append(_p(f"{name}: not computed ({exc})", "note"))
    body = html_table(pl.concat(tables, how="diagonal_relaxed")) if tables else ""
    return body + "".join(notes)


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 78em; padding: 0 1em;
       color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.85em; }
th, td { border: 1px solid #ddd; padding: 0.2em 0.5em; text-align: left; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0; } figure img { max-width: 100%; }
figcaption { font-size: 0.85em; color: #555; }
p.note { color: #666; font-size: 0.9em; } p.error { color: #a00; }
nav ul { columns: 2; }
"""


def _page(db: Path, sections: list[tuple[str, str]], empty: list[str]) -> str:
    from personae import __version__

    title = html.escape(f"personae report: {db.name}")
    toc = "".join(
        f'<li><a href="#s{i}">{html.escape(name)}</a></li>' for i, (name, _) in enumerate(sections)
    )
    body = "".join(
        f'<section id="s{i}"><h2>{html.escape(name)}</h2>{content}</section>'
        for i, (name, content) in enumerate(sections)
    )
    notes = ""
    if empty:
        notes = _p("Nothing to show yet for: " + ", ".join(empty) + ".", "note")
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{_CSS}</style></head><body><h1>{title}</h1>"
        f"<nav><ul>{toc}</ul></nav>{body}{notes}"
        + _p(f"Written {stamp} by personae {__version__} from {db}.", "note")
        + "</body></html>"
    )
