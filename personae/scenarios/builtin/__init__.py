"""Built-in scenarios, runnable by name: ``personae run counseling``."""

from __future__ import annotations

from collections.abc import Callable

from personae.errors import ConfigError
from personae.scenarios.builtin.counseling import counseling
from personae.scenarios.scenario import Scenario

#: Built-in scenario factories by the name ``personae run`` accepts.
BUILTINS: dict[str, Callable[[], Scenario]] = {"counseling": counseling}


def builtin(name: str) -> Scenario:
    """The built-in scenario called ``name``.

    Raises:
        ConfigError: No built-in has that name.
    """
    try:
        return BUILTINS[name]()
    except KeyError:
        raise ConfigError(
            f"no built-in scenario {name!r}; built-ins: {', '.join(BUILTINS)} "
            "(or give the path of a Python file that defines a Scenario or Experiment)"
        ) from None


__all__ = ["BUILTINS", "builtin", "counseling"]
