"""Environments: social networks, debate propositions and persona populations.

Also the students' term: sensing (synthetic or a StudentLife copy), the daily
mental-state rule and interventions.
"""

from personae.environments.interventions import Intervention
from personae.environments.mental_state import MentalState, StateRule
from personae.environments.networks import Network, social_graph
from personae.environments.population import Population, demographic_profile, sample_personas
from personae.environments.propositions import (
    STRENGTHS,
    Proposition,
    by_strength,
    load_propositions,
    proposition,
    sample_propositions,
)
from personae.environments.sensing import SensingSource, SyntheticTerm, Term
from personae.environments.studentlife import StudentLife

__all__ = [
    "STRENGTHS",
    "Intervention",
    "MentalState",
    "Network",
    "Population",
    "Proposition",
    "SensingSource",
    "StateRule",
    "StudentLife",
    "SyntheticTerm",
    "Term",
    "by_strength",
    "demographic_profile",
    "load_propositions",
    "proposition",
    "sample_personas",
    "sample_propositions",
    "social_graph",
]
