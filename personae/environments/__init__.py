"""Moved: networks and populations to :mod:`personae.world`, propositions to
:mod:`personae.studies.debate`, the students' term to :mod:`personae.studies.cohort.term`.

These names keep working until 0.4.
"""

from personae.studies.cohort.term.calendar import Term
from personae.studies.cohort.term.interventions import Intervention
from personae.studies.cohort.term.mental_state import MentalState, StateRule
from personae.studies.cohort.term.schema import SensingSource
from personae.studies.cohort.term.studentlife import StudentLife
from personae.studies.cohort.term.synthetic import SyntheticTerm
from personae.studies.debate.propositions import (
    STRENGTHS,
    Proposition,
    by_strength,
    load_propositions,
    proposition,
    sample_propositions,
)
from personae.world.networks import Network, social_graph
from personae.world.population import Population, demographic_profile, sample_personas

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
