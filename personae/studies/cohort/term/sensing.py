"""Daily smartphone sensing for a simulated student term: the names of the three modules it split into.

The vocabulary (frame schemas, StudentLife's codes, :class:`SensingSource`) is
in :mod:`personae.studies.cohort.term.schema`, the calendar :class:`Term` in
:mod:`personae.studies.cohort.term.calendar`, the generator
(:class:`SyntheticTerm`, :class:`Effects`) in
:mod:`personae.studies.cohort.term.synthetic`. This module hands out their names,
without advertising them a second time, to the code that imports them from here;
it keeps working until 0.4.

Example:
    >>> from personae.studies.cohort.term.sensing import SyntheticTerm
    >>> SyntheticTerm(n_students=3, seed=1).features().height
    210
"""

from __future__ import annotations

import importlib
from typing import Any

#: Where each name lives now.
_HOMES = {
    **dict.fromkeys(("Term",), "calendar"),
    **dict.fromkeys(
        ("DEFAULT_EMA_SHARE", "DEFAULT_MISSING", "Effects", "SyntheticTerm"), "synthetic"
    ),
    **dict.fromkeys(
        (
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
        ),
        "schema",
    ),
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"personae.studies.cohort.term.{home}"), name)


def __dir__() -> list[str]:
    return sorted(_HOMES)
