"""Episodes as asyncio tasks of this process, many at once, sharing one writer and model."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from personae.runner.executors.base import ReportOutcome, RunJob
from personae.runner.jobs import EpisodeJob

__all__ = ["LocalExecutor"]


class LocalExecutor:
    """Runs jobs as tasks of the current event loop.

    Requests in flight are bounded by the model's limiter, episodes in flight
    by ``max_episodes``. Jobs run through the runner's in-process ``run``
    (:func:`~personae.runner.jobs.run_episode` with the shared writer, model
    and experiment), so nothing is loaded or pickled.

    Args:
        max_episodes: Episodes in flight at most. Each two-party episode has at
            most one request in flight, so this should exceed the model's
            request limit to keep the server's batch full.

    Raises:
        ValueError: ``max_episodes`` is below 1.
    """

    def __init__(self, max_episodes: int = 256) -> None:
        if max_episodes < 1:
            raise ValueError("max_episodes must be >= 1")
        self.max_episodes = max_episodes

    async def map(self, jobs: Sequence[EpisodeJob], run: RunJob, report: ReportOutcome) -> None:
        """Run every job through ``run`` and report its outcome; see :class:`Executor`."""
        gate = asyncio.Semaphore(self.max_episodes)

        async def guarded(job: EpisodeJob) -> None:
            async with gate:
                outcome = await run(job)
            report(outcome)

        tasks = [
            asyncio.create_task(
                guarded(job), name=f"episode-{job.spec.param_index}-{job.spec.replicate}"
            )
            for job in jobs
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
