"""``personae bench``: the Ray case and the replay comparison, on tiny workloads.

The replay comparison runs against the project's loopback OpenAI-compatible
server (:class:`tests.support.fault_server.FaultServer`) with its simulated
prefix cache: as vLLM does with ``--enable-prompt-tokens-details``, each answer
says how many prompt tokens (words there) came from the cache
(``usage.prompt_tokens_details.cached_tokens``: with the cache on, the longest
prefix of an earlier prompt; off, 0), and ``/metrics`` answers vLLM's
``cache_config_info`` line. The embedded server is replaced at its seam (the
``"embedded"`` model backend) by one such server per start, with the cache the
replay mode asked for, so the test sees which prefix cache each mode got. The
expected figures are worked out from the requests each server recorded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import subprocess
import sys
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

import pytest
from rich.console import Console

from personae.bench import BenchConfig, parse_replay, print_report, run_bench
from personae.errors import ConfigError
from personae.llm.backends import BackendOptions, get_backend, register_backend
from tests.support.fault_server import FaultServer

MODEL = "cache-model"


def prompt_words(body: dict[str, Any]) -> list[str]:
    """A chat request's prompt as the server counts it: the words of its messages' contents."""
    return "\n".join(str(m.get("content") or "") for m in body["messages"]).split()


def common_prefix(a: list[str], b: list[str]) -> int:
    """How many leading words ``a`` and ``b`` share."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def prefix_cached(bodies: Iterable[dict[str, Any]]) -> list[int]:
    """What a prefix cache that is on says of each request, in order: the longest
    prefix (in words) that its prompt shares with a prompt sent before."""
    seen: list[list[str]] = []
    cached: list[int] = []
    for body in bodies:
        words = prompt_words(body)
        cached.append(max((common_prefix(s, words) for s in seen), default=0))
        seen.append(words)
    return cached


def first_pass(server: FaultServer, start: int) -> tuple[int, set[int]]:
    """The two requests of a first pass, ``requests[start:start + 2]``: their prompt
    tokens, and what a prefix cache that is on serves of them.

    The two are sent together, so the cache may meet them in the other order than
    ``requests`` lists them: the cached sum is given for both orders (one value
    when, as in this workload, the order makes no difference).
    """
    bodies = server.requests
    before, pair = bodies[:start], bodies[start : start + 2]
    assert len(pair) == 2
    prompt = sum(len(prompt_words(b)) for b in pair)
    cached = {sum(prefix_cached([*before, *order])[start:]) for order in (pair, pair[::-1])}
    return prompt, cached


def tiny(**fields: Any) -> BenchConfig:
    """Two conversations of two utterances (one model call each), two in flight."""
    sizes = dict(concurrency=2, episodes=2, max_turns=2, max_tokens=8)
    return BenchConfig(**(sizes | dict(fake_episodes=2, fake_turns=2) | fields))


@pytest.fixture
def embedded() -> Iterator[list[FaultServer]]:
    """The embedded backend, replaced by a loopback server per start; the servers started."""
    real, openai = get_backend("embedded"), get_backend("openai")
    started: list[FaultServer] = []
    open_now: list[FaultServer] = []

    @contextlib.asynccontextmanager
    async def fake_embedded(options: BackendOptions) -> AsyncIterator[tuple[Any, dict[str, Any]]]:
        assert not open_now, "a second embedded server while one is running"
        with FaultServer(model=MODEL, prefix_cache=options.prefix_caching) as server:
            started.append(server)
            open_now.append(server)
            try:
                asked = dataclasses.replace(options, base_url=server.base_url)
                async with openai(asked) as (chat, info):
                    yield chat, info | {"prefix_caching": options.prefix_caching}
            finally:
                open_now.remove(server)

    register_backend("embedded", fake_embedded, replace=True)
    try:
        yield started
    finally:
        register_backend("embedded", real, replace=True)


def test_replay_modes_side_by_side_each_on_its_own_server(embedded):
    report = run_bench(tiny(replay=("exact", "fast")), Console(file=io.StringIO()))
    exact_server, fast_server = embedded
    assert (exact_server.state.prefix_cache, fast_server.state.prefix_cache) == (False, True)
    replay = report["replay"]
    assert replay["modes"] == ["exact", "fast"]
    assert replay["server_prefix_cache"] == {"exact": False, "fast": True}
    # exact: warm-up (2), first pass (2), raw replay (2), measured pass (2); fast: the first two
    assert exact_server.count == exact_server.replies == 8
    assert fast_server.count == fast_server.replies == 4
    exact, fast = replay["conversation"]["exact"], replay["conversation"]["fast"]
    exact_prompt, exact_would_cache = first_pass(exact_server, 2)
    fast_prompt, fast_cached = first_pass(fast_server, 2)
    assert exact["prompt_tokens"] == exact_prompt > 0
    # the cache is off in exact, though it would have served part of the same prompts
    assert exact["cached_tokens"] == 0 and exact["cached_share"] == 0
    assert min(exact_would_cache) > 0
    assert fast["prompt_tokens"] == fast_prompt == exact_prompt  # same seeds, same requests
    assert fast["cached_tokens"] in fast_cached
    # the first pass meets its prompts for the first time: some served from the cache, not all
    assert 0 < fast["cached_tokens"] < fast["prompt_tokens"]
    assert fast["cached_share"] == round(fast["cached_tokens"] / fast["prompt_tokens"], 3)
    assert exact["requests"] == fast["requests"] == 2
    assert exact["completion_tokens"] == fast["completion_tokens"] > 0
    assert replay["conversation"]["fast_over_exact"] == round(
        fast["tokens_per_s"] / exact["tokens_per_s"], 3
    )
    assert "shared_server" not in replay
    # the raw comparison was made once, in the first mode
    assert report["requests"] == 2 and report["ratio"] > 0
    printed = io.StringIO()
    print_report(report, Console(file=printed, width=200))
    assert "fast/exact tokens/s" in printed.getvalue()
    assert "conversation fast" in printed.getvalue()


@pytest.mark.parametrize("vllm", [True, False])
def test_a_given_server_is_used_for_every_mode_and_its_cache_reported(vllm):
    # A vLLM server with its prefix cache on says so on /metrics and in each answer's
    # usage; a server that is not vLLM has no /metrics and says nothing of a cache.
    with FaultServer(model=MODEL, vllm=vllm, prefix_cache=True if vllm else None) as server:
        config = tiny(base_url=server.base_url, model=MODEL, replay=("fast", "exact"))
        report = run_bench(config, Console(file=io.StringIO()))
    replay = report["replay"]
    # what the server says on /metrics, whatever the mode; None from a server that does not say
    cache = True if vllm else None
    assert replay["server_prefix_cache"] == {"fast": cache, "exact": cache}
    assert server.base_url in replay["shared_server"]
    # fast: warm-up, first pass, raw replay, measured pass (2 each); then exact: the first two
    assert server.count == server.replies == 8 + 4
    fast, exact = replay["conversation"]["fast"], replay["conversation"]["exact"]
    fast_prompt, fast_cached = first_pass(server, 2)
    exact_prompt, exact_cached = first_pass(server, 10)
    assert fast["prompt_tokens"] == fast_prompt == exact_prompt == exact["prompt_tokens"] > 0
    if vllm:
        assert fast["cached_tokens"] in fast_cached and 0 < fast["cached_tokens"] < fast_prompt
        # the later mode meets prompts the earlier one sent: all of them served from the cache
        assert exact["cached_tokens"] in exact_cached and exact["cached_tokens"] == exact_prompt
    else:
        assert fast["cached_tokens"] is None and exact["cached_tokens"] is None
    assert "fast_over_exact" in replay["conversation"]


def test_ray_case_runs_the_fake_workload_locally_and_on_one_and_two_workers():
    report = run_bench(BenchConfig(case="ray", fake_episodes=3, fake_turns=4))
    ray = report["ray"]
    assert "replay" not in report and report["server"] is None
    for tag in ("local", "ray-1", "ray-2"):
        assert ray[tag]["episodes"] == 3
        assert ray[tag]["turns"] == report["fake_turns"] > 0  # the fake measurement's workload
        assert ray[tag]["turns_per_s"] > 0 and ray[tag]["driver_cpu_s"] >= 0
    assert ray["ray_2_over_1"] == round(
        ray["ray-2"]["turns_per_s"] / ray["ray-1"]["turns_per_s"], 2
    )
    assert ray["ray_1_over_local"] == round(
        ray["ray-1"]["turns_per_s"] / ray["local"]["turns_per_s"], 2
    )
    printed = io.StringIO()
    print_report(report, Console(file=printed, width=200))
    assert "ray-2 / ray-1" in printed.getvalue()


def test_ray_case_without_ray_says_so_before_running_anything(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets when not installed
    console = io.StringIO()
    with pytest.raises(ConfigError, match=r"needs Ray.*pip install 'personae\[ray\]'"):
        run_bench(BenchConfig(case="all"), Console(file=console))
    assert console.getvalue() == ""


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"replay": ("exact", "exact")}, "lists 'exact' twice"),
        ({"replay": ()}, "at least one mode"),
        ({"replay": ("fast",), "case": "ray"}, "--case ray runs no server"),
        ({"case": "rays"}, "unknown"),
    ],
)
def test_bad_configurations_are_refused(fields, fragment):
    with pytest.raises(ConfigError, match=fragment):
        BenchConfig(**fields)


def test_replay_option_is_parsed_and_checked():
    assert parse_replay("exact, fast") == ("exact", "fast")
    with pytest.raises(ConfigError, match="--replay must be"):
        parse_replay("exact,slow")


def test_a_bad_replay_value_exits_2_with_one_paragraph():
    r = subprocess.run(
        [sys.executable, "-m", "personae.cli", "bench", "--replay", "exact,slow"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2
    assert "--replay must be 'exact'" in r.stderr and "'slow'" in r.stderr
    assert "Traceback" not in r.stderr and "\n\n" not in r.stderr.strip()
