"""Debate frames: who debated whom, agreement before and after, re-oriented toward the opponent.

A *debate* is one complete episode between an agent of role ``participant``
and an ``opponent``. The episode's parameters give the condition
(``opponent``: ``"ai"`` or ``"human"``, ``personalised``, ``strength``,
``topic``, ``opponent_side``: ``"pro"`` or ``"con"``); the participant's
agreement with the proposition (1 = strongly disagree ... 5 = strongly agree)
is in ``states`` (``variable = 'agreement'``, ``source`` ``pre``, ``turn`` or
``post``).

Agreement is re-oriented *toward the opponent*: unchanged when the opponent
argues pro, ``6 - agreement`` when it argues con, so higher always means
closer to the opponent's side and ``shift = post_toward - pre_toward`` equals
``sign(side) * (post - pre)``.

The analyses (:mod:`personae.studies.debate.analysis`,
:mod:`personae.studies.debate.models`) take a database path or a frame
returned by :func:`debates`; :func:`load_debates` turns either into the frame
they work on.

Example:
    >>> table = debates("runs/debate.db")  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from personae.analysis.drift import BIG_FIVE_DOMAINS
from personae.analysis.frames import read_sql
from personae.store.readonly import query

__all__ = [
    "AGREEMENT_HIGH",
    "AGREEMENT_LOW",
    "CONDITION_ORDER",
    "DEBATES_SCHEMA",
    "DEMOGRAPHICS",
    "PARTICIPANT_ROLE",
    "STANCES_SCHEMA",
    "STRENGTH_ORDER",
    "Debates",
    "debates",
    "level_label",
    "load_debates",
    "natural_order",
    "sorted_levels",
    "stances",
]

#: Role of the agent whose agreement is measured.
PARTICIPANT_ROLE = "participant"
#: Ends of the agreement scale; re-orientation maps ``a`` to ``LOW + HIGH - a``.
AGREEMENT_LOW, AGREEMENT_HIGH = 1, 5
#: Display and reference order of conditions and opinion-strength groups.
CONDITION_ORDER = ("human", "human personalised", "AI", "AI personalised")
STRENGTH_ORDER = ("low", "moderate", "high")
#: Demographics that Salvi et al. showed the personalised opponent.
DEMOGRAPHICS = ("age", "gender", "ethnicity", "education", "employment", "political_affiliation")

_IDS: dict[str, Any] = {
    "episode_id": pl.Int64,
    "experiment_id": pl.Int64,
    "experiment": pl.String,
    "param_index": pl.Int64,
    "replicate": pl.Int64,
    "n_turns": pl.Int64,
    "participant": pl.String,
}
_CONDITION: dict[str, Any] = {
    "opponent": pl.String,
    "personalised": pl.Boolean,
    "strength": pl.String,
    "topic": pl.String,
    "opponent_side": pl.String,
}
_OUTCOME: dict[str, Any] = {
    "condition": pl.String,
    "pre": pl.Float64,
    "post": pl.Float64,
    "pre_toward": pl.Float64,
    "post_toward": pl.Float64,
    "shift": pl.Float64,
    "any_shift": pl.Boolean,
}
#: Computed by :func:`_derive` from the condition and the answers.
_DERIVED = ("condition", "pre_toward", "post_toward", "shift", "any_shift")
_TRAITS: dict[str, Any] = {f"target_{k}": pl.Float64 for k in BIG_FIVE_DOMAINS} | {
    d: pl.Float64 for d in BIG_FIVE_DOMAINS.values()
}
_PEOPLE: dict[str, Any] = {"age": pl.Int64} | {d: pl.String for d in DEMOGRAPHICS[1:]}
#: Columns of :func:`debates` (extra parameters and demographics follow where present).
DEBATES_SCHEMA: dict[str, Any] = _IDS | _CONDITION | _OUTCOME | _TRAITS | _PEOPLE
#: Columns of :func:`stances`.
STANCES_SCHEMA: dict[str, Any] = (
    {k: _IDS[k] for k in ("episode_id", "experiment_id", "participant")}
    | _CONDITION
    | {"condition": pl.String, "index": pl.Int64, "point": pl.String, "t": pl.Int64}
    | {"agreement": pl.Float64, "toward": pl.Float64, "change": pl.Float64}
)
#: What the analyses take: a database path or a :func:`debates` (or hand-made) frame.
Debates = str | Path | pl.DataFrame


# --- frames -------------------------------------------------------------------------------------


def debates(db: str | Path, instrument: str = "ipip-neo-120") -> pl.DataFrame:
    """One row per participant of a complete debate (one per episode in the two-party design).

    A debate counts when its participant has an ``agreement`` state with source
    ``pre`` or ``post``. ``pre`` is the first readable pre answer, ``post`` the
    last readable post answer; an unreadable answer leaves a null.

    Args:
        db: A personae database.
        instrument: Whose baseline (occasion 0, self-report) domain scores give
            the measured trait columns.

    Returns:
        ``episode_id``, ``experiment_id``, ``experiment``, ``param_index``,
        ``replicate``, ``n_turns``, ``participant`` (name); the condition
        ``opponent`` (lower case), ``personalised``, ``strength``, ``topic``,
        ``opponent_side``; ``condition`` (``human``, ``human personalised``,
        ``AI``, ``AI personalised``); ``pre``, ``post``, ``pre_toward``,
        ``post_toward`` (re-oriented toward the opponent), ``shift``
        (``sign(side) * (post - pre)``, positive = toward the opponent),
        ``any_shift`` (``shift > 0``); ``target_O`` ... ``target_N`` (persona
        ``big_five``); measured ``openness`` ... ``neuroticism`` (null where
        not measured); ``age``, ``gender``, ``ethnicity``, ``education``,
        ``employment``, ``political_affiliation``; then any other parameter
        (``rounds``, ...) and demographic, named as given (``param:<name>``
        where a name is taken).
    """
    participants = read_sql(
        db,
        "SELECT e.id AS episode_id, e.experiment_id, x.name AS experiment, e.param_index,"
        " e.replicate, e.n_turns, e.params_json, a.name AS participant, a.persona_json,"
        " s.t, s.source, s.value FROM episodes e"
        " JOIN experiments x ON x.id = e.experiment_id"
        " JOIN agents a ON a.episode_id = e.id AND a.role = '" + PARTICIPANT_ROLE + "'"
        " JOIN states s ON s.agent_id = a.id AND s.variable = 'agreement'"
        " AND s.source IN ('pre', 'post')"
        " WHERE e.status = 'complete' ORDER BY e.id, a.name, s.t, s.id",
    )
    if participants.is_empty():
        return _empty(DEBATES_SCHEMA)
    rows: dict[tuple[int, str], dict[str, Any]] = {}
    extra: dict[str, Any] = {}
    for record in participants.iter_rows(named=True):
        key = (record["episode_id"], record["participant"])
        if key not in rows:
            rows[key] = _debate_row(record, extra)
        row, value = rows[key], record["value"]
        if value is not None and (record["source"] == "post" or row["pre"] is None):
            row[record["source"]] = float(value)
    schema = {c: t for c, t in DEBATES_SCHEMA.items() if c not in _DERIVED} | extra
    frame = pl.DataFrame(
        [{c: r.get(c) for c in schema} for r in rows.values()], schema=schema, strict=False
    )
    measured = _measured(db, instrument)
    if not measured.is_empty():
        frame = frame.update(measured, on=["episode_id", "participant"], how="left")
    return _derive(frame).select([*DEBATES_SCHEMA, *extra])


def stances(db: str | Path) -> pl.DataFrame:
    """The participant's stance over each debate: before, after every opponent turn, after.

    Args:
        db: A personae database.

    Returns:
        One row per debate x point: ``episode_id``, ``experiment_id``,
        ``participant``, the condition columns, ``condition``, ``index`` (0 =
        pre, 1..k = after the k-th opponent turn, k + 1 = post), ``point``
        (``pre``, ``turn``, ``post``), ``t`` (the step), ``agreement`` (null when
        unreadable), ``toward`` (re-oriented toward the opponent) and ``change``
        (``toward`` minus its value at ``pre``).
    """
    table = debates(db)
    if table.is_empty():
        return _empty(STANCES_SCHEMA)
    states = read_sql(
        db,
        "SELECT s.episode_id, a.name AS participant, s.t, s.source AS point, s.value"
        " FROM states s JOIN agents a ON a.id = s.agent_id"
        " JOIN episodes e ON e.id = s.episode_id"
        " WHERE e.status = 'complete' AND a.role = '" + PARTICIPANT_ROLE + "'"
        " AND s.variable = 'agreement' AND s.source IN ('pre', 'turn', 'post')"
        " ORDER BY s.episode_id, a.name, s.t, s.id",
    )
    points: dict[tuple[int, str], dict[str, list[tuple[int, float | None]]]] = {}
    for episode_id, participant, t, point, value in states.iter_rows():
        mine = points.setdefault((episode_id, participant), {"pre": [], "turn": [], "post": []})
        mine[point].append((t, None if value is None else float(value)))
    rows = []
    for (episode_id, participant), mine in points.items():
        pre = [_first_value(mine["pre"])] if mine["pre"] else []
        post = [_first_value(mine["post"][::-1])] if mine["post"] else []
        turns = mine["turn"]
        sequence = [(0, "pre", *p) for p in pre] + [
            (i, "turn", *p) for i, p in enumerate(turns, start=1)
        ]
        sequence += [(len(turns) + 1, "post", *p) for p in post]
        rows += [(episode_id, participant, *s) for s in sequence]
    schema = {"episode_id": pl.Int64, "participant": pl.String, "index": pl.Int64}
    schema |= {"point": pl.String, "t": pl.Int64, "agreement": pl.Float64}
    long = pl.DataFrame(rows, schema=schema, orient="row")
    context = [c for c in STANCES_SCHEMA if c in table.columns]
    out = table.select(context).join(long, on=["episode_id", "participant"], how="inner")
    out = out.with_columns(_toward(pl.col("agreement")).alias("toward"))
    base = pl.col("toward").filter(pl.col("index") == 0).first().over("episode_id", "participant")
    out = out.with_columns((pl.col("toward") - base).alias("change"))
    return out.select(list(STANCES_SCHEMA)).sort("episode_id", "participant", "index")


def load_debates(data: Debates) -> pl.DataFrame:
    """The debates frame of a database, or a hand-made frame completed with the derived columns.

    Args:
        data: A database path (read with :func:`debates`) or a frame; a frame
            gets ``condition``, ``pre_toward``, ``post_toward``, ``shift`` and
            ``any_shift`` computed from ``pre``, ``post``, ``opponent_side``,
            ``opponent`` and ``personalised`` where it lacks them (present
            columns are kept as they are).

    Returns:
        The frame the analyses work on.
    """
    return _derive(data) if isinstance(data, pl.DataFrame) else debates(data)


def natural_order(frame: pl.DataFrame, by: Sequence[str]) -> pl.DataFrame:
    """Sort by ``by`` with conditions, strengths and opponents in their natural order.

    Args:
        frame: Any frame with the ``by`` columns.
        by: The sort columns; ``condition`` follows :data:`CONDITION_ORDER`,
            ``strength`` :data:`STRENGTH_ORDER`, ``opponent`` human before ai,
            other columns their own order (nulls last).

    Returns:
        The sorted frame.
    """
    orders = {"condition": CONDITION_ORDER, "strength": STRENGTH_ORDER, "opponent": ("human", "ai")}
    keys = []
    for column in by:
        if column in orders:
            rank = {v: i for i, v in enumerate(orders[column])}
            keys.append(
                pl.col(column)
                .cast(pl.String)
                .replace_strict(rank, default=len(rank), return_dtype=pl.Int64)
            )
        keys.append(pl.col(column))
    return frame.sort(keys, nulls_last=True) if keys else frame


def sorted_levels(levels: Sequence[Any], order: Sequence[str]) -> list[Any]:
    """The non-null ``levels``, those named in ``order`` first and in that order, then the rest.

    Args:
        levels: Values of a column (e.g. its unique values).
        order: The natural order, e.g. :data:`CONDITION_ORDER`.

    Returns:
        The sorted levels.
    """
    rank = {v: i for i, v in enumerate(order)}
    present = [v for v in levels if v is not None]
    return sorted(present, key=lambda v: (rank.get(v, len(rank)), str(v)))


def level_label(value: Any) -> str:
    """A level as shown in tables and figures (``ai`` as ``AI``, booleans as (not) personalised).

    Args:
        value: A level of a condition column.

    Returns:
        Its label; ``(none)`` for a null.
    """
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "personalised" if value else "not personalised"
    return "AI" if value == "ai" else str(value)


# --- private steps ------------------------------------------------------------------------------


def _empty(schema: dict[str, Any]) -> pl.DataFrame:
    return pl.DataFrame(schema=schema)


def _debate_row(record: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """The fixed part of a debate row; new parameter and demographic names go into ``extra``."""
    row = {c: record[c] for c in _IDS} | {"pre": None, "post": None}
    params = _json(record["params_json"])
    persona = _json(record["persona_json"])
    for key, value in params.items():
        if key in _CONDITION:
            row[key] = value
        else:
            name = key if key not in DEBATES_SCHEMA else f"param:{key}"
            extra.setdefault(name, pl.String if isinstance(value, str) else None)
            row[name] = value
    if isinstance(row["opponent"], str):
        row["opponent"] = row["opponent"].lower()
    if isinstance(row["opponent_side"], str):
        row["opponent_side"] = row["opponent_side"].lower()
    row["personalised"] = _bool(row["personalised"])
    big_five = persona.get("big_five") or {}
    names = {v: k for k, v in BIG_FIVE_DOMAINS.items()}
    for key, level in big_five.items():
        letter = str(key).upper() if str(key).upper() in BIG_FIVE_DOMAINS else names.get(str(key))
        if letter and isinstance(level, int | float):
            row[f"target_{letter}"] = float(level)
    for key, value in (persona.get("demographics") or {}).items():
        name = key if key in _PEOPLE or key not in DEBATES_SCHEMA else f"demographic:{key}"
        if name not in _PEOPLE:
            extra.setdefault(name, pl.String)
            value = None if value is None else str(value)
        row[name] = value
    return row


def _measured(db: str | Path, instrument: str) -> pl.DataFrame:
    """Baseline self-reported domain scores of participants, one column per domain."""
    schema = {"episode_id": pl.Int64, "participant": pl.String, "scale": pl.String}
    _, rows = query(
        db,
        "SELECT episode_id, agent, scale, AVG(value) FROM trait_scores WHERE role = ?"
        " AND level = 'domain' AND source = 'self_report' AND occasion = 0"
        " AND instrument = ? AND value IS NOT NULL GROUP BY episode_id, agent, scale",
        (PARTICIPANT_ROLE, instrument),
    )
    long = pl.DataFrame(rows, schema=schema | {"value": pl.Float64}, orient="row").filter(
        pl.col("scale").is_in(list(BIG_FIVE_DOMAINS.values()))
    )
    if long.is_empty():
        return long
    return long.pivot(on="scale", index=["episode_id", "participant"], values="value")


def _derive(frame: pl.DataFrame) -> pl.DataFrame:
    """Add the condition and outcome columns a hand-made frame lacks; present ones are kept."""
    missing = {c: t for c, t in (_CONDITION | {"pre": pl.Float64, "post": pl.Float64}).items()}
    frame = frame.with_columns(
        pl.lit(None, dtype).alias(c) for c, dtype in missing.items() if c not in frame.columns
    )
    derived = {
        "pre_toward": _toward(pl.col("pre")),
        "post_toward": _toward(pl.col("post")),
        "shift": pl.col("post_toward") - pl.col("pre_toward"),
        "any_shift": pl.col("shift") > 0,
        "condition": _condition(),
    }
    for column, expression in derived.items():
        if column not in frame.columns:
            frame = frame.with_columns(expression.alias(column))
    return frame


def _toward(agreement: pl.Expr) -> pl.Expr:
    side = pl.col("opponent_side").cast(pl.String).str.to_lowercase()
    return (
        pl.when(side == "pro")
        .then(agreement)
        .when(side == "con")
        .then(AGREEMENT_LOW + AGREEMENT_HIGH - agreement)
        .cast(pl.Float64)
    )


def _condition() -> pl.Expr:
    opponent = pl.col("opponent").cast(pl.String)
    label = pl.when(opponent.str.to_lowercase() == "ai").then(pl.lit("AI")).otherwise(opponent)
    personalised = pl.col("personalised").cast(pl.Boolean)
    return pl.when(personalised).then(label + " personalised").otherwise(label)


def _first_value(points: list[tuple[int, float | None]]) -> tuple[int, float | None]:
    """The first point with a value, else the first point."""
    return next((p for p in points if p[1] is not None), points[0])


def _json(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _bool(value: Any) -> bool | None:
    if isinstance(value, str):
        return {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}.get(
            value.strip().lower()
        )
    return None if value is None else bool(value)
