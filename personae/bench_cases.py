"""The cases of ``personae bench``: their workloads, and the passes each runs.

A server case (``conversation``, ``inventory``, ``group``) is an experiment
(:func:`counseling_experiment`, :func:`inventory_experiment`,
:func:`group_experiment`) run in passes against a server: the framework's
first pass, which records its requests (:func:`first_pass`), then those
requests replayed with the bare SDK and the framework's measured pass
(:func:`compare_pass`). :mod:`personae.bench` decides which passes run
against which server and makes the report.

The ``ray`` case (:func:`ray_scaling`) runs the zero-latency fake-model
workload three ways in one process, one after the other, each into its own
SQLite file:

* ``local``: the local executor, every episode a task of this event loop;
* ``ray-1``, ``ray-2``: the Ray executor with 1 and 2 actors on a local
  cluster (``ray.init(num_cpus=2)``, started once before and shut down after);
  each actor loads the experiment from a scenario file and calls its own echo
  model, and the rows of each episode come back to this process's writer.

Turns per second count everything from handing out the jobs to the last
commit, actor start-up included. ``driver_cpu_s`` is the CPU time this process
spent meanwhile: with Ray, the hand-over of rows and the writer, so
``turns_per_driver_cpu_s`` is about the most turns per second one driver could
store with workers on other machines. ``benchmarks/ray_scaling.py`` prints the
same figures as one JSON object.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from personae.errors import ConfigError
from personae.llm.base import (
    ChatModel,
    Completion,
    LegacySampling,
    Message,
    Sampling,
    complete,
    resolve_sampling,
)
from personae.runner.experiment import Experiment
from personae.runner.run import run_experiment

if TYPE_CHECKING:
    from rich.console import Console
    from typing_extensions import Unpack

__all__ = [
    "RAY_EXECUTORS",
    "Recorder",
    "compare_pass",
    "counseling_experiment",
    "executor_jobs",
    "executor_pass",
    "first_pass",
    "group_experiment",
    "inventory_experiment",
    "raw_replay",
    "ray_scaling",
    "request_timeline",
    "require_ray",
]

#: The passes of the Ray case, in the order they run: (tag, Ray workers; 0 = local executor).
RAY_EXECUTORS: tuple[tuple[str, int], ...] = (("local", 0), ("ray-1", 1), ("ray-2", 2))

#: The scenario file each Ray worker loads: the same experiment as :func:`counseling_experiment`.
_SCENARIO_FILE = """
from personae.bench_cases import counseling_experiment

experiment = counseling_experiment({episodes}, {turns}, {max_tokens})
"""


def counseling_experiment(episodes: int, turns: int, max_tokens: int) -> Experiment:
    """Counseling episodes of exactly ``turns`` utterances (the conversation and fake workloads)."""
    from personae.studies import counseling

    scenario = counseling(max_turns=turns, min_turns=turns + 1).with_params(
        {"max_tokens": max_tokens}
    )
    return Experiment(scenario=scenario, replicates=episodes, seed=1234, name="bench")


def inventory_experiment(agents: int) -> Experiment:
    """The IPIP-NEO-120 given to ``agents`` agents, one item per request, no conversation."""
    from personae.agents.persona import Persona
    from personae.engine.probes import Probe
    from personae.engine.scenario import Opening, Scenario

    respondents = tuple(
        Persona(
            name=f"Respondent {i + 1}",
            role="respondent",
            big_five={k: 1 + (i * 7 + j * 3) % 5 for j, k in enumerate("OCEAN")},
        )
        for i in range(agents)
    )
    scenario = Scenario(
        name="inventory",
        agents=respondents,
        opening=Opening(speaker=respondents[0].name, text="Thank you for taking part."),
        max_turns=1,
        probes=(Probe("ipip-neo-120", at="start"),),
    )
    return Experiment(scenario=scenario, replicates=1, seed=1234, name="bench-inventory")


def group_experiment(agents: int, turns: int) -> Experiment:
    """One discussion of ``agents`` members on a small-world graph, opinions probed."""
    from personae.studies.group.scenario import group

    scenario = group(n_agents=agents, graph="small_world", max_turns=turns, every=turns)
    return Experiment(scenario=scenario, replicates=1, seed=1234, name="bench-group")


class Recorder:
    """A ChatModel wrapper that keeps every request it passes on, when it ran, and the tokens."""

    def __init__(self, inner: ChatModel) -> None:
        self.inner = inner
        self.requests: list[tuple[list[Message], Sampling]] = []
        self.spans: list[tuple[float, float]] = []
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cached_tokens: int | None = None  # None until a server says

    @property
    def name(self) -> str:
        return self.inner.name

    async def complete(
        self,
        messages: list[Message],
        sampling: Sampling | None = None,
        **legacy: Unpack[LegacySampling],
    ) -> Completion:
        sampling = resolve_sampling(sampling, legacy, self)
        self.requests.append((copy.deepcopy(messages), sampling))
        started = time.perf_counter()
        try:
            completion = await complete(self.inner, messages, sampling)
        finally:
            self.spans.append((started, time.perf_counter()))
        self.prompt_tokens += completion.prompt_tokens
        self.completion_tokens += completion.completion_tokens
        cached = getattr(completion, "cached_tokens", None)
        if cached is not None:
            self.cached_tokens = (self.cached_tokens or 0) + cached
        return completion

    async def aclose(self) -> None:
        await self.inner.aclose()


async def raw_replay(
    base_url: str,
    model: str,
    requests: list[tuple[list[Message], Sampling]],
    concurrency: int,
) -> dict[str, float]:
    """Send ``requests`` straight with ``AsyncOpenAI``, ``concurrency`` at a time.

    Returns:
        ``tokens`` (completion tokens), ``elapsed_s``, ``requests``, and the
        :func:`request_timeline` of the pass.
    """
    from openai import AsyncOpenAI

    from personae.llm.openai import sdk_arguments

    # The SDK as a user would call it: its own connection pool, no personae code in between.
    client = AsyncOpenAI(base_url=base_url, api_key="EMPTY", max_retries=2, timeout=300.0)
    gate = asyncio.Semaphore(concurrency)
    tokens = 0
    spans: list[tuple[float, float]] = []

    async def one(messages: list[Message], sampling: Sampling) -> None:
        nonlocal tokens
        async with gate:
            sent = time.perf_counter()
            # The same request fields the framework's client sends, built the same way.
            response = await client.chat.completions.create(
                model=model,
                messages=messages,  # type: ignore[arg-type]
                **sdk_arguments(sampling),
            )
            spans.append((sent, time.perf_counter()))
        tokens += response.usage.completion_tokens if response.usage else 0

    started = time.perf_counter()
    await asyncio.gather(*(one(m, sampling) for m, sampling in requests))
    elapsed = time.perf_counter() - started
    await client.close()
    return {
        "tokens": tokens,
        "elapsed_s": elapsed,
        "requests": len(requests),
        **request_timeline(spans),
    }


def request_timeline(spans: list[tuple[float, float]]) -> dict[str, float]:
    """Mean request latency and mean requests in flight over a pass."""
    if not spans:
        return {"mean_latency_s": 0.0, "mean_in_flight": 0.0}
    busy = sum(end - start for start, end in spans)
    wall = max(end for _, end in spans) - min(start for start, _ in spans)
    return {"mean_latency_s": busy / len(spans), "mean_in_flight": busy / wall if wall else 0.0}


async def first_pass(
    experiment: Experiment, chat: ChatModel, folder: Path, tag: str, console: Console
) -> tuple[Recorder, dict[str, Any]]:
    """The framework's first pass over a workload, recorded; the recorder and the pass's figures.

    Run on a server that has not seen the workload yet, this is what the replay
    comparison measures: a prefix cache saves what a run would save.

    Returns:
        The :class:`Recorder` (its requests feed :func:`compare_pass`) and
        ``tokens_per_s`` (completion tokens), ``prompt_tokens``,
        ``completion_tokens``, ``cached_tokens`` (prompt tokens served from the
        prefix cache; None when the server does not say), ``cached_share``,
        ``requests`` and ``elapsed_s``.
    """
    recorder = Recorder(chat)
    console.print(f"[dim]{tag}: framework first pass (records the requests)...[/]")
    summary = await run_experiment(experiment, folder / f"{tag}-first.db", recorder)
    elapsed = summary.elapsed_s
    prompt, cached = recorder.prompt_tokens, recorder.cached_tokens
    return recorder, {
        "tokens_per_s": round(recorder.completion_tokens / elapsed, 1) if elapsed else 0.0,
        "prompt_tokens": prompt,
        "completion_tokens": recorder.completion_tokens,
        "cached_tokens": cached,
        "cached_share": round(cached / prompt, 3) if cached is not None and prompt else None,
        "requests": len(recorder.requests),
        "elapsed_s": round(elapsed, 2),
    }


async def compare_pass(
    experiment: Experiment,
    first: Recorder,
    base_url: str,
    concurrency: int,
    folder: Path,
    tag: str,
    console: Console,
) -> dict[str, Any]:
    """Raw replay of the first pass's requests, then the measured framework pass; the figures.

    ``ratio`` is framework tokens/s over raw tokens/s, ``requests_ratio`` the
    same for requests/s; both passes follow ``first``, so both meet a warm server.
    """
    from personae.llm.wrappers import ConcurrencyLimitedModel, find_layer

    chat = first.inner
    console.print(f"[dim]{tag}: (a) raw replay of the same {len(first.requests)} requests...[/]")
    cpu = time.process_time()
    raw = await raw_replay(base_url, chat.name, first.requests, concurrency)
    raw_cpu = time.process_time() - cpu
    console.print(f"[dim]{tag}: (b) framework pass, measured...[/]")
    timed = Recorder(chat)
    limiter = find_layer(chat, ConcurrencyLimitedModel)
    if limiter is not None:
        limiter.peak_in_flight = 0
    cpu = time.process_time()
    framework = await run_experiment(experiment, folder / f"{tag}.db", timed)
    framework_cpu = time.process_time() - cpu
    timeline = request_timeline(timed.spans)
    raw_tps = raw["tokens"] / raw["elapsed_s"]
    fw_tps = framework.completion_tokens / framework.elapsed_s
    raw_rps = raw["requests"] / raw["elapsed_s"]
    fw_rps = framework.calls / framework.elapsed_s
    return {
        "raw_tokens_per_s": round(raw_tps, 1),
        "framework_tokens_per_s": round(fw_tps, 1),
        "ratio": round(fw_tps / raw_tps, 3) if raw_tps else None,
        "raw_requests_per_s": round(raw_rps, 2),
        "framework_requests_per_s": round(fw_rps, 2),
        "requests_ratio": round(fw_rps / raw_rps, 3) if raw_rps else None,
        "raw_elapsed_s": round(raw["elapsed_s"], 1),
        "framework_elapsed_s": round(framework.elapsed_s, 1),
        "requests": int(raw["requests"]),
        "raw_completion_tokens": int(raw["tokens"]),
        "framework_completion_tokens": framework.completion_tokens,
        "peak_in_flight": getattr(limiter, "peak_in_flight", None),
        "raw_mean_latency_s": round(raw["mean_latency_s"], 2),
        "framework_mean_latency_s": round(timeline["mean_latency_s"], 2),
        "raw_mean_in_flight": round(raw["mean_in_flight"], 1),
        "framework_mean_in_flight": round(timeline["mean_in_flight"], 1),
        "raw_client_cpu_s": round(raw_cpu, 2),
        "framework_client_cpu_s": round(framework_cpu, 2),
    }


def require_ray() -> ModuleType:
    """The ``ray`` module.

    Raises:
        ConfigError: Ray is not installed here (one line, with the way to install it).
    """
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "the ray case of personae bench needs Ray, which is not installed here; install "
            "it with pip install 'personae[ray]', or pick another --case"
        ) from None
    return ray


def executor_jobs(db: Path, experiment: Experiment, target: str | None) -> list[Any]:
    """What the runner does before handing out jobs: the episode rows, then one echo job each.

    Blocking (SQLite); run it in a thread from async code.
    """
    from personae.runner.jobs import EpisodeJob, ModelEndpoint, scenario_identity
    from personae.store import Database

    database = Database(db)
    try:
        experiment_id = database.ensure_experiment(
            name=experiment.label,
            scenario=experiment.scenario.name,
            config=experiment.config(),
            config_hash=experiment.identity("echo"),
            seed=experiment.seed,
            model="echo",
            server_info=None,
            code_version=None,
        )
        specs = experiment.episodes()
        database.create_episodes(
            experiment_id,
            [
                {"param_index": s.param_index, "replicate": s.replicate, "params": s.params}
                | {"seed": s.seed, "key": s.key}
                for s in specs
            ],
        )
        ids = {k: i for k, (i, _, _) in database.episodes_by_key(experiment_id).items()}
    finally:
        database.close()
    identity = scenario_identity(experiment)
    endpoint = ModelEndpoint("echo", "echo")
    return [EpisodeJob(target, s, ids[(s.key, s.replicate)], endpoint, identity) for s in specs]


async def executor_pass(
    executor: Any, experiment: Experiment, target: str, folder: Path, tag: str
) -> dict[str, Any]:
    """Run every episode of ``experiment`` with ``executor`` into ``folder/tag.db``; the figures.

    Args:
        executor: A :class:`~personae.runner.executors.LocalExecutor` (episodes
            here, on the loaded ``experiment``) or a Ray executor (episodes in
            workers, which load ``target``).
        experiment: The experiment ``target`` defines.
        target: The scenario file, readable by every worker.
        folder: Where the database goes.
        tag: The database's name and the pass's.

    Returns:
        ``episodes`` (complete), ``turns``, ``elapsed_s``, ``turns_per_s``,
        ``driver_cpu_s`` and ``turns_per_driver_cpu_s``.
    """
    from personae.llm.fake import FunctionModel
    from personae.runner.executors import LocalExecutor
    from personae.runner.jobs import EpisodeOutcome, run_episode
    from personae.store import Database, Writer

    db = folder / f"{tag}.db"
    jobs = await asyncio.to_thread(executor_jobs, db, experiment, target)
    database = await asyncio.to_thread(Database, db)
    outcomes: list[EpisodeOutcome] = []
    try:
        writer = Writer(database)
        await writer.start()
        run = functools.partial(run_episode, sink=writer)
        if isinstance(executor, LocalExecutor):  # in this process: the loaded experiment
            model = FunctionModel.echo(record=False)
            run = functools.partial(run_episode, sink=writer, model=model, experiment=experiment)
        started, cpu = time.perf_counter(), time.process_time()
        await executor.map(jobs, run, outcomes.append)
        await writer.close()
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        await asyncio.to_thread(database.close)
    turns = sum(o.turns for o in outcomes)
    return {
        "episodes": sum(o.status == "complete" for o in outcomes),
        "turns": turns,
        "elapsed_s": round(elapsed, 2),
        "turns_per_s": round(turns / elapsed, 1) if elapsed else 0.0,
        # this process's CPU (its threads included): for Ray, what the driver's
        # hand-over and writer cost, so turns / driver_cpu_s bounds what one driver takes
        "driver_cpu_s": round(cpu, 2),
        "turns_per_driver_cpu_s": round(turns / cpu, 1) if cpu else None,
    }


def ray_scaling(
    episodes: int,
    turns: int,
    folder: Path,
    *,
    max_tokens: int = 32,
    episodes_per_worker: int = 64,
    say: Callable[[str], object] | None = None,
) -> dict[str, Any]:
    """The Ray case: the fake-model workload through the local executor, Ray with 1 and 2 workers.

    Synchronous: the cluster is started in this thread (``ray.init(num_cpus=2)``,
    no dashboard) unless Ray is initialised already, and each pass gets its own
    event loop. A cluster started here is shut down before returning.

    Args:
        episodes: Episodes of each pass.
        turns: Utterances per episode.
        folder: Where the scenario file and the three databases go.
        max_tokens: ``max_tokens`` of each request (the echo model ignores it).
        episodes_per_worker: Episodes in flight per Ray worker.
        say: Where progress lines go.

    Returns:
        ``cluster_start_s``, one entry per pass (``local``, ``ray-1``,
        ``ray-2``: see :func:`executor_pass`), ``ray_2_over_1`` and
        ``ray_1_over_local`` (ratios of turns per second).

    Raises:
        ConfigError: Ray is not installed.
    """
    from personae.loading import load_target
    from personae.runner.executors import LocalExecutor, RayExecutor
    from personae.runner.experiment import as_experiment

    ray = require_ray()
    target = folder / "ray_bench.py"
    target.write_text(_SCENARIO_FILE.format(episodes=episodes, turns=turns, max_tokens=max_tokens))
    experiment = as_experiment(load_target(str(target)))
    started = time.perf_counter()
    owned = not ray.is_initialized()
    if owned:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    report: dict[str, Any] = {"cluster_start_s": round(time.perf_counter() - started, 1)}
    try:
        for tag, workers in RAY_EXECUTORS:
            if say is not None:
                say(f"ray case: {tag} ({episodes} episodes of {turns} utterances)...")
            executor = (
                RayExecutor(None, workers=workers, episodes_per_worker=episodes_per_worker)
                if workers
                else LocalExecutor(256)
            )
            report[tag] = asyncio.run(executor_pass(executor, experiment, str(target), folder, tag))
    finally:
        if owned:
            ray.shutdown()
    report["ray_2_over_1"] = _ratio(report["ray-2"], report["ray-1"])
    report["ray_1_over_local"] = _ratio(report["ray-1"], report["local"])
    return report


def _ratio(top: dict[str, Any], bottom: dict[str, Any]) -> float | None:
    return round(top["turns_per_s"] / bottom["turns_per_s"], 2) if bottom["turns_per_s"] else None
