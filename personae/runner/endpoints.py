"""Opening a run's endpoints: the default model plus every named endpoint, ready to call.

:func:`connected_models` opens the run's own model (``--base-url``, or the
embedded vLLM server) as endpoint ``default`` and each declared
:class:`~personae.llm.endpoints.Endpoint`, and yields them as one
:class:`~personae.engine.models.Models` with a record of what serves each
(stored with the experiment; no keys, URLs without credentials)::

    async with connected_models(endpoints=[parse_endpoint("target=http://gpu:8001/v1#mine")]) as (
        models, info):
        summary = await run_experiment(experiment, "runs/x.db", models, server_info=info)

An endpoint whose ``base_url`` is ``"embedded"`` talks to the run's embedded
server under its own served model name: the server is started serving the
bundled model under every name the endpoints ask for, so two endpoints of one
experiment can be two names of one server.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from personae.engine.models import Models
from personae.errors import ConfigError
from personae.llm import backends
from personae.llm.backends import DEFAULT_MAX_RESTARTS
from personae.llm.base import ChatModel
from personae.llm.endpoints import EMBEDDED, Endpoint, unique
from personae.llm.urls import redact_url
from personae.runner.jobs import ModelEndpoint

__all__ = ["connected_models", "open_endpoint"]


@contextlib.asynccontextmanager
async def open_endpoint(
    endpoint: Endpoint,
    *,
    embedded_url: str | None = None,
    max_in_flight: int = 64,
    retries: int = 5,
    timeout: float = 600.0,
    server_wait: float = 1800.0,
) -> AsyncIterator[tuple[ChatModel, dict[str, Any], ModelEndpoint]]:
    """One named endpoint as ``(chat model, what serves it, the same as plain data)``.

    The third item is what a worker in another process needs to open the same
    endpoint (:class:`~personae.runner.jobs.ModelEndpoint`; no key, only the
    name of its variable). Closed afterwards.

    The endpoint's own ``max_in_flight``, ``timeout`` and ``retries`` win over
    the run's, given here. Several base URLs make a replica pool
    (:mod:`personae.llm.pool`). Every server is checked first, so an
    unreachable one fails at once with one message.

    Args:
        endpoint: What to open.
        embedded_url: The run's embedded server, for an ``"embedded"`` endpoint.

    Raises:
        ConfigError: An ``"embedded"`` endpoint in a run without an embedded
            server, or the API key's variable is not set.
        ModelUnreachable: A server does not answer.
        ModelError: A server does not serve the endpoint's model.
    """
    from personae.llm.openai import check_reachable
    from personae.llm.wrappers import build_client

    urls = endpoint.base_url
    if endpoint.embedded:
        if embedded_url is None:
            raise ConfigError(
                f"endpoint {endpoint.name!r} is 'embedded', but this run uses no embedded server "
                "(it was given --base-url); give the endpoint a URL"
            )
        urls = (embedded_url,)
    key = endpoint.api_key()
    served = [await check_reachable(url, endpoint.model, api_key=key) for url in urls]
    name = endpoint.model or served[0][0]
    options: dict[str, Any] = {
        "max_in_flight": endpoint.max_in_flight or max_in_flight,
        "retries": retries if endpoint.retries is None else endpoint.retries,
        "timeout": endpoint.timeout or timeout,
        "server_wait": server_wait,
        "api_key": key,
        "structured": endpoint.structured,
    }
    if len(urls) > 1:
        from personae.llm.pool import build_pool

        client: Any = build_pool(list(urls), name, **options)
    else:
        client = build_client(urls[0], name, **options)
    # What a worker elsewhere needs to open the same endpoint (no key: its variable).
    portable = ModelEndpoint(
        "openai",
        name,
        urls[0],
        replicas=tuple(urls) if len(urls) > 1 else (),
        api_key_env=endpoint.api_key_env,
        max_in_flight=options["max_in_flight"],
        timeout=options["timeout"],
        retries=options["retries"],
        structured=endpoint.structured,
    )
    info = {
        **endpoint.describe(),
        "model": name,
        "base_url": [EMBEDDED] if endpoint.embedded else [redact_url(u) for u in urls],
    }
    try:
        yield client, info, portable
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def connected_models(
    model: ChatModel | Models | None = None,
    *,
    endpoints: Sequence[Endpoint] = (),
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
) -> AsyncIterator[tuple[Models, dict[str, Any]]]:
    """Yield ``(models, server info)``: endpoint ``default`` and every named one.

    The default is opened as :func:`~personae.llm.backends.connected_model`
    opens a run's model (same arguments); with no ``endpoints`` the info is
    exactly what that records. With endpoints, the info holds the default's
    under its usual keys and each endpoint's under ``"endpoints"``.

    Raises:
        ConfigError: Two endpoints share a name, or one cannot be opened here.
        ModelUnreachable: A server does not answer.
        ServerError: The embedded server could not be started.
    """
    if isinstance(model, Models):
        if endpoints:
            raise ConfigError("give either a Models object or endpoints to open, not both")
        yield model, {"software": "in-process", "endpoints": model.model_names()}
        return
    named = unique(endpoints)
    extra_names = tuple(
        dict.fromkeys(e.model for e in named.values() if e.embedded and e.model is not None)
    )
    async with contextlib.AsyncExitStack() as stack:
        default, info = await stack.enter_async_context(
            backends.connected_model(
                model,
                backend=backend,
                base_url=base_url,
                model_name=model_name,
                max_in_flight=max_in_flight,
                retries=retries,
                timeout=timeout,
                server_wait=server_wait,
                max_restarts=max_restarts,
                console=console,
                server_log=server_log,
                prefix_caching=prefix_caching,
                served_model_names=extra_names,
            )
        )
        embedded_url = info.get("base_url") if info.get("software") == "vllm" else None
        opened: dict[str, ChatModel] = {}
        described: dict[str, Any] = {}
        portable: dict[str, ModelEndpoint] = {}
        for name, endpoint in named.items():
            client, about, portable[name] = await stack.enter_async_context(
                open_endpoint(
                    endpoint,
                    embedded_url=embedded_url,
                    max_in_flight=max_in_flight,
                    retries=retries,
                    timeout=timeout,
                    server_wait=server_wait,
                )
            )
            opened[name] = client
            described[name] = about
        if described:
            info = {**info, "endpoints": described}
        yield Models(default, opened, portable=portable), info
