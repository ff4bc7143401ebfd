"""The engine every study shares: scenarios, episodes, turn-taking policies, stop conditions, probes."""

from personae.engine.episode import Episode, EpisodeResult
from personae.engine.probes import Cue, Measure, Monitor, Probe, ProbeContext, ProbePoint, Stop
from personae.engine.scenario import Opening, Scenario, ScenarioBase
from personae.engine.turns import (
    ActivityWeighted,
    Moderated,
    Neighbours,
    RandomOrder,
    RoundRobin,
    Script,
    TurnPolicy,
)
from personae.engine.until import AllOf, AnyOf, Condition, MaxTurns, Never, Says, When
from personae.engine.view import Observation, TurnView

__all__ = [
    "ActivityWeighted",
    "AllOf",
    "AnyOf",
    "Condition",
    "Cue",
    "Episode",
    "EpisodeResult",
    "MaxTurns",
    "Measure",
    "Moderated",
    "Monitor",
    "Neighbours",
    "Never",
    "Observation",
    "Opening",
    "Probe",
    "ProbeContext",
    "ProbePoint",
    "RandomOrder",
    "RoundRobin",
    "Says",
    "Scenario",
    "ScenarioBase",
    "Script",
    "Stop",
    "TurnPolicy",
    "TurnView",
    "When",
]
