"""Student cohort: reading the data every cohort analysis starts from, as one long series.

A *unit* is one student in one episode (:data:`UNIT_KEYS`); a *condition* is
one parameter set of one experiment (:data:`CONDITION_KEYS`), whose episodes
are its replicates. :func:`as_series` turns a database, a :func:`state_series`
frame, or any frame with ``student``, ``day`` and either ``variable``/``value``
columns (long) or one column per variable (wide, e.g.
:func:`personae.studies.cohort.term.mental_state.simulate`'s output or a StudentLife
features frame, whose sensing columns are read as ``feature:<name>``) into the
same long frame; :func:`unit_days` averages it to one value per unit x day x
variable x source; :func:`group_codes` numbers the units and days for the fixed-effects (within)
transform of :mod:`personae.analysis.stats` (:func:`demean` and :func:`dummy_rank`,
still importable from here). The analyses are in :mod:`personae.studies.cohort.analysis`
(trajectories, intervention effects, questionnaires) and
:mod:`personae.studies.cohort.relations` (sensing against self-report).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from personae.analysis.frames import EPISODE_CONTEXT, read_sql, spread_params
from personae.analysis.stats import demean, dummy_rank
from personae.studies.cohort.term.ema import COHORT_SOURCE
from personae.studies.cohort.term.sensing import FEATURES

#: EMA answers the cohort scenario writes (source ``ema``).
EMA_VARIABLES = ("ema_stress", "ema_mood", "ema_sleep", "ema_social")
#: Sources of mental-state rows.
STATE_SOURCES = ("rule", "llm")
#: Daily sensing features; stored as ``feature:<name>``.
SENSING_FEATURES = FEATURES
FEATURE_PREFIX = "feature:"
TREATED_PREFIX = "treated:"
#: What identifies a condition: one parameter set of one experiment.
CONDITION_KEYS = ("experiment_id", "param_index")
#: What identifies a unit: one student in one episode (replicates are clustered by it).
UNIT_KEYS = ("episode_id", "student")

#: Columns of :func:`state_series` (``param:<name>`` columns follow).
SERIES_SCHEMA: dict[str, Any] = EPISODE_CONTEXT | {
    "student": pl.String,
    "role": pl.String,
    "session": pl.Int64,
    "day": pl.Int64,
    "variable": pl.String,
    "value": pl.Float64,
    "text": pl.String,
    "source": pl.String,
}

#: A database path or a frame.
Cohort = str | Path | pl.DataFrame


def state_series(db: str | Path, role: str | None = "student") -> pl.DataFrame:
    """Every ``states`` row of the students of complete episodes, one row each.

    Args:
        db: A personae database.
        role: Agents read; ``None`` reads every agent.

    Returns:
        :data:`SERIES_SCHEMA` (``student`` = agent name, ``day`` = ``t``),
        then ``param:<name>`` for every episode parameter.
    """
    where = "" if role is None else "AND a.role = '" + role.replace("'", "''") + "'"
    frame = read_sql(
        db,
        "SELECT x.name AS experiment, e.experiment_id, s.episode_id, e.param_index, e.replicate,"
        " e.seed, e.params_json AS params, a.name AS student, a.role, s.session, s.t AS day,"
        " s.variable, s.value, s.text, s.source FROM states s"
        " JOIN episodes e ON e.id = s.episode_id JOIN experiments x ON x.id = e.experiment_id"
        f" JOIN agents a ON a.id = s.agent_id WHERE e.status = 'complete' {where}"
        " ORDER BY s.episode_id, a.name, s.variable, s.t, s.id",
    )
    return spread_params(_conform(frame, SERIES_SCHEMA))


def as_series(data: Cohort | Sequence[pl.DataFrame]) -> pl.DataFrame:
    """A long frame with :data:`SERIES_SCHEMA` from a database, a frame or several frames.

    A wide frame is unpivoted: its numeric columns become variables (sensing
    features as ``feature:<name>``). Missing columns are filled: ``source``
    ``sensing`` for features, ``ema`` for ``ema_*`` and ``rule`` otherwise;
    ``experiment_id``, ``param_index``, ``replicate`` and ``episode_id`` 0;
    ``t`` is read as ``day`` and ``agent`` as ``student``.

    Example:
        >>> wide = pl.DataFrame({"student": ["a"], "day": [0], "sleep_minutes": [400.0]})
        >>> as_series(wide).select("student", "variable", "value", "source").row(0)
        ('a', 'feature:sleep_minutes', 400.0, 'sensing')
    """
    if isinstance(data, str | Path):
        return state_series(data)
    if isinstance(data, pl.DataFrame):
        return _long(data)
    frames = [_long(f) for f in data]
    if not frames:
        return pl.DataFrame(schema=SERIES_SCHEMA)
    return pl.concat(frames, how="diagonal_relaxed")


def unit_days(frame: pl.DataFrame, variables: Sequence[str] | None = None) -> pl.DataFrame:
    """One value per unit x day x variable x source (rows averaged), nulls and NaNs dropped.

    Args:
        frame: An :func:`as_series` frame.
        variables: Keep only these; None keeps every variable.

    Returns:
        ``experiment_id``, ``param_index``, ``replicate``, ``episode_id``,
        ``student``, ``source``, ``variable``, ``day``, ``value``.
    """
    keys = [*CONDITION_KEYS, "replicate", *UNIT_KEYS, "source", "variable", "day"]
    if frame.is_empty():
        return pl.DataFrame(schema={k: SERIES_SCHEMA[k] for k in keys} | {"value": pl.Float64})
    chosen = frame.filter(pl.col("value").is_not_null() & pl.col("value").is_not_nan())
    if variables is not None:
        chosen = chosen.filter(pl.col("variable").is_in(list(variables)))
    return chosen.group_by(keys).agg(pl.col("value").mean()).sort(keys)


def group_codes(frame: pl.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """A 0-based code per row for its group of ``columns`` (a unit, an episode-day), in order of appearance.

    Example:
        >>> group_codes(pl.DataFrame({"student": ["b", "a", "b"]}), ["student"]).tolist()
        [0, 1, 0]
    """
    keys = frame.select(columns)
    ids = keys.unique(maintain_order=True).with_row_index("code")
    codes = keys.join(ids, on=list(columns), how="left", maintain_order="left")["code"]
    return codes.to_numpy().astype(np.int64)


def _conform(frame: pl.DataFrame, schema: Mapping[str, Any]) -> pl.DataFrame:
    frame = frame.with_columns(
        pl.lit(None, dtype).alias(c) for c, dtype in schema.items() if c not in frame.columns
    )
    extra = [c for c in frame.columns if c not in schema]
    return frame.select(*schema, *extra).cast(pl.Schema(schema), strict=False)


def _long(frame: pl.DataFrame) -> pl.DataFrame:
    if "variable" not in frame.columns or "value" not in frame.columns:
        ids = [c for c in frame.columns if c in SERIES_SCHEMA or c.startswith("param:")]
        measured = [c for c in frame.columns if c not in ids and frame.schema[c].is_numeric()]
        frame = frame.unpivot(on=measured, index=ids, variable_name="variable").with_columns(
            pl.col("value").cast(pl.Float64)
        )
        named = pl.col("variable")
        frame = frame.with_columns(
            pl.when(named.is_in(SENSING_FEATURES))
            .then(pl.lit(FEATURE_PREFIX) + named)
            .otherwise(named)
            .alias("variable")
        )
    if "source" not in frame.columns:
        frame = frame.with_columns(
            pl.when(pl.col("variable").str.starts_with(FEATURE_PREFIX))
            .then(pl.lit("sensing"))
            .when(pl.col("variable").str.starts_with("ema_"))
            .then(pl.lit(COHORT_SOURCE))
            .otherwise(pl.lit("rule"))
            .alias("source")
        )
    if "t" in frame.columns and "day" not in frame.columns:
        frame = frame.rename({"t": "day"})
    if "agent" in frame.columns and "student" not in frame.columns:
        frame = frame.rename({"agent": "student"})
    defaults = {"experiment_id": 0, "param_index": 0, "replicate": 0, "episode_id": 0}
    frame = frame.with_columns(
        pl.lit(v).alias(k) for k, v in defaults.items() if k not in frame.columns
    )
    return _conform(frame, SERIES_SCHEMA)


__all__ = [
    "CONDITION_KEYS",
    "EMA_VARIABLES",
    "FEATURE_PREFIX",
    "SENSING_FEATURES",
    "SERIES_SCHEMA",
    "STATE_SOURCES",
    "TREATED_PREFIX",
    "UNIT_KEYS",
    "Cohort",
    "as_series",
    "demean",
    "dummy_rank",
    "group_codes",
    "state_series",
    "unit_days",
]
