"""Moved to :mod:`personae.llm.vllm.flags`; this alias goes in the next release.

The old path is the very same module object, so imports, private names and
monkeypatching through it keep working.
"""

import sys
from typing import TYPE_CHECKING

from personae.llm.vllm import flags as _moved

if TYPE_CHECKING:
    from personae.llm.vllm.flags import *  # noqa: F403

sys.modules[__name__] = _moved
