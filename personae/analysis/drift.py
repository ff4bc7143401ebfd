"""Trait drift: how questionnaire and judged scores move over an episode, and how far to trust them.

Every function takes a database path or a frame already returned by
:func:`trait_scores` (so one load can serve many analyses) and returns a polars
frame; empty input gives an empty frame with the documented columns.

Conventions shared by all functions:

- A *respondent* is one agent in one episode (``episode_id`` x ``agent``).
- A *persona* is one agent in one parameter set of one experiment
  (``experiment_id`` x ``param_index`` x ``agent``); its replicates are the
  episodes that differ only by seed.
- When one administration was given in several forms (``design="cross"``:
  prompt variants x option orders), the forms are averaged first, as TRAIT
  does, so each respondent has one value per scale and occasion.
- ``baseline`` is the first occasion at which the scale has a value, ``last``
  the last one.
- Reliable change is judged against people, not replicates: the SD and
  reliability of the RCI come from published norms (or the caller), see
  :func:`reliable_change`.

Example:
    >>> scores = trait_scores("runs/counseling.db")  # doctest: +SKIP
    >>> trajectories(scores).filter(pl.col("scale") == "neuroticism")  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import polars as pl

from personae.analysis.stats import pearson, t_intervals
from personae.analysis.trait_frames import (
    BIG_FIVE_DOMAINS,
    CONTEXT,
    MEASURE,
    RESPONDENT,
    TRAIT_SCORES_SCHEMA,
    Scores,
    endpoints,
    load_scores,
    param_columns,
    per_occasion,
    select_scores,
    trait_scores,
)
from personae.measures.norms import (
    Criterion,
    Population,
    change_reference,
    clinical_cutoff,
    find_norm,
)

__all__ = [
    "BIG_FIVE_DOMAINS",
    "CLINICAL",
    "RCI_CRITICAL",
    "TRAIT_SCORES_SCHEMA",
    "Reference",
    "Scores",
    "clinical_change",
    "drift_summary",
    "reliable_change",
    "trait_scores",
    "trajectories",
]

#: Instruments whose totals :func:`clinical_change` reads (lower is better for all three).
CLINICAL = ("phq-9", "gad-7", "pss-10")
#: |RCI| above this counts as reliable change (two-sided 5%).
RCI_CRITICAL = 1.96
#: Where the SD and reliability of the reliable change index come from.
Reference = Literal["norms", "sample"]


def trajectories(
    scores: Scores,
    instrument: str | None = "ipip-neo-120",
    level: str | None = "domain",
    source: str | None = "self_report",
) -> pl.DataFrame:
    """Each respondent's scores over occasions, with change from baseline and a linear slope.

    Args:
        scores: A database path or a :func:`trait_scores` frame.
        instrument, level, source: Which scores; ``None`` keeps all.

    Returns:
        One row per episode x agent x scale x occasion: context columns
        (``experiment_id``, ``param_index``, ``replicate``, ``role``, ...),
        ``instrument``, ``source``, ``level``, ``scale``, ``occasion``, ``t``,
        ``session``, ``step``, ``point``, ``value``, ``n_forms`` (forms averaged),
        ``target``, ``baseline`` (value at the first occasion with a value),
        ``change`` (value - baseline), ``slope`` (OLS slope of value on
        occasion over the respondent's valid occasions, null with fewer than
        two) and ``n_points``; then ``param:<name>``.

    Example:
        Values 3.0, 3.5, 4.0 at occasions 0, 1, 2 give change 1.0 at the last
        occasion and slope 0.5.
    """
    frame = per_occasion(select_scores(load_scores(scores), instrument, level, source))
    keys = [*RESPONDENT, *MEASURE]
    valid = frame.filter(pl.col("value").is_not_null()).sort("occasion")
    t = pl.col("occasion").cast(pl.Float64)
    v = pl.col("value")
    fits = (
        valid.group_by(keys)
        .agg(
            pl.col("value").first().alias("baseline"),
            pl.len().alias("n_points"),
            ((t - t.mean()) * (v - v.mean())).sum().alias("_sxy"),
            ((t - t.mean()) ** 2).sum().alias("_sxx"),
        )
        .with_columns(
            pl.when((pl.col("n_points") >= 2) & (pl.col("_sxx") > 0))
            .then(pl.col("_sxy") / pl.col("_sxx"))
            .alias("slope")
        )
        .drop("_sxy", "_sxx")
    )
    columns = [
        *CONTEXT,
        *RESPONDENT,
        *MEASURE,
        "occasion",
        "t",
        "session",
        "step",
        "point",
        "value",
        "n_forms",
        "target",
        "baseline",
        "change",
        "slope",
        "n_points",
    ]
    out = frame.join(fits, on=keys, how="left").with_columns(
        (pl.col("value") - pl.col("baseline")).alias("change"),
        pl.col("n_points").fill_null(0).cast(pl.Int64),
    )
    return out.select([*columns, *param_columns(out)]).sort([*RESPONDENT, *MEASURE, "occasion"])


def reliable_change(
    scores: Scores,
    reliability: Mapping[str, float] | float | None = None,
    instrument: str | None = "ipip-neo-120",
    level: str | None = "domain",
    source: str | None = "self_report",
    *,
    reference: Reference = "norms",
    reference_sd: Mapping[str, float] | float | None = None,
) -> pl.DataFrame:
    """Jacobson-Truax reliable change index of each respondent, baseline to last occasion.

    ``RCI = (x_last - x_first) / S_diff`` with ``S_diff = sqrt(2) * SD * sqrt(1 - r_xx)``
    (Jacobson & Truax, 1991); ``|RCI| > 1.96`` is a reliable change. ``SD`` and
    ``r_xx`` describe the instrument's measurement error *in people*, so by
    default they come from the published norms shipped with personae
    (:mod:`personae.measures.norms`). ``reference="sample"`` takes them from the
    simulated respondents instead (SD of their baseline values, test-retest r
    from baseline to the next occasion); with one persona run over several
    seeds that spread is seed noise and tiny changes come out "reliable", so it
    is used only when asked for.

    Args:
        scores: A database path or a :func:`trait_scores` frame.
        reliability: ``r_xx`` per scale, or one number for every scale; it
            overrides the reference's.
        instrument, level, source: Which scores; ``None`` keeps all.
        reference: ``"norms"`` (published norms) or ``"sample"`` (the simulated respondents).
        reference_sd: The SD per scale, or one number; overrides the reference's.

    Returns:
        One row per episode x agent x scale: context columns, ``occasion_first``,
        ``occasion_last``, ``x_first``, ``x_last``, ``diff``, ``reference``
        (where the SD came from: ``norms``, ``sample`` or ``given``),
        ``sd_reference``, ``sd_source`` (the norm's source and sample),
        ``r_xx``, ``r_source``, ``s_diff``, ``rci``, ``reliable`` (bool),
        ``direction`` (``up``, ``down``, ``none``; null where no RCI),
        ``reason`` (why ``rci`` is null: one occasion, no shipped norm, no
        spread, no usable ``r_xx``), ``param:<name>``.

    Raises:
        ValueError: ``reference`` is neither ``"norms"`` nor ``"sample"``.

    Example:
        >>> reliable_change(scores, instrument="phq-9", level="total")  # doctest: +SKIP
        >>> reliable_change(scores, reference_sd=0.7, reliability=0.88)  # doctest: +SKIP
    """
    ends = endpoints(per_occasion(select_scores(load_scores(scores), instrument, level, source)))
    out = _with_rci(ends, reliability, reference, reference_sd)
    direction = (
        pl.when(pl.col("rci") > RCI_CRITICAL)
        .then(pl.lit("up"))
        .when(pl.col("rci") < -RCI_CRITICAL)
        .then(pl.lit("down"))
        .when(pl.col("rci").is_not_null())
        .then(pl.lit("none"))
    )
    out = out.with_columns(direction.alias("direction"))
    columns = [
        *CONTEXT,
        *RESPONDENT,
        *MEASURE,
        "occasion_first",
        "occasion_last",
        "x_first",
        "x_last",
        "diff",
        *_RCI_COLUMNS,
        "direction",
        "reason",
    ]
    return out.select([*columns, *param_columns(out)])


_RCI_COLUMNS = [
    "reference",
    "sd_reference",
    "sd_source",
    "r_xx",
    "r_source",
    "s_diff",
    "rci",
    "reliable",
]


def _with_rci(
    ends: pl.DataFrame,
    reliability: Mapping[str, float] | float | None,
    reference: Reference,
    reference_sd: Mapping[str, float] | float | None,
) -> pl.DataFrame:
    """Add ``diff``, the reference columns, ``s_diff``, ``rci``, ``reliable`` and ``reason``."""
    if reference not in ("norms", "sample"):
        raise ValueError(f"reference must be 'norms' or 'sample', got {reference!r}.")
    rows: list[dict[str, Any]] = []
    sample = reference == "sample"
    for key, group in ends.partition_by(MEASURE, as_dict=True, maintain_order=True).items():
        measure = dict(zip(MEASURE, key, strict=True))
        spread = group["x_first"].std() if sample else None
        ref = change_reference(
            str(measure["instrument"]),
            str(measure["scale"]),
            reference=reference,
            sd=_given(reference_sd, measure["scale"]),
            reliability=_given(reliability, measure["scale"]),
            sample_sd=float(spread) if isinstance(spread, int | float) else None,
            sample_reliability=pearson(group["x_first"], group["x_next"]).r if sample else None,
            sample_size=group.height,
        )
        rows.append(
            {
                **measure,
                "reference": ref.kind,
                "sd_reference": ref.sd,
                "sd_source": ref.sd_source,
                "r_xx": ref.reliability,
                "r_source": ref.reliability_source,
                "_missing": ref.missing,
            }
        )
    schema = {c: pl.String for c in MEASURE} | {
        "reference": pl.String,
        "sd_reference": pl.Float64,
        "sd_source": pl.String,
        "r_xx": pl.Float64,
        "r_source": pl.String,
        "_missing": pl.String,
    }
    out = ends.join(pl.DataFrame(rows, schema=schema), on=MEASURE, how="left")
    s_diff = math.sqrt(2) * pl.col("sd_reference") * (1 - pl.col("r_xx")).sqrt()
    out = out.with_columns(
        (pl.col("x_last") - pl.col("x_first")).alias("diff"),
        pl.when(pl.col("r_xx") < 1).then(s_diff).alias("s_diff"),
    )
    reason = (
        pl.when(pl.col("occasion_last") == pl.col("occasion_first"))
        .then(pl.lit("one occasion"))
        .when(pl.col("_missing").is_not_null())
        .then(pl.col("_missing"))
        .when(pl.col("sd_reference") <= 0)
        .then(pl.lit("a reference SD of 0 leaves nothing to scale the change by"))
        .when(pl.col("r_xx") >= 1)
        .then(pl.lit("reliability of 1 leaves no measurement error"))
        .when(pl.col("r_xx") <= 0)
        .then(pl.lit("reliability <= 0 is no usable estimate: pass reliability="))
    )
    rci = pl.when(reason.is_null()).then(pl.col("diff") / pl.col("s_diff"))
    return (
        out.with_columns(reason.alias("reason"), rci.alias("rci"))
        .with_columns((pl.col("rci").abs() > RCI_CRITICAL).alias("reliable"))
        .drop("_missing")
    )


def _given(value: Mapping[str, float] | float | None, scale: str) -> float | None:
    got = value.get(scale) if isinstance(value, Mapping) else value
    return None if got is None else float(got)


def drift_summary(
    scores: Scores,
    reliability: Mapping[str, float] | float | None = None,
    instrument: str | None = "ipip-neo-120",
    level: str | None = "domain",
    source: str | None = "self_report",
    *,
    reference: Reference = "norms",
    reference_sd: Mapping[str, float] | float | None = None,
    ci: float = 0.95,
) -> pl.DataFrame:
    """Per persona and scale: mean change and slope with confidence intervals, reliable changes.

    The replicates of a persona (its episodes that differ by seed) are its
    sample: ``mean_change`` and ``mean_slope`` get Student-t intervals and
    one-sample t-tests against 0 across them.

    Args:
        scores, reliability, instrument, level, source, reference, reference_sd:
            As for :func:`reliable_change`.
        ci: Confidence level of the intervals.

    Returns:
        One row per ``experiment_id`` x ``param_index`` x ``agent`` x scale:
        ``persona`` (a label), ``respondents``, ``target``, ``baseline_mean``,
        ``last_mean``, ``mean_change``, ``sd_change``, ``change_ci_low``,
        ``change_ci_high``, ``change_p``, ``reference``, ``sd_reference``,
        ``effect_size`` (mean change / ``sd_reference``, Cohen's d against the
        reference spread), ``share_reliable`` (share of respondents with a
        reliable change, among those with an RCI), ``mean_slope``,
        ``slope_ci_low``, ``slope_ci_high``, ``slope_p``, then ``param:<name>``.
        Intervals and p-values need at least 2 respondents with some spread.
    """
    frame = load_scores(scores)
    changes = reliable_change(
        frame,
        reliability,
        instrument,
        level,
        source,
        reference=reference,
        reference_sd=reference_sd,
    )
    slopes = (
        trajectories(frame, instrument, level, source)
        .group_by([*RESPONDENT, *MEASURE])
        .agg(pl.col("slope").first(), pl.col("target").drop_nulls().first())
    )
    changes = changes.join(slopes, on=[*RESPONDENT, *MEASURE], how="left")
    keys = ["experiment_id", "param_index", "agent", *MEASURE]
    params = param_columns(changes)
    out = (
        changes.group_by(keys)
        .agg(
            pl.len().alias("respondents"),
            pl.col("target").drop_nulls().first(),
            pl.col("x_first").mean().alias("baseline_mean"),
            pl.col("x_last").mean().alias("last_mean"),
            pl.col("diff").mean().alias("mean_change"),
            pl.col("diff").std().alias("sd_change"),
            pl.col("diff").count().alias("_n_change"),
            pl.col("reference").first(),
            pl.col("sd_reference").first(),
            pl.col("reliable").filter(pl.col("rci").is_not_null()).mean().alias("share_reliable"),
            pl.col("slope").mean().alias("mean_slope"),
            pl.col("slope").std().alias("_sd_slope"),
            pl.col("slope").count().alias("_n_slope"),
            *[pl.col(p).first() for p in params],
        )
        .with_columns(
            _persona_label(params).alias("persona"),
            pl.when(pl.col("sd_reference") > 0)
            .then(pl.col("mean_change") / pl.col("sd_reference"))
            .alias("effect_size"),
        )
    )
    out = _t_columns(out, "change", "mean_change", "sd_change", "_n_change", ci)
    out = _t_columns(out, "slope", "mean_slope", "_sd_slope", "_n_slope", ci)
    columns = [
        "experiment_id",
        "param_index",
        "agent",
        "persona",
        *MEASURE,
        "respondents",
        "target",
        "baseline_mean",
        "last_mean",
        "mean_change",
        "sd_change",
        "change_ci_low",
        "change_ci_high",
        "change_p",
        "reference",
        "sd_reference",
        "effect_size",
        "share_reliable",
        "mean_slope",
        "slope_ci_low",
        "slope_ci_high",
        "slope_p",
    ]
    return out.select([*columns, *params]).sort(keys)


def _t_columns(
    frame: pl.DataFrame, name: str, mean: str, sd: str, n: str, ci: float
) -> pl.DataFrame:
    """``<name>_ci_low``, ``<name>_ci_high``, ``<name>_p``: Student t across respondents.

    Null where there are fewer than two respondents or no spread.
    """
    import numpy as np

    sds = frame[sd].cast(pl.Float64).to_numpy()
    counts = frame[n].cast(pl.Float64).to_numpy()
    low, high, p = t_intervals(
        frame[mean].cast(pl.Float64).to_list(), sds.tolist(), counts.tolist(), ci
    )
    usable = (counts >= 2) & (sds > 0)
    series = {f"{name}_ci_low": low, f"{name}_ci_high": high, f"{name}_p": p}
    return frame.with_columns(
        pl.Series(column, np.where(usable, values, np.nan), dtype=pl.Float64).fill_nan(None)
        for column, values in series.items()
    )


def clinical_change(
    scores: Scores,
    instruments: Sequence[str] = CLINICAL,
    *,
    reference: Reference = "norms",
    reference_sd: Mapping[str, float] | float | None = None,
    reliability: Mapping[str, float] | float | None = None,
    functional: Mapping[str, Population] | None = None,
    dysfunctional: Mapping[str, Population] | None = None,
    criterion: Criterion | None = None,
) -> pl.DataFrame:
    """Clinical totals (PHQ-9, GAD-7, PSS-10) first vs last: band transition, RCI and J-T category.

    A band transition (PHQ-9 9 -> 10 is ``mild -> moderate``) is no change in
    itself: read it with ``verdict`` beside it, the reliable change index
    against the published norms (see :func:`reliable_change`). Clinical
    significance follows Jacobson and Truax (1991): a reliable improvement that
    ends on the functional side of the cut-off (see
    :func:`personae.measures.norms.clinical_cutoff`) is ``recovered``.
    Higher totals are worse on all three instruments.

    Args:
        scores: A database path or a :func:`trait_scores` frame.
        instruments: Instruments whose ``total`` scores to compare.
        reference, reference_sd, reliability: As for :func:`reliable_change`
            (keys are instrument names).
        functional: (mean, SD) of the functional population per instrument;
            default the shipped general-population norm.
        dysfunctional: (mean, SD) of a clinical population per instrument;
            none is shipped.
        criterion: ``"a"``, ``"b"`` or ``"c"``; ``None`` takes ``c`` when both
            populations are known, else ``b`` or ``a``.

    Returns:
        One row per episode x agent x instrument: context columns,
        ``occasion_first``, ``occasion_last``, ``value_first``, ``value_last``,
        ``change``, ``band_first``, ``band_last``, ``band_changed``,
        ``transition`` (e.g. ``moderate -> mild``), ``verdict`` (``reliable
        improvement``, ``reliable deterioration``, ``no reliable change``; null
        without an RCI), the reference columns of :func:`reliable_change`,
        ``cutoff``, ``criterion``, ``functional_first``, ``functional_last``,
        ``jt_category`` (``recovered``, ``improved``, ``unchanged``,
        ``deteriorated``), ``reason``, ``param:<name>``.
    """
    frame = per_occasion(
        load_scores(scores).filter(
            pl.col("instrument").is_in(list(instruments))
            & (pl.col("level") == "total")
            & (pl.col("source") == "self_report")
            & pl.col("value").is_not_null()
        )
    )
    ends = endpoints(frame)
    out = _with_rci(ends, reliability, reference, reference_sd)
    cutoffs = pl.DataFrame(
        [
            (name, *_cutoff(name, functional, dysfunctional, criterion))
            for name in out["instrument"].unique().to_list()
        ],
        schema={"instrument": pl.String, "cutoff": pl.Float64, "criterion": pl.String},
        orient="row",
    )
    improved, worse = pl.col("rci") < -RCI_CRITICAL, pl.col("rci") > RCI_CRITICAL
    first_ok, last_ok = pl.col("x_first") <= pl.col("cutoff"), pl.col("x_last") <= pl.col("cutoff")
    out = out.join(cutoffs, on="instrument", how="left").with_columns(
        (pl.col("band_first").fill_null("?") != pl.col("band_last").fill_null("?")).alias(
            "band_changed"
        ),
        pl.format(
            "{} -> {}", pl.col("band_first").fill_null("?"), pl.col("band_last").fill_null("?")
        ).alias("transition"),
        pl.when(improved)
        .then(pl.lit("reliable improvement"))
        .when(worse)
        .then(pl.lit("reliable deterioration"))
        .when(pl.col("rci").is_not_null())
        .then(pl.lit("no reliable change"))
        .alias("verdict"),
        first_ok.alias("functional_first"),
        last_ok.alias("functional_last"),
        pl.when(improved & ~first_ok & last_ok)
        .then(pl.lit("recovered"))
        .when(improved)
        .then(pl.lit("improved"))
        .when(worse)
        .then(pl.lit("deteriorated"))
        .when(pl.col("rci").is_not_null())
        .then(pl.lit("unchanged"))
        .alias("jt_category"),
    )
    renamed = {"x_first": "value_first", "x_last": "value_last", "diff": "change"}
    columns = [
        *CONTEXT,
        *RESPONDENT,
        "instrument",
        "occasion_first",
        "occasion_last",
        "value_first",
        "value_last",
        "change",
        "band_first",
        "band_last",
        "band_changed",
        "transition",
        "verdict",
        *_RCI_COLUMNS,
        "cutoff",
        "criterion",
        "functional_first",
        "functional_last",
        "jt_category",
        "reason",
    ]
    out = out.rename(renamed)
    return out.select([*columns, *param_columns(out)])


def _cutoff(
    instrument: str,
    functional: Mapping[str, Population] | None,
    dysfunctional: Mapping[str, Population] | None,
    criterion: Criterion | None,
) -> tuple[float | None, str | None]:
    """The Jacobson-Truax cut-off of one instrument, or (None, None) without the populations."""
    try:
        return clinical_cutoff(
            _population(instrument, functional, "functional"),
            _population(instrument, dysfunctional, "dysfunctional"),
            criterion,
        )
    except ValueError:
        return None, None


def _population(
    instrument: str,
    given: Mapping[str, Population] | None,
    role: Literal["functional", "dysfunctional"],
) -> Population | None:
    if given is not None and instrument in given:
        return given[instrument]
    norm = find_norm(instrument, instrument, role)
    if norm is None or norm.mean is None or norm.sd is None:
        return None
    return norm.mean, norm.sd


def _persona_label(params: list[str]) -> pl.Expr:
    """``Sam (client.style=reserved, set 1)``: the agent and its condition."""
    parts = [
        pl.concat_str(pl.lit(f"{p.removeprefix('param:')}="), pl.col(p).cast(pl.String))
        for p in params
    ]
    setting = pl.concat_str([*parts, pl.format("set {}", "param_index")], separator=", ")
    return pl.format("{} ({})", "agent", setting)
