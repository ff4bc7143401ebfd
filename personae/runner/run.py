"""Running an experiment: resume bookkeeping, concurrent episodes, the writer, Ctrl-C.

Re-running the same experiment (same configuration and model) against the
same database skips episodes already complete, wipes and redoes the rest, and
duplicates nothing. On Ctrl-C the episodes in flight are cancelled, every
completed episode is committed, and the summary says how many are left.
"""

from __future__ import annotations

import asyncio
import json
import sys
import sysconfig
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from personae.errors import ModelError, PersonaeError, StoreError
from personae.llm.base import ChatModel
from personae.llm.outage import ServerOutage
from personae.llm.wrappers import DEFAULT_SERVER_WAIT, DEFAULT_TIMEOUT
from personae.runner.executor import Executor, LocalExecutor
from personae.runner.experiment import EpisodeSpec, Experiment
from personae.runner.progress import RunCounters, experiment_progress
from personae.scenarios.log import WriterLog
from personae.store.database import Database, now
from personae.store.runlock import RunLock
from personae.store.writer import DEFAULT_WRITE_WAIT, Writer

_PACKAGE_DIR = Path(__file__).resolve().parents[1]
_STDLIB_PREFIXES = tuple(
    {sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"], sys.base_prefix}
)


@dataclass
class RunSummary:
    """What a run did.

    Attributes:
        reset_incomplete: Episodes found complete but missing rows, run again.
        lost: Episode id -> why its rows could not be stored (those episodes
            count as failed and are run again by the next run).
        server_outages: Times the server could not be reached and was waited out.
        server_wait_s: Seconds spent waiting for it.
        lock_waits: Commits that found the database locked by another program.
    """

    db: str
    experiment_id: int
    total: int
    already_complete: int = 0
    completed: int = 0
    failed: int = 0
    interrupted: bool = False
    turns: int = 0
    calls: int = 0
    completion_tokens: int = 0
    elapsed_s: float = 0.0
    errors: list[str] = field(default_factory=list)
    reset_incomplete: int = 0
    lost: dict[int, str] = field(default_factory=dict)
    completed_ids: list[int] = field(default_factory=list, repr=False)
    server_outages: int = 0
    server_wait_s: float = 0.0
    lock_waits: int = 0

    @property
    def complete(self) -> int:
        """Episodes complete in the database after this run."""
        return self.already_complete + self.completed

    @property
    def remaining(self) -> int:
        return self.total - self.complete

    @property
    def turns_per_s(self) -> float:
        return self.turns / self.elapsed_s if self.elapsed_s else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.elapsed_s if self.elapsed_s else 0.0


class _CountingLog(WriterLog):
    def __init__(self, writer: Writer, episode_id: int, counters: RunCounters) -> None:
        super().__init__(writer, episode_id)
        self.counters = counters

    def add(self, table: str, row: dict[str, Any]) -> None:
        super().add(table, row)
        if table == "turns":
            self.counters.turns += 1
        elif table == "llm_calls":
            self.counters.calls += 1
            self.counters.completion_tokens += row.get("completion_tokens") or 0


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
    model: ChatModel,
    *,
    executor: Executor | None = None,
    max_episodes: int | None = None,
    progress: bool = False,
    console: Console | None = None,
    server_info: dict[str, Any] | None = None,
    write_wait: float = DEFAULT_WRITE_WAIT,
    lock: bool = True,
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
            flight with :class:`~personae.llm.wrappers.ConcurrencyLimitedModel`).
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

    Returns:
        A :class:`RunSummary`; ``interrupted`` is true after Ctrl-C.

    Raises:
        StoreError: The database is foreign, unusable, or held by another run.
    """
    say = (console or Console(stderr=True)).print
    database = await asyncio.to_thread(Database, db)
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
        )
    finally:
        run_lock.release()


async def _run_locked(
    experiment: Experiment,
    database: Database,
    model: ChatModel,
    *,
    executor: Executor | None,
    max_episodes: int | None,
    progress: bool,
    console: Console | None,
    say: Any,
    server_info: dict[str, Any] | None,
    write_wait: float,
) -> RunSummary:
    model_name = getattr(model, "name", None)
    experiment_id = database.ensure_experiment(
        name=experiment.label,
        scenario=experiment.scenario.name,
        config={**experiment.config(), **experiment.extent()},
        config_hash=experiment.identity(model_name),
        seed=experiment.seed,
        model=model_name,
        server_info=server_info,
        code_version=_code_version(),
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
    summary.reset_incomplete = len(broken)
    if executor is None:
        limit = _request_limit(model)
        executor = LocalExecutor(
            max_episodes or max(64, 4 * limit) if limit else (max_episodes or 1024)
        )

    writer = Writer(database, write_wait=write_wait)
    outage = _outage(model)
    counters = RunCounters(status=lambda: _waiting(outage, writer))
    await writer.start()
    bar = experiment_progress(counters, enabled=progress, console=console)
    task_id = bar.add_task(experiment.label, total=len(specs), completed=done)

    async def run_one(spec: EpisodeSpec) -> None:
        episode_id = ids[(spec.key, spec.replicate)]
        writer.update_episode(episode_id, status="running", started_at=now())
        log = _CountingLog(writer, episode_id, counters)
        try:
            scenario = experiment.prepare(spec.params)
            episode = scenario.new_episode(model, seed=spec.seed, log=log)
            result = await episode.run()
        except asyncio.CancelledError:
            writer.update_episode(episode_id, status="interrupted")
            raise
        except (ModelError, PersonaeError) as exc:
            _fail(writer, summary, episode_id, str(exc))
        except Exception as exc:  # a bug in scenario code must not stop other episodes
            _fail(writer, summary, episode_id, describe_scenario_error(exc))
        else:
            drawn = {"params_json": _params_json({**spec.params, **episode.drawn})}
            writer.update_episode(
                episode_id,
                status="complete",
                n_turns=len(result.transcript),
                end_reason=result.end_reason,
                finished_at=now(),
                row_counts=json.dumps(dict(log.counts), sort_keys=True),
                **(drawn if episode.drawn else {}),
            )
            summary.completed += 1
            summary.completed_ids.append(episode_id)
        finally:
            bar.advance(task_id)

    started = time.perf_counter()
    announce = bar.console.print if progress else say  # above a live bar, through its console
    announcer = asyncio.create_task(_announce_waits(outage, writer, announce))
    try:
        with bar:
            await executor.map(todo, run_one)
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
        await asyncio.to_thread(database.close)
    return summary


def completed_episodes(experiment: Experiment, db: str | Path, model_name: str | None) -> int:
    """How many of the experiment's episodes ``db`` already holds as complete."""
    database = Database(db)
    try:
        plan = _plan(database, database.find_experiment(experiment.identity(model_name)))
        specs = experiment.episodes()
        return len(specs) - len(plan.todo(specs))
    finally:
        database.close()


def _fail(writer: Writer, summary: RunSummary, episode_id: int, message: str) -> None:
    writer.update_episode(episode_id, status="failed", error=message, finished_at=now())
    summary.failed += 1
    if len(summary.errors) < 5:
        summary.errors.append(message)


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


def describe_scenario_error(exc: BaseException) -> str:
    """``"KeyError: 'x' (in scenario code at /path/mine.py:12, in cue)"`` for an episode's error.

    The place named is the innermost frame outside personae and the libraries
    it runs on; when there is none, the innermost frame (a personae bug).
    """
    detail = "".join(traceback.format_exception_only(exc)).strip()
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return f"{detail} (in scenario code)"
    ours = [f for f in frames if not _is_library(f.filename)]
    frame = ours[-1] if ours else frames[-1]
    where = "scenario code" if ours else "personae"
    return f"{detail} (in {where} at {frame.filename}:{frame.lineno}, in {frame.name})"


def _is_library(filename: str) -> bool:
    path = Path(filename)
    if _PACKAGE_DIR in path.parents:
        return True
    return any(part in {"site-packages", "dist-packages"} for part in path.parts) or any(
        str(path).startswith(prefix) for prefix in _STDLIB_PREFIXES
    )


def _outage(model: ChatModel) -> ServerOutage | None:
    from personae.llm.wrappers import RetryingModel, find_layer

    layer = find_layer(model, RetryingModel)
    return layer.outage if layer is not None else None


async def _announce_waits(
    outage: ServerOutage | None, writer: Writer, say: Any, interval: float = 1.0
) -> None:
    """Print a line when the run starts and stops waiting for the server or the database.

    The progress bar shows the wait too, but a narrow terminal can cut it off;
    a printed line stays in the scrollback with its time.
    """
    server_down = locked = False
    while True:
        await asyncio.sleep(interval)
        if outage is not None and outage.down != server_down:
            server_down = outage.down
            if server_down:
                say(
                    f"[yellow]{outage.describe().capitalize()}: {outage.last_error}. "
                    f"Requests wait up to {outage.server_wait:g} s (--server-wait).[/]",
                    highlight=False,
                )
            else:
                say("[green]The server answers again; the run goes on.[/]")
        if (writer.locked_since is not None) != locked:
            locked = not locked
            if locked:
                say(f"[yellow]{writer.describe_wait().capitalize()}.[/]", highlight=False)
            else:
                say("[green]The database accepts writes again.[/]")


def _waiting(outage: ServerOutage | None, writer: Writer) -> str:
    """What the run waits for, short enough for the progress bar ("" when nothing)."""
    parts = []
    if outage is not None and outage.down:
        parts.append(f"server down {outage.server_wait - outage.remaining():.0f} s")
    if writer.locked_since is not None:
        parts.append(f"database locked {time.time() - writer.locked_since:.0f} s")
    return ", ".join(parts)


def _request_limit(model: ChatModel) -> int | None:
    from personae.llm.wrappers import ConcurrencyLimitedModel, find_layer

    layer = find_layer(model, ConcurrencyLimitedModel)
    return layer.max_in_flight if layer is not None else None


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
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = 5,
    server_wait: float = DEFAULT_SERVER_WAIT,
    **options: Any,
) -> RunSummary:
    """Run an experiment from synchronous code, starting a server if none is given.

    With ``model`` given it is used as is. Otherwise ``base_url`` names an
    OpenAI-compatible server (``model_name`` defaults to the first model it
    serves); with neither, the embedded vLLM server is started for this run
    (watched, and restarted if it dies) and stopped afterwards.

    Args:
        timeout: Seconds one request may take before it is abandoned and sent again.
        retries: Retries of a request after an ordinary retryable error.
        server_wait: Seconds the run waits out a server that cannot be reached
            before the episodes waiting on it fail.
        **options: Passed to :func:`run_experiment`.
    """
    from personae.llm.connect import connected_model

    # Refuse a foreign, broken or busy database before a server is started for
    # nothing, and start none at all when every episode is already complete.
    Database(db).close()
    lock = RunLock(db).acquire()
    try:
        if model is None and base_url is None:
            from personae.llm.server import DEFAULT_SERVED_MODEL_NAME

            done = completed_episodes(experiment, db, DEFAULT_SERVED_MODEL_NAME)
            total = len(experiment.episodes())
            if done == total:
                return RunSummary(str(db), -1, total=total, already_complete=done)

        async def main() -> RunSummary:
            async with connected_model(
                model,
                base_url=base_url,
                model_name=model_name,
                max_in_flight=max_in_flight,
                console=console,
                server_log=server_log,
                prefix_caching=prefix_caching,
                timeout=timeout,
                retries=retries,
                server_wait=server_wait,
            ) as (chat, info):
                return await run_experiment(
                    experiment, db, chat, console=console, server_info=info, lock=False, **options
                )

        return asyncio.run(main())
    finally:
        lock.release()


def _params_json(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=str)
