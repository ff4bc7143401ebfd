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

Example:
    >>> scores = trait_scores("runs/counseling.db")  # doctest: +SKIP
    >>> trajectories(scores).filter(pl.col("scale") == "neuroticism")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from personae.analysis.frames import read_sql, spread_params

#: Letters of ``Persona.big_five`` and the IPIP-NEO domain names they target.
BIG_FIVE_DOMAINS = {
    "O": "openness",
    "C": "conscientiousness",
    "E": "extraversion",
    "A": "agreeableness",
    "N": "neuroticism",
}
#: Instruments whose totals :func:`clinical_change` reads (lower is better for all three).
CLINICAL = ("phq-9", "gad-7", "pss-10")
#: |RCI| above this counts as reliable change (two-sided 5%).
RCI_CRITICAL = 1.96

#: Columns of :func:`trait_scores` (``param:<name>`` columns follow).
TRAIT_SCORES_SCHEMA: dict[str, Any] = {
    "experiment": pl.String,
    "experiment_id": pl.Int64,
    "episode_id": pl.Int64,
    "replicate": pl.Int64,
    "param_index": pl.Int64,
    "params": pl.String,
    "seed": pl.Int64,
    "agent": pl.String,
    "role": pl.String,
    "session": pl.Int64,
    "step": pl.Int64,
    "point": pl.String,
    "occasion": pl.Int64,
    "instrument": pl.String,
    "level": pl.String,
    "scale": pl.String,
    "value": pl.Float64,
    "band": pl.String,
    "n_items": pl.Int64,
    "n_missing": pl.Int64,
    "prompt_variant": pl.Int64,
    "option_order": pl.String,
    "source": pl.String,
    "target": pl.Float64,
    "t": pl.Int64,
}

_RESPONDENT = ["episode_id", "agent"]
_MEASURE = ["instrument", "source", "level", "scale"]
_CONTEXT = ["experiment_id", "experiment", "param_index", "replicate", "seed", "role", "params"]

Scores = str | Path | pl.DataFrame


def trait_scores(db: str | Path) -> pl.DataFrame:
    """The ``trait_scores`` view (complete episodes only) with targets and parameters.

    Args:
        db: A personae database.

    Returns:
        The view's columns, ``target`` (the persona's ``big_five`` level for Big
        Five domain scales, else null), ``t`` (the occasion, as the time axis)
        and ``param:<name>`` for every grid parameter. A database written before
        the view existed gives an empty frame.
    """
    present = read_sql(db, "SELECT name FROM sqlite_master WHERE name = 'trait_scores'")
    if present.is_empty():
        return _empty(TRAIT_SCORES_SCHEMA)
    frame = _conform(read_sql(db, "SELECT * FROM trait_scores"))
    if frame.is_empty():
        return frame
    targets = _targets(db)
    frame = (
        frame.drop("target")
        .join(targets, on=["episode_id", "agent", "scale"], how="left")
        .with_columns(
            pl.when(pl.col("level") == "domain").then(pl.col("target")).alias("target"),
        )
        .select(list(TRAIT_SCORES_SCHEMA))
    )
    return spread_params(frame)


def _targets(db: str | Path) -> pl.DataFrame:
    agents = read_sql(
        db,
        "SELECT a.episode_id, a.name AS agent, a.persona_json FROM agents a "
        "JOIN episodes e ON e.id = a.episode_id WHERE e.status = 'complete'",
    )
    names = {v: v for v in BIG_FIVE_DOMAINS.values()} | BIG_FIVE_DOMAINS
    rows: list[tuple[int, str, str, float]] = []
    for episode_id, agent, persona_json in agents.iter_rows():
        try:
            big_five = json.loads(persona_json).get("big_five") or {}
        except (ValueError, AttributeError):
            continue
        for key, level in big_five.items():
            scale = names.get(str(key).upper(), names.get(str(key).lower()))
            if scale is not None and isinstance(level, int | float):
                rows.append((episode_id, agent, scale, float(level)))
    schema = {"episode_id": pl.Int64, "agent": pl.String, "scale": pl.String, "target": pl.Float64}
    return pl.DataFrame(rows, schema=schema, orient="row")


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
    frame = _per_occasion(_select(_load(scores), instrument, level, source))
    keys = [*_RESPONDENT, *_MEASURE]
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
        *_CONTEXT,
        *_RESPONDENT,
        *_MEASURE,
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
    return out.select([*columns, *_params(out)]).sort([*_RESPONDENT, *_MEASURE, "occasion"])


def reliable_change(
    scores: Scores,
    reliability: Mapping[str, float] | float | None = None,
    instrument: str | None = "ipip-neo-120",
    level: str | None = "domain",
    source: str | None = "self_report",
) -> pl.DataFrame:
    """Jacobson-Truax reliable change index of each respondent, baseline to last occasion.

    ``RCI = (x_last - x_first) / S_diff`` with ``S_diff = sqrt(2) * SE`` and
    ``SE = SD_baseline * sqrt(1 - r_xx)`` (Jacobson, N. S., & Truax, P. (1991).
    Clinical significance: a statistical approach to defining meaningful change
    in psychotherapy research. *Journal of Consulting and Clinical Psychology*,
    59(1), 12-19). ``SD_baseline`` is the standard deviation of the baseline
    values across all respondents of the scale; ``|RCI| > 1.96`` counts as
    reliable change.

    Args:
        scores: A database path or a :func:`trait_scores` frame.
        reliability: ``r_xx`` per scale (e.g. published alphas), or one number
            for every scale. Scales it does not name use the test-retest
            correlation across respondents between the baseline and the next
            occasion.
        instrument, level, source: Which scores; ``None`` keeps all.

    Returns:
        One row per episode x agent x scale: context columns, ``occasion_first``,
        ``occasion_last``, ``x_first``, ``x_last``, ``diff``, ``sd_baseline``,
        ``r_xx``, ``r_source`` (``given`` or ``test-retest``), ``s_diff``,
        ``rci``, ``reliable`` (bool), ``direction`` (``up``, ``down``, ``none``;
        null where no RCI), ``reason`` (why ``rci`` is null: a single occasion,
        no spread at baseline, or no usable ``r_xx``, i.e. missing, >= 1 or
        <= 0), ``param:<name>``.
    """
    ends = _endpoints(_per_occasion(_select(_load(scores), instrument, level, source)))
    stats: list[dict[str, Any]] = []
    for key, group in ends.partition_by(_MEASURE, as_dict=True, maintain_order=True).items():
        measure = dict(zip(_MEASURE, key, strict=True))
        given = (
            reliability.get(measure["scale"]) if isinstance(reliability, Mapping) else reliability
        )
        if given is not None:
            r_xx: float | None = float(given)
            r_source = "given"
        else:
            r_xx = _pearson(group["x_first"], group["x_next"])[1]
            r_source = "test-retest"
        sd = group["x_first"].std()
        stats.append(
            {
                **measure,
                "sd_baseline": float(sd) if isinstance(sd, int | float) else None,
                "r_xx": r_xx,
                "r_source": r_source,
            }
        )
    schema = {c: pl.String for c in _MEASURE} | {
        "sd_baseline": pl.Float64,
        "r_xx": pl.Float64,
        "r_source": pl.String,
    }
    out = ends.join(pl.DataFrame(stats, schema=schema), on=_MEASURE, how="left")
    s_diff = math.sqrt(2) * pl.col("sd_baseline") * (1 - pl.col("r_xx")).sqrt()
    out = out.with_columns(
        (pl.col("x_last") - pl.col("x_first")).alias("diff"),
        pl.when(pl.col("r_xx") < 1).then(s_diff).alias("s_diff"),
    )
    reason = (
        pl.when(pl.col("occasion_last") == pl.col("occasion_first"))
        .then(pl.lit("one occasion"))
        .when(pl.col("sd_baseline").is_null() | (pl.col("sd_baseline") == 0))
        .then(pl.lit("no spread at baseline across respondents"))
        .when(pl.col("r_xx").is_null())
        .then(pl.lit("no reliability: give one or measure at least 3 respondents twice"))
        .when(pl.col("r_xx") >= 1)
        .then(pl.lit("reliability of 1 leaves no measurement error"))
        .when(pl.col("r_xx") <= 0)
        .then(pl.lit("reliability <= 0 is no usable estimate: pass reliability="))
    )
    rci = pl.when(reason.is_null()).then(pl.col("diff") / pl.col("s_diff"))
    out = out.with_columns(reason.alias("reason"), rci.alias("rci")).with_columns(
        (pl.col("rci").abs() > RCI_CRITICAL).alias("reliable"),
        pl.when(pl.col("rci") > RCI_CRITICAL)
        .then(pl.lit("up"))
        .when(pl.col("rci") < -RCI_CRITICAL)
        .then(pl.lit("down"))
        .when(pl.col("rci").is_not_null())
        .then(pl.lit("none"))
        .alias("direction"),
    )
    columns = [
        *_CONTEXT,
        *_RESPONDENT,
        *_MEASURE,
        "occasion_first",
        "occasion_last",
        "x_first",
        "x_last",
        "diff",
        "sd_baseline",
        "r_xx",
        "r_source",
        "s_diff",
        "rci",
        "reliable",
        "direction",
        "reason",
    ]
    return out.select([*columns, *_params(out)])


def drift_summary(
    scores: Scores,
    reliability: Mapping[str, float] | float | None = None,
    instrument: str | None = "ipip-neo-120",
    level: str | None = "domain",
    source: str | None = "self_report",
) -> pl.DataFrame:
    """Per persona and scale: baseline and last means, mean change, effect size, reliable changes.

    Args:
        scores, reliability, instrument, level, source: As for :func:`reliable_change`.

    Returns:
        One row per ``experiment_id`` x ``param_index`` x ``agent`` x scale:
        ``persona`` (a label), ``respondents``, ``target``, ``baseline_mean``,
        ``last_mean``, ``mean_change``, ``sd_change``, ``effect_size`` (mean
        change / SD of baseline across all respondents, Cohen's d against the
        baseline spread), ``share_reliable`` (share of respondents with a
        reliable change, among those with an RCI), ``mean_slope``, then
        ``param:<name>``.
    """
    frame = _load(scores)
    changes = reliable_change(frame, reliability, instrument, level, source)
    slopes = (
        trajectories(frame, instrument, level, source)
        .group_by([*_RESPONDENT, *_MEASURE])
        .agg(pl.col("slope").first(), pl.col("target").drop_nulls().first())
    )
    changes = changes.join(slopes, on=[*_RESPONDENT, *_MEASURE], how="left")
    keys = ["experiment_id", "param_index", "agent", *_MEASURE]
    params = _params(changes)
    out = (
        changes.group_by(keys)
        .agg(
            pl.len().alias("respondents"),
            pl.col("target").drop_nulls().first(),
            pl.col("x_first").mean().alias("baseline_mean"),
            pl.col("x_last").mean().alias("last_mean"),
            pl.col("diff").mean().alias("mean_change"),
            pl.col("diff").std().alias("sd_change"),
            pl.col("sd_baseline").first(),
            pl.col("reliable").filter(pl.col("rci").is_not_null()).mean().alias("share_reliable"),
            pl.col("slope").mean().alias("mean_slope"),
            *[pl.col(p).first() for p in params],
        )
        .with_columns(
            pl.format("{} (set {})", "agent", "param_index").alias("persona"),
            pl.when(pl.col("sd_baseline") > 0)
            .then(pl.col("mean_change") / pl.col("sd_baseline"))
            .alias("effect_size"),
        )
    )
    columns = [
        "experiment_id",
        "param_index",
        "agent",
        "persona",
        *_MEASURE,
        "respondents",
        "target",
        "baseline_mean",
        "last_mean",
        "mean_change",
        "sd_change",
        "effect_size",
        "share_reliable",
        "mean_slope",
    ]
    return out.select([*columns, *params]).sort(keys)


def clinical_change(scores: Scores, instruments: Sequence[str] = CLINICAL) -> pl.DataFrame:
    """Clinical totals (PHQ-9, GAD-7, PSS-10) at the first and last occasion of each respondent.

    Args:
        scores: A database path or a :func:`trait_scores` frame.
        instruments: Instruments whose ``total`` scores to compare.

    Returns:
        One row per episode x agent x instrument: context columns,
        ``occasion_first``, ``occasion_last``, ``value_first``, ``value_last``,
        ``change``, ``band_first``, ``band_last``, ``band_changed``,
        ``transition`` (e.g. ``moderate -> mild``), ``param:<name>``.
    """
    frame = _per_occasion(
        _load(scores).filter(
            pl.col("instrument").is_in(list(instruments))
            & (pl.col("level") == "total")
            & (pl.col("source") == "self_report")
            & pl.col("value").is_not_null()
        )
    )
    keys = [*_RESPONDENT, "instrument"]
    params = _params(frame)
    out = (
        frame.sort("occasion")
        .group_by(keys, maintain_order=True)
        .agg(
            *[pl.col(c).first() for c in [*_CONTEXT, *params]],
            pl.col("occasion").first().alias("occasion_first"),
            pl.col("occasion").last().alias("occasion_last"),
            pl.col("value").first().alias("value_first"),
            pl.col("value").last().alias("value_last"),
            pl.col("band").first().alias("band_first"),
            pl.col("band").last().alias("band_last"),
        )
        .with_columns(
            (pl.col("value_last") - pl.col("value_first")).alias("change"),
            (pl.col("band_first").fill_null("?") != pl.col("band_last").fill_null("?")).alias(
                "band_changed"
            ),
            pl.format(
                "{} -> {}", pl.col("band_first").fill_null("?"), pl.col("band_last").fill_null("?")
            ).alias("transition"),
        )
    )
    columns = [
        *_CONTEXT,
        *keys,
        "occasion_first",
        "occasion_last",
        "value_first",
        "value_last",
        "change",
        "band_first",
        "band_last",
        "band_changed",
        "transition",
    ]
    return out.select([*columns, *params])


# --- shared steps -------------------------------------------------------------------------------


def _empty(schema: Mapping[str, Any]) -> pl.DataFrame:
    return pl.DataFrame(schema=dict(schema))


def _conform(frame: pl.DataFrame) -> pl.DataFrame:
    """Give a trait-scores frame every canonical column with its type (all-null columns too)."""
    frame = frame.with_columns(
        pl.lit(None, dtype).alias(column)
        for column, dtype in TRAIT_SCORES_SCHEMA.items()
        if column not in frame.columns
    )
    frame = frame.cast(pl.Schema(TRAIT_SCORES_SCHEMA), strict=False)
    return frame.with_columns(pl.col("t").fill_null(pl.col("occasion")))


def _load(scores: Scores) -> pl.DataFrame:
    if isinstance(scores, pl.DataFrame):
        return _conform(scores)
    return trait_scores(scores)


def _select(
    frame: pl.DataFrame, instrument: str | None, level: str | None, source: str | None
) -> pl.DataFrame:
    for column, wanted in (("instrument", instrument), ("level", level), ("source", source)):
        if wanted is not None:
            frame = frame.filter(pl.col(column) == wanted)
    return frame


def _params(frame: pl.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.startswith("param:")]


def _per_occasion(frame: pl.DataFrame) -> pl.DataFrame:
    """One row per respondent x measure x occasion: the forms of a crossed design averaged."""
    keys = [*_RESPONDENT, *_MEASURE, "occasion"]
    others = [c for c in frame.columns if c not in {*keys, "value", "band"}]
    out = (
        frame.group_by(keys, maintain_order=True)
        .agg(
            pl.col("value").mean(),
            pl.col("band").drop_nulls().mode().sort().first(),
            pl.len().alias("n_forms"),
            *[pl.col(c).first() for c in others],
        )
        .sort([*_RESPONDENT, *_MEASURE, "occasion"])
    )
    return _reband(out)


def _reband(frame: pl.DataFrame) -> pl.DataFrame:
    """Band averaged totals by the instrument's bands (else keep the forms' most common band)."""
    averaged = frame.filter((pl.col("n_forms") > 1) & pl.col("band").is_not_null())
    if averaged.is_empty():
        return frame
    from personae.errors import ConfigError
    from personae.measures.instruments import load_instrument
    from personae.measures.scoring import band_of

    bands: dict[tuple[str, str], Any] = {}
    for instrument, scale in averaged.select("instrument", "scale").unique().iter_rows():
        try:
            bands[instrument, scale] = load_instrument(instrument).bands.get(scale)
        except ConfigError:
            continue
    rows = frame.select("instrument", "scale", "value", "band", "n_forms").iter_rows()
    labels = [
        band_of(bands[i, scale], value) if n > 1 and bands.get((i, scale)) else band
        for i, scale, value, band, n in rows
    ]
    return frame.with_columns(pl.Series("band", labels, dtype=pl.String))


def _endpoints(frame: pl.DataFrame) -> pl.DataFrame:
    """Per respondent x measure: the first, second and last occasions with a value."""
    keys = [*_RESPONDENT, *_MEASURE]
    params = _params(frame)
    return (
        frame.filter(pl.col("value").is_not_null())
        .sort("occasion")
        .group_by(keys, maintain_order=True)
        .agg(
            *[pl.col(c).first() for c in [*_CONTEXT, *params]],
            pl.col("occasion").first().alias("occasion_first"),
            pl.col("occasion").last().alias("occasion_last"),
            pl.col("value").first().alias("x_first"),
            pl.col("value").slice(1, 1).first().alias("x_next"),
            pl.col("value").last().alias("x_last"),
        )
    )


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _pearson(x: pl.Series, y: pl.Series) -> tuple[int, float | None, float | None, str | None]:
    """Pearson r over complete pairs: (n, r, p, reason r is null)."""
    pairs = [
        (a, b)
        for a, b in zip(x.to_list(), y.to_list(), strict=True)
        if _finite(a) is not None and _finite(b) is not None
    ]
    n = len(pairs)
    if n < 3:
        return n, None, None, f"fewer than 3 pairs ({n})"
    xs, ys = zip(*pairs, strict=True)
    if len(set(xs)) == 1 or len(set(ys)) == 1:
        return n, None, None, "no variance"
    from scipy.stats import pearsonr

    result = pearsonr(xs, ys)
    return n, _finite(result.statistic), _finite(result.pvalue), None
