"""OpenAIChatModel against faults injected at the HTTP layer with ``httpx.MockTransport``.

Only the transport is faked: the openai SDK, its request building and its error
handling run for real.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from personae.errors import ConfigError, ModelError, ModelUnreachable
from personae.llm.base import Choice, Grammar, JsonSchema, Message, Regex, Sampling
from personae.llm.openai import (
    OpenAIChatModel,
    check_reachable,
    list_models,
    request_fields,
    sdk_arguments,
    split_response_format,
)
from personae.llm.wrappers import RetryingModel

BASE_URL = "http://testserver/v1"
HELLO: list[Message] = [
    {"role": "system", "content": "You are Sam."},
    {"role": "user", "content": "How are you?"},
]
Handler = Callable[[httpx.Request], httpx.Response]


def completion_body(text: str = "Fine, thanks.", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "tiny-served",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 21, "completion_tokens": 4, "total_tokens": 25},
    }
    body.update(overrides)
    return body


class FakeServer:
    """A MockTransport handler: scripted chat answers, a /version route, a request log."""

    def __init__(self, *answers: httpx.Response | Exception, version: str | None = "0.32.0"):
        self.answers = list(answers)
        self.version = version
        self.requests: list[httpx.Request] = []
        self.version_requests = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/version":
            self.version_requests += 1
            if self.version is None:
                return httpx.Response(404, json={"detail": "Not Found"})
            return httpx.Response(200, json={"version": self.version})
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(request.content) for request in self.requests]


def model_for(handler: Handler, **kwargs: Any) -> OpenAIChatModel:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return OpenAIChatModel(BASE_URL, "tiny", http_client=client, **kwargs)


def ok(text: str = "Fine, thanks.", **overrides: Any) -> httpx.Response:
    return httpx.Response(200, json=completion_body(text, **overrides))


async def test_a_completion_carries_text_usage_seed_params_and_server() -> None:
    server = FakeServer(ok())
    model = model_for(server)

    reply = await model.complete(
        HELLO, Sampling(max_tokens=40, temperature=0.2, top_p=0.95, seed=1234, stop=["\nSam:"])
    )

    assert reply.text == "Fine, thanks."
    assert reply.model == "tiny-served"
    assert reply.finish_reason == "stop"
    assert (reply.prompt_tokens, reply.completion_tokens) == (21, 4)
    assert reply.seed == 1234
    assert reply.params == {
        "max_tokens": 40,
        "temperature": 0.2,
        "top_p": 0.95,
        "seed": 1234,
        "stop": ["\nSam:"],
    }
    assert reply.server == "vllm 0.32.0"
    assert reply.latency_ms > 0
    assert reply.attempts == 1


async def test_the_request_body_carries_the_seed_and_sampling_params() -> None:
    server = FakeServer(ok())
    model = model_for(server)

    await model.complete(
        HELLO, Sampling(max_tokens=40, temperature=0.2, top_p=0.95, seed=1234, stop=["x"])
    )

    (request,) = server.requests
    assert request.method == "POST"
    assert request.url == f"{BASE_URL}/chat/completions"
    (body,) = server.bodies
    assert body["model"] == "tiny"
    assert body["messages"] == HELLO
    assert body["seed"] == 1234
    assert body["temperature"] == 0.2
    assert body["top_p"] == 0.95
    assert body["max_tokens"] == 40
    assert body["stop"] == ["x"]
    assert "response_format" not in body
    assert "structured_outputs" not in body


async def test_no_seed_means_no_seed_field() -> None:
    server = FakeServer(ok())
    reply = await model_for(server).complete(HELLO)
    assert "seed" not in server.bodies[0]
    assert reply.seed is None


async def test_server_version_is_asked_once_and_absence_is_tolerated() -> None:
    server = FakeServer(ok())
    model = model_for(server)
    for _ in range(3):
        assert (await model.complete(HELLO)).server == "vllm 0.32.0"
    assert server.version_requests == 1

    silent = FakeServer(ok(), version=None)
    assert (await model_for(silent).complete(HELLO)).server is None


async def test_a_500_then_a_200_succeeds_through_the_retry_wrapper() -> None:
    server = FakeServer(
        httpx.Response(500, json={"error": {"message": "engine hiccup", "code": 500}}), ok()
    )
    model = RetryingModel(model_for(server), base_delay=0.001)

    reply = await model.complete(HELLO, Sampling(seed=9))

    assert reply.text == "Fine, thanks."
    assert reply.attempts == 2
    assert len(server.requests) == 2
    assert [body["seed"] for body in server.bodies] == [9, 9]


@pytest.mark.parametrize("status", [429, 500, 502, 503])
async def test_overload_and_server_errors_are_retryable(status: int) -> None:
    server = FakeServer(httpx.Response(status, json={"error": {"message": "busy right now"}}))

    with pytest.raises(ModelError) as caught:
        await model_for(server).complete(HELLO)

    assert caught.value.retryable
    assert f"HTTP {status}" in str(caught.value)
    assert "busy right now" in str(caught.value)
    assert BASE_URL in str(caught.value)


async def test_a_400_is_not_retried_and_names_the_server_text() -> None:
    text = "max_tokens=99999 cannot be greater than max_model_len=2048"
    server = FakeServer(
        httpx.Response(400, json={"error": {"message": text, "type": "BadRequestError"}})
    )
    model = RetryingModel(model_for(server), base_delay=0.001)

    with pytest.raises(ModelError) as caught:
        await model.complete(HELLO, Sampling(max_tokens=99999))

    assert not caught.value.retryable
    assert not isinstance(caught.value, ModelUnreachable)
    assert text in str(caught.value)
    assert "HTTP 400" in str(caught.value)
    assert len(server.requests) == 1


async def test_a_404_with_a_plain_text_body_keeps_that_text() -> None:
    server = FakeServer(httpx.Response(404, text="The model `tiny` does not exist."))
    with pytest.raises(ModelError, match="does not exist") as caught:
        await model_for(server).complete(HELLO)
    assert not caught.value.retryable


@pytest.mark.parametrize(
    ("response", "what"),
    [
        (httpx.Response(200, text="<html>proxy error</html>"), "not JSON"),
        (
            httpx.Response(
                200, content=b'{"choices": [', headers={"content-type": "application/json"}
            ),
            "not JSON",
        ),
        (httpx.Response(200, json={"object": "chat.completion", "choices": []}), "no choices"),
        (httpx.Response(200, json=["not", "an", "object"]), "not a chat completion"),
        (ok(text=None), "no message content"),  # type: ignore[arg-type]
    ],
    ids=["html", "truncated-json", "no-choices", "json-list", "null-content"],
)
async def test_a_malformed_body_is_a_retryable_model_error_quoting_it(
    response: httpx.Response, what: str
) -> None:
    server = FakeServer(response)

    with pytest.raises(ModelError) as caught:
        await model_for(server).complete(HELLO)

    message = str(caught.value)
    assert what in message
    assert BASE_URL in message
    assert response.content.decode()[:10] in message, "the raw body should be quoted"
    assert caught.value.retryable


async def test_a_read_timeout_is_retryable_and_not_called_unreachable() -> None:
    server = FakeServer(httpx.ReadTimeout("read timed out"))

    with pytest.raises(ModelError) as caught:
        await model_for(server, timeout=7.5).complete(HELLO)

    assert caught.value.retryable
    assert not isinstance(caught.value, ModelUnreachable)
    assert BASE_URL in str(caught.value)
    assert "7.5 s" in str(caught.value)


async def test_a_refused_connection_is_unreachable_and_names_the_url() -> None:
    server = FakeServer(httpx.ConnectError("[Errno 111] Connection refused"))

    with pytest.raises(ModelUnreachable) as caught:
        await model_for(server).complete(HELLO)

    assert str(caught.value) == (
        f"could not reach an OpenAI-compatible server at {BASE_URL}: [Errno 111] Connection refused"
    )
    assert caught.value.retryable


async def test_timeouts_recover_through_the_retry_wrapper() -> None:
    server = FakeServer(httpx.ReadTimeout("slow"), httpx.ConnectError("refused"), ok("back"))
    reply = await RetryingModel(model_for(server), base_delay=0.001).complete(HELLO)
    assert reply.text == "back"
    assert reply.attempts == 3


async def test_a_choice_constraint_is_sent_as_vllm_structured_outputs() -> None:
    server = FakeServer(ok("yes"))

    reply = await model_for(server).complete(
        HELLO, Sampling(response_format={"type": "choice", "choices": ["yes", "no"]})
    )

    (body,) = server.bodies
    assert body["structured_outputs"] == {"choice": ["yes", "no"]}
    assert "response_format" not in body
    assert reply.params["structured_outputs"] == {"choice": ["yes", "no"]}


SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}}


@pytest.mark.parametrize(
    ("response_format", "field", "sent"),
    [
        (Choice(["a", "b"]), "structured_outputs", {"choice": ["a", "b"]}),
        (Regex("[1-5]"), "structured_outputs", {"regex": "[1-5]"}),
        (Grammar("root ::= 'a'"), "structured_outputs", {"grammar": "root ::= 'a'"}),
        (
            JsonSchema(SCHEMA, name="answer", strict=True),
            "response_format",
            {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": SCHEMA, "strict": True},
            },
        ),
        (JsonSchema(None), "response_format", {"type": "json_object"}),
        # The personae 0.2 dict shapes, converted to the typed form first:
        ({"type": "json_object"}, "response_format", {"type": "json_object"}),
        (
            {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}}},
            "response_format",
            {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}}},
        ),
        (
            {"type": "json", "schema": {"type": "integer"}},
            "response_format",
            {
                "type": "json_schema",
                "json_schema": {"name": "response", "schema": {"type": "integer"}},
            },
        ),
        ({"type": "regex", "pattern": "[1-5]"}, "structured_outputs", {"regex": "[1-5]"}),
        (
            {"structured_outputs": {"grammar": "root ::= 'a'"}},
            "structured_outputs",
            {"grammar": "root ::= 'a'"},
        ),
    ],
    ids=[
        "choice",
        "regex",
        "grammar",
        "json-schema",
        "json-mode",
        "dict-json_object",
        "dict-openai-json_schema",
        "dict-vllm-json",
        "dict-regex",
        "dict-raw",
    ],
)
async def test_response_formats_go_to_the_field_the_server_expects(
    response_format: Any, field: str, sent: dict[str, Any]
) -> None:
    server = FakeServer(ok("{}"))
    reply = await model_for(server).complete(HELLO, Sampling(response_format=response_format))
    (body,) = server.bodies
    assert body[field] == sent
    other = {"response_format", "structured_outputs"} - {field}
    assert not other & set(body)
    assert reply.params[field] == sent


def test_the_personae_0_2_helper_still_splits_a_constraint() -> None:
    assert split_response_format({"type": "choice", "choices": ["a"]}) == (None, {"choice": ["a"]})
    assert split_response_format(JsonSchema(None)) == ({"type": "json_object"}, None)


async def test_extra_body_extensions_reach_the_server_and_the_record() -> None:
    server = FakeServer(ok())
    sampling = Sampling(seed=3, extensions={"extra_body": {"top_k": 20}, "unknown": 1})

    reply = await model_for(server).complete(HELLO, sampling)

    (body,) = server.bodies
    assert body["top_k"] == 20
    assert "unknown" not in body and "extensions" not in body
    assert reply.params["top_k"] == 20
    assert sdk_arguments(sampling)["extra_body"] == {"top_k": 20}


async def test_the_logprobs_extension_asks_for_them_and_returns_them() -> None:
    content = [{"token": "Fine", "logprob": -0.1, "top_logprobs": []}]
    server = FakeServer(
        ok(
            choices=[
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Fine"},
                    "finish_reason": "stop",
                    "logprobs": {"content": content},
                }
            ]
        )
    )

    reply = await model_for(server).complete(HELLO, Sampling(extensions={"logprobs": 0}))

    (body,) = server.bodies
    assert (body["logprobs"], body["top_logprobs"]) == (True, 0)
    assert reply.extensions == {"logprobs": content}


@pytest.mark.parametrize(
    "extensions",
    [{"logprobs": -1}, {"logprobs": True}, {"extra_body": {"model": "x"}}, {"extra_body": 3}],
    ids=str,
)
def test_malformed_extensions_are_refused_before_any_request(extensions: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        request_fields(Sampling(extensions=extensions))


async def test_a_choice_without_choices_fails_before_any_request() -> None:
    server = FakeServer(ok())
    with pytest.raises(ConfigError, match="choices"):
        await model_for(server).complete(HELLO, Sampling(response_format={"type": "choice"}))
    assert server.requests == []


async def test_api_key_comes_from_the_argument_then_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PERSONAE_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    server = FakeServer(ok())

    await model_for(server).complete(HELLO)
    monkeypatch.setenv("OPENAI_API_KEY", "from-openai-env")
    await model_for(server).complete(HELLO)
    monkeypatch.setenv("PERSONAE_API_KEY", "from-personae-env")
    await model_for(server).complete(HELLO)
    await model_for(server, api_key="explicit").complete(HELLO)

    assert [r.headers["authorization"] for r in server.requests] == [
        "Bearer EMPTY",
        "Bearer from-openai-env",
        "Bearer from-personae-env",
        "Bearer explicit",
    ]


async def test_aclose_leaves_a_caller_owned_client_open_and_refuses_further_calls() -> None:
    client = httpx.AsyncClient(transport=httpx.MockTransport(FakeServer(ok())))
    model = OpenAIChatModel(BASE_URL, "tiny", http_client=client)

    await model.aclose()

    assert not client.is_closed
    with pytest.raises(ModelError, match="closed"):
        await model.complete(HELLO)
    await client.aclose()


async def test_an_owned_client_allows_hundreds_of_connections() -> None:
    model = OpenAIChatModel(BASE_URL, "tiny", max_connections=300)
    assert model.max_connections == 300
    await model.aclose()
    with pytest.raises(ConfigError, match="max_connections"):
        OpenAIChatModel(BASE_URL, "tiny", max_connections=0)


# --- list_models / check_reachable -----------------------------------------------


def models_server(request: httpx.Request) -> httpx.Response:
    assert request.url.path == "/v1/models"
    return httpx.Response(200, json={"object": "list", "data": [{"id": "tiny"}, {"id": "big"}]})


async def test_list_models_and_check_reachable() -> None:
    client = httpx.AsyncClient(transport=httpx.MockTransport(models_server))

    assert await list_models(BASE_URL, http_client=client) == ["tiny", "big"]
    assert await check_reachable(BASE_URL, "big", http_client=client) == ["tiny", "big"]
    with pytest.raises(ModelError, match=r"does not serve model 'huge'; it serves: tiny, big"):
        await check_reachable(BASE_URL, "huge", http_client=client)


async def test_check_reachable_has_one_clear_message_when_nothing_answers() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("All connection attempts failed")

    client = httpx.AsyncClient(transport=httpx.MockTransport(refuse))

    with pytest.raises(ModelUnreachable) as caught:
        await check_reachable(BASE_URL + "/", http_client=client)

    assert str(caught.value) == (
        f"could not reach an OpenAI-compatible server at {BASE_URL}: All connection attempts failed"
    )
