"""Scoring answers into scale scores, for one respondent or a whole frame.

Conventions (also in ``docs/instruments.md``):

* Items keyed ``"-"`` are reverse scored: ``min + max - answer`` (IPIP 2 -> 4,
  PSS-10 1 -> 3).
* ``"mean"`` scoring (IPIP): the mean of the answered items of the scale when at
  least half of them are answered, else no score.
* ``"sum"`` scoring (PHQ-9, GAD-7, PSS-10): the sum when every item is answered;
  when at most :func:`max_missing` items are missing, the prorated sum (mean of
  the answered items times the number of items, rounded half up to 2
  decimals); else no score. One rule per instrument, the same here and in
  every other scorer that calls :func:`max_missing`.
* Bands are inclusive ``(low, high)`` ranges. A prorated value between two bands
  (PHQ-9 4.5, between 0-4 and 5-9) takes the nearer one, the upper one at the
  midpoint, as when the total is rounded half up to a whole number.
* Answers to items outside the instrument are ignored, so a subset can be scored
  from the full answers. Missing answers are ``None`` (or NaN, or absent).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import polars as pl

from personae.measures.instruments import Band, Instrument, Scale, scorer_for

_GROUP = "__group"
_ORDER = "__order"


@dataclass(frozen=True, slots=True)
class Score:
    """The score of one scale.

    Attributes:
        level: ``"domain"``, ``"facet"`` or ``"total"``.
        scale: The domain or facet name, or the instrument name for a total.
        value: The mean or (possibly prorated) sum of keyed answers; ``None``
            when too many answers are missing.
        n_items: Valid answers used.
        n_missing: Items of the scale without a valid answer.
        band: The band label (PHQ-9 ``"mild"``), or ``None``.
    """

    level: str
    scale: str
    value: float | None
    n_items: int
    n_missing: int
    band: str | None = None


def score(instrument: Instrument, answers: Mapping[str, float | None]) -> list[Score]:
    """Score one respondent's answers, one :class:`Score` per scale.

    Args:
        instrument: The instrument answered.
        answers: Option values by item id (``"1"``, ``"2"``, ...); ``None``, NaN
            or an absent id is a missing answer.

    Returns:
        Scores in the order of :meth:`Instrument.scales`, or what a scorer
        registered for the instrument returns.

    Raises:
        ValueError: An answer lies outside the instrument's option range.

    Example:
        >>> from personae.measures import load_instrument
        >>> phq = load_instrument("phq-9")
        >>> score(phq, {str(i): 1 for i in range(1, 10)})[0]
        Score(level='total', scale='phq-9', value=9.0, n_items=9, n_missing=0, band='mild')
    """
    custom = scorer_for(instrument.name)
    if custom is not None:
        return custom(instrument, answers)
    keyed: dict[str, float] = {}
    for item in instrument.items:
        value = _answer(answers.get(item.id), instrument, item.id)
        if value is not None:
            keyed[item.id] = instrument.reverse(value) if item.keyed == "-" else value
    return [_score_scale(instrument, s, keyed) for s in instrument.scales()]


def _answer(raw: Any, instrument: Instrument, item_id: str) -> float | None:
    if raw is None:
        return None
    value = float(raw)
    if math.isnan(value):
        return None
    if not instrument.min_value <= value <= instrument.max_value:
        raise ValueError(
            f"{instrument.name} item {item_id}: answer {raw} is outside "
            f"{instrument.min_value}-{instrument.max_value}."
        )
    return value


def _score_scale(instrument: Instrument, scale: Scale, keyed: Mapping[str, float]) -> Score:
    values = [keyed[i] for i in scale.items if i in keyed]
    size, n = len(scale.items), len(values)
    value: float | None = None
    if n and instrument.scoring == "mean" and 2 * n >= size:
        value = sum(values) / n
    elif n and instrument.scoring == "sum" and size - n <= max_missing(instrument, size):
        value = sum(values) if n == size else _round2(sum(values) / n * size)
    return Score(
        scale.level,
        scale.scale,
        value,
        n,
        size - n,
        band_of(instrument.bands.get(scale.scale), value),
    )


def max_missing(instrument: Instrument, n_items: int | None = None) -> int:
    """How many items a sum-scored scale may miss and still be prorated.

    An instrument declares its rule as ``max_missing`` in its data (PSS-10: 2;
    a subset of ``n_items`` of its items may miss the same share, rounded down);
    otherwise the rule is 20% of the scale's items, rounded down: PHQ-9 and
    GAD-7 1. Scorers outside this module
    (e.g. the StudentLife survey loader) should call this rather than keep a
    rule of their own.

    Args:
        instrument: The instrument.
        n_items: Items of the scale; default all of the instrument's.

    Example:
        >>> from personae.measures import load_instrument
        >>> max_missing(load_instrument("phq-9")), max_missing(load_instrument("pss-10"))
        (1, 2)
    """
    declared = getattr(instrument, "max_missing", None)
    total = len(instrument.items)
    n = total if n_items is None else n_items
    if declared is not None:
        # Declared for the whole instrument; a subset of its items may miss as large a share.
        return int(declared) if n == total else int(declared) * n // total
    return n // 5


def _round2(x: float) -> float:
    # Half up. The polars path does the same and then rounds to 2 decimals again, because it
    # may divide by 100 as a multiplication and land one ulp off; the two agree exactly.
    return math.floor(x * 100 + 0.5) / 100


def _intervals(bands: Sequence[Band]) -> list[tuple[float, float, str]]:
    """Bands as contiguous half-open intervals [start, end); the last one is closed."""
    starts = [bands[0][0]] + [(a[1] + b[0]) / 2 for a, b in pairwise(bands)]
    ends = [*starts[1:], bands[-1][1]]
    return [(s, e, b[2]) for s, e, b in zip(starts, ends, bands, strict=True)]


def band_of(bands: Sequence[Band] | None, value: float | None) -> str | None:
    """The label of the band holding ``value`` (see the module notes on gaps), or ``None``.

    Example:
        >>> band_of([(0, 4, "minimal"), (5, 9, "mild")], 4.5)
        'mild'
    """
    if not bands or value is None:
        return None
    intervals = _intervals(bands)
    for i, (start, end, label) in enumerate(intervals):
        last = i == len(intervals) - 1
        if start <= value and (value < end or (last and value <= end)):
            return label
    return None


def score_frame(
    instrument: Instrument, measurements: pl.DataFrame, by: Sequence[str]
) -> pl.DataFrame:
    """Score many administrations at once; agrees with :func:`score`.

    Args:
        instrument: The instrument answered.
        measurements: One row per answer with columns ``item`` (str), ``value``
            (float, null when invalid), ``valid`` (0/1) and the ``by`` columns.
            Rows with ``valid == 0`` count as missing. When the frame has an
            ``instrument`` column not in ``by``, only this instrument's rows are used.
        by: The columns identifying one administration, e.g.
            ``["episode_id", "agent_id", "occasion", "prompt_variant", "option_order"]``.

    Returns:
        One row per administration and scale: the ``by`` columns, then ``level``,
        ``scale``, ``value``, ``n_items``, ``n_missing``, ``band``.

    Raises:
        ValueError: A column is missing, an item is answered twice in one
            administration, or a valid answer lies outside the option range.
    """
    by = list(by)
    drop = not by
    if drop:
        measurements, by = measurements.with_columns(pl.lit(0).alias(_GROUP)), [_GROUP]
    m = check_measurements(instrument, measurements, by)
    if scorer_for(instrument.name) is not None:
        out = _score_frame_custom(instrument, m, by)
    else:
        out = _score_frame_builtin(instrument, m, by)
    return out.drop(_GROUP) if drop else out


def check_measurements(
    instrument: Instrument, measurements: pl.DataFrame, by: list[str]
) -> pl.DataFrame:
    """The instrument's rows of ``measurements``, checked: one answer per item and ``by`` group.

    Raises:
        ValueError: A column is missing or an item is answered twice in one group.
    """
    missing = [c for c in ("item", "value", "valid", *by) if c not in measurements.columns]
    if missing:
        raise ValueError(f"measurements lack column(s) {missing}.")
    m = measurements.with_columns(pl.col("item").cast(pl.String), pl.col("value").cast(pl.Float64))
    if "instrument" in m.columns and "instrument" not in by:
        m = m.filter(pl.col("instrument") == instrument.name)
    m = m.filter(pl.col("item").is_in([i.id for i in instrument.items]))
    twice = m.group_by([*by, "item"]).len().filter(pl.col("len") > 1)
    if twice.height:
        example = {k: v for k, v in twice.row(0, named=True).items() if k != "len"}
        raise ValueError(
            f"{twice.height} item(s) of {instrument.name} answered more than once for the same "
            f"{', '.join(by)}, e.g. {example}; add the columns that tell administrations apart "
            "(prompt_variant, option_order, ...) or filter first."
        )
    return m


def keyed_answers(instrument: Instrument, m: pl.DataFrame) -> pl.DataFrame:
    """The valid answers of ``m`` with reverse-keyed items reversed in ``value``.

    Raises:
        ValueError: A valid answer lies outside the option range.
    """
    lo, hi = instrument.min_value, instrument.max_value
    answered = m.filter(
        (pl.col("valid") == 1) & pl.col("value").is_not_null() & pl.col("value").is_not_nan()
    )
    outside = answered.filter((pl.col("value") < lo) | (pl.col("value") > hi))
    if outside.height:
        row = outside.row(0, named=True)
        raise ValueError(
            f"{instrument.name} item {row['item']}: answer {row['value']} is outside {lo}-{hi} "
            f"({outside.height} such answer(s))."
        )
    reversed_ids = [i.id for i in instrument.items if i.keyed == "-"]
    return answered.with_columns(
        pl.when(pl.col("item").is_in(reversed_ids))
        .then(lo + hi - pl.col("value"))
        .otherwise(pl.col("value"))
        .alias("value")
    )


def _score_frame_builtin(instrument: Instrument, m: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    layout = pl.DataFrame(
        [
            {
                "level": s.level,
                "scale": s.scale,
                "item": i,
                _ORDER: k,
                "size": len(s.items),
                "allowed": max_missing(instrument, len(s.items)),
            }
            for k, s in enumerate(instrument.scales())
            for i in s.items
        ],
        schema={
            "level": pl.String,
            "scale": pl.String,
            "item": pl.String,
            _ORDER: pl.Int64,
            "size": pl.Int64,
            "allowed": pl.Int64,
        },
    )
    agg = (
        keyed_answers(instrument, m)
        .join(layout, on="item")
        .group_by([*by, _ORDER])
        .agg(
            n_items=pl.len().cast(pl.Int64),
            total=pl.col("value").sum(),
            mean=pl.col("value").mean(),
        )
    )
    groups = m.select(by).unique(maintain_order=True).with_row_index("__g")
    scales = layout.select("level", "scale", _ORDER, "size", "allowed").unique(_ORDER).sort(_ORDER)
    out = (
        groups.join(scales, how="cross")
        .join(agg, on=[*by, _ORDER], how="left", nulls_equal=True)
        .with_columns(pl.col("n_items").fill_null(0))
    )
    n, size = pl.col("n_items"), pl.col("size")
    if instrument.scoring == "mean":
        value = pl.when((n > 0) & (2 * n >= size)).then(pl.col("mean"))
    else:
        prorated = ((pl.col("total") / n * size * 100 + 0.5).floor() / 100).round(2)
        value = pl.when((n > 0) & (size - n <= pl.col("allowed"))).then(
            pl.when(n == size).then(pl.col("total")).otherwise(prorated)
        )
    out = out.with_columns(value.cast(pl.Float64).alias("value"), (size - n).alias("n_missing"))
    return (
        out.with_columns(_band_expr(instrument).alias("band"))
        .sort("__g", _ORDER)
        .select(*by, "level", "scale", "value", "n_items", "n_missing", "band")
    )


def _band_expr(instrument: Instrument) -> pl.Expr:
    expr: Any = pl.lit(None, dtype=pl.String)
    value = pl.col("value")
    for scale, bands in instrument.bands.items():
        intervals = _intervals(bands)
        for i, (start, end, label) in enumerate(reversed(intervals)):
            upper = (value <= end) if i == 0 else (value < end)
            expr = (
                pl.when((pl.col("scale") == scale) & (value >= start) & upper)
                .then(pl.lit(label))
                .otherwise(expr)
            )
    return expr


def _score_frame_custom(instrument: Instrument, m: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    rows = []
    for key, group in m.partition_by(by, as_dict=True, maintain_order=True).items():
        answers = {
            r["item"]: (r["value"] if r["valid"] == 1 else None)
            for r in group.select("item", "value", "valid").iter_rows(named=True)
        }
        ids = dict(zip(by, key, strict=True))
        for s in score(instrument, answers):
            rows.append(
                {
                    **ids,
                    "level": s.level,
                    "scale": s.scale,
                    "value": s.value,
                    "n_items": s.n_items,
                    "n_missing": s.n_missing,
                    "band": s.band,
                }
            )
    schema = {c: m.schema[c] for c in by} | {
        "level": pl.String,
        "scale": pl.String,
        "value": pl.Float64,
        "n_items": pl.Int64,
        "n_missing": pl.Int64,
        "band": pl.String,
    }
    return pl.DataFrame(rows, schema=schema)
