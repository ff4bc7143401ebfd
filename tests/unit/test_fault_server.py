"""The fault-injection infrastructure of tests/support: the fault server and the lock holder.

The server must speak the OpenAI protocol well enough for ``openai.AsyncOpenAI``
and personae's own client, and each fault must do what it says; the lock holder
must really keep other writers out for the time it is given.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import openai
import pytest
import pytest_asyncio

from personae.errors import ModelError, ModelUnreachable
from personae.llm.base import Message, Sampling
from personae.llm.openai import OpenAIChatModel, check_reachable
from personae.llm.structured import Choice
from tests.support.fault_process import start_process
from tests.support.fault_server import (
    DEFAULT_MODEL,
    DIE_EXIT_CODE,
    Fault,
    FaultServer,
    reply_text,
)
from tests.support.lock_holder import hold_lock

HELLO: list[Message] = [
    {"role": "system", "content": "You are Sam."},
    {"role": "user", "content": "How are you?"},
]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    with FaultServer() as running:
        yield running


@pytest.fixture
def fresh(server: FaultServer) -> FaultServer:
    """The shared server, running, with no faults and zeroed statistics."""
    server.start()
    server.configure(faults=[], delay_s=0.0, die_after=None, strict=False, reset=True)
    return server


@pytest_asyncio.fixture(loop_scope="function")  # the loop the tests run in
async def model(fresh: FaultServer) -> AsyncIterator[OpenAIChatModel]:
    client = OpenAIChatModel(fresh.base_url, DEFAULT_MODEL, timeout=5.0)
    yield client
    await client.aclose()


# -- the protocol ---------------------------------------------------------------------------


async def test_the_openai_sdk_reads_models_and_completions(fresh: FaultServer) -> None:
    async with openai.AsyncOpenAI(base_url=fresh.base_url, api_key="x", max_retries=0) as sdk:
        models = await sdk.models.list()
        reply = await sdk.chat.completions.create(
            model=DEFAULT_MODEL, messages=HELLO, seed=3, max_tokens=32
        )
    assert [m.id for m in models.data] == [DEFAULT_MODEL]
    assert reply.object == "chat.completion"
    assert reply.model == DEFAULT_MODEL
    assert reply.choices[0].message.content == reply_text(HELLO, 3)
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None and reply.usage.completion_tokens > 0
    async with httpx.AsyncClient() as http:
        version = (await http.get(f"{fresh.root_url}/version")).json()
    assert version == {"version": "fault-0"}


async def test_personae_client_gets_deterministic_replies(
    fresh: FaultServer, model: OpenAIChatModel
) -> None:
    assert await check_reachable(fresh.base_url, DEFAULT_MODEL) == [DEFAULT_MODEL]
    first = await model.complete(HELLO, Sampling(seed=7))
    again = await model.complete(HELLO, Sampling(seed=7))
    other = await model.complete(HELLO, Sampling(seed=8))
    assert first.text == again.text == reply_text(HELLO, 7)
    assert other.text != first.text
    assert first.server == "vllm fault-0"
    assert first.prompt_tokens > 0 and first.completion_tokens == len(first.text.split())
    assert fresh.count == 3 and fresh.replies == 3
    assert fresh.requests[-1]["seed"] == 8 and fresh.requests[-1]["messages"] == HELLO


async def test_choice_constraints_are_answered_from_the_choices(model: OpenAIChatModel) -> None:
    reply = await model.complete(HELLO, Sampling(seed=1, response_format=Choice(["yes", "no"])))
    assert reply.text in {"yes", "no"}


# -- faults ----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_status_faults_fail_the_next_k_requests(
    fresh: FaultServer, model: OpenAIChatModel, status: int
) -> None:
    fresh.configure(faults=[Fault("status", status=status, count=2)])
    for _ in range(2):
        with pytest.raises(ModelError, match=f"HTTP {status}") as caught:
            await model.complete(HELLO)
        assert caught.value.retryable
    assert (await model.complete(HELLO)).text
    assert fresh.snapshot()["applied"] == {"status": 2}


async def test_a_rate_fails_a_seeded_fraction_and_a_retry_can_succeed(
    fresh: FaultServer, model: OpenAIChatModel
) -> None:
    fresh.configure(faults=[Fault("status", status=503, rate=0.3)], seed=5)

    async def outcomes() -> list[bool]:
        results = []
        for i in range(60):
            try:
                await model.complete([{"role": "user", "content": f"q{i}"}])
                results.append(True)
            except ModelError:
                results.append(False)
        return results

    first = await outcomes()
    assert 8 <= first.count(False) <= 30
    fresh.configure(reset=True)  # the same requests, seen afresh: the same decisions
    assert await outcomes() == first
    # Without a reset each request is a retry, decided anew: most failures now succeed.
    retried = await outcomes()
    assert sum(not a and b for a, b in zip(first, retried, strict=True)) >= first.count(False) // 2


async def test_malformed_bodies_are_retryable_errors(
    fresh: FaultServer, model: OpenAIChatModel
) -> None:
    fresh.configure(faults=[Fault("malformed", count=1)])
    with pytest.raises(ModelError, match="not JSON") as caught:
        await model.complete(HELLO)
    assert caught.value.retryable


@pytest.mark.parametrize(
    ("fault", "check"),
    [
        (Fault("empty"), lambda c: c.text == ""),
        (Fault("speaker"), lambda c: c.text.startswith("Bob: Reply ")),
        (Fault("speaker", text="Ann"), lambda c: c.text.startswith("Ann: ")),
        (Fault("stage"), lambda c: c.text == "(smiles)"),
        (Fault("stage", text="[sighs]"), lambda c: c.text == "[sighs]"),
        (Fault("surrogate"), lambda c: "\ud800" in c.text),
        (
            Fault("truncated"),
            lambda c: c.finish_reason == "length" and c.completion_tokens == 12,
        ),
    ],
    ids=["empty", "speaker", "speaker-named", "stage", "stage-text", "surrogate", "truncated"],
)
async def test_content_faults_shape_the_reply(
    fresh: FaultServer, model: OpenAIChatModel, fault: Fault, check
) -> None:
    fresh.configure(faults=[fault])
    reply = await model.complete(HELLO, Sampling(max_tokens=12))
    assert check(reply), reply


def test_a_surrogate_is_valid_json_but_not_storable(fresh: FaultServer) -> None:
    fresh.configure(faults=[Fault("surrogate")])
    body = json.dumps({"model": DEFAULT_MODEL, "messages": HELLO}).encode()
    request = urllib.request.Request(f"{fresh.base_url}/chat/completions", data=body)
    with urllib.request.urlopen(request, timeout=5) as response:
        raw = response.read()
    assert b"\\ud800" in raw
    raw.decode("ascii")  # the body itself is plain ASCII
    text = json.loads(raw)["choices"][0]["message"]["content"]
    with pytest.raises(UnicodeEncodeError):
        text.encode("utf-8")
    with sqlite3.connect(":memory:") as con, pytest.raises(UnicodeEncodeError):
        con.execute("SELECT ?", (text,))


async def test_match_limits_a_fault_to_some_requests(
    fresh: FaultServer, model: OpenAIChatModel
) -> None:
    fresh.configure(faults=[Fault("stage", match="[desk 7]")])
    plain = await model.complete([{"role": "user", "content": "At [desk 17] now."}])
    hit = await model.complete([{"role": "system", "content": "You sit at [desk 7]."}, *HELLO[1:]])
    assert plain.text.startswith("Reply ") and hit.text == "(smiles)"


async def test_a_hang_outlasts_the_client_timeout(fresh: FaultServer) -> None:
    fresh.configure(faults=[Fault("hang", count=1)])
    client = OpenAIChatModel(fresh.base_url, DEFAULT_MODEL, timeout=0.5)
    try:
        with pytest.raises(ModelError, match="did not answer") as caught:
            await client.complete(HELLO)
        assert caught.value.retryable
        assert (await client.complete(HELLO)).text  # count=1: the next one is answered
    finally:
        await client.aclose()


async def test_a_timed_hang_answers_late(fresh: FaultServer, model: OpenAIChatModel) -> None:
    fresh.configure(faults=[Fault("hang", seconds=0.4)])
    started = time.monotonic()
    reply = await model.complete(HELLO, Sampling(seed=2))
    assert time.monotonic() - started >= 0.4
    assert reply.text == reply_text(HELLO, 2)


async def test_the_strict_mode_refuses_vllm_parameters(
    fresh: FaultServer, model: OpenAIChatModel
) -> None:
    fresh.configure(strict=True)
    assert (await model.complete(HELLO, Sampling(seed=1))).text
    # Declared "vllm": a client left on "auto" would step down and send the request again.
    vllm = OpenAIChatModel(fresh.base_url, DEFAULT_MODEL, timeout=5.0, structured="vllm")
    with pytest.raises(ModelError, match=r"HTTP 400.*structured_outputs") as caught:
        await vllm.complete(HELLO, response_format={"type": "choice", "choices": ["a", "b"]})
    await vllm.aclose()
    assert not caught.value.retryable


async def test_control_endpoint_changes_faults_at_run_time(
    fresh: FaultServer, model: OpenAIChatModel
) -> None:
    async with httpx.AsyncClient() as http:
        changed = await http.post(
            f"{fresh.root_url}/_control", json={"faults": [{"kind": "empty", "count": 1}]}
        )
        refused = await http.post(f"{fresh.root_url}/_control", json={"faults": [{"kind": "x"}]})
        unknown = await http.post(f"{fresh.root_url}/_control", json={"speed": 2})
        assert changed.status_code == 200
        assert changed.json()["faults"] == [{"kind": "empty", "count": 1, "remaining": 1}]
        assert (refused.status_code, unknown.status_code) == (400, 400)
        assert (await model.complete(HELLO)).text == ""
        assert (await model.complete(HELLO)).text != ""
        stats = (await http.get(f"{fresh.root_url}/_control")).json()
    assert (stats["requests"], stats["replies"], stats["applied"]) == (2, 2, {"empty": 1})


async def test_die_after_n_replies_then_restart_on_the_same_port(
    fresh: FaultServer, model: OpenAIChatModel
) -> None:
    port = fresh.port
    fresh.configure(die_after=2)
    await model.complete(HELLO)
    await model.complete(HELLO)
    await asyncio.sleep(0.2)
    with pytest.raises(ModelUnreachable):
        await model.complete(HELLO)
    fresh.configure(die_after=None)
    fresh.restart()
    assert fresh.port == port
    assert (await model.complete(HELLO)).text


async def test_kill_cuts_requests_in_flight(fresh: FaultServer, model: OpenAIChatModel) -> None:
    fresh.configure(faults=[Fault("hang")])
    pending = asyncio.create_task(model.complete(HELLO))
    await asyncio.sleep(0.2)
    fresh.kill()
    with pytest.raises(ModelError):
        await pending
    fresh.configure(faults=[])
    fresh.start()
    assert (await model.complete(HELLO)).text


# -- as a separate process -------------------------------------------------------------------


async def test_a_process_can_be_killed_and_restarted_on_its_port() -> None:
    handle = start_process(faults=[Fault("speaker", text="Zed")])
    client = OpenAIChatModel(handle.base_url, DEFAULT_MODEL, timeout=5.0)
    try:
        assert (await client.complete(HELLO)).text.startswith("Zed: ")
        pid, port = handle.pid, handle.port
        handle.kill()
        assert handle.returncode == -9
        with pytest.raises(ModelUnreachable):
            await client.complete(HELLO)
        handle.restart()
        assert (handle.port, handle.alive()) == (port, True) and handle.pid != pid
        assert (await client.complete(HELLO)).text.startswith("Zed: ")  # the faults survive
        handle.configure(faults=[], die_after=1)
        assert (await client.complete(HELLO)).text.startswith("Reply ")
        handle.proc.wait(timeout=5)  # type: ignore[union-attr]
        assert handle.returncode == DIE_EXIT_CODE
    finally:
        await client.aclose()
        handle.stop()


def test_the_command_line_takes_a_mode() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.fault_server", "--mode", "status", "--status", "503"],
        cwd=REPO,
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        port = json.loads(proc.stdout.readline())["port"]
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            data=json.dumps({"model": "m", "messages": HELLO}).encode(),
        )
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=5)
        assert caught.value.code == 503
        caught.value.close()
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


# -- the lock holder ---------------------------------------------------------------------------


def _write(db: Path, timeout: float) -> None:
    with sqlite3.connect(db, timeout=timeout) as con:
        con.execute("INSERT INTO t VALUES (1)")


def test_the_lock_holder_blocks_writers_for_its_time(tmp_path: Path) -> None:
    db = tmp_path / "locked.db"
    with sqlite3.connect(db) as con:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("CREATE TABLE t (x)")
    con.close()
    started = time.monotonic()
    with hold_lock(db, seconds=1.5) as holder:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            _write(db, timeout=0.1)
        with sqlite3.connect(db) as reader:  # WAL readers are not blocked
            assert reader.execute("SELECT count(*) FROM t").fetchone() == (0,)
        reader.close()
        _write(db, timeout=10)  # waits for the release
        assert time.monotonic() - started >= 1.4
        assert time.monotonic() >= holder.released_at - 0.3
    assert holder.proc.returncode == 0


def test_the_lock_holder_command_says_locked_and_released(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.support.lock_holder",
            str(tmp_path / "x.db"),
            "--seconds",
            "0",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert done.stdout.split() == ["locked", "released"]
