"""Moved to :mod:`personae.runner.executors`; this path keeps working until 0.4."""

from collections.abc import Awaitable, Callable

from personae.runner.executors.base import Executor, ReportOutcome, RunJob
from personae.runner.executors.local import LocalExecutor
from personae.runner.jobs import EpisodeSpec

__all__ = ["Executor", "LocalExecutor", "ReportOutcome", "RunJob", "RunOne"]

#: The 0.2 executor callback, ``run_one(spec)``; an executor whose ``map`` takes
#: ``(specs, run_one)`` is still accepted by the runner until 0.4.
RunOne = Callable[[EpisodeSpec], Awaitable[None]]
