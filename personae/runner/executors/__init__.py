"""Where episodes run: the :class:`Executor` protocol and its implementations.

:class:`~personae.runner.executors.local.LocalExecutor` runs jobs as tasks of
this event loop. :class:`~personae.runner.executors.ray.RayExecutor` (the
``ray`` extra) runs them in Ray actors on this machine or a cluster and hands
each episode's rows to the run's writer when it ends. A distributed executor
implements the same protocol with the module-level
:func:`~personae.runner.jobs.run_episode`, and must pass
``tests/unit/test_executor_conformance.py``.

:func:`executor_from_options` turns the command line's ``--executor`` and
``--ray-address`` into an executor.
"""

from __future__ import annotations

import importlib.util

from personae.errors import ConfigError
from personae.runner.executors.base import Executor, ReportOutcome, RunJob
from personae.runner.executors.local import LocalExecutor
from personae.runner.executors.ray import RayExecutor  # imports ray only when it runs

__all__ = [
    "EXECUTORS",
    "Executor",
    "LocalExecutor",
    "RayExecutor",
    "ReportOutcome",
    "RunJob",
    "executor_from_options",
]

#: The executors the command line names.
EXECUTORS = ("local", "ray")


def executor_from_options(
    name: str = "local",
    ray_address: str | None = None,
    *,
    workers: int | None = None,
    episodes_per_worker: int = 64,
    max_episodes: int | None = None,
) -> Executor | None:
    """The executor ``personae run --executor NAME --ray-address ADDRESS`` asks for.

    Args:
        name: ``"local"`` (this process) or ``"ray"`` (Ray actors).
        ray_address: For ``ray``: ``"auto"`` (the cluster ``ray start`` made on
            this machine), ``"HOST:PORT"``, or ``"local"``/None (a local
            cluster started for the run and stopped after it).
        workers: For ``ray``: actors to start (default: the cluster's CPUs).
        episodes_per_worker: For ``ray``: episodes in flight per actor.
        max_episodes: For ``local``: episodes in flight.

    Returns:
        The executor, or None for ``local`` without ``max_episodes`` (the
        runner then sizes its local executor from the model's request limit).

    Raises:
        ConfigError: An unknown name, a Ray address with the local executor,
            or ``ray`` without Ray installed.

    Example:
        >>> executor_from_options("local", max_episodes=8).max_episodes
        8
    """
    if name not in EXECUTORS:
        raise ConfigError(f"--executor must be one of {', '.join(EXECUTORS)}, not {name!r}")
    if name == "local":
        if ray_address is not None:
            raise ConfigError(
                f"--ray-address {ray_address} is for the Ray executor; add --executor ray "
                "or leave the address out"
            )
        return LocalExecutor(max_episodes) if max_episodes is not None else None
    if importlib.util.find_spec("ray") is None:
        raise ConfigError(
            "--executor ray needs Ray, which is not installed here; install it with "
            "pip install 'personae[ray]' (on this machine and on every node of the cluster)"
        )
    address = None if ray_address in (None, "", "local") else ray_address
    return RayExecutor(address, workers, episodes_per_worker)
