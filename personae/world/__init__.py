"""The world studies share: social networks and persona populations."""

from personae.world.networks import Network, social_graph
from personae.world.population import Population, demographic_profile, sample_personas

__all__ = ["Network", "Population", "demographic_profile", "sample_personas", "social_graph"]
