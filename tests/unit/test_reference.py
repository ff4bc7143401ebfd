"""The API reference in docs/reference/: generated from the docstrings, complete, up to date."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import is_typeddict

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "reference"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("reference", ROOT / "scripts" / "reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["reference"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    # In a fresh process, as `make reference` runs it: the docstrings, not what
    # earlier tests of this session changed in the imported modules.
    out = tmp_path_factory.mktemp("reference")
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "reference.py"), "--out", str(out)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return {path.name: path.read_text() for path in out.glob("*.md")}


def _section(text: str, heading_suffix: str) -> str:
    """The Markdown of the ``## `...Name` `` section of a page."""
    match = re.search(
        rf"^## `[\w.]*\.{re.escape(heading_suffix)}`\n(.*?)(?=^## |\Z)", text, re.M | re.S
    )
    assert match, f"no section for {heading_suffix}"
    return match.group(1)


def test_committed_reference_is_what_the_docstrings_give(generated: dict[str, str]) -> None:
    committed = {path.name: path.read_text() for path in COMMITTED.glob("*.md")}
    stale = sorted(
        n for n in generated.keys() | committed.keys() if generated.get(n) != committed.get(n)
    )
    assert not stale, f"docs/reference is stale ({', '.join(stale)}): run `make reference`"


def test_every_name_personae_exports_is_listed_with_its_signature(
    generated: dict[str, str],
) -> None:
    import personae

    index = generated["README.md"]
    for name in personae.__all__:
        if name.startswith("__"):
            continue
        match = re.search(rf"^- \[`{name}`\]\(([\w.]+\.md)#([\w-]+)\)", index, re.M)
        assert match, f"{name} is not in the index"
        page = generated[match.group(1)]
        section = _section(page, name)
        obj = getattr(personae, name)
        # Exceptions take a message; a TypedDict's page lists its keys instead.
        plain_class = inspect.isclass(obj) and not issubclass(obj, Exception)
        if inspect.isfunction(obj) or (plain_class and not is_typeddict(obj)):
            signature = re.search(r"^```python\n(.*?)\n```", section, re.M | re.S)
            assert signature and signature.group(1).startswith(name), f"{name} has no signature"


def test_every_public_class_and_function_of_the_subpackages_is_documented(
    generated: dict[str, str],
) -> None:
    pages = "\n".join(generated.values())
    generator = _generator()
    for package in generator.PACKAGES:
        module = importlib.import_module(package)
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                assert re.search(rf"^## `[\w.]*\.{name}`$", pages, re.M), f"{package}.{name}"


def test_fields_show_their_types_and_defaults(generated: dict[str, str]) -> None:
    scenario = _section(generated["personae.engine.md"], "Scenario")
    assert re.search(r"max_tokens: .*int.* = 96", scenario)
    assert re.search(r"temperature: .*float.* = 0\.8", scenario)
    experiment = _section(generated["personae.runner.md"], "Experiment")
    assert re.search(r"replicates: .*int.* = 1", experiment)
    persona = _section(generated["personae.md"], "Persona")
    assert re.search(r"big_five: .* = ", persona)


def test_cross_references_point_at_pages_that_exist(generated: dict[str, str]) -> None:
    for name, text in generated.items():
        for target in re.findall(r"\]\(([\w.]+\.md)#", text):
            assert target in generated, f"{name} links to {target}"
        assert not re.search(r"\]\(#[\w]+\.[\w.]+\)", text), f"{name} has a dotted link left"
