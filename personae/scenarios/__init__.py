"""Scenarios: the engine (LangGraph), turn-taking policies, stop conditions, probes, built-ins."""

from personae.scenarios.episode import Episode, EpisodeResult
from personae.scenarios.probes import Probe, ProbePoint
from personae.scenarios.scenario import Opening, Scenario
from personae.scenarios.turns import (
    ActivityWeighted,
    Moderated,
    Neighbours,
    RandomOrder,
    RoundRobin,
    Script,
    TurnPolicy,
)
from personae.scenarios.until import AllOf, AnyOf, Condition, MaxTurns, Never, Says, When
from personae.scenarios.view import TurnView

__all__ = [
    "ActivityWeighted",
    "AllOf",
    "AnyOf",
    "Condition",
    "Episode",
    "EpisodeResult",
    "MaxTurns",
    "Moderated",
    "Neighbours",
    "Never",
    "Opening",
    "Probe",
    "ProbePoint",
    "RandomOrder",
    "RoundRobin",
    "Says",
    "Scenario",
    "Script",
    "TurnPolicy",
    "TurnView",
    "When",
]
