"""Helpers for the end-to-end tests: the real CLI in a subprocess, and SQL on the result."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def personae(*args: str, timeout: float = 900, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run ``personae ARGS`` from the repository root and capture what it prints."""
    return subprocess.run(
        [sys.executable, "-m", "personae.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        **kwargs,
    )


def q(db: str | Path, sql: str) -> list[tuple[Any, ...]]:
    """All rows of one query on a database file."""
    con = sqlite3.connect(db)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()
