"""Finding the scenario or experiment a command names: a built-in, or a Python file."""

from __future__ import annotations

import json
import runpy
import traceback
from pathlib import Path
from typing import Any

from personae.errors import ConfigError, ScenarioFileError
from personae.runner.experiment import Experiment
from personae.scenarios.scenario import Scenario


def load_target(target: str) -> Experiment | Scenario:
    """The experiment or scenario that ``target`` names.

    ``target`` is a built-in scenario name (``counseling``) or a Python file
    defining an ``Experiment`` (preferred) or a ``Scenario`` at module level;
    with several, the one named ``experiment`` or ``scenario`` wins.

    Raises:
        ScenarioFileError: The file is missing, fails to run, or defines none.
        ConfigError: No built-in has that name.
    """
    path = Path(target)
    if path.suffix != ".py" and not path.exists():
        from personae.scenarios.builtin import builtin

        return builtin(target)
    if not path.is_file():
        raise ScenarioFileError(f"scenario file {target} does not exist.")
    try:
        namespace = runpy.run_path(str(path), run_name="__personae__")
    except SyntaxError as exc:
        raise ScenarioFileError(
            f"{target} has a syntax error at line {exc.lineno}: {exc.msg}."
        ) from None
    except Exception as exc:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
        where = f" at line {frames[-1].lineno}" if frames else ""
        raise ScenarioFileError(
            f"{target} raised {type(exc).__name__}{where} while loading: {exc}"
        ) from None
    return _pick(namespace, target)


def _pick(namespace: dict[str, Any], target: str) -> Experiment | Scenario:
    for kind, preferred in ((Experiment, "experiment"), (Scenario, "scenario")):
        found = {
            k: v for k, v in namespace.items() if isinstance(v, kind) and not k.startswith("_")
        }
        if preferred in found:
            return found[preferred]
        if len(found) == 1:
            return next(iter(found.values()))
        if len(found) > 1:
            raise ScenarioFileError(
                f"{target} defines several {kind.__name__}s ({', '.join(found)}); name the one "
                f"to run {preferred!r}."
            )
    raise ScenarioFileError(
        f"{target} defines no Scenario or Experiment at module level. Assign one to a "
        "variable, e.g. `scenario = Scenario(...)`."
    )


def parse_assignments(items: list[str], *, multi: bool) -> dict[str, Any]:
    """Parse ``KEY=VALUE`` (or ``KEY=V1,V2`` when ``multi``) command-line items.

    Values are read as JSON where they parse (numbers, true/false), else as text.

    Raises:
        ConfigError: An item has no ``=``.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            form = "KEY=V1,V2" if multi else "KEY=VALUE"
            raise ConfigError(f"{item!r} is not of the form {form}")
        values = [_value(v) for v in raw.split(",")] if multi else _value(raw)
        out[key.strip()] = values
    return out


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text.strip()
