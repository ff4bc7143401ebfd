"""Moved to :mod:`personae.llm.vllm.convert`; this alias goes in the next release.

The old path is the very same module object, so imports, private names and
monkeypatching through it keep working. Run the conversion as
``python -m personae.llm.vllm.convert`` (the old ``-m`` path still works too).
"""

import sys
from typing import TYPE_CHECKING

from personae.llm.vllm import convert as _moved

if TYPE_CHECKING:
    from personae.llm.vllm.convert import *  # noqa: F403

if __name__ == "__main__":  # ``python -m personae.llm._convert`` still converts
    sys.exit(_moved.main())
sys.modules[__name__] = _moved
