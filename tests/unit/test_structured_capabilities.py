"""Structured outputs against servers that are not vLLM: detection, step-down, declared modes.

The server side is the loopback fault server (``strict=True`` refuses
vLLM-only fields with HTTP 400, as OpenAI does; ``vllm=False`` takes away the
``/version`` route personae detects vLLM by) or, for the shapes it cannot take
(a server refusing ``response_format``, ``/models`` owned by vLLM), a small
``httpx.MockTransport`` handler at the HTTP seam.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from personae import Experiment, Judge, Persona, Probe, Questionnaire, Scenario
from personae.errors import ConfigError, ModelError
from personae.llm.base import Choice, JsonSchema, Message, Regex, Sampling
from personae.llm.openai import OpenAIChatModel
from personae.llm.wrappers import build_client, find_layer
from personae.measures.stance import Stance
from tests.support.fault_server import DEFAULT_MODEL, FaultServer

HELLO: list[Message] = [{"role": "user", "content": "Pick one."}]
CHOICE = Choice(["yes", "no"])
SCHEMA = JsonSchema({"type": "object", "properties": {"n": {"type": "integer"}}}, name="n")
CONSTRAINT_FIELDS = {"structured_outputs", "response_format"}


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    with FaultServer() as running:
        yield running


@pytest.fixture
def fresh(server: FaultServer) -> FaultServer:
    server.configure(faults=[], delay_s=0.0, die_after=None, strict=False, vllm=True, reset=True)
    return server


@pytest_asyncio.fixture(loop_scope="function")
async def opened(fresh: FaultServer) -> AsyncIterator[Callable[..., OpenAIChatModel]]:
    clients: list[OpenAIChatModel] = []

    def open_client(**kwargs: Any) -> OpenAIChatModel:
        clients.append(OpenAIChatModel(fresh.base_url, DEFAULT_MODEL, timeout=5.0, **kwargs))
        return clients[-1]

    yield open_client
    for client in clients:
        await client.aclose()


def sent_constraints(server: FaultServer) -> list[set[str]]:
    """The constraint fields of each chat request the server received, oldest first."""
    return [CONSTRAINT_FIELDS & set(body) for body in server.requests]


# -- detection -------------------------------------------------------------------------------


async def test_auto_detects_vllm_and_sends_its_field(fresh: FaultServer, opened: Any) -> None:
    model = opened()

    reply = await model.complete(HELLO, Sampling(seed=1, response_format=CHOICE))

    assert await model.structured_mode() == "vllm"
    assert reply.text in {"yes", "no"}  # the fault server honours a choice, as vLLM does
    assert reply.extensions["structured"] == "structured_outputs"
    assert reply.params["structured_outputs"] == {"choice": ["yes", "no"]}
    assert sent_constraints(fresh) == [{"structured_outputs"}]


async def test_auto_detects_a_server_that_is_not_vllm(fresh: FaultServer, opened: Any) -> None:
    fresh.configure(strict=True, vllm=False)
    model = opened()

    choice = await model.complete(HELLO, Sampling(seed=1, response_format=CHOICE))
    schema = await model.complete(HELLO, Sampling(seed=1, response_format=SCHEMA))
    regex = await model.complete(HELLO, Sampling(seed=1, response_format=Regex("[1-5]")))

    assert await model.structured_mode() == "openai"
    assert [r.extensions["structured"] for r in (choice, schema, regex)] == [
        "none",
        "response_format",
        "none",
    ]
    assert choice.text.startswith("Reply ")  # free text: nothing constrained it
    # Detected before the first request: none was refused and sent again.
    assert sent_constraints(fresh) == [set(), {"response_format"}, set()]
    assert fresh.replies == fresh.count == 3


class Routes:
    """A MockTransport handler: ``/version`` and ``/models`` as given, chat answers, a log."""

    def __init__(
        self,
        *,
        version: str | None = None,
        owned_by: str = "system",
        refuse: str | None = None,
    ) -> None:
        self.version = version
        self.owned_by = owned_by
        self.refuse = refuse  # a field whose presence is answered with HTTP 400
        self.gets: list[str] = []
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            self.gets.append(request.url.path)
            if request.url.path == "/version" and self.version is not None:
                return httpx.Response(200, json={"version": self.version})
            if request.url.path == "/v1/models":
                data = [{"id": "m", "object": "model", "owned_by": self.owned_by}]
                return httpx.Response(200, json={"object": "list", "data": data})
            return httpx.Response(404, json={"error": {"message": "Invalid URL"}})
        body = json.loads(request.content)
        self.bodies.append(body)
        if self.refuse is not None and self.refuse in body:
            error = f"Invalid parameter: '{self.refuse}' is not supported with this model."
            return httpx.Response(400, json={"error": {"message": error, "code": 400}})
        reply = {"role": "assistant", "content": '{"n": 1}'}
        answer = {"model": "m", "choices": [{"message": reply, "finish_reason": "stop"}]}
        return httpx.Response(200, json=answer)


def mock_model(routes: Routes, **kwargs: Any) -> OpenAIChatModel:
    http = httpx.AsyncClient(transport=httpx.MockTransport(routes))
    return OpenAIChatModel("http://mock.test/v1", "m", http_client=http, **kwargs)


async def test_models_owned_by_vllm_is_detected_without_a_version_route() -> None:
    routes = Routes(owned_by="vllm")
    model = mock_model(routes)
    assert await model.structured_mode() == "vllm"
    assert routes.gets == ["/version", "/v1/models"]


async def test_detection_waits_for_a_constraint_and_runs_once() -> None:
    routes = Routes()
    model = mock_model(routes)

    await model.complete(HELLO, Sampling(seed=1))
    assert "/v1/models" not in routes.gets  # no constraint asked for yet: nothing to detect
    replies = await asyncio.gather(
        *(model.complete(HELLO, Sampling(seed=i, response_format=CHOICE)) for i in range(8))
    )

    assert routes.gets.count("/v1/models") == 1
    assert routes.gets.count("/version") == 1  # shared with the server's identity
    assert {r.extensions["structured"] for r in replies} == {"none"}


# -- stepping down on a refusal --------------------------------------------------------------


async def test_a_refused_vllm_field_steps_down_once_and_sticks(
    fresh: FaultServer, opened: Any
) -> None:
    fresh.configure(strict=True)  # answers /version like vLLM, refuses structured_outputs
    model = opened()

    first = await asyncio.gather(
        *(model.complete(HELLO, Sampling(seed=i, response_format=CHOICE)) for i in range(4))
    )
    refused = fresh.count - 4
    later = await model.complete(HELLO, Sampling(seed=9, response_format=CHOICE))
    schema = await model.complete(HELLO, Sampling(seed=9, response_format=SCHEMA))

    assert await model.structured_mode() == "openai"
    assert 1 <= refused <= 4  # each request that went out before the first refusal came back
    assert all(r.extensions["structured"] == "none" for r in [*first, later])
    assert all("structured_outputs" not in r.params for r in [*first, later])
    assert schema.extensions["structured"] == "response_format"
    assert sent_constraints(fresh)[-2:] == [set(), {"response_format"}]  # no more refusals
    assert fresh.replies == 6


async def test_a_refused_response_format_steps_down_to_none() -> None:
    routes = Routes(refuse="response_format")
    model = mock_model(routes)

    reply = await model.complete(HELLO, Sampling(seed=1, response_format=SCHEMA))
    again = await model.complete(HELLO, Sampling(seed=2, response_format=SCHEMA))

    assert await model.structured_mode() == "none"
    assert reply.extensions["structured"] == again.extensions["structured"] == "none"
    assert [CONSTRAINT_FIELDS & set(b) for b in routes.bodies] == [
        {"response_format"},
        set(),
        set(),
    ]


async def test_a_refusal_that_names_no_constraint_field_is_not_resent() -> None:
    routes = Routes(version="0.12.0", refuse="seed")
    model = mock_model(routes)

    with pytest.raises(ModelError, match=r"HTTP 400.*seed") as caught:
        await model.complete(HELLO, Sampling(seed=1, response_format=CHOICE))

    assert not caught.value.retryable
    assert len(routes.bodies) == 1
    assert await model.structured_mode() == "vllm"


# -- declared modes --------------------------------------------------------------------------


async def test_a_declared_vllm_mode_is_kept_even_when_refused(
    fresh: FaultServer, opened: Any
) -> None:
    fresh.configure(strict=True, vllm=False)
    model = opened(structured="vllm")

    for _ in range(2):
        with pytest.raises(ModelError, match=r"HTTP 400.*structured_outputs"):
            await model.complete(HELLO, Sampling(seed=1, response_format=CHOICE))

    assert await model.structured_mode() == "vllm"
    assert sent_constraints(fresh) == [{"structured_outputs"}] * 2


@pytest.mark.parametrize(
    ("declared", "choice_field", "schema_field"),
    [("openai", "none", "response_format"), ("none", "none", "none")],
)
async def test_declared_modes_send_what_they_say_on_a_vllm_server(
    fresh: FaultServer, opened: Any, declared: str, choice_field: str, schema_field: str
) -> None:
    model = opened(structured=declared)

    choice = await model.complete(HELLO, Sampling(seed=1, response_format=CHOICE))
    schema = await model.complete(HELLO, Sampling(seed=1, response_format=SCHEMA))

    assert await model.structured_mode() == declared
    assert (choice.extensions["structured"], schema.extensions["structured"]) == (
        choice_field,
        schema_field,
    )
    expected = [{f} - {"none"} for f in (choice_field, schema_field)]
    assert sent_constraints(fresh) == expected


async def test_a_request_without_a_constraint_records_no_mechanism(opened: Any) -> None:
    reply = await opened(structured="none").complete(HELLO, Sampling(seed=1))
    assert "structured" not in reply.extensions


def test_an_unknown_mode_is_refused_with_the_modes_listed() -> None:
    with pytest.raises(ConfigError, match="auto, vllm, openai, none"):
        OpenAIChatModel("http://127.0.0.1:9/v1", "m", structured="xgrammar")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="structured must be one of"):
        build_client("http://127.0.0.1:9/v1", "m", structured="guided")  # type: ignore[arg-type]


async def test_build_client_passes_the_mode_to_its_client() -> None:
    stack = build_client("http://127.0.0.1:9/v1", "m", structured="openai")
    client = find_layer(stack, OpenAIChatModel)
    assert client is not None
    assert client.structured == "openai"
    await stack.aclose()


# -- a whole experiment against a strict server ----------------------------------------------


def questionnaire_scenario() -> Scenario:
    """Two agents, four turns, then every caller of constraints once: items, a batch, judge, stance."""
    return Scenario(
        name="strict-server",
        agents=(
            Persona(name="Lee", role="counselor", big_five={"A": 4.5}),
            Persona(name="Sam", role="client", big_five={"N": 4.2}),
        ),
        max_turns=4,
        probes=(
            Probe(Questionnaire(instrument="gad-7", who=("client",)), at="end"),
            Probe(Questionnaire(instrument="phq-9", who=("client",), batch_size=9), at="end"),
            Probe(Judge(who=("client",)), at="end"),
            Probe(Stance("Talking helps.", who=("client",)), at="end"),
        ),
    )


def query(db: Path, sql: str) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(db)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.mark.parametrize(
    ("vllm", "structured", "schemas_in"),
    [
        (False, "auto", "response_format"),
        (True, "auto", "response_format"),
        (False, "none", "none"),
    ],
    ids=["openai-like", "vllm-like", "declared-none"],
)
def test_a_questionnaire_experiment_completes_against_a_strict_server(
    tmp_path: Path, vllm: bool, structured: Any, schemas_in: str
) -> None:
    db = tmp_path / "strict.db"
    exp = Experiment(scenario=questionnaire_scenario(), replicates=2, seed=4)

    with FaultServer(strict=True, vllm=vllm) as strict:

        async def main() -> Any:
            model = build_client(
                strict.base_url, DEFAULT_MODEL, retries=0, timeout=10.0, structured=structured
            )
            try:
                return await exp.arun(db, model)
            finally:
                await model.aclose()

        summary = asyncio.run(main())
        refused = strict.count - strict.replies

    assert (summary.completed, summary.failed) == (2, 0)
    # Taken for vLLM, the client learns from the first refusal(s); otherwise none is refused.
    assert (refused > 0) is (vllm and structured == "auto")
    assert query(db, "SELECT DISTINCT status FROM episodes") == [("complete",)]
    per_instrument = dict(
        query(db, "SELECT instrument, COUNT(*) FROM measurements GROUP BY instrument")
    )
    assert per_instrument == {"gad-7": 2 * 7, "phq-9": 2 * 9, "judge-big5": 2 * 5}
    # Every answer row is kept, read or not; an unread one keeps its raw text and a reason.
    unread = query(db, "SELECT raw, reason FROM measurements WHERE valid = 0")
    assert unread and all(raw and reason for raw, reason in unread)
    assert len(query(db, "SELECT * FROM states WHERE variable = 'agreement'")) == 2
    used = dict(
        query(
            db,
            "SELECT purpose, GROUP_CONCAT(DISTINCT structured) FROM llm_calls "
            "WHERE structured IS NOT NULL GROUP BY purpose",
        )
    )
    # Choices are not sent to a server that refuses them; JSON schemas go in response_format.
    assert used == {
        "measure:gad-7": "none",
        "measure:phq-9": schemas_in,
        "judge": schemas_in,
        "stance:agreement": "none",
    }
    free = query(db, "SELECT DISTINCT purpose FROM llm_calls WHERE structured IS NULL")
    assert free and not {purpose for (purpose,) in free} & set(used)  # turns asked no constraint
