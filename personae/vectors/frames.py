"""Activation projections as trait scores, so every trait analysis reads them like any measure.

:func:`activation_scores` returns the ``states`` rows written by
``personae monitor`` in the shape of the ``trait_scores`` view
(:data:`~personae.analysis.trait_frames.TRAIT_SCORES_SCHEMA`): one row per
agent, turn and trait, with ``instrument="vector"`` (the last prompt token
before the turn) or ``"vector:reply"`` (the mean over the reply),
``level="domain"``, ``scale`` the trait, ``source="activation"``, ``step``
the turn's step, and ``occasion`` and ``t`` the agent's turn number (1, 2, ...). The drift
analysis then works unchanged::

    frame = activation_scores("runs/counseling.db")
    trajectories(frame, instrument="vector", source="activation")
    drift_summary(frame, instrument="vector", source="activation", reference="sample")

``target`` is the persona's Big Five level for Big Five traits, as in
``trait_scores``.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from personae.analysis.frames import read_sql, spread_params
from personae.analysis.trait_frames import BIG_FIVE_DOMAINS, TRAIT_SCORES_SCHEMA, conform

__all__ = ["activation_scores"]

_SQL = """
SELECT x.name AS experiment, e.experiment_id, s.episode_id, e.replicate, e.param_index,
       e.params_json AS params, e.seed, a.name AS agent, a.role, a.persona_json,
       s.session, s.t AS step, s.variable, s.value
FROM states s
JOIN episodes e ON e.id = s.episode_id
JOIN experiments x ON x.id = e.experiment_id
JOIN agents a ON a.id = s.agent_id
WHERE e.status = 'complete' AND s.source = 'activation' AND s.variable LIKE 'vector:%'
ORDER BY s.episode_id, a.name, s.variable, s.session, s.t
"""


def _target(persona_json: str | None, scale: str) -> float | None:
    try:
        big_five = json.loads(persona_json or "{}").get("big_five") or {}
    except (ValueError, AttributeError):
        return None
    for key, level in big_five.items():
        name = BIG_FIVE_DOMAINS.get(str(key).upper(), str(key).lower())
        if name == scale and isinstance(level, int | float):
            return float(level)
    return None


def activation_scores(db: str | Path) -> pl.DataFrame:
    """The monitored projections of a database as a trait-scores frame (see the module docstring).

    Args:
        db: A personae database monitored with ``personae monitor``.

    Returns:
        The ``trait_scores`` columns plus ``param:<name>`` columns; empty when
        nothing was monitored.
    """
    raw = read_sql(db, _SQL)
    if raw.is_empty():
        return conform(pl.DataFrame(schema=TRAIT_SCORES_SCHEMA))
    parts = raw["variable"].str.split(":")
    frame = raw.with_columns(
        parts.list.get(1).alias("scale"),
        pl.when(parts.list.len() > 2)
        .then(pl.lit("vector:") + parts.list.get(2, null_on_oob=True))
        .otherwise(pl.lit("vector"))
        .alias("instrument"),
    )
    frame = frame.with_columns(
        pl.struct("persona_json", "scale")
        .map_elements(lambda r: _target(r["persona_json"], r["scale"]), return_dtype=pl.Float64)
        .alias("target"),
        (pl.int_range(pl.len()) + 1).over("episode_id", "agent", "variable").alias("occasion"),
        pl.lit("turn").alias("point"),
        pl.lit("domain").alias("level"),
        pl.lit("activation").alias("source"),
        pl.lit(1).alias("n_items"),
        pl.lit(0).alias("n_missing"),
    ).drop("persona_json", "variable")
    frame = frame.with_columns(pl.col("occasion").cast(pl.Int64).alias("t"))
    frame = conform(frame).select(list(TRAIT_SCORES_SCHEMA))
    return spread_params(frame)
