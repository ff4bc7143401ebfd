"""A ChatModel that runs a local Hugging Face model in process, with activations and steering.

vLLM exposes neither hidden states nor steering, but the embedded model's
weights are on disk as a Hugging Face folder, so :class:`TransformersModel`
serves the same weights through ``transformers``, on CUDA when present and on
the CPU otherwise. Concurrent requests are batched (up to ``max_batch`` per
forward pass); each keeps its own sampling settings and its own seed, and a
seed gives the same text for the same request and batch.

Two :class:`~personae.llm.base.Sampling` extensions are understood:

* ``{"activations": {"layers": [12, 20], "positions": "last"}}`` returns the
  residual stream after those decoder blocks in ``Completion.extensions
  ["activations"]``: ``{"layers": [...], "positions": ..., "values": {"12":
  [...]}}``. Positions: ``"last"`` (the last prompt token, one vector),
  ``"prompt_mean"`` (the mean over prompt tokens), ``"all"`` (one vector per
  prompt token) or ``"response_mean"`` (the mean over generated tokens).
* ``{"steer": [{"layer": 12, "vector": [...], "alpha": 4.0}]}`` adds
  ``alpha * vector`` to the residual stream at that layer, at every position
  and decoding step, for this request only (see :mod:`personae.llm.hf_hooks`).

The backend is registered as ``"transformers"``; ``--model`` (``model_name``)
may name a model folder, else the bundled model is used.

Example::

    model = TransformersModel()  # the bundled SmolLM2-135M-Instruct
    reply = await model.complete(messages, Sampling(max_tokens=32, seed=1,
        extensions={"activations": {"layers": [15], "positions": "last"}}))
    vector = reply.extensions["activations"]["values"]["15"]
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from personae.errors import ConfigError, ModelError, ModelTimeout
from personae.llm.backends import BackendOptions, register_backend
from personae.llm.base import (
    ChatModel,
    Completion,
    LegacySampling,
    Message,
    Sampling,
    resolve_sampling,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from typing_extensions import Unpack

__all__ = [
    "POSITIONS",
    "ModelIdentity",
    "Request",
    "TransformersModel",
    "default_model_path",
    "open_transformers",
]

POSITIONS = ("last", "prompt_mean", "all", "response_mean")
"""The positions an ``activations`` extension may ask for."""

Positions = Literal["last", "prompt_mean", "all", "response_mean"]


@dataclass(frozen=True)
class ModelIdentity:
    """What makes trait vectors valid for a model: its shape and a hash of its weights.

    Attributes:
        name: The model's name (the folder name by default).
        architecture: The model class, e.g. ``"LlamaForCausalLM"``.
        num_layers: Decoder blocks.
        hidden_size: Width of the residual stream.
        fingerprint: SHA-256 over the config and every parameter's name, shape and bytes.
    """

    name: str
    architecture: str
    num_layers: int
    hidden_size: int
    fingerprint: str

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "name": self.name,
            "architecture": self.architecture,
            "num_layers": self.num_layers,
            "hidden_size": self.hidden_size,
            "fingerprint": self.fingerprint,
        }


@dataclass(frozen=True)
class Request:
    """One request as it reaches the model, handed to an ``on_request`` observer."""

    messages: list[Message]
    sampling: Sampling


@dataclass
class _Pending:
    request: Request
    future: asyncio.Future[Completion]
    started: float = field(default_factory=time.perf_counter)


def default_model_path() -> Path:
    """The bundled model's Hugging Face folder (converted on first use, as for vLLM).

    Raises:
        ServerError: The bundled model package is missing or cannot be converted.
    """
    from personae.llm.vllm.convert import prepare_default_model

    return prepare_default_model()


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class TransformersModel:
    """A :class:`~personae.llm.base.ChatModel` over a local Hugging Face model.

    Args:
        model_path: A Hugging Face model folder; the bundled model when omitted.
        name: The model name recorded with every call (the folder name by default).
        device: ``"cuda"``, ``"cpu"``, ...; CUDA when available by default.
        max_batch: Requests per forward pass at most.
        timeout: Seconds a request may wait for its reply before
            :class:`~personae.errors.ModelTimeout`.
        model: An already loaded causal LM (tests build tiny ones); needs ``tokenizer``.
        tokenizer: The tokenizer to go with ``model``.
        on_request: Called with each :class:`Request` in the worker thread just
            before it runs; an exception it raises fails that request (a test seam).

    Raises:
        ConfigError: The folder does not exist or holds no model.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        *,
        name: str | None = None,
        device: str | None = None,
        max_batch: int = 8,
        timeout: float = 600.0,
        model: Any = None,
        tokenizer: Any = None,
        on_request: Callable[[Request], None] | None = None,
    ) -> None:
        if max_batch < 1:
            raise ConfigError(f"max_batch must be 1 or more, got {max_batch}")
        self.device = device or _device()
        if model is None:
            path = Path(model_path) if model_path is not None else default_model_path()
            model, tokenizer = _load(path, self.device)
            default_name = path.name
        else:
            if tokenizer is None:
                raise ConfigError("TransformersModel(model=...) also needs tokenizer=...")
            model = model.to(self.device)
            default_name = getattr(model.config, "name_or_path", "") or type(model).__name__
        model.eval()
        self.hf_model = model
        self.tokenizer = tokenizer
        self._name = name or default_name
        self.max_batch = max_batch
        self.timeout = timeout
        self.on_request = on_request
        self._queue: list[_Pending] = []
        self._worker: asyncio.Task[None] | None = None
        self._closed = False
        self._identity: ModelIdentity | None = None
        self._grammars: Any = None

    # ------------------------------------------------------------------ identity

    @property
    def name(self) -> str:
        """The model name recorded with every call."""
        return self._name

    @property
    def num_layers(self) -> int:
        """Decoder blocks (the largest layer number activations and steering accept)."""
        return int(self.hf_model.config.num_hidden_layers)

    @property
    def hidden_size(self) -> int:
        """Width of the residual stream."""
        return int(self.hf_model.config.hidden_size)

    def identity(self) -> ModelIdentity:
        """The model's identity, with a hash of config and weights (computed once, ~1 s per 100M)."""
        if self._identity is None:
            digest = hashlib.sha256()
            config = self.hf_model.config.to_dict()
            for volatile in ("_name_or_path", "transformers_version", "dtype", "torch_dtype"):
                config.pop(volatile, None)
            digest.update(json.dumps(config, sort_keys=True, default=str).encode())
            for key, tensor in sorted(self.hf_model.state_dict().items()):
                data = tensor.detach().float().cpu().contiguous()
                digest.update(f"{key}:{tuple(data.shape)}".encode())
                digest.update(data.numpy().tobytes())
            self._identity = ModelIdentity(
                name=self._name,
                architecture=type(self.hf_model).__name__,
                num_layers=self.num_layers,
                hidden_size=self.hidden_size,
                fingerprint=digest.hexdigest(),
            )
        return self._identity

    def server_info(self) -> dict[str, Any]:
        """What a run records about this backend."""
        import torch
        import transformers

        return {
            "software": f"transformers {transformers.__version__}",
            "torch": torch.__version__,
            "model": self._name,
            "device": self.device,
            "num_layers": self.num_layers,
            "hidden_size": self.hidden_size,
        }

    # ------------------------------------------------------------------ the ChatModel seam

    async def complete(
        self,
        messages: list[Message],
        sampling: Sampling | None = None,
        **legacy: Unpack[LegacySampling],
    ) -> Completion:
        """Generate one reply, batched with whatever other requests are waiting.

        Raises:
            ConfigError: An ``activations`` or ``steer`` extension is malformed.
            ModelError: Generation failed, or the model was closed.
            ModelTimeout: No reply within ``timeout`` seconds.
        """
        sampling = resolve_sampling(sampling, legacy, self)
        if self._closed:
            raise ModelError(f"TransformersModel {self._name!r} was called after aclose()")
        loop = asyncio.get_running_loop()
        pending = _Pending(Request(list(messages), sampling), loop.create_future())
        self._queue.append(pending)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain(), name="transformers-batcher")
        try:
            return await asyncio.wait_for(asyncio.shield(pending.future), self.timeout)
        except TimeoutError:
            raise ModelTimeout(
                f"the transformers model {self._name!r} did not answer within {self.timeout} s"
            ) from None

    async def aclose(self) -> None:
        """Stop taking requests; those still queued fail with ModelError."""
        self._closed = True
        for pending in self._queue:
            if not pending.future.done():
                pending.future.set_exception(ModelError("the transformers model was closed"))
        self._queue.clear()
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker

    async def _drain(self) -> None:
        while self._queue:
            await asyncio.sleep(0)  # let callers started in the same tick join the batch
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
            results = await asyncio.to_thread(self._run_batch, [p.request for p in batch])
            for pending, result in zip(batch, results, strict=True):
                if pending.future.done():
                    continue
                if isinstance(result, BaseException):
                    pending.future.set_exception(result)
                else:
                    latency = (time.perf_counter() - pending.started) * 1000.0
                    pending.future.set_result(_with_latency(result, latency))

    def _run_batch(self, requests: list[Request]) -> list[Completion | BaseException]:
        from personae.llm.hf_decode import generate_batch

        results: list[Completion | BaseException | None] = [None] * len(requests)
        ready: list[int] = []
        for index, request in enumerate(requests):
            try:
                if self.on_request is not None:
                    self.on_request(request)
                ready.append(index)
            except Exception as error:
                results[index] = error
        if ready:
            done: list[Completion | BaseException]
            try:
                done = list(generate_batch(self, [requests[i] for i in ready]))
            except Exception as error:
                failure = error if isinstance(error, ModelError | ConfigError) else None
                done = [
                    failure or ModelError(f"transformers generation failed: {error}") for _ in ready
                ]
            for index, result in zip(ready, done, strict=True):
                results[index] = result
        return [r if r is not None else ModelError("no result") for r in results]

    # ------------------------------------------------------------------ no generation

    def encode(
        self,
        conversations: Sequence[list[Message]],
        layers: Sequence[int],
        *,
        positions: Positions = "last",
        add_generation_prompt: bool = True,
        steering: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[dict[int, Any]]:
        """Activations of prompts run through the model once, without generating.

        Synchronous and CPU-heavy: call it from a thread in async code.

        Args:
            conversations: Chats to encode, each formatted with the chat template.
            layers: Layers to read (1 to :attr:`num_layers`).
            positions: ``"last"``, ``"prompt_mean"`` or ``"all"``.
            add_generation_prompt: End each prompt with the assistant header, so
                ``"last"`` is the position that would produce the next reply.
            steering: ``"steer"`` entries applied to every conversation.

        Returns:
            Per conversation, ``{layer: numpy array}`` (``[hidden]``, or
            ``[tokens, hidden]`` for ``"all"``).

        Raises:
            ConfigError: A layer or position is not valid for this model.
        """
        from personae.llm.hf_decode import encode_batch

        return encode_batch(
            self,
            list(conversations),
            list(layers),
            positions=positions,
            add_generation_prompt=add_generation_prompt,
            steering=list(steering or []),
        )

    def option_logprobs(
        self,
        messages: list[Message],
        options: Sequence[str],
        *,
        steering: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[float]:
        """The log-probability of each option as the opening of the reply to ``messages``.

        Scores a closed question without sampling, e.g. the expected answer to a
        rating item from the probabilities of ``"1"`` to ``"5"``. Synchronous.

        Args:
            messages: The chat, formatted with the chat template and the assistant header.
            options: Candidate replies.
            steering: ``"steer"`` entries applied while scoring.

        Returns:
            Per option, the sum of its tokens' log-probabilities.

        Raises:
            ConfigError: A steering entry is invalid for this model.
        """
        from personae.llm.hf_decode import option_logprobs

        return option_logprobs(self, list(messages), list(options), list(steering or []))

    def grammar_compiler(self) -> Any:
        """The xgrammar compiler for this tokenizer (built on first use)."""
        if self._grammars is None:
            import xgrammar

            info = xgrammar.TokenizerInfo.from_huggingface(
                self.tokenizer, vocab_size=int(self.hf_model.config.vocab_size)
            )
            self._grammars = xgrammar.GrammarCompiler(info)
        return self._grammars


def _with_latency(completion: Completion, latency_ms: float) -> Completion:
    import dataclasses

    return dataclasses.replace(completion, latency_ms=latency_ms)


def _load(path: Path, device: str) -> tuple[Any, Any]:
    if not (path / "config.json").is_file():
        raise ConfigError(
            f"{path} is not a Hugging Face model folder (it has no config.json); give "
            "the folder of a converted model, e.g. the one `personae doctor` reports"
        )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    tokenizer = AutoTokenizer.from_pretrained(path)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    model = model.to(device)  # type: ignore[arg-type]
    return model, tokenizer


@contextlib.asynccontextmanager
async def open_transformers(
    options: BackendOptions,
) -> AsyncIterator[tuple[ChatModel, dict[str, Any]]]:
    """The ``"transformers"`` backend: a local model folder (``model_name``) or the bundled one.

    Raises:
        ConfigError: ``model_name`` is not a model folder.
    """
    path = options.model_name
    model = await asyncio.to_thread(TransformersModel, path, timeout=options.timeout)
    try:
        yield model, model.server_info()
    finally:
        await model.aclose()


register_backend("transformers", open_transformers, replace=True)
