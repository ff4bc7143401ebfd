"""Built-in scenarios, runnable by name: ``personae run counseling``."""

from __future__ import annotations

import difflib
from collections.abc import Callable

from personae.errors import ConfigError
from personae.runner.experiment import Experiment
from personae.scenarios.builtin.counseling import counseling
from personae.scenarios.scenario import Scenario


def _drift() -> Experiment:
    from personae.scenarios.builtin.drift import drift

    return drift()


def _debate() -> Experiment:
    from personae.scenarios.builtin.debate import debate_experiment

    return debate_experiment()


def _group() -> Scenario:
    from personae.scenarios.builtin.group import group

    return group()


def _cohort() -> Scenario:
    from personae.scenarios.builtin.cohort import student_cohort

    return student_cohort()


#: Built-in scenarios and experiments by the name ``personae run`` accepts.
BUILTINS: dict[str, Callable[[], Scenario | Experiment]] = {
    "counseling": counseling,
    "drift": _drift,
    "debate": _debate,
    "group": _group,
    "student-cohort": _cohort,
}


def builtin(name: str) -> Scenario | Experiment:
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


__all__ = ["BUILTINS", "builtin", "counseling"]
