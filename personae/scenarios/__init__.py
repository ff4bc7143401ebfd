"""Moved to :mod:`personae.engine` (the engine) and :mod:`personae.studies` (the built-ins).

These names keep working until 0.4.
"""

from personae.engine import *  # noqa: F403
from personae.engine import __all__ as __all__
