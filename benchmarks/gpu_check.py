"""Check a serving machine: the bench ratio and a concurrency sweep, printed as one JSON object.

Against any running OpenAI-compatible server (vLLM on a GPU, the embedded
CPU server, a hosted API), two measurements:

* **bench**: ``personae bench``'s comparison (:func:`personae.bench.run_bench`):
  counseling episodes run by the framework, and the exact same requests
  replayed straight with the OpenAI SDK at the same concurrency; ``ratio``
  is framework tokens/s over raw tokens/s (1.0: the framework costs
  nothing). By default it runs at the top of the sweep: as many episodes as
  requests in flight, each with at most one request on the wire.
* **sweep**: for each number of requests in flight (default 64, 128, 256,
  512, 1024), ``--requests`` distinct chat requests (default: twice the
  level) sent straight with the SDK; throughput, latency percentiles, the
  requests actually in flight on average, and errors by kind. The level
  where tokens/s stops growing is what ``--max-in-flight`` should be near.

On a GPU machine::

    .venv/bin/python benchmarks/gpu_check.py --base-url http://127.0.0.1:8000/v1 \\
        --model /models/Qwen2.5-7B-Instruct

CI-sized, against the embedded CPU server::

    .venv/bin/python benchmarks/gpu_check.py --base-url http://127.0.0.1:8765/v1 \\
        --model smollm2 --sweep 4,8 --requests 16 --max-tokens 16

Progress goes to stderr; stdout holds only the JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import statistics
import sys
import time
from collections import Counter
from typing import Any

from rich.console import Console

from personae.bench import BenchConfig, run_bench
from personae.llm.base import Sampling
from personae.llm.openai import sdk_arguments

DEFAULT_SWEEP = (64, 128, 256, 512, 1024)

#: Requests of the sweep: distinct short questions, so no two share a reply.
TOPICS = ("the sea", "a library", "trains", "winter", "a garden", "the city", "music", "bread")


async def level(
    base_url: str, model: str, in_flight: int, requests: int, max_tokens: int, timeout: float
) -> dict[str, Any]:
    """``requests`` chat requests with at most ``in_flight`` on the wire; the figures."""
    from openai import AsyncOpenAI, DefaultAsyncHttpxClient

    # Connections for every request in flight (the SDK's default pool stops at 1,000); the
    # Limits class of whichever httpx the SDK is built on.
    transport: Any = importlib.import_module(
        DefaultAsyncHttpxClient.__mro__[1].__module__.split(".")[0]
    )
    limits = transport.Limits(max_connections=in_flight + 8, max_keepalive_connections=in_flight)
    http = DefaultAsyncHttpxClient(limits=limits)
    client = AsyncOpenAI(
        base_url=base_url, api_key="EMPTY", max_retries=0, timeout=timeout, http_client=http
    )
    gate = asyncio.Semaphore(in_flight)
    latencies: list[float] = []
    spans: list[tuple[float, float]] = []
    errors: Counter[str] = Counter()
    tokens = 0

    async def one(i: int) -> None:
        nonlocal tokens
        topic = TOPICS[i % len(TOPICS)]
        messages = [{"role": "user", "content": f"Request {i}: say something about {topic}."}]
        sampling = Sampling(max_tokens=max_tokens, seed=i, temperature=0.7)
        async with gate:
            sent = time.perf_counter()
            try:
                response = await client.chat.completions.create(
                    model=model,
                    messages=messages,  # type: ignore[arg-type]
                    **sdk_arguments(sampling),
                )
            except Exception as exc:
                errors[type(exc).__name__] += 1
                return
            done = time.perf_counter()
        latencies.append(done - sent)
        spans.append((sent, done))
        tokens += response.usage.completion_tokens if response.usage else 0

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(requests)))
    elapsed = time.perf_counter() - started
    await client.close()
    busy = sum(end - start for start, end in spans)
    ordered = sorted(latencies)
    return {
        "in_flight": in_flight,
        "requests": requests,
        "ok": len(latencies),
        "errors": dict(errors),
        "elapsed_s": round(elapsed, 2),
        "requests_per_s": round(len(latencies) / elapsed, 2),
        "tokens_per_s": round(tokens / elapsed, 1),
        "completion_tokens": tokens,
        "latency_p50_s": round(statistics.median(ordered), 3) if ordered else None,
        "latency_p95_s": round(ordered[int(0.95 * (len(ordered) - 1))], 3) if ordered else None,
        "mean_in_flight": round(busy / elapsed, 1) if elapsed else 0.0,
    }


def check(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    """Both measurements, as one dict."""
    sweep = [int(x) for x in args.sweep.split(",") if x.strip()]
    if not sweep or min(sweep) < 1:
        raise SystemExit("--sweep takes positive integers, e.g. 64,128,256")
    top = args.bench_in_flight or max(sweep)
    config = BenchConfig(
        concurrency=top,
        episodes=args.episodes or top,
        max_turns=args.max_turns,
        max_tokens=args.max_tokens,
        fake_episodes=args.fake_episodes,
        base_url=args.base_url,
        model=args.model,
    )
    bench = run_bench(config, console)
    server = bench.pop("server", None)
    bench.pop("config", None)
    model = args.model or (server or {}).get("model") or ""
    levels = []
    for in_flight in sweep:
        console.print(f"[dim]sweep: {in_flight} requests in flight...[/]")
        requests = args.requests or 2 * in_flight
        levels.append(
            asyncio.run(
                level(args.base_url, model, in_flight, requests, args.max_tokens, args.timeout)
            )
        )
    best = max(levels, key=lambda figures: figures["tokens_per_s"])
    return {
        "base_url": args.base_url,
        "model": model,
        "server": server,
        "bench": bench,
        "sweep": levels,
        "best": {"in_flight": best["in_flight"], "tokens_per_s": best["tokens_per_s"]},
        "config": {
            "sweep": sweep,
            "requests": args.requests,
            "max_tokens": args.max_tokens,
            "bench_in_flight": top,
            "episodes": config.episodes,
            "max_turns": args.max_turns,
        },
    }


def parser() -> argparse.ArgumentParser:
    """The command line."""
    parse = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parse.add_argument("--base-url", required=True, help="the server's API root, .../v1")
    parse.add_argument("--model", help="the served model name (default: the first it lists)")
    parse.add_argument("--sweep", default=",".join(map(str, DEFAULT_SWEEP)))
    parse.add_argument("--requests", type=int, help="requests per sweep level (default 2x)")
    parse.add_argument("--max-tokens", type=int, default=32)
    parse.add_argument("--episodes", type=int, help="bench episodes (default: its in-flight)")
    parse.add_argument("--max-turns", type=int, default=4, help="bench turns per episode")
    parse.add_argument("--bench-in-flight", type=int, help="bench concurrency (default: top)")
    parse.add_argument("--fake-episodes", type=int, default=20, help="zero-latency fake case")
    parse.add_argument("--timeout", type=float, default=600.0, help="seconds per request")
    parse.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return parse


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the check and print the JSON object; returns it too."""
    args = parser().parse_args(argv)
    report = check(args, Console(stderr=True, quiet=args.quiet))
    json.dump(report, sys.stdout)
    sys.stdout.write("\n")
    return report


if __name__ == "__main__":
    main()
