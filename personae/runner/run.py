"""Running an experiment: resume bookkeeping, concurrent episodes, the writer, Ctrl-C.

Re-running the same experiment (same configuration and model) against the
same database skips episodes already complete, wipes and redoes the rest, and
duplicates nothing. On Ctrl-C the episodes in flight are cancelled, every
completed episode is committed, and the summary says how many are left.
"""

from __future__ import annotations

import asyncio
import json
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from personae.errors import ModelError, PersonaeError
from personae.llm.base import ChatModel
from personae.runner.executor import Executor, LocalExecutor
from personae.runner.experiment import EpisodeSpec, Experiment
from personae.runner.progress import RunCounters, experiment_progress
from personae.scenarios.log import WriterLog
from personae.store.database import Database, now
from personae.store.writer import Writer


@dataclass
class RunSummary:
    """What a run did."""

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
        if table == "turns":
            self.counters.turns += 1
        elif table == "llm_calls":
            self.counters.calls += 1
            self.counters.completion_tokens += row.get("completion_tokens") or 0
        super().add(table, row)


def _code_version() -> str:
    from personae import __version__

    return __version__


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
) -> RunSummary:
    """Run every episode of ``experiment`` not yet complete in ``db``.

    Args:
        experiment: What to run.
        db: The SQLite file (created if missing).
        model: The ChatModel shared by all episodes (bound its requests in
            flight with :class:`~personae.llm.wrappers.ConcurrencyLimitedModel`).
        executor: Where episodes run (default: :class:`LocalExecutor`).
        max_episodes: Episodes in flight for the default executor (default:
            4 x the model's request limit, at least 64).
        progress: Show a progress bar.
        console: Where the bar goes.
        server_info: Identity of the serving software, stored with the experiment.

    Returns:
        A :class:`RunSummary`; ``interrupted`` is true after Ctrl-C.
    """
    database = await asyncio.to_thread(Database, db)
    model_name = getattr(model, "name", None)
    experiment_id = database.ensure_experiment(
        name=experiment.label,
        scenario=experiment.scenario.name,
        config=experiment.config(),
        config_hash=experiment.config_hash(model_name),
        seed=experiment.seed,
        model=model_name,
        server_info=server_info,
        code_version=_code_version(),
    )
    specs = experiment.episodes()
    statuses = database.episode_statuses(experiment_id)
    done = {k for k, (_, status) in statuses.items() if status == "complete"}
    database.reset_episodes(i for k, (i, status) in statuses.items() if status != "complete")
    database.create_episodes(
        experiment_id,
        [
            {
                "param_index": s.param_index,
                "replicate": s.replicate,
                "params": s.params,
                "seed": s.seed,
            }
            for s in specs
            if (s.param_index, s.replicate) not in statuses
        ],
    )
    ids = {k: i for k, (i, _) in database.episode_statuses(experiment_id).items()}
    todo = [s for s in specs if (s.param_index, s.replicate) not in done]
    summary = RunSummary(str(db), experiment_id, total=len(specs), already_complete=len(done))
    if executor is None:
        limit = _request_limit(model)
        executor = LocalExecutor(
            max_episodes or max(64, 4 * limit) if limit else (max_episodes or 1024)
        )

    counters = RunCounters()
    writer = Writer(database)
    await writer.start()
    bar = experiment_progress(counters, enabled=progress, console=console)
    task_id = bar.add_task(experiment.label, total=len(specs), completed=len(done))

    async def run_one(spec: EpisodeSpec) -> None:
        episode_id = ids[(spec.param_index, spec.replicate)]
        writer.update_episode(episode_id, status="running", started_at=now())
        try:
            scenario = experiment.scenario.with_params(spec.params)
            episode = scenario.new_episode(
                model, seed=spec.seed, log=_CountingLog(writer, episode_id, counters)
            )
            result = await episode.run()
        except asyncio.CancelledError:
            writer.update_episode(episode_id, status="interrupted")
            raise
        except (ModelError, PersonaeError) as exc:
            _fail(writer, summary, episode_id, str(exc))
        except Exception as exc:  # a bug in scenario code must not stop other episodes
            detail = "".join(traceback.format_exception_only(exc)).strip()
            _fail(writer, summary, episode_id, f"{detail} (in scenario code)")
        else:
            drawn = {"params_json": _params_json({**spec.params, **episode.drawn})}
            writer.update_episode(
                episode_id,
                status="complete",
                n_turns=len(result.transcript),
                end_reason=result.end_reason,
                finished_at=now(),
                **(drawn if episode.drawn else {}),
            )
            summary.completed += 1
        finally:
            bar.advance(task_id)

    started = time.perf_counter()
    try:
        with bar:
            await executor.map(todo, run_one)
    except asyncio.CancelledError:
        summary.interrupted = True
    finally:
        summary.elapsed_s = time.perf_counter() - started
        summary.turns, summary.calls = counters.turns, counters.calls
        summary.completion_tokens = counters.completion_tokens
        await writer.close()
        await asyncio.to_thread(database.close)
    return summary


def completed_episodes(experiment: Experiment, db: str | Path, model_name: str | None) -> int:
    """How many of the experiment's episodes ``db`` already holds as complete."""
    database = Database(db)
    try:
        found = database.find_experiment(experiment.config_hash(model_name))
        if found is None:
            return 0
        statuses = database.episode_statuses(found)
        return sum(status == "complete" for _, status in statuses.values())
    finally:
        database.close()


def _fail(writer: Writer, summary: RunSummary, episode_id: int, message: str) -> None:
    writer.update_episode(episode_id, status="failed", error=message, finished_at=now())
    summary.failed += 1
    if len(summary.errors) < 5:
        summary.errors.append(message)


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
    **options: Any,
) -> RunSummary:
    """Run an experiment from synchronous code, starting a server if none is given.

    With ``model`` given it is used as is. Otherwise ``base_url`` names an
    OpenAI-compatible server (``model_name`` defaults to the first model it
    serves); with neither, the embedded vLLM server is started for this run
    and stopped afterwards.
    """
    from personae.llm.connect import connected_model

    # Refuse a foreign or broken database before a server is started for nothing,
    # and start none at all when every episode is already complete.
    if model is None and base_url is None:
        from personae.llm.server import DEFAULT_SERVED_MODEL_NAME

        done = completed_episodes(experiment, db, DEFAULT_SERVED_MODEL_NAME)
        total = len(experiment.episodes())
        if done == total:
            return RunSummary(str(db), -1, total=total, already_complete=done)
    else:
        Database(db).close()

    async def main() -> RunSummary:
        async with connected_model(
            model,
            base_url=base_url,
            model_name=model_name,
            max_in_flight=max_in_flight,
            console=console,
            server_log=server_log,
            prefix_caching=prefix_caching,
        ) as (chat, info):
            return await run_experiment(
                experiment, db, chat, console=console, server_info=info, **options
            )

    return asyncio.run(main())


def _params_json(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=str)
