"""What every command shares: the consoles and the exit codes."""

from __future__ import annotations

from rich.console import Console

__all__ = ["EXIT_EPISODES_FAILED", "err", "out"]

#: Standard output: tables and results.
out = Console()
#: Standard error: progress, notices and errors.
err = Console(stderr=True)

#: Exit code of a run in which some episodes failed (the others are kept).
EXIT_EPISODES_FAILED = 3
