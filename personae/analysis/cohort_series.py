"""Student cohort: reading the data every cohort analysis starts from, as one long series.

A *unit* is one student in one episode (:data:`UNIT_KEYS`); a *condition* is
one parameter set of one experiment (:data:`CONDITION_KEYS`), whose episodes
are its replicates. :func:`as_series` turns a database, a :func:`state_series`
frame, or any frame with ``student``, ``day`` and either ``variable``/``value``
columns (long) or one column per variable (wide, e.g.
:func:`personae.environments.mental_state.simulate`'s output or a StudentLife
features frame, whose sensing columns are read as ``feature:<name>``) into the
same long frame; :func:`unit_days` averages it to one value per unit x day x
variable x source; :func:`group_codes`, :func:`demean` and :func:`dummy_rank` give the
fixed-effects (within) transform the models use and the degrees of freedom it takes. The analyses are in :mod:`personae.analysis.cohort`
(trajectories, intervention effects, questionnaires) and
:mod:`personae.analysis.cohort_sensing` (sensing against self-report).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from personae.analysis.frames import EPISODE_CONTEXT, read_sql, spread_params
from personae.environments.ema import COHORT_SOURCE
from personae.environments.sensing import FEATURES

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


def demean(values: np.ndarray, groups: Sequence[np.ndarray], tol: float = 1e-11) -> np.ndarray:
    """Residuals of ``values`` (rows x columns) on the dummies of every grouping in ``groups``.

    The fixed-effects ("within") transform: with one grouping its means are
    subtracted (exact); with several (unit and day) the means are subtracted in
    turn until nothing moves (alternating projections, as reghdfe and fixest do).

    Args:
        values: One row per observation.
        groups: :func:`group_codes` arrays, one per grouping.
        tol: Stop when no mean moves by more than ``tol`` times the largest value.

    Example:
        >>> demean(np.array([[1.0], [3.0], [5.0]]), [np.array([0, 0, 1])]).ravel().tolist()
        [-1.0, 1.0, 0.0]
    """
    out = np.array(values, dtype=float, copy=True)
    counts = [np.maximum(np.bincount(g), 1) for g in groups]
    scale = max(1.0, float(np.abs(out).max(initial=0.0)))
    for _ in range(1 if len(groups) == 1 else 100_000):
        moved = 0.0
        for codes, count in zip(groups, counts, strict=True):
            for j in range(out.shape[1]):
                means = np.bincount(codes, weights=out[:, j], minlength=count.size) / count
                out[:, j] -= means[codes]
                moved = max(moved, float(np.abs(means).max(initial=0.0)))
        if moved <= tol * scale:
            break
    return out


def dummy_rank(groups: Sequence[np.ndarray]) -> int:
    """Rank of the dummies of one or two groupings together: the degrees of freedom they take.

    One grouping: its number of groups. Two (units and days): both numbers less
    the connected components of the graph linking each unit to the days it was
    seen on (one per episode when every unit shares a day with another).

    Raises:
        ValueError: More than two groupings.

    Example:
        >>> dummy_rank([np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1])])
        3
    """
    if len(groups) == 1:
        return int(groups[0].max()) + 1 if groups[0].size else 0
    if len(groups) != 2:
        raise ValueError(f"dummy_rank takes one or two groupings, got {len(groups)}")
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    first, second = groups
    n_first, n_second = int(first.max()) + 1, int(second.max()) + 1
    size = n_first + n_second
    graph = coo_matrix((np.ones(first.size), (first, second + n_first)), shape=(size, size))
    components, _ = connected_components(graph, directed=False)
    return n_first + n_second - int(components)


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
