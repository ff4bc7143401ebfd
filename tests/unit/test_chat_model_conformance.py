"""The ChatModel contract, checked on every implementation personae ships.

Each implementation enters through a :class:`Harness`: it builds the model
around a backend that records what reached it and can be told to fail the
next request. The fakes and the wrappers around a fake record the
:class:`Sampling` they received; :class:`OpenAIChatModel` runs against the
loopback fault server of ``tests/support``, which records request bodies.

A new backend passes the same tests by adding its harness to ``HARNESSES``::

    HARNESSES = [..., TransformersHarness]
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest

from personae.errors import ModelError, ModelTimeout, ModelUnreachable
from personae.llm import base
from personae.llm.base import (
    ChatModel,
    Choice,
    Completion,
    JsonSchema,
    LegacyChatModel,
    Message,
    Regex,
    Sampling,
    StructuredOutput,
    complete,
)
from personae.llm.fake import FunctionModel, RecordedCall, ScriptedModel
from personae.llm.hf import Request, TransformersModel
from personae.llm.openai import OpenAIChatModel
from personae.llm.pool import ReplicaPool, build_pool
from personae.llm.wrappers import AccountingModel, ConcurrencyLimitedModel, RetryingModel
from tests.support.fault_server import Fault, FaultServer
from tests.support.tiny_hf import tiny_model

HELLO: list[Message] = [
    {"role": "system", "content": "You are Sam."},
    {"role": "user", "content": "How are you?"},
]
SCHEMA = {"type": "object", "properties": {"mood": {"type": "integer"}}, "required": ["mood"]}
FAILURES = ("status-400", "status-500", "unreachable", "timeout")


@dataclass
class Received:
    """What one request looked like when it reached the backend, in one shape for all.

    Attributes:
        constraint: The structured-output constraint as the backend got it (the
            typed object for a fake, ``(field, value)`` of the request body for a server).
        extras: Request fields beyond the standard ones (a server), or the
            Sampling's extensions (a fake).
        sampling: The Sampling object the backend received, where it receives one.
    """

    max_tokens: int | None
    temperature: float | None
    top_p: float | None
    seed: int | None
    stop: list[str] | None
    constraint: Any = None
    extras: Mapping[str, Any] = field(default_factory=dict)
    sampling: Sampling | None = None


class Harness:
    """One implementation under test: how to build it, what it received, how to make it fail."""

    id: ClassVar[str]

    def __init__(self) -> None:
        self.models: list[ChatModel] = []

    def build(self) -> ChatModel:
        """A fresh model; failures asked for with :meth:`fail` apply to it."""
        raise NotImplementedError

    def received(self) -> list[Received]:
        """Every request that reached the backend, oldest first."""
        raise NotImplementedError

    def fail(self, kind: str) -> None:
        """Make the next request fail with ``kind`` (one of :data:`FAILURES`)."""
        raise NotImplementedError

    def expected_constraint(self, constraint: StructuredOutput) -> Any:
        """What :attr:`Received.constraint` must be for ``constraint``."""
        raise NotImplementedError

    def check_extensions(self, sent: Sampling, got: Received) -> None:
        """Assert that ``sent.extensions`` arrived as this backend understands them."""
        raise NotImplementedError

    @contextlib.asynccontextmanager
    async def opened(self) -> AsyncIterator[ChatModel]:
        model = self.build()
        try:
            yield model
        finally:
            await model.aclose()


# --------------------------------------------------------------------------- the fakes


def _from_call(call: RecordedCall) -> Received:
    return Received(
        max_tokens=call.max_tokens,
        temperature=call.temperature,
        top_p=call.top_p,
        seed=call.seed,
        stop=call.stop,
        constraint=call.sampling.response_format,
        extras=call.extensions,
        sampling=call.sampling,
    )


class FunctionHarness(Harness):
    """A FunctionModel whose function raises the failure asked for."""

    id = "FunctionModel"

    def __init__(self) -> None:
        super().__init__()
        self.fake = FunctionModel(self._reply, name="fake")
        self._failures: list[ModelError] = []

    def _reply(self, messages: list[Message], call: RecordedCall) -> str:
        if self._failures:
            raise self._failures.pop(0)
        return f"reply {call.seed}"

    def build(self) -> ChatModel:
        return self.fake

    def received(self) -> list[Received]:
        return [_from_call(call) for call in self.fake.calls]

    def fail(self, kind: str) -> None:
        self._failures.append(_fake_error(kind))

    def expected_constraint(self, constraint: StructuredOutput) -> Any:
        return constraint  # a fake gets the typed object itself

    def check_extensions(self, sent: Sampling, got: Received) -> None:
        assert got.sampling is sent, "the very Sampling object must arrive, untouched"
        assert got.extras == sent.extensions


def _fake_error(kind: str) -> ModelError:
    """The error a real client raises for ``kind``, as a fake raises it."""
    if kind.startswith("status-"):
        status = int(kind.removeprefix("status-"))
        return ModelError(f"HTTP {status}", retryable=status >= 500, status=status)
    if kind == "unreachable":
        return ModelUnreachable("could not reach http://127.0.0.1:9/v1: connection refused")
    return ModelTimeout("did not answer within 1 s")


class ScriptedHarness(FunctionHarness):
    """A ScriptedModel: failures are queued exceptions, replies queued texts."""

    id = "ScriptedModel"

    def __init__(self) -> None:
        super().__init__()
        self.script = ScriptedModel(name="fake")

    def build(self) -> ChatModel:
        self.script.enqueue(*["scripted reply"] * 64)
        return self.script

    def received(self) -> list[Received]:
        return [_from_call(call) for call in self.script.calls]

    def fail(self, kind: str) -> None:
        self.script.enqueue(_fake_error(kind))


def _retrying(inner: ChatModel) -> RetryingModel:
    # One attempt and no outage wait, so a failure reaches the caller at once.
    return RetryingModel(inner, attempts=1, timeout_attempts=1, server_wait=0.0, base_delay=0.0)


def _stack(inner: ChatModel) -> ChatModel:
    """The order of build_client: accounting, retry, limit."""
    return AccountingModel(_retrying(ConcurrencyLimitedModel(inner, max_in_flight=3)))


class WrappedHarness(FunctionHarness):
    """A wrapper (or a stack of them) around a FunctionModel."""

    def wrap(self, inner: ChatModel) -> ChatModel:
        raise NotImplementedError

    def build(self) -> ChatModel:
        return self.wrap(self.fake)


class RetryingHarness(WrappedHarness):
    id = "RetryingModel(fake)"

    def wrap(self, inner: ChatModel) -> ChatModel:
        return _retrying(inner)


class LimitedHarness(WrappedHarness):
    id = "ConcurrencyLimitedModel(fake)"

    def wrap(self, inner: ChatModel) -> ChatModel:
        return ConcurrencyLimitedModel(inner, max_in_flight=3)


class AccountingHarness(WrappedHarness):
    id = "AccountingModel(fake)"

    def wrap(self, inner: ChatModel) -> ChatModel:
        return AccountingModel(inner)


class StackHarness(WrappedHarness):
    id = "stack(fake)"

    def wrap(self, inner: ChatModel) -> ChatModel:
        return _stack(inner)


# --------------------------------------------------------------------------- a real client

_STANDARD_FIELDS = {"model", "messages", "max_tokens", "temperature", "top_p", "seed", "stop"}
_CONSTRAINT_FIELDS = ("response_format", "structured_outputs")


class OpenAIHarness(Harness):
    """OpenAIChatModel against the loopback fault server (one per test module)."""

    id = "OpenAIChatModel"
    server: ClassVar[FaultServer]

    def __init__(self) -> None:
        super().__init__()
        self.server.start()
        self.server.configure(faults=[], delay_s=0.0, die_after=None, strict=False, reset=True)
        self._timeout = 10.0
        self._base_url = self.server.base_url

    def client(self) -> OpenAIChatModel:
        return OpenAIChatModel(self._base_url, "fault-model", timeout=self._timeout)

    def build(self) -> ChatModel:
        return self.client()

    def received(self) -> list[Received]:
        found = []
        for body in self.server.requests:
            constraint = next(((k, body[k]) for k in _CONSTRAINT_FIELDS if k in body), None)
            found.append(
                Received(
                    max_tokens=body.get("max_tokens"),
                    temperature=body.get("temperature"),
                    top_p=body.get("top_p"),
                    seed=body.get("seed"),
                    stop=body.get("stop"),
                    constraint=constraint,
                    extras={
                        k: v
                        for k, v in body.items()
                        if k not in _STANDARD_FIELDS and k not in _CONSTRAINT_FIELDS
                    },
                )
            )
        return found

    def fail(self, kind: str) -> None:
        if kind.startswith("status-"):
            status = int(kind.removeprefix("status-"))
            self.server.configure(faults=[Fault("status", status=status, count=1)])
        elif kind == "unreachable":
            self._base_url = f"http://127.0.0.1:{_closed_port()}/v1"
        else:
            self._timeout = 0.3
            self.server.configure(faults=[Fault("hang", seconds=2.0, count=1)])

    def expected_constraint(self, constraint: StructuredOutput) -> Any:
        # Written out by hand: the dialect each constraint must reach a vLLM server in.
        if isinstance(constraint, Choice):
            return ("structured_outputs", {"choice": list(constraint.options)})
        if isinstance(constraint, Regex):
            return ("structured_outputs", {"regex": constraint.pattern})
        if isinstance(constraint, JsonSchema):
            spec = {"name": constraint.name, "schema": constraint.schema}
            return ("response_format", {"type": "json_schema", "json_schema": spec})
        raise AssertionError(f"no expectation for {constraint!r}")

    def check_extensions(self, sent: Sampling, got: Received) -> None:
        assert dict(got.extras) == dict(sent.extensions["extra_body"])


class OpenAIStackHarness(OpenAIHarness):
    """The order of build_client, around OpenAIChatModel."""

    id = "stack(OpenAIChatModel)"

    def build(self) -> ChatModel:
        return _stack(self.client())


class PoolHarness(FunctionHarness):
    """A ReplicaPool of two replicas in front of one fake; "unreachable" means both are."""

    id = "ReplicaPool(fake)"

    def build(self) -> ChatModel:
        return ReplicaPool(
            [("http://replica-a/v1", self.fake), ("http://replica-b/v1", self.fake)],
            server_wait=0.0,
            probe=_never_back,
        )

    def fail(self, kind: str) -> None:
        for _ in range(2 if kind == "unreachable" else 1):
            super().fail(kind)


async def _never_back(url: str) -> bool:
    return False


class OpenAIPoolHarness(OpenAIHarness):
    """build_pool over one replica, the loopback fault server, with no waiting."""

    id = "ReplicaPool(OpenAIChatModel)"

    def build(self) -> ChatModel:
        return build_pool(
            [self._base_url],
            "fault-model",
            max_in_flight=3,
            retries=0,
            timeout_retries=0,
            timeout=self._timeout,
            server_wait=0.0,
        )


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --------------------------------------------------------------------------- a local model


class TransformersHarness(Harness):
    """TransformersModel over a tiny random-weight Llama; its ``on_request`` seam records and fails."""

    id = "TransformersModel(tiny)"

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[Request] = []
        self._failures: list[str] = []
        self._timeout = 30.0

    def _observe(self, request: Request) -> None:
        self.requests.append(request)
        if self._failures:
            kind = self._failures.pop(0)
            if kind == "timeout":
                time.sleep(1.0)  # longer than the model's timeout
            else:
                raise _fake_error(kind)

    def build(self) -> ChatModel:
        model, tokenizer = tiny_model()
        return TransformersModel(
            model=model,
            tokenizer=tokenizer,
            name="tiny",
            device="cpu",
            timeout=self._timeout,
            on_request=self._observe,
        )

    def received(self) -> list[Received]:
        return [
            Received(
                max_tokens=r.sampling.max_tokens,
                temperature=r.sampling.temperature,
                top_p=r.sampling.top_p,
                seed=r.sampling.seed,
                stop=list(r.sampling.stop) if r.sampling.stop else None,
                constraint=r.sampling.response_format,
                extras=r.sampling.extensions,
                sampling=r.sampling,
            )
            for r in self.requests
        ]

    def fail(self, kind: str) -> None:
        if kind == "timeout":
            self._timeout = 0.3
        self._failures.append(kind)

    def expected_constraint(self, constraint: StructuredOutput) -> Any:
        return constraint  # applied in process by xgrammar: the typed object arrives

    def check_extensions(self, sent: Sampling, got: Received) -> None:
        assert got.extras == sent.extensions


HARNESSES: list[type[Harness]] = [
    FunctionHarness,
    ScriptedHarness,
    RetryingHarness,
    LimitedHarness,
    AccountingHarness,
    StackHarness,
    OpenAIHarness,
    OpenAIStackHarness,
    PoolHarness,
    OpenAIPoolHarness,
    TransformersHarness,
]


@pytest.fixture(scope="module")
def fault_server() -> Iterator[FaultServer]:
    with FaultServer(model="fault-model") as running:
        yield running


@pytest.fixture(params=HARNESSES, ids=[h.id for h in HARNESSES])
def harness(request: pytest.FixtureRequest, fault_server: FaultServer) -> Harness:
    kind: type[Harness] = request.param
    if issubclass(kind, OpenAIHarness):
        kind.server = fault_server
    return kind()


@pytest.fixture
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget which deprecation warnings were given, so each test sees its own."""
    monkeypatch.setattr(base, "_WARNED", set())


# --------------------------------------------------------------------------- the contract


async def test_a_completion_has_text_and_its_accounting(harness: Harness) -> None:
    async with harness.opened() as model:
        reply = await model.complete(HELLO, Sampling(max_tokens=16, seed=1))

    assert isinstance(model, ChatModel)
    assert isinstance(reply, Completion)
    assert isinstance(reply.text, str) and reply.text
    assert reply.model
    assert reply.completion_tokens >= 0 and reply.prompt_tokens >= 0
    assert reply.attempts >= 1 and reply.latency_ms >= 0
    assert reply.params["max_tokens"] == 16
    assert isinstance(reply.extensions, Mapping)


async def test_sampling_fields_reach_the_backend(harness: Harness) -> None:
    sampling = Sampling(max_tokens=17, temperature=0.3, top_p=0.9, seed=5, stop=["\nLee:"])

    async with harness.opened() as model:
        await model.complete(HELLO, sampling)

    (got,) = harness.received()
    assert (got.max_tokens, got.temperature, got.top_p) == (17, 0.3, 0.9)
    assert got.seed == 5
    assert got.stop == ["\nLee:"]
    assert got.constraint is None


async def test_no_sampling_means_the_defaults(harness: Harness) -> None:
    async with harness.opened() as model:
        await model.complete(HELLO)
        await model.complete(HELLO, sampling=None)

    for got in harness.received():
        assert (got.max_tokens, got.temperature, got.top_p) == (128, 0.8, 1.0)
        assert got.seed is None and not got.stop


async def test_seeds_are_sent_and_recorded_with_the_completion(harness: Harness) -> None:
    seeds = [0, 7, 2**31 - 1]

    async with harness.opened() as model:
        replies = [await model.complete(HELLO, Sampling(seed=seed)) for seed in seeds]

    assert [got.seed for got in harness.received()] == seeds
    assert [reply.seed for reply in replies] == seeds
    assert [reply.params["seed"] for reply in replies] == seeds


async def test_concurrent_calls_keep_their_own_sampling(harness: Harness) -> None:
    async with harness.opened() as model:
        replies = await asyncio.gather(
            *(model.complete(HELLO, Sampling(seed=seed, max_tokens=8 + seed)) for seed in range(12))
        )

    assert [reply.seed for reply in replies] == list(range(12))
    assert sorted((got.seed, got.max_tokens) for got in harness.received()) == [
        (seed, 8 + seed) for seed in range(12)
    ]


async def test_extensions_arrive_untouched(harness: Harness) -> None:
    sampling = Sampling(seed=2, extensions={"extra_body": {"top_k": 7}})

    async with harness.opened() as model:
        await model.complete(HELLO, sampling)

    (got,) = harness.received()
    harness.check_extensions(sampling, got)


@pytest.mark.parametrize(
    "constraint",
    [Choice(["yes", "no"]), JsonSchema(SCHEMA, name="mood"), Regex("[1-5]")],
    ids=["choice", "json-schema", "regex"],
)
async def test_structured_outputs_reach_the_backend_in_its_dialect(
    harness: Harness, constraint: StructuredOutput
) -> None:
    async with harness.opened() as model:
        await model.complete(HELLO, Sampling(max_tokens=8, response_format=constraint))

    (got,) = harness.received()
    assert got.constraint == harness.expected_constraint(constraint)


@pytest.mark.parametrize("kind", FAILURES)
async def test_failures_raise_the_documented_errors(harness: Harness, kind: str) -> None:
    harness.fail(kind)

    async with harness.opened() as model:
        with pytest.raises(ModelError) as caught:
            await model.complete(HELLO, Sampling(max_tokens=8))

    error = caught.value
    if kind.startswith("status-"):
        status = int(kind.removeprefix("status-"))
        assert type(error) is ModelError
        assert error.status == status
        assert error.retryable is (status >= 500)
        assert f"HTTP {status}" in str(error)
    elif kind == "unreachable":
        assert isinstance(error, ModelUnreachable)
    else:
        assert isinstance(error, ModelTimeout)


async def test_the_personae_0_2_keyword_form_still_works_with_a_warning(
    harness: Harness, fresh_warnings: None
) -> None:
    async with harness.opened() as model:
        with pytest.warns(DeprecationWarning, match="deprecated"):
            reply = await model.complete(  # type: ignore[call-arg]
                HELLO, max_tokens=9, seed=4, response_format={"type": "regex", "pattern": "[1-5]"}
            )
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # once per class is enough
            await model.complete(HELLO, seed=5)  # type: ignore[call-arg]

    first, second = harness.received()
    assert (first.max_tokens, first.seed) == (9, 4)
    assert first.constraint == harness.expected_constraint(Regex("[1-5]"))
    assert second.seed == 5
    assert reply.seed == 4


async def test_the_module_level_complete_calls_any_of_them(harness: Harness) -> None:
    async with harness.opened() as model:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the current signature: no warning
            reply = await complete(model, HELLO, Sampling(seed=3))

    assert reply.seed == 3
    assert [got.seed for got in harness.received()] == [3]


# --------------------------------------------------------------------------- a user's own model


class OldStyleModel:
    """A ChatModel written for personae 0.2: keyword arguments, no ``sampling``."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    @property
    def name(self) -> str:
        return "old-style"

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
        self.calls.append(
            {
                "max_tokens": max_tokens,
                "temperature": temperature,
                "top_p": top_p,
                "seed": seed,
                "stop": stop,
                "response_format": response_format,
            }
        )
        return Completion(text=f"old {seed}", model=self.name, seed=seed)

    async def aclose(self) -> None:
        pass


class MinimalOldModel(OldStyleModel):
    """An old-style model that declares only the keywords it uses."""

    async def complete(  # type: ignore[override]
        self, messages: list[Message], *, max_tokens: int = 128, seed: int | None = None
    ) -> Completion:
        self.calls.append({"max_tokens": max_tokens, "seed": seed})
        return Completion(text=f"old {seed}", model=self.name, seed=seed)


WRAPPERS: list[Callable[[Any], ChatModel | LegacyChatModel]] = [
    lambda inner: inner,
    _retrying,
    lambda inner: ConcurrencyLimitedModel(inner, max_in_flight=2),
    AccountingModel,
]


@pytest.mark.parametrize("wrap", WRAPPERS, ids=["bare", "retrying", "limited", "accounting"])
async def test_an_old_style_user_model_works_through_complete_and_the_wrappers(
    wrap: Callable[[Any], ChatModel | LegacyChatModel], fresh_warnings: None
) -> None:
    user = OldStyleModel()
    model = wrap(user)
    sampling = Sampling(
        max_tokens=9,
        temperature=0.1,
        top_p=0.5,
        seed=4,
        stop="END",
        response_format=Choice(["a", "b"]),
        extensions={"logprobs": 1},  # an old model has no way to take it: dropped
    )

    with pytest.warns(DeprecationWarning, match=r"OldStyleModel\.complete.*sampling"):
        reply = await complete(model, HELLO, sampling)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once per class
        await complete(model, HELLO, Sampling(seed=5))

    assert reply.text == "old 4"
    assert user.calls[0] == {
        "max_tokens": 9,
        "temperature": 0.1,
        "top_p": 0.5,
        "seed": 4,
        "stop": ["END"],
        "response_format": {"type": "choice", "choices": ["a", "b"]},
    }
    assert user.calls[1]["seed"] == 5


async def test_an_old_style_model_gets_only_the_keywords_it_declares(
    fresh_warnings: None,
) -> None:
    user = MinimalOldModel()

    with pytest.warns(DeprecationWarning):
        await complete(user, HELLO, Sampling(max_tokens=12, seed=1))
    assert user.calls == [{"max_tokens": 12, "seed": 1}]

    # A value it cannot take is not dropped in silence: Python says which keyword.
    with pytest.raises(TypeError, match="temperature"):
        await complete(user, HELLO, Sampling(temperature=0.1))


async def test_a_forwarding_model_with_keyword_arguments_gets_the_old_form(
    fresh_warnings: None,
) -> None:
    class Forwarder:
        """A user wrapper written for personae 0.2, passing ``**kwargs`` on."""

        def __init__(self, inner: ChatModel) -> None:
            self.inner = inner

        @property
        def name(self) -> str:
            return self.inner.name

        async def complete(self, messages: list[Message], **kwargs: Any) -> Completion:
            return await self.inner.complete(messages, **kwargs)

        async def aclose(self) -> None:
            await self.inner.aclose()

    inner = FunctionModel.echo()
    with pytest.warns(DeprecationWarning):
        reply = await complete(Forwarder(inner), HELLO, Sampling(seed=8, max_tokens=5))

    assert reply.text == "reply 8"
    assert inner.calls[0].max_tokens == 5
