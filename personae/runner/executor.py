"""Where episodes run. The runner hands an executor the episodes and a coroutine function.

:class:`LocalExecutor` runs them as tasks of the current event loop, many at
once; requests in flight are bounded by the model's limiter, episodes in flight
by ``max_episodes``. A distributed executor (episode batches on other
machines, each writing its own shard) implements the same one-method
interface; scenarios and the store do not change.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from personae.runner.experiment import EpisodeSpec

RunOne = Callable[[EpisodeSpec], Awaitable[None]]


class Executor(Protocol):
    """Runs every spec through ``run_one``; returns when all are done or raises if cancelled."""

    async def map(self, specs: Sequence[EpisodeSpec], run_one: RunOne) -> None: ...


class LocalExecutor:
    """Episodes as asyncio tasks in this process.

    Args:
        max_episodes: Episodes in flight at most. Each two-party episode has at
            most one request in flight, so this should exceed the model's
            request limit to keep the server's batch full.
    """

    def __init__(self, max_episodes: int = 256) -> None:
        if max_episodes < 1:
            raise ValueError("max_episodes must be >= 1")
        self.max_episodes = max_episodes

    async def map(self, specs: Sequence[EpisodeSpec], run_one: RunOne) -> None:
        gate = asyncio.Semaphore(self.max_episodes)

        async def guarded(spec: EpisodeSpec) -> None:
            async with gate:
                await run_one(spec)

        tasks = [
            asyncio.create_task(guarded(s), name=f"episode-{s.param_index}-{s.replicate}")
            for s in specs
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
