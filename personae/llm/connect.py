"""Getting a ready ChatModel for a run: a given one, a server by URL, or the embedded server.

When the embedded server is started for the run, a watchdog task restarts it
on the same host and port if it dies (see :func:`watch_server`), so the
client's base URL stays valid and requests in flight are retried against the
new server by the client's retry layer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from rich.console import Console
from rich.markup import escape

from personae.errors import ConfigError, PersonaeError
from personae.llm.base import ChatModel
from personae.llm.urls import redact_url

if TYPE_CHECKING:
    from personae.llm.server import EmbeddedServer

__all__ = ["DEFAULT_MAX_RESTARTS", "connected_model", "watch_server"]

#: Restarts of a dead embedded server per run before the watchdog gives up.
DEFAULT_MAX_RESTARTS = 3


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
    timeout: float = 600.0,
    server_wait: float = 1800.0,
    max_restarts: int = DEFAULT_MAX_RESTARTS,
    console: Console | None = None,
    server_log: str | Path | None = None,
    prefix_caching: bool = False,
) -> AsyncIterator[tuple[ChatModel, dict[str, Any]]]:
    """Yield ``(chat model, server info)`` for one run and clean up afterwards.

    The server info never holds credentials: a ``base_url`` with user
    information (``http://user:pass@host/v1``) is recorded without it.

    Args:
        model: Use this ChatModel as it is.
        base_url: Otherwise, an OpenAI-compatible server; it is checked first so
            an unreachable server fails at once with one message.
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

    Raises:
        ConfigError: ``max_restarts`` is negative.
        ModelUnreachable: Nothing answers at ``base_url``.
        ServerError: The embedded server could not be started.
    """
    from personae.llm.openai import check_reachable
    from personae.llm.wrappers import RetryingModel, build_client, find_layer

    if max_restarts < 0:
        raise ConfigError(f"max_restarts must be 0 or more, not {max_restarts}.")
    say = (console or Console(stderr=True)).print
    client_options: dict[str, Any] = {
        "max_in_flight": max_in_flight,
        "retries": retries,
        "timeout": timeout,
        "server_wait": server_wait,
    }
    if model is not None:
        yield model, {"software": "in-process", "model": model.name}
        return
    if base_url is not None:
        served = await check_reachable(base_url, model_name)
        name = model_name or served[0]
        client = build_client(base_url, name, **client_options)
        info = {
            "software": "openai-compatible",
            "base_url": redact_url(base_url),
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
    client = build_client(server.base_url, server.model, **client_options)
    retrying = find_layer(client, RetryingModel)

    def stop_waiting() -> None:
        # A server given up on will not come back: fail its requests now, not after server_wait.
        if retrying is not None:
            retrying.outage.server_wait = 0.0

    watchdog = asyncio.create_task(
        watch_server(server, max_restarts=max_restarts, say=say, on_give_up=stop_waiting),
        name="server-watchdog",
    )
    try:
        yield client, server.server_info()
    finally:
        watchdog.cancel()
        await asyncio.wait([watchdog])
        await client.aclose()
        await server.astop()


async def watch_server(
    server: EmbeddedServer,
    *,
    max_restarts: int = DEFAULT_MAX_RESTARTS,
    say: Callable[[str], Any] = print,
    interval: float = 1.0,
    on_give_up: Callable[[], None] | None = None,
) -> None:
    """Restart the embedded server whenever its process exits, ``max_restarts`` times at most.

    Runs until cancelled (at the end of the run) or until it gives up. Each
    restart is announced with the exit status and the kept log, is made on the
    same host and port, and counts whether or not the new server becomes ready
    (a server that hangs in start-up fails after its start-up timeout), so a
    server that keeps dying cannot keep a restart loop spinning. Once the
    restarts are used up, ``on_give_up`` is called: ``connected_model`` then
    fails the requests waiting for the server instead of waiting ``server_wait``.

    Args:
        server: The running server to watch.
        max_restarts: Restarts allowed in all.
        say: Where the status lines go (a rich console's ``print``).
        interval: Seconds between checks.
        on_give_up: Called once the restarts are used up (the run's client then
            stops waiting for the server).
    """
    try:
        while True:
            await asyncio.sleep(interval)
            if server.running:
                continue
            status = server.returncode
            if server.restarts >= max_restarts:
                say(
                    f"[red]The embedded server stopped (exit code {status}) and was restarted "
                    f"{server.restarts} time(s) already; not restarting it again. "
                    f"Log: {escape(str(server.log_path))}[/]"
                )
                if on_give_up is not None:
                    on_give_up()
                return
            say(
                f"[yellow]The embedded server stopped (exit code {status}); restarting it, "
                f"attempt {server.restarts + 1} of {max_restarts}; "
                f"log: {escape(str(server.kept_log_path))}[/]"
            )
            started = time.monotonic()
            try:
                await server.arestart()
            except PersonaeError as error:
                say(f"[red]The restart failed: {escape(str(error))}[/]")
            else:
                took = time.monotonic() - started
                say(f"[dim]The embedded server is back at {server.base_url} after {took:.0f} s.[/]")
    except Exception as error:  # the watchdog must never take a run down with it
        say(f"[red]The embedded server's watchdog stopped: {escape(repr(error))}[/]")
