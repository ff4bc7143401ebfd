"""Persuasion in debate experiments: shift toward the opponent, ordinal regression, stance curves.

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
``sign(side) * (post - pre)``. The analysis mirrors Salvi, Horta Ribeiro,
Gallotti & West (2025), On the conversational persuasiveness of GPT-4,
*Nature Human Behaviour*: an ordinal (logit) regression of post-debate
agreement toward the opponent on the condition, controlling for the
pre-debate agreement.

Every function takes a database path or a frame returned by :func:`debates`
(or :func:`stances` for the curves) and returns a polars frame; empty input
gives an empty frame with the documented columns. statsmodels, scipy and
matplotlib are imported inside the functions that use them.

Example:
    >>> table = debates("runs/debate.db")  # doctest: +SKIP
    >>> ordinal_regression(table)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import polars as pl

from personae.analysis.drift import BIG_FIVE_DOMAINS
from personae.analysis.frames import read_sql
from personae.store.readonly import query

if TYPE_CHECKING:
    import numpy as np


#: Role of the agent whose agreement is measured.
PARTICIPANT_ROLE = "participant"
#: Ends of the agreement scale; re-orientation maps ``a`` to ``LOW + HIGH - a``.
AGREEMENT_LOW, AGREEMENT_HIGH = 1, 5
#: A fitted |log odds ratio| beyond this marks the fit as not converged (separation).
MAX_LOG_ODDS = 15.0
#: Display and reference order of conditions and opinion-strength groups.
CONDITION_ORDER = ("human", "human personalised", "AI", "AI personalised")
STRENGTH_ORDER = ("low", "moderate", "high")
#: Demographics that Salvi et al. showed the personalised opponent.
DEMOGRAPHICS = ("age", "gender", "ethnicity", "education", "employment", "political_affiliation")

#: The published result (Salvi et al. 2025), keyed by the model term of the ``cells`` design.
PUBLISHED: dict[str, dict[str, Any]] = {
    "AI personalised": {
        "comparison": "personalised AI vs human",
        "odds_ratio": 1.812,
        "ci_low": 1.260,
        "ci_high": 2.607,
        "p": "< 0.01",
    },
    "AI": {
        "comparison": "AI (not personalised) vs human",
        "odds_ratio": None,
        "ci_low": None,
        "ci_high": None,
        "p": "0.30",
    },
}
PUBLISHED_SOURCE = "Salvi et al. 2025, Nature Human Behaviour (N = 900)"

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
_CI = {"ci_low": pl.Float64, "ci_high": pl.Float64}
_REGRESSION: dict[str, Any] = {
    "term": pl.String,
    "kind": pl.String,
    "coef": pl.Float64,
    "se": pl.Float64,
    "odds_ratio": pl.Float64,
    **_CI,
    "p": pl.Float64,
    "n": pl.Int64,
    "converged": pl.Boolean,
}

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


# --- summaries and models -----------------------------------------------------------------------


def shift_by_condition(
    data: Debates, by: Sequence[str] = ("opponent", "personalised", "strength")
) -> pl.DataFrame:
    """How often and how far participants moved toward the opponent, per group.

    Args:
        data: A database path or a :func:`debates` frame (a hand-made frame
            needs ``shift``, or ``pre``, ``post`` and ``opponent_side``, and the
            ``by`` columns).
        by: The grouping columns.

    Returns:
        One row per group with a shift: the ``by`` columns, ``n``, ``n_toward``
        (shift > 0), ``share_toward``, ``share_away`` (shift < 0),
        ``mean_shift``, ``sd_shift``, ``ci_low``, ``ci_high`` (95% t-interval
        of the mean; null for one debate).

    Raises:
        ValueError: A ``by`` column is not in the frame.

    Example:
        Shifts 1, 2 and 3 give mean 2 with CI 2 -/+ 4.303 / sqrt(3).
    """
    frame = _load(data)
    by = list(by)
    missing = [c for c in by if c not in frame.columns]
    if missing:
        raise ValueError(f"no column {missing} in the debates (columns: {frame.columns})")
    valid = frame.filter(pl.col("shift").is_not_null())
    stats = valid.group_by(by).agg(
        pl.len().alias("n"),
        (pl.col("shift") > 0).sum().alias("n_toward"),
        (pl.col("shift") > 0).mean().alias("share_toward"),
        (pl.col("shift") < 0).mean().alias("share_away"),
        pl.col("shift").mean().alias("mean_shift"),
        pl.col("shift").std().alias("sd_shift"),
    )
    stats = _with_t_interval(stats, "mean_shift", "sd_shift").with_columns(
        pl.col("n").cast(pl.Int64), pl.col("n_toward").cast(pl.Int64)
    )
    return _ordered(stats, by)


def ordinal_regression(
    data: Debates,
    design: Literal["cells", "factorial"] = "cells",
    reference: str = "human",
    strength: bool = True,
    pre: bool = True,
    controls: Sequence[str] = (),
) -> pl.DataFrame:
    """Ordinal logit of post-debate agreement toward the opponent on the condition.

    The outcome is ``post_toward`` (higher = closer to the opponent's side),
    as ordered categories; the predictors are the condition, the topic's
    opinion-strength group (lowest present level as reference) and
    ``pre_toward``, as in Salvi et al. (2025). A positive coefficient (odds
    ratio above 1) means higher odds of ending closer to the opponent.
    Debates lacking any of these are left out (``n`` says how many were used).

    Args:
        data: A database path or a :func:`debates` frame.
        design: ``"cells"``: one dummy per condition (``human personalised``,
            ``AI``, ``AI personalised``) against ``reference``; ``"factorial"``:
            ``opponent <X>``, ``personalised`` and their interaction.
        reference: The reference condition (a non-personalised one for
            ``"factorial"``, whose opponent becomes the reference opponent).
        strength: Add opinion-strength dummies when the data has several levels.
        pre: Control for the pre-debate agreement toward the opponent.
        controls: Further numeric columns to control for (e.g. ``"agreeableness"``).

    Returns:
        One row per predictor: ``term``, ``kind`` (``condition``, ``strength``
        or ``control``), ``coef`` (log odds), ``se``, ``odds_ratio``,
        ``ci_low``, ``ci_high`` (95%, exponentiated), ``p``, ``n`` (debates
        used) and ``converged`` (false when the optimiser did not converge, a
        standard error is not finite, or a coefficient diverges past
        :data:`MAX_LOG_ODDS`, as with complete separation: do not read such a fit).

    Raises:
        ValueError: Not enough variation to fit: no usable debate, a constant
            outcome, a single condition, a missing reference, a constant or
            collinear predictor, or too few debates; the message says which.
    """
    frame = _load(data)
    needed = ["pre_toward", "post_toward", "condition", *controls]
    absent = [c for c in needed if c not in frame.columns]
    if absent:
        raise ValueError(f"ordinal_regression: no column {absent} in the debates")
    usable = frame.drop_nulls(needed)
    use_strength = strength and usable["strength"].drop_nulls().n_unique() > 1
    if use_strength:
        usable = usable.drop_nulls("strength")
    n = usable.height
    if n == 0:
        raise ValueError(
            f"no debate (of {frame.height}) has a readable pre- and post-agreement, an "
            "opponent_side (pro/con) and a condition (opponent, personalised)"
        )
    outcome = usable["post_toward"]
    if outcome.n_unique() < 2:
        raise ValueError(
            f"post-agreement toward the opponent is {outcome[0]} in all {n} debates: an "
            "ordinal regression needs at least two outcome levels"
        )
    columns, names, kinds = _condition_dummies(usable, design, reference)
    if use_strength:
        levels = _sort_levels(usable["strength"].unique().to_list(), STRENGTH_ORDER)
        for level in levels[1:]:
            columns.append((usable["strength"] == level).cast(pl.Float64))
            names.append(f"strength {level}")
            kinds.append("strength")
    adjust = [("pre_toward", "pre-agreement")] if pre else []
    for column, name in [*adjust, *[(c, c) for c in controls]]:
        columns.append(usable[column].cast(pl.Float64))
        names.append(name)
        kinds.append("control")
    exog = _design_matrix(columns, names, n_thresholds=outcome.n_unique() - 1)
    from statsmodels.miscmodels.ordinal_model import OrderedModel

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = OrderedModel(outcome.to_numpy(), exog, distr="logit")
            result = model.fit(method="bfgs", maxiter=2000, disp=False)
    except Exception as exc:  # statsmodels raises several types; the caller needs one
        raise ValueError(f"the ordinal model could not be fitted: {exc}") from exc
    k = len(names)
    coef, se, p = result.params[:k], result.bse[:k], result.pvalues[:k]
    ci = result.conf_int(alpha=0.05)[:k]
    # A diverging coefficient (complete separation) can pass the optimiser's test; flag it too.
    converged = bool(result.mle_retvals.get("converged", False)) and all(
        math.isfinite(s) and abs(c) < MAX_LOG_ODDS for c, s in zip(coef, se, strict=True)
    )
    rows = [
        (names[i], kinds[i], coef[i], se[i], _exp(coef[i]), _exp(ci[i][0]), _exp(ci[i][1]), p[i])
        for i in range(k)
    ]
    out = pl.DataFrame(rows, schema=list(_REGRESSION)[:8], orient="row")
    out = out.with_columns(pl.lit(n, pl.Int64).alias("n"), pl.lit(converged).alias("converged"))
    return out.cast(pl.Schema(_REGRESSION)).fill_nan(None)


def published_comparison(model: pl.DataFrame | None = None) -> pl.DataFrame:
    """The published odds ratios beside the model's corresponding terms.

    Args:
        model: An :func:`ordinal_regression` result of the ``cells`` design;
            ``None`` gives the published values alone.

    Returns:
        One row per published comparison: ``term``, ``comparison``,
        ``published_or``, ``published_ci_low``, ``published_ci_high``,
        ``published_p`` (as reported, text), ``model_or``, ``model_ci_low``,
        ``model_ci_high``, ``model_p``, ``model_n``, ``source``.
    """
    fitted: dict[str, dict[str, Any]] = {}
    if model is not None and not model.is_empty():
        fitted = {r["term"]: r for r in model.iter_rows(named=True)}
    rows = []
    for term, published in PUBLISHED.items():
        mine = fitted.get(term, {})
        rows.append(
            {
                "term": term,
                "comparison": published["comparison"],
                "published_or": published["odds_ratio"],
                "published_ci_low": published["ci_low"],
                "published_ci_high": published["ci_high"],
                "published_p": published["p"],
                "model_or": mine.get("odds_ratio"),
                "model_ci_low": mine.get("ci_low"),
                "model_ci_high": mine.get("ci_high"),
                "model_p": mine.get("p"),
                "model_n": mine.get("n"),
                "source": PUBLISHED_SOURCE,
            }
        )
    floats = ["published_or", "published_ci_low", "published_ci_high", "model_or"]
    floats += ["model_ci_low", "model_ci_high", "model_p"]
    schema = {c: pl.Float64 for c in floats} | {"model_n": pl.Int64}
    return pl.DataFrame(rows, schema_overrides=schema)


def trait_moderators(
    data: Debates,
    traits: Sequence[str] = ("agreeableness", "openness"),
    reference: str = "human",
    controls: Sequence[str] = (),
) -> pl.DataFrame:
    """OLS of the shift toward the opponent on each participant trait, controlling for condition.

    Each trait uses the measured domain score where any debate has one, else
    the persona's target (``target_A`` for agreeableness, ...). The condition
    enters as dummies against ``reference`` (or the first condition present).

    Args:
        data: A database path or a :func:`debates` frame.
        traits: Big Five domain names (or their letters).
        reference: The reference condition of the dummies.
        controls: Further numeric columns to control for.

    Returns:
        One row per trait: ``trait``, ``source`` (``measured`` or ``target``),
        ``column``, ``coef`` (change in shift per trait point), ``se``,
        ``ci_low``, ``ci_high`` (95%), ``p``, ``n``, ``r_squared``, ``reason``
        (why the coefficient is null).
    """
    frame = _load(data)
    letters = {v: k for k, v in BIG_FIVE_DOMAINS.items()}
    rows = []
    for trait in traits:
        name = BIG_FIVE_DOMAINS.get(trait.upper(), trait.lower())
        column, source = name, "measured"
        if column not in frame.columns or frame[column].is_null().all():
            column, source = f"target_{letters.get(name, '?')}", "target"
        row: dict[str, Any] = {"trait": name, "source": source, "column": column}
        if column not in frame.columns or frame[column].is_null().all():
            rows.append(row | {"source": None, "n": 0, "reason": "no measured or target value"})
            continue
        rows.append(row | _ols_slope(frame, column, reference, list(controls)))
    schema: dict[str, Any] = {"trait": pl.String, "source": pl.String, "column": pl.String}
    schema |= {"coef": pl.Float64, "se": pl.Float64, **_CI, "p": pl.Float64, "n": pl.Int64}
    schema |= {"r_squared": pl.Float64, "reason": pl.String}
    return pl.DataFrame([{c: r.get(c) for c in schema} for r in rows], schema=schema)


def stance_curves(
    data: str | Path | pl.DataFrame, by: Sequence[str] = ("condition",)
) -> pl.DataFrame:
    """Mean stance toward the opponent after each turn, per group, with a 95% CI band.

    Args:
        data: A database path or a :func:`stances` frame.
        by: The grouping columns.

    Returns:
        One row per group x ``index``: the ``by`` columns, ``index``, ``point``
        (the most common point at that index: ``pre``, ``turn``, ``post``),
        ``n``, ``mean_toward``, ``sd_toward``, ``ci_low``, ``ci_high``,
        ``mean_change`` (from pre).
    """
    frame = stances(data) if isinstance(data, str | Path) else data
    by = list(by)
    if frame.is_empty():
        schema = {c: STANCES_SCHEMA.get(c, pl.String) for c in by} | {"index": pl.Int64}
        schema |= {"point": pl.String, "n": pl.Int64, "mean_toward": pl.Float64}
        schema |= {"sd_toward": pl.Float64, **_CI, "mean_change": pl.Float64}
        return _empty(schema)
    stats = (
        frame.filter(pl.col("toward").is_not_null())
        .group_by([*by, "index"])
        .agg(
            pl.col("point").mode().sort().first(),
            pl.len().alias("n"),
            pl.col("toward").mean().alias("mean_toward"),
            pl.col("toward").std().alias("sd_toward"),
            pl.col("change").mean().alias("mean_change"),
        )
    )
    stats = _with_t_interval(stats, "mean_toward", "sd_toward").with_columns(
        pl.col("n").cast(pl.Int64)
    )
    columns = [*by, "index", "point", "n", "mean_toward", "sd_toward", "ci_low", "ci_high"]
    return _ordered(stats.select([*columns, "mean_change"]), [*by, "index"])


# --- figures ------------------------------------------------------------------------------------


def _empty(schema: dict[str, Any]) -> pl.DataFrame:
    return pl.DataFrame(schema=schema)


def _load(data: Debates) -> pl.DataFrame:
    return _derive(data) if isinstance(data, pl.DataFrame) else debates(data)


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


def _condition_dummies(
    usable: pl.DataFrame, design: str, reference: str
) -> tuple[list[pl.Series], list[str], list[str]]:
    conditions = _sort_levels(usable["condition"].unique().to_list(), CONDITION_ORDER)
    if len(conditions) < 2:
        raise ValueError(
            f"only one condition ({conditions[0]!r}) in the {usable.height} usable debates: the "
            f"regression compares conditions, so it needs the reference {reference!r} and at "
            "least one other"
        )
    if reference not in conditions:
        raise ValueError(
            f"the reference condition {reference!r} is not in the data (conditions: "
            f"{conditions}); pass reference= one of them"
        )
    if design == "cells":
        others = [c for c in conditions if c != reference]
        columns = [(usable["condition"] == c).cast(pl.Float64) for c in others]
        return columns, others, ["condition"] * len(others)
    if design != "factorial":
        raise ValueError(f"design must be 'cells' or 'factorial', not {design!r}")
    ref = usable.filter(pl.col("condition") == reference)
    if ref["personalised"].any():
        raise ValueError(f"the factorial reference {reference!r} must be a non-personalised one")
    base = ref["opponent"][0]
    personalised = usable["personalised"].fill_null(False).cast(pl.Float64)
    opponents = _sort_levels(usable["opponent"].unique().to_list(), ("human", "ai"))
    dummies = {
        f"opponent {_label(o)}": (usable["opponent"] == o).cast(pl.Float64)
        for o in opponents
        if o != base
    }
    interactions = {f"{name} x personalised": d * personalised for name, d in dummies.items()}
    chosen = {**dummies, "personalised": personalised, **interactions}
    return list(chosen.values()), list(chosen), ["condition"] * len(chosen)


def _design_matrix(columns: list[pl.Series], names: list[str], n_thresholds: int) -> np.ndarray:
    """Stack predictors, refusing constant or collinear ones with a message that names them."""
    import numpy as np

    for column, name in zip(columns, names, strict=True):
        if column.n_unique() < 2:
            raise ValueError(
                f"the predictor {name!r} is the same in every usable debate: leave it out "
                "(e.g. pre=False, strength=False) or add debates that vary it"
            )
    exog = np.column_stack([c.to_numpy() for c in columns])
    n, k = exog.shape
    if n <= k + n_thresholds:
        raise ValueError(f"too few debates ({n}) for {k} predictors and {n_thresholds} thresholds")
    with_intercept = np.column_stack([np.ones(n), exog])
    for i in range(k):
        if np.linalg.matrix_rank(with_intercept[:, : i + 2]) < i + 2:
            raise ValueError(
                f"the predictor {names[i]!r} is collinear with those before it "
                f"({names[:i] or 'the intercept'}): e.g. a strength level occurring in one "
                "condition only"
            )
    return exog


def _ols_slope(
    frame: pl.DataFrame, column: str, reference: str, controls: list[str]
) -> dict[str, Any]:
    import numpy as np
    import statsmodels.api as sm

    usable = frame.drop_nulls(["shift", column, *controls])
    conditions = _sort_levels(usable["condition"].drop_nulls().unique().to_list(), CONDITION_ORDER)
    base = reference if reference in conditions else (conditions[0] if conditions else None)
    parts = [usable[column].cast(pl.Float64), *[usable[c].cast(pl.Float64) for c in controls]]
    parts += [
        (usable["condition"] == c).fill_null(False).cast(pl.Float64)
        for c in conditions
        if c != base
    ]
    n = usable.height
    if n == 0 or usable[column].n_unique() < 2:
        return {"n": n, "reason": "no spread in the trait" if n else "no debate with a shift"}
    exog = np.column_stack([np.ones(n), *[p.to_numpy() for p in parts]])
    if n <= exog.shape[1] or np.linalg.matrix_rank(exog) < exog.shape[1]:
        return {"n": n, "reason": f"too few debates ({n}) or collinear predictors"}
    fit = sm.OLS(usable["shift"].cast(pl.Float64).to_numpy(), exog).fit()
    low, high = fit.conf_int(alpha=0.05)[1]
    return {
        "coef": float(fit.params[1]),
        "se": float(fit.bse[1]),
        "ci_low": float(low),
        "ci_high": float(high),
        "p": float(fit.pvalues[1]),
        "n": n,
        "r_squared": float(fit.rsquared),
    }


def _with_t_interval(stats: pl.DataFrame, mean: str, sd: str) -> pl.DataFrame:
    """Add the 95% t-interval of ``mean`` (null for fewer than two values)."""
    from scipy.stats import t

    crit = [float(t.ppf(0.975, n - 1)) if n >= 2 else None for n in stats["n"].to_list()]
    half = (
        pl.Series("crit", crit, dtype=pl.Float64) * stats[sd] / stats["n"].cast(pl.Float64).sqrt()
    )
    return stats.with_columns(
        (stats[mean] - half).alias("ci_low"), (stats[mean] + half).alias("ci_high")
    )


def _ordered(frame: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    """Sort by ``by`` with conditions and strengths in their natural order."""
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


def _sort_levels(levels: list[Any], order: Sequence[str]) -> list[Any]:
    rank = {v: i for i, v in enumerate(order)}
    present = [v for v in levels if v is not None]
    return sorted(present, key=lambda v: (rank.get(v, len(rank)), str(v)))


def _label(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "personalised" if value else "not personalised"
    return "AI" if value == "ai" else str(value)


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


def _exp(value: float) -> float:
    try:
        return math.exp(value)
    except OverflowError:
        return math.inf
