"""Episode jobs: what to run as plain, picklable data, and the one function that runs it.

An :class:`EpisodeJob` names everything one episode needs and nothing that
cannot cross a process boundary: the *target* the experiment came from (a
built-in name or a scenario file path), the :class:`EpisodeSpec` (parameter
set, grid position, replicate, seed), the ``episode_id`` the coordinating
database gave it, and the model as a :class:`ModelEndpoint` (a URL and a
name, never a client). A :class:`~personae.engine.scenario.Scenario` is never
pickled: it holds callables and a compiled graph.

:func:`run_episode` runs one job into a *run sink* (anything with
``add(record)`` and ``update_episode(episode_id, **values)``: the store's
:class:`~personae.store.writer.Writer`, later a shard writer) and returns an
:class:`EpisodeOutcome`. It marks the episode running, then complete (with
its row counts), failed (with the reason) or interrupted. In this process the
runner passes the experiment and the shared model, so nothing is loaded
twice; elsewhere the scenario is loaded from the target, once per process.

Example::

    job = EpisodeJob(target="counseling", spec=spec, episode_id=7,
                     endpoint=ModelEndpoint(base_url="http://gpu:8000/v1", model="smollm2"))
    blob = pickle.dumps(job)                          # to a worker
    outcome = await run_episode(pickle.loads(blob), shard_writer)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import sysconfig
import traceback
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from personae.engine.sink import WriterLog, as_record
from personae.errors import ConfigError, ModelError, PersonaeError
from personae.runner.identity import digest, fingerprint, params_key
from personae.store.rows import LLMCallRecord, Record, TurnRecord, now

if TYPE_CHECKING:
    from personae.engine.models import Models
    from personae.llm.base import ChatModel
    from personae.runner.experiment import Experiment

__all__ = [
    "EpisodeJob",
    "EpisodeOutcome",
    "EpisodeSpec",
    "ModelEndpoint",
    "RowTally",
    "RunSink",
    "describe_scenario_error",
    "resolve_experiment",
    "run_episode",
    "scenario_identity",
]

_PACKAGE_DIR = Path(__file__).resolve().parents[1]
_STDLIB_PREFIXES = tuple(
    {sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"], sys.base_prefix}
)


@dataclass(frozen=True, slots=True)
class EpisodeSpec:
    """One episode to run: which parameters, which replicate, which seed.

    Attributes:
        param_index: Position of the parameter set (see ``Experiment.episodes``).
        replicate: Replicate number, from 0.
        params: The parameter set.
        seed: The episode seed.
        key: The canonical JSON of ``params`` (:func:`~personae.runner.identity.params_key`);
            stored episodes are matched by ``(key, replicate)``, which does not shift
            when a grid value is added. Computed from ``params`` when not given.
    """

    param_index: int
    replicate: int
    params: Mapping[str, Any]
    seed: int
    key: str = field(default="")

    def __post_init__(self) -> None:
        if not self.key:
            object.__setattr__(self, "key", params_key(self.params))


@dataclass(frozen=True, slots=True)
class ModelEndpoint:
    """Where a model is served, as plain data a worker can connect to.

    Never holds a key: a worker reads it from ``api_key_env`` in its own
    environment (or, for a run's default server, from ``PERSONAE_API_KEY`` /
    ``OPENAI_API_KEY`` as the client always does).

    Attributes:
        backend: ``"openai"`` (an OpenAI-compatible server at ``base_url``),
            ``"echo"`` (the fake :meth:`FunctionModel.echo
            <personae.llm.fake.FunctionModel.echo>`, for tests), or
            ``"in-process"`` (a model object of the coordinating process that
            cannot be rebuilt elsewhere; :func:`run_episode` then needs ``model=``).
        model: The served model name.
        base_url: The API root, e.g. ``"http://127.0.0.1:8000/v1"``.
        replicas: Several API roots of one model: a replica pool (then
            ``base_url`` is the first).
        api_key_env: The environment variable the key is read from.
        max_in_flight: Requests in flight at most (per worker; None: the client's default).
        timeout: Seconds one attempt may take (None: the client's default).
        retries: Retries after a retryable error (None: the client's default).
        structured: The structured-output mode (see :mod:`personae.llm.dialect`).
    """

    backend: str = "openai"
    model: str | None = None
    base_url: str | None = None
    replicas: tuple[str, ...] = ()
    api_key_env: str | None = None
    max_in_flight: int | None = None
    timeout: float | None = None
    retries: int | None = None
    structured: str = "auto"

    @classmethod
    def of(cls, model: ChatModel) -> ModelEndpoint:
        """The endpoint a model object talks to (``"in-process"`` for fakes and custom models)."""
        from personae.llm.wrappers import find_layer

        portable = getattr(model, "portable_endpoint", None)
        if isinstance(portable, ModelEndpoint):
            return portable
        name = getattr(model, "name", None)
        openai = sys.modules.get("personae.llm.openai")  # not imported: no model is its client
        if openai is None:
            return cls("in-process", name)
        client = find_layer(model, openai.OpenAIChatModel)
        if client is not None:
            return cls("openai", name, client.base_url, structured=client.structured)
        return cls("in-process", name)

    def client_options(self) -> dict[str, Any]:
        """The keyword arguments of ``build_client`` / ``build_pool`` this endpoint sets."""
        import os

        options: dict[str, Any] = {"structured": self.structured}
        for name in ("max_in_flight", "timeout", "retries"):
            if getattr(self, name) is not None:
                options[name] = getattr(self, name)
        if self.api_key_env is not None:
            key = os.environ.get(self.api_key_env)
            if not key:
                raise ConfigError(
                    f"the model endpoint {self.model!r} takes its API key from "
                    f"{self.api_key_env}, which is not set in this process"
                )
            options["api_key"] = key
        return options

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[ChatModel]:
        """A model for this endpoint, closed afterwards.

        Raises:
            ConfigError: The endpoint cannot be opened in this process.
        """
        if self.backend == "echo":
            from personae.llm.fake import FunctionModel

            yield FunctionModel.echo(name=self.model or "echo", record=False)
            return
        if self.backend == "openai" and self.base_url and self.model:
            from personae.llm.pool import build_pool
            from personae.llm.wrappers import build_client

            options = self.client_options()
            client: ChatModel = (
                build_pool(list(self.replicas), self.model, **options)
                if len(self.replicas) > 1
                else build_client(self.base_url, self.model, **options)
            )
            try:
                yield client
            finally:
                await client.aclose()
            return
        raise ConfigError(
            f"cannot connect to the model endpoint {self.backend!r} ({self.model}) here: "
            "an in-process model exists only in the process that made the job; pass "
            "run_episode(..., model=...) or give the job a served endpoint"
        )


@dataclass(frozen=True, slots=True)
class EpisodeJob:
    """One episode to run, as picklable data.

    Attributes:
        target: The built-in scenario name or scenario file path the experiment
            was loaded from (:func:`personae.loading.load_target`); None when
            it was built in Python code, which can run only in this process.
        spec: Parameter set, grid position, replicate and seed.
        episode_id: The id the coordinating database gave the episode; every
            row id of the episode derives from it (:mod:`personae.store.ids`).
        endpoint: The model to call, when :func:`run_episode` is given none.
        scenario_identity: :func:`scenario_identity` of the experiment's
            scenario; a worker that loads ``target`` and finds another
            scenario (the file changed) refuses the job.
        endpoints: The run's named endpoints besides ``endpoint`` (which is
            ``default``), by name (see :mod:`personae.engine.models`).
    """

    target: str | None
    spec: EpisodeSpec
    episode_id: int
    endpoint: ModelEndpoint | None = None
    scenario_identity: str | None = None
    endpoints: Mapping[str, ModelEndpoint] = field(default_factory=dict)


Status = Literal["complete", "failed", "interrupted"]


@dataclass
class RowTally:
    """Turns, model calls and their tokens, counted from the typed rows seen.

    ``cached_tokens`` (prompt tokens a server took from its prefix cache) stays
    None until a call says how many.
    """

    turns: int = 0
    calls: int = 0
    completion_tokens: int = 0
    prompt_tokens: int = 0
    cached_tokens: int | None = None

    def see(self, record: Record) -> None:
        """Count one row by its type."""
        if isinstance(record, TurnRecord):
            self.turns += 1
        elif isinstance(record, LLMCallRecord):
            self.calls += 1
            self.completion_tokens += record.completion_tokens or 0
            self.prompt_tokens += record.prompt_tokens or 0
            if record.cached_tokens is not None:
                self.cached_tokens = (self.cached_tokens or 0) + record.cached_tokens


@dataclass(frozen=True)
class EpisodeOutcome:
    """What running one job did, as picklable data.

    Attributes:
        episode_id: The job's episode.
        status: ``complete``, ``failed``, or ``interrupted`` (an executor that
            runs jobs elsewhere reports a cancelled job so; in this process
            cancellation propagates instead).
        error: Why it failed (None otherwise).
        rows: Rows handed to the sink, by table.
        turns: Turn rows among them.
        calls: Model-call rows among them.
        completion_tokens: Completion tokens of those calls.
        end_reason: Why the conversation ended, when complete.
        prompt_tokens: Prompt tokens of those calls.
        cached_tokens: Those taken from a prefix cache (None: no call said).
    """

    episode_id: int
    status: Status
    error: str | None = None
    rows: Mapping[str, int] = field(default_factory=dict)
    turns: int = 0
    calls: int = 0
    completion_tokens: int = 0
    end_reason: str | None = None
    prompt_tokens: int = 0
    cached_tokens: int | None = None


class RunSink(Protocol):
    """Where :func:`run_episode` sends rows and status changes of episodes.

    The store's :class:`~personae.store.writer.Writer` is one. A sink checks
    each row at hand-over and applies a status change only after every row
    handed over before it.
    """

    def add(self, row: Record) -> None: ...

    def update_episode(self, episode_id: int, **values: Any) -> None: ...


class _EpisodeRows(WriterLog):
    """The episode's sink: its rows go to the run sink, counted by table and by type."""

    def __init__(self, sink: RunSink, episode_id: int) -> None:
        super().__init__(sink, episode_id)
        self.tally = RowTally()

    def add(self, row: Record | str, values: dict[str, Any] | None = None) -> None:
        record = as_record(row, values)
        super().add(record)
        self.tally.see(record)


async def run_episode(
    job: EpisodeJob,
    sink: RunSink,
    *,
    model: ChatModel | Models | None = None,
    experiment: Experiment | None = None,
) -> EpisodeOutcome:
    """Run one episode into ``sink`` and say how it went.

    A failure of the episode (a model error, a bad parameter, a bug in
    scenario code) is recorded in the sink and returned as a ``failed``
    outcome; it never raises. Cancellation marks the episode interrupted and
    propagates.

    Args:
        job: What to run.
        sink: Where its rows and status go.
        model: The model to call, or the run's models by endpoint name
            (default: connect to ``job.endpoint`` and ``job.endpoints``).
        experiment: The experiment the job belongs to (default: loaded from
            ``job.target``, once per process).

    Returns:
        The :class:`EpisodeOutcome`.
    """
    episode_id = job.episode_id
    log = _EpisodeRows(sink, episode_id)
    sink.update_episode(episode_id, status="running", started_at=now())

    def outcome(status: Status, error: str | None = None, **more: Any) -> EpisodeOutcome:
        t = log.tally
        return EpisodeOutcome(
            episode_id, status, error, dict(log.counts), t.turns, t.calls, t.completion_tokens,
            prompt_tokens=t.prompt_tokens, cached_tokens=t.cached_tokens, **more,
        )  # fmt: skip

    try:
        scenario = (experiment or resolve_experiment(job)).prepare(job.spec.params)
        async with _model_for(job, model) as chat:
            episode = scenario.new_episode(chat, seed=job.spec.seed, log=log)
            result = await episode.run()
    except asyncio.CancelledError:
        sink.update_episode(episode_id, status="interrupted")
        raise
    except (ModelError, PersonaeError) as exc:
        message = str(exc)
    except Exception as exc:  # a bug in scenario code must not stop other episodes
        message = describe_scenario_error(exc)
    else:
        drawn = {"params_json": _params_json({**job.spec.params, **episode.drawn})}
        sink.update_episode(
            episode_id,
            status="complete",
            n_turns=len(result.transcript),
            end_reason=result.end_reason,
            finished_at=now(),
            row_counts=json.dumps(dict(log.counts), sort_keys=True),
            **(drawn if episode.drawn else {}),
        )
        return outcome("complete", end_reason=result.end_reason)
    sink.update_episode(episode_id, status="failed", error=message, finished_at=now())
    return outcome("failed", message)


@contextlib.asynccontextmanager
async def _model_for(
    job: EpisodeJob, model: ChatModel | Models | None
) -> AsyncIterator[ChatModel | Models]:
    if model is not None:
        yield model
        return
    if job.endpoint is None:
        raise ConfigError(f"job of episode {job.episode_id} names no model endpoint")
    from personae.engine.models import Models

    async with contextlib.AsyncExitStack() as stack:
        chat = await stack.enter_async_context(job.endpoint.connect())
        if not job.endpoints:
            yield chat
            return
        named = {
            name: await stack.enter_async_context(endpoint.connect())
            for name, endpoint in job.endpoints.items()
        }
        yield Models(chat, named)


_LOADED: dict[str, tuple[Experiment, str]] = {}


def resolve_experiment(job: EpisodeJob) -> Experiment:
    """The experiment ``job.target`` names, loaded once per process.

    Raises:
        ConfigError: The job has no target, or the scenario found there is not
            the one the job was made from.
        ScenarioFileError: The target file is missing or fails to load.
    """
    from personae.loading import load_target
    from personae.runner.experiment import as_experiment

    if job.target is None:
        raise ConfigError(
            f"episode {job.episode_id} comes from an experiment built in Python code; it can "
            "run only where that experiment is (pass run_episode(..., experiment=...)). Give "
            "the runner the target (a built-in name or scenario file) to run it elsewhere."
        )
    if job.target not in _LOADED:
        experiment = as_experiment(load_target(job.target))
        _LOADED[job.target] = (experiment, scenario_identity(experiment))
    experiment, identity = _LOADED[job.target]
    if job.scenario_identity is not None and identity != job.scenario_identity:
        raise ConfigError(
            f"{job.target} holds another scenario than the run was started with (identity "
            f"{identity}, not {job.scenario_identity}); was the file changed meanwhile?"
        )
    return experiment


def scenario_identity(experiment: Experiment) -> str:
    """24 hex characters naming the experiment's scenario, its settings and code."""
    return digest(fingerprint(experiment.scenario, "scenario"))


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


def _params_json(params: Mapping[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=str)
