"""Test doubles for the :class:`~personae.llm.base.ChatModel` seam.

Both fakes record every call as a :class:`RecordedCall` (the messages and the
:class:`~personae.llm.base.Sampling` received), so tests can assert on the
prompts an agent or scenario sent, not only on what came back:

* :class:`ScriptedModel` answers from a queue of replies, in order.
* :class:`FunctionModel` answers with a function of the messages and the call.

Token counts are whitespace-split word counts. With zero latency a call does no
I/O and never yields to the event loop, so a whole simulation can run thousands
of turns a second against a fake.

Example::

    model = ScriptedModel(["Hello.", "Goodbye."])
    reply = await model.complete([{"role": "user", "content": "Hi"}], Sampling(seed=1))
    assert reply.text == "Hello."
    assert model.calls[0].seed == 1
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from personae.llm.base import (
    DEFAULT_SAMPLING,
    Completion,
    LegacySampling,
    Message,
    Sampling,
    resolve_sampling,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "FunctionModel",
    "RecordedCall",
    "ReplyFunction",
    "ScriptExhausted",
    "ScriptedModel",
]

FAKE_SERVER = "personae-fake"


class ScriptExhausted(RuntimeError):
    """A :class:`ScriptedModel` was called more often than it had replies.

    A programming error in a test, not a model failure: it is deliberately not a
    :class:`~personae.errors.ModelError`, so no retry or error handling hides it.
    """


@dataclass(frozen=True, slots=True)
class RecordedCall:
    """One call made to a fake model, with everything the caller passed.

    Attributes:
        messages: A copy of the messages, unaffected by later changes the caller makes.
        sampling: The :class:`~personae.llm.base.Sampling` the fake received, as
            it was passed (a constraint in ``sampling.response_format`` is the
            typed object: ``Choice``, ``JsonSchema``, ...).
    """

    messages: list[Message]
    sampling: Sampling = DEFAULT_SAMPLING

    @property
    def max_tokens(self) -> int:
        """Upper bound on generated tokens."""
        return self.sampling.max_tokens

    @property
    def temperature(self) -> float:
        """Sampling temperature."""
        return self.sampling.temperature

    @property
    def top_p(self) -> float:
        """Nucleus sampling mass."""
        return self.sampling.top_p

    @property
    def seed(self) -> int | None:
        """Sampling seed, if any."""
        return self.sampling.seed

    @property
    def stop(self) -> list[str] | None:
        """Stop strings, if any."""
        stop = self.sampling.stop
        return list(stop) if stop is not None else None

    @property
    def extensions(self) -> Mapping[str, Any]:
        """The backend extras the caller passed (``sampling.extensions``)."""
        return self.sampling.extensions

    @property
    def response_format(self) -> dict[str, Any] | None:
        """The constraint in its personae 0.2 dict form (``{"type": "choice", ...}``), if any.

        Kept for reply functions written for personae 0.2; new code reads the
        typed ``call.sampling.response_format``.
        """
        constraint = self.sampling.response_format
        return constraint.as_dict() if constraint is not None else None

    @property
    def last_content(self) -> str:
        """The content of the last message ("" when there are none)."""
        return self.messages[-1]["content"] if self.messages else ""

    def params(self) -> dict[str, Any]:
        """The sampling parameters in the shape the real client records them."""
        return self.sampling.params()


ReplyFunction = Callable[
    [list[Message], RecordedCall], str | Completion | Awaitable[str | Completion]
]
"""What :class:`FunctionModel` calls: ``fn(messages, call) -> str | Completion``, sync or async."""


def _copy_messages(messages: list[Message]) -> list[Message]:
    # Messages are flat dicts of strings, so copying each dict is a deep copy;
    # copy.deepcopy is ten times slower and this runs on every fake turn.
    copied: list[Message] = []
    for message in messages:
        if all(type(value) is str for value in message.values()):
            copied.append(message.copy())
        else:
            copied.append(copy.deepcopy(message))
    return copied


def _count_words(text: str) -> int:
    return len(text.split())


class _RecordingModel:
    """Shared plumbing of the fakes: recording, closing, building completions."""

    def __init__(self, *, name: str, latency: float, record: bool) -> None:
        if latency < 0:
            raise ValueError(f"latency must be >= 0 seconds, got {latency}")
        self._name = name
        self.latency = latency
        self.record = record
        self.calls: list[RecordedCall] = []
        self.call_count = 0
        self.closed = False

    @property
    def name(self) -> str:
        """The model name recorded with every call."""
        return self._name

    def _record(self, messages: list[Message], sampling: Sampling) -> RecordedCall:
        if self.closed:
            raise RuntimeError(f"{type(self).__name__} {self._name!r} was called after aclose()")
        call = RecordedCall(messages=_copy_messages(messages), sampling=sampling)
        self.call_count += 1
        if self.record:
            self.calls.append(call)
        return call

    def _completion(self, text: str, call: RecordedCall, started: float) -> Completion:
        prompt_tokens = 0
        for message in call.messages:
            prompt_tokens += _count_words(message["content"])
        return Completion(
            text=text,
            model=self._name,
            finish_reason="stop",
            prompt_tokens=prompt_tokens,
            completion_tokens=_count_words(text),
            latency_ms=(time.perf_counter() - started) * 1000.0,
            seed=call.seed,
            params=call.params(),
            server=FAKE_SERVER,
        )

    async def _wait(self) -> None:
        if self.latency > 0:
            await asyncio.sleep(self.latency)

    def reset(self) -> None:
        """Forget the recorded calls."""
        self.calls.clear()
        self.call_count = 0

    async def aclose(self) -> None:
        """Mark the fake closed; later calls raise ``RuntimeError``."""
        self.closed = True


class ScriptedModel(_RecordingModel):
    """A fake that answers from a queue of replies, first in, first out.

    A queued item may be a reply text, a ready :class:`Completion` (returned as
    it is) or an exception instance (raised, to script a failure).

    Args:
        replies: The replies to give, in order.
        name: The model name reported with every completion.
        latency: Seconds each call waits (with ``asyncio.sleep``) before answering.
        record: Keep every call in :attr:`calls` (turn off for long benchmarks).

    Attributes:
        calls: Every call made, in order.

    Raises:
        ScriptExhausted: From :meth:`complete`, when the queue is empty.
    """

    def __init__(
        self,
        replies: Iterable[str | Completion | Exception] = (),
        *,
        name: str = "scripted",
        latency: float = 0.0,
        record: bool = True,
    ) -> None:
        super().__init__(name=name, latency=latency, record=record)
        self._queue: deque[str | Completion | Exception] = deque(replies)

    def enqueue(self, *replies: str | Completion | Exception) -> None:
        """Append replies to the end of the queue."""
        self._queue.extend(replies)

    @property
    def remaining(self) -> int:
        """How many queued replies are left."""
        return len(self._queue)

    async def complete(
        self,
        messages: list[Message],
        sampling: Sampling | None = None,
        **legacy: Unpack[LegacySampling],
    ) -> Completion:
        """Return the next queued reply; see :meth:`ChatModel.complete`."""
        started = time.perf_counter()
        call = self._record(messages, resolve_sampling(sampling, legacy, self))
        if not self._queue:
            raise ScriptExhausted(
                f"ScriptedModel {self._name!r} has no reply left for call #{self.call_count} "
                f"(last message: {call.last_content[:80]!r}); enqueue() more replies."
            )
        reply = self._queue.popleft()
        await self._wait()
        if isinstance(reply, Exception):
            raise reply
        if isinstance(reply, Completion):
            return reply
        return self._completion(reply, call, started)


class FunctionModel(_RecordingModel):
    """A fake whose reply is computed by a function of the request.

    Args:
        fn: ``fn(messages, call) -> str | Completion``, plain or ``async``. A
            returned string is wrapped in a :class:`Completion` with fake token
            counts; a returned :class:`Completion` is passed through. Whatever
            ``fn`` raises propagates (use it to inject failures).
        name: The model name reported with every completion.
        latency: Seconds each call waits (with ``asyncio.sleep``) before answering.
        record: Keep every call in :attr:`calls` (turn off for long benchmarks).

    Attributes:
        calls: Every call made, in order.

    Example::

        model = FunctionModel(lambda messages, call: messages[-1]["content"].upper())
    """

    def __init__(
        self,
        fn: ReplyFunction,
        *,
        name: str = "function",
        latency: float = 0.0,
        record: bool = True,
    ) -> None:
        super().__init__(name=name, latency=latency, record=record)
        self.fn = fn

    @classmethod
    def echo(
        cls, *, name: str = "echo", latency: float = 0.0, record: bool = True
    ) -> FunctionModel:
        """A fake that answers ``"reply <seed>"``, e.g. ``"reply 42"`` or ``"reply None"``.

        Deterministic in the seed, so tests can check which seed reached the model.
        """

        def reply(messages: list[Message], call: RecordedCall) -> str:
            return f"reply {call.seed}"

        return cls(reply, name=name, latency=latency, record=record)

    async def complete(
        self,
        messages: list[Message],
        sampling: Sampling | None = None,
        **legacy: Unpack[LegacySampling],
    ) -> Completion:
        """Return ``fn``'s reply; see :meth:`ChatModel.complete`."""
        started = time.perf_counter()
        call = self._record(messages, resolve_sampling(sampling, legacy, self))
        await self._wait()
        result = self.fn(call.messages, call)
        if inspect.isawaitable(result):
            result = await result
        if isinstance(result, Completion):
            return result
        if not isinstance(result, str):
            raise TypeError(
                f"FunctionModel {self._name!r}: fn must return str or Completion, "
                f"got {type(result).__name__}"
            )
        return self._completion(result, call, started)
