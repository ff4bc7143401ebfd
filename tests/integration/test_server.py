"""The embedded vLLM server: real processes, real ports, no mocks.

The chat tests share the session's one server (``vllm_server``). The start-up
failures launch nothing slow: a busy port, a missing model or an unknown hub
model are refused before vLLM is launched; a bogus flag makes vLLM exit after
its import (about 10 s).
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from personae.errors import ServerError
from personae.llm.server import EmbeddedServer, find_vllm, prepare_default_model

MESSAGES = [
    {"role": "system", "content": "You are Ana, a nurse. Answer in one sentence."},
    {"role": "user", "content": "How was your shift today?"},
]


def chat(client: httpx.Client, server: Any, **params: Any) -> dict[str, Any]:
    body = {"model": server.model, "messages": MESSAGES, "max_tokens": 24, **params}
    response = client.post(f"{server.base_url}/chat/completions", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.fixture
def sent_bodies() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def client(sent_bodies: list[dict[str, Any]]) -> Iterator[httpx.Client]:
    def record(request: httpx.Request) -> None:
        sent_bodies.append(json.loads(request.content))

    with httpx.Client(timeout=120.0, event_hooks={"request": [record]}) as client:
        yield client


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


# --------------------------------------------------------------------------- a running server


def test_the_server_answers_a_chat_completion(vllm_server: Any, client: httpx.Client) -> None:
    reply = chat(client, vllm_server, temperature=0.0)

    assert reply["model"] == vllm_server.model
    assert reply["choices"][0]["message"]["content"].strip()
    assert reply["choices"][0]["finish_reason"] in {"stop", "length"}
    assert 0 < reply["usage"]["completion_tokens"] <= 24


def test_the_same_seed_gives_the_same_text(
    vllm_server: Any, client: httpx.Client, sent_bodies: list[dict[str, Any]]
) -> None:
    first, second = (chat(client, vllm_server, temperature=1.0, seed=1234) for _ in range(2))
    others = {
        chat(client, vllm_server, temperature=1.0, seed=seed)["choices"][0]["message"]["content"]
        for seed in (1, 2, 3)
    }

    text = first["choices"][0]["message"]["content"]
    assert text == second["choices"][0]["message"]["content"]
    assert [body["seed"] for body in sent_bodies[:2]] == [1234, 1234]
    assert len(others | {text}) > 1, "different seeds should give different texts"


def test_the_server_lists_its_model_and_reports_its_version(vllm_server: Any) -> None:
    listed = httpx.get(f"{vllm_server.base_url}/models", timeout=10.0).json()["data"]
    assert vllm_server.model in [entry["id"] for entry in listed]
    if not isinstance(vllm_server, EmbeddedServer):
        return  # an external server: nothing embedded to describe
    info = vllm_server.server_info()
    assert info["software"] == "vllm"
    assert info["version"] == find_vllm().version
    assert info["device"] in {"cpu", "cuda"}
    assert info["base_url"] == vllm_server.base_url
    assert vllm_server.log_path.is_file()


def test_preparing_the_default_model_again_reuses_the_cache(vllm_server: Any) -> None:
    started = time.monotonic()
    folder = prepare_default_model()

    assert time.monotonic() - started < 5.0
    assert (folder / "config.json").is_file()
    assert (folder / "chat_template.jinja").is_file() or "chat_template" in (
        folder / "tokenizer_config.json"
    ).read_text()


# --------------------------------------------------------------------------- start-up failures


def test_a_busy_port_is_refused_before_launching(busy_port: int, tmp_path: Path) -> None:
    server = EmbeddedServer(port=busy_port, log_path=tmp_path / "vllm.log")
    started = time.monotonic()

    with pytest.raises(ServerError, match=f"Port {busy_port} on 127.0.0.1 is already in use"):
        server.start()

    assert time.monotonic() - started < 5.0
    assert not server.running
    assert not (tmp_path / "vllm.log").exists(), "vLLM must not have been launched"
    server.stop()  # idempotent, also on a server that never ran
    server.stop()


async def test_a_busy_port_is_refused_by_async_with_and_serve_forever(busy_port: int) -> None:
    with pytest.raises(ServerError, match="already in use"):
        async with EmbeddedServer(port=busy_port):
            pass
    lines: list[str] = []
    with pytest.raises(ServerError, match="already in use"):
        EmbeddedServer(port=busy_port).serve_forever(echo=lines.append)


def test_a_missing_model_folder_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    started = time.monotonic()

    with pytest.raises(ServerError, match=re.escape(f"model folder {missing} does not exist")):
        EmbeddedServer(missing).start()
    with pytest.raises(ServerError, match="nor in the local Hugging Face cache"):
        EmbeddedServer("personae-tests/no-such-model").start()

    assert time.monotonic() - started < 5.0


def test_a_server_dying_during_start_up_names_its_log(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    log = tmp_path / "vllm.log"
    server = EmbeddedServer(model, log_path=log, extra_args=["--no-such-flag"])

    with pytest.raises(ServerError) as raised:
        server.start()

    message = str(raised.value)
    assert "exited with status" in message
    assert "--no-such-flag" in message, "the message should quote the log's last lines"
    assert str(log) in message and raised.value.log_path == str(log)
    assert not server.running
