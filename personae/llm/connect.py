"""Moved to :mod:`personae.llm.backends`; this alias goes in the next release.

The old path is the very same module object, so imports, private names and
monkeypatching through it keep working.
"""

import sys
from typing import TYPE_CHECKING

from personae.llm import backends as _moved

if TYPE_CHECKING:
    from personae.llm.backends import *  # noqa: F403

sys.modules[__name__] = _moved
