"""Cross-cutting behaviour around a :class:`~personae.llm.base.ChatModel`.

Each wrapper is itself a ChatModel around an ``inner`` one: same ``complete``
signature, ``name`` and ``aclose`` delegated. Compose them by nesting, or take
the standard stack from :func:`build_client`.

* :class:`RetryingModel` retries retryable :class:`~personae.errors.ModelError`\\ s
  with exponential backoff and full jitter.
* :class:`ConcurrencyLimitedModel` bounds the requests in flight.
* :class:`AccountingModel` keeps running totals of calls, errors and tokens.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from dataclasses import dataclass
from typing import Any, TypeVar

from personae.errors import ConfigError, ModelError
from personae.llm.base import ChatModel, Completion, Message

__all__ = [
    "AccountingModel",
    "ConcurrencyLimitedModel",
    "RetryingModel",
    "UsageSnapshot",
    "build_client",
    "find_layer",
]

_Layer = TypeVar("_Layer")


class _Wrapper:
    """Delegation shared by the wrappers."""

    def __init__(self, inner: ChatModel) -> None:
        self.inner = inner

    @property
    def name(self) -> str:
        """The wrapped model's name."""
        return self.inner.name

    async def aclose(self) -> None:
        """Close the wrapped model."""
        await self.inner.aclose()


class RetryingModel(_Wrapper):
    """Retries retryable model errors with exponential backoff and full jitter.

    The wait before retry ``k`` (1-based) is drawn uniformly from
    ``[0, min(max_delay, base_delay * 2 ** (k - 1))]`` (exactly that bound when
    ``jitter`` is off) and spent in ``asyncio.sleep``, so other tasks keep running.
    Errors with ``retryable=False`` and anything that is not a ModelError pass
    through at once.

    Args:
        inner: The model to call.
        attempts: Most attempts per request, the first included (>= 1).
        base_delay: Seconds of the first backoff bound.
        max_delay: Upper bound on any one wait, in seconds.
        jitter: Draw each wait at random below its bound ("full jitter"), so
            that many failed requests do not retry in lockstep.
        rng: Source of the jitter; pass a seeded one for repeatable waits.

    Attributes:
        retries: Retries made so far, over all requests.

    Raises:
        ConfigError: A bound is out of range.
    """

    def __init__(
        self,
        inner: ChatModel,
        *,
        attempts: int = 5,
        base_delay: float = 0.5,
        max_delay: float = 30.0,
        jitter: bool = True,
        rng: random.Random | None = None,
    ) -> None:
        if attempts < 1:
            raise ConfigError(f"attempts must be >= 1, got {attempts}")
        if base_delay < 0 or max_delay < 0:
            raise ConfigError(
                f"base_delay and max_delay must be >= 0, got {base_delay} and {max_delay}"
            )
        super().__init__(inner)
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.jitter = jitter
        self._rng = rng or random.Random()
        self.retries = 0

    def backoff(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first retry)."""
        bound = min(self.max_delay, self.base_delay * 2.0 ** min(retry - 1, 60))
        return self._rng.uniform(0.0, bound) if self.jitter else bound

    async def complete(
        self,
        messages: list[Message],
        *,
        max_tokens: int = 128,
        temperature: float = 0.8,
        top_p: float = 1.0,
        seed: int | None = None,
        stop: list[str] | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> Completion:
        """Call ``inner`` until it succeeds, fails for good or runs out of attempts.

        Returns:
            The successful completion, its ``attempts`` and ``latency_ms``
            covering every attempt and wait.

        Raises:
            ModelError: A non-retryable error (at once), or the last retryable one
                once ``attempts`` are spent, its message saying how many were made.
        """
        started = time.perf_counter()
        for attempt in range(1, self.attempts + 1):
            try:
                completion = await self.inner.complete(
                    messages,
                    max_tokens=max_tokens,
                    temperature=temperature,
                    top_p=top_p,
                    seed=seed,
                    stop=stop,
                    response_format=response_format,
                )
            except ModelError as exc:
                if not exc.retryable:
                    raise
                if attempt == self.attempts:
                    raise _gave_up(exc, attempt) from exc
                self.retries += 1
                await asyncio.sleep(self.backoff(attempt))
                continue
            if attempt == 1:
                return completion
            return dataclasses.replace(
                completion,
                attempts=attempt - 1 + completion.attempts,
                latency_ms=(time.perf_counter() - started) * 1000.0,
            )
        raise AssertionError("unreachable: the loop returns or raises")


def _gave_up(exc: ModelError, attempts: int) -> ModelError:
    message = f"{exc} (gave up after {attempts} attempt{'s' if attempts != 1 else ''})"
    try:
        return type(exc)(message, retryable=exc.retryable)
    except TypeError:  # a subclass with its own constructor: keep the message at least
        return ModelError(message, retryable=exc.retryable)


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

    def __init__(self, inner: ChatModel, max_in_flight: int) -> None:
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
        *,
        max_tokens: int = 128,
        temperature: float = 0.8,
        top_p: float = 1.0,
        seed: int | None = None,
        stop: list[str] | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> Completion:
        """Wait for a free slot, then call ``inner``; see :meth:`ChatModel.complete`."""
        async with self._slots:
            self.in_flight += 1
            if self.in_flight > self.peak_in_flight:
                self.peak_in_flight = self.in_flight
            try:
                return await self.inner.complete(
                    messages,
                    max_tokens=max_tokens,
                    temperature=temperature,
                    top_p=top_p,
                    seed=seed,
                    stop=stop,
                    response_format=response_format,
                )
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

    def __init__(self, inner: ChatModel) -> None:
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
        *,
        max_tokens: int = 128,
        temperature: float = 0.8,
        top_p: float = 1.0,
        seed: int | None = None,
        stop: list[str] | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> Completion:
        """Call ``inner`` and count the outcome; see :meth:`ChatModel.complete`."""
        try:
            completion = await self.inner.complete(
                messages,
                max_tokens=max_tokens,
                temperature=temperature,
                top_p=top_p,
                seed=seed,
                stop=stop,
                response_format=response_format,
            )
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
    timeout: float = 600.0,
) -> AccountingModel:
    """The standard client stack for an OpenAI-compatible server.

    From the outside in::

        AccountingModel            one count per caller request, retries included
        └── RetryingModel          backs off *outside* the limiter
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
        retries: Retries after the first attempt (0 turns retrying off).
        api_key: The key to send; see :func:`~personae.llm.openai.resolve_api_key`.
        timeout: Seconds to wait for one attempt. Generous by default: a CPU
            server with 64 requests in flight takes minutes per answer, and a
            timed-out request is sent again, which costs the server the work twice.

    Returns:
        The stack's outermost layer; :func:`find_layer` reaches the others.

    Raises:
        ConfigError: ``max_in_flight`` or ``retries`` is out of range.
    """
    from personae.llm.openai import OpenAIChatModel  # the SDK import is deferred until needed

    if retries < 0:
        raise ConfigError(f"retries must be >= 0, got {retries}")
    if max_in_flight < 1:
        raise ConfigError(f"max_in_flight must be >= 1, got {max_in_flight}")
    client = OpenAIChatModel(
        base_url,
        model,
        api_key=api_key,
        timeout=timeout,
        max_connections=max(256, max_in_flight),
    )
    limited = ConcurrencyLimitedModel(client, max_in_flight)
    return AccountingModel(RetryingModel(limited, attempts=retries + 1))
