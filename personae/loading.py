"""Finding the scenario or experiment a command names: a built-in, or a Python file."""

from __future__ import annotations

import json
import runpy
import traceback
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from personae.engine.scenario import ScenarioBase, format_validation_error
from personae.errors import ConfigError, ScenarioFileError
from personae.runner.experiment import Experiment


def load_target(target: str) -> Experiment | ScenarioBase:
    """The experiment or scenario that ``target`` names.

    ``target`` is a built-in scenario name (``counseling``) or a Python file,
    ending in ``.py``, defining an ``Experiment`` (preferred) or a ``Scenario``
    at module level; with several, the one named ``experiment`` or
    ``scenario`` wins. A target without ``.py`` is always a built-in name, so
    a file called ``counseling`` never shadows the built-in.

    Raises:
        ScenarioFileError: The file is missing, fails to run, exits while
            loading, or defines none; the message names the file and line.
        ConfigError: No built-in has that name; the message lists them.
    """
    path = Path(target)
    if path.suffix != ".py":
        return _builtin(target)
    if not path.is_file():
        raise ScenarioFileError(f"scenario file {target} does not exist.")
    try:
        namespace = runpy.run_path(str(path), run_name="__personae__")
    except SyntaxError as exc:
        raise ScenarioFileError(
            f"{target} has a syntax error at line {exc.lineno}: {exc.msg}."
        ) from None
    except SystemExit as exc:
        code = "" if exc.code is None else repr(exc.code)
        raise ScenarioFileError(
            f"{target} called sys.exit({code}){_where(exc, path)} while loading; a scenario "
            "file must define a Scenario or Experiment and return."
        ) from None
    except Exception as exc:
        detail = format_validation_error(exc) if isinstance(exc, ValidationError) else str(exc)
        raise ScenarioFileError(
            f"{target} raised {type(exc).__name__}{_where(exc, path)} while loading: {detail}"
        ) from None
    except BaseException as exc:  # KeyboardInterrupt, GeneratorExit, ...: still one paragraph
        raise ScenarioFileError(
            f"{target} raised {type(exc).__name__}{_where(exc, path)} while loading; a "
            "scenario file must define a Scenario or Experiment and return."
        ) from None
    return _pick(namespace, target)


def _builtin(target: str) -> Experiment | ScenarioBase:
    from personae.studies import BUILTINS, builtin

    if target in BUILTINS:
        return builtin(target)
    shown = target if Path(target).parent != Path() or target.startswith(".") else f"./{target}"
    if Path(f"{target}.py").is_file():
        raise ScenarioFileError(
            f"{target!r} is not a built-in scenario; did you mean {shown}.py? Scenario files "
            f"end in .py. Built-ins: {', '.join(BUILTINS)}."
        )
    if Path(target).is_file():
        raise ScenarioFileError(
            f"{target!r} is not a built-in scenario; {shown} is a file, but scenario files end "
            f"in .py: did you mean {shown}.py (rename it)? Built-ins: {', '.join(BUILTINS)}."
        )
    return builtin(target)


def _where(exc: BaseException, path: Path) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
    return f" at line {frames[-1].lineno}" if frames else ""


def _pick(namespace: dict[str, Any], target: str) -> Experiment | ScenarioBase:
    for kind, preferred in ((Experiment, "experiment"), (ScenarioBase, "scenario")):
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
        ConfigError: An item has no ``=``, or names a key given before.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            form = "KEY=V1,V2" if multi else "KEY=VALUE"
            raise ConfigError(f"{item!r} is not of the form {form}")
        if key.strip() in out:
            raise ConfigError(
                f"{key.strip()!r} is given twice ({item!r}); give each parameter once"
                + (", with all its values: KEY=V1,V2" if multi else "")
            )
        values = [_value(v) for v in raw.split(",")] if multi else _value(raw)
        out[key.strip()] = values
    return out


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text.strip()
