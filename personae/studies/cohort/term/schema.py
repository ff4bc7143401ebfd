"""The sensing vocabulary: frame schemas, StudentLife's answer codes and the source protocol.

Every sensing source (:class:`~personae.studies.cohort.term.studentlife.StudentLife`
over a user's copy of the dataset, :class:`~personae.studies.cohort.term.synthetic.SyntheticTerm`
generated) gives polars frames with the schemas below, and codes StudentLife's
EMA answers with :func:`ema_items`. This module is their one home; the loader,
the writer, the generator and the analyses import them from here.

Example:
    >>> from personae.studies.cohort.term.schema import ema_items, stress_score
    >>> stress_score(3)  # raw level 3 is "Stressed out", the top of the monotonic scale
    5
    >>> ema_items("social", {"number": "2"})
    [('number', 2.0, 2, '5-9 persons')]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import polars as pl

from personae.errors import ConfigError

__all__ = [
    "BFI_44_DOMAINS",
    "BFI_44_REVERSED",
    "CALENDAR_SCHEMA",
    "EMA_FIELDS",
    "EMA_SCHEMA",
    "FEATURES",
    "FEATURE_SCHEMA",
    "LATENT_SCHEMA",
    "STREAMS",
    "STRESS_LABELS",
    "STRESS_SCORES",
    "SURVEY_SCHEMA",
    "SensingSource",
    "ema_items",
    "empty_frame",
    "sleep_hours",
    "stress_level",
    "stress_score",
]


#: Daily features, one row per student and day; nulls where a stream has no data.
FEATURE_SCHEMA: dict[str, pl.DataType] = {
    "student": pl.String(),
    "day": pl.Int64(),
    "date": pl.Date(),
    "sleep_minutes": pl.Float64(),
    "sleep_onset_hour": pl.Float64(),
    "wake_hour": pl.Float64(),
    "conversation_minutes": pl.Float64(),
    "conversation_count": pl.Int64(),
    "stationary_minutes": pl.Float64(),
    "walking_minutes": pl.Float64(),
    "running_minutes": pl.Float64(),
    "distinct_places": pl.Int64(),
    "home_minutes": pl.Float64(),
    "campus_minutes": pl.Float64(),
    "unlock_count": pl.Int64(),
    "unlock_minutes": pl.Float64(),
}
#: The daily features themselves (every column but ``student``, ``day`` and ``date``).
FEATURES: tuple[str, ...] = tuple(k for k in FEATURE_SCHEMA if k not in ("student", "day", "date"))
#: The feature columns each sensing stream fills; a stream's columns are null together.
STREAMS: dict[str, tuple[str, ...]] = {
    "sleep": ("sleep_minutes", "sleep_onset_hour", "wake_hour"),
    "conversation": ("conversation_minutes", "conversation_count"),
    "activity": ("stationary_minutes", "walking_minutes", "running_minutes"),
    "places": ("distinct_places", "home_minutes", "campus_minutes"),
    "phone": ("unlock_count", "unlock_minutes"),
}
CALENDAR_SCHEMA: dict[str, pl.DataType] = {
    "day": pl.Int64(),
    "date": pl.Date(),
    "week": pl.Int64(),
    "weekday": pl.Int64(),
    "deadlines": pl.Int64(),
    "exam": pl.Boolean(),
    "load": pl.Float64(),
}
SURVEY_SCHEMA: dict[str, pl.DataType] = {
    "student": pl.String(),
    "phase": pl.String(),
    "instrument": pl.String(),
    "scale": pl.String(),
    "value": pl.Float64(),
}
EMA_SCHEMA: dict[str, pl.DataType] = {
    "student": pl.String(),
    "day": pl.Int64(),
    "time": pl.Datetime("us"),
    "hour": pl.Float64(),
    "kind": pl.String(),
    "item": pl.String(),
    "value": pl.Float64(),
    "raw": pl.Int64(),
    "label": pl.String(),
}
LATENT_SCHEMA: dict[str, pl.DataType] = {
    "student": pl.String(),
    "day": pl.Int64(),
    "load": pl.Float64(),
    "stress": pl.Float64(),
    "mood": pl.Float64(),
}

#: StudentLife stress EMA ("Right now, I am..."): raw level to its label. Not monotonic.
STRESS_LABELS: dict[int, str] = {
    1: "A little stressed",
    2: "Definitely stressed",
    3: "Stressed out",
    4: "Feeling good",
    5: "Feeling great",
}
#: Raw stress level to a monotonic score, 1 (feeling great) to 5 (stressed out).
STRESS_SCORES: dict[int, int] = {5: 1, 4: 2, 1: 3, 2: 4, 3: 5}
_STRESS_LEVELS = {score: level for level, score in STRESS_SCORES.items()}

#: BFI-44 (John & Srivastava 1999): the items of each domain; reverse-keyed items in BFI_44_REVERSED.
BFI_44_DOMAINS: dict[str, tuple[int, ...]] = {
    "extraversion": (1, 6, 11, 16, 21, 26, 31, 36),
    "agreeableness": (2, 7, 12, 17, 22, 27, 32, 37, 42),
    "conscientiousness": (3, 8, 13, 18, 23, 28, 33, 38, 43),
    "neuroticism": (4, 9, 14, 19, 24, 29, 34, 39),
    "openness": (5, 10, 15, 20, 25, 30, 35, 40, 41, 44),
}
BFI_44_REVERSED = frozenset({2, 6, 8, 9, 12, 18, 21, 23, 24, 27, 31, 34, 35, 37, 41, 43})


def stress_score(level: int | str) -> int:
    """The monotonic stress score (1 feeling great ... 5 stressed out) of a raw StudentLife level.

    Raises:
        ConfigError: ``level`` is not 1-5.

    Example:
        >>> [stress_score(level) for level in (5, 4, 1, 2, 3)]
        [1, 2, 3, 4, 5]
    """
    try:
        return STRESS_SCORES[int(level)]
    except (KeyError, ValueError):
        raise ConfigError(f"stress level must be 1-5, got {level!r}") from None


def stress_level(score: int) -> int:
    """The raw StudentLife level of a monotonic stress score (inverse of :func:`stress_score`)."""
    try:
        return _STRESS_LEVELS[int(score)]
    except (KeyError, ValueError):
        raise ConfigError(f"stress score must be 1-5, got {score!r}") from None


def empty_frame(schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """An empty frame with one of the schemas above."""
    return pl.DataFrame(schema=schema)


@runtime_checkable
class SensingSource(Protocol):
    """Where a simulated term's sensing data come from (a dataset copy or a generator).

    Every frame follows the schema constants of this module: ``features()``
    :data:`FEATURE_SCHEMA`, ``calendar()`` :data:`CALENDAR_SCHEMA`,
    ``surveys()`` :data:`SURVEY_SCHEMA`, ``ema()`` :data:`EMA_SCHEMA`.
    """

    def students(self) -> list[str]:
        """Student ids, sorted (``'u00'``, ``'u01'``, ...)."""
        ...

    def days(self) -> int:
        """Number of days in the term; days are numbered from 0."""
        ...

    def features(self) -> pl.DataFrame:
        """Daily features: every student x day, nulls where data are missing."""
        ...

    def calendar(self) -> pl.DataFrame:
        """One row per day: date, week, deadlines, exam, academic load."""
        ...

    def surveys(self) -> pl.DataFrame:
        """Pre/post PHQ-9 and PSS-10 totals and BFI-44 domain means."""
        ...

    def ema(self) -> pl.DataFrame:
        """EMA responses in long form: one row per answered item."""
        ...


# --- StudentLife's EMA codes ----------------------------------------------------------------


def sleep_hours(code: int) -> float:
    """Hours of the StudentLife sleep EMA's ``hour`` option: 1 is "<3" (3.0), then 3.5 ... 12 by half hours."""
    return 3.0 if code <= 1 else 3.5 + 0.5 * (code - 2)


_SLEEP_RATES = {1: "Very good", 2: "Fairly good", 3: "Fairly bad", 4: "Very bad"}
_AWAKE_TROUBLE = {1: "None", 2: "Once", 3: "Twice", 4: "Three or more times"}
_CONTACTS = {
    1: "0-4 persons",
    2: "5-9 persons",
    3: "10-19 persons",
    4: "20-49 persons",
    5: "50-99 persons",
    6: "over 100 persons",
}
_INTENSITY = {1: "a little bit", 2: "somewhat", 3: "very much", 4: "extremely"}
_YES_NO = {1: "Yes", 2: "No"}
#: The StudentLife EMA fields used per kind, with the labels of their option codes.
EMA_FIELDS: dict[str, dict[str, dict[int, str]]] = {
    "stress": {"level": STRESS_LABELS},
    "mood": {"happyornot": _YES_NO, "happy": _INTENSITY, "sadornot": _YES_NO, "sad": _INTENSITY},
    "sleep": {
        "hour": {code: "<3" if code == 1 else f"{sleep_hours(code):g}" for code in range(1, 20)},
        "rate": _SLEEP_RATES,
        "social": _AWAKE_TROUBLE,
    },
    "social": {"number": _CONTACTS},
}


def _code(value: object) -> int | None:
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    return int(number) if number.is_integer() else None


def ema_items(
    kind: str, response: Mapping[str, object]
) -> list[tuple[str, float, int | None, str]]:
    """The items of one StudentLife EMA response as ``(item, value, raw code, label)``.

    ``value`` is the stress score (1 feeling great ... 5 stressed out) for
    stress ``level``, the hours for sleep ``hour`` and the option code
    otherwise; mood adds ``valence``, happy intensity minus sad intensity (-4 to
    4; "yes" without an intensity counts 1). Fields not in :data:`EMA_FIELDS`,
    and missing, non-numeric or out-of-range codes, are skipped.

    Example:
        >>> ema_items("stress", {"level": "3", "resp_time": 1364400000})
        [('level', 5.0, 3, 'Stressed out')]
        >>> ema_items("stress", {"resp_time": 1364400000})
        []
    """
    out: list[tuple[str, float, int | None, str]] = []
    codes: dict[str, int] = {}
    for item, labels in EMA_FIELDS[kind].items():
        code = _code(response[item]) if item in response else None
        if code is None or code not in labels:
            continue
        codes[item] = code
        if kind == "stress":
            value = float(stress_score(code))
        elif item == "hour":
            value = sleep_hours(code)
        else:
            value = float(code)
        out.append((item, value, code, labels[code]))
    if kind == "mood" and ("happyornot" in codes or "sadornot" in codes):
        happy = codes.get("happy", 1) if codes.get("happyornot") == 1 else 0
        sad = codes.get("sad", 1) if codes.get("sadornot") == 1 else 0
        out.append(("valence", float(happy - sad), None, "happy minus sad intensity"))
    return out
