"""Monte Carlo runner: experiments, episode jobs, executors, resume."""

from personae.runner.executors import Executor, LocalExecutor
from personae.runner.experiment import Experiment
from personae.runner.jobs import EpisodeJob, EpisodeOutcome, EpisodeSpec, ModelEndpoint, run_episode
from personae.runner.run import RunSummary, run_experiment

__all__ = [
    "EpisodeJob",
    "EpisodeOutcome",
    "EpisodeSpec",
    "Executor",
    "Experiment",
    "LocalExecutor",
    "ModelEndpoint",
    "RunSummary",
    "run_episode",
    "run_experiment",
]
