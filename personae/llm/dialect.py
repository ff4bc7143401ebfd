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

Extensions the OpenAI client understands (others are ignored)::

    Sampling(extensions={"extra_body": {"top_k": 20}})  more request fields, sent as they are
    Sampling(extensions={"logprobs": 3})  log probabilities of each token and its 3 best
                                          alternatives, returned in
                                          Completion.extensions["logprobs"]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from personae.errors import ConfigError
from personae.llm.base import Sampling
from personae.llm.structured import Choice, Grammar, JsonSchema, Regex, StructuredOutput, structured

__all__ = ["request_fields", "sdk_arguments", "sdk_split", "split_response_format"]

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


def request_fields(sampling: Sampling) -> dict[str, Any]:
    """The top-level chat-completion fields for ``sampling``, as sent and as recorded.

    Everything but ``model`` and ``messages``: the sampling fields, the
    constraint in the server's dialect (see the module docstring), and the
    ``extra_body`` and ``logprobs`` extensions. vLLM-only fields appear at the
    top level here (``structured_outputs``, ``top_k``); the client sends them
    in the SDK's ``extra_body``.

    Args:
        sampling: The request's sampling.

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
    if sampling.response_format is not None:
        fields.update(_structured_fields(sampling.response_format))
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
