"""Where episodes run: the :class:`Executor` protocol and its implementations.

:class:`~personae.runner.executors.local.LocalExecutor` runs jobs as tasks of
this event loop. A distributed executor (jobs shipped to other machines, each
writing its own shard) implements the same protocol with the module-level
:func:`~personae.runner.jobs.run_episode`, and must pass
``tests/unit/test_executor_conformance.py``.
"""

from personae.runner.executors.base import Executor, ReportOutcome, RunJob
from personae.runner.executors.local import LocalExecutor

__all__ = ["Executor", "LocalExecutor", "ReportOutcome", "RunJob"]
