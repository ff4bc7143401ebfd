"""Episodes in Ray actors, on this machine or a cluster; rows come back to the run's one database.

:class:`RayExecutor` starts ``workers`` async actors (one process each), and
each runs up to ``episodes_per_worker`` episodes at once with
:func:`~personae.runner.jobs.run_episode`: it loads the scenario from the
job's target (once per process), connects to the job's model endpoints
itself (one client per endpoint per actor) and sends nothing anywhere while
the episode runs. Its rows go into an in-memory sink; when the episode ends,
the rows and the status changes come back to the driver *together*, as the
result of one actor call, and are handed in their order to the run's sink,
which is the runner's one writer. So:

* ``complete`` is stored only with, or after, every row of the episode (the
  writer's rule), and there is only one SQLite file, the user's, written by
  one process: nothing to merge, nothing held on a worker's disk.
* An actor killed mid-run (its process gone, its node lost) loses only the
  episodes it was running, none of whose rows reached the driver: they are
  run again on a fresh actor (``retries`` times at most), and nothing is
  duplicated.
* Resume is the database's: the runner allocates the episode ids and keys
  before any job is handed out, whichever executor runs them, so a run
  begun with Ray can be finished with the local executor and the reverse.
* Ctrl-C cancels ``map``: every episode in flight is marked ``interrupted``
  and the actors are killed (so no request keeps the server busy); episodes
  that finished are kept.

The scenario file (a job's ``target``) must be readable at the same path on
every node (a shared file system, or Ray's ``runtime_env``).

Example (a local cluster of 2 workers)::

    executor = RayExecutor(address=None, workers=2, episodes_per_worker=64)
    summary = await run_experiment(experiment, "study.db", model, executor=executor,
                                   target="study.py")
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from personae.errors import ConfigError, PersonaeError
from personae.runner.executors.base import ReportOutcome, RunJob
from personae.runner.jobs import EpisodeJob, EpisodeOutcome, ModelEndpoint, RunSink, run_episode
from personae.store.rows import Record, now

__all__ = ["EpisodeBuffer", "EpisodeWorker", "RayExecutor", "hand_over", "portable", "run_sink_of"]

#: How the driver tells an actor process was lost (Ray's exception class names).
_LOST = ("RayActorError", "ActorDiedError", "ActorUnavailableError", "ActorUnschedulableError")


class EpisodeBuffer:
    """A run sink that keeps rows and status changes in order, for handing over later.

    Attributes:
        ops: ``("row", record)`` and ``("update", episode_id, values)`` in the
            order they were handed over.
    """

    def __init__(self) -> None:
        self.ops: list[tuple[Any, ...]] = []

    def add(self, row: Record) -> None:
        """Keep one typed row."""
        self.ops.append(("row", row))

    def update_episode(self, episode_id: int, **values: Any) -> None:
        """Keep one change of an episode row."""
        self.ops.append(("update", episode_id, values))


class EpisodeWorker:
    """What runs in each Ray actor: episodes, with one model client per endpoint.

    Used as ``ray.remote(EpisodeWorker)``; it is plain Python, so it also runs
    (and is tested) without Ray.
    """

    def __init__(self) -> None:
        self._stack = contextlib.AsyncExitStack()
        self._models: dict[ModelEndpoint, Any] = {}
        self._lock: asyncio.Lock | None = None

    async def pid(self) -> int:
        """The worker's process id."""
        import os

        return os.getpid()

    async def run(self, job: EpisodeJob) -> tuple[EpisodeOutcome, list[tuple[Any, ...]]]:
        """Run one job; its outcome and everything it handed to its sink, in order."""
        buffer = EpisodeBuffer()
        model = await self._model_for(job)
        outcome = await run_episode(job, buffer, model=model)
        return outcome, buffer.ops

    async def close(self) -> None:
        """Close the model clients."""
        await self._stack.aclose()
        self._models.clear()

    async def _connect(self, endpoint: ModelEndpoint) -> Any:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if endpoint not in self._models:
                self._models[endpoint] = await self._stack.enter_async_context(endpoint.connect())
        return self._models[endpoint]

    async def _model_for(self, job: EpisodeJob) -> Any:
        from personae.engine.models import Models

        if job.endpoint is None:
            return None  # run_episode says why
        default = await self._connect(job.endpoint)
        if not job.endpoints:
            return default
        named = {name: await self._connect(e) for name, e in job.endpoints.items()}
        return Models(default, named)


def portable(job: EpisodeJob) -> bool:
    """Whether ``job`` can run in another process: a target and served (or fake) endpoints."""
    endpoints = [job.endpoint, *job.endpoints.values()]
    return job.target is not None and all(
        e is not None and e.backend != "in-process" for e in endpoints
    )


def run_sink_of(run: RunJob) -> RunSink | None:
    """The run sink the runner bound into ``run`` (``run_episode`` with ``sink=``), if any."""
    if isinstance(run, functools.partial) and run.func is run_episode:
        sink = run.keywords.get("sink")
        if sink is not None and hasattr(sink, "add") and hasattr(sink, "update_episode"):
            return sink
    return None


class RayExecutor:
    """Runs episode jobs in Ray async actors; their rows reach the run's writer per episode.

    Args:
        address: ``"auto"`` (the cluster this machine belongs to, as ``ray
            start`` made it), ``"HOST:PORT"`` (a cluster's address, or
            ``"ray://HOST:10001"``), or None (a local cluster started for the
            run and stopped after it). When Ray is already initialised in this
            process, that connection is used as is.
        workers: Actors (processes) to start; default: the cluster's CPUs.
        episodes_per_worker: Episodes in flight per actor. A two-party episode
            has at most one request in flight, so ``workers *
            episodes_per_worker`` bounds the requests the servers see.
        num_cpus: CPUs Ray reserves for each actor.
        retries: Times an episode whose actor died is run again on a fresh one
            before it counts as failed.
        run_here: Run jobs that cannot leave this process (an experiment built
            in Python code, or a model object of this process such as a fake)
            here through the runner's ``run``, as the local executor does.
            False (the default) refuses them with a :class:`ConfigError`.
        init_options: More keyword arguments for ``ray.init`` (e.g.
            ``runtime_env``, ``num_cpus`` of a local cluster).

    Attributes:
        actors: The live actor handles (during ``map``).
        redone: Episodes run again because their actor died.
        ran_here: Jobs run in this process (``run_here``).

    Raises:
        ValueError: ``workers``, ``episodes_per_worker`` or ``retries`` out of range.
    """

    def __init__(
        self,
        address: str | None = "auto",
        workers: int | None = None,
        episodes_per_worker: int = 64,
        *,
        num_cpus: float = 1.0,
        retries: int = 3,
        run_here: bool = False,
        init_options: Mapping[str, Any] | None = None,
    ) -> None:
        if workers is not None and workers < 1:
            raise ValueError("workers must be >= 1")
        if episodes_per_worker < 1:
            raise ValueError("episodes_per_worker must be >= 1")
        if retries < 0:
            raise ValueError("retries must be >= 0")
        self.address = address
        self.workers = workers
        self.episodes_per_worker = episodes_per_worker
        self.num_cpus = num_cpus
        self.retries = retries
        self.run_here = run_here
        self.init_options = dict(init_options or {})
        self.actors: list[Any] = []
        self.redone = 0
        self.ran_here = 0
        self._actor_class: Any = None

    async def map(self, jobs: Sequence[EpisodeJob], run: RunJob, report: ReportOutcome) -> None:
        """Run every job and report its outcome; see :class:`~personae.runner.executors.Executor`.

        Raises:
            ConfigError: A job cannot run in a Ray worker and ``run_here`` is
                False, or Ray is not installed or cannot be reached.
            asyncio.CancelledError: ``map`` was cancelled (after marking the
                episodes in flight interrupted).
        """
        sink = run_sink_of(run)
        remote = [job for job in jobs if sink is not None and portable(job)]
        if len(remote) < len(jobs) and not self.run_here:
            job = next(j for j in jobs if sink is None or not portable(j))
            raise ConfigError(_why_not_portable(job, sink is None))
        started = self._init() if remote else False
        try:
            await self._map(jobs, run, report, sink)
        finally:
            self._stop_actors()
            if started:
                import ray

                ray.shutdown()

    async def _map(
        self, jobs: Sequence[EpisodeJob], run: RunJob, report: ReportOutcome, sink: RunSink | None
    ) -> None:
        queue = deque(jobs)
        lanes = self._lanes(sink is not None and any(portable(j) for j in jobs))
        in_flight: dict[int, EpisodeJob] = {}

        async def lane(slot: int) -> None:
            while queue:
                job = queue.popleft()
                in_flight[job.episode_id] = job
                if sink is not None and portable(job):
                    outcome = await self._remote(slot, job, sink)
                else:
                    self.ran_here += 1
                    outcome = await run(job)
                del in_flight[job.episode_id]
                report(outcome)

        tasks = [asyncio.create_task(lane(i), name=f"ray-lane-{i}") for i in range(lanes)]
        try:
            await asyncio.gather(*tasks)
        except asyncio.CancelledError:
            for job in in_flight.values():
                if sink is not None and portable(job):
                    sink.update_episode(job.episode_id, status="interrupted")
            raise
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _lanes(self, remote: bool) -> int:
        """Start the actors (when any job runs remotely); the number of episodes in flight."""
        if not remote:
            return (self.workers or 1) * self.episodes_per_worker
        import ray

        workers = self.workers or max(
            1, int(ray.cluster_resources().get("CPU", 1) // self.num_cpus)
        )
        self.actors = [self._new_actor() for _ in range(workers)]
        return workers * self.episodes_per_worker

    def _new_actor(self) -> Any:
        import ray

        if self._actor_class is None:
            self._actor_class = ray.remote(EpisodeWorker)
        # Two calls more than the episodes, so pid() and close() are answered at once.
        options = {"num_cpus": self.num_cpus, "max_concurrency": self.episodes_per_worker + 2}
        return self._actor_class.options(**options).remote()

    async def _remote(self, slot: int, job: EpisodeJob, sink: RunSink) -> EpisodeOutcome:
        """Run ``job`` on the lane's actor, again on a fresh one if it dies; hand its rows over."""
        worker = slot % len(self.actors)
        # Shown as running meanwhile; the worker's own start time comes with its rows.
        sink.update_episode(job.episode_id, status="running", started_at=now())
        for attempt in range(self.retries + 1):
            actor = self.actors[worker]
            ref = actor.run.remote(job)
            try:
                outcome, ops = await ref
            except asyncio.CancelledError:
                _cancel(ref)
                raise
            except Exception as exc:
                if not _lost(exc):
                    message = f"the Ray worker could not run episode {job.episode_id}: {exc}"
                    sink.update_episode(
                        job.episode_id, status="failed", error=message, finished_at=now()
                    )
                    return EpisodeOutcome(job.episode_id, "failed", message)
                if self.actors[worker] is actor:  # the first lane to see it replaces it
                    self.actors[worker] = self._new_actor()
                if attempt < self.retries:
                    self.redone += 1
                    continue
                message = (
                    f"the Ray worker running episode {job.episode_id} died {attempt + 1} "
                    f"times ({type(exc).__name__}); the episode will be run again by the next run"
                )
                sink.update_episode(
                    job.episode_id, status="failed", error=message, finished_at=now()
                )
                return EpisodeOutcome(job.episode_id, "failed", message)
            return hand_over(outcome, ops, sink)
        raise AssertionError("unreachable")  # pragma: no cover

    def _init(self) -> bool:
        """Connect to (or start) the cluster; whether this executor started it."""
        try:
            import ray
        except ImportError as exc:
            raise ConfigError(
                "the Ray executor needs Ray, which is not installed here; install it with "
                "pip install 'personae[ray]' (on the driver and on every node of the cluster)"
            ) from exc
        if ray.is_initialized():
            return False
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        options |= self.init_options
        try:
            ray.init(address=self.address, **options)
        except ConnectionError as exc:
            raise ConfigError(
                f"no Ray cluster answers at {self.address!r} ({exc}); start one with "
                "`ray start --head` (then --ray-address auto), give its HOST:PORT, or leave "
                "the address out to start a local cluster for this run"
            ) from exc
        return True

    def _stop_actors(self) -> None:
        if not self.actors:
            return
        import ray

        for actor in self.actors:
            with contextlib.suppress(Exception):
                ray.kill(actor, no_restart=True)
        self.actors = []


def hand_over(outcome: EpisodeOutcome, ops: list[tuple[Any, ...]], sink: RunSink) -> EpisodeOutcome:
    """Give the run's sink an episode's rows and status changes, in the order they were made.

    A row the sink refuses (it checks rows at hand-over) fails the episode, as it
    would have in this process; the status changes after it are not applied.

    Args:
        outcome: What the worker reported.
        ops: The worker's :attr:`EpisodeBuffer.ops`.
        sink: The run's sink (the runner's writer).

    Returns:
        ``outcome``, or a ``failed`` one when the sink refused a row.
    """
    for op in ops:
        try:
            if op[0] == "row":
                sink.add(op[1])
            else:
                sink.update_episode(op[1], **op[2])
        except PersonaeError as exc:
            message = str(exc)
            sink.update_episode(
                outcome.episode_id, status="failed", error=message, finished_at=now()
            )
            return dataclasses.replace(outcome, status="failed", error=message, end_reason=None)
    return outcome


def _lost(exc: BaseException) -> bool:
    """Whether ``exc`` says the actor process is gone (not that the episode raised)."""
    return any(kind.__name__ in _LOST for kind in type(exc).__mro__)


def _cancel(ref: Any) -> None:
    import ray

    with contextlib.suppress(Exception):
        ray.cancel(ref)


def _why_not_portable(job: EpisodeJob, no_sink: bool) -> str:
    if no_sink:
        reason = "it was handed no run sink to store the rows in (call it through run_experiment)"
    elif job.target is None:
        reason = (
            "the experiment was built in Python code, so a worker cannot load it; give "
            "run_experiment the target (a built-in name or scenario file)"
        )
    else:
        reason = (
            "its model is an object of this process (a fake, or an in-process backend), "
            "which a worker cannot rebuild; serve it (e.g. vLLM) and pass its URL"
        )
    return (
        f"episode {job.episode_id} cannot run in a Ray worker: {reason}. Run it with the "
        "local executor (--executor local), or give RayExecutor run_here=True to run such "
        "jobs in this process."
    )
