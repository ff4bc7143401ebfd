"""Agreement and validity of trait scores: ICC across replicates, test-retest, target vs measured, self vs judge.

Companion of :mod:`personae.analysis.drift` (change over time), with the same
conventions: every function takes a database path or a frame from
:func:`~personae.analysis.drift.trait_scores` and returns a polars frame;
empty input gives an empty frame with the documented columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from personae.analysis.frames import finite
from personae.analysis.stats import pearson
from personae.analysis.trait_frames import (
    MEASURE,
    RESPONDENT,
    Scores,
    load_scores,
    per_occasion,
    select_scores,
)


def icc_across_replicates(
    scores: Scores,
    instrument: str | None = "ipip-neo-120",
    level: str | None = "domain",
    source: str | None = "self_report",
    occasion: int | None = None,
    types: Sequence[str] | None = None,
) -> pl.DataFrame:
    """Intraclass correlation of scores across replicates, per scale and occasion.

    Targets are personas (``param_index`` x ``agent``), raters are replicate
    indices and ratings the scale values, within each experiment. All six
    pingouin types are returned; ``alias`` gives the Shrout-Fleiss names. The
    one-way ``ICC(1,1)`` (alias ``ICC1``) fits the design best: replicate 0 of
    one persona has nothing in common with replicate 0 of another, so
    replicates are interchangeable rather than crossed raters; ``ICC(A,1)``
    (``ICC2``) agrees closely when replicate indices carry no bias. The ``k``
    types give the reliability of a persona's mean over all replicates.
    Personas missing a replicate are dropped (listwise), as pingouin requires.

    Args:
        scores: A database path or a :func:`trait_scores` frame.
        instrument, level, source: Which scores; ``None`` keeps all.
        occasion: One occasion, or ``None`` for each occasion.
        types: Keep these types (pingouin names or aliases); ``None`` keeps all.

    Returns:
        Columns ``experiment_id``, ``instrument``, ``source``, ``level``,
        ``scale``, ``occasion``, ``type``, ``alias``, ``icc``, ``ci_low``,
        ``ci_high``, ``f``, ``df1``, ``df2``, ``p``, ``n_targets``,
        ``n_raters``, ``reason`` (why ``icc`` is null: too few targets or
        replicates, no variance).
    """
    frame = per_occasion(select_scores(load_scores(scores), instrument, level, source))
    if occasion is not None:
        frame = frame.filter(pl.col("occasion") == occasion)
    frame = frame.filter(pl.col("value").is_not_null()).with_columns(
        pl.format("{}:{}", "param_index", "agent").alias("_target")
    )
    wanted = [
        (name, alias)
        for name, alias in _ICC_TYPES.items()
        if types is None or name in types or alias in types
    ]
    rows: list[dict[str, Any]] = []
    keys = ["experiment_id", *MEASURE, "occasion"]
    for key, group in frame.partition_by(keys, as_dict=True, maintain_order=True).items():
        common = dict(zip(keys, key, strict=True))
        results, n_targets, n_raters, reason = _icc(group)
        for name, alias in wanted:
            row = results.get(name, {})
            rows.append(
                {
                    **common,
                    "type": name,
                    "alias": alias,
                    **{c: row.get(c) for c in _ICC_STATS},
                    "n_targets": n_targets,
                    "n_raters": n_raters,
                    "reason": reason if row.get("icc") is None else None,
                }
            )
    schema = (
        {"experiment_id": pl.Int64}
        | {c: pl.String for c in MEASURE}
        | {"occasion": pl.Int64, "type": pl.String, "alias": pl.String}
        | {c: pl.Int64 if c.startswith("df") else pl.Float64 for c in _ICC_STATS}
        | {"n_targets": pl.Int64, "n_raters": pl.Int64, "reason": pl.String}
    )
    return pl.DataFrame(rows, schema=schema).sort(["experiment_id", *MEASURE, "occasion"])


_ICC_TYPES = {
    "ICC(1,1)": "ICC1",
    "ICC(A,1)": "ICC2",
    "ICC(C,1)": "ICC3",
    "ICC(1,k)": "ICC1k",
    "ICC(A,k)": "ICC2k",
    "ICC(C,k)": "ICC3k",
}
_ICC_NAMES = {alias: name for name, alias in _ICC_TYPES.items()}
_ICC_STATS = ("icc", "ci_low", "ci_high", "f", "df1", "df2", "p")


def _icc(group: pl.DataFrame) -> tuple[dict[str, dict[str, float | None]], int, int, str | None]:
    """Run pingouin on one scale x occasion; return results by type, sizes and a reason."""
    wide = group.pivot(
        on="replicate", index="_target", values="value", aggregate_function="mean"
    ).drop_nulls()
    n_targets, n_raters = wide.height, max(wide.width - 1, 0)
    if n_raters < 2:
        return {}, n_targets, n_raters, "fewer than 2 replicates"
    if n_targets < 2:
        return {}, n_targets, n_raters, "fewer than 2 personas rated in every replicate"
    if n_targets * n_raters < 5:
        return {}, n_targets, n_raters, "fewer than 5 values"
    import warnings

    import pandas as pd
    import pingouin

    long = wide.unpivot(index="_target", variable_name="replicate", value_name="value")
    data = pd.DataFrame(long.to_dict(as_series=False))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = pingouin.intraclass_corr(data, "_target", "replicate", "value")
    except (AssertionError, ValueError, ZeroDivisionError, KeyError) as exc:
        return {}, n_targets, n_raters, f"pingouin failed: {exc}"
    results: dict[str, dict[str, float | None]] = {}
    for record in table.to_dict("records"):
        # pingouin < 0.7 names the types ICC1 ... ICC3k; < 0.6 calls the interval "CI95%".
        name = _ICC_NAMES.get(str(record["Type"]), str(record["Type"]))
        ci = list(record["CI95"] if "CI95" in record else record["CI95%"])
        values = [record["ICC"], *ci, record["F"], record["df1"], record["df2"], record["pval"]]
        stats = dict(zip(_ICC_STATS, map(finite, values), strict=True))
        stats["df1"], stats["df2"] = int(record["df1"]), int(record["df2"])
        results[name] = stats
    reason = None
    if all(r["icc"] is None for r in results.values()):
        reason = "no variance between personas"
    return results, n_targets, n_raters, reason


def test_retest(
    scores: Scores,
    first: int = 0,
    second: int | None = None,
    instrument: str | None = "ipip-neo-120",
    level: str | None = "domain",
    source: str | None = "self_report",
) -> pl.DataFrame:
    """Test-retest Pearson correlation per scale across respondents between two occasions.

    Args:
        scores: A database path or a :func:`trait_scores` frame.
        first: The first occasion (default the baseline, 0).
        second: The second occasion; ``None`` takes each respondent's last
            occasion with a value after ``first``.
        instrument, level, source: Which scores; ``None`` keeps all.

    Returns:
        One row per scale: ``instrument``, ``source``, ``level``, ``scale``,
        ``first``, ``second`` (null = each respondent's last), ``n``, ``r``,
        ``ci_low``, ``ci_high`` (95%, Fisher z; null with fewer than 4 pairs),
        ``p``, ``mean_first``, ``mean_second``, ``reason`` (why ``r`` is null).
    """
    frame = per_occasion(select_scores(load_scores(scores), instrument, level, source)).filter(
        pl.col("value").is_not_null()
    )
    keys = [*RESPONDENT, *MEASURE]
    x = frame.filter(pl.col("occasion") == first).select([*keys, pl.col("value").alias("x")])
    later = frame.filter(pl.col("occasion") > first)
    if second is not None:
        later = later.filter(pl.col("occasion") == second)
    y = later.sort("occasion").group_by(keys).agg(pl.col("value").last().alias("y"))
    pairs = x.join(y, on=keys, how="inner")
    rows = []
    for key, group in pairs.partition_by(MEASURE, as_dict=True, maintain_order=True).items():
        corr = pearson(group["x"], group["y"])
        rows.append(
            {
                **dict(zip(MEASURE, key, strict=True)),
                "first": first,
                "second": second,
                "n": corr.n,
                "r": corr.r,
                "ci_low": corr.ci_low,
                "ci_high": corr.ci_high,
                "p": corr.p,
                "mean_first": group["x"].mean(),
                "mean_second": group["y"].mean(),
                "reason": corr.reason,
            }
        )
    schema = {c: pl.String for c in MEASURE} | {
        "first": pl.Int64,
        "second": pl.Int64,
        "n": pl.Int64,
        "r": pl.Float64,
        "ci_low": pl.Float64,
        "ci_high": pl.Float64,
        "p": pl.Float64,
        "mean_first": pl.Float64,
        "mean_second": pl.Float64,
        "reason": pl.String,
    }
    return pl.DataFrame(rows, schema=schema).sort(MEASURE)


# Not a pytest test, though its name starts with "test_".
test_retest.__test__ = False  # type: ignore[attr-defined]


def convergent_validity(
    scores: Scores, instrument: str = "ipip-neo-120", judge: str = "judge-big5"
) -> pl.DataFrame:
    """Persona targets against measured Big Five domains: correlation and distance.

    Three measures are compared with the targets (see :func:`target_pairs`):
    the self-report at each respondent's baseline, the self-report at every
    occasion (pooled; rows of one respondent are not independent, so read its
    p-value with care), and the judge's ratings at every occasion.
    ``scale = "all"`` pools the domains.

    Args:
        scores: A database path or a :func:`trait_scores` frame.
        instrument: The self-report instrument.
        judge: The judge's instrument name.

    Returns:
        Columns ``measure``, ``scale``, ``n``, ``r``, ``p``, ``mean_diff``
        (measured - target), ``mad`` (mean absolute difference), ``reason``.
    """
    pairs = target_pairs(scores, instrument, judge)
    rows: list[dict[str, Any]] = []
    for measure in TARGET_MEASURES:
        part = pairs.filter(pl.col("measure") == measure)
        scales = sorted(set(part["scale"].to_list()))
        rows.extend(
            {"measure": measure, **row} for row in _agreement(part, "value", "target", scales)
        )
    return pl.DataFrame(rows, schema={"measure": pl.String, **_AGREEMENT_SCHEMA})


#: The measures :func:`target_pairs` compares with persona targets.
TARGET_MEASURES = ("self-report baseline", "self-report all", "judge all")


def target_pairs(
    scores: Scores, instrument: str = "ipip-neo-120", judge: str = "judge-big5"
) -> pl.DataFrame:
    """Persona target and measured value of every Big Five domain score that has a target.

    Returns:
        Columns ``measure`` (one of :data:`TARGET_MEASURES`; a baseline row
        also appears under ``self-report all``), ``experiment_id``,
        ``param_index``, ``replicate``, ``episode_id``, ``agent``, ``occasion``,
        ``scale``, ``target``, ``value``.
    """
    frame = per_occasion(
        load_scores(scores).filter(
            (pl.col("level") == "domain")
            & pl.col("target").is_not_null()
            & pl.col("value").is_not_null()
        )
    )
    own = frame.filter((pl.col("instrument") == instrument) & (pl.col("source") == "self_report"))
    first = pl.col("occasion").min().over([*RESPONDENT, "scale"])
    parts = {
        "self-report baseline": own.filter(pl.col("occasion") == first),
        "self-report all": own,
        "judge all": frame.filter((pl.col("instrument") == judge) & (pl.col("source") == "judge")),
    }
    columns = ["experiment_id", "param_index", "replicate", *RESPONDENT, "occasion", "scale"]
    return pl.concat(
        [
            part.select(pl.lit(measure).alias("measure"), *columns, "target", "value")
            for measure, part in parts.items()
        ]
    )


def self_judge_pairs(
    scores: Scores, instrument: str = "ipip-neo-120", judge: str = "judge-big5"
) -> pl.DataFrame:
    """Self-reported and judged domain scores of the same agent at the same point.

    Rows are matched on episode, agent, session and point (and step for
    ``turn`` points, which recur within a session): the judge runs at session
    ends, the questionnaire at the start and session ends.

    Returns:
        Columns ``experiment_id``, ``param_index``, ``replicate``,
        ``episode_id``, ``agent``, ``session``, ``point``, ``step``, ``scale``,
        ``self_report``, ``judge``, ``target``.
    """
    frame = per_occasion(
        load_scores(scores).filter((pl.col("level") == "domain") & pl.col("value").is_not_null())
    ).with_columns(
        pl.col("session").fill_null(-1).alias("_session"),
        pl.when(pl.col("point") == "turn").then(pl.col("step")).otherwise(-1).alias("_step"),
    )
    keys = [*RESPONDENT, "_session", "point", "_step", "scale"]
    own = frame.filter((pl.col("instrument") == instrument) & (pl.col("source") == "self_report"))
    judged = frame.filter((pl.col("instrument") == judge) & (pl.col("source") == "judge"))
    pairs = own.select(
        ["experiment_id", "param_index", "replicate", *keys, "session", "step", "target", "value"]
    ).join(judged.select([*keys, pl.col("value").alias("judge")]), on=keys, how="inner")
    return pairs.rename({"value": "self_report"}).select(
        "experiment_id",
        "param_index",
        "replicate",
        "episode_id",
        "agent",
        "session",
        "point",
        "step",
        "scale",
        "self_report",
        "judge",
        "target",
    )


def self_vs_judge(
    scores: Scores, instrument: str = "ipip-neo-120", judge: str = "judge-big5"
) -> pl.DataFrame:
    """Agreement of self-report and judged behaviour per domain (see :func:`self_judge_pairs`).

    Returns:
        Columns ``scale`` (``all`` pools the domains), ``n``, ``r``, ``p``,
        ``mean_diff`` (self-report - judge), ``mad``, ``reason``.
    """
    pairs = self_judge_pairs(scores, instrument, judge)
    scales = sorted(set(pairs["scale"].to_list()))
    return pl.DataFrame(_agreement(pairs, "self_report", "judge", scales), schema=_AGREEMENT_SCHEMA)


_AGREEMENT_SCHEMA: dict[str, Any] = {
    "scale": pl.String,
    "n": pl.Int64,
    "r": pl.Float64,
    "p": pl.Float64,
    "mean_diff": pl.Float64,
    "mad": pl.Float64,
    "reason": pl.String,
}


def _agreement(frame: pl.DataFrame, a: str, b: str, scales: Sequence[str]) -> list[dict[str, Any]]:
    """Correlation, mean difference and mean absolute difference of ``a`` and ``b`` per scale."""
    rows = []
    for scale in [*scales, "all"]:
        part = frame if scale == "all" else frame.filter(pl.col("scale") == scale)
        if part.is_empty():
            continue
        corr = pearson(part[a], part[b])
        diff = part[a] - part[b]
        rows.append(
            {
                "scale": scale,
                "n": corr.n,
                "r": corr.r,
                "p": corr.p,
                "mean_diff": diff.mean(),
                "mad": diff.abs().mean(),
                "reason": corr.reason,
            }
        )
    return rows
