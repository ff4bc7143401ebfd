"""Restarting the embedded server when it dies during a run.

When the ``"embedded"`` backend (:mod:`personae.llm.backends`) starts the
server for a run, :func:`watch_server` runs beside it and starts it again on
the same host and port if its process exits, so the client's base URL stays
valid and requests in flight are retried against the new server by the
client's retry layer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from personae.errors import PersonaeError

if TYPE_CHECKING:
    from personae.llm.vllm.server import EmbeddedServer

__all__ = ["DEFAULT_MAX_RESTARTS", "watch_server"]

#: Restarts of a dead embedded server per run before the watchdog gives up.
DEFAULT_MAX_RESTARTS = 3


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
