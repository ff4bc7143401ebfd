"""One term, prepared once: the inputs of the daily state rule for every student and day.

Both the cohort scenario's day loop and the model-free twin
:func:`~personae.studies.cohort.term.mental_state.simulate` run a term the same
way: lay the sensing features on a student-by-day grid, fill what is missing
(:func:`~personae.studies.cohort.term.mental_state.fill_features`), draw who is
treated and apply the interventions
(:mod:`~personae.studies.cohort.term.interventions`), then index features,
events and traits by ``(student, day)``. :func:`prepare_term` does that once;
:meth:`PreparedTerm.step` is the rule's step for one student-day on those
inputs, so the two cannot drift apart.

Example:
    >>> from personae.studies.cohort.term.mental_state import StateRule
    >>> from personae.studies.cohort.term.synthetic import SyntheticTerm
    >>> source = SyntheticTerm(n_students=2, seed=1)
    >>> traits = {"u00": {"N": 4.0}, "u01": {"N": 2.0}}
    >>> term = prepare_term(StateRule(), source.features(), source.calendar(), traits)
    >>> state = term.step(term.initial_state("u00"), "u00", 0)
    >>> term.days[:3], round(state.stress, 1)
    ((0, 1, 2), 42.9)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from personae.studies.cohort.term import interventions as iv
from personae.studies.cohort.term.mental_state import (
    MentalState,
    MissingPolicy,
    StateRule,
    fill_features,
)

__all__ = ["PreparedTerm", "prepare_term"]

#: Inputs of one student-day, by ``(student, day)``.
ByStudentDay = dict[tuple[str, int], dict[str, Any]]


@dataclass(frozen=True, kw_only=True)
class PreparedTerm:
    """The rule's inputs for every student-day of a term (see the module docstring).

    Attributes:
        rule: The daily update rule.
        students: Student names, in the order given.
        days: The term's day numbers, ascending.
        traits: Each student's Big Five (1-5) before any intervention.
        assignment: Who is treated by which intervention
            (:func:`~personae.studies.cohort.term.interventions.assign`).
        features: Filled, intervened sensing features by ``(student, day)``.
        events: Calendar and events (deadlines, exam, extra points) by ``(student, day)``.
        traits_on: Intervened traits by ``(student, day)``, where an intervention changes them.
    """

    rule: StateRule
    students: tuple[str, ...]
    days: tuple[int, ...]
    traits: Mapping[str, Mapping[str, float]]
    assignment: pl.DataFrame
    features: ByStudentDay
    events: ByStudentDay
    traits_on: Mapping[tuple[str, int], Mapping[str, float]]

    def features_on(self, student: str, day: int) -> Mapping[str, Any]:
        """The student's sensing features of ``day`` (empty when there is no row)."""
        return self.features.get((student, day), {})

    def events_on(self, student: str, day: int) -> Mapping[str, Any]:
        """The student's calendar and events of ``day`` (empty when there is no row)."""
        return self.events.get((student, day), {})

    def traits_of(self, student: str, day: int) -> Mapping[str, float]:
        """The student's Big Five on ``day``, trait interventions included."""
        return self.traits_on.get((student, day), self.traits[student])

    def initial_state(self, student: str) -> MentalState:
        """The state on the morning of the first day: the rule's baseline for that day's traits."""
        return self.rule.initial_state(self.traits_of(student, self.days[0] if self.days else 0))

    def step(
        self, state: MentalState, student: str, day: int, interactions: Sequence[float] = ()
    ) -> MentalState:
        """The rule's update of ``state`` for one student-day, given its peer valences."""
        return self.rule.step(
            state,
            self.features_on(student, day),
            self.events_on(student, day),
            self.traits_of(student, day),
            interactions,
        )

    def with_events(self, events: ByStudentDay) -> PreparedTerm:
        """The same term with other events (e.g. social-media exposures added)."""
        return dataclasses.replace(self, events=events)


def prepare_term(
    rule: StateRule,
    features: pl.DataFrame,
    calendar: pl.DataFrame,
    traits_by_student: Mapping[str, Mapping[str, float]],
    interventions: Sequence[iv.Intervention] = (),
    *,
    students: Sequence[str] | None = None,
    seed: int = 0,
    assignment: pl.DataFrame | None = None,
    missing: MissingPolicy = "carry",
) -> PreparedTerm:
    """Prepare a term for the rule: grid, fill, assign, intervene, index.

    Days are those of the calendar and any later days in ``features``. Every
    student gets every day; a student-day without a features row counts as all
    missing. Missing features are filled with ``missing`` *before* the
    interventions apply (an intervention changes what was measured, it does not
    invent a measurement).

    Args:
        rule: The update rule (its reference values fill missing features).
        features: Daily features (``student``, ``day``, the sensing columns).
        calendar: ``day``, ``deadlines``, ``exam`` and any extra event columns.
        traits_by_student: Big Five (1-5) per student.
        interventions: Applied with :func:`~personae.studies.cohort.term.interventions.apply`.
        students: Whom to prepare, in this order (default: ``traits_by_student``'s
            names, sorted); the treated-group draw follows this order.
        seed: Seed of the treated-group draw when ``assignment`` is not given.
        assignment: A frame from :func:`~personae.studies.cohort.term.interventions.assign`.
        missing: How missing features are filled (see
            :func:`~personae.studies.cohort.term.mental_state.fill_features`).

    Returns:
        The prepared term.
    """
    names = list(students) if students is not None else sorted(traits_by_student)
    days = sorted(
        set(calendar["day"].to_list())
        | (set(features["day"].to_list()) if "day" in features.columns else set())
    )
    grid = pl.DataFrame({"student": names}, schema={"student": pl.String}).join(
        pl.DataFrame({"day": days}, schema={"day": features.schema.get("day", pl.Int64)}),
        how="cross",
    )
    present = features.filter(pl.col("student").is_in(names))
    frame = fill_features(grid.join(present, on=["student", "day"], how="left"), missing, rule)
    if assignment is None:
        assignment = iv.assign(interventions, names, seed)
    applied = iv.apply(interventions, frame, calendar, traits_by_student, assignment)
    return PreparedTerm(
        rule=rule,
        students=tuple(names),
        days=tuple(int(d) for d in days),
        traits={s: dict(traits_by_student[s]) for s in names},
        assignment=assignment,
        features=_by_student_day(applied.features),
        events=_by_student_day(applied.calendar),
        traits_on=iv.traits_by_day(applied.traits),
    )


def _by_student_day(frame: pl.DataFrame) -> ByStudentDay:
    return {(r["student"], int(r["day"])): r for r in frame.iter_rows(named=True)}
