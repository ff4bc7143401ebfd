"""Errors a user can act on.

Every error personae raises on purpose derives from :class:`PersonaeError` and
carries a one-paragraph message naming what is wrong. The command line turns
them into that message and exit code 2, never a traceback.

Tree::

    PersonaeError
    ├── ConfigError          bad scenario, persona, parameter or argument
    ├── ScenarioFileError    a scenario file that cannot be loaded
    ├── StoreError           a database that is foreign, locked or refused a statement
    ├── ServerError          the embedded server failed to start (names the log)
    └── ModelError           the model server failed (unreachable, bad answer)
        ├── ModelUnreachable the server could not be reached at all
        └── ModelTimeout     the server took longer than the request timeout
"""

from __future__ import annotations


class PersonaeError(Exception):
    """Base of every error personae raises deliberately."""


class ConfigError(PersonaeError):
    """A scenario, persona, experiment or command-line value is invalid."""


class ScenarioFileError(PersonaeError):
    """A scenario file could not be loaded or holds no scenario."""


class StoreError(PersonaeError):
    """The SQLite store refused an operation (foreign file, write in read-only mode, ...)."""


class ServerError(PersonaeError):
    """The embedded model server could not be prepared, started or kept running."""

    def __init__(self, message: str, *, log_path: str | None = None) -> None:
        if log_path:
            message = f"{message} The server log is at {log_path}."
        super().__init__(message)
        self.log_path = log_path


class ModelError(PersonaeError):
    """A model call failed.

    Attributes:
        retryable: Whether trying the same request again may succeed (a timeout,
            a 429 or 5xx, a garbled body); retry wrappers retry only these.
        status: The HTTP status the server answered with, where there was one.
    """

    def __init__(self, message: str, *, retryable: bool = False, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status


class ModelUnreachable(ModelError):
    """The model server could not be reached (retryable unless said otherwise)."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message, retryable=retryable)


class ModelTimeout(ModelError):
    """A request got no answer within its timeout (retryable, on a budget of its own).

    A server that stops answering one request is different from one that is
    down: retrying it repeats a possibly expensive request, so the retry layer
    gives such requests only a few attempts (see
    :class:`~personae.llm.wrappers.RetryingModel`).
    """

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message, retryable=retryable)
