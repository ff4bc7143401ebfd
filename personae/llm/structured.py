"""Structured outputs: constraints on the shape of a reply, as a small typed union.

A :class:`~personae.llm.base.Sampling` carries at most one of these in its
``response_format``::

    Choice(["yes", "no"])                  the reply is exactly one of the options
    JsonSchema({"type": "object", ...})    the reply is JSON matching the schema
    JsonSchema(None)                       the reply is any JSON object ("JSON mode")
    Regex(r"[1-5]")                        the reply matches the regular expression
    Grammar("root ::= 'a' | 'b'")          the reply follows the grammar (vLLM's dialect)

Backends receive the typed object. Turning it into a server's request fields
happens in one place, :func:`personae.llm.openai.request_fields`.

personae 0.2 took plain dicts; :func:`structured` turns each of those shapes
into the typed form, so code that still passes dicts keeps working::

    {"type": "choice", "choices": [...]}                        -> Choice
    {"type": "regex", "pattern": "..."}                         -> Regex
    {"type": "grammar", "grammar": "..."}                       -> Grammar
    {"type": "json", "schema": {...}}                           -> JsonSchema
    {"type": "json_schema", "schema": {...}}                    -> JsonSchema
    {"type": "json_schema", "json_schema": {"name", "schema"}}  -> JsonSchema (OpenAI's form)
    {"type": "json_object"}                                     -> JsonSchema(None)
    {"structured_outputs": {"choice" | "regex" | "grammar" | "json": ...}}  -> the same types
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from personae.errors import ConfigError

__all__ = ["Choice", "Grammar", "JsonSchema", "Regex", "StructuredOutput", "structured"]

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what OpenAI accepts as a schema name


@dataclass(frozen=True, slots=True)
class Choice:
    """The reply is exactly one of ``options``.

    Args:
        options: The allowed replies, e.g. ``["1", "2", "3"]``; values are turned
            into strings, order is kept.

    Raises:
        ConfigError: ``options`` is empty or a single string.

    Example::

        Sampling(response_format=Choice(["agree", "disagree"]))
    """

    options: tuple[str, ...]

    def __init__(self, options: Iterable[Any]) -> None:
        if isinstance(options, str | bytes) or not isinstance(options, Iterable):
            raise ConfigError(
                f"Choice options must be a list of replies, got {type(options).__name__} "
                f"{options!r}"
            )
        values = tuple(str(option) for option in options)
        if not values:
            raise ConfigError("Choice options must not be empty")
        object.__setattr__(self, "options", values)

    def as_dict(self) -> dict[str, Any]:
        """The personae 0.2 dict form, ``{"type": "choice", "choices": [...]}``."""
        return {"type": "choice", "choices": list(self.options)}


@dataclass(frozen=True, slots=True)
class JsonSchema:
    """The reply is JSON matching ``schema`` (any JSON object when ``schema`` is None).

    Args:
        schema: A JSON Schema, e.g. ``{"type": "object", "properties": {...}}``;
            copied, so later changes to the caller's dict do not leak in. None
            asks for any JSON object (OpenAI's ``json_object`` mode).
        name: The schema's name, which OpenAI requires (letters, digits, ``_``, ``-``).
        strict: OpenAI's ``strict`` flag; left out of the request when None.

    Raises:
        ConfigError: ``schema`` is not a mapping or ``name`` is not a valid name.
    """

    schema: Mapping[str, Any] | None
    name: str = "response"
    strict: bool | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        if self.schema is not None and not isinstance(self.schema, Mapping):
            raise ConfigError(
                f"JsonSchema schema must be a mapping or None, got {type(self.schema).__name__}"
            )
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ConfigError(
                f"JsonSchema name must be 1 to 64 letters, digits, '_' or '-', got {self.name!r}"
            )
        if self.schema is not None:
            object.__setattr__(self, "schema", copy.deepcopy(dict(self.schema)))

    def as_dict(self) -> dict[str, Any]:
        """The personae 0.2 dict form, ``{"type": "json", "schema": {...}}``."""
        if self.schema is None:
            return {"type": "json_object"}
        form: dict[str, Any] = {"type": "json", "schema": copy.deepcopy(dict(self.schema))}
        if self.name != "response":
            form["name"] = self.name
        if self.strict is not None:
            form["strict"] = self.strict
        return form


@dataclass(frozen=True, slots=True)
class Regex:
    """The reply matches ``pattern`` (the server's regular-expression dialect).

    Raises:
        ConfigError: ``pattern`` is not a non-empty string.
    """

    pattern: str

    def __post_init__(self) -> None:
        if not isinstance(self.pattern, str) or not self.pattern:
            raise ConfigError(f"Regex pattern must be a non-empty string, got {self.pattern!r}")

    def as_dict(self) -> dict[str, Any]:
        """The personae 0.2 dict form, ``{"type": "regex", "pattern": ...}``."""
        return {"type": "regex", "pattern": self.pattern}


@dataclass(frozen=True, slots=True)
class Grammar:
    """The reply follows a context-free grammar, in the form vLLM's ``grammar`` takes.

    Raises:
        ConfigError: ``grammar`` is not a non-empty string.
    """

    grammar: str

    def __post_init__(self) -> None:
        if not isinstance(self.grammar, str) or not self.grammar:
            raise ConfigError(f"Grammar must be a non-empty string, got {self.grammar!r}")

    def as_dict(self) -> dict[str, Any]:
        """The personae 0.2 dict form, ``{"type": "grammar", "grammar": ...}``."""
        return {"type": "grammar", "grammar": self.grammar}


StructuredOutput: TypeAlias = Choice | JsonSchema | Regex | Grammar
"""Any one structured-output constraint."""

_TYPED = (Choice, JsonSchema, Regex, Grammar)


def structured(value: StructuredOutput | Mapping[str, Any] | None) -> StructuredOutput | None:
    """The typed constraint for ``value``: a typed one as it is, a personae 0.2 dict converted.

    Args:
        value: A :data:`StructuredOutput`, one of the dict shapes in the module
            docstring, or None.

    Returns:
        The typed constraint, or None for None.

    Raises:
        ConfigError: A dict of no known shape, or one missing its value (a choice
            with no choices); the message names what was expected.

    Example::

        >>> structured({"type": "choice", "choices": [1, 2]})
        Choice(options=('1', '2'))
    """
    if value is None or isinstance(value, _TYPED):
        return value
    if not isinstance(value, Mapping):
        raise ConfigError(
            "response_format must be Choice, JsonSchema, Regex, Grammar or a dict, "
            f"got {type(value).__name__}"
        )
    if set(value) == {"structured_outputs"}:
        return _from_vllm(value["structured_outputs"])
    kind = value.get("type")
    if kind == "choice":
        choices = value.get("choices")
        if not isinstance(choices, list | tuple) or not choices:
            raise ConfigError(
                "response_format: a 'choice' constraint needs a non-empty 'choices' list, "
                f"got {choices!r}"
            )
        return Choice(choices)
    if kind == "regex":
        pattern = value.get("pattern", value.get("regex"))
        if not isinstance(pattern, str):
            raise ConfigError("response_format: a 'regex' constraint needs a 'pattern' string")
        return Regex(pattern)
    if kind == "grammar":
        grammar = value.get("grammar")
        if not isinstance(grammar, str):
            raise ConfigError("response_format: a 'grammar' constraint needs a 'grammar' string")
        return Grammar(grammar)
    if kind == "json_object":
        return JsonSchema(None)
    if kind in {"json", "json_schema"} and "schema" in value:
        return JsonSchema(
            value["schema"], name=value.get("name", "response"), strict=value.get("strict")
        )
    if kind == "json_schema" and isinstance(value.get("json_schema"), Mapping):
        spec = value["json_schema"]
        schema = spec.get("schema", spec.get("json_schema"))
        if not isinstance(schema, Mapping):
            raise ConfigError("response_format: a 'json_schema' constraint needs a 'schema'")
        return JsonSchema(schema, name=spec.get("name", "response"), strict=spec.get("strict"))
    raise ConfigError(
        f"response_format {dict(value)!r} has no known shape; use Choice, JsonSchema, Regex "
        "or Grammar from personae.llm.base (server-specific fields go in "
        "Sampling(extensions={'extra_body': {...}}))"
    )


def _from_vllm(fields: Any) -> StructuredOutput:
    """The typed form of vLLM's ``structured_outputs`` object with one known key."""
    if isinstance(fields, Mapping) and len(fields) == 1:
        ((key, item),) = fields.items()
        if key == "choice" and isinstance(item, list | tuple) and item:
            return Choice(item)
        if key == "regex" and isinstance(item, str):
            return Regex(item)
        if key == "grammar" and isinstance(item, str):
            return Grammar(item)
        if key == "json" and isinstance(item, Mapping):
            return JsonSchema(item)
        if key == "json_object" and item is True:
            return JsonSchema(None)
    raise ConfigError(
        f"response_format: structured_outputs {fields!r} is not one of choice, regex, grammar "
        "or json; pass other vLLM fields as Sampling(extensions={'extra_body': "
        "{'structured_outputs': {...}}})"
    )
