"""The one seam between personae and language models.

Everything that talks to a model goes through :class:`ChatModel`: the OpenAI
client, the wrappers (retry, concurrency limit, accounting) and the test fakes
all implement it, and wrappers wrap it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypedDict, runtime_checkable


class Message(TypedDict):
    """One chat message in the OpenAI format."""

    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True, kw_only=True)
class Completion:
    """What a model returned for one request, with its accounting.

    Attributes:
        text: The generated text.
        model: The model name the server reported.
        finish_reason: ``"stop"``, ``"length"`` or the server's own value.
        prompt_tokens: Tokens in the prompt, as counted by the server.
        completion_tokens: Tokens generated.
        latency_ms: Wall time of the request as seen by the client, retries included.
        seed: The sampling seed sent with the request, if any.
        params: The sampling parameters sent (temperature, max_tokens, ...).
        server: Identity of the serving software (e.g. ``"vllm 0.32.0"``) where known.
        attempts: How many HTTP attempts the request took.
    """

    text: str
    model: str
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0
    seed: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    server: str | None = None
    attempts: int = 1


@runtime_checkable
class ChatModel(Protocol):
    """An asynchronous chat model.

    Implementations must be safe to call concurrently from many tasks of one
    event loop and must never block that loop.
    """

    @property
    def name(self) -> str:
        """The model name recorded with every call."""
        ...

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
        """Generate one reply to ``messages``.

        Args:
            messages: The chat so far, system message first.
            max_tokens: Upper bound on generated tokens.
            temperature: Sampling temperature.
            top_p: Nucleus sampling mass.
            seed: Sampling seed; the same seed and prompt give the same text on
                a server that honours seeds.
            stop: Strings that end generation.
            response_format: Structured-output constraint passed to the server
                (OpenAI ``response_format`` or vLLM ``structured_outputs``).

        Returns:
            The completion with its accounting.

        Raises:
            ModelError: The request failed for good.
            ModelUnreachable: The server could not be reached.
        """
        ...

    async def aclose(self) -> None:
        """Release connections; further calls are an error."""
        ...
