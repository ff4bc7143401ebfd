"""The executor protocol: jobs in, one outcome per job out.

The runner hands an executor the episode jobs still to do, a way to run one
job in this process (``run``) and a callback for outcomes (``report``). The
runner keeps the books (counters, progress bar, summary) from the outcomes
reported and from the typed rows its sink sees; an executor keeps none.

What every executor guarantees (``tests/unit/test_executor_conformance.py``):

* every job is run once and its outcome reported once, as it finishes;
* ``map`` returns when all are reported;
* when ``map`` is cancelled (Ctrl-C, SIGTERM), jobs not yet finished are
  cancelled too and marked ``interrupted`` in their sink, finished ones are
  kept, and ``map`` raises :class:`asyncio.CancelledError` once they have all
  stopped.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, runtime_checkable

from personae.runner.jobs import EpisodeJob, EpisodeOutcome

#: Runs one job in this process, with the run's sink, model and experiment
#: (:func:`~personae.runner.jobs.run_episode` bound to them).
RunJob = Callable[[EpisodeJob], Awaitable[EpisodeOutcome]]

#: Receives each job's outcome as it finishes.
ReportOutcome = Callable[[EpisodeOutcome], None]


@runtime_checkable
class Executor(Protocol):
    """Runs every job and reports every outcome; raises ``CancelledError`` if cancelled.

    An executor that runs jobs elsewhere ignores ``run`` and calls
    :func:`~personae.runner.jobs.run_episode` there, with a sink of its own;
    the jobs are plain picklable data.
    """

    async def map(self, jobs: Sequence[EpisodeJob], run: RunJob, report: ReportOutcome) -> None:
        """Run ``jobs``, handing each outcome to ``report`` as it arrives."""
        ...
