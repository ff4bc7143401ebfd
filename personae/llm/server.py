"""Moved to :mod:`personae.llm.vllm.server`; this alias goes in the next release.

The old path is the very same module object, so imports, private names and
monkeypatching through it keep working.
"""

import sys
from typing import TYPE_CHECKING

from personae.llm.vllm import server as _moved

if TYPE_CHECKING:
    from personae.llm.vllm.server import *  # noqa: F403
    from personae.llm.vllm.server import _vllm_flags as _vllm_flags
    from personae.llm.vllm.server import sigterm_as_interrupt as sigterm_as_interrupt

sys.modules[__name__] = _moved
