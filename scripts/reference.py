"""Generate the API reference in docs/reference/ from the docstrings (``make reference``).

The pages are Markdown, so they read on GitHub without a server. griffe2md (Griffe,
the engine behind mkdocstrings) renders each public name: its signature with types
and defaults, its docstring (Google style) and its members; the griffe-pydantic
extension gives every pydantic field its type and default. One page per public
package documents the names in that package's ``__all__``; ``personae.md`` lists
everything ``from personae import ...`` offers and documents the names no
subpackage page holds. A package without ``__all__`` (``personae.llm`` today) is
documented module by module: each public module's ``__all__``, or else the
classes and functions it defines.

Usage:
    python scripts/reference.py [--out docs/reference]

``tests/unit/test_doc_examples.py`` regenerates the pages and fails when the
committed ones are stale.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import inspect
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import griffe
import griffe2md

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "reference"

#: The public packages, in the order the index lists them (``personae`` last: its
#: page documents only what no other page does).
PACKAGES = (
    "personae.engine",
    "personae.runner",
    "personae.measures",
    "personae.analysis",
    "personae.report",
    "personae.world",
    "personae.studies",
    "personae.store",
    "personae.llm",
    "personae",
)

CONFIG: dict[str, Any] = {
    **griffe2md.default_config,
    "heading_level": 2,
    "show_root_full_path": True,
    "show_root_members_full_path": False,
    "show_object_full_path": False,
    "show_submodules": False,
    "show_signature_annotations": True,
    "summary": False,
    "filters": ["!^_", "!^model_config$", "!^model_post_init$"],
    "line_length": 88,
}

_SHIM = "sys.modules[__name__]"
# Module paths in front of a type name: ``typing.Annotated`` reads ``Annotated``.
_QUALIFIED = re.compile(r"\b(?:[a-z_][a-z0-9_]*\.)+(?=[A-Za-z_])(?![a-z0-9_]*\()")
_LINK = re.compile(r"\[([^\]]*)\]\(#([A-Za-z0-9_.]+)\)")


@dataclass
class Page:
    """One Markdown page: the package it documents and the objects on it."""

    package: str
    summary: str
    objects: list[tuple[str, griffe.Object]] = field(default_factory=list)

    @property
    def filename(self) -> str:
        return f"{self.package}.md"


def _loader() -> griffe.GriffeLoader:
    return griffe.GriffeLoader(
        extensions=griffe.load_extensions({"griffe_pydantic": {"schema": False}}),
        docstring_parser=griffe.Parser("google"),
        docstring_options={"ignore_init_summary": True},
        allow_inspection=True,
    )


def _public_modules(package: griffe.Module) -> Iterator[griffe.Module]:
    for name, member in sorted(package.members.items()):
        if name.startswith("_") or member.is_alias or not member.is_module:
            continue
        assert isinstance(member, griffe.Module)
        if member.filepath and _SHIM in Path(str(member.filepath)).read_text():
            continue  # an old path kept working by an alias; documented where it moved
        yield member


def _module(root: griffe.Module, path: str) -> griffe.Module:
    module = root if path == root.path else root[path.removeprefix(root.path + ".")]
    assert isinstance(module, griffe.Module)
    return module


def _names(root: griffe.Module, package: str) -> list[tuple[str, str]]:
    """``(public name, dotted module it is reached through)`` for one package."""
    module = importlib.import_module(package)
    exported = getattr(module, "__all__", None)
    if exported is not None:
        return [(name, package) for name in exported if not name.startswith("__")]
    names: list[tuple[str, str]] = []
    for sub in _public_modules(_module(root, package)):
        sub_module = importlib.import_module(sub.path)
        exported = getattr(sub_module, "__all__", None)
        if exported is None:
            exported = [
                name
                for name, member in sub.members.items()
                if not name.startswith("_")
                and not member.is_alias
                and (member.is_class or member.is_function)
            ]
        names += [(name, sub.path) for name in sorted(exported)]
    return names


def _signature_block(name: str, obj: griffe.Object) -> str:
    """A class's call signature where Griffe has no ``__init__`` to show (pydantic models)."""
    if not obj.is_class or "__init__" in obj.members:
        return ""
    target = getattr(importlib.import_module(obj.module.path), obj.name, None)
    try:
        signature = inspect.signature(target) if target is not None else None
    except (TypeError, ValueError):
        signature = None
    if signature is None:
        return ""
    text = _QUALIFIED.sub("", str(signature).split(" -> ")[0])[1:-1]
    one_line = f"{name}({text})"
    if len(one_line) <= CONFIG["line_length"]:
        return f"```python\n{one_line}\n```\n\n"
    body = "".join(f"    {part},\n" for part in _split_top_level(text))
    return f"```python\n{name}(\n{body})\n```\n\n"


def _split_top_level(text: str) -> list[str]:
    """Split a parameter list at the commas outside brackets and quotes."""
    parts, depth, quote, start = [], 0, "", 0
    for i, char in enumerate(text):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "([{<":
            depth += 1
        elif char in ")]}>":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return [part for part in parts if part]


@functools.cache
def _environment() -> Any:
    return griffe2md.prepare_env()


def _render(name: str, obj: griffe.Object) -> str:
    # griffe2md.render_object_docs, with the templates compiled once instead of per object.
    template = _environment().get_template(f"{obj.kind.value}.md.jinja")
    text = template.render(**griffe2md.prepare_context(obj, CONFIG))
    heading, _, rest = text.partition("\n")
    return f"{heading}\n\n{_signature_block(name, obj)}{rest.lstrip()}"


def _github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to dashes."""
    text = heading.strip().lstrip("#").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _find(
    root: griffe.Module, module: griffe.Module, name: str, module_path: str
) -> griffe.Object | None:
    """The Griffe object behind ``module_path.name``, as Python resolves it at run time."""
    try:
        found = module[name]
        target = found.final_target if found.is_alias else found
    except (KeyError, griffe.AliasResolutionError):
        target = None
    live = getattr(importlib.import_module(module_path), name, None)
    if (target is None or target.is_module) and (inspect.isclass(live) or inspect.isfunction(live)):
        # A function named like its own submodule (``measures.reliability``): Griffe
        # sees the submodule, Python the function; document the function.
        path = f"{live.__module__}.{live.__qualname__}"
        if path.startswith(root.path + "."):
            found = root[path.removeprefix(root.path + ".")]
            target = found.final_target if found.is_alias else found
    assert target is None or isinstance(target, griffe.Object)
    return target


def build_pages() -> list[Page]:
    """Collect the objects of every page, each object documented once.

    An object goes on the page of the package it is defined in when that package
    exports it (``write_report`` on ``personae.report``, though ``personae.analysis``
    re-exports it), else on the first page that exports it.
    """
    loader = _loader()
    root = loader.load("personae")
    assert isinstance(root, griffe.Module)
    pages: list[Page] = []
    exported: dict[str, list[tuple[Page, str, griffe.Object]]] = {}
    for package in PACKAGES:
        doc = (importlib.import_module(package).__doc__ or "").strip().split("\n\n")[0]
        page = Page(package, " ".join(doc.split()))
        pages.append(page)
        for name, module_path in _names(root, package):
            target = _find(root, _module(root, module_path), name, module_path)
            # None: a value Griffe cannot see statically (a list built at import)
            if target is None or target.is_module or target.is_attribute:
                continue
            exported.setdefault(target.path, []).append((page, name, target))
    for path, places in exported.items():
        homes = [p for p in places if path.startswith(p[0].package + ".")]
        page, name, target = max(homes, key=lambda p: len(p[0].package)) if homes else places[0]
        page.objects.append((name, target))
    loader.resolve_aliases(external=False, implicit=False)
    return pages


def _fix_links(text: str, where: dict[str, str], page: str) -> str:
    """Point cross-references at the page holding their target, or drop the link."""

    def link(match: re.Match[str]) -> str:
        label, path = match.group(1), match.group(2)
        if path not in where:
            return label
        target_page, anchor = where[path].split("#")
        return f"[{label}]({'' if target_page == page else target_page}#{anchor})"

    return _LINK.sub(link, text)


def render(pages: list[Page]) -> dict[str, str]:
    """The Markdown files, by name: one per package and an index, ``README.md``."""
    where: dict[str, str] = {}
    rendered: dict[str, list[str]] = {}
    for page in pages:
        blocks = []
        for name, obj in page.objects:
            text = _render(name, obj)
            where[obj.path] = f"{page.filename}#{_github_anchor(text.partition(chr(10))[0])}"
            blocks.append(text)
        rendered[page.filename] = blocks
    files: dict[str, str] = {}
    index = [
        "# API reference\n",
        "Generated from the docstrings by `make reference` (scripts/reference.py, griffe2md);",
        "do not edit by hand. Every name below is importable from the package its page",
        "is named after. Fields show their type and default, e.g. `Scenario.max_tokens: int = 96`.\n",
    ]
    for page in pages:
        header = [f"# `{page.package}`\n", page.summary + "\n"] if page.summary else []
        header.append("[Index](README.md)\n")
        body = "\n".join(_fix_links(b, where, page.filename) for b in rendered[page.filename])
        files[page.filename] = "\n".join(header) + "\n" + body.rstrip() + "\n"
        index.append(f"## [`{page.package}`]({page.filename})\n")
        if page.summary:
            index.append(page.summary + "\n")
        for name, obj in page.objects:
            summary = obj.docstring.value.split("\n")[0] if obj.docstring else ""
            index.append(f"- [`{name}`]({where[obj.path]}): {summary}")
        index.append("")
    top = getattr(importlib.import_module("personae"), "__all__", [])
    index.append("## Everything `from personae import ...` offers\n")
    for name in top:
        if name.startswith("__"):
            continue
        obj = getattr(importlib.import_module("personae"), name)
        path = f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}"
        link = next((v for k, v in where.items() if k.endswith("." + name)), None)
        if path in where:
            link = where[path]
        index.append(f"- [`{name}`]({link})" if link else f"- `{name}`")
    files["README.md"] = "\n".join(index).rstrip() + "\n"
    return files


def write(out: Path = OUT) -> list[Path]:
    """Regenerate every page under ``out``, removing pages of packages no longer listed."""
    files = render(build_pages())
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.md"):
        if old.name not in files:
            old.unlink()
    written = []
    for name, text in files.items():
        path = out / name
        path.write_text(text)
        written.append(path)
    return written


def main() -> None:
    # Griffe warns about docstrings whose Args it cannot match; the pages are still right.
    logging.getLogger("griffe").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=OUT, help="folder to write (docs/reference)")
    args = parser.parse_args()
    for path in write(args.out):
        print(path)


if __name__ == "__main__":
    main()
