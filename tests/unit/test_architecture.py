"""The shape of the package: private names stay private, modules stay small, layers hold.

Read from the source with :mod:`ast`, so a rule broken anywhere under
``personae/`` fails here with the module and line that break it:

- no module reaches into another module's underscore names (an old path kept
  as a ``sys.modules`` alias until 0.4 is the moved module itself, so it may);
- no module is longer than :data:`MAX_LINES`;
- ``personae.__all__`` and every subpackage's ``__all__`` list what the package
  exports, and every listed name can be imported;
- the framework (engine, store, llm, agents, measures, analysis, world, report)
  never imports the studies or the command line while it is being imported.
"""

from __future__ import annotations

import ast
import importlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

import personae

ROOT = Path(personae.__file__).parent
README = ROOT.parent / "README.md"
MAX_LINES = 600

#: Modules allowed to use another module's underscore names, with the reason.
#: Keep this empty: give the name a public spelling or move it instead.
PRIVATE_EXCEPTIONS: dict[tuple[str, str], str] = {}

#: Modules allowed past :data:`MAX_LINES`, with the reason. Keep this empty.
LENGTH_EXCEPTIONS: dict[str, str] = {}

#: The framework: packages that sit below the studies and the command line.
LOWER = (
    "personae.engine",
    "personae.store",
    "personae.llm",
    "personae.agents",
    "personae.measures",
    "personae.analysis",
    "personae.world",
    "personae.report",
)
#: What the framework must not import at import time.
UPPER = ("personae.studies", "personae.cli")


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    tree: ast.Module

    @property
    def is_package(self) -> bool:
        return self.path.name == "__init__.py"


@cache
def modules() -> dict[str, Module]:
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = Module(name, path, ast.parse(path.read_text(encoding="utf-8"), str(path)))
    return found


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _absolute(module: Module, node: ast.ImportFrom) -> str:
    """The absolute module name of ``from ... import``, relative imports resolved."""
    if not node.level:
        return node.module or ""
    base = module.name.split(".")
    if not module.is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def is_alias_shim(module: Module) -> bool:
    """Whether ``module`` only replaces itself in ``sys.modules`` (an old path kept until 0.4)."""
    return "sys.modules[__name__]" in module.path.read_text(encoding="utf-8")


def _top_level(tree: ast.Module) -> Iterator[ast.stmt]:
    """Statements run at import time: module level, inside ``try``/``if`` but not ``TYPE_CHECKING``."""
    stack = list(tree.body)
    while stack:
        node = stack.pop(0)
        if isinstance(node, ast.If):
            test = ast.unparse(node.test)
            if "TYPE_CHECKING" not in test:
                stack.extend(node.body)
            stack.extend(node.orelse)
        elif isinstance(node, ast.Try):
            stack.extend([*node.body, *node.orelse, *node.finalbody])
            for handler in node.handlers:
                stack.extend(handler.body)
        else:
            yield node


# --- (a) private names --------------------------------------------------------------------------


def private_uses(module: Module) -> list[str]:
    """``line: what`` for each use of another personae module's underscore name."""
    known = modules()
    bound: dict[str, str] = {}  # local name -> personae module it stands for
    found = []
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("personae"):
                    bound[alias.asname or alias.name.split(".")[0]] = (
                        alias.name if alias.asname else "personae"
                    )
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, node)
            if not source.startswith("personae") or source == module.name:
                continue
            for alias in node.names:
                if _private(alias.name):
                    found.append(f"{node.lineno}: from {source} import {alias.name}")
                elif f"{source}.{alias.name}" in known:
                    bound[alias.asname or alias.name] = f"{source}.{alias.name}"
    for node in ast.walk(module.tree):
        if (
            isinstance(node, ast.Attribute)
            and _private(node.attr)
            and isinstance(node.value, ast.Name)
            and node.value.id in bound
            and bound[node.value.id] != module.name
        ):
            found.append(f"{node.lineno}: {bound[node.value.id]}.{node.attr}")
    return found


def test_no_module_uses_another_modules_private_names() -> None:
    broken = {}
    for name, module in modules().items():
        if is_alias_shim(module):
            continue  # the old path *is* the moved module, private names included, until 0.4
        uses = [
            u for u in private_uses(module) if (name, u.split(": ", 1)[1]) not in PRIVATE_EXCEPTIONS
        ]
        if uses:
            broken[name] = uses
    assert broken == {}, "\n".join(f"{k}: {v}" for k, v in broken.items())


def test_the_private_name_check_finds_what_it_should(tmp_path: Path) -> None:
    source = (
        "from personae.store import rows\n"
        "from personae.store.rows import _Column\n"
        "import personae.store.writer as w\n"
        "x = rows._COLUMNS\n"
        "y = w._private\n"
        "z = rows.__doc__\n"
    )
    module = Module("personae.fake", tmp_path / "fake.py", ast.parse(source))
    assert private_uses(module) == [
        "2: from personae.store.rows import _Column",
        "4: personae.store.rows._COLUMNS",
        "5: personae.store.writer._private",
    ]


# --- (b) length ---------------------------------------------------------------------------------


def test_every_module_is_at_most_600_lines() -> None:
    long = {
        name: n
        for name, module in modules().items()
        if (n := len(module.path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
        and name not in LENGTH_EXCEPTIONS
    }
    assert long == {}, long


# --- (c) public API -----------------------------------------------------------------------------


def _readme_names() -> set[str]:
    text = README.read_text(encoding="utf-8")
    names: set[str] = set()
    for match in re.finditer(r"^from personae import (\([^)]*\)|[^\n]+)", text, re.MULTILINE):
        names |= {n.strip() for n in match.group(1).strip("()").split(",") if n.strip()}
    return {n.split(" as ")[0].strip() for n in names}


def test_top_level_all_has_every_name_the_readme_imports() -> None:
    names = _readme_names()
    assert names, "README imports nothing from personae: has the example moved?"
    assert names <= set(personae.__all__), sorted(names - set(personae.__all__))


def _packages() -> list[str]:
    return sorted(name for name, module in modules().items() if module.is_package)


@pytest.mark.parametrize("package", _packages())
def test_package_all_is_complete_and_importable(package: str) -> None:
    module = importlib.import_module(package)
    listed = getattr(module, "__all__", None)
    tree = modules()[package].tree
    exported = set()  # re-exports of the package's own modules, and what it defines
    for node in _top_level(tree):
        if isinstance(node, ast.ImportFrom):
            source = _absolute(modules()[package], node)
            if source == package or source.startswith(package + "."):
                exported |= {a.asname or a.name for a in node.names}
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            exported.add(node.name)
    exported = {n for n in exported if not _private(n) and n not in {"*", "__getattr__"}}
    if listed is None:
        assert not exported, f"{package} exports {sorted(exported)} without __all__"
        return
    assert exported <= set(listed), f"{package}.__all__ misses {sorted(exported - set(listed))}"
    for name in listed:
        assert getattr(module, name, None) is not None, (
            f"{package}.{name} is listed, not importable"
        )


# --- (d) layers ---------------------------------------------------------------------------------


@cache
def import_graph() -> dict[str, set[str]]:
    """Module -> personae modules it imports at import time (parent packages included, not ``personae``)."""
    known = modules()
    graph: dict[str, set[str]] = {}
    for name, module in known.items():
        edges: set[str] = set()
        for node in _top_level(module.tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                source = _absolute(module, node)
                targets = [source, *(f"{source}.{a.name}" for a in node.names)]
            else:  # importlib.import_module("personae...") with a literal name, as shims do
                targets = [
                    call.args[0].value
                    for call in ast.walk(node)
                    if isinstance(call, ast.Call)
                    and isinstance(call.func, ast.Attribute)
                    and call.func.attr == "import_module"
                    and call.args
                    and isinstance(call.args[0], ast.Constant)
                    and isinstance(call.args[0].value, str)
                ]
            for target in targets:
                parts = target.split(".")
                for i in range(2, len(parts) + 1):  # the packages on the way, not the root
                    if ".".join(parts[:i]) in known:
                        edges.add(".".join(parts[:i]))
        parts = name.split(".")
        edges |= {".".join(parts[:i]) for i in range(2, len(parts))}
        graph[name] = edges - {name}
    return graph


def upward_path(start: str) -> list[str] | None:
    """The import chain from ``start`` to a study or the CLI, or ``None``."""
    graph = import_graph()
    seen = {start}
    queue = [[start]]
    while queue:
        path = queue.pop(0)
        for nxt in sorted(graph.get(path[-1], ())):
            if nxt.startswith(UPPER):
                return [*path, nxt]
            if nxt not in seen:
                seen.add(nxt)
                queue.append([*path, nxt])
    return None


def test_the_framework_never_imports_the_studies_or_the_cli() -> None:
    broken = {}
    for name, module in modules().items():
        if not name.startswith(LOWER) or is_alias_shim(module):
            continue  # an old path kept until 0.4 may point anywhere; importing one is checked
        path = upward_path(name)
        if path is not None:
            broken[name] = " -> ".join(path)
    assert broken == {}, "\n".join(f"{k}: {v}" for k, v in sorted(broken.items()))


def test_the_layer_check_follows_imports_through_other_modules() -> None:
    graph = import_graph()
    assert "personae.report.html" in graph["personae.report.page"]
    assert "personae.report" in graph["personae.report.page"]  # its package runs first
    assert upward_path("personae.analysis.group") is not None  # a shim into a study
