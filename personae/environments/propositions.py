"""Moved to :mod:`personae.studies.debate.propositions`; this name keeps working until 0.4."""

import importlib
import sys

sys.modules[__name__] = importlib.import_module("personae.studies.debate.propositions")
