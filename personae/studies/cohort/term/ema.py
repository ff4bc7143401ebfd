"""EMA items: what each question asks, about which period, and the variable its answers become.

An EMA (ecological momentary assessment) answer given on day ``t`` may be
about that day, last night or yesterday. Pairing an answer with the sensing
features of the wrong day blurs or hides a relation, so every item declares
its :data:`Period`, and the analysis pairs each answer with the features of
the days that period covers (:data:`PERIOD_LAGS`):

============== ===================================== =================================
period         the answer is about                    paired with the feature of
============== ===================================== =================================
``today``      the day of the answer (or right now)   day ``t``
``last_night`` the night before the answer            day ``t`` (sensing files a night
                                                      under the day it ends on)
``yesterday``  the day before the answer              day ``t - 1``
``past_week``  the seven days before the answer       the mean over days ``t - 7`` ...
                                                      ``t - 1`` (at least 4 of them)
============== ===================================== =================================

Two instruments ship, keyed in :data:`EMA_INSTRUMENTS` by the ``source`` their
rows carry in a cohort series:

* :data:`COHORT_EMA` (``source = 'ema'``): the check-in the cohort scenario
  asks each student in persona every day;
* :data:`STUDENTLIFE_EMA` (``source = 'studentlife'``): the StudentLife EMA
  answers of a sensing source (a StudentLife copy or
  :class:`~personae.studies.cohort.term.synthetic.SyntheticTerm`), as
  :func:`personae.studies.cohort.analysis.source_series` reads them. Its social item
  counts yesterday's contacts, unlike the cohort's, which counts today's.

Example:
    >>> [item.period for item in STUDENTLIFE_EMA if item.variable == "ema_social"]
    ['yesterday']
    >>> PERIOD_LAGS["past_week"]
    (1, 2, 3, 4, 5, 6, 7)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal, get_args

from personae.errors import ConfigError
from personae.studies.cohort.term.schema import STRESS_LABELS, STRESS_SCORES

#: What an EMA item asks about, relative to the day ``t`` it is answered on.
Period = Literal["today", "last_night", "yesterday", "past_week"]
PERIODS: tuple[str, ...] = get_args(Period)
#: Days before the answer whose features an item of each period is paired with (mean over them).
PERIOD_LAGS: dict[str, tuple[int, ...]] = {
    "today": (0,),
    "last_night": (0,),
    "yesterday": (1,),
    "past_week": (1, 2, 3, 4, 5, 6, 7),
}
#: Fewest days of a ``past_week`` window with a feature value for the pairing to count.
MIN_WEEK_DAYS = 4
#: ``source`` of the EMA rows of each instrument below.
COHORT_SOURCE = "ema"
STUDENTLIFE_SOURCE = "studentlife"


@dataclasses.dataclass(frozen=True, kw_only=True)
class EmaItem:
    """One EMA question and the variable its answers are stored as.

    Args:
        variable: The stored variable (``ema_<name>``).
        field: Where the answer is: the JSON key the student answers with
            (cohort), or ``<kind>.<item>`` of an EMA frame (StudentLife).
        question: The question as asked.
        period: What the question asks about (see the module docstring).
        low: Smallest valid answer (None: not checked).
        high: Largest valid answer (None: not checked).
        choices: Answer codes offered, listed with ``labels`` (None: any number in range).
        labels: Text of each answer code, shown with the question and stored as the row's text.
        recode: Stored value of each answer code (e.g. the monotonic stress
            score of a StudentLife stress level); None stores the answer.
        example: The answer shown in the check-in's JSON example.

    Raises:
        ConfigError: ``period`` is unknown, ``variable`` does not start with
            ``ema_``, or ``low`` > ``high``.
    """

    variable: str
    field: str
    question: str
    period: Period
    low: float | None = None
    high: float | None = None
    choices: tuple[int, ...] | None = None
    labels: Mapping[int, str] = dataclasses.field(default_factory=dict)
    recode: Mapping[int, float] | None = None
    example: int = 1

    def __post_init__(self) -> None:
        if self.period not in PERIODS:
            raise ConfigError(
                f"EmaItem.period must be one of {', '.join(PERIODS)}, got {self.period!r}"
            )
        if not self.variable.startswith("ema_"):
            raise ConfigError(f"EmaItem.variable must start with 'ema_', got {self.variable!r}")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ConfigError(f"EmaItem {self.variable}: low {self.low} > high {self.high}")

    @property
    def lags(self) -> tuple[int, ...]:
        """Days before the answer whose features it is paired with (:data:`PERIOD_LAGS`)."""
        return PERIOD_LAGS[self.period]

    def read(self, answer: object) -> tuple[float | None, str | None]:
        """The stored value and label of one answer; ``(None, None)`` when it is not valid.

        An answer is valid when it is a number within ``low``-``high``; an
        item with ``labels`` or ``recode`` reads it as an option code (whole number).

        Example:
            >>> COHORT_EMA[0].read("3")
            (5.0, 'Stressed out')
            >>> COHORT_EMA[3].read(99)
            (None, None)
        """
        try:
            number = float(answer)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return None, None
        if not math.isfinite(number):
            return None, None
        if (self.low is not None and number < self.low) or (
            self.high is not None and number > self.high
        ):
            return None, None
        if not self.labels and self.recode is None:
            return number, None
        code = int(number)
        value = float(code) if self.recode is None else self.recode.get(code)
        return value, self.labels.get(code)


_STRESS_CODES = tuple(sorted(STRESS_LABELS))

#: The cohort scenario's daily check-in, asked in persona (states, ``source = 'ema'``).
COHORT_EMA: tuple[EmaItem, ...] = (
    EmaItem(
        variable="ema_stress",
        field="stress",
        question="right now I am ...",
        period="today",
        low=1,
        high=5,
        choices=_STRESS_CODES,
        labels=STRESS_LABELS,
        recode={level: float(score) for level, score in STRESS_SCORES.items()},
        example=4,
    ),
    EmaItem(
        variable="ema_mood",
        field="mood",
        question="1 (very bad) to 5 (very good)",
        period="today",
        low=1,
        high=5,
        choices=(1, 2, 3, 4, 5),
        example=3,
    ),
    EmaItem(
        variable="ema_sleep",
        field="sleep_hours",
        question="how many hours did you sleep last night",
        period="last_night",
        low=0,
        high=16,
        example=7,
    ),
    EmaItem(
        variable="ema_social",
        field="social",
        question="how many people did you talk to today",
        period="today",
        low=0,
        high=50,
        example=5,
    ),
)

#: The StudentLife EMA answers read as ``ema_*`` variables (``source = 'studentlife'``);
#: ``field`` is ``<kind>.<item>`` of the EMA frame (see ``docs/sensing.md``).
STUDENTLIFE_EMA: tuple[EmaItem, ...] = (
    EmaItem(
        variable="ema_stress",
        field="stress.level",
        question="Right now, I am ... (scored 1 feeling great ... 5 stressed out)",
        period="today",
        low=1,
        high=5,
    ),
    EmaItem(
        variable="ema_mood",
        field="mood.valence",
        question="Are you happy / sad right now, and how much (happy minus sad intensity)",
        period="today",
        low=-4,
        high=4,
    ),
    EmaItem(
        variable="ema_sleep",
        field="sleep.hour",
        question="How many hours did you sleep last night?",
        period="last_night",
        low=3,
        high=12,
    ),
    EmaItem(
        variable="ema_social",
        field="social.number",
        question="How many people did you have contact with yesterday? (option code 1-6)",
        period="yesterday",
        low=1,
        high=6,
    ),
)

#: Each instrument's items by the ``source`` of its rows.
EMA_INSTRUMENTS: dict[str, tuple[EmaItem, ...]] = {
    COHORT_SOURCE: COHORT_EMA,
    STUDENTLIFE_SOURCE: STUDENTLIFE_EMA,
}


def checkin_question(items: Sequence[EmaItem] = COHORT_EMA) -> str:
    """The cohort's check-in prompt: each item's field, question and options, then the JSON to reply.

    Example:
        >>> print(checkin_question(COHORT_EMA[1:3]))
        Quick check-in (answer as yourself, about today).
        mood: 1 (very bad) to 5 (very good)
        sleep_hours: how many hours did you sleep last night
        Reply in JSON, e.g. {"mood": 3, "sleep_hours": 7}.
    """
    lines = ["Quick check-in (answer as yourself, about today)."]
    for item in items:
        lines.append(f"{item.field}: {item.question}")
        lines += [f"{code}. {label}" for code, label in item.labels.items()]
    example = ", ".join(f'"{item.field}": {item.example}' for item in items)
    lines.append(f"Reply in JSON, e.g. {{{example}}}.")
    return "\n".join(lines)


def checkin_schema(items: Sequence[EmaItem] = COHORT_EMA) -> dict[str, Any]:
    """The JSON schema of a check-in answer: one integer per item, its choices or its range."""
    properties: dict[str, Any] = {}
    for item in items:
        spec: dict[str, Any] = {"type": "integer"}
        if item.choices is not None:
            spec["enum"] = list(item.choices)
        else:
            if item.low is not None:
                spec["minimum"] = int(item.low)
            if item.high is not None:
                spec["maximum"] = int(item.high)
        properties[item.field] = spec
    return {
        "type": "object",
        "properties": properties,
        "required": [item.field for item in items],
        "additionalProperties": False,
    }


def item_periods(items: Sequence[EmaItem] | Mapping[str, EmaItem]) -> dict[str, Period]:
    """``{variable: period}`` of some items.

    Example:
        >>> item_periods(COHORT_EMA)["ema_sleep"]
        'last_night'
    """
    values = items.values() if isinstance(items, Mapping) else items
    return {item.variable: item.period for item in values}


__all__ = [
    "COHORT_EMA",
    "COHORT_SOURCE",
    "EMA_INSTRUMENTS",
    "MIN_WEEK_DAYS",
    "PERIODS",
    "PERIOD_LAGS",
    "STUDENTLIFE_EMA",
    "STUDENTLIFE_SOURCE",
    "EmaItem",
    "Period",
    "checkin_question",
    "checkin_schema",
    "item_periods",
]
