"""The request object: Sampling's checks and helpers, the typed constraints, the 0.2 dict shapes."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from personae.errors import ConfigError
from personae.llm.base import (
    DEFAULT_SAMPLING,
    Choice,
    Completion,
    Grammar,
    JsonSchema,
    Regex,
    Sampling,
    structured,
)


def test_defaults_are_those_of_personae_0_2() -> None:
    sampling = Sampling()
    assert (sampling.max_tokens, sampling.temperature, sampling.top_p) == (128, 0.8, 1.0)
    assert sampling.seed is None and sampling.stop is None and sampling.response_format is None
    assert sampling.extensions == {}
    assert sampling == DEFAULT_SAMPLING


def test_a_sampling_is_frozen_and_replace_makes_a_checked_copy() -> None:
    base = Sampling(max_tokens=32, extensions={"logprobs": 1})

    varied = base.replace(seed=3, response_format={"type": "choice", "choices": ["a"]})

    assert (varied.max_tokens, varied.seed) == (32, 3)
    assert varied.response_format == Choice(["a"])
    assert varied.extensions == {"logprobs": 1}
    assert base.seed is None
    with pytest.raises(AttributeError):
        base.seed = 1  # type: ignore[misc]
    with pytest.raises(ConfigError, match="top_p"):
        base.replace(top_p=0)


def test_with_extensions_adds_to_the_extensions() -> None:
    sampling = Sampling(extensions={"logprobs": 1}).with_extensions(return_activations=[12])
    assert sampling.extensions == {"logprobs": 1, "return_activations": [12]}


def test_the_callers_extensions_dict_is_copied() -> None:
    extras: dict[str, Any] = {"logprobs": 1}
    sampling = Sampling(extensions=extras)
    extras["logprobs"] = 5
    assert sampling.extensions == {"logprobs": 1}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 1.5}, "max_tokens"),
        ({"max_tokens": True}, "max_tokens"),
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"seed": "7"}, "seed"),
        ({"stop": [1]}, "stop"),
        ({"extensions": ["logprobs"]}, "extensions"),
        ({"response_format": "json"}, "response_format"),
    ],
    ids=str,
)
def test_bad_values_are_refused_naming_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        Sampling(**changes)


def test_stop_takes_one_string_or_several_and_empty_means_none() -> None:
    assert Sampling(stop="\n").stop == ("\n",)
    assert Sampling(stop=["a", "b"]).stop == ("a", "b")
    assert Sampling(stop=[]).stop is None


def test_params_are_plain_json_in_the_recorded_shape() -> None:
    sampling = Sampling(
        max_tokens=8,
        seed=2,
        stop=["x"],
        response_format=JsonSchema({"type": "object"}),
        extensions={"logprobs": 1},
    )
    assert sampling.params() == {
        "max_tokens": 8,
        "temperature": 0.8,
        "top_p": 1.0,
        "seed": 2,
        "stop": ["x"],
        "response_format": {"type": "json", "schema": {"type": "object"}},
        "extensions": {"logprobs": 1},
    }
    assert Sampling().params() == {"max_tokens": 128, "temperature": 0.8, "top_p": 1.0}


def test_sampling_and_completion_survive_pickling() -> None:
    sampling = Sampling(seed=1, response_format=Choice(["a", "b"]), extensions={"k": [1]})
    completion = Completion(text="a", model="m", extensions={"logprobs": [{"token": "a"}]})
    assert pickle.loads(pickle.dumps(sampling)) == sampling
    assert pickle.loads(pickle.dumps(completion)) == completion


def test_a_completion_has_empty_extensions_by_default() -> None:
    assert Completion(text="a", model="m").extensions == {}


# --------------------------------------------------------------------------- constraints


@pytest.mark.parametrize(
    ("legacy", "typed"),
    [
        ({"type": "choice", "choices": ["1", 2]}, Choice(["1", "2"])),
        ({"type": "regex", "pattern": "[1-5]"}, Regex("[1-5]")),
        ({"type": "regex", "regex": "[1-5]"}, Regex("[1-5]")),
        ({"type": "grammar", "grammar": "root ::= 'a'"}, Grammar("root ::= 'a'")),
        ({"type": "json", "schema": {"type": "integer"}}, JsonSchema({"type": "integer"})),
        ({"type": "json_schema", "schema": {"type": "object"}}, JsonSchema({"type": "object"})),
        (
            {
                "type": "json_schema",
                "json_schema": {"name": "a", "schema": {"type": "object"}, "strict": True},
            },
            JsonSchema({"type": "object"}, name="a", strict=True),
        ),
        ({"type": "json_object"}, JsonSchema(None)),
        ({"structured_outputs": {"choice": ["x", "y"]}}, Choice(["x", "y"])),
        ({"structured_outputs": {"json": {"type": "object"}}}, JsonSchema({"type": "object"})),
        ({"structured_outputs": {"regex": "a+"}}, Regex("a+")),
    ],
    ids=lambda value: str(value)[:40],
)
def test_every_personae_0_2_dict_shape_has_a_typed_form(legacy: Any, typed: Any) -> None:
    assert structured(legacy) == typed
    assert Sampling(response_format=legacy).response_format == typed
    assert structured(typed) is typed


@pytest.mark.parametrize(
    "constraint",
    [
        Choice(["a", "b"]),
        Regex("[0-9]+"),
        Grammar("root ::= 'a'"),
        JsonSchema({"type": "object"}, name="mood", strict=False),
        JsonSchema(None),
    ],
    ids=str,
)
def test_the_dict_form_converts_back_to_the_same_constraint(constraint: Any) -> None:
    assert structured(constraint.as_dict()) == constraint


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"type": "choice"}, "choices"),
        ({"type": "choice", "choices": []}, "choices"),
        ({"type": "regex"}, "pattern"),
        ({"type": "grammar"}, "grammar"),
        ({"type": "json_schema", "json_schema": {"name": "a"}}, "schema"),
        ({"type": "xml"}, "no known shape"),
        ({"structured_outputs": {"structural_tag": "..."}}, "extra_body"),
    ],
    ids=str,
)
def test_a_dict_of_no_known_shape_is_refused_with_the_way_out(value: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        structured(value)


def test_constraints_check_their_values() -> None:
    with pytest.raises(ConfigError, match="list of replies"):
        Choice("yes")
    with pytest.raises(ConfigError, match="empty"):
        Choice([])
    with pytest.raises(ConfigError, match="name"):
        JsonSchema({"type": "object"}, name="has spaces")
    with pytest.raises(ConfigError, match="mapping"):
        JsonSchema(["not", "a", "schema"])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="pattern"):
        Regex("")


def test_a_json_schema_keeps_its_own_copy_of_the_schema() -> None:
    schema: dict[str, Any] = {"type": "object", "properties": {}}
    constraint = JsonSchema(schema)
    schema["properties"]["x"] = {"type": "string"}
    assert constraint.schema == {"type": "object", "properties": {}}
