"""Monte Carlo runner: experiments, executors, resume."""

from personae.runner.executor import Executor, LocalExecutor
from personae.runner.experiment import EpisodeSpec, Experiment
from personae.runner.run import RunSummary, run_experiment

__all__ = ["EpisodeSpec", "Executor", "Experiment", "LocalExecutor", "RunSummary", "run_experiment"]
