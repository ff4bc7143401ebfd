"""The academic term: dates, deadlines, exams and the academic load they make.

Example:
    >>> from personae.studies.cohort.term.calendar import Term
    >>> term = Term(n_days=14)  # the 70-day schedule, squeezed into two weeks
    >>> term.calendar().height, str(term.date_of(7)), term.exam_days[:3]
    (14, '2013-04-03', (5, 6, 7))
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import polars as pl

from personae.errors import ConfigError
from personae.studies.cohort.term.schema import CALENDAR_SCHEMA

__all__ = ["Term"]

#: The default 10-week schedule: weekly deadlines, thicker before midterms (weeks 4-5) and finals.
_DEFAULT_DEADLINES = (2, 9, 14, 16, 21, 23, 25, 30, 37, 42, 44, 49, 51, 53, 56, 58, 60, 62, 63)
_DEFAULT_EXAMS = (27, 29, 33, 64, 66, 68)
_DEFAULT_DAYS = 70


def _scaled(days: tuple[int, ...], n_days: int) -> tuple[int, ...]:
    return tuple(min(n_days - 1, round(d * n_days / _DEFAULT_DAYS)) for d in days)


@dataclass(frozen=True, kw_only=True)
class Term:
    """An academic term: its dates, deadlines and exams.

    Args:
        start: The date of day 0 (StudentLife: 2013-03-27).
        n_days: Length in days (70: ten weeks).
        deadline_days: Days with a deadline; a day listed twice has two. By default
            one to four a week, building up to midterms and to finals; for another
            ``n_days`` the default schedule is stretched to fit.
        exam_days: Exam days; by default midterms in weeks 4-5 and finals in week 10.
        timezone: Where day boundaries fall (IANA name).

    Raises:
        ConfigError: A day is outside the term, ``n_days`` < 1, or the time zone is unknown.

    Example:
        >>> Term().calendar().filter("exam")["week"].to_list()
        [4, 5, 5, 10, 10, 10]
    """

    start: date = date(2013, 3, 27)
    n_days: int = _DEFAULT_DAYS
    deadline_days: tuple[int, ...] | None = None
    exam_days: tuple[int, ...] | None = None
    timezone: str = "America/New_York"

    def __post_init__(self) -> None:
        if self.n_days < 1:
            raise ConfigError(f"Term.n_days must be at least 1, got {self.n_days}")
        for name, default in (("deadline_days", _DEFAULT_DEADLINES), ("exam_days", _DEFAULT_EXAMS)):
            value = getattr(self, name)
            value = _scaled(default, self.n_days) if value is None else tuple(value)
            outside = [d for d in value if not 0 <= d < self.n_days]
            if outside:
                raise ConfigError(f"Term.{name} {outside} fall outside days 0-{self.n_days - 1}")
            object.__setattr__(self, name, tuple(sorted(value)))
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"Term.timezone {self.timezone!r} is not a known time zone") from None

    def date_of(self, day: int) -> date:
        """The calendar date of a day number."""
        return self.start + timedelta(days=day)

    def epoch(self, day: int, hour: float = 0.0) -> float:
        """Unix time of ``hour`` hours after local midnight starting ``day`` (may be negative)."""
        midnight = datetime.combine(self.date_of(day), time(), ZoneInfo(self.timezone))
        return midnight.timestamp() + hour * 3600.0

    def load(self) -> np.ndarray:
        """Academic load per day in [0, 1]: a slow rise plus build-ups before deadlines and exams.

        ``0.15 + 0.25 * day / (n_days - 1)``, plus ``0.12 * (1 - k / 4)`` for a
        deadline ``k`` = 0-3 days ahead, plus ``0.35 * exp(-k^2 / 8)`` for an
        exam ``k`` days ahead (``exp(-k^2)`` once it is ``k`` days past); clipped to [0, 1].
        """
        days = np.arange(self.n_days, dtype=float)
        load = 0.15 + 0.25 * days / max(1, self.n_days - 1)
        assert self.deadline_days is not None and self.exam_days is not None
        for deadline in self.deadline_days:
            ahead = deadline - days
            load += np.where((ahead >= 0) & (ahead <= 3), 0.12 * (1 - ahead / 4), 0.0)
        for exam in self.exam_days:
            ahead = exam - days
            load += 0.35 * np.where(ahead >= 0, np.exp(-(ahead**2) / 8), np.exp(-(ahead**2)))
        return np.clip(load, 0.0, 1.0)

    def calendar(self) -> pl.DataFrame:
        """The term calendar (:data:`CALENDAR_SCHEMA`); week 1 is days 0-6, weekday 0 is Monday."""
        assert self.deadline_days is not None and self.exam_days is not None
        days = list(range(self.n_days))
        dates = [self.date_of(d) for d in days]
        return pl.DataFrame(
            {
                "day": days,
                "date": dates,
                "week": [d // 7 + 1 for d in days],
                "weekday": [x.weekday() for x in dates],
                "deadlines": [self.deadline_days.count(d) for d in days],
                "exam": [d in self.exam_days for d in days],
                "load": self.load().tolist(),
            },
            schema=CALENDAR_SCHEMA,
        )
