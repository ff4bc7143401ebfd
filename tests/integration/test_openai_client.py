"""OpenAIChatModel and the client stack against the real embedded vLLM server.

The session fixture ``vllm_server`` (tests/integration/conftest.py) yields an
object with ``.base_url`` (ending in ``/v1``) and ``.model``. Clients are made
inside each test so that they live on the test's own event loop.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest

from personae.errors import ModelError
from personae.llm.base import Choice, JsonSchema, Message, Regex, Sampling
from personae.llm.openai import OpenAIChatModel, check_reachable
from personae.llm.wrappers import ConcurrencyLimitedModel, build_client, find_layer

pytestmark = pytest.mark.integration


def ask(question: str) -> list[Message]:
    return [
        {"role": "system", "content": "You are Sam, a second-year student. Answer briefly."},
        {"role": "user", "content": question},
    ]


async def test_a_chat_completion_returns_text_token_counts_and_finish_reason(
    vllm_server: Any,
) -> None:
    model = OpenAIChatModel(vllm_server.base_url, vllm_server.model)
    try:
        reply = await model.complete(
            ask("How are your exams going?"), Sampling(max_tokens=24, seed=1)
        )
    finally:
        await model.aclose()

    assert reply.text.strip()
    assert reply.model == vllm_server.model
    assert reply.finish_reason in {"stop", "length"}
    assert reply.prompt_tokens > 10
    assert 0 < reply.completion_tokens <= 24
    assert reply.latency_ms > 0
    assert reply.params["max_tokens"] == 24


async def test_hitting_max_tokens_reports_length(vllm_server: Any) -> None:
    model = OpenAIChatModel(vllm_server.base_url, vllm_server.model)
    try:
        reply = await model.complete(
            ask("Tell me a long story about your whole semester."), Sampling(max_tokens=3, seed=2)
        )
    finally:
        await model.aclose()

    assert reply.finish_reason == "length"
    assert reply.completion_tokens == 3


async def test_the_same_seed_gives_the_same_text_and_records_seed_and_server(
    vllm_server: Any,
) -> None:
    model = OpenAIChatModel(vllm_server.base_url, vllm_server.model)
    messages = ask("Describe your week in two sentences.")
    try:
        first = await model.complete(messages, Sampling(max_tokens=32, temperature=1.0, seed=1234))
        second = await model.complete(messages, Sampling(max_tokens=32, temperature=1.0, seed=1234))
        others = [
            (
                await model.complete(messages, Sampling(max_tokens=32, temperature=1.0, seed=seed))
            ).text
            for seed in (1, 2, 3)
        ]
    finally:
        await model.aclose()

    assert first.text == second.text
    assert first.seed == second.seed == 1234
    assert first.params["seed"] == 1234
    assert first.server is not None and first.server.startswith("vllm ")
    assert len({first.text, *others}) > 1, "different seeds should sample different texts"


async def test_32_concurrent_requests_through_build_client_all_succeed(vllm_server: Any) -> None:
    model = build_client(vllm_server.base_url, vllm_server.model, max_in_flight=8, retries=2)
    try:
        replies = await asyncio.gather(
            *(
                model.complete(
                    ask(f"Name one thing you did on day {i}."), Sampling(max_tokens=8, seed=i)
                )
                for i in range(32)
            )
        )
        limiter = find_layer(model, ConcurrencyLimitedModel)
    finally:
        await model.aclose()

    assert len(replies) == 32
    assert all(reply.completion_tokens > 0 for reply in replies)
    assert [reply.seed for reply in replies] == list(range(32))
    usage = model.snapshot()
    assert (usage.calls, usage.errors) == (32, 0)
    assert usage.completion_tokens == sum(reply.completion_tokens for reply in replies)
    assert limiter is not None
    assert limiter.peak_in_flight == 8


async def test_a_choice_constraint_returns_one_of_the_choices(vllm_server: Any) -> None:
    choices = ["strongly agree", "agree", "neutral", "disagree", "strongly disagree"]
    model = OpenAIChatModel(vllm_server.base_url, vllm_server.model)
    try:
        replies = [
            await model.complete(
                ask("'I worry a lot.' How much do you agree?"),
                Sampling(max_tokens=8, temperature=1.0, seed=seed, response_format=Choice(choices)),
            )
            for seed in range(3)
        ]
    finally:
        await model.aclose()

    for reply in replies:
        assert reply.text in choices
        assert reply.params["structured_outputs"] == {"choice": choices}


async def test_a_regex_constraint_is_honoured(vllm_server: Any) -> None:
    model = OpenAIChatModel(vllm_server.base_url, vllm_server.model)
    try:
        reply = await model.complete(
            ask("On a scale of 1 to 5, how stressed are you?"),
            Sampling(max_tokens=4, seed=5, response_format=Regex("[1-5]")),
        )
    finally:
        await model.aclose()

    assert re.fullmatch("[1-5]", reply.text)


async def test_a_json_schema_constraint_returns_matching_json(vllm_server: Any) -> None:
    schema = {
        "type": "object",
        "properties": {"stress": {"type": "integer", "enum": [1, 2, 3, 4, 5]}},
        "required": ["stress"],
        "additionalProperties": False,
    }
    model = OpenAIChatModel(vllm_server.base_url, vllm_server.model)
    try:
        reply = await model.complete(
            ask("How stressed are you, from 1 to 5? Answer in JSON."),
            Sampling(max_tokens=24, seed=3, response_format=JsonSchema(schema, name="stress")),
        )
    finally:
        await model.aclose()

    assert json.loads(reply.text)["stress"] in {1, 2, 3, 4, 5}
    assert reply.params["response_format"]["json_schema"]["name"] == "stress"


async def test_the_logprobs_extension_returns_one_entry_per_token(vllm_server: Any) -> None:
    model = OpenAIChatModel(vllm_server.base_url, vllm_server.model)
    try:
        reply = await model.complete(
            ask("Say hello."), Sampling(max_tokens=4, seed=1, extensions={"logprobs": 2})
        )
    finally:
        await model.aclose()

    entries = reply.extensions["logprobs"]
    assert len(entries) == reply.completion_tokens
    assert all(entry["logprob"] <= 0 and len(entry["top_logprobs"]) == 2 for entry in entries)


async def test_the_personae_0_2_keyword_form_still_reaches_the_server(vllm_server: Any) -> None:
    model = OpenAIChatModel(vllm_server.base_url, vllm_server.model)
    try:
        with pytest.warns(DeprecationWarning):
            reply = await model.complete(
                ask("Pick one."),
                max_tokens=4,
                seed=2,
                response_format={"type": "choice", "choices": ["red", "blue"]},
            )
    finally:
        await model.aclose()

    assert reply.text in {"red", "blue"}


async def test_an_impossible_request_is_a_non_retryable_error_with_the_server_text(
    vllm_server: Any,
) -> None:
    model = OpenAIChatModel(vllm_server.base_url, vllm_server.model)
    try:
        with pytest.raises(ModelError) as caught:
            await model.complete(ask("Hi"), Sampling(max_tokens=10_000_000))
    finally:
        await model.aclose()

    assert not caught.value.retryable
    assert "HTTP 400" in str(caught.value)
    assert "max" in str(caught.value).lower(), "the server's explanation should be kept"


async def test_check_reachable_lists_the_served_model(vllm_server: Any) -> None:
    models = await check_reachable(vllm_server.base_url, vllm_server.model)
    assert vllm_server.model in models
