"""The chat models of one run by endpoint name, and which one each agent or judge uses.

A run talks to one model by default (endpoint ``default``). With named
endpoints (:mod:`personae.llm.endpoints`) it holds one
:class:`~personae.llm.base.ChatModel` per name, and the scenario's bindings
(``Scenario.endpoints``, set in Python or by the parameters
``<name or role>.endpoint`` and ``judge.endpoint``) say who uses which::

    models = Models(cheap_local, {"target": counselor_model})
    scenario = counseling.with_params({"counselor.endpoint": "target"})
    episode = scenario.new_episode(models, seed=1)   # the counselor speaks through "target"

Whoever is not bound uses ``default``. A model that keeps an episode on one
replica (a pool, :mod:`personae.llm.pool`) offers ``session(key)``;
:meth:`Models.for_episode` opens one session per model and episode.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from personae.errors import ConfigError
from personae.llm.base import ChatModel
from personae.llm.endpoints import DEFAULT_ENDPOINT

__all__ = ["JUDGE", "Models", "as_models"]

#: The binding key of judges and evaluators (``judge.endpoint``).
JUDGE = "judge"


class Models:
    """Chat models by endpoint name.

    Args:
        default: The model of endpoint ``default``.
        named: More endpoints by name.
        portable: The named endpoints as plain data, for executors that run
            episodes in other processes.

    Raises:
        ConfigError: A name is given twice (``default`` among them).
    """

    def __init__(
        self,
        default: ChatModel,
        named: Mapping[str, ChatModel] | None = None,
        *,
        portable: Mapping[str, Any] | None = None,
    ) -> None:
        named = dict(named or {})
        #: Endpoint name -> the same endpoint as plain data a worker elsewhere can open
        #: (:class:`~personae.runner.jobs.ModelEndpoint`), where the opener knows it.
        self.portable: dict[str, Any] = dict(portable or {})
        if DEFAULT_ENDPOINT in named:
            raise ConfigError(
                f"the endpoint name {DEFAULT_ENDPOINT!r} is the run's own server (--base-url or "
                "the embedded one); give the other endpoint another name"
            )
        self._models: dict[str, ChatModel] = {DEFAULT_ENDPOINT: default, **named}

    @property
    def default(self) -> ChatModel:
        """The model of endpoint ``default``."""
        return self._models[DEFAULT_ENDPOINT]

    @property
    def names(self) -> tuple[str, ...]:
        """Every endpoint name, ``default`` first."""
        return tuple(self._models)

    def get(self, name: str) -> ChatModel:
        """The model of endpoint ``name``.

        Raises:
            ConfigError: No endpoint has that name; the message lists the known ones.
        """
        try:
            return self._models[name]
        except KeyError:
            raise ConfigError(unknown_endpoint(name, self.names)) from None

    def items(self) -> Iterator[tuple[str, ChatModel]]:
        """``(name, model)`` pairs, ``default`` first."""
        return iter(self._models.items())

    def model_names(self) -> dict[str, str | None]:
        """Endpoint name -> the model it serves (what the experiment's identity holds)."""
        return {name: getattr(model, "name", None) for name, model in self._models.items()}

    def check(self, names: Mapping[str, str]) -> None:
        """Refuse bindings to endpoints this run does not have.

        Args:
            names: Who -> endpoint name (a scenario's bindings).

        Raises:
            ConfigError: A binding names an unknown endpoint.
        """
        for who, name in names.items():
            if name not in self._models:
                raise ConfigError(f"{who} is bound to " + unknown_endpoint(name, self.names))

    @contextlib.contextmanager
    def for_episode(self, key: str) -> Iterator[Models]:
        """The models as one episode sees them: a session per model that offers one.

        A replica pool keeps every request of a session on one replica; the
        sessions are closed when the block ends.
        """
        sessions: dict[str, ChatModel] = {}
        opened: list[Any] = []
        try:
            for name, model in self._models.items():
                start = getattr(model, "session", None)
                if callable(start):
                    session = start(key)
                    opened.append(session)
                    sessions[name] = session
                else:
                    sessions[name] = model
            default = sessions.pop(DEFAULT_ENDPOINT)
            yield Models(default, sessions, portable=self.portable)
        finally:
            for session in opened:
                close = getattr(session, "close", None)
                if callable(close):
                    close()


def unknown_endpoint(name: str, known: tuple[str, ...]) -> str:
    """``"unknown endpoint 'x'; this run has: default, target. ..."``"""
    return (
        f"the endpoint {name!r}, which this run does not have; its endpoints are "
        f"{', '.join(known)}. Declare it with --endpoint {name}=URL#MODEL or in an "
        "endpoints file (--endpoints FILE)."
    )


def as_models(model: ChatModel | Models) -> Models:
    """``model`` as :class:`Models` (a single model is endpoint ``default``)."""
    return model if isinstance(model, Models) else Models(model)
