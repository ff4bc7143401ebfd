"""What a run waits for (a server that is down, a locked database) and says about it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from personae.llm.base import ChatModel
from personae.llm.outage import ServerOutage
from personae.store.writer import Writer

__all__ = ["announce_waits", "outage_of", "request_limit", "waiting_status"]


def outage_of(model: ChatModel) -> ServerOutage | None:
    """The outage record of a model's server: its retry layer's, or a replica pool's own."""
    from personae.llm.wrappers import RetryingModel, find_layer

    own = getattr(model, "outage", None)
    if isinstance(own, ServerOutage):  # a replica pool: every replica out at once
        return own
    layer = find_layer(model, RetryingModel)
    return layer.outage if layer is not None else None


async def announce_waits(
    outage: ServerOutage | None, writer: Writer, say: Any, interval: float = 1.0
) -> None:
    """Print a line when the run starts and stops waiting for the server or the database.

    The progress bar shows the wait too, but a narrow terminal can cut it off;
    a printed line stays in the scrollback with its time.
    """
    server_down = locked = False
    while True:
        await asyncio.sleep(interval)
        if outage is not None and outage.down != server_down:
            server_down = outage.down
            if server_down:
                say(
                    f"[yellow]{outage.describe().capitalize()}: {outage.last_error}. "
                    f"Requests wait up to {outage.server_wait:g} s (--server-wait).[/]",
                    highlight=False,
                )
            else:
                say("[green]The server answers again; the run goes on.[/]")
        if (writer.locked_since is not None) != locked:
            locked = not locked
            if locked:
                say(f"[yellow]{writer.describe_wait().capitalize()}.[/]", highlight=False)
            else:
                say("[green]The database accepts writes again.[/]")


def waiting_status(outage: ServerOutage | None, writer: Writer) -> str:
    """What the run waits for, short enough for the progress bar ("" when nothing)."""
    parts = []
    if outage is not None and outage.down:
        parts.append(f"server down {outage.server_wait - outage.remaining():.0f} s")
    if writer.locked_since is not None:
        parts.append(f"database locked {time.time() - writer.locked_since:.0f} s")
    return ", ".join(parts)


def request_limit(model: ChatModel) -> int | None:
    """Requests a model lets on the wire at once (a pool: the sum over its replicas)."""
    from personae.llm.wrappers import ConcurrencyLimitedModel, find_layer

    replicas = getattr(model, "replica_models", None)
    if isinstance(replicas, tuple) and replicas:
        limits = [request_limit(replica) for replica in replicas]
        return sum(limit for limit in limits if limit) or None
    layer = find_layer(model, ConcurrencyLimitedModel)
    return layer.max_in_flight if layer is not None else None
