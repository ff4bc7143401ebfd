"""Trait-score frames: the ``trait_scores`` view and the steps every trait analysis shares.

:mod:`personae.analysis.drift` (change) and :mod:`personae.analysis.agreement`
(stability and validity) both start here: load the view once, select the
scores, average the forms of one administration, and take each respondent's
first and last values. The conventions are those of :mod:`personae.analysis.drift`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl

from personae.analysis.frames import read_sql, spread_params

# Moved to personae.analysis.stats; importable from here until 0.4.
from personae.analysis.stats import Correlation as Correlation
from personae.analysis.stats import pearson as pearson

#: Letters of ``Persona.big_five`` and the IPIP-NEO domain names they target.
BIG_FIVE_DOMAINS = {
    "O": "openness",
    "C": "conscientiousness",
    "E": "extraversion",
    "A": "agreeableness",
    "N": "neuroticism",
}
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

#: The columns identifying one respondent (one agent in one episode).
RESPONDENT = ["episode_id", "agent"]
#: The columns identifying one measure (what was scored, and by whom).
MEASURE = ["instrument", "source", "level", "scale"]
#: The episode context carried by per-respondent frames.
CONTEXT = ["experiment_id", "experiment", "param_index", "replicate", "seed", "role", "params"]

#: A database path or a frame returned by :func:`trait_scores`.
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
        return empty_frame(TRAIT_SCORES_SCHEMA)
    frame = conform(read_sql(db, "SELECT * FROM trait_scores"))
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


def empty_frame(schema: Mapping[str, Any]) -> pl.DataFrame:
    """An empty frame with these columns and types."""
    return pl.DataFrame(schema=dict(schema))


def conform(frame: pl.DataFrame) -> pl.DataFrame:
    """Give a trait-scores frame every canonical column with its type (all-null columns too)."""
    frame = frame.with_columns(
        pl.lit(None, dtype).alias(column)
        for column, dtype in TRAIT_SCORES_SCHEMA.items()
        if column not in frame.columns
    )
    frame = frame.cast(pl.Schema(TRAIT_SCORES_SCHEMA), strict=False)
    return frame.with_columns(pl.col("t").fill_null(pl.col("occasion")))


def load_scores(scores: Scores) -> pl.DataFrame:
    """A conformed trait-scores frame from a database path or a frame."""
    if isinstance(scores, pl.DataFrame):
        return conform(scores)
    return trait_scores(scores)


def select_scores(
    frame: pl.DataFrame, instrument: str | None, level: str | None, source: str | None
) -> pl.DataFrame:
    """The rows of one instrument, level and source; ``None`` keeps all of that column."""
    for column, wanted in (("instrument", instrument), ("level", level), ("source", source)):
        if wanted is not None:
            frame = frame.filter(pl.col(column) == wanted)
    return frame


def param_columns(frame: pl.DataFrame) -> list[str]:
    """The ``param:<name>`` columns of a frame, in order."""
    return [c for c in frame.columns if c.startswith("param:")]


def per_occasion(frame: pl.DataFrame) -> pl.DataFrame:
    """One row per respondent x measure x occasion: the forms of a crossed design averaged."""
    keys = [*RESPONDENT, *MEASURE, "occasion"]
    others = [c for c in frame.columns if c not in {*keys, "value", "band"}]
    out = (
        frame.group_by(keys, maintain_order=True)
        .agg(
            pl.col("value").mean(),
            pl.col("band").drop_nulls().mode().sort().first(),
            pl.len().alias("n_forms"),
            *[pl.col(c).first() for c in others],
        )
        .sort([*RESPONDENT, *MEASURE, "occasion"])
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


def endpoints(frame: pl.DataFrame) -> pl.DataFrame:
    """Per respondent x measure: the first, second and last values, with their bands.

    Returns:
        Context and ``param:`` columns, ``occasion_first``, ``occasion_last``,
        ``x_first``, ``x_next`` (the second value, null with one), ``x_last``,
        ``band_first``, ``band_last``.
    """
    keys = [*RESPONDENT, *MEASURE]
    params = param_columns(frame)
    return (
        frame.filter(pl.col("value").is_not_null())
        .sort("occasion")
        .group_by(keys, maintain_order=True)
        .agg(
            *[pl.col(c).first() for c in [*CONTEXT, *params]],
            pl.col("occasion").first().alias("occasion_first"),
            pl.col("occasion").last().alias("occasion_last"),
            pl.col("value").first().alias("x_first"),
            pl.col("value").slice(1, 1).first().alias("x_next"),
            pl.col("value").last().alias("x_last"),
            pl.col("band").first().alias("band_first"),
            pl.col("band").last().alias("band_last"),
        )
    )
