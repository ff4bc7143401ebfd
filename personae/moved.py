"""Names that moved to another module, still served from the old one until 0.4.

A module whose names moved sets ``__getattr__ = moved_names(__name__, {...})``:
an old import (``from personae.analysis import group_summary``) then imports the
new home on first use, so the old module does not import it up front.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["moved_names"]


def moved_names(module: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` that finds each name of ``homes`` in its new module.

    Args:
        module: The old module's name, for the error of a name it never had.
        homes: Name -> the module it lives in now.

    Example:
        >>> getter = moved_names("old", {"dumps": "json"})
        >>> getter("dumps").__module__
        'json'
    """

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        return getattr(importlib.import_module(home), name)

    return __getattr__
