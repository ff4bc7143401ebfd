"""One model served by several replicas: spread the requests, survive a dead one.

An endpoint may list several base URLs of the same model (vLLM replicas, or
the data-parallel servers of one model). :class:`ReplicaPool` is the
:class:`~personae.llm.base.ChatModel` over them; :func:`build_pool` builds one
with a standard client stack (:func:`~personae.llm.wrappers.build_client`) per
replica.

* **Placement.** A request goes to the least loaded replica that is up: the
  fewest open sessions, then the fewest requests in flight, then the order
  the URLs were given in.
* **Stickiness.** :meth:`ReplicaPool.session` returns a view that sends all
  its requests to one replica, so that replica's prefix cache stays warm for
  one episode. The caller closes it when the episode ends
  (:meth:`PoolSession.close`, or ``with pool.session(key) as model:``), so the
  next session is placed by the right counts.
* **Failover.** A replica that cannot be reached (connection refused or
  reset, HTTP 502/503/504: what its stack raises once its own short outage
  wait is over) is taken out; the request is sent again to another replica
  that is up, and the session stays on that one. A background check (``GET
  {url}/models`` every ``check_interval`` seconds, running only while a
  replica is out) takes a replica back once it answers and serves the model.
  Every other error (HTTP 400, 500, a timeout, a garbled body) is the
  request's own and is raised as it is.
* **All out.** Requests wait up to ``server_wait`` seconds for any replica to
  come back, as a run waits for its one server; :attr:`ReplicaPool.outage`
  (a :class:`~personae.llm.outage.ServerOutage`) reports the wait to the
  progress line. Past it they fail with :class:`~personae.errors.ModelUnreachable`.
* **Records.** Every completion carries ``extensions["replica"]``: the URL of
  the replica that answered, without credentials. :meth:`ReplicaPool.stats`
  counts requests, sessions, failures and outages per replica.

Example::

    pool = build_pool(["http://gpu-a:8000/v1", "http://gpu-b:8000/v1"], "my-model")
    with pool.session("episode-17") as model:   # one replica for the whole episode
        reply = await model.complete(messages, Sampling(seed=7))
    reply.extensions["replica"]                 # "http://gpu-a:8000/v1"
    await pool.aclose()
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from personae.errors import ConfigError, ModelError, ModelUnreachable
from personae.llm.base import (
    ChatModel,
    Completion,
    LegacySampling,
    Message,
    Sampling,
    complete,
    resolve_sampling,
)
from personae.llm.outage import ServerOutage, is_outage
from personae.llm.urls import redact_url
from personae.llm.wrappers import (
    DEFAULT_SERVER_WAIT,
    DEFAULT_TIMEOUT,
    RetryingModel,
    build_client,
    find_layer,
)

if TYPE_CHECKING:
    from types import TracebackType

    from typing_extensions import Unpack

    from personae.llm.dialect import StructuredMode

__all__ = [
    "DEFAULT_CHECK_INTERVAL",
    "DEFAULT_REPLICA_WAIT",
    "PoolSession",
    "ReplicaPool",
    "ReplicaStats",
    "build_pool",
    "is_connection_failure",
]

#: Seconds between two checks of a replica that is out.
DEFAULT_CHECK_INTERVAL = 5.0
#: Seconds a replica's own stack waits out its outage before the pool moves the request.
DEFAULT_REPLICA_WAIT = 0.0
#: Seconds one health check may take.
_CHECK_TIMEOUT = 5.0

#: Whether a replica (by URL) answers again; the default asks ``GET {url}/models``.
Probe = Callable[[str], Awaitable[bool]]


def is_connection_failure(exc: ModelError) -> bool:
    """Whether ``exc`` says the replica cannot be reached, rather than that the request failed.

    True for :class:`~personae.errors.ModelUnreachable` (a refused or reset
    connection, also once a stack has given up waiting) and for the
    "server is down" statuses 502, 503 and 504; False for everything else
    (HTTP 400 or 500, a timeout, a garbled body), which another replica would
    answer the same way.
    """
    return isinstance(exc, ModelUnreachable) or is_outage(exc)


@dataclass(frozen=True, kw_only=True, slots=True)
class ReplicaStats:
    """What one replica of a pool has done so far.

    Attributes:
        url: The replica's base URL, without credentials.
        up: Whether it takes requests now.
        requests: Requests it answered.
        sessions: Sessions placed on it (moved there by a failover included).
        open_sessions: Sessions on it now.
        in_flight: Requests on it now.
        failures: Requests it failed because it could not be reached (each sent again elsewhere).
        taken_out: Times it was taken out of the pool.
        taken_in: Times the health check took it back.
        last_error: The error that last took it out, if any.
    """

    url: str
    up: bool
    requests: int = 0
    sessions: int = 0
    open_sessions: int = 0
    in_flight: int = 0
    failures: int = 0
    taken_out: int = 0
    taken_in: int = 0
    last_error: str | None = None


class _Replica:
    """One replica's client stack and its counts (mutable, owned by the pool)."""

    def __init__(self, index: int, url: str, model: ChatModel) -> None:
        self.index = index
        self.url = url
        self.shown = redact_url(url)
        self.model = model
        self.up = True
        self.epoch = 0  # grows each time it is taken back, so stale failures do not count
        self.requests = 0
        self.sessions = 0
        self.open_sessions = 0
        self.in_flight = 0
        self.failures = 0
        self.taken_out = 0
        self.taken_in = 0
        self.last_error: str | None = None

    def load(self) -> tuple[int, int, int]:
        """The placement order: open sessions, requests in flight, position."""
        return (self.open_sessions, self.in_flight, self.index)

    def stats(self) -> ReplicaStats:
        return ReplicaStats(
            url=self.shown,
            up=self.up,
            requests=self.requests,
            sessions=self.sessions,
            open_sessions=self.open_sessions,
            in_flight=self.in_flight,
            failures=self.failures,
            taken_out=self.taken_out,
            taken_in=self.taken_in,
            last_error=self.last_error,
        )


class ReplicaPool:
    """A :class:`~personae.llm.base.ChatModel` over several replicas of one model.

    See the module docstring for placement, stickiness and failover. Build one
    with :func:`build_pool`; the constructor takes ready models, which is how
    tests put fakes behind it.

    Args:
        replicas: ``(base_url, model)`` per replica, in order of preference;
            each model is that replica's client stack. Its own outage wait
            should be short: the pool moves a request only once the stack gives up.
        name: The model name recorded with every call (default: the first
            replica's ``name``).
        server_wait: Seconds requests wait for a replica to come back when
            every one is out, before they fail.
        check_interval: Seconds between two checks of a replica that is out.
        probe: Says whether a replica (by URL) answers again; the default
            asks ``GET {url}/models`` and wants the model listed.
        api_key: The key the default probe sends.

    Attributes:
        outage: The pool's outage: down while every replica is out (the
            run's progress line reads it).

    Raises:
        ConfigError: No replicas, or a bound out of range.
    """

    def __init__(
        self,
        replicas: Sequence[tuple[str, ChatModel]],
        *,
        name: str | None = None,
        server_wait: float = DEFAULT_SERVER_WAIT,
        check_interval: float = DEFAULT_CHECK_INTERVAL,
        probe: Probe | None = None,
        api_key: str | None = None,
    ) -> None:
        if not replicas:
            raise ConfigError("a replica pool needs at least one replica (base URL)")
        if server_wait < 0:
            raise ConfigError(f"server_wait must be >= 0 seconds, got {server_wait}")
        if check_interval <= 0:
            raise ConfigError(f"check_interval must be > 0 seconds, got {check_interval}")
        self._replicas = [_Replica(i, url, model) for i, (url, model) in enumerate(replicas)]
        self._name = name if name is not None else replicas[0][1].name
        self.check_interval = check_interval
        self.outage = ServerOutage(server_wait, probe_interval=check_interval)
        self._probe = probe or self._answers
        self._api_key = api_key
        self._checker: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def name(self) -> str:
        """The model name recorded with every call."""
        return self._name

    @property
    def server_wait(self) -> float:
        """Seconds requests wait while every replica is out."""
        return self.outage.server_wait

    @property
    def urls(self) -> tuple[str, ...]:
        """The replicas' base URLs without credentials, in order."""
        return tuple(replica.shown for replica in self._replicas)

    @property
    def replica_models(self) -> tuple[ChatModel, ...]:
        """Each replica's own client stack, in order."""
        return tuple(replica.model for replica in self._replicas)

    def session(self, key: str) -> PoolSession:
        """A view of the pool whose requests all go to one replica.

        The session is placed on the least loaded replica that is up now (or
        on its first request, when every replica is out). Close it when the
        episode ends.

        Args:
            key: A label for the session (e.g. the episode's key), shown in its repr.

        Returns:
            The session, itself a ChatModel; close it with
            :meth:`PoolSession.close` or use it in a ``with`` block.

        Raises:
            ConfigError: The pool is closed.
        """
        if self._closed:
            raise ConfigError("this replica pool is closed; open a new one")
        session = PoolSession(self, key)
        replica = self._least_loaded()
        if replica is not None:
            self._place(session, replica)
        return session

    async def complete(
        self,
        messages: list[Message],
        sampling: Sampling | None = None,
        **legacy: Unpack[LegacySampling],
    ) -> Completion:
        """Send one request to the least loaded replica that is up; see :meth:`ChatModel.complete`.

        Returns:
            The completion, with ``extensions["replica"]`` naming the replica.

        Raises:
            ModelUnreachable: Every replica stayed out longer than ``server_wait``.
            ModelError: The request failed for a reason of its own (raised as
                the replica's stack raised it).
        """
        sampling = resolve_sampling(sampling, legacy, self)
        return await self._send(messages, sampling, None)

    def stats(self) -> list[ReplicaStats]:
        """What each replica has done so far, in the order the URLs were given."""
        return [replica.stats() for replica in self._replicas]

    async def aclose(self) -> None:
        """Stop the health check and close every replica's client."""
        self._closed = True
        checker, self._checker = self._checker, None
        if checker is not None:
            checker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await checker
        await asyncio.gather(*(replica.model.aclose() for replica in self._replicas))

    def __repr__(self) -> str:
        up = sum(replica.up for replica in self._replicas)
        return f"ReplicaPool({self._name!r}, {up}/{len(self._replicas)} replicas up)"

    # ------------------------------------------------------------------ requests

    async def _send(
        self, messages: list[Message], sampling: Sampling, session: PoolSession | None
    ) -> Completion:
        started = time.perf_counter()
        failed = 0
        error: ModelError | None = None
        while True:
            replica = await self._replica_for(session, error)
            epoch = replica.epoch
            replica.in_flight += 1
            try:
                completion = await complete(replica.model, messages, sampling)
            except ModelError as exc:
                if not is_connection_failure(exc):
                    raise
                replica.failures += 1
                failed += 1
                error = exc
                self._take_out(replica, epoch, exc)
                continue
            finally:
                replica.in_flight -= 1
            replica.requests += 1
            extensions = {**completion.extensions, "replica": replica.shown}
            if not failed:
                return dataclasses.replace(completion, extensions=extensions)
            return dataclasses.replace(
                completion,
                extensions=extensions,
                attempts=completion.attempts + failed,
                latency_ms=(time.perf_counter() - started) * 1000.0,
            )

    async def _replica_for(self, session: PoolSession | None, error: ModelError | None) -> _Replica:
        """The replica for the next attempt: the session's while it is up, else the least loaded."""
        if session is not None and session.replica is not None and session.replica.up:
            return session.replica
        replica = self._least_loaded()
        if replica is None:
            replica = await self._wait_for_replica(error)
        if session is not None and not session.closed:
            self._place(session, replica)
        return replica

    def _least_loaded(self) -> _Replica | None:
        up = [replica for replica in self._replicas if replica.up]
        return min(up, key=_Replica.load) if up else None

    async def _wait_for_replica(self, error: ModelError | None) -> _Replica:
        """Wait until some replica is up again, at most ``server_wait`` in all."""
        while True:
            replica = self._least_loaded()
            if replica is not None:
                return replica
            self.outage.begin(error or ModelUnreachable("every replica is out"))
            self._start_checker()
            if not await self.outage.wait_until_back():
                raise self._gave_up()

    def _gave_up(self) -> ModelUnreachable:
        reasons = "; ".join(
            f"{replica.shown}: {replica.last_error or 'out'}" for replica in self._replicas
        )
        return ModelUnreachable(
            f"no replica of model {self._name!r} could be reached for {self.server_wait:g} s "
            f"(the --server-wait limit); the replicas said: {reasons}",
            retryable=False,
        )

    @staticmethod
    def _place(session: PoolSession, replica: _Replica) -> None:
        if session.replica is replica:
            return
        if session.replica is not None:
            session.replica.open_sessions -= 1
        session.replica = replica
        replica.open_sessions += 1
        replica.sessions += 1

    @staticmethod
    def _release(session: PoolSession) -> None:
        if session.replica is not None:
            session.replica.open_sessions -= 1

    # ------------------------------------------------------------------ health

    def _take_out(self, replica: _Replica, epoch: int, exc: ModelError) -> None:
        """Take ``replica`` out after a failure of a request sent at ``epoch``."""
        if not replica.up or replica.epoch != epoch:
            return  # already out, or taken back since that request was sent
        replica.up = False
        replica.taken_out += 1
        # A stack that gave up waiting says so; what took the replica out is its cause.
        cause = exc.__cause__
        replica.last_error = str(cause if isinstance(cause, ModelError) else exc)
        self._start_checker()

    def _take_in(self, replica: _Replica) -> None:
        replica.up = True
        replica.epoch += 1
        replica.taken_in += 1
        # Its stack still thinks its server is down; it is not, so new requests go straight on.
        retrying = find_layer(replica.model, RetryingModel)
        if retrying is not None and retrying.outage.down:
            retrying.outage.end()
        if self.outage.down:
            self.outage.end()

    def _start_checker(self) -> None:
        if self._closed or (self._checker is not None and not self._checker.done()):
            return
        self._checker = asyncio.get_running_loop().create_task(self._check_out_replicas())

    async def _check_out_replicas(self) -> None:
        """Every ``check_interval`` seconds, take back the replicas that answer; end when all are up."""
        while any(not replica.up for replica in self._replicas):
            await asyncio.sleep(self.check_interval)
            out = [replica for replica in self._replicas if not replica.up]
            # A probe that raises counts as no answer: the check must outlive any one failure.
            answers = await asyncio.gather(
                *(self._probe(replica.url) for replica in out), return_exceptions=True
            )
            for replica, answered in zip(out, answers, strict=True):
                if answered is True and not replica.up:
                    self._take_in(replica)

    async def _answers(self, url: str) -> bool:
        """Whether ``GET {url}/models`` answers and lists this pool's model."""
        from personae.llm.openai import list_models  # the SDK import is deferred until needed

        try:
            served = await list_models(url, api_key=self._api_key, timeout=_CHECK_TIMEOUT)
        except ModelError:
            return False
        return self._name in served


class PoolSession:
    """A view of a :class:`ReplicaPool` that keeps its requests on one replica.

    A ChatModel itself (``name``, ``complete``, ``aclose``). Made by
    :meth:`ReplicaPool.session`; close it when the episode ends, with
    :meth:`close` or by using it in a ``with`` block, so the pool counts it
    no more. Closing a session leaves the pool open. If its replica is taken
    out, the session moves to another and stays there.

    Attributes:
        key: The label it was opened with.
    """

    def __init__(self, pool: ReplicaPool, key: str) -> None:
        self.key = key
        self.replica: _Replica | None = None
        self.closed = False
        self._pool = pool

    @property
    def name(self) -> str:
        """The pool's model name."""
        return self._pool.name

    @property
    def url(self) -> str | None:
        """The base URL (without credentials) of the replica it uses now, None before any."""
        return self.replica.shown if self.replica is not None else None

    async def complete(
        self,
        messages: list[Message],
        sampling: Sampling | None = None,
        **legacy: Unpack[LegacySampling],
    ) -> Completion:
        """Send one request to this session's replica; see :meth:`ReplicaPool.complete`.

        A closed session still answers (it is then placed like a plain pool
        request), so a late request at an episode's end is not lost.
        """
        sampling = resolve_sampling(sampling, legacy, self)
        return await self._pool._send(messages, sampling, None if self.closed else self)

    def close(self) -> None:
        """End the session: its replica counts it no more. Closing twice is harmless."""
        if not self.closed:
            self.closed = True
            ReplicaPool._release(self)

    async def aclose(self) -> None:
        """Same as :meth:`close`; the pool stays open."""
        self.close()

    def __enter__(self) -> PoolSession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else (self.url or "unplaced")
        return f"PoolSession({self.key!r}, {state})"


def build_pool(
    base_urls: Sequence[str],
    model: str,
    *,
    max_in_flight: int = 64,
    retries: int = 5,
    timeout: float = DEFAULT_TIMEOUT,
    server_wait: float = DEFAULT_SERVER_WAIT,
    api_key: str | None = None,
    check_interval: float = DEFAULT_CHECK_INTERVAL,
    replica_wait: float = DEFAULT_REPLICA_WAIT,
    timeout_retries: int = 1,
    structured: StructuredMode = "auto",
) -> ReplicaPool:
    """A :class:`ReplicaPool` with the standard client stack for each replica.

    Args:
        base_urls: Each replica's API root, e.g. ``"http://gpu-a:8000/v1"``.
        model: The model name every replica serves.
        max_in_flight: Most requests on the wire at once, per replica.
        retries: Retries of a request after an ordinary retryable error (HTTP
            429 or 500, a garbled body), on its replica.
        timeout: Seconds one attempt may take.
        server_wait: Seconds requests wait when every replica is out.
        api_key: The key to send to every replica (and with its health check).
        check_interval: Seconds between two checks of a replica that is out.
        replica_wait: Seconds a replica's own stack waits out a refused
            connection before the pool moves the request (0: move at once).
        timeout_retries: Times a request that timed out is sent again, on its replica.
        structured: How each replica's client asks for structured outputs
            (see :mod:`personae.llm.dialect`; ``"auto"`` detects the server).

    Returns:
        The pool; close it with :meth:`ReplicaPool.aclose`.

    Raises:
        ConfigError: No URLs, a URL given twice, or a bound out of range.

    Example::

        pool = build_pool(["http://a:8000/v1", "http://b:8000/v1"], "my-model")
    """
    urls = [url.rstrip("/") for url in base_urls]
    if not urls:
        raise ConfigError("a replica pool needs at least one base URL")
    twice = sorted({redact_url(url) for url in urls if urls.count(url) > 1})
    if twice:
        raise ConfigError(
            f"the replica URL {twice[0]} is listed twice; each replica of a pool is its own "
            "server, listed once"
        )
    stacks: list[tuple[str, ChatModel]] = [
        (
            url,
            build_client(
                url,
                model,
                max_in_flight=max_in_flight,
                retries=retries,
                api_key=api_key,
                timeout=timeout,
                server_wait=replica_wait,
                timeout_retries=timeout_retries,
                structured=structured,
            ),
        )
        for url in urls
    ]
    return ReplicaPool(
        stacks,
        name=model,
        server_wait=server_wait,
        check_interval=check_interval,
        api_key=api_key,
    )
