"""The examples in README.md and docs/*.md, collected for tests/unit/test_doc_examples.py.

Collected: fenced ```python and ```sql blocks, and each ``personae sql DB "..."``
line of a shell block (```sh, ```bash, ```console). An HTML comment on the lines
just above a fence (blank lines between are allowed) steers the test; it does not
show on GitHub:

- ``<!-- example: no-run REASON -->``: collected but not run (say why, e.g. it needs
  a GPU server or a dataset the user downloads).
- ``<!-- example: db runs/drift.db -->``: the database an ```sql block runs against
  (default: ``runs/demo.db``).
- ``<!-- example: file PATH -->``: the block is a file the following examples read;
  the test writes it to PATH (relative to the examples' folder).
- ``<!-- example: setup`` ... ``-->``: Python run in the file's namespace before the
  block, for names the reader is assumed to have (``scores = ...`` in prose).

Python blocks of one file share a namespace and run in order, so a block may go
on from the one before it, as the reader does.
"""

from __future__ import annotations

import functools
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^(\s*)(`{3,})\s*([\w+-]*)")
DIRECTIVE = re.compile(r"<!--\s*example:\s*(\S+)\s*(.*?)\s*-->", re.S)
SHELL = {"sh", "bash", "console", "shell"}
DEFAULT_DB = "runs/demo.db"


@dataclass(frozen=True)
class Example:
    """One runnable example: where it is, what it is, how to run it."""

    path: Path
    line: int  # of the block's first line of code (1-based)
    kind: str  # "python", "sql", "cli-sql" or "file"
    code: str
    db: str = DEFAULT_DB
    file: str | None = None  # where a "file" block is written
    setup: str = ""
    no_run: str | None = None  # the reason it is not run

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    def argv(self) -> list[str]:
        """A ``personae sql`` line's arguments after ``personae``."""
        return shlex.split(self.code, comments=True)[1:]


def documents(root: Path = ROOT) -> list[Path]:
    """README.md and every Markdown page directly under docs/."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def _directives(lines: list[str], fence: int) -> dict[str, str]:
    """The ``<!-- example: ... -->`` comments just above line index ``fence``."""
    i = fence - 1
    while i >= 0 and not lines[i].strip():
        i -= 1
    end = i
    found: dict[str, str] = {}
    while i >= 0 and lines[i].rstrip().endswith("-->"):
        start = i
        while start >= 0 and "<!--" not in lines[start]:
            start -= 1
        match = DIRECTIVE.search("\n".join(lines[start : end + 1]))
        if match is None:
            break
        found.setdefault(match.group(1), match.group(2))
        i = end = start - 1
        while i >= 0 and not lines[i].strip():
            i -= 1
            end = i
    return found


def collect(path: Path) -> list[Example]:
    """Every example in one Markdown file, in order."""
    lines = path.read_text().splitlines()
    examples: list[Example] = []
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        indent, ticks, lang = match.group(1), match.group(2), match.group(3).lower()
        end = i + 1
        while end < len(lines) and not lines[end].strip().startswith(ticks):
            end += 1
        body = [line.removeprefix(indent) for line in lines[i + 1 : end]]
        tags = _directives(lines, i)
        common = functools.partial(
            Example, path=path, setup=tags.get("setup", ""), no_run=tags.get("no-run")
        )
        if "file" in tags:
            code = "\n".join(body) + "\n"
            examples.append(common(line=i + 2, kind="file", code=code, file=tags["file"]))
        elif lang in ("python", "py"):
            examples.append(common(line=i + 2, kind="python", code="\n".join(body)))
        elif lang == "sql":
            db = tags.get("db", DEFAULT_DB)
            examples.append(common(line=i + 2, kind="sql", code="\n".join(body), db=db))
        elif lang in SHELL:
            for n, line in enumerate(body):
                if line.strip().startswith("personae sql "):
                    code = line.strip()
                    examples.append(common(line=i + 2 + n, kind="cli-sql", code=code))
        i = end + 1
    return examples


def all_examples(root: Path = ROOT) -> list[Example]:
    """Every example in README.md and docs/*.md."""
    return [example for doc in documents(root) for example in collect(doc)]


def statements(sql: str) -> list[str]:
    """An SQL block split into statements (comments kept with the statement they precede)."""
    import sqlite3

    out, current = [], ""
    for line in sql.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            out.append(current.strip())
            current = ""
    if current.strip() and not all(
        part.strip().startswith("--") or not part.strip() for part in current.splitlines()
    ):
        out.append(current.strip())
    return out
