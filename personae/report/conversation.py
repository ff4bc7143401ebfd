"""The report's conversation section: what the agents said, by condition.

Every database with turns gets it, whatever the study: per parameter set the
episodes, the model-written replies, their length in characters and tokens,
and how many were cut by ``max_tokens`` (``turns.truncated``) or came back
empty after cleaning (``turns.empty``); then the same per role. Scripted lines
(an opening) are not replies and are left out. Only complete episodes count,
as in the ``transcript`` view.

Example:
    >>> conversation_frame("runs/demo.db", by=("role",))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl

from personae.analysis.frames import read_sql
from personae.report.html import html_table, paragraph, subheading

__all__ = ["conversation_frame", "conversation_section", "replies"]

_REPLIES = """
    SELECT e.experiment_id, t.episode_id, e.param_index, e.params_json AS params,
           a.role, a.name AS speaker, LENGTH(t.content) AS chars, t.truncated, t.empty,
           c.completion_tokens AS tokens
    FROM turns t
    JOIN episodes e ON e.id = t.episode_id
    JOIN agents a ON a.id = t.agent_id
    LEFT JOIN llm_calls c ON c.id = t.llm_call_id
    WHERE e.status = 'complete' AND t.scripted = 0
"""


def replies(db: str | Path) -> pl.DataFrame:
    """Every model-written reply of a complete episode, one row each.

    Returns:
        Columns ``experiment_id``, ``episode_id``, ``param_index``, ``params``
        (``params_json``), ``role``, ``speaker``, ``chars`` (length of the stored
        text), ``truncated`` and ``empty`` (0/1) and ``tokens`` (the call's
        completion tokens; null where no call is linked).
    """
    return read_sql(Path(db), _REPLIES)


def conversation_frame(db: str | Path, by: Sequence[str] = ()) -> pl.DataFrame:
    """Replies summarised per parameter set (and ``by``, e.g. ``("role",)``).

    Args:
        db: The database.
        by: Further columns of :func:`replies` to group by.

    Returns:
        One row per experiment, parameter set (and ``by``): ``condition`` (the
        parameters that vary within the experiment, see
        :func:`personae.analysis.plots.condition_label`), ``episodes``,
        ``replies``, ``replies_per_episode``, ``mean_chars``, ``median_chars``,
        ``max_chars``, ``mean_tokens``, ``truncated``, ``share_truncated``,
        ``empty``, ``share_empty``. Empty when the database has no replies.
    """
    from personae.analysis.plots import condition_label, varying_keys

    rows = replies(db)
    if rows.is_empty():
        return pl.DataFrame()
    keys = ["experiment_id", "param_index", *by]
    varying = varying_keys(rows.select("experiment_id", "params").unique())
    labels = {
        (x, i): condition_label(i, params, varying.get(x))
        for x, i, params in rows.select("experiment_id", "param_index", "params")
        .unique()
        .iter_rows()
    }
    summary = (
        rows.group_by(keys)
        .agg(
            pl.col("episode_id").n_unique().alias("episodes"),
            pl.len().alias("replies"),
            pl.col("chars").mean().alias("mean_chars"),
            pl.col("chars").median().alias("median_chars"),
            pl.col("chars").max().alias("max_chars"),
            pl.col("tokens").mean().alias("mean_tokens"),
            pl.col("truncated").sum().alias("truncated"),
            pl.col("empty").sum().alias("empty"),
        )
        .with_columns(
            (pl.col("replies") / pl.col("episodes")).alias("replies_per_episode"),
            (pl.col("truncated") / pl.col("replies")).alias("share_truncated"),
            (pl.col("empty") / pl.col("replies")).alias("share_empty"),
            pl.struct("experiment_id", "param_index")
            .map_elements(
                lambda s: labels[(s["experiment_id"], s["param_index"])], return_dtype=pl.String
            )
            .alias("condition"),
        )
        .sort(keys)
    )
    return summary.select(
        "experiment_id",
        "condition",
        *by,
        "episodes",
        "replies",
        "replies_per_episode",
        "mean_chars",
        "median_chars",
        "max_chars",
        "mean_tokens",
        "truncated",
        "share_truncated",
        "empty",
        "share_empty",
    )


def conversation_section(db: Path) -> str | None:
    """Replies by condition and by role: counts, lengths, truncation, empty replies."""
    by_condition = conversation_frame(db)
    if by_condition.is_empty():
        return None
    parts = [
        paragraph(
            "Model-written replies of complete episodes (scripted lines such as an opening are "
            "not counted). Length in characters of the stored text and in completion tokens; "
            "truncated = cut by the scenario's max_tokens (turns.truncated), empty = nothing "
            "left after cleaning (turns.empty). Condition = the parameters that vary in the "
            "experiment."
        ),
        html_table(by_condition),
        subheading("By role"),
        html_table(conversation_frame(db, by=("role",))),
    ]
    cut = int(by_condition["truncated"].sum())
    if cut:
        parts.append(
            paragraph(
                f"{cut} of {int(by_condition['replies'].sum())} replies were cut by max_tokens. "
                "Read them with: SELECT episode_id, speaker, text FROM transcript WHERE "
                "truncated = 1; raise the scenario's max_tokens (or ask for shorter replies) "
                "if they matter.",
                "note",
            )
        )
    return "".join(parts)
