"""Declarative interventions on a student cohort: more sleep, fewer deadlines, more contact, traits.

An :class:`Intervention` says *what* changes (``kind`` and ``amount``), *for
whom* (``students`` and/or a random ``share``) and *when* (``start_day`` to
``end_day``, inclusive). :func:`assign` draws the treated group once, from a
seed; :func:`apply` returns new feature, calendar and trait frames in which
each intervention acts on its treated students from its start day on, and
nowhere else. Nothing is changed in place.

Kinds and what ``amount`` means:

=================== ==========================================================
``extra_sleep``     minutes added to ``sleep_minutes``
``fewer_deadlines`` share of the day's deadlines removed, 0-1 (1 = none left)
``more_social``     minutes added to ``conversation_minutes``; ``conversations``
                    (default one per 10 minutes) added to ``conversation_count``
``trait``           points added to the Big Five domain ``trait`` (kept in 1-5;
                    a domain the student's traits do not give starts from 3)
=================== ==========================================================

Several interventions add up, applied in the order given. A missing
measurement (null) stays missing: fill features before applying (as
:func:`personae.studies.cohort.term.mental_state.simulate` does) when the
intervention should act on every day.

Example:
    >>> sleep = Intervention(name="sleep", kind="extra_sleep", amount=60, start_day=7, share=0.5)
    >>> assignment = assign([sleep], ["s1", "s2", "s3", "s4"], seed=1)
    >>> int(assignment["treated"].sum())
    2
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, NamedTuple

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from personae.agents.persona import BIG_FIVE
from personae.errors import ConfigError
from personae.seeds import derive_seed
from personae.studies.cohort.term.mental_state import TRAIT_MIDPOINT

InterventionKind = Literal["extra_sleep", "fewer_deadlines", "more_social", "trait"]
#: Conversation minutes per added conversation when ``more_social`` does not say.
MINUTES_PER_CONVERSATION = 10.0
#: Columns of :func:`assign`.
ASSIGNMENT_SCHEMA: dict[str, Any] = {
    "student": pl.String,
    "intervention": pl.String,
    "treated": pl.Boolean,
}


class Intervention(BaseModel):
    """One intervention: what changes, for whom, from when.

    The treated group is ``students`` (all students when ``None``) or, with
    ``share``, a random subset of that many of them (rounded to the nearest
    whole student), drawn by :func:`assign`.

    Raises:
        pydantic.ValidationError: A field is invalid, ``end_day < start_day``,
            ``trait`` is missing for kind ``trait`` or given for another kind.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    name: str = Field(min_length=1)
    """Label; also the ``treated:<name>`` state variable the cohort scenario writes."""
    kind: InterventionKind
    """What changes (see the module table)."""
    amount: float
    """How much (unit depends on ``kind``)."""
    start_day: int = Field(default=0, ge=0)
    """First day on which it acts."""
    end_day: int | None = None
    """Last day on which it acts (inclusive); ``None`` = to the end of term."""
    students: tuple[str, ...] | None = None
    """Eligible students; ``None`` = the whole cohort."""
    share: float | None = Field(default=None, gt=0.0, le=1.0)
    """Treat a random share of the eligible students; ``None`` = all of them."""
    trait: str | None = None
    """Kind ``trait`` only: the Big Five domain changed (letter or name)."""
    conversations: float | None = Field(default=None, ge=0.0)
    """Kind ``more_social`` only: conversations added per day (default amount / 10)."""

    @model_validator(mode="after")
    def _consistent(self) -> Intervention:
        if self.end_day is not None and self.end_day < self.start_day:
            raise ValueError(f"end_day {self.end_day} is before start_day {self.start_day}")
        if self.kind == "trait":
            if self.trait is None or _letter(self.trait) is None:
                raise ValueError("kind 'trait' needs trait= one of O C E A N (or its name)")
        elif self.trait is not None:
            raise ValueError(f"trait= is only for kind 'trait', not {self.kind!r}")
        if self.kind == "fewer_deadlines" and not 0.0 <= self.amount <= 1.0:
            raise ValueError("fewer_deadlines: amount is the share of deadlines removed, 0-1")
        if self.conversations is not None and self.kind != "more_social":
            raise ValueError("conversations= is only for kind 'more_social'")
        return self

    def active(self, day: pl.Expr) -> pl.Expr:
        """Polars expression: whether the intervention acts on ``day``."""
        on = day >= self.start_day
        return on if self.end_day is None else on & (day <= self.end_day)


class Applied(NamedTuple):
    """What :func:`apply` returns: new frames, the inputs untouched.

    Attributes:
        features: The features frame with interventions added.
        calendar: The calendar per student: ``student`` x every calendar row
            (``day``, ``deadlines`` as float, ``exam``, ...).
        traits: Big Five per student and day: ``student``, ``day``, ``O``,
            ``C``, ``E``, ``A``, ``N`` (null where a student's traits give none);
            :func:`traits_by_day` turns it into a ``{(student, day): traits}`` dict.
    """

    features: pl.DataFrame
    calendar: pl.DataFrame
    traits: pl.DataFrame


def assign(
    interventions: Sequence[Intervention], students: Sequence[str], seed: int
) -> pl.DataFrame:
    """Draw the treated group of each intervention, reproducibly.

    Each intervention draws from its own generator seeded with
    ``derive_seed(seed, "intervention", name)``, over the eligible students in
    sorted order, so the draw does not depend on the order of ``students`` or
    of ``interventions``. Pass the *experiment* seed to keep the same treated
    group in every replicate, or the episode seed for a fresh draw per
    replicate; the cohort scenario draws once per episode (replicate).

    Args:
        interventions: The interventions (names must be unique).
        students: The cohort.
        seed: The seed of the draw.

    Returns:
        One row per intervention x student: ``student``, ``intervention``,
        ``treated`` (students outside ``Intervention.students`` are controls).

    Raises:
        ConfigError: Two interventions share a name.
    """
    names = [i.name for i in interventions]
    if len(set(names)) != len(names):
        raise ConfigError(f"intervention names must be unique, got {names}")
    cohort = sorted(set(students))
    rows: list[tuple[str, str, bool]] = []
    for intervention in interventions:
        eligible = (
            cohort
            if intervention.students is None
            else [s for s in cohort if s in set(intervention.students)]
        )
        treated = set(eligible)
        if intervention.share is not None:
            k = round(intervention.share * len(eligible))
            rng = np.random.default_rng(derive_seed(seed, "intervention", intervention.name))
            treated = {eligible[i] for i in rng.choice(len(eligible), size=k, replace=False)}
        rows += [(s, intervention.name, s in treated) for s in cohort]
    return pl.DataFrame(rows, schema=ASSIGNMENT_SCHEMA, orient="row")


def apply(
    interventions: Sequence[Intervention],
    features: pl.DataFrame,
    calendar: pl.DataFrame,
    traits: Mapping[str, Mapping[str, float]],
    assignment: pl.DataFrame,
) -> Applied:
    """Apply interventions to their treated students from their start days.

    Args:
        interventions: The interventions, applied in order.
        features: Daily features with ``student`` and ``day``.
        calendar: ``day``, ``deadlines``, ``exam`` and any other columns; one
            for the whole cohort, or one per student with a ``student`` column.
        traits: Big Five (1-5) per student, keys letters or domain names.
        assignment: From :func:`assign`; a student without a row is a control.

    Returns:
        :class:`Applied` ``(features, calendar, traits)``: new frames covering
        every student of ``features``, ``traits`` and ``assignment``, and every
        day of ``calendar`` and ``features``.

    Raises:
        ConfigError: An intervention has no rows in ``assignment``, or a column
            it changes is missing.
    """
    students = sorted(
        set(traits) | set(assignment["student"].to_list()) | set(features["student"].to_list())
    )
    days = sorted(set(calendar["day"].to_list()) | set(features["day"].to_list()))
    day_dtype = calendar.schema.get("day", pl.Int64)
    per_student = pl.DataFrame({"student": students}, schema={"student": pl.String})
    if "student" not in calendar.columns:  # one calendar for all: give each student a copy
        calendar = per_student.join(calendar, how="cross")
    if "deadlines" not in calendar.columns:
        calendar = calendar.with_columns(pl.lit(0.0).alias("deadlines"))
    out_calendar = calendar.with_columns(pl.col("deadlines").cast(pl.Float64))
    grid = per_student.join(
        pl.DataFrame({"day": days}, schema={"day": day_dtype}), how="cross"
    ).sort("student", "day")
    letters = [
        {k: _trait_level(traits.get(s, {}), k) for k in BIG_FIVE} | {"student": s} for s in students
    ]
    out_traits = grid.join(
        pl.DataFrame(letters, schema={"student": pl.String} | dict.fromkeys(BIG_FIVE, pl.Float64)),
        on="student",
        how="left",
    )
    out_features = features
    for intervention in interventions:
        treated = assignment.filter(
            (pl.col("intervention") == intervention.name) & pl.col("treated")
        )["student"]
        known = assignment.filter(pl.col("intervention") == intervention.name)
        if known.is_empty():
            raise ConfigError(f"intervention {intervention.name!r} has no rows in the assignment")
        acts = pl.col("student").is_in(treated.to_list()) & intervention.active(pl.col("day"))
        if intervention.kind == "extra_sleep":
            out_features = _add(out_features, "sleep_minutes", acts, intervention.amount)
        elif intervention.kind == "more_social":
            added = (
                intervention.conversations
                if intervention.conversations is not None
                else intervention.amount / MINUTES_PER_CONVERSATION
            )
            out_features = _add(out_features, "conversation_minutes", acts, intervention.amount)
            out_features = _add(out_features, "conversation_count", acts, added)
        elif intervention.kind == "fewer_deadlines":
            out_calendar = out_calendar.with_columns(
                pl.when(acts)
                .then(pl.col("deadlines") * (1.0 - intervention.amount))
                .otherwise(pl.col("deadlines"))
                .alias("deadlines")
            )
        else:
            letter = _letter(intervention.trait or "")
            assert letter is not None  # checked by the model validator
            out_traits = out_traits.with_columns(
                pl.when(acts)
                .then((pl.col(letter).fill_null(TRAIT_MIDPOINT) + intervention.amount).clip(1, 5))
                .otherwise(pl.col(letter))
                .alias(letter)
            )
    return Applied(out_features, out_calendar.sort("student", "day"), out_traits)


def traits_by_day(traits: pl.DataFrame) -> dict[tuple[str, int], dict[str, float]]:
    """The Big Five of each student on each day, from :attr:`Applied.traits`.

    Returns:
        ``{(student, day): {"O": ..., ...}}``, leaving out domains that are null
        (the rule counts them as 3). Pass ``result[student, day]`` to
        :meth:`~personae.studies.cohort.term.mental_state.StateRule.step`, so a ``trait``
        intervention acts from its start day only.

    Example:
        >>> frame = pl.DataFrame({"student": ["a"], "day": [0], "N": [4.0]})
        >>> traits_by_day(frame)
        {('a', 0): {'N': 4.0}}
    """
    letters = [k for k in BIG_FIVE if k in traits.columns]
    return {
        (row["student"], row["day"]): {k: row[k] for k in letters if row[k] is not None}
        for row in traits.iter_rows(named=True)
    }


def _add(frame: pl.DataFrame, column: str, acts: pl.Expr, amount: float) -> pl.DataFrame:
    """``column + amount`` where ``acts``, as float; nulls stay null."""
    if column not in frame.columns:
        raise ConfigError(f"the features frame has no column {column!r} to change")
    value = pl.col(column).cast(pl.Float64)
    return frame.with_columns(pl.when(acts).then(value + amount).otherwise(value).alias(column))


def _letter(trait: str) -> str | None:
    if trait.upper() in BIG_FIVE:
        return trait.upper()
    return {v: k for k, v in BIG_FIVE.items()}.get(trait.lower())


def _trait_level(traits: Mapping[str, float], letter: str) -> float | None:
    for key, level in traits.items():
        if _letter(key) == letter and level is not None:
            return float(level)
    return None
