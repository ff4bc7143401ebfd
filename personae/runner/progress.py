"""A progress bar for experiments: episodes done, turns per second, tokens per second, ETA."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Column
from rich.text import Text


@dataclass
class RunCounters:
    """Live counts of one run, shared by the runner and the progress bar."""

    started: float = field(default_factory=time.perf_counter)
    turns: int = 0
    calls: int = 0
    completion_tokens: int = 0
    #: What the run is waiting for right now ("" when nothing): a server that
    #: cannot be reached, a database locked by another program.
    status: Callable[[], str] | None = None

    def rate(self, value: int) -> float:
        elapsed = time.perf_counter() - self.started
        return value / elapsed if elapsed > 0 else 0.0


class _Rates(ProgressColumn):
    def __init__(self, counters: RunCounters) -> None:
        super().__init__()
        self.counters = counters

    def render(self, task: Task) -> Text:
        c = self.counters
        return Text(
            f"{c.rate(c.turns):6.1f} turns/s {c.rate(c.completion_tokens):7.1f} tok/s",
            style="progress.data.speed",
        )


class _Waiting(ProgressColumn):
    def __init__(self, counters: RunCounters) -> None:
        # Cut off, not wrapped, on a narrow terminal: the runner also prints a line.
        super().__init__(table_column=Column(no_wrap=True, overflow="ellipsis"))
        self.counters = counters

    def render(self, task: Task) -> Text:
        status = self.counters.status() if self.counters.status else ""
        return Text(status, style="bold yellow")


def experiment_progress(
    counters: RunCounters, *, enabled: bool, console: Console | None = None
) -> Progress:
    """The bar shown while an experiment runs (a no-op when ``enabled`` is false)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("episodes"),
        _Rates(counters),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        _Waiting(counters),
        console=console,
        disable=not enabled,
        transient=False,
    )
