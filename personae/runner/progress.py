"""A progress bar for experiments: episodes done, turns per second, tokens per second, ETA.

In a terminal the bar is rich's live display. In a Jupyter notebook it is one
output of the cell, updated in place twice a second through IPython's display
machinery (``display_id``), so it needs no widget library and also shows in a
notebook executed headless (nbclient, nbconvert), where the final state stays
in the saved file.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, RenderableType
from rich.live import Live
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

from personae.runner.jobs import RowTally


@dataclass
class RunCounters(RowTally):
    """Live counts of one run, shared by the runner and the progress bar.

    Turns, calls and completion tokens are counted from the typed rows the
    run's sink sees (:meth:`~personae.runner.jobs.RowTally.see`).
    """

    started: float = field(default_factory=time.perf_counter)
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


def in_notebook(console: Console | None = None) -> bool:
    """Whether output goes to a Jupyter notebook (rich's own detection, or ``console``'s)."""
    return (console or Console(file=io.StringIO())).is_jupyter


def experiment_progress(
    counters: RunCounters, *, enabled: bool, console: Console | None = None
) -> Progress:
    """The bar shown while an experiment runs (a no-op when ``enabled`` is false).

    In a notebook (``console.is_jupyter``) it is drawn as one cell output updated
    in place (see the module docstring).
    """
    kind = _NotebookProgress if enabled and in_notebook(console) else Progress
    return kind(
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


class _NotebookLive(Live):
    """rich's live display as one notebook output, replaced in place on each refresh.

    rich draws a live display in Jupyter through ``ipywidgets``, which a
    notebook may not have and which a notebook run headless cannot show; an
    output with a ``display_id`` (``update_display_data``) works in both.
    """

    def __init__(self, get_renderable: Callable[[], RenderableType], console: Console) -> None:
        super().__init__(
            console=console,
            auto_refresh=True,
            refresh_per_second=2,
            transient=False,
            redirect_stdout=False,
            redirect_stderr=False,
            get_renderable=get_renderable,
        )
        self._handle: Any = None

    def refresh(self) -> None:
        from IPython.display import display

        with self._lock:
            bundle = _mime_bundle(self.get_renderable(), self.console.width)
            if self._handle is None:
                self._handle = display(bundle, raw=True, display_id=True)
            else:
                self._handle.update(bundle, raw=True)

    def stop(self) -> None:
        # Not rich's stop: in a notebook it adds an empty output of its own.
        with self._lock:
            if not self._started:
                return
            self._started = False
            if self._nested:
                return
            self.console.clear_live()
            if self._refresh_thread is not None:
                self._refresh_thread.stop()
                self._refresh_thread = None
            self.console.pop_render_hook()
            self.refresh()  # the final state stays in the notebook


class _NotebookProgress(Progress):
    """A :class:`Progress` drawn by :class:`_NotebookLive`."""

    def __init__(self, *columns: str | ProgressColumn, console: Console | None, **kw: Any) -> None:
        super().__init__(*columns, console=console, **kw)
        self.live = _NotebookLive(self.get_renderable, self.live.console)


_PRE = (
    '<pre style="white-space:pre;overflow-x:auto;line-height:normal;'
    "font-family:Menlo,'DejaVu Sans Mono',consolas,'Courier New',monospace\">{code}</pre>"
)


def _mime_bundle(renderable: RenderableType, width: int) -> dict[str, str]:
    """``renderable`` as plain text and as HTML with inline colours."""
    recorder = Console(
        file=io.StringIO(), record=True, width=width, force_terminal=True, force_jupyter=False
    )
    recorder.print(renderable)
    return {
        "text/plain": recorder.export_text(clear=False).rstrip("\n"),
        "text/html": recorder.export_html(inline_styles=True, code_format=_PRE),
    }
