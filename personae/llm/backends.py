"""Model backends by name, and getting a ready ChatModel for a run.

A backend turns a run's options into a chat model and a record of the server
behind it, and cleans up afterwards. Backends are found by name in one
registry::

    "openai"     any OpenAI-compatible server at ``base_url`` (vLLM, SGLang, ...),
                 through the standard client stack of :func:`~personae.llm.wrappers.build_client`
    "embedded"   the embedded vLLM server, started for the run, watched and
                 restarted if it dies (:func:`~personae.llm.vllm.watchdog.watch_server`),
                 stopped afterwards

:func:`connected_model` picks ``"openai"`` when given a ``base_url`` and
``"embedded"`` otherwise, unless told a backend by name. A new backend is one
factory and one line::

    @contextlib.asynccontextmanager
    async def open_transformers(options: BackendOptions):
        model = TransformersModel(options.model_name)
        try:
            yield model, {"software": "transformers", "model": model.name}
        finally:
            await model.aclose()

    register_backend("transformers", open_transformers)
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import httpx
from rich.console import Console

from personae.errors import ConfigError
from personae.llm.base import ChatModel
from personae.llm.urls import redact_url
from personae.llm.vllm.watchdog import DEFAULT_MAX_RESTARTS, watch_server

__all__ = [
    "DEFAULT_MAX_RESTARTS",
    "BackendFactory",
    "BackendOptions",
    "backend_names",
    "connected_model",
    "get_backend",
    "register_backend",
    "server_prefix_caching",
    "watch_server",
]


@dataclass(frozen=True, kw_only=True)
class BackendOptions:
    """What a run asks of its backend; each backend reads the fields it needs.

    Attributes:
        base_url: The server's API root, e.g. ``"http://127.0.0.1:8000/v1"``.
        model_name: The model to use (default: the backend's own choice, e.g.
            the first model a server lists).
        max_in_flight: Requests in flight at most.
        retries: Retries per request on transient errors.
        timeout: Seconds to wait for one attempt of a request.
        server_wait: Seconds requests wait out a server that cannot be reached.
        max_restarts: Times a server started for the run is started again if it dies.
        say: Where status lines go (a rich console's ``print``).
        server_log: Log file of a server started for the run.
        prefix_caching: Start a server with its prefix cache on.
        served_model_names: More names a server started for the run answers to
            (endpoints of the run that are ``"embedded"`` under another name).
    """

    base_url: str | None = None
    model_name: str | None = None
    max_in_flight: int = 64
    retries: int = 5
    timeout: float = 600.0
    server_wait: float = 1800.0
    max_restarts: int = DEFAULT_MAX_RESTARTS
    say: Callable[[str], Any] = print
    server_log: str | Path | None = None
    prefix_caching: bool = False
    served_model_names: tuple[str, ...] = ()

    def client_options(self) -> dict[str, Any]:
        """The keyword arguments of :func:`~personae.llm.wrappers.build_client` these set."""
        return {
            "max_in_flight": self.max_in_flight,
            "retries": self.retries,
            "timeout": self.timeout,
            "server_wait": self.server_wait,
        }


BackendFactory: TypeAlias = Callable[
    [BackendOptions], AbstractAsyncContextManager[tuple[ChatModel, dict[str, Any]]]
]
"""``factory(options)``: an async context manager yielding ``(chat model, server info)``.

The server info is recorded with the experiment and must hold no credentials.
"""

_BACKENDS: dict[str, BackendFactory] = {}


def register_backend(name: str, factory: BackendFactory, *, replace: bool = False) -> None:
    """Make a backend available under ``name``.

    Args:
        name: The name runs ask for, e.g. ``"transformers"``.
        factory: See :data:`BackendFactory`.
        replace: Allow replacing a backend already registered under ``name``.

    Raises:
        ConfigError: ``name`` is empty or already taken (and ``replace`` is off).
    """
    if not name or not isinstance(name, str):
        raise ConfigError(f"a backend name must be a non-empty string, got {name!r}")
    if name in _BACKENDS and not replace:
        raise ConfigError(f"a model backend named {name!r} is already registered")
    _BACKENDS[name] = factory


def backend_names() -> list[str]:
    """The registered backend names, sorted."""
    return sorted(_BACKENDS)


def get_backend(name: str) -> BackendFactory:
    """The factory registered under ``name``.

    Raises:
        ConfigError: No backend has that name; the message lists the known ones.
    """
    try:
        return _BACKENDS[name]
    except KeyError:
        raise ConfigError(
            f"unknown model backend {name!r}; the known backends are: {', '.join(backend_names())}"
        ) from None


_CACHE_INFO = re.compile(r'^vllm:cache_config_info\{[^}]*enable_prefix_caching="(\w+)"', re.M)


def server_prefix_caching(metrics: str) -> bool | None:
    """Whether a vLLM server's ``/metrics`` text says its prefix cache is on; None if it does not say.

    Example:
        >>> server_prefix_caching('vllm:cache_config_info{block_size="16",enable_prefix_caching="True"} 1.0')
        True
        >>> server_prefix_caching("# no vLLM here") is None
        True
    """
    found = _CACHE_INFO.search(metrics)
    return None if found is None else found.group(1).lower() == "true"


async def _server_prefix_caching(base_url: str) -> bool | None:
    """Whether the server at ``base_url`` says (vLLM, on ``/metrics``) its prefix cache is on."""
    root = base_url.rstrip("/").removesuffix("/v1")
    try:
        async with httpx.AsyncClient(timeout=5.0) as client:
            response = await client.get(f"{root}/metrics")
        return server_prefix_caching(response.text) if response.is_success else None
    except httpx.HTTPError:
        return None


async def _server_version(base_url: str) -> str | None:
    root = base_url.rstrip("/").removesuffix("/v1")
    try:
        async with httpx.AsyncClient(timeout=5.0) as client:
            response = await client.get(f"{root}/version")
        return str(response.json().get("version")) if response.is_success else None
    except (httpx.HTTPError, ValueError, AttributeError):
        return None


@contextlib.asynccontextmanager
async def open_openai(options: BackendOptions) -> AsyncIterator[tuple[ChatModel, dict[str, Any]]]:
    """The ``"openai"`` backend: the standard client stack for a server at ``base_url``.

    The server is checked first, so an unreachable one fails at once with one message.

    Raises:
        ConfigError: No ``base_url`` was given.
        ModelUnreachable: Nothing answers at ``base_url``.
        ModelError: The server does not serve ``model_name``.
    """
    from personae.llm.openai import check_reachable
    from personae.llm.wrappers import build_client

    if options.base_url is None:
        raise ConfigError("the 'openai' model backend needs a base URL (--base-url)")
    base_url = options.base_url
    served = await check_reachable(base_url, options.model_name)
    name = options.model_name or served[0]
    client = build_client(base_url, name, **options.client_options())
    info: dict[str, Any] = {
        "software": "openai-compatible",
        "base_url": redact_url(base_url),
        "model": name,
        "version": await _server_version(base_url),
    }
    cache = await _server_prefix_caching(base_url)
    if cache is not None:
        info["prefix_caching"] = cache
    try:
        yield client, info
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def open_embedded(
    options: BackendOptions,
) -> AsyncIterator[tuple[ChatModel, dict[str, Any]]]:
    """The ``"embedded"`` backend: start the embedded vLLM server, watch it, stop it.

    Raises:
        ServerError: The server could not be started.
    """
    from personae.llm.vllm.server import EmbeddedServer
    from personae.llm.wrappers import RetryingModel, build_client, find_layer

    say = options.say
    from personae.llm.vllm.server import DEFAULT_SERVED_MODEL_NAME

    server = EmbeddedServer(
        served_model_name=(DEFAULT_SERVED_MODEL_NAME, *options.served_model_names),
        log_path=options.server_log,
        prefix_caching=options.prefix_caching,
    )
    say(
        "[dim]Starting the embedded vLLM server (2 to 4 minutes on a 2-core CPU; "
        f"log: {server.log_path})...[/]"
    )
    await server.astart()
    say(f"[dim]Server ready at {server.base_url}.[/]")
    client = build_client(server.base_url, server.model, **options.client_options())
    retrying = find_layer(client, RetryingModel)

    def stop_waiting() -> None:
        # A server given up on will not come back: fail its requests now, not after server_wait.
        if retrying is not None:
            retrying.outage.server_wait = 0.0

    watchdog = asyncio.create_task(
        watch_server(server, max_restarts=options.max_restarts, say=say, on_give_up=stop_waiting),
        name="server-watchdog",
    )
    try:
        yield client, server.server_info()
    finally:
        watchdog.cancel()
        await asyncio.wait([watchdog])
        await client.aclose()
        await server.astop()


register_backend("openai", open_openai)
register_backend("embedded", open_embedded)


@contextlib.asynccontextmanager
async def connected_model(
    model: ChatModel | None = None,
    *,
    backend: str | None = None,
    base_url: str | None = None,
    model_name: str | None = None,
    max_in_flight: int = 64,
    retries: int = 5,
    timeout: float = 600.0,
    server_wait: float = 1800.0,
    max_restarts: int = DEFAULT_MAX_RESTARTS,
    console: Console | None = None,
    server_log: str | Path | None = None,
    prefix_caching: bool = False,
    served_model_names: tuple[str, ...] = (),
) -> AsyncIterator[tuple[ChatModel, dict[str, Any]]]:
    """Yield ``(chat model, server info)`` for one run and clean up afterwards.

    The server info never holds credentials: a ``base_url`` with user
    information (``http://user:pass@host/v1``) is recorded without it.

    Args:
        model: Use this ChatModel as it is (no backend is opened).
        backend: The registered backend to open (see :func:`backend_names`);
            by default ``"openai"`` when ``base_url`` is given, else ``"embedded"``.
        base_url: An OpenAI-compatible server; it is checked first so an
            unreachable server fails at once with one message.
        model_name: The served model (default: the first the server lists).
        max_in_flight: Requests in flight at most.
        retries: Retries per request on transient errors.
        timeout: Seconds to wait for one attempt of a request.
        server_wait: Seconds requests wait out a server that cannot be reached
            (e.g. while the embedded server restarts) before they fail.
        max_restarts: Embedded server only: how many times a server that died
            during the run is started again (0: never).
        console: Where status lines go.
        server_log: Log file of the embedded server, when one is started.
        prefix_caching: Start the embedded server with its prefix cache on (faster,
            but the same seed no longer reproduces the same transcript exactly).
        served_model_names: More names the embedded server answers to (its
            first name is always the bundled model's).

    Raises:
        ConfigError: ``max_restarts`` is negative, or ``backend`` is unknown
            (the message lists the known backends).
        ModelUnreachable: Nothing answers at ``base_url``.
        ServerError: The embedded server could not be started.
    """
    if max_restarts < 0:
        raise ConfigError(f"max_restarts must be 0 or more, not {max_restarts}.")
    if model is not None:
        yield model, {"software": "in-process", "model": model.name}
        return
    factory = get_backend(backend or ("openai" if base_url is not None else "embedded"))
    options = BackendOptions(
        base_url=base_url,
        model_name=model_name,
        max_in_flight=max_in_flight,
        retries=retries,
        timeout=timeout,
        server_wait=server_wait,
        max_restarts=max_restarts,
        say=(console or Console(stderr=True)).print,
        server_log=server_log,
        prefix_caching=prefix_caching,
        served_model_names=served_model_names,
    )
    async with factory(options) as connected:
        yield connected


import personae.llm.hf  # noqa: E402,F401  (registers the "transformers" backend; torch loads lazily)
