"""The generic report sections: what every personae database can show, whatever the study.

:data:`GENERIC_SECTIONS` are the experiments and their parameter sets, trait
drift (trajectories, change, stability, validity, clinical change) and
measurement quality (invalid answers, internal consistency, option-order and
prompt-variant effects). The studies' own sections come after them (see
:data:`personae.studies.SECTIONS`).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from personae.analysis import agreement, drift
from personae.analysis.frames import read_sql
from personae.report.conversation import conversation_section
from personae.report.html import Section, figure_html, html_table, paragraph, subheading


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
        return paragraph("No experiment has been run into this database yet.")
    grid = read_sql(
        db,
        "SELECT experiment_id, param_index, params_json AS params, COUNT(*) AS episodes, "
        "SUM(status = 'complete') AS complete FROM episodes "
        "GROUP BY experiment_id, param_index ORDER BY experiment_id, param_index",
    )
    return (
        html_table(experiments)
        + subheading("Parameter sets")
        + paragraph("Episodes per parameter set; only complete episodes enter the analyses below.")
        + html_table(grid)
    )


def trait_drift_section(db: Path) -> str | None:
    """Trajectories, change, stability and validity of questionnaire and judged scores."""
    scores = drift.trait_scores(db)
    if scores.is_empty():
        return None
    from personae.analysis import plots

    parts = [
        paragraph(
            f"{scores.height} scale scores from {scores['episode_id'].n_unique()} "
            "complete episodes; forms of one administration are averaged."
        )
    ]
    for instrument, source, level in _plottable(scores):
        parts.append(
            figure_html(
                plots.plot_trajectories(scores, instrument, level, source),
                f"{instrument} {level} scores ({source}) over occasions",
                sql=(
                    "SELECT * FROM trait_scores WHERE instrument = "
                    f"'{_sql_text(instrument)}' AND level = '{_sql_text(level)}' "
                    "ORDER BY experiment_id, episode_id, agent, occasion"
                ),
            )
        )
    not_facets = pl.col("level") != "facet"
    summary = drift.drift_summary(scores, instrument=None, level=None, source=None)
    parts += [
        subheading("Change per persona"),
        paragraph(
            "Baseline = first occasion, last = last occasion, per persona (agent x parameter "
            "set); the 95% CI of the mean change is a Student t interval over its replicates. "
            "Reference = where the SD and reliability of the reliable change index come from: "
            "published norms shipped with personae (norms), never the simulated replicates, "
            "whose spread is seed noise. Effect size = mean change / reference SD; reliable = "
            "Jacobson-Truax |RCI| > 1.96. Scales without a shipped norm (the IPIP-NEO-120 "
            "domains) get no effect size or RCI here: pass reference_sd= and reliability= to "
            "drift.drift_summary."
        ),
        html_table(_labelled(summary.filter(not_facets), scores).select(_SUMMARY_COLUMNS)),
    ]
    retest = agreement.test_retest(scores, instrument=None, level=None, source=None)
    parts += [
        subheading("Test-retest"),
        paragraph(
            "Pearson r across respondents between the baseline and each one's last occasion."
        ),
        html_table(retest.filter(not_facets).drop("first", "second")),
    ]
    icc = agreement.icc_across_replicates(
        scores, instrument=None, level=None, source=None, types=["ICC1"]
    ).filter(not_facets)
    parts += [
        subheading("Agreement across replicates (ICC1 per occasion)"),
        paragraph(
            "Targets: personas (agent x parameter set); raters: replicates; one-way ICC(1,1) "
            "of a single replicate. drift.icc_across_replicates gives every type with its "
            "95% CI."
        ),
        _icc_table(icc),
    ]
    if not agreement.target_pairs(scores).is_empty():
        parts += [
            subheading("Target vs measured (convergent validity)"),
            figure_html(
                plots.plot_target_vs_measured(scores),
                "persona target vs measured",
                sql="SELECT * FROM trait_scores WHERE level = 'domain' ORDER BY episode_id, agent",
            ),
            html_table(agreement.convergent_validity(scores)),
        ]
    if not agreement.self_judge_pairs(scores).is_empty():
        parts += [
            subheading("Self-report vs judged behaviour"),
            paragraph(
                "Questionnaire and judge at the same point (same episode, agent, session, point)."
            ),
            figure_html(
                plots.plot_self_vs_judge(scores),
                "self-report vs judge",
                sql="SELECT * FROM trait_scores ORDER BY episode_id, agent, source, scale",
            ),
            html_table(agreement.self_vs_judge(scores)),
        ]
    clinical = drift.clinical_change(scores)
    if not clinical.is_empty():
        parts += [
            subheading("Clinical change"),
            figure_html(
                plots.plot_clinical_change(scores),
                "clinical totals, first vs last",
                sql="SELECT * FROM trait_scores WHERE level = 'total' ORDER BY episode_id, agent",
            ),
            html_table(
                _labelled(_clinical_summary(clinical), scores).select(
                    "instrument",
                    "persona",
                    pl.exclude("instrument", "persona", "param_index", "agent", "experiment_id"),
                )
            ),
            subheading("Band transitions, with the reliable change verdict"),
            paragraph(
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
            subheading("Invalid answers")
            + html_table(invalid.with_columns((pl.col("n_invalid") / pl.col("n")).alias("share")))
            + paragraph(f"Reliability and response-bias statistics unavailable: {exc}.", "note")
        )
    parts = [
        subheading("Invalid answers (refusals, unparseable, out of range)"),
        html_table(refusal_rate(measurements, by=["instrument"])),
        paragraph("Per form (prompt variant x option order):"),
        html_table(refusal_rate(measurements, by=["instrument", "prompt_variant", "option_order"])),
        subheading("Internal consistency"),
        paragraph(
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
    tests = paragraph(
        "Each respondent (agent x occasion) that answered several forms is compared with "
        "itself: paired t-test on its forward minus reversed score, repeated-measures ANOVA "
        "across wordings (Greenhouse-Geisser p with 3 or more). Independent-samples tests "
        "only where respondents answered one form each; the design and test columns say which."
    )
    if scores["option_order"].n_unique() > 1:
        parts += [
            subheading("Option-order asymmetry"),
            tests,
            html_table(option_order_asymmetry(scores)),
        ]
    if scores["prompt_variant"].n_unique() > 1:
        parts += [
            subheading("Prompt-variant sensitivity"),
            *([] if scores["option_order"].n_unique() > 1 else [tests]),
            html_table(prompt_variant_sensitivity(scores)),
        ]
    if scores["option_order"].n_unique() <= 1 or scores["prompt_variant"].n_unique() <= 1:
        parts.append(
            paragraph(
                "Option-order or prompt-variant effects need more than one order or variant: "
                "set option_orders / variants on the questionnaire probe.",
                "note",
            )
        )
    return "".join(parts)


#: The sections every database gets, in order.
GENERIC_SECTIONS: list[Section] = [
    Section("Experiments", experiments_section),
    Section("Conversations", conversation_section),
    Section("Trait drift", trait_drift_section),
    Section("Measurement quality", measurement_quality_section),
]


def _icc_table(icc: pl.DataFrame) -> str:
    """ICCs with occasions as columns, or one sentence when none could be computed."""
    if icc["icc"].is_not_null().sum() == 0:
        reasons = sorted({str(r) for r in icc["reason"].drop_nulls()})
        return paragraph(f"Not computed: {'; '.join(reasons) or 'no scores'}.", "note")
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


def _labelled(frame: pl.DataFrame, scores: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with ``persona`` = agent and condition: ``Sam: client.style=reserved (set 1)``.

    ``frame`` has ``experiment_id``, ``param_index`` and ``agent``; the condition
    names the parameters that vary within the experiment (see
    :func:`personae.analysis.plots.condition_label`), read from ``scores``.
    """
    from personae.analysis.plots import persona_label, varying_keys

    sets = scores.select("experiment_id", "param_index", "params").unique(
        ["experiment_id", "param_index"]
    )
    varying = varying_keys(sets)
    params = {(x, i): p for x, i, p in sets.iter_rows()}
    labels = [
        persona_label(agent, index, params.get((x, index)), varying.get(x))
        for x, index, agent in frame.select("experiment_id", "param_index", "agent").iter_rows()
    ]
    return frame.with_columns(pl.Series("persona", labels, dtype=pl.String))


def _clinical_summary(clinical: pl.DataFrame) -> pl.DataFrame:
    return (
        clinical.group_by("instrument", "experiment_id", "param_index", "agent")
        .agg(
            pl.len().alias("respondents"),
            pl.col("value_first").mean().alias("mean_first"),
            pl.col("value_last").mean().alias("mean_last"),
            pl.col("change").mean().alias("mean_change"),
            pl.col("band_changed").sum().alias("band_changed"),
            (pl.col("verdict") == "reliable improvement").sum().alias("reliably_improved"),
            (pl.col("verdict") == "reliable deterioration").sum().alias("reliably_worse"),
        )
        .sort("instrument", "experiment_id", "param_index", "agent")
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
            notes.append(paragraph(f"{name}: not computed ({exc})", "note"))
    body = html_table(pl.concat(tables, how="diagonal_relaxed")) if tables else ""
    return body + "".join(notes)


__all__ = [
    "GENERIC_SECTIONS",
    "experiments_section",
    "measurement_quality_section",
    "trait_drift_section",
]


def _sql_text(value: str) -> str:
    """``value`` for a single-quoted SQL string."""
    return value.replace("'", "''")
