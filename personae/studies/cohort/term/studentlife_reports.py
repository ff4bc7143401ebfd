"""Self-reports in the StudentLife layout: scoring the surveys, reading the EMA files.

The pre/post surveys (``dataset/survey/PHQ-9.csv``, ``PerceivedStressScale.csv``,
``BigFive.csv``) hold answers as text, matched loosely to option values
(:func:`answer_value`) and scored per instrument (:func:`score_items`). EMA
responses (``dataset/EMA/response/<Kind>/<Kind>_uXX.json``) are JSON arrays,
read item by item (:func:`ema_rows`, :func:`read_ema`).

Example:
    >>> answer_value("pss-10", " sometime "), answer_value("bfi-44", "Agree Strongly")
    (2, 5)
"""

from __future__ import annotations

import difflib
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from personae.errors import ConfigError
from personae.measures.instruments import Instrument, load_instrument
from personae.measures.scoring import max_missing
from personae.studies.cohort.term.calendar import Term
from personae.studies.cohort.term.schema import (
    BFI_44_DOMAINS,
    BFI_44_REVERSED,
    EMA_SCHEMA,
    SURVEY_SCHEMA,
    ema_items,
    empty_frame,
)

__all__ = [
    "BFI_44_OPTIONS",
    "EMA_KINDS",
    "SURVEY_ITEMS",
    "answer_value",
    "ema_rows",
    "header_key",
    "read_ema",
    "score_items",
    "score_survey",
]

#: The EMA kinds read (folders under ``EMA/response``, matched case-insensitively).
EMA_KINDS = ("Stress", "Mood", "Sleep", "Social")
_UID = re.compile(r"_(u\d+)\.json$", re.IGNORECASE)


def header_key(name: str) -> str:
    """A CSV header compared loosely: ``' activity inference'`` -> ``'activity_inference'``."""
    return re.sub(r"\s+", "_", name.strip().lower())


# --- surveys ---------------------------------------------------------------------------------

#: BFI-44 response options as the StudentLife file spells them, 1-5.
BFI_44_OPTIONS = (
    "Disagree Strongly",
    "Disagree a little",
    "Neither agree nor disagree",
    "Agree a little",
    "Agree strongly",
)
#: Spellings seen in the StudentLife files or common elsewhere, beyond the option labels.
_VARIANTS: dict[str, dict[str, int]] = {
    "phq-9": {"more than half of the days": 2, "nearly everyday": 3},
    "pss-10": {"sometime": 2, "almost ever": 1},
    "bfi-44": {
        "strongly disagree": 1,
        "disagree": 2,
        "a little disagree": 2,
        "neutral": 3,
        "neither agree or disagree": 3,
        "agree": 4,
        "a little agree": 4,
        "strongly agree": 5,
    },
}


def _normal_answer(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9 ]+", " ", text.lower()).split())


@cache
def _answer_key(instrument: str) -> dict[str, int]:
    """Normalised answer text to value, for one instrument."""
    if instrument == "bfi-44":
        key = {_normal_answer(label): v for v, label in enumerate(BFI_44_OPTIONS, start=1)}
    else:
        key = {_normal_answer(o.label): o.value for o in load_instrument(instrument).options}
    return key | _VARIANTS[instrument]


def answer_value(instrument: str, text: str | None) -> int | None:
    """The value of a StudentLife survey answer, matched loosely; ``None`` when unrecognised.

    Case, punctuation and spacing are ignored, known variants are accepted
    ("Sometime", "Strongly agree"), a plain number in range is taken as is and
    near misses are matched by similarity (``difflib``, cutoff 0.8).

    Example:
        >>> answer_value("pss-10", " sometime "), answer_value("bfi-44", "Agree Strongly")
        (2, 5)
    """
    if text is None:
        return None
    key = _answer_key(instrument)
    norm = _normal_answer(text)
    if not norm:
        return None
    if norm in key:
        return key[norm]
    if norm.isdigit() and int(norm) in set(key.values()):
        return int(norm)
    close = difflib.get_close_matches(norm, list(key), n=1, cutoff=0.8)
    return key[close[0]] if close else None


#: Items (first columns after uid and type) read per instrument.
SURVEY_ITEMS = {"phq-9": 9, "pss-10": 10, "bfi-44": 44}


def score_survey(path: Path, instrument: str) -> pl.DataFrame:
    """Score one StudentLife survey file: the items are the columns after uid and type, in order.

    Returns:
        Rows of :data:`~personae.studies.cohort.term.schema.SURVEY_SCHEMA` (student,
        phase, instrument, scale, value); unscorable totals are left out.

    Raises:
        ConfigError: No uid or type column, or fewer item columns than the instrument has.
    """
    raw = pl.read_csv(path, infer_schema=False)
    names = {header_key(c): c for c in raw.columns}
    if "uid" not in names or "type" not in names:
        raise ConfigError(f"{path} needs uid and type columns; its columns are {raw.columns}")
    items = [c for c in raw.columns if c not in (names["uid"], names["type"])][
        : SURVEY_ITEMS[instrument]
    ]
    if len(items) < SURVEY_ITEMS[instrument]:
        raise ConfigError(
            f"{path} has {len(items)} item columns; {instrument} needs {SURVEY_ITEMS[instrument]}"
        )
    answers = {v for c in items for v in raw[c].unique().to_list() if v is not None}
    mapping = {v: answer_value(instrument, v) for v in answers}
    values = (
        raw.select(
            [
                pl.col(c).replace_strict(mapping, default=None, return_dtype=pl.Float64)
                for c in items
            ]
        )
        .to_numpy()
        .astype(float)
    )
    scores = score_items(instrument, values)
    students = raw[names["uid"]].str.strip_chars().to_list()
    phases = raw[names["type"]].str.strip_chars().str.to_lowercase().to_list()
    rows = [
        (student, phase, instrument, scale, float(column[r]))
        for scale, column in scores.items()
        for r, (student, phase) in enumerate(zip(students, phases, strict=True))
        if not np.isnan(column[r])
    ]
    return pl.DataFrame(rows, schema=SURVEY_SCHEMA, orient="row")


def score_items(instrument: str, values: np.ndarray) -> dict[str, np.ndarray]:
    """Score item values (rows = respondents, columns = items in order; NaN = unanswered).

    PHQ-9: the sum of 9 items (0-3). PSS-10: the sum of 10 items (0-4) with
    items 4, 5, 7 and 8 reverse scored (the bundled instrument's key). A total
    with at most the instrument's ``max_missing`` items unanswered (PHQ-9 1,
    PSS-10 2: :func:`personae.measures.scoring.max_missing`) is prorated (mean of
    the answered items x the item count, to 2 decimals); with more it is NaN. BFI-44: per domain, the mean of its answered
    items (1-5) after reversing the reverse-keyed ones, NaN when fewer than half
    are answered.

    Returns:
        Scale name (``"total"`` or a Big Five domain) to one score per row.
    """
    values = np.array(values, dtype=float)
    if instrument == "bfi-44":
        out = {}
        for domain, items in BFI_44_DOMAINS.items():
            cols = np.column_stack(
                [6 - values[:, i - 1] if i in BFI_44_REVERSED else values[:, i - 1] for i in items]
            )
            answered = (~np.isnan(cols)).sum(axis=1)
            with np.errstate(invalid="ignore"):
                mean = np.nanmean(np.where(answered[:, None] > 0, cols, 0.0), axis=1)
            out[domain] = np.where(answered * 2 >= len(items), mean, np.nan)
        return out
    inst: Instrument = load_instrument(instrument)
    cols = np.column_stack(
        [
            inst.min_value + inst.max_value - values[:, k] if item.keyed == "-" else values[:, k]
            for k, item in enumerate(inst.items)
        ]
    )
    answered = (~np.isnan(cols)).sum(axis=1)
    with np.errstate(invalid="ignore"):
        total = np.nansum(cols, axis=1) * len(inst.items) / np.maximum(answered, 1)
    # The instrument's one proration rule, rounded as personae.measures.scoring rounds.
    total = np.floor(total * 100.0 + 0.5) / 100.0
    allowed = len(inst.items) - max_missing(inst)
    return {"total": np.where(answered >= allowed, total, np.nan)}


# --- EMA -------------------------------------------------------------------------------------


def ema_rows(path: Path, student: str, kind: str) -> list[dict[str, Any]]:
    """The answered items of one EMA file (a JSON array of responses), one dict per item.

    Responses without a numeric ``resp_time`` or without the kind's fields are skipped.

    Raises:
        ConfigError: The file cannot be read or is not a JSON array.
    """
    try:
        responses = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read EMA file {path}: {exc}") from None
    if not isinstance(responses, list):
        raise ConfigError(f"EMA file {path} must hold a JSON array of responses")
    rows = []
    for response in responses:
        if not isinstance(response, dict):
            continue
        try:
            when = float(response["resp_time"])
        except (KeyError, TypeError, ValueError):
            continue
        for item, value, raw, label in ema_items(kind, response):
            rows.append(
                {
                    "student": student,
                    "resp_time": when,
                    "kind": kind,
                    "item": item,
                    "value": value,
                    "raw": raw,
                    "label": label,
                }
            )
    return rows


def read_ema(response: Path, term: Term) -> pl.DataFrame:
    """The :data:`EMA_KINDS` responses under ``response`` inside the term.

    Args:
        response: The ``EMA/response`` folder (absent: an empty frame).
        term: Day numbers and local times are taken in its time zone.

    Returns:
        :data:`~personae.studies.cohort.term.schema.EMA_SCHEMA` rows sorted by student,
        time, kind and item.
    """
    rows: list[dict[str, Any]] = []
    folders = {p.name.lower(): p for p in response.iterdir()} if response.is_dir() else {}
    for kind in EMA_KINDS:
        for path in sorted(folders[kind.lower()].glob("*.json")) if kind.lower() in folders else []:
            match = _UID.search(path.name)
            if match:
                rows.extend(ema_rows(path, match.group(1), kind.lower()))
    if not rows:
        return empty_frame(EMA_SCHEMA)
    schema = {"student": pl.String, "resp_time": pl.Float64, "kind": pl.String}
    schema |= {"item": pl.String, "value": pl.Float64, "raw": pl.Int64, "label": pl.String}
    local = (
        pl.from_epoch((pl.col("resp_time") * 1000).round().cast(pl.Int64), time_unit="ms")
        .dt.replace_time_zone("UTC")
        .dt.convert_time_zone(term.timezone)
        .dt.replace_time_zone(None)
    )
    return (
        pl.DataFrame(rows, schema=schema)
        .with_columns(time=local)
        .with_columns(
            day=(pl.col("time").dt.date() - pl.lit(term.start)).dt.total_days(),
            hour=(pl.col("time") - pl.col("time").dt.truncate("1d")).dt.total_microseconds()
            / 3.6e9,
        )
        .filter(pl.col("day").is_between(0, term.n_days - 1))
        .select([pl.col(c).cast(t) for c, t in EMA_SCHEMA.items()])
        .sort("student", "time", "kind", "item")
    )
