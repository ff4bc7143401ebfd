"""Getting a ready ChatModel for a run: a given one, a server by URL, or the embedded server."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from personae.llm.base import ChatModel


async def _server_version(base_url: str) -> str | None:
    root = base_url.rstrip("/").removesuffix("/v1")
    try:
        async with httpx.AsyncClient(timeout=5.0) as client:
            response = await client.get(f"{root}/version")
        return str(response.json().get("version")) if response.is_success else None
    except (httpx.HTTPError, ValueError, AttributeError):
        return None


@contextlib.asynccontextmanager
async def connected_model(
    model: ChatModel | None = None,
    *,
    base_url: str | None = None,
    model_name: str | None = None,
    max_in_flight: int = 64,
    retries: int = 5,
    console: Console | None = None,
    server_log: str | Path | None = None,
    prefix_caching: bool = False,
) -> AsyncIterator[tuple[ChatModel, dict[str, Any]]]:
    """Yield ``(chat model, server info)`` for one run and clean up afterwards.

    Args:
        model: Use this ChatModel as it is.
        base_url: Otherwise, an OpenAI-compatible server; it is checked first so
            an unreachable server fails at once with one message.
        model_name: The served model (default: the first the server lists).
        max_in_flight: Requests in flight at most.
        retries: Retries per request on transient errors.
        console: Where status lines go.
        server_log: Log file of the embedded server, when one is started.
        prefix_caching: Start the embedded server with its prefix cache on (faster,
            but the same seed no longer reproduces the same transcript exactly).

    Raises:
        ModelUnreachable: Nothing answers at ``base_url``.
        ServerError: The embedded server could not be started.
    """
    from personae.llm.openai import check_reachable
    from personae.llm.wrappers import build_client

    say = (console or Console(stderr=True)).print
    if model is not None:
        yield model, {"software": "in-process", "model": model.name}
        return
    if base_url is not None:
        served = await check_reachable(base_url, model_name)
        name = model_name or served[0]
        client = build_client(base_url, name, max_in_flight=max_in_flight, retries=retries)
        info = {
            "software": "openai-compatible",
            "base_url": base_url,
            "model": name,
            "version": await _server_version(base_url),
        }
        try:
            yield client, info
        finally:
            await client.aclose()
        return

    from personae.llm.server import EmbeddedServer

    server = EmbeddedServer(log_path=server_log, prefix_caching=prefix_caching)
    say(
        "[dim]Starting the embedded vLLM server (2 to 4 minutes on a 2-core CPU; "
        f"log: {server.log_path})...[/]"
    )
    await server.astart()
    say(f"[dim]Server ready at {server.base_url}.[/]")
    client = build_client(
        server.base_url, server.model, max_in_flight=max_in_flight, retries=retries
    )
    try:
        yield client, server.server_info()
    finally:
        await client.aclose()
        await server.astop()
