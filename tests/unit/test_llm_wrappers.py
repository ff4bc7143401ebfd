"""Retry, concurrency limit and accounting wrappers, driven by the in-package fakes."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from personae.errors import ConfigError, ModelError, ModelTimeout, ModelUnreachable
from personae.llm.base import ChatModel, Completion, Message, Sampling
from personae.llm.fake import FunctionModel, RecordedCall, ScriptedModel
from personae.llm.openai import OpenAIChatModel
from personae.llm.wrappers import (
    AccountingModel,
    ConcurrencyLimitedModel,
    RetryingModel,
    UsageSnapshot,
    build_client,
    find_layer,
)

HELLO: list[Message] = [{"role": "user", "content": "hello there"}]


def flaky(failures: int, error: ModelError) -> FunctionModel:
    """A fake that raises ``error`` on its first ``failures`` calls, then answers."""

    def reply(messages: list[Message], call: RecordedCall) -> str:
        if model.call_count <= failures:
            raise error
        return "recovered"

    model = FunctionModel(reply, name="flaky")
    return model


# --- RetryingModel ---------------------------------------------------------------


async def test_retryable_errors_are_retried_until_success() -> None:
    inner = flaky(2, ModelError("HTTP 503", retryable=True))
    model = RetryingModel(inner, attempts=5, base_delay=0.001, jitter=False)

    reply = await model.complete(HELLO, Sampling(seed=3))

    assert reply.text == "recovered"
    assert reply.attempts == 3
    assert inner.call_count == 3
    assert [call.seed for call in inner.calls] == [3, 3, 3], "every attempt resends the seed"
    assert model.retries == 2


async def test_latency_of_a_retried_call_covers_every_attempt_and_wait() -> None:
    inner = flaky(2, ModelError("HTTP 503", retryable=True))
    model = RetryingModel(inner, base_delay=0.02, jitter=False)

    reply = await model.complete(HELLO)

    assert reply.latency_ms >= (0.02 + 0.04) * 1000 * 0.9


async def test_giving_up_says_how_many_attempts_were_made_and_keeps_the_class() -> None:
    inner = flaky(100, ModelError("HTTP 500 from http://x/v1", retryable=True, status=500))
    model = RetryingModel(inner, attempts=4, base_delay=0.0)

    with pytest.raises(ModelError) as caught:
        await model.complete(HELLO)

    assert "gave up after 4 attempts" in str(caught.value)
    assert "HTTP 500 from http://x/v1" in str(caught.value)
    assert caught.value.status == 500 and caught.value.retryable
    assert inner.call_count == 4
    assert isinstance(caught.value.__cause__, ModelError)


async def test_an_unreachable_server_is_waited_out_beyond_the_attempts() -> None:
    inner = flaky(12, ModelUnreachable("could not reach http://x/v1"))
    model = RetryingModel(inner, attempts=2, base_delay=0.001, server_wait=30)
    model.outage.probe_interval = 0.01

    reply = await model.complete(HELLO)

    assert reply.text == "recovered" and inner.call_count == 13
    assert model.outage.outages == 1 and not model.outage.down


async def test_while_the_server_is_down_one_request_probes_and_the_others_wait() -> None:
    down = {"until": time.monotonic() + 0.5}
    sent_while_down = []

    async def reply(messages: list[Message], call: RecordedCall) -> str:
        if time.monotonic() < down["until"]:
            sent_while_down.append(call)
            raise ModelUnreachable("connection refused")
        return "back"

    inner = FunctionModel(reply)
    model = RetryingModel(inner, base_delay=0.05, max_delay=0.05, jitter=False, server_wait=30)
    model.outage.probe_interval = 0.05

    replies = await asyncio.gather(*(model.complete(HELLO) for _ in range(20)))

    assert [r.text for r in replies] == ["back"] * 20
    # 20 first attempts, then about one probe per 50 ms for 0.5 s, not 20 per round.
    assert len(sent_while_down) <= 20 + 15


async def test_an_outage_longer_than_server_wait_fails_with_the_limit_named() -> None:
    inner = flaky(10_000, ModelUnreachable("could not reach http://x/v1"))
    model = RetryingModel(inner, base_delay=0.01, server_wait=0.3)
    model.outage.probe_interval = 0.02

    with pytest.raises(ModelUnreachable, match="--server-wait") as caught:
        await model.complete(HELLO)
    assert not caught.value.retryable


async def test_timeouts_have_a_budget_of_their_own() -> None:
    inner = flaky(100, ModelTimeout("did not answer within 1 s"))
    model = RetryingModel(inner, attempts=5, base_delay=0.0, timeout_attempts=2)

    with pytest.raises(ModelTimeout, match="gave up after 2 attempts"):
        await model.complete(HELLO)
    assert inner.call_count == 2


async def test_non_retryable_errors_are_raised_at_once() -> None:
    error = ModelError("HTTP 400: max_tokens too large", retryable=False)
    inner = flaky(100, error)
    model = RetryingModel(inner, attempts=5, base_delay=0.0)

    with pytest.raises(ModelError) as caught:
        await model.complete(HELLO)

    assert caught.value is error
    assert inner.call_count == 1


async def test_errors_that_are_not_model_errors_are_not_retried() -> None:
    inner = ScriptedModel([ValueError("a bug"), "never reached"])
    model = RetryingModel(inner, base_delay=0.0)

    with pytest.raises(ValueError, match="a bug"):
        await model.complete(HELLO)
    assert inner.remaining == 1


def test_backoff_grows_exponentially_up_to_the_cap() -> None:
    model = RetryingModel(ScriptedModel(), base_delay=0.5, max_delay=3.0, jitter=False)
    assert [model.backoff(k) for k in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert model.backoff(10_000) == 3.0


def test_full_jitter_stays_below_the_bound_and_follows_the_rng() -> None:
    first = RetryingModel(ScriptedModel(), base_delay=1.0, max_delay=8.0, rng=random.Random(1))
    second = RetryingModel(ScriptedModel(), base_delay=1.0, max_delay=8.0, rng=random.Random(1))

    waits = [first.backoff(k) for k in range(1, 8)]

    assert waits == [second.backoff(k) for k in range(1, 8)]
    bounds = [1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0]
    assert all(0.0 <= wait <= bound for wait, bound in zip(waits, bounds, strict=True))
    assert len(set(waits)) == len(waits), "jitter should spread the waits"


async def test_backoff_sleeps_without_blocking_the_event_loop() -> None:
    inner = flaky(2, ModelError("HTTP 503", retryable=True))
    model = RetryingModel(inner, base_delay=0.05, jitter=False)  # waits 0.05 s, then 0.1 s
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    started = time.perf_counter()
    await model.complete(HELLO)
    elapsed = time.perf_counter() - started
    ticking.cancel()

    assert elapsed >= 0.15 * 0.9
    assert ticks >= 10, f"the loop ran only {ticks} ticks during {elapsed:.2f} s of backoff"


@pytest.mark.parametrize(
    "kwargs", [{"attempts": 0}, {"base_delay": -1.0}, {"max_delay": -0.1}], ids=str
)
def test_retry_bounds_are_validated(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        RetryingModel(ScriptedModel(), **kwargs)  # type: ignore[arg-type]


# --- ConcurrencyLimitedModel -----------------------------------------------------


async def test_concurrency_bound_is_never_exceeded() -> None:
    running = 0
    most_seen = 0

    async def slow_reply(messages: list[Message], call: RecordedCall) -> str:
        nonlocal running, most_seen
        running += 1
        most_seen = max(most_seen, running)
        await asyncio.sleep(0.01)
        running -= 1
        return f"reply {call.seed}"

    model = ConcurrencyLimitedModel(FunctionModel(slow_reply), max_in_flight=8)

    replies = await asyncio.gather(*(model.complete(HELLO, Sampling(seed=i)) for i in range(50)))

    assert [r.text for r in replies] == [f"reply {i}" for i in range(50)]
    assert most_seen == 8
    assert model.peak_in_flight == 8
    assert model.in_flight == 0


async def test_a_failed_call_gives_its_slot_back() -> None:
    model = ConcurrencyLimitedModel(ScriptedModel([ModelError("x"), "ok"]), max_in_flight=1)
    with pytest.raises(ModelError):
        await model.complete(HELLO)
    assert model.in_flight == 0
    assert (await model.complete(HELLO)).text == "ok"


def test_concurrency_bound_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="max_in_flight"):
        ConcurrencyLimitedModel(ScriptedModel(), max_in_flight=0)


async def test_a_request_backing_off_does_not_hold_a_slot() -> None:
    """The order build_client uses: retry outside, limit inside."""
    first_call = True

    def reply(messages: list[Message], call: RecordedCall) -> str:
        nonlocal first_call
        if first_call:
            first_call = False
            raise ModelError("HTTP 503", retryable=True)
        return messages[-1]["content"]

    limited = ConcurrencyLimitedModel(FunctionModel(reply), max_in_flight=1)
    model = RetryingModel(limited, base_delay=0.2, jitter=False)
    finished: list[str] = []

    async def ask(text: str) -> None:
        await model.complete([{"role": "user", "content": text}])
        finished.append(text)

    first = asyncio.create_task(ask("fails once"))
    await asyncio.sleep(0.01)  # let the first request fail and start backing off
    await ask("healthy")
    await first

    assert finished == ["healthy", "fails once"]


# --- AccountingModel -------------------------------------------------------------


async def test_accounting_totals_calls_errors_tokens_and_attempts() -> None:
    inner = ScriptedModel(
        [
            Completion(text="a", model="m", prompt_tokens=10, completion_tokens=2, latency_ms=5.0),
            ModelError("bad request"),
            Completion(
                text="b",
                model="m",
                prompt_tokens=7,
                completion_tokens=3,
                latency_ms=4.0,
                attempts=2,
            ),
        ]
    )
    model = AccountingModel(inner)

    await model.complete(HELLO)
    with pytest.raises(ModelError):
        await model.complete(HELLO)
    await model.complete(HELLO)

    usage = model.snapshot()
    assert usage == UsageSnapshot(
        calls=3, errors=1, prompt_tokens=17, completion_tokens=5, latency_ms=9.0, attempts=3
    )
    assert usage.total_tokens == 22
    assert usage.mean_latency_ms == 4.5
    with pytest.raises(AttributeError):
        usage.calls = 0  # type: ignore[misc]

    model.reset()
    assert model.snapshot() == UsageSnapshot()


async def test_accounting_under_many_concurrent_calls() -> None:
    model = AccountingModel(FunctionModel.echo(latency=0.001))
    await asyncio.gather(*(model.complete(HELLO, Sampling(seed=i)) for i in range(200)))
    usage = model.snapshot()
    assert usage.calls == 200
    assert usage.prompt_tokens == 200 * 2  # "hello there"
    assert usage.completion_tokens == 200 * 2  # "reply N"


# --- composition -----------------------------------------------------------------


async def test_wrappers_delegate_name_and_aclose() -> None:
    inner = ScriptedModel(name="qwen")
    model = AccountingModel(RetryingModel(ConcurrencyLimitedModel(inner, 2)))

    assert model.name == "qwen"
    assert isinstance(model, ChatModel)
    await model.aclose()
    assert inner.closed


async def test_build_client_stacks_accounting_retry_limit_client_in_that_order() -> None:
    model = build_client("http://127.0.0.1:9/v1", "tiny", max_in_flight=7, retries=2)
    try:
        assert model.name == "tiny"
        retrying = model.inner
        assert isinstance(retrying, RetryingModel)
        assert retrying.attempts == 3
        limited = retrying.inner
        assert isinstance(limited, ConcurrencyLimitedModel)
        assert limited.max_in_flight == 7
        assert isinstance(limited.inner, OpenAIChatModel)
        assert limited.inner.base_url == "http://127.0.0.1:9/v1"
        assert find_layer(model, ConcurrencyLimitedModel) is limited
        assert find_layer(model, ScriptedModel) is None
    finally:
        await model.aclose()


@pytest.mark.parametrize("kwargs", [{"retries": -1}, {"max_in_flight": 0}], ids=str)
def test_build_client_validates_its_bounds(kwargs: dict[str, int]) -> None:
    with pytest.raises(ConfigError):
        build_client("http://127.0.0.1:9/v1", "tiny", **kwargs)  # type: ignore[arg-type]
