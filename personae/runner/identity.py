"""Experiment identity: a fingerprint of a scenario that is the same in every process.

The runner finds an experiment's rows in the database by its identity, so the
identity must come out the same whenever the same experiment is described
again (another process, another day, the scenario file moved), and differ as
soon as anything that changes what an episode does is different.

:func:`fingerprint` turns a value into canonical, JSON-ready data, and
:func:`digest` hashes that data. The rules:

- Data (``None``, booleans, numbers, strings, bytes, lists, tuples, dicts,
  sets, enums, numpy arrays, networkx graphs) counts by value; sets and
  dicts in a canonical order.
- Pydantic models and dataclasses count by their class and their field
  values; a pydantic field still at its default is left out, so a field added
  to a personae class later does not change existing identities.
- Functions of *scenario code* count by their code: their bytecode,
  constants (nested functions and lambdas included), names, defaults, the
  values in their closure cells, and the module-level values they refer to
  (data by value, helper functions of scenario code by their code, recursively).
  Not by file path or line numbers: moving a file, adding blank lines or
  editing a comment keeps the identity. Docstrings are constants and count.
  ``functools.partial`` objects count by function and arguments, bound methods
  by function and the object they are bound to, ``functools.cache`` and other
  wrappers by the function they wrap. Classes of scenario code
  count by their methods and plain-data class attributes.
- Scenario code is everything except the personae framework and installed
  libraries (the standard library, site-packages), whose functions and
  classes count by their qualified name; their version is recorded next to
  the experiment, not in its identity. The built-in scenarios (the modules in
  :data:`BUILTIN_SCENARIO_MODULES`) are scenario code.
- Framework names are stable: a class or function that moved inside personae
  counts by the module it had when identities were introduced
  (:data:`IDENTITY_MODULES`), so moving code never changes an identity and an
  experiment stored by an earlier release is resumed.
- A chat model counts by its name.
- Anything else counts by its ``repr()`` if its class defines one that shows
  no memory address and is not abbreviated; otherwise (a plain ``object()``,
  an open file, a generator, a lock, a random generator...) it is refused with
  a :class:`~personae.errors.ConfigError` that names where it was found.

Bytecode differs between Python minor versions, so identities of scenarios
holding functions do too.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import inspect
import io
import json
import re
import site
import sys
import sysconfig
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from personae.errors import ConfigError

__all__ = [
    "BUILTIN_SCENARIO_MODULES",
    "IDENTITY_MODULES",
    "IDENTITY_VERSION",
    "callable_label",
    "canonical_json",
    "digest",
    "fingerprint",
    "is_scenario_code",
    "params_key",
]

#: Version of the identity rules, part of every identity; raise it when the rules change.
IDENTITY_VERSION = 1

#: The modules of the built-in scenarios: scenario code, counted by their code
#: (old paths included, for objects pickled or named before the move).
BUILTIN_SCENARIO_MODULES = frozenset(
    {
        "personae.scenarios.builtin.cohort",
        "personae.scenarios.builtin.counseling",
        "personae.scenarios.builtin.debate",
        "personae.scenarios.builtin.drift",
        "personae.scenarios.builtin.group",
        "personae.studies.cohort.builtin",
        "personae.studies.counseling",
        "personae.studies.debate.scenario",
        "personae.studies.drift",
        "personae.studies.group.scenario",
    }
)

#: Where framework code lived when identities were introduced. Framework classes
#: and functions count by their name in that module, so a move does not change any
#: identity; a module that moves adds a line here (its new name: the name identities use).
IDENTITY_MODULES: dict[str, str] = {
    "personae.engine.conversation": "personae.scenarios.graph",
    "personae.engine.episode": "personae.scenarios.episode",
    "personae.engine.graph": "personae.scenarios.graph",
    "personae.engine.probes": "personae.scenarios.probes",
    "personae.engine.scenario": "personae.scenarios.scenario",
    "personae.engine.sink": "personae.scenarios.log",
    "personae.engine.turns": "personae.scenarios.turns",
    "personae.engine.until": "personae.scenarios.until",
    "personae.engine.view": "personae.scenarios.view",
    "personae.measures.answers": "personae.measures.administer",
    "personae.measures.questionnaire": "personae.measures.administer",
    "personae.report.page": "personae.analysis.report",
    "personae.studies.cohort.analysis": "personae.analysis.cohort",
    "personae.studies.cohort.asks": "personae.scenarios.cohort",
    "personae.studies.cohort.builtin": "personae.scenarios.builtin.cohort",
    "personae.studies.cohort.loop": "personae.scenarios.cohort",
    "personae.studies.cohort.relations": "personae.analysis.cohort_sensing",
    "personae.studies.cohort.report": "personae.analysis.cohort_report",
    "personae.studies.cohort.scenario": "personae.scenarios.cohort",
    "personae.studies.cohort.series": "personae.analysis.cohort_series",
    "personae.studies.cohort.talk": "personae.scenarios.cohort",
    "personae.studies.cohort.term.calendar": "personae.environments.sensing",
    "personae.studies.cohort.term.ema": "personae.environments.ema",
    "personae.studies.cohort.term.interventions": "personae.environments.interventions",
    "personae.studies.cohort.term.media": "personae.environments.media",
    "personae.studies.cohort.term.mental_state": "personae.environments.mental_state",
    "personae.studies.cohort.term.prepare": "personae.environments.mental_state",
    "personae.studies.cohort.term.schema": "personae.environments.sensing",
    "personae.studies.cohort.term.sensing": "personae.environments.sensing",
    "personae.studies.cohort.term.studentlife": "personae.environments.studentlife",
    "personae.studies.cohort.term.studentlife_reports": "personae.environments.studentlife_reports",
    "personae.studies.cohort.term.studentlife_sleep": "personae.environments.studentlife_sleep",
    "personae.studies.cohort.term.studentlife_writer": "personae.environments.studentlife_writer",
    "personae.studies.cohort.term.synthetic": "personae.environments.sensing",
    "personae.studies.counseling": "personae.scenarios.builtin.counseling",
    "personae.studies.debate.analysis": "personae.analysis.persuasion",
    "personae.studies.debate.frames": "personae.analysis.persuasion_frames",
    "personae.studies.debate.models": "personae.analysis.persuasion_models",
    "personae.studies.debate.propositions": "personae.environments.propositions",
    "personae.studies.debate.report": "personae.analysis.persuasion_report",
    "personae.studies.debate.scenario": "personae.scenarios.builtin.debate",
    "personae.studies.drift": "personae.scenarios.builtin.drift",
    "personae.studies.group.analysis": "personae.analysis.group",
    "personae.studies.group.frames": "personae.analysis.group",
    "personae.studies.group.opinions": "personae.analysis.group",
    "personae.studies.group.talk": "personae.analysis.group",
    "personae.studies.group.report": "personae.analysis.group_report",
    "personae.studies.group.scenario": "personae.scenarios.builtin.group",
    "personae.world.networks": "personae.environments.networks",
    "personae.world.population": "personae.environments.population",
}

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")
_ELLIPSIS = re.compile(r"\.\.\.|…")
_MODULE_GLOBALS = frozenset(
    {"__name__", "__file__", "__cached__", "__spec__", "__loader__", "__package__"}
    | {"__builtins__", "__doc__", "__path__", "__annotations__"}
)
_DUNDER_CODE = ("__call__", "__init__", "__post_init__", "__new__", "__getattr__")


def fingerprint(value: Any, path: str = "value") -> Any:
    """Canonical JSON-ready data that identifies ``value`` (see the module docstring).

    Args:
        value: Anything a scenario or experiment holds.
        path: Where ``value`` sits, for error messages (e.g. ``"scenario"``).

    Returns:
        Data made of dicts, lists, strings, numbers, booleans and None.

    Raises:
        ConfigError: Something inside cannot be identified stably; the message
            names its path and how to fix it.
    """
    return _Walker().walk(value, path)


def canonical_json(data: Any) -> str:
    """The one JSON text of ``data``: sorted keys, no spaces, ASCII only."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def digest(data: Any) -> str:
    """24 hex characters of the SHA-256 of ``canonical_json(data)``."""
    return hashlib.sha256(canonical_json(data).encode()).hexdigest()[:24]


def params_key(params: Mapping[str, Any]) -> str:
    """The canonical JSON of one parameter set.

    This text seeds the parameter set's episodes (see
    :meth:`~personae.runner.experiment.Experiment.episodes`) and is how stored
    episodes are matched to parameter sets, so it must not change for values
    that already worked: it is ``json.dumps(params, sort_keys=True, default=str)``.

    Example:
        >>> params_key({"b": 1, "a": "x"})
        '{"a": "x", "b": 1}'
    """
    return json.dumps(dict(params), sort_keys=True, default=str)


def callable_label(fn: Any) -> str | None:
    """A short, stable, readable name for a callable (for descriptions, not identity).

    Example:
        >>> callable_label(functools.partial(len))
        'partial(builtins.len)'
    """
    if fn is None:
        return None
    if isinstance(fn, functools.partial):
        return f"partial({callable_label(fn.func)})"
    if isinstance(fn, types.MethodType):
        return callable_label(fn.__func__)
    if isinstance(fn, type) or hasattr(fn, "__qualname__"):
        return _label(fn)
    return f"{_label(type(fn))}()"


@functools.cache
def is_scenario_code(module: str | None) -> bool:
    """Whether functions and classes of ``module`` are identified by their code.

    True for scenario files, your own modules and the built-in scenarios;
    false for the personae framework and installed libraries.
    """
    if not module:
        return True
    if module in BUILTIN_SCENARIO_MODULES:
        return True
    root = module.partition(".")[0]
    if root in ("personae", "builtins") or root in sys.stdlib_module_names:
        return False
    if root in sys.builtin_module_names:
        return False
    file = getattr(sys.modules.get(module), "__file__", None)
    if not file:
        return True
    resolved = Path(file).resolve()
    if {"site-packages", "dist-packages"} & set(resolved.parts):
        return False
    return not any(resolved.is_relative_to(p) for p in _library_dirs())


@functools.cache
def _library_dirs() -> tuple[Path, ...]:
    paths = sysconfig.get_paths()
    dirs = [paths.get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")]
    dirs += [*site.getsitepackages(), site.getusersitepackages()]
    return tuple(Path(d).resolve() for d in dirs if d)


def _qualified(obj: Any) -> str:
    module = getattr(obj, "__module__", None) or ""
    return f"{IDENTITY_MODULES.get(module, module)}.{obj.__qualname__}"


def _moved(value: Any) -> Any:
    """A module name inside code (an import in a function) as :data:`IDENTITY_MODULES` has it."""
    return IDENTITY_MODULES.get(value, value) if isinstance(value, str) else value


def _label(obj: Any) -> str:
    """An explicit ``name`` attribute, else the qualified name (framework) or the bare one."""
    name = getattr(obj, "__personae_name__", None)
    if isinstance(name, str):
        return name
    module = getattr(obj, "__module__", None)
    if is_scenario_code(module):
        return str(obj.__qualname__)
    return _qualified(obj)


def _importable(obj: Any) -> bool:
    """Whether ``obj`` (a function or class) can be found again by its qualified name."""
    qualname = getattr(obj, "__qualname__", "")
    return "<" not in qualname and not is_scenario_code(getattr(obj, "__module__", None))


class _Walker:
    """One fingerprinting pass; remembers what it is inside of, to stop at cycles."""

    def __init__(self) -> None:
        self.active: set[int] = set()

    def walk(self, value: Any, path: str) -> Any:
        if isinstance(value, enum.Enum):
            return {"$enum": _qualified(type(value)), "value": self.walk(value.value, path)}
        if value is None or isinstance(value, bool | int | float | str):
            return value
        if isinstance(value, bytes | bytearray):
            return {"$bytes": bytes(value).hex()}
        if id(value) in self.active:
            return {"$cycle": getattr(value, "__qualname__", type(value).__qualname__)}
        self.active.add(id(value))
        try:
            return self._compound(value, path)
        finally:
            self.active.discard(id(value))

    def _compound(self, value: Any, path: str) -> Any:
        from pydantic import BaseModel

        if isinstance(value, list | tuple):
            return [self.walk(v, f"{path}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, Mapping):
            return self._mapping(value, path)
        if isinstance(value, set | frozenset):
            items = [self.walk(v, f"{path}{{}}") for v in value]
            return {"$set": sorted(items, key=canonical_json)}
        if isinstance(value, BaseModel):
            return self._model(value, path)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            fields = {
                f.name: self.walk(getattr(value, f.name), f"{path}.{f.name}")
                for f in dataclasses.fields(value)
            }
            return {"$dataclass": self.walk(type(value), path), "fields": fields}
        if isinstance(value, types.FunctionType):
            return self._function(value, path)
        if isinstance(value, types.CodeType):
            return self._code(value, path)
        if isinstance(value, type):
            return self._class(value, path)
        return self._object(value, path)

    def _mapping(self, value: Mapping[Any, Any], path: str) -> Any:
        if all(isinstance(k, str) and not k.startswith("$") for k in value):
            return {k: self.walk(v, f"{path}[{k!r}]") for k, v in value.items()}
        pairs = [
            [self.walk(k, f"{path} key"), self.walk(v, f"{path}[{k!r}]")] for k, v in value.items()
        ]
        return {"$map": sorted(pairs, key=canonical_json)}

    def _model(self, value: Any, path: str) -> Any:
        fields: dict[str, Any] = {}
        for name, info in type(value).model_fields.items():
            current = getattr(value, name)
            try:
                default = info.get_default(call_default_factory=True, validated_data={})
                if type(current) is type(default) and current == default:
                    continue
            except Exception:  # no default, or one that cannot be compared: keep the field
                pass
            fields[name] = self.walk(current, f"{path}.{name}")
        for name, extra in (value.model_extra or {}).items():
            fields[name] = self.walk(extra, f"{path}.{name}")
        return {"$model": self.walk(type(value), path), "fields": fields}

    def _function(self, fn: types.FunctionType, path: str) -> Any:
        if _importable(fn):
            return {"$function": _qualified(fn)}
        code = fn.__code__
        closure = {}
        for name, cell in zip(code.co_freevars, fn.__closure__ or (), strict=True):
            try:
                contents = cell.cell_contents
            except ValueError:  # an empty cell: a name assigned later
                closure[name] = {"$empty": True}
                continue
            closure[name] = self.walk(contents, f"{path} -> closure variable {name!r}")
        globals_ = {
            name: self.walk(fn.__globals__[name], f"{path} -> global {name!r}")
            for name in sorted(_global_names(code))
            if name in fn.__globals__ and name not in _MODULE_GLOBALS
        }
        return {
            "$function": fn.__qualname__,
            "code": self._code(code, path),
            "defaults": self.walk(fn.__defaults__, f"{path} -> defaults"),
            "kwdefaults": self.walk(fn.__kwdefaults__, f"{path} -> keyword defaults"),
            "closure": closure,
            "globals": globals_,
        }

    def _code(self, code: types.CodeType, path: str) -> Any:
        return {
            "$code": code.co_qualname,
            "args": [code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount],
            "flags": code.co_flags,
            "bytecode": code.co_code.hex(),
            "exceptions": code.co_exceptiontable.hex(),
            "consts": [self.walk(_moved(c), f"{path} -> constant") for c in code.co_consts],
            "names": [_moved(n) for n in code.co_names],
            "varnames": list(code.co_varnames),
            "freevars": list(code.co_freevars),
            "cellvars": list(code.co_cellvars),
        }

    def _class(self, cls: type, path: str) -> Any:
        if _importable(cls) or cls.__module__ == "builtins":
            return {"$class": _qualified(cls)}
        body: dict[str, Any] = {}
        for name, member in sorted(vars(cls).items()):
            where = f"{path} -> class {cls.__qualname__}.{name}"
            if name.startswith("__") and name.endswith("__"):
                if name in _DUNDER_CODE and _written_in_class(member):
                    body[name] = self.walk(member, where)
                continue
            inner = _descriptor_functions(member)
            if inner is not None:
                body[name] = [self.walk(f, where) for f in inner]
                continue
            try:
                body[name] = self.walk(member, where)
            except ConfigError:  # class machinery (caches, registries): not settings
                continue
        bases = [self.walk(b, f"{path} -> base") for b in cls.__bases__ if b is not object]
        return {"$class": cls.__qualname__, "bases": bases, "body": body}

    def _object(self, value: Any, path: str) -> Any:
        special = self._special(value, path)
        if special is not None:
            return special
        cls = type(value)
        if is_scenario_code(cls.__module__) and _state(value) is not None:
            return {"$object": self.walk(cls, path), "state": self.walk(_state(value), path)}
        text = repr(value) if cls.__repr__ is not object.__repr__ else ""
        if not text or _ADDRESS.search(text):
            raise ConfigError(
                _refusal(
                    path,
                    value,
                    "it shows nothing but its memory address",
                    "Hold plain data instead (numbers, strings, lists, dicts, pydantic models or "
                    "dataclasses) and build the object inside the function that uses it, or give "
                    "its class a __repr__ that shows every setting it is built from.",
                )
            )
        if _ELLIPSIS.search(text):
            raise ConfigError(
                _refusal(
                    path,
                    value,
                    "its only description is abbreviated ('...')",
                    "Hold the data it is built from (a file path, a list of values) instead.",
                )
            )
        return {"$repr": [_qualified(cls), text]}

    def _special(self, value: Any, path: str) -> Any:
        from personae.llm.base import ChatModel

        if isinstance(value, functools.partial):
            return {
                "$partial": self.walk(value.func, f"{path}.func"),
                "args": self.walk(value.args, f"{path}.args"),
                "kwargs": self.walk(value.keywords, f"{path}.keywords"),
            }
        if isinstance(value, types.MethodType):
            return {
                "$method": self.walk(value.__func__, path),
                "self": self.walk(value.__self__, f"{path}.__self__"),
            }
        if isinstance(value, staticmethod | classmethod):
            return {"$method": self.walk(value.__func__, path)}
        if callable(value) and callable(getattr(value, "__wrapped__", None)):
            # functools.cache and other wrappers that say what they wrap
            wrapper = _qualified(type(value))
            return {"$wrapper": wrapper, "wraps": self.walk(value.__wrapped__, path)}
        if isinstance(value, types.ModuleType):
            return {"$module": value.__name__}
        if callable(value) and isinstance(value, _BUILTIN_CALLABLES):
            owner = getattr(value, "__self__", None)
            label = _qualified(value) if hasattr(value, "__qualname__") else repr(value)
            if owner is None or isinstance(owner, types.ModuleType | type):
                return {"$builtin": label}
            return {"$builtin": label, "self": self.walk(owner, f"{path}.__self__")}
        if isinstance(value, re.Pattern):
            return {"$regex": [self.walk(value.pattern, path), value.flags]}
        if isinstance(value, io.IOBase) or hasattr(value, "fileno"):
            raise ConfigError(
                _refusal(
                    path,
                    value,
                    "an open file or stream has no stable identity",
                    "Hold the file's path and open it inside the function that reads it.",
                )
            )
        if inspect.isgenerator(value) or inspect.iscoroutine(value) or inspect.isasyncgen(value):
            raise ConfigError(
                _refusal(
                    path,
                    value,
                    "a running generator or coroutine has no stable identity",
                    "Hold the function that makes it instead.",
                )
            )
        module = type(value).__module__
        if module == "numpy" or module.startswith("numpy."):
            return self._numpy(value, path)
        if module.startswith("networkx.") and hasattr(value, "edges") and hasattr(value, "nodes"):
            return self._graph(value, path)
        if isinstance(value, ChatModel):
            return {"$chat_model": str(value.name)}
        return None

    def _numpy(self, value: Any, path: str) -> Any:
        if hasattr(value, "item") and getattr(value, "shape", None) == ():
            return self.walk(value.item(), path)
        if getattr(value, "dtype", None) is not None and value.dtype.kind != "O":
            data = value.tobytes(order="C")
            return {
                "$array": [str(value.dtype), list(value.shape), hashlib.sha256(data).hexdigest()]
            }
        return {"$array": self.walk(value.tolist(), path)}

    def _graph(self, graph: Any, path: str) -> Any:
        nodes = [
            [self.walk(n, f"{path} node"), self.walk(d, f"{path} node data")]
            for n, d in graph.nodes(data=True)
        ]
        edges = []
        for u, v, d in graph.edges(data=True):
            ends = [self.walk(u, f"{path} edge"), self.walk(v, f"{path} edge")]
            if not graph.is_directed():
                ends.sort(key=canonical_json)
            edges.append([*ends, self.walk(d, f"{path} edge data")])
        return {
            "$graph": _qualified(type(graph)),
            "nodes": sorted(nodes, key=canonical_json),
            "edges": sorted(edges, key=canonical_json),
        }


_BUILTIN_CALLABLES = (
    types.BuiltinFunctionType,
    types.WrapperDescriptorType,
    types.MethodWrapperType,
    types.MethodDescriptorType,
    types.ClassMethodDescriptorType,
)


def _global_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


def _written_in_class(member: Any) -> bool:
    """A dunder method written in the class body, not generated (dataclass, pydantic)."""
    return isinstance(member, types.FunctionType) and member.__code__.co_filename != "<string>"


def _descriptor_functions(member: Any) -> list[Any] | None:
    if isinstance(member, types.FunctionType | staticmethod | classmethod):
        return [member]
    if isinstance(member, property):
        return [f for f in (member.fget, member.fset, member.fdel) if f is not None]
    if isinstance(member, functools.cached_property):
        return [member.func]
    return None


def _state(value: Any) -> dict[str, Any] | None:
    state = getattr(value, "__dict__", None)
    if isinstance(state, dict):
        return state
    slots = [s for c in type(value).__mro__ for s in getattr(c, "__slots__", ())]
    if slots:
        return {s: getattr(value, s) for s in slots if hasattr(value, s)}
    return None


def _refusal(path: str, value: Any, why: str, fix: str) -> str:
    cls = type(value)
    return (
        f"{path} holds a {cls.__module__}.{cls.__qualname__} object, which cannot be part of "
        f"the experiment's identity: {why}. The identity decides which stored episodes a rerun "
        f"resumes, so it must come out the same in every process. {fix}"
    )
