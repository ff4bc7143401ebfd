"""Waiting out a server that is down, shared by every request of a run.

When a request finds the server unreachable (connection refused, a 502, 503
or 504 from a proxy in front of it), the run does not fail the episodes in
flight: :class:`ServerOutage` marks the server down, one request at a time
probes it with capped backoff, the others (and any new request) wait until
it answers again, and only after ``server_wait`` seconds of continuous outage
do requests fail. The progress bar reads :attr:`ServerOutage.since` to show
that the run is waiting and since when.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

from personae.errors import ModelError, ModelUnreachable

__all__ = ["ServerOutage", "is_outage"]

#: HTTP statuses that mean "the server behind this address is not there right now".
OUTAGE_STATUS = frozenset({502, 503, 504})


def is_outage(exc: ModelError) -> bool:
    """Whether ``exc`` says the server is down rather than that this request failed."""
    if isinstance(exc, ModelUnreachable):
        return exc.retryable
    return getattr(exc, "status", None) in OUTAGE_STATUS


class ServerOutage:
    """The down-or-up state of one server, shared by all its requests.

    Args:
        server_wait: Longest continuous outage, in seconds, that requests wait
            out before they fail.
        probe_interval: Longest pause between two probes while the server is down.

    Attributes:
        since: ``time.time()`` when the current outage began, None while up.
        outages: Outages seen so far (each counted once, when it began).
        waited_s: Seconds spent in finished outages.
    """

    def __init__(self, server_wait: float = 1800.0, *, probe_interval: float = 5.0) -> None:
        self.server_wait = server_wait
        self.probe_interval = probe_interval
        self.since: float | None = None
        self.outages = 0
        self.waited_s = 0.0
        self.last_error: str | None = None
        self._started: float | None = None  # monotonic twin of ``since``
        self._back = asyncio.Event()
        self._back.set()
        self._probe = asyncio.Lock()

    @property
    def down(self) -> bool:
        """Whether the server is currently considered unreachable."""
        return self.since is not None

    def describe(self) -> str:
        """One line for people: ``"waiting for the server since 14:02:11 (95 s)"``."""
        if self.since is None or self._started is None:
            return ""
        clock = datetime.fromtimestamp(self.since).strftime("%H:%M:%S")
        return f"waiting for the server since {clock} ({time.monotonic() - self._started:.0f} s)"

    def begin(self, exc: ModelError) -> None:
        """Record that a request found the server down."""
        self.last_error = str(exc)
        if self.since is None:
            self.since = time.time()
            self._started = time.monotonic()
            self.outages += 1
            self._back.clear()

    def end(self) -> None:
        """Record that the server answered: waiting requests go on."""
        if self._started is not None:
            self.waited_s += time.monotonic() - self._started
        self.since = None
        self._started = None
        self._back.set()

    def remaining(self) -> float:
        """Seconds left before the current outage outlasts ``server_wait``."""
        if self._started is None:
            return self.server_wait
        return self.server_wait - (time.monotonic() - self._started)

    def expired(self) -> bool:
        """Whether the current outage has lasted longer than ``server_wait``."""
        return self.down and self.remaining() <= 0

    def gave_up(self, exc: ModelError) -> ModelError:
        """The error a request raises once the outage outlasted ``server_wait``."""
        return ModelUnreachable(
            f"{exc} (the server stayed unreachable for {self.server_wait:g} s, the "
            "--server-wait limit)",
            retryable=False,
        )

    async def wait_until_back(self) -> bool:
        """Wait while the server is down; True once it is back, False at the deadline."""
        while self.down:
            left = self.remaining()
            if left <= 0:
                return False
            try:
                await asyncio.wait_for(self._back.wait(), timeout=min(left, self.probe_interval))
            except TimeoutError:
                continue
        return True

    @property
    def probe_lock(self) -> asyncio.Lock:
        """Held by the one request that probes the server while it is down."""
        return self._probe
