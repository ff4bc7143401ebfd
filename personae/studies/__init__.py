"""The built-in studies, runnable by name: ``personae run counseling``.

Each study keeps its scenario, its world, its analysis and its report together:
:mod:`~personae.studies.counseling`, :mod:`~personae.studies.drift`,
:mod:`~personae.studies.debate`, :mod:`~personae.studies.group` and
:mod:`~personae.studies.cohort`.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from pathlib import Path

from personae.engine.scenario import Scenario, ScenarioBase
from personae.errors import ConfigError
from personae.report.html import Section
from personae.report.sections import GENERIC_SECTIONS
from personae.runner.experiment import Experiment
from personae.studies.counseling import counseling


def _drift() -> Experiment:
    from personae.studies.drift import drift

    return drift()


def _debate() -> Experiment:
    from personae.studies.debate.scenario import debate_experiment

    return debate_experiment()


def _group() -> Scenario:
    from personae.studies.group.scenario import group

    return group()


def _safety() -> Experiment:
    from personae.studies.safety.scenario import clinical_safety_experiment

    return clinical_safety_experiment()


def _cohort() -> ScenarioBase:
    from personae.studies.cohort.builtin import student_cohort

    return student_cohort()


#: Built-in scenarios and experiments by the name ``personae run`` accepts.
BUILTINS: dict[str, Callable[[], ScenarioBase | Experiment]] = {
    "counseling": counseling,
    "drift": _drift,
    "debate": _debate,
    "group": _group,
    "student-cohort": _cohort,
    "clinical-safety": _safety,
}


def study_section(title: str, module: str) -> Section:
    """A report section built by ``module``'s ``section()``, imported when the report is written.

    Args:
        title: The section's heading (the one ``module.section()`` gives).
        module: A study's report module, e.g. ``"personae.studies.group.report"``.
    """

    def build(db: Path) -> str | None:
        made: Section = importlib.import_module(module).section()
        return made.build(db)

    return Section(title, build)


#: The report's sections, in order: the generic ones, then each study's. ``personae
#: report`` and :func:`personae.report.write_report` use this list; append a
#: :class:`~personae.report.html.Section` to add one.
SECTIONS: list[Section] = [
    *GENERIC_SECTIONS,
    study_section("Evaluations", "personae.evaluate.report"),
    study_section("Persuasion", "personae.studies.debate.report"),
    study_section("Group dynamics", "personae.studies.group.report"),
    study_section("Student cohort", "personae.studies.cohort.report"),
    study_section("Clinical safety", "personae.studies.safety.report"),
    study_section("Three views of a trait", "personae.vectors.report"),
]


def builtin(name: str) -> ScenarioBase | Experiment:
    """The built-in scenario or experiment called ``name``.

    Raises:
        ConfigError: No built-in has that name.
    """
    factory = BUILTINS.get(name)
    if factory is None:
        close = difflib.get_close_matches(name, BUILTINS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(
            f"no built-in scenario {name!r}; {hint}built-ins: {', '.join(BUILTINS)} "
            "(or give the path of a Python file, ending in .py, that defines a Scenario or "
            "Experiment)"
        )
    return factory()


__all__ = ["BUILTINS", "SECTIONS", "builtin", "counseling", "study_section"]
