"""The one seam between personae and language models.

Everything that talks to a model goes through :class:`ChatModel`: the OpenAI
client, the wrappers (retry, concurrency limit, accounting) and the test fakes
all implement it, and wrappers wrap it. A request is the messages plus one
:class:`Sampling`; the answer is a :class:`Completion`. Both carry an
``extensions`` mapping for what only some backends understand (log
probabilities, activations), so a new capability does not change the seam.

Example::

    reply = await model.complete(messages, Sampling(max_tokens=64, seed=7))

personae 0.2 passed the sampling fields as keyword arguments
(``model.complete(messages, max_tokens=64, seed=7)``). personae's own models
still accept that form for one release, with a :class:`DeprecationWarning`,
and personae calls every model through :func:`complete`, which also drives a
user's ChatModel written against the old signature.
"""

from __future__ import annotations

import dataclasses
import inspect
import numbers
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypedDict, runtime_checkable

from personae.errors import ConfigError
from personae.llm.structured import (
    Choice,
    Grammar,
    JsonSchema,
    Regex,
    StructuredOutput,
    structured,
)

__all__ = [
    "DEFAULT_SAMPLING",
    "ChatModel",
    "Choice",
    "Completion",
    "Grammar",
    "JsonSchema",
    "LegacyChatModel",
    "LegacySampling",
    "Message",
    "Regex",
    "Sampling",
    "StructuredOutput",
    "complete",
    "resolve_sampling",
    "structured",
]


class Message(TypedDict):
    """One chat message in the OpenAI format."""

    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True, kw_only=True, init=False)
class Sampling:
    """How to generate one reply: today's sampling fields plus backend extras.

    Immutable; derive a variant with :meth:`replace`. Values are checked when
    the object is built, so a bad value fails before any request is sent.

    Args:
        max_tokens: Upper bound on generated tokens (>= 1).
        temperature: Sampling temperature (>= 0).
        top_p: Nucleus sampling mass, in (0, 1].
        seed: Sampling seed; the same seed and prompt give the same text on a
            server that honours seeds.
        stop: Strings that end generation (a single string is one stop string).
        response_format: A structured-output constraint (:class:`Choice`,
            :class:`JsonSchema`, :class:`Regex`, :class:`Grammar`); a personae 0.2
            dict is converted by :func:`structured`.
        extensions: Backend-specific extras, e.g. ``{"logprobs": 5}`` for the
            OpenAI client or ``{"return_activations": [12]}`` for a local
            backend. A backend ignores keys it does not know, so one Sampling
            can serve several backends; wrappers pass them on untouched.

    Raises:
        ConfigError: A value is out of range or of the wrong type (the message
            names the field).

    Example::

        base = Sampling(max_tokens=64, temperature=0.2)
        ask = base.replace(seed=7, response_format=Choice(["yes", "no"]))
    """

    max_tokens: int = 128
    temperature: float = 0.8
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] | None = None
    response_format: StructuredOutput | None = None
    extensions: Mapping[str, Any] = field(default_factory=dict)

    def __init__(
        self,
        *,
        max_tokens: int = 128,
        temperature: float = 0.8,
        top_p: float = 1.0,
        seed: int | None = None,
        stop: Sequence[str] | str | None = None,
        response_format: StructuredOutput | Mapping[str, Any] | None = None,
        extensions: Mapping[str, Any] | None = None,
    ) -> None:
        if not _is_int(max_tokens) or max_tokens < 1:
            raise ConfigError(
                f"sampling max_tokens must be a whole number >= 1, got {max_tokens!r}"
            )
        if not _is_real(temperature) or temperature < 0:
            raise ConfigError(f"sampling temperature must be a number >= 0, got {temperature!r}")
        if not _is_real(top_p) or not 0 < top_p <= 1:
            raise ConfigError(f"sampling top_p must be a number in (0, 1], got {top_p!r}")
        if seed is not None and not _is_int(seed):
            raise ConfigError(f"sampling seed must be a whole number or None, got {seed!r}")
        stops = _stop_strings(stop)
        if extensions is None:
            extensions = {}
        elif not isinstance(extensions, Mapping) or not all(isinstance(k, str) for k in extensions):
            raise ConfigError(
                f"sampling extensions must be a mapping with string keys, got {extensions!r}"
            )
        set_field = object.__setattr__
        set_field(self, "max_tokens", max_tokens)
        set_field(self, "temperature", temperature)
        set_field(self, "top_p", top_p)
        set_field(self, "seed", seed)
        set_field(self, "stop", stops)
        set_field(self, "response_format", structured(response_format))
        set_field(self, "extensions", dict(extensions))

    def replace(self, **changes: Any) -> Sampling:
        """A copy with ``changes`` applied, checked like a new one.

        Example::

            Sampling(max_tokens=32).replace(seed=3)
        """
        return dataclasses.replace(self, **changes)

    def with_extensions(self, **extras: Any) -> Sampling:
        """A copy whose ``extensions`` also hold ``extras`` (they win over existing keys)."""
        return dataclasses.replace(self, extensions={**self.extensions, **extras})

    def params(self) -> dict[str, Any]:
        """The sampling fields as a plain JSON-ready dict, as a fake records them.

        Fields at their "not set" value (no seed, no stop strings, no
        constraint, no extensions) are left out; the constraint appears in its
        personae 0.2 dict form.
        """
        params: dict[str, Any] = {
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
        }
        if self.seed is not None:
            params["seed"] = self.seed
        if self.stop:
            params["stop"] = list(self.stop)
        if self.response_format is not None:
            params["response_format"] = self.response_format.as_dict()
        if self.extensions:
            params["extensions"] = dict(self.extensions)
        return params

    def legacy_kwargs(self) -> dict[str, Any]:
        """The keyword arguments a personae 0.2 ``complete`` took (extensions have none)."""
        return {
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "seed": self.seed,
            "stop": list(self.stop) if self.stop is not None else None,
            "response_format": (
                self.response_format.as_dict() if self.response_format is not None else None
            ),
        }


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _stop_strings(stop: Sequence[str] | str | None) -> tuple[str, ...] | None:
    if stop is None:
        return None
    stops = (stop,) if isinstance(stop, str) else tuple(stop)
    if not all(isinstance(item, str) for item in stops):
        raise ConfigError(f"sampling stop must be a string or a list of strings, got {stop!r}")
    return stops or None


#: The sampling used when a caller passes none.
DEFAULT_SAMPLING = Sampling()


class LegacySampling(TypedDict, total=False):
    """The keyword arguments of personae 0.2's ``complete``, accepted for one release."""

    max_tokens: int
    temperature: float
    top_p: float
    seed: int | None
    stop: Sequence[str] | str | None
    response_format: StructuredOutput | Mapping[str, Any] | None


_LEGACY_FIELDS = frozenset(LegacySampling.__annotations__)


@dataclass(frozen=True, kw_only=True)
class Completion:
    """What a model returned for one request, with its accounting.

    Attributes:
        text: The generated text.
        model: The model name the server reported.
        finish_reason: ``"stop"``, ``"length"`` or the server's own value.
        prompt_tokens: Tokens in the prompt, as counted by the server.
        completion_tokens: Tokens generated.
        cached_tokens: Prompt tokens the server took from its prefix cache rather
            than computing them (vLLM says with ``--enable-prompt-tokens-details``);
            None when the server does not say.
        latency_ms: Wall time of the request as seen by the client, retries included.
        seed: The sampling seed sent with the request, if any.
        params: The sampling parameters sent (temperature, max_tokens, ...), JSON-ready.
        server: Identity of the serving software (e.g. ``"vllm 0.32.0"``) where known.
        attempts: How many HTTP attempts the request took.
        extensions: Whatever the backend returned beyond text, e.g. ``"logprobs"``
            from the OpenAI client or ``"activations"`` from a local backend;
            empty when there is nothing.
    """

    text: str
    model: str
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0
    seed: int | None = None
    cached_tokens: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    server: str | None = None
    attempts: int = 1
    extensions: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class ChatModel(Protocol):
    """An asynchronous chat model.

    Implementations must be safe to call concurrently from many tasks of one
    event loop and must never block that loop. Call one through
    :func:`complete` when it may be a user's model written for personae 0.2.
    """

    @property
    def name(self) -> str:
        """The model name recorded with every call."""
        ...

    async def complete(
        self, messages: list[Message], sampling: Sampling | None = None
    ) -> Completion:
        """Generate one reply to ``messages``.

        Args:
            messages: The chat so far, system message first.
            sampling: How to generate; :data:`DEFAULT_SAMPLING` when None.

        Returns:
            The completion with its accounting.

        Raises:
            ModelError: The request failed for good.
            ModelUnreachable: The server could not be reached.
            ModelTimeout: The server did not answer within the request timeout.
        """
        ...

    async def aclose(self) -> None:
        """Release connections; further calls are an error."""
        ...


class LegacyChatModel(Protocol):
    """A chat model written for personae 0.2, whose ``complete`` takes the sampling keywords.

    Deprecated: :func:`complete` and the wrappers still drive one, for one release.
    """

    @property
    def name(self) -> str:
        """The model name recorded with every call."""
        ...

    async def complete(self, messages: list[Message], *args: Any, **kwargs: Any) -> Completion:
        """``complete(messages, max_tokens=..., temperature=..., ...)``."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


# --------------------------------------------------------------------------- personae 0.2 calls

_WARNED: set[tuple[str, type]] = set()

# How complete() hands a Sampling to a model's class, found once per class.
_POSITIONAL = "positional"  # complete(messages, sampling)
_KEYWORD = "keyword"  # complete(messages, *, sampling=...)
_OLD_STYLE = "keywords"  # a personae 0.2 model: complete(messages, max_tokens=..., ...)
_CALL_STYLE: dict[type, tuple[str, frozenset[str] | None]] = {}


def _warn_once(kind: str, cls: type, message: str, stacklevel: int) -> None:
    if (kind, cls) in _WARNED:
        return
    _WARNED.add((kind, cls))
    warnings.warn(message, DeprecationWarning, stacklevel=stacklevel + 1)


def resolve_sampling(
    sampling: Sampling | None,
    legacy: Mapping[str, Any],
    owner: object,
    method: str = "complete",
) -> Sampling:
    """The request's Sampling, from the new argument and any personae 0.2 keywords.

    personae's own models start ``complete`` with this line. Keyword arguments
    override the fields of ``sampling`` and warn (once per class) that the
    keyword form is deprecated.

    Args:
        sampling: The Sampling passed, or None for :data:`DEFAULT_SAMPLING`.
        legacy: The keyword arguments passed (``max_tokens=...`` and so on).
        owner: The model called, named in messages.
        method: The method called, named in messages.

    Returns:
        The Sampling to serve.

    Raises:
        TypeError: ``sampling`` is not a Sampling, or a keyword is not one of
            the personae 0.2 sampling arguments.
        ConfigError: A keyword's value is invalid.
    """
    if sampling is None:
        sampling = DEFAULT_SAMPLING
    elif not isinstance(sampling, Sampling):
        raise TypeError(
            f"{type(owner).__name__}.{method}() takes a Sampling as its sampling argument, "
            f"got {type(sampling).__name__}"
        )
    if not legacy:
        return sampling
    unknown = sorted(set(legacy) - _LEGACY_FIELDS)
    if unknown:
        raise TypeError(
            f"{type(owner).__name__}.{method}() got an unexpected keyword argument {unknown[0]!r}"
        )
    _warn_once(
        f"keywords:{method}",
        type(owner),
        f"{type(owner).__name__}.{method}(..., {', '.join(f'{k}=...' for k in legacy)}) is "
        "deprecated and will be removed in the next release; pass a Sampling instead: "
        f"{method}(..., Sampling(...)) (personae.llm.base.Sampling).",
        stacklevel=3,
    )
    return sampling.replace(**legacy)


def _call_style(cls: type, method: Any) -> tuple[str, frozenset[str] | None]:
    """How to pass a Sampling to ``cls.complete``; the keywords it takes if old-style."""
    style = _CALL_STYLE.get(cls)
    if style is not None:
        return style
    try:
        parameters = inspect.signature(method).parameters
    except (TypeError, ValueError):  # no signature to read: assume the current protocol
        style = (_POSITIONAL, None)
    else:
        kinds = {p.kind for p in parameters.values()}
        if "sampling" in parameters:
            keyword_only = parameters["sampling"].kind is inspect.Parameter.KEYWORD_ONLY
            style = (_KEYWORD if keyword_only else _POSITIONAL, None)
        elif inspect.Parameter.VAR_POSITIONAL in kinds:
            style = (_POSITIONAL, None)  # a forwarder: hand the Sampling on
        elif inspect.Parameter.VAR_KEYWORD in kinds:
            style = (_OLD_STYLE, None)  # takes any keyword
        else:
            style = (_OLD_STYLE, frozenset(parameters) & _LEGACY_FIELDS)
    _CALL_STYLE[cls] = style
    return style


async def complete(
    model: ChatModel | LegacyChatModel, messages: list[Message], sampling: Sampling | None = None
) -> Completion:
    """Ask ``model`` for one reply, whichever ``complete`` signature its class has.

    The way personae calls every model. A model written against personae 0.2
    (``complete(messages, *, max_tokens=..., temperature=..., ...)`` with no
    ``sampling`` parameter) is called with those keyword arguments, once
    warned about per class; ``sampling.extensions`` cannot reach such a model
    and is dropped. The signature is read once per class.

    Args:
        model: Any chat model.
        messages: The chat so far, system message first.
        sampling: How to generate; the model's default when None.

    Returns:
        The model's completion.

    Example::

        reply = await complete(user_model, messages, Sampling(max_tokens=32, seed=1))
    """
    method = model.complete
    style, accepted = _call_style(type(model), method)
    if style == _POSITIONAL:
        return await method(messages, sampling)
    if style == _KEYWORD:
        return await method(messages, sampling=sampling)
    name = type(model).__qualname__
    _warn_once(
        "signature",
        type(model),
        f"{name}.complete takes the sampling keyword arguments of personae 0.2; personae now "
        "calls complete(messages, sampling) with a personae.llm.base.Sampling, and support "
        f"for the old signature will be removed in the next release. Give {name}.complete a "
        "'sampling: Sampling | None = None' parameter instead of the keywords.",
        stacklevel=2,
    )
    kwargs = (sampling or DEFAULT_SAMPLING).legacy_kwargs()
    if accepted is not None:
        defaults = DEFAULT_SAMPLING.legacy_kwargs()
        # Keywords the model does not take are left out while at their default,
        # as personae 0.2 never sent them; a value that matters still goes, and fails loudly.
        kwargs = {k: v for k, v in kwargs.items() if k in accepted or v != defaults[k]}
    result: Completion = await method(messages, **kwargs)
    return result
