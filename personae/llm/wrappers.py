"""Cross-cutting behaviour around a :class:`~personae.llm.base.ChatModel`.

Each wrapper is itself a ChatModel around an ``inner`` one: same ``complete``
signature, ``name`` and ``aclose`` delegated. The request's
:class:`~personae.llm.base.Sampling` is passed on untouched (the same object,
extensions included), through :func:`~personae.llm.base.complete`, so an inner
model written for personae 0.2 works too. Compose them by nesting, or take the
standard stack from :func:`build_client`.

* :class:`RetryingModel` retries retryable :class:`~personae.errors.ModelError`\\ s
  with exponential backoff and full jitter, and waits out a server that is down.
* :class:`ConcurrencyLimitedModel` bounds the requests in flight.
* :class:`AccountingModel` keeps running totals of calls, errors and tokens.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from personae.errors import ConfigError, ModelError, ModelTimeout, ModelUnreachable
from personae.llm.base import (
    ChatModel,
    Completion,
    LegacyChatModel,
    LegacySampling,
    Message,
    Sampling,
    complete,
    resolve_sampling,
)
from personae.llm.outage import ServerOutage, is_outage

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from personae.llm.dialect import StructuredMode

__all__ = [
    "DEFAULT_SERVER_WAIT",
    "DEFAULT_TIMEOUT",
    "AccountingModel",
    "ConcurrencyLimitedModel",
    "RetryingModel",
    "UsageSnapshot",
    "build_client",
    "find_layer",
]

_Layer = TypeVar("_Layer")

#: Seconds one request may take before it is abandoned (and sent again once).
DEFAULT_TIMEOUT = 600.0
#: Seconds a run waits out a server that cannot be reached before requests fail.
DEFAULT_SERVER_WAIT = 1800.0


class _Wrapper:
    """Delegation shared by the wrappers."""

    def __init__(self, inner: ChatModel | LegacyChatModel) -> None:
        self.inner = inner

    @property
    def name(self) -> str:
        """The wrapped model's name."""
        return self.inner.name

    async def aclose(self) -> None:
        """Close the wrapped model."""
        await self.inner.aclose()


class RetryingModel(_Wrapper):
    """Retries failed requests; waits out a server that is down.

    Three kinds of failure are told apart:

    * **The server is down** (connection refused or reset, HTTP 502/503/504):
      the shared :class:`~personae.llm.outage.ServerOutage` marks it down, one
      request at a time probes it (waits capped at ``outage.probe_interval``),
      the others wait, and every request goes on once it answers. Only an
      outage longer than ``server_wait`` seconds fails requests. These retries
      do not count against ``attempts``.
    * **No answer within the client's timeout**: a hung or swamped server. The
      request is abandoned and sent again at most ``timeout_attempts`` times
      in all, since each try may cost the server the whole request again.
    * **Any other retryable error** (HTTP 429, 500, a garbled body): retried
      with exponential backoff and full jitter, ``attempts`` in all.

    The wait before retry ``k`` (1-based) is drawn uniformly from
    ``[0, min(max_delay, base_delay * 2 ** (k - 1))]`` (exactly that bound when
    ``jitter`` is off) and spent in ``asyncio.sleep``, so other tasks keep running.
    Errors with ``retryable=False`` and anything that is not a ModelError pass
    through at once.

    Args:
        inner: The model to call.
        attempts: Most attempts per request for ordinary retryable errors (>= 1).
        base_delay: Seconds of the first backoff bound.
        max_delay: Upper bound on any one wait, in seconds.
        jitter: Draw each wait at random below its bound ("full jitter"), so
            that many failed requests do not retry in lockstep.
        rng: Source of the jitter; pass a seeded one for repeatable waits.
        server_wait: Seconds of continuous outage to wait out before failing.
        timeout_attempts: Most attempts per request that end in a timeout (>= 1).
        outage: Share one outage state between several wrappers of one server.

    Attributes:
        retries: Retries made so far, over all requests.
        outage: The server's outage state (the progress bar reads it).

    Raises:
        ConfigError: A bound is out of range.
    """

    def __init__(
        self,
        inner: ChatModel | LegacyChatModel,
        *,
        attempts: int = 5,
        base_delay: float = 0.5,
        max_delay: float = 30.0,
        jitter: bool = True,
        rng: random.Random | None = None,
        server_wait: float = 1800.0,
        timeout_attempts: int = 2,
        outage: ServerOutage | None = None,
    ) -> None:
        if attempts < 1:
            raise ConfigError(f"attempts must be >= 1, got {attempts}")
        if timeout_attempts < 1:
            raise ConfigError(f"timeout_attempts must be >= 1, got {timeout_attempts}")
        if base_delay < 0 or max_delay < 0:
            raise ConfigError(
                f"base_delay and max_delay must be >= 0, got {base_delay} and {max_delay}"
            )
        if server_wait < 0:
            raise ConfigError(f"server_wait must be >= 0 seconds, got {server_wait}")
        super().__init__(inner)
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.jitter = jitter
        self.timeout_attempts = timeout_attempts
        self.outage = outage or ServerOutage(server_wait)
        self._rng = rng or random.Random()
        self.retries = 0

    def backoff(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first retry)."""
        bound = min(self.max_delay, self.base_delay * 2.0 ** min(retry - 1, 60))
        return self._rng.uniform(0.0, bound) if self.jitter else bound

    async def complete(
        self,
        messages: list[Message],
        sampling: Sampling | None = None,
        **legacy: Unpack[LegacySampling],
    ) -> Completion:
        """Call ``inner`` until it succeeds, fails for good or runs out of attempts.

        Returns:
            The successful completion, its ``attempts`` and ``latency_ms``
            covering every attempt and wait.

        Raises:
            ModelError: A non-retryable error (at once), or the last retryable one
                once its budget is spent, its message saying how many attempts were made.
            ModelUnreachable: The server stayed down longer than ``server_wait``.
        """
        sampling = resolve_sampling(sampling, legacy, self)
        started = time.perf_counter()
        outage = self.outage
        sent = failures = timeouts = down = 0
        while True:
            probing = False
            if outage.down:
                if outage.probe_lock.locked():
                    if not await outage.wait_until_back():
                        raise outage.gave_up(ModelUnreachable(outage.last_error or "unreachable"))
                    continue
                await outage.probe_lock.acquire()
                probing = True
            try:
                sent += 1
                completion = await complete(self.inner, messages, sampling)
            except ModelError as exc:
                if exc.retryable and is_outage(exc):
                    outage.begin(exc)
                    if outage.expired():
                        raise outage.gave_up(exc) from exc
                    down += 1
                    self.retries += 1
                    await asyncio.sleep(min(self.backoff(down), outage.probe_interval))
                    continue
                if probing:
                    outage.end()  # it answered, even if not with a completion
                if not exc.retryable:
                    raise
                if isinstance(exc, ModelTimeout):
                    timeouts += 1
                    if timeouts >= self.timeout_attempts:
                        raise _gave_up(exc, sent) from exc
                else:
                    failures += 1
                    if failures >= self.attempts:
                        raise _gave_up(exc, sent) from exc
                self.retries += 1
                await asyncio.sleep(self.backoff(failures + timeouts))
                continue
            finally:
                if probing:
                    outage.probe_lock.release()
            if outage.down:
                outage.end()
            if sent == 1:
                return completion
            return dataclasses.replace(
                completion,
                attempts=sent - 1 + completion.attempts,
                latency_ms=(time.perf_counter() - started) * 1000.0,
            )


def _gave_up(exc: ModelError, attempts: int) -> ModelError:
    """``exc`` with the attempts named: same class, ``retryable`` and ``status``."""
    message = f"{exc} (gave up after {attempts} attempt{'s' if attempts != 1 else ''})"
    try:
        error = copy.copy(exc)  # keeps the class and its attributes (status, ...)
    except Exception:  # a subclass whose constructor copy cannot call: keep the message at least
        return ModelError(message, retryable=exc.retryable, status=exc.status)
    error.args = (message,)
    return error


class ConcurrencyLimitedModel(_Wrapper):
    """Lets at most ``max_in_flight`` requests reach ``inner`` at once.

    Callers beyond the bound wait their turn (first come, first served).

    Args:
        inner: The model to call.
        max_in_flight: Most concurrent calls of ``inner`` (>= 1).

    Attributes:
        max_in_flight: The bound.
        in_flight: Calls of ``inner`` running now.
        peak_in_flight: The most that ever ran at once.

    Raises:
        ConfigError: ``max_in_flight`` is below 1.
    """

    def __init__(self, inner: ChatModel | LegacyChatModel, max_in_flight: int) -> None:
        if max_in_flight < 1:
            raise ConfigError(f"max_in_flight must be >= 1, got {max_in_flight}")
        super().__init__(inner)
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self.peak_in_flight = 0
        self._slots = asyncio.Semaphore(max_in_flight)

    async def complete(
        self,
        messages: list[Message],
        sampling: Sampling | None = None,
        **legacy: Unpack[LegacySampling],
    ) -> Completion:
        """Wait for a free slot, then call ``inner``; see :meth:`ChatModel.complete`."""
        sampling = resolve_sampling(sampling, legacy, self)
        async with self._slots:
            self.in_flight += 1
            if self.in_flight > self.peak_in_flight:
                self.peak_in_flight = self.in_flight
            try:
                return await complete(self.inner, messages, sampling)
            finally:
                self.in_flight -= 1


@dataclass(frozen=True, kw_only=True, slots=True)
class UsageSnapshot:
    """Totals an :class:`AccountingModel` has counted, at one moment.

    Attributes:
        calls: Finished calls, successful or not.
        errors: Calls that raised.
        prompt_tokens: Prompt tokens of the successful calls.
        completion_tokens: Generated tokens of the successful calls.
        latency_ms: Summed latency of the successful calls.
        attempts: HTTP attempts behind the successful calls (retries included).
    """

    calls: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0
    attempts: int = 0

    @property
    def total_tokens(self) -> int:
        """Prompt and generated tokens together."""
        return self.prompt_tokens + self.completion_tokens

    @property
    def mean_latency_ms(self) -> float:
        """Mean latency of a successful call (0 when there was none)."""
        succeeded = self.calls - self.errors
        return self.latency_ms / succeeded if succeeded else 0.0


class AccountingModel(_Wrapper):
    """Keeps running totals of what passes through it; read them with :meth:`snapshot`.

    Counting is a few integer additions per call, cheap enough to leave on.

    Args:
        inner: The model to call.
    """

    def __init__(self, inner: ChatModel | LegacyChatModel) -> None:
        super().__init__(inner)
        self.reset()

    def reset(self) -> None:
        """Set every total back to zero."""
        self._calls = 0
        self._errors = 0
        self._prompt_tokens = 0
        self._completion_tokens = 0
        self._latency_ms = 0.0
        self._attempts = 0

    def snapshot(self) -> UsageSnapshot:
        """The totals now."""
        return UsageSnapshot(
            calls=self._calls,
            errors=self._errors,
            prompt_tokens=self._prompt_tokens,
            completion_tokens=self._completion_tokens,
            latency_ms=self._latency_ms,
            attempts=self._attempts,
        )

    async def complete(
        self,
        messages: list[Message],
        sampling: Sampling | None = None,
        **legacy: Unpack[LegacySampling],
    ) -> Completion:
        """Call ``inner`` and count the outcome; see :meth:`ChatModel.complete`."""
        sampling = resolve_sampling(sampling, legacy, self)
        try:
            completion = await complete(self.inner, messages, sampling)
        except Exception:
            self._calls += 1
            self._errors += 1
            raise
        self._calls += 1
        self._prompt_tokens += completion.prompt_tokens
        self._completion_tokens += completion.completion_tokens
        self._latency_ms += completion.latency_ms
        self._attempts += completion.attempts
        return completion


def find_layer(model: ChatModel, kind: type[_Layer]) -> _Layer | None:
    """The first layer of type ``kind`` in a stack of wrappers, outermost first.

    Example::

        limiter = find_layer(build_client(url, name), ConcurrencyLimitedModel)
        print(limiter.peak_in_flight)
    """
    layer: object = model
    while layer is not None:
        if isinstance(layer, kind):
            return layer
        layer = getattr(layer, "inner", None)
    return None


def build_client(
    base_url: str,
    model: str,
    *,
    max_in_flight: int = 64,
    retries: int = 5,
    api_key: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    server_wait: float = DEFAULT_SERVER_WAIT,
    timeout_retries: int = 1,
    structured: StructuredMode = "auto",
) -> AccountingModel:
    """The standard client stack for an OpenAI-compatible server.

    From the outside in::

        AccountingModel            one count per caller request, retries included
        └── RetryingModel          backs off *outside* the limiter; waits out outages
            └── ConcurrencyLimitedModel   bounds requests actually on the wire
                └── OpenAIChatModel

    The limiter sits inside the retry loop on purpose: a request waiting out its
    backoff holds no slot, so ``max_in_flight`` counts only requests the server
    is working on, and a burst of failures cannot starve healthy requests of
    slots while it sleeps. Accounting sits outside so that one caller request is
    one call, however many attempts it took (``UsageSnapshot.attempts`` has those).

    Args:
        base_url: The API root, e.g. ``"http://127.0.0.1:8000/v1"``.
        model: The served model name.
        max_in_flight: Most requests on the wire at once.
        retries: Retries after the first attempt for ordinary retryable errors
            (HTTP 429 and 500, garbled bodies; 0 turns retrying off).
        api_key: The key to send; see :func:`~personae.llm.openai.resolve_api_key`.
        timeout: Seconds to wait for one attempt. Generous by default: a CPU
            server with 64 requests in flight takes a minute or two per answer,
            and a timed-out request is sent again, which costs the server the
            work twice.
        server_wait: Seconds a run waits out a server that cannot be reached
            (restarting, rebooting) before its requests fail.
        timeout_retries: Times a request that timed out is sent again.
        structured: The client's structured-output mode (``"auto"``, ``"vllm"``,
            ``"openai"``, ``"none"``); see :class:`~personae.llm.openai.OpenAIChatModel`.

    Returns:
        The stack's outermost layer; :func:`find_layer` reaches the others.

    Raises:
        ConfigError: A bound is out of range or ``structured`` is not a mode.
    """
    from personae.llm.openai import OpenAIChatModel  # the SDK import is deferred until needed

    if retries < 0:
        raise ConfigError(f"retries must be >= 0, got {retries}")
    if timeout_retries < 0:
        raise ConfigError(f"timeout_retries must be >= 0, got {timeout_retries}")
    if max_in_flight < 1:
        raise ConfigError(f"max_in_flight must be >= 1, got {max_in_flight}")
    if timeout <= 0:
        raise ConfigError(f"timeout must be > 0 seconds, got {timeout}")
    client = OpenAIChatModel(
        base_url,
        model,
        api_key=api_key,
        timeout=timeout,
        max_connections=max(256, max_in_flight),
        structured=structured,
    )
    limited = ConcurrencyLimitedModel(client, max_in_flight)
    retrying = RetryingModel(
        limited,
        attempts=retries + 1,
        server_wait=server_wait,
        timeout_attempts=timeout_retries + 1,
    )
    return AccountingModel(retrying)
