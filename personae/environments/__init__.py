"""Environments: social networks, debate propositions and persona populations.

Clocks, calendars, sensor streams and events build here too.
"""

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

__all__ = [
    "STRENGTHS",
    "Network",
    "Population",
    "Proposition",
    "by_strength",
    "demographic_profile",
    "load_propositions",
    "proposition",
    "sample_personas",
    "sample_propositions",
    "social_graph",
]
