"""How a :class:`~personae.llm.base.Sampling` becomes the fields of a chat-completion request.

The one place a Sampling is translated for an OpenAI-compatible server
(:class:`~personae.llm.openai.OpenAIChatModel` sends what
:func:`request_fields` builds; ``personae bench`` replays it). Structured
outputs go where the server expects them: JSON schemas in OpenAI's
``response_format`` (which vLLM and other OpenAI-compatible servers also
take), the constraints OpenAI has no field for in vLLM's
``structured_outputs`` (the name since vLLM 0.10.2; the older ``guided_*``
fields were removed in 0.12)::

    Choice(["yes", "no"])       -> structured_outputs: {"choice": ["yes", "no"]}
    Regex("[0-9]+")             -> structured_outputs: {"regex": "[0-9]+"}
    Grammar("...")              -> structured_outputs: {"grammar": "..."}
    JsonSchema(schema, name=n)  -> response_format: {"type": "json_schema",
                                       "json_schema": {"name": n, "schema": schema}}
    JsonSchema(None)            -> response_format: {"type": "json_object"}

That is the ``"vllm"`` mode. A server that is not vLLM refuses
``structured_outputs``, so the client picks a mode per server (see
:class:`~personae.llm.openai.OpenAIChatModel` and ``docs/servers.md``)::

    mode      Choice, Regex, Grammar       JsonSchema
    vllm      structured_outputs           response_format
    openai    not sent                     response_format
    none      not sent                     not sent

A constraint that is not sent leaves the reply free; callers read it tolerantly
(an answer that cannot be read is stored as invalid, with its raw text).

Extensions the OpenAI client understands (others are ignored)::

    Sampling(extensions={"extra_body": {"top_k": 20}})  more request fields, sent as they are
    Sampling(extensions={"logprobs": 3})  log probabilities of each token and its 3 best
                                          alternatives, returned in
                                          Completion.extensions["logprobs"]
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal, TypeAlias, cast

from personae.errors import ConfigError
from personae.llm.base import Sampling
from personae.llm.structured import Choice, Grammar, JsonSchema, Regex, StructuredOutput, structured

__all__ = [
    "MODES",
    "Mechanism",
    "Mode",
    "StructuredMode",
    "cached_tokens",
    "check_mode",
    "downgrade",
    "mechanism",
    "names_constraint_field",
    "request_fields",
    "sdk_arguments",
    "sdk_split",
    "split_response_format",
]

StructuredMode: TypeAlias = Literal["auto", "vllm", "openai", "none"]
"""How a client asks for structured outputs; ``"auto"`` detects the server."""

Mode: TypeAlias = Literal["vllm", "openai", "none"]
"""A mode in use (``"auto"`` resolved)."""

Mechanism: TypeAlias = Literal["structured_outputs", "response_format", "none"]
"""The field a constraint went in, as recorded in ``Completion.extensions["structured"]``."""

#: The structured-output modes, in the order a client steps down through them.
MODES: tuple[StructuredMode, ...] = ("auto", "vllm", "openai", "none")
_DOWN: dict[Mode, Mode] = {"vllm": "openai", "openai": "none"}
#: Words in a server's error text that name a constraint field.
_CONSTRAINT_FIELD = re.compile(r"structured_outputs|response_format|guided_\w+")

#: Request fields the SDK's ``create`` takes as arguments; any other goes in ``extra_body``.
_SDK_FIELDS = frozenset(
    {
        "max_tokens",
        "temperature",
        "top_p",
        "seed",
        "stop",
        "response_format",
        "logprobs",
        "top_logprobs",
    }
)
_RESERVED_FIELDS = frozenset({"model", "messages", "stream"})


def _structured_fields(constraint: StructuredOutput) -> dict[str, Any]:
    """The request field for one structured-output constraint (see the module docstring).

    Returns:
        ``{"response_format": {...}}`` or ``{"structured_outputs": {...}}``.
    """
    if isinstance(constraint, Choice):
        return {"structured_outputs": {"choice": list(constraint.options)}}
    if isinstance(constraint, Regex):
        return {"structured_outputs": {"regex": constraint.pattern}}
    if isinstance(constraint, Grammar):
        return {"structured_outputs": {"grammar": constraint.grammar}}
    if isinstance(constraint, JsonSchema):
        if constraint.schema is None:
            return {"response_format": {"type": "json_object"}}
        spec: dict[str, Any] = {"name": constraint.name, "schema": dict(constraint.schema)}
        if constraint.strict is not None:
            spec["strict"] = constraint.strict
        return {"response_format": {"type": "json_schema", "json_schema": spec}}
    raise ConfigError(f"unknown structured-output constraint {constraint!r}")


def check_mode(structured: str) -> StructuredMode:
    """``structured`` if it is one of :data:`MODES`.

    Raises:
        ConfigError: It is not; the message lists the modes.
    """
    if structured not in MODES:
        raise ConfigError(
            f"structured must be one of {', '.join(MODES)}, got {structured!r} (auto detects "
            "the server; vllm sends structured_outputs; openai sends JSON schemas only; none "
            "sends no constraint)"
        )
    return cast(StructuredMode, structured)


def mechanism(constraint: StructuredOutput | None, mode: Mode) -> Mechanism | None:
    """The field ``constraint`` is sent in under ``mode``; None when there is no constraint.

    Example::

        >>> mechanism(Choice(["a", "b"]), "openai")
        'none'
    """
    if constraint is None:
        return None
    if mode == "none":
        return "none"
    if isinstance(constraint, JsonSchema):
        return "response_format"
    return "structured_outputs" if mode == "vllm" else "none"


def downgrade(mode: Mode, constraint: StructuredOutput) -> Mode | None:
    """The next mode down that sends ``constraint`` differently, or None at the bottom.

    One step (vllm -> openai -> none), or two where the middle one would send
    the same field again (a JSON schema goes in ``response_format`` under both
    vllm and openai).
    """
    sent = mechanism(constraint, mode)
    lower = _DOWN.get(mode)
    while lower is not None and mechanism(constraint, lower) == sent:
        lower = _DOWN.get(lower)
    return lower


def names_constraint_field(text: str) -> bool:
    """Whether a server's error text names a constraint field (``structured_outputs``, ...)."""
    return _CONSTRAINT_FIELD.search(text) is not None


def request_fields(sampling: Sampling, *, mode: Mode = "vllm") -> dict[str, Any]:
    """The top-level chat-completion fields for ``sampling``, as sent and as recorded.

    Everything but ``model`` and ``messages``: the sampling fields, the
    constraint in the field ``mode`` puts it in (see the module docstring),
    and the ``extra_body`` and ``logprobs`` extensions. vLLM-only fields
    appear at the top level here (``structured_outputs``, ``top_k``); the
    client sends them in the SDK's ``extra_body``.

    Args:
        sampling: The request's sampling.
        mode: The structured-output mode: ``"vllm"``, ``"openai"`` or ``"none"``.

    Returns:
        A JSON-ready dict, e.g. ``{"max_tokens": 32, "temperature": 0.8,
        "top_p": 1.0, "seed": 7, "structured_outputs": {"choice": ["a", "b"]}}``.

    Raises:
        ConfigError: An extension has the wrong type or tries to set
            ``model``, ``messages`` or ``stream``.
    """
    fields: dict[str, Any] = {
        "max_tokens": sampling.max_tokens,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
    }
    if sampling.seed is not None:
        fields["seed"] = sampling.seed
    if sampling.stop:
        fields["stop"] = list(sampling.stop)
    constraint = sampling.response_format
    if constraint is not None and mechanism(constraint, mode) != "none":
        fields.update(_structured_fields(constraint))
    extensions = sampling.extensions
    if "logprobs" in extensions:
        top = extensions["logprobs"]
        if isinstance(top, bool) or not isinstance(top, int) or top < 0:
            raise ConfigError(
                f"the 'logprobs' extension takes the number of alternatives per token (>= 0), "
                f"got {top!r}"
            )
        fields["logprobs"] = True
        fields["top_logprobs"] = top
    extra = extensions.get("extra_body")
    if extra is not None:
        if not isinstance(extra, Mapping):
            raise ConfigError(f"the 'extra_body' extension must be a mapping, got {extra!r}")
        reserved = sorted(_RESERVED_FIELDS & set(extra))
        if reserved:
            raise ConfigError(f"the 'extra_body' extension may not set {', '.join(reserved)}")
        fields.update(extra)
    return fields


def sdk_arguments(sampling: Sampling) -> dict[str, Any]:
    """The keyword arguments of ``AsyncOpenAI().chat.completions.create`` for ``sampling``.

    The fields of :func:`request_fields`, with those the SDK has no argument
    for (vLLM's ``structured_outputs``, ``top_k``, ...) moved into ``extra_body``.

    Example::

        await client.chat.completions.create(model=name, messages=messages, **sdk_arguments(sampling))
    """
    return sdk_split(request_fields(sampling))


def sdk_split(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Request fields as SDK arguments: those it has no argument for go in ``extra_body``."""
    arguments: dict[str, Any] = {}
    extra_body: dict[str, Any] = {}
    for key, value in fields.items():
        (arguments if key in _SDK_FIELDS else extra_body)[key] = value
    if extra_body:
        arguments["extra_body"] = extra_body
    return arguments


def split_response_format(
    response_format: StructuredOutput | Mapping[str, Any],
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Deprecated: sort a constraint into OpenAI's ``response_format`` or vLLM's field.

    Kept for one release for code written for personae 0.2; use
    :func:`request_fields` instead.

    Returns:
        ``(response_format, structured_outputs)``, exactly one of them not None.

    Raises:
        ConfigError: The constraint has no known shape or misses its value.
    """
    constraint = structured(response_format)
    if constraint is None:
        raise ConfigError("response_format: no constraint given")
    fields = _structured_fields(constraint)
    return fields.get("response_format"), fields.get("structured_outputs")


def cached_tokens(usage: Mapping[str, Any]) -> int | None:
    """Prompt tokens a server took from its prefix cache, where its usage says; else None.

    The OpenAI field ``usage.prompt_tokens_details.cached_tokens`` (vLLM fills
    it when started with ``--enable-prompt-tokens-details``).

    Example:
        >>> cached_tokens({"prompt_tokens": 300, "prompt_tokens_details": {"cached_tokens": 256}})
        256
        >>> cached_tokens({"prompt_tokens": 300}) is None
        True
    """
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, Mapping) else None
    return cached if isinstance(cached, int) and not isinstance(cached, bool) else None
