"""Polars frames from a personae database, read-only.

These are the starting point of every analysis: one call gives a tidy frame
of transcripts, episodes or model calls, with episode parameters spread into
columns.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import polars as pl

from personae.store.readonly import connect_readonly


def read_sql(db: str | Path, sql: str) -> pl.DataFrame:
    """Run a read-only query and return a polars DataFrame.

    Raises:
        StoreError: The file is not a personae database.
    """
    con = connect_readonly(db)
    try:
        cur = con.execute(sql)
        columns = [d[0] for d in cur.description or ()]
        rows = cur.fetchall()
    finally:
        con.close()
    return pl.DataFrame(rows, schema=columns, orient="row", infer_schema_length=None)


#: The episode columns that lead every per-episode analysis frame, with their types.
EPISODE_CONTEXT: dict[str, Any] = {
    "experiment_id": pl.Int64,
    "experiment": pl.String,
    "episode_id": pl.Int64,
    "param_index": pl.Int64,
    "replicate": pl.Int64,
    "seed": pl.Int64,
    "params": pl.String,
}


def spread_params(frame: pl.DataFrame) -> pl.DataFrame:
    """Add a ``param:<name>`` column for every key of the JSON ``params`` column."""
    if frame.is_empty() or "params" not in frame.columns:
        return frame
    decoded = [json.loads(p) for p in frame["params"].to_list()]
    keys = sorted({k for d in decoded for k in d})
    return frame.with_columns(
        [pl.Series(f"param:{k}", [d.get(k) for d in decoded], strict=False) for k in keys]
    )


def transcripts(db: str | Path, experiment_id: int | None = None) -> pl.DataFrame:
    """Every utterance of complete episodes, in order, one row each.

    Columns: those of the ``transcript`` view plus ``param:<name>`` for every
    grid parameter, and ``chars`` (utterance length).
    """
    where = f"WHERE experiment_id = {int(experiment_id)}" if experiment_id is not None else ""
    frame = read_sql(db, f"SELECT * FROM transcript {where}")
    if frame.is_empty():
        return frame
    return spread_params(frame).with_columns(pl.col("text").str.len_chars().alias("chars"))


def episodes(db: str | Path) -> pl.DataFrame:
    """One row per episode: status, turns, calls, tokens, and its parameters as columns."""
    return spread_params(read_sql(db, "SELECT * FROM episode_summary"))


def llm_calls(db: str | Path) -> pl.DataFrame:
    """One row per model request with its seed, tokens, latency and purpose."""
    return read_sql(db, "SELECT * FROM llm_calls ORDER BY id")


def utterance_lengths(db: str | Path, by: str = "role") -> pl.DataFrame:
    """Mean and spread of utterance length (characters) per ``by`` and parameter set.

    Example:
        >>> utterance_lengths("runs/demo.db")  # doctest: +SKIP
    """
    frame = transcripts(db)
    if frame.is_empty():
        return frame
    keys = [by, "param_index", *[c for c in frame.columns if c.startswith("param:")]]
    return (
        frame.group_by(keys)
        .agg(
            pl.len().alias("utterances"),
            pl.col("chars").mean().alias("mean_chars"),
            pl.col("chars").std().alias("sd_chars"),
            pl.col("episode_id").n_unique().alias("episodes"),
        )
        .sort(keys)
    )


def finite(value: Any) -> float | None:
    """``value`` as a finite float, or ``None``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
