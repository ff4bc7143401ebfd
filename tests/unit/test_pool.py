"""The replica pool against loopback fault servers: placement, stickiness, failover, re-admission.

Each replica is a :class:`~tests.support.fault_server.FaultServer` in this
process serving the same model name; ``kill()`` closes its sockets at once
(requests in flight are cut), ``restart()`` listens on the same port again.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable, Iterator

import pytest

from personae.errors import ConfigError, ModelError, ModelUnreachable
from personae.llm.base import Completion, Message, Sampling
from personae.llm.fake import FunctionModel, RecordedCall
from personae.llm.pool import PoolSession, ReplicaPool, build_pool, is_connection_failure
from tests.support.fault_server import Fault, FaultServer

MODEL = "pool-model"
SAMPLING = Sampling(max_tokens=8, seed=1)


def ask(text: str) -> list[Message]:
    return [{"role": "user", "content": text}]


@pytest.fixture
def servers() -> Iterator[list[FaultServer]]:
    running = [FaultServer(model=MODEL).start() for _ in range(3)]
    yield running
    for server in running:
        server.kill()


def pool_over(
    servers: list[FaultServer], *, server_wait: float = 5.0, check_interval: float = 0.05
) -> ReplicaPool:
    return build_pool(
        [s.base_url for s in servers],
        MODEL,
        retries=0,
        timeout=10.0,
        server_wait=server_wait,
        check_interval=check_interval,
    )


async def converse(session: PoolSession, turns: int, tag: str) -> list[Completion]:
    """One episode: ``turns`` requests one after the other, through ``session``."""
    return [await session.complete(ask(f"{tag} turn {t}"), SAMPLING) for t in range(turns)]


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


# --------------------------------------------------------------------------- placement


async def test_a_session_stays_on_one_replica_and_records_it(
    servers: list[FaultServer],
) -> None:
    pool = pool_over(servers[:2])
    try:
        with pool.session("episode-1") as session:
            replies = await converse(session, 5, "a")
    finally:
        await pool.aclose()

    assert {reply.extensions["replica"] for reply in replies} == {servers[0].base_url}
    assert (servers[0].count, servers[1].count) == (5, 0)
    first, second = pool.stats()
    assert (first.requests, first.sessions, first.open_sessions) == (5, 1, 0)
    assert (second.requests, second.sessions) == (0, 0)
    assert first.up and second.up


async def test_new_sessions_go_to_the_replica_with_fewest_open_sessions(
    servers: list[FaultServer],
) -> None:
    pool = pool_over(servers)
    try:
        a, b, c, d = (pool.session(f"s{i}") for i in range(4))
        assert [s.url for s in (a, b, c, d)] == [
            servers[0].base_url,
            servers[1].base_url,
            servers[2].base_url,
            servers[0].base_url,
        ]
        b.close()
        e = pool.session("s4")  # replica 1 has no open session now
        assert e.url == servers[1].base_url
        assert [s.open_sessions for s in pool.stats()] == [2, 1, 1]
        for session in (a, c, d, e):
            session.close()
        a.close()  # twice is harmless
        assert [s.open_sessions for s in pool.stats()] == [0, 0, 0]
    finally:
        await pool.aclose()


async def test_plain_requests_go_to_the_replica_with_fewest_in_flight(
    servers: list[FaultServer],
) -> None:
    for server in servers:
        server.configure(delay_s=0.2)
    pool = pool_over(servers)
    try:
        replies = await asyncio.gather(*(pool.complete(ask(f"q{i}"), SAMPLING) for i in range(9)))
    finally:
        await pool.aclose()

    per_replica = collections.Counter(reply.extensions["replica"] for reply in replies)
    assert per_replica == {server.base_url: 3 for server in servers}
    assert [server.count for server in servers] == [3, 3, 3]


async def test_the_replica_recorded_has_no_credentials(servers: list[FaultServer]) -> None:
    url = servers[0].base_url.replace("http://", "http://user:secret@")
    pool = build_pool([url], MODEL, retries=0)
    try:
        reply = await pool.complete(ask("hi"), SAMPLING)
    finally:
        await pool.aclose()

    assert reply.extensions["replica"] == servers[0].base_url
    assert pool.urls == (servers[0].base_url,)
    assert "secret" not in repr(pool.stats())


# --------------------------------------------------------------------------- failover


async def test_killing_a_replica_mid_load_moves_its_sessions_and_every_request_completes(
    servers: list[FaultServer],
) -> None:
    for server in servers:
        server.configure(delay_s=0.05)
    pool = pool_over(servers)
    sessions = [pool.session(f"episode-{i}") for i in range(12)]
    placed = [session.url for session in sessions]
    try:
        episodes = asyncio.gather(*(converse(s, 6, f"e{i}") for i, s in enumerate(sessions)))
        await wait_until(lambda: servers[0].replies >= 8)
        await asyncio.to_thread(servers[0].kill)
        transcripts = await episodes
    finally:
        for session in sessions:
            session.close()
        await pool.aclose()

    dead = servers[0].base_url
    assert all(len(replies) == 6 for replies in transcripts)
    for before, session, replies in zip(placed, sessions, transcripts, strict=True):
        replicas = [reply.extensions["replica"] for reply in replies]
        if before == dead:
            # Moved once: first on the dead replica, then on one other for the rest.
            moved_to = replicas[-1]
            assert moved_to != dead and session.url == moved_to
            assert set(replicas) <= {dead, moved_to}
            assert replicas == sorted(replicas, key=lambda url: url != dead)
        else:
            assert set(replicas) == {before}, "sessions on live replicas do not move"
    stats = pool.stats()
    assert not stats[0].up and stats[0].taken_out == 1 and stats[0].failures >= 1
    assert stats[1].up and stats[2].up
    assert sum(s.requests for s in stats) == 72


async def test_a_replica_that_answers_again_is_taken_back(servers: list[FaultServer]) -> None:
    pool = pool_over(servers[:2])
    try:
        servers[0].kill()
        reply = await pool.complete(ask("while down"), SAMPLING)
        assert reply.extensions["replica"] == servers[1].base_url
        assert reply.attempts == 2  # one refused, one answered
        assert not pool.stats()[0].up

        servers[0].restart()
        await wait_until(lambda: pool.stats()[0].up)
        with pool.session("a") as a, pool.session("b") as b:
            first_reply = await a.complete(ask("after restart"), SAMPLING)
            second_reply = await b.complete(ask("after restart"), SAMPLING)
    finally:
        await pool.aclose()

    # Fewest open sessions, then order: the restarted replica takes the first session again.
    assert first_reply.extensions["replica"] == servers[0].base_url
    assert second_reply.extensions["replica"] == servers[1].base_url
    first = pool.stats()[0]
    assert (first.taken_out, first.taken_in, first.up) == (1, 1, True)
    assert first.last_error and "could not reach" in first.last_error


async def test_a_restarted_replica_takes_a_burst_at_once(servers: list[FaultServer]) -> None:
    pool = pool_over(servers[:1], server_wait=5.0)
    try:
        servers[0].kill()
        waiting = asyncio.gather(*(pool.complete(ask(f"b{i}"), SAMPLING) for i in range(10)))
        await wait_until(lambda: pool.outage.down)
        servers[0].restart()
        replies = await waiting
    finally:
        await pool.aclose()

    assert len(replies) == 10
    assert pool.outage.outages == 1 and not pool.outage.down
    assert pool.stats()[0].taken_out == 1  # the burst after the restart did not take it out again


async def test_when_every_replica_is_out_requests_wait_then_fail_clearly(
    servers: list[FaultServer],
) -> None:
    pool = pool_over(servers[:2], server_wait=0.6)
    for server in servers[:2]:
        server.kill()
    started = time.monotonic()
    try:
        request = asyncio.ensure_future(pool.complete(ask("nobody home"), SAMPLING))
        await wait_until(lambda: pool.outage.down)
        assert "waiting for the server" in pool.outage.describe()
        with pytest.raises(ModelUnreachable) as caught:
            await request
    finally:
        await pool.aclose()

    assert time.monotonic() - started >= 0.6
    message = str(caught.value)
    assert "no replica of model 'pool-model' could be reached for 0.6 s" in message
    assert servers[0].base_url in message and servers[1].base_url in message
    assert caught.value.retryable is False


async def test_a_replica_back_within_the_wait_serves_the_waiting_requests(
    servers: list[FaultServer],
) -> None:
    pool = pool_over(servers[:2], server_wait=10.0)
    for server in servers[:2]:
        server.kill()
    try:
        session = pool.session("patient")
        request = asyncio.ensure_future(session.complete(ask("hello?"), SAMPLING))
        await wait_until(lambda: pool.outage.down)
        servers[1].restart()
        reply = await request
        later = await session.complete(ask("still there?"), SAMPLING)
    finally:
        await pool.aclose()

    assert reply.extensions["replica"] == later.extensions["replica"] == servers[1].base_url
    assert pool.outage.outages == 1 and pool.outage.waited_s > 0
    assert not pool.outage.down


async def test_errors_of_the_request_itself_are_not_failed_over(
    servers: list[FaultServer],
) -> None:
    servers[0].configure(faults=[Fault("status", status=400, count=1)])
    pool = pool_over(servers[:2])
    try:
        with pytest.raises(ModelError) as caught:
            await pool.complete(ask("bad request"), SAMPLING)
        assert caught.value.status == 400
        assert not is_connection_failure(caught.value)
        assert servers[1].count == 0, "a 400 is the request's fault: not resent elsewhere"
        reply = await pool.complete(ask("fine"), SAMPLING)
    finally:
        await pool.aclose()

    assert reply.extensions["replica"] == servers[0].base_url
    assert [(s.up, s.failures, s.taken_out) for s in pool.stats()] == [(True, 0, 0)] * 2


async def test_many_sessions_in_parallel_stay_put_and_spread_evenly(
    servers: list[FaultServer],
) -> None:
    for server in servers:
        server.configure(delay_s=0.01)
    pool = pool_over(servers)

    async def episode(i: int) -> set[str]:
        with pool.session(f"episode-{i}") as session:
            replies = await converse(session, 4, f"p{i}")
        return {reply.extensions["replica"] for reply in replies}

    try:
        used = await asyncio.gather(*(episode(i) for i in range(48)))
    finally:
        await pool.aclose()

    assert all(len(replicas) == 1 for replicas in used)
    stats = pool.stats()
    assert [s.sessions for s in stats] == [16, 16, 16]
    assert [s.requests for s in stats] == [64, 64, 64]
    assert [s.open_sessions for s in stats] == [0, 0, 0]
    assert [s.in_flight for s in stats] == [0, 0, 0]


# --------------------------------------------------------------------------- construction


def test_a_pool_needs_distinct_urls() -> None:
    with pytest.raises(ConfigError, match="at least one"):
        build_pool([], MODEL)
    with pytest.raises(ConfigError, match="listed twice"):
        build_pool(["http://a:8000/v1", "http://a:8000/v1/"], MODEL)


async def test_a_closed_pool_opens_no_sessions(servers: list[FaultServer]) -> None:
    pool = pool_over(servers[:1])
    await pool.aclose()
    with pytest.raises(ConfigError, match="closed"):
        pool.session("late")


async def test_the_health_check_outlives_a_probe_that_raises() -> None:
    failures = [ModelUnreachable("could not reach http://a/v1: connection refused")]

    def flaky(messages: list[Message], call: RecordedCall) -> str:
        if failures:
            raise failures.pop()
        return "from a"

    probes: list[str] = []

    async def probe(url: str) -> bool:
        probes.append(url)
        if len(probes) == 1:
            raise RuntimeError("the probe itself broke")
        return True

    pool = ReplicaPool(
        [("http://a/v1", FunctionModel(flaky)), ("http://b/v1", FunctionModel.echo())],
        check_interval=0.01,
        probe=probe,
    )
    try:
        moved = await pool.complete(ask("hi"), SAMPLING)
        await wait_until(lambda: pool.stats()[0].up)
        back = await pool.complete(ask("hi"), SAMPLING)
    finally:
        await pool.aclose()

    assert moved.extensions["replica"] == "http://b/v1"
    assert back.extensions["replica"] == "http://a/v1" and back.text == "from a"
    assert probes == ["http://a/v1", "http://a/v1"]
