"""Running an experiment: resume bookkeeping, concurrent episodes, the writer, Ctrl-C.

Re-running the same experiment (same configuration and model) against the
same database skips episodes already complete, wipes and redoes the rest, and
duplicates nothing. On Ctrl-C the episodes in flight are cancelled, every
completed episode is committed, and the summary says how many are left.

The runner owns the books; episodes run elsewhere. It allocates the episode
rows (and so every row id, :mod:`personae.store.ids`), turns what is left to
do into :class:`~personae.runner.jobs.EpisodeJob` s, hands them to an
:class:`~personae.runner.executors.Executor`, and counts turns, calls and
tokens from the typed rows its sink sees and from the outcomes reported.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from personae.engine.models import Models, as_models
from personae.errors import StoreError
from personae.llm.base import ChatModel
from personae.llm.endpoints import DEFAULT_ENDPOINT, Endpoint
from personae.llm.wrappers import DEFAULT_SERVER_WAIT, DEFAULT_TIMEOUT
from personae.runner.blocking import NewDatabase, run_coroutine
from personae.runner.executors import Executor, LocalExecutor
from personae.runner.experiment import EpisodeSpec, Experiment
from personae.runner.jobs import (
    EpisodeJob,
    EpisodeOutcome,
    ModelEndpoint,
    RowTally,
    describe_scenario_error,
    run_episode,
    scenario_identity,
)
from personae.runner.progress import RunCounters, experiment_progress
from personae.runner.replay import (
    DEFAULT_REPLAY,
    check_replay,
    prefix_caching_for,
    replay_for,
    resolve_replay,
    warn_replay,
)
from personae.runner.summary import RunSummary
from personae.runner.waits import announce_waits, outage_of, request_limit, waiting_status
from personae.store.database import Database
from personae.store.rows import LLMCallRecord, Record
from personae.store.runlock import RunLock
from personae.store.writer import DEFAULT_WRITE_WAIT, Writer

__all__ = [
    "RunSummary",
    "completed_episodes",
    "describe_scenario_error",
    "run_experiment",
    "run_sync",
    "used_endpoints",
]


class _CountingSink:
    """The run's writer, seen through: counts the typed rows of every episode as they pass.

    The live counters feed the progress bar; the tally per episode lets an
    outcome add only what the sink did not see (all of it, for an episode run
    elsewhere).
    """

    def __init__(self, writer: Writer, counters: RunCounters) -> None:
        self.writer = writer
        self.counters = counters
        self.seen: dict[int, RowTally] = {}
        self.by_endpoint: Counter[str] = Counter()
        self.by_replica: Counter[str] = Counter()

    def add(self, row: Record) -> None:
        self.writer.add(row)
        self.counters.see(row)
        if isinstance(row, LLMCallRecord) and row.error is None:
            self.by_endpoint[row.endpoint or DEFAULT_ENDPOINT] += 1
            if row.replica:
                self.by_replica[row.replica] += 1
        tally = self.seen.get(row.episode_id)
        if tally is None:
            tally = self.seen[row.episode_id] = RowTally()
        tally.see(row)

    def update_episode(self, episode_id: int, **values: Any) -> None:
        self.writer.update_episode(episode_id, **values)


def _code_version() -> str:
    from personae import __version__

    return __version__


@dataclass
class _Plan:
    """Which episodes of an experiment a database holds, and what is left to run."""

    experiment_id: int | None
    stored: dict[tuple[str, int], tuple[int, int, str]]
    done: set[tuple[str, int]]

    def todo(self, specs: list[EpisodeSpec]) -> list[EpisodeSpec]:
        return [s for s in specs if (s.key, s.replicate) not in self.done]

    def indices(self) -> dict[str, int]:
        """``param_index`` of each stored parameter set: a grown grid keeps them."""
        return {key: index for (key, _), (_, index, _) in self.stored.items()}


def _plan(database: Database, experiment_id: int | None) -> _Plan:
    stored = database.episodes_by_key(experiment_id) if experiment_id is not None else {}
    done = {k for k, (_, _, status) in stored.items() if status == "complete"}
    return _Plan(experiment_id, stored, done)


def _new_episode_rows(plan: _Plan, specs: list[EpisodeSpec]) -> list[dict[str, Any]]:
    """Rows for the episodes not stored yet."""
    return [
        {
            "param_index": spec.param_index,
            "replicate": spec.replicate,
            "params": spec.params,
            "seed": spec.seed,
            "key": spec.key,
        }
        for spec in specs
        if (spec.key, spec.replicate) not in plan.stored
    ]


async def run_experiment(
    experiment: Experiment,
    db: str | Path,
    model: ChatModel | Models,
    *,
    executor: Executor | None = None,
    max_episodes: int | None = None,
    progress: bool = False,
    console: Console | None = None,
    server_info: dict[str, Any] | None = None,
    write_wait: float = DEFAULT_WRITE_WAIT,
    lock: bool = True,
    target: str | None = None,
    replay: str | None = None,
) -> RunSummary:
    """Run every episode of ``experiment`` not yet complete in ``db``.

    Only one run at a time may write a database: a second one raises
    :class:`~personae.errors.StoreError` naming the process that holds it.
    Complete episodes whose rows are not all in the file (a write that failed
    in an earlier run) are reset and run again, and the console says which.

    Args:
        experiment: What to run.
        db: The SQLite file (created if missing).
        model: The ChatModel shared by all episodes (bound its requests in
            flight with :class:`~personae.llm.wrappers.ConcurrencyLimitedModel`),
            or the run's :class:`~personae.engine.models.Models` by endpoint name.
        executor: Where episodes run (default: :class:`LocalExecutor`).
        max_episodes: Episodes in flight for the default executor (default:
            4 x the model's request limit, at least 64).
        progress: Show a progress bar.
        console: Where the bar and notices go.
        server_info: Identity of the serving software, stored with the experiment.
        write_wait: Seconds a commit waits for a database locked by another
            program before the episodes in it are given up.
        lock: Take the database's run lock (:class:`~personae.store.runlock.RunLock`);
            False only when the caller holds it already.
        target: The built-in name or scenario file ``experiment`` was loaded
            from, put in every job so an executor can load it elsewhere
            (:class:`~personae.runner.jobs.EpisodeJob`).
        replay: The replay mode to record with the experiment (``exact`` or
            ``fast``, see :mod:`personae.runner.replay`); None: the one it was
            run in before, else ``exact``. It does not configure ``model``: the
            caller starts the server to match (:func:`run_sync` does).

    Returns:
        A :class:`RunSummary`; ``interrupted`` is true after Ctrl-C.

    Raises:
        StoreError: The database is foreign, unusable, or held by another run.
        ConfigError: ``replay`` differs from the mode the experiment was run in.
    """
    if replay is not None:
        check_replay(replay)
    say = (console or Console(stderr=True)).print
    new = NewDatabase(db)
    try:
        database = await asyncio.to_thread(Database, db)
    except BaseException:
        new.discard()
        raise
    run_lock = RunLock(db)
    try:
        if lock:
            run_lock.acquire()
    except StoreError:
        database.close()
        raise
    try:
        return await _run_locked(
            experiment,
            database,
            model,
            executor=executor,
            max_episodes=max_episodes,
            progress=progress,
            console=console,
            say=say,
            server_info=server_info,
            write_wait=write_wait,
            target=target,
            replay=replay,
        )
    except BaseException:
        # Failed before its first episode (or in it): a file this run made and
        # put no episode into is removed. Synchronous on purpose: a cancelled
        # task may not await its clean-up.
        database.close()
        new.discard()
        raise
    finally:
        run_lock.release()


async def _run_locked(
    experiment: Experiment,
    database: Database,
    model: ChatModel | Models,
    *,
    executor: Executor | None,
    max_episodes: int | None,
    progress: bool,
    console: Console | None,
    say: Any,
    server_info: dict[str, Any] | None,
    write_wait: float,
    target: str | None,
    replay: str | None,
) -> RunSummary:
    models = as_models(model)
    model = models.default
    model_name = getattr(model, "name", None)
    used = used_endpoints(experiment, models)
    identity = experiment.identity(model_name, used)
    mode = replay_for(database, identity, replay, experiment.label)
    warn_replay(mode, server_info, say)
    experiment_id = database.ensure_experiment(
        name=experiment.label,
        scenario=experiment.scenario.name,
        config={**experiment.config(), **experiment.extent()},
        config_hash=identity,
        seed=experiment.seed,
        model=model_name,
        server_info=server_info,
        code_version=_code_version(),
        replay=mode,
    )
    begun_with = database.code_version(experiment_id)
    if begun_with and begun_with != _code_version():
        say(
            f"[yellow]This experiment was begun with personae {begun_with}[/]; episodes run "
            f"now use {_code_version()}, whose prompts or loops may differ. Start a new "
            "database to keep one version per experiment.",
            highlight=False,
        )
    broken = database.incomplete_rows(experiment_id)
    if broken:
        shown = "; ".join(f"episode {i}: {why}" for i, why in list(broken.items())[:5])
        more = f" (and {len(broken) - 5} more)" if len(broken) > 5 else ""
        say(
            f"[yellow]{len(broken)} episode(s) marked complete are missing rows and will be "
            f"run again[/]: {shown}{more}.",
            highlight=False,
        )
    plan = _plan(database, experiment_id)
    specs = experiment.episodes(indices=plan.indices())
    unfinished = [i for (i, _, status) in plan.stored.values() if status != "complete"]
    database.reset_episodes([*unfinished, *broken])
    database.create_episodes(experiment_id, _new_episode_rows(plan, specs))
    plan = _plan(database, experiment_id)
    ids = {key: i for key, (i, _, _) in plan.stored.items()}
    todo = plan.todo(specs)
    done = len(specs) - len(todo)
    summary = RunSummary(str(database.path), experiment_id, total=len(specs), already_complete=done)
    summary.replay = mode
    summary.reset_incomplete = len(broken)
    if executor is None:
        limit = request_limit(model)
        executor = LocalExecutor(
            max_episodes or max(64, 4 * limit) if limit else (max_episodes or 1024)
        )

    writer = Writer(database, write_wait=write_wait)
    outage = outage_of(model)
    counters = RunCounters(status=lambda: waiting_status(outage, writer))
    sink = _CountingSink(writer, counters)
    await writer.start()
    bar = experiment_progress(counters, enabled=progress, console=console)
    task_id = bar.add_task(experiment.label, total=len(specs), completed=done)
    jobs = _jobs(experiment, todo, ids, models, target)
    run = functools.partial(
        run_episode, sink=sink, model=models if used else model, experiment=experiment
    )

    def report(outcome: EpisodeOutcome) -> None:
        _account(summary, counters, sink.seen.pop(outcome.episode_id, None), outcome)
        bar.advance(task_id)

    started = time.perf_counter()
    announce = bar.console.print if progress else say  # above a live bar, through its console
    announcer = asyncio.create_task(announce_waits(outage, writer, announce))
    try:
        with bar:
            await _map(executor, jobs, run, report)
    except asyncio.CancelledError:
        summary.interrupted = True
    finally:
        announcer.cancel()
        await asyncio.gather(announcer, return_exceptions=True)
        summary.elapsed_s = time.perf_counter() - started
        summary.turns, summary.calls = counters.turns, counters.calls
        summary.completion_tokens = counters.completion_tokens
        await writer.close()
        _count_lost(summary, writer)
        if outage is not None:
            summary.server_outages, summary.server_wait_s = outage.outages, outage.waited_s
        summary.lock_waits = writer.lock_waits
        summary.calls_by_endpoint = dict(sorted(sink.by_endpoint.items()))
        summary.calls_by_replica = dict(sorted(sink.by_replica.items()))
        summary.prompt_tokens, summary.cached_tokens = (
            counters.prompt_tokens,
            counters.cached_tokens,
        )
        await asyncio.to_thread(database.close)
    return summary


def _jobs(
    experiment: Experiment,
    todo: list[EpisodeSpec],
    ids: dict[tuple[str, int], int],
    models: Models,
    target: str | None,
) -> list[EpisodeJob]:
    """One picklable job per episode to run; a target file is named by its absolute path."""
    if target is not None and target.endswith(".py"):
        target = str(Path(target).resolve())
    endpoint = ModelEndpoint.of(models.default)
    named = {
        name: models.portable.get(name) or ModelEndpoint.of(model)
        for name, model in models.items()
        if name != DEFAULT_ENDPOINT
    }
    identity = scenario_identity(experiment) if target is not None else None
    return [
        EpisodeJob(target, spec, ids[(spec.key, spec.replicate)], endpoint, identity, named)
        for spec in todo
    ]


def used_endpoints(experiment: Experiment, models: Models) -> dict[str, str | None]:
    """The models of the named endpoints ``experiment`` binds anyone to, by name.

    Raises:
        ConfigError: A binding or grid value names an endpoint ``models`` lacks.
    """
    served = models.model_names()
    used = {}
    for name in experiment.endpoint_names():
        models.get(name)  # an unknown name fails here, before any episode
        used[name] = served[name]
    return used


def _account(
    summary: RunSummary, counters: RunCounters, seen: RowTally | None, outcome: EpisodeOutcome
) -> None:
    """Book one outcome: complete or failed, and the rows the sink did not see go by."""
    seen = seen or RowTally()
    counters.turns += outcome.turns - seen.turns
    counters.calls += outcome.calls - seen.calls
    counters.completion_tokens += outcome.completion_tokens - seen.completion_tokens
    counters.prompt_tokens += outcome.prompt_tokens - seen.prompt_tokens
    if outcome.cached_tokens is not None:
        unseen = outcome.cached_tokens - (seen.cached_tokens or 0)
        counters.cached_tokens = (counters.cached_tokens or 0) + unseen
    if outcome.status == "complete":
        summary.completed += 1
        summary.completed_ids.append(outcome.episode_id)
    elif outcome.status == "failed":
        summary.failed += 1
        if len(summary.errors) < 5 and outcome.error:
            summary.errors.append(outcome.error)


async def _map(executor: Any, jobs: Sequence[EpisodeJob], run: Any, report: Any) -> None:
    """``executor.map(jobs, run, report)``; a 0.2 executor's ``map(specs, run_one)`` too."""
    if len(inspect.signature(executor.map).parameters) != 2:
        await executor.map(jobs, run, report)
        return
    warnings.warn(
        f"{type(executor).__name__}.map(specs, run_one) is the executor protocol of 0.2; "
        "implement map(jobs, run, report) (personae.runner.executors.Executor) before 0.4",
        DeprecationWarning,
        stacklevel=3,
    )
    by_spec = {(job.spec.key, job.spec.replicate): job for job in jobs}

    async def run_one(spec: EpisodeSpec) -> None:
        report(await run(by_spec[(spec.key, spec.replicate)]))

    await executor.map([job.spec for job in jobs], run_one)


def completed_episodes(experiment: Experiment, db: str | Path, model_name: str | None) -> int:
    """How many of the experiment's episodes ``db`` already holds as complete."""
    database = Database(db)
    try:
        plan = _plan(database, database.find_experiment(experiment.identity(model_name)))
        specs = experiment.episodes()
        return len(specs) - len(plan.todo(specs))
    finally:
        database.close()


def _count_lost(summary: RunSummary, writer: Writer) -> None:
    """Episodes counted complete whose rows the writer could not store are failed after all."""
    lost = set(writer.lost)
    for episode_id in summary.completed_ids:
        if episode_id in lost:
            summary.completed -= 1
            summary.failed += 1
    summary.lost = dict(writer.lost)
    for message in writer.lost.values():
        if len(summary.errors) < 5 and message not in summary.errors:
            summary.errors.append(message)


def run_sync(
    experiment: Experiment,
    db: str | Path,
    model: ChatModel | None = None,
    *,
    base_url: str | None = None,
    model_name: str | None = None,
    max_in_flight: int = 64,
    console: Console | None = None,
    server_log: str | Path | None = None,
    prefix_caching: bool = False,
    replay: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = 5,
    server_wait: float = DEFAULT_SERVER_WAIT,
    endpoints: Sequence[Endpoint] = (),
    backend: str | None = None,
    **options: Any,
) -> RunSummary:
    """Run an experiment from synchronous code, starting a server if none is given.

    With ``model`` given it is used as is. Otherwise ``base_url`` names an
    OpenAI-compatible server (``model_name`` defaults to the first model it
    serves); with neither, the embedded vLLM server is started for this run
    (watched, and restarted if it dies) and stopped afterwards.

    Inside a running event loop (a Jupyter cell) the run gets a thread with
    its own loop, and Ctrl-C ("interrupt kernel") stops it as in a terminal
    (see :mod:`personae.runner.blocking`). A database file this call creates
    is removed again if the run fails before any episode starts.

    Args:
        replay: ``exact`` or ``fast`` (:mod:`personae.runner.replay`); None: the
            mode the experiment was run in before, else ``exact``. An embedded
            server started here has its prefix cache on in ``fast`` mode.
        prefix_caching: Deprecated spelling of ``replay="fast"`` (until 0.4).
        timeout: Seconds one request may take before it is abandoned and sent again.
        retries: Retries of a request after an ordinary retryable error.
        server_wait: Seconds the run waits out a server that cannot be reached
            before the episodes waiting on it fail.
        backend: The registered model backend to open for the default endpoint
            (see :func:`personae.llm.backends.backend_names`; default: ``openai``
            with ``base_url``, else ``embedded``).
        endpoints: Named endpoints besides the default (see
            :mod:`personae.llm.endpoints`); the scenario's bindings say who uses which.
        **options: Passed to :func:`run_experiment`.
    """
    from personae.runner.endpoints import connected_models

    new = NewDatabase(db)
    try:
        # Refuse a foreign, broken or busy database before a server is started for
        # nothing, and start none at all when every episode is already complete.
        Database(db).close()
        lock = RunLock(db).acquire()
        try:
            if prefix_caching:
                warnings.warn(
                    "run_sync(prefix_caching=True) is deprecated; pass replay='fast' (until 0.4)",
                    DeprecationWarning,
                    stacklevel=2,
                )
                replay = replay or "fast"
            mode = check_replay(replay) if replay is not None else DEFAULT_REPLAY
            if model is None and base_url is None and backend in (None, "embedded"):
                from personae.llm.server import DEFAULT_SERVED_MODEL_NAME

                # The server is started in the experiment's mode: the one recorded
                # when none is asked for (a conflicting one is refused here).
                mode = resolve_replay(experiment, db, DEFAULT_SERVED_MODEL_NAME, replay)
                done = completed_episodes(experiment, db, DEFAULT_SERVED_MODEL_NAME)
                total = len(experiment.episodes())
                if done == total:
                    return RunSummary(str(db), -1, total=total, already_complete=done)

            async def main() -> RunSummary:
                async with connected_models(
                    model,
                    endpoints=endpoints,
                    backend=backend,
                    base_url=base_url,
                    model_name=model_name,
                    max_in_flight=max_in_flight,
                    console=console,
                    server_log=server_log,
                    prefix_caching=prefix_caching or prefix_caching_for(mode),
                    timeout=timeout,
                    retries=retries,
                    server_wait=server_wait,
                ) as (chat, info):
                    return await run_experiment(
                        experiment,
                        db,
                        chat,
                        console=console,
                        server_info=info,
                        lock=False,
                        replay=replay,
                        **options,
                    )

            return run_coroutine(main)
        finally:
            lock.release()
    except BaseException:
        new.discard()
        raise
