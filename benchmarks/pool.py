"""Replica pool throughput: one server, two servers side by side, and the pool over the two.

``python benchmarks/pool.py`` starts two embedded vLLM servers (a free port
each; 2 to 4 minutes and about 3 GB each on a CPU). ``--base-url URL`` (once
or twice) uses running servers instead, starting only the ones missing; they
must serve ``--model``. Then it runs the same workload three ways, one after
the other:

1. ``one_server``: every conversation on server A through a plain
   ``openai.AsyncOpenAI`` client;
2. ``two_servers``: half the conversations on A and half on B, two plain
   clients at once (the throughput of both together);
3. ``pool``: every conversation as a session of
   :func:`personae.llm.pool.build_pool` over A and B.

The workload: ``--conversations`` chats (64) of ``--turns`` requests each (3),
all chats at once and each chat's turns one after the other, the earlier
replies in the prompt; temperature 0.8, ``--max-tokens`` 48, a fixed seed per
chat and turn. Throughput is generated tokens per second of wall time. The
script prints one JSON object. See docs/replicas.md for figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from openai import AsyncOpenAI

from personae.llm.base import Message, Sampling
from personae.llm.pool import build_pool
from personae.llm.server import EmbeddedServer

# One request: (messages, seed) -> (reply text, completion tokens).
Ask = Callable[[list[Message], int], Awaitable[tuple[str, int]]]

QUESTIONS = (
    "How was your week at work?",
    "What would you change about it?",
    "What will you do this weekend?",
    "Who helps you most when things go wrong?",
)


def _opening(chat: int) -> list[Message]:
    return [
        {"role": "system", "content": f"You are person number {chat}. Answer in one sentence."},
        {"role": "user", "content": QUESTIONS[chat % len(QUESTIONS)]},
    ]


async def _chat(ask: Ask, chat: int, turns: int) -> int:
    """One conversation: ``turns`` requests in a row; the generated tokens."""
    messages = _opening(chat)
    tokens = 0
    for turn in range(turns):
        text, generated = await ask(messages, 1000 * chat + turn)
        tokens += generated
        messages = [
            *messages,
            {"role": "assistant", "content": text},
            {"role": "user", "content": QUESTIONS[(chat + turn + 1) % len(QUESTIONS)]},
        ]
    return tokens


def _raw(client: AsyncOpenAI, model: str, max_tokens: int) -> Ask:
    async def ask(messages: list[Message], seed: int) -> tuple[str, int]:
        reply = await client.chat.completions.create(
            model=model,
            messages=messages,  # type: ignore[arg-type]
            max_tokens=max_tokens,
            temperature=0.8,
            seed=seed,
        )
        generated = reply.usage.completion_tokens if reply.usage else 0
        return reply.choices[0].message.content or "", generated

    return ask


async def _timed(runs: Sequence[Awaitable[int]]) -> dict[str, float]:
    started = time.perf_counter()
    tokens = sum(await asyncio.gather(*runs))
    seconds = time.perf_counter() - started
    return {
        "seconds": round(seconds, 2),
        "completion_tokens": tokens,
        "tokens_per_s": round(tokens / seconds, 1),
    }


async def _one_server(url: str, args: argparse.Namespace) -> dict[str, float]:
    client = AsyncOpenAI(base_url=url, api_key="unused", timeout=600, max_retries=0)
    try:
        ask = _raw(client, args.model, args.max_tokens)
        return await _timed([_chat(ask, c, args.turns) for c in range(args.conversations)])
    finally:
        await client.close()


async def _two_servers(urls: Sequence[str], args: argparse.Namespace) -> dict[str, float]:
    clients = [AsyncOpenAI(base_url=u, api_key="unused", timeout=600, max_retries=0) for u in urls]
    try:
        asks = [_raw(client, args.model, args.max_tokens) for client in clients]
        return await _timed([_chat(asks[c % 2], c, args.turns) for c in range(args.conversations)])
    finally:
        for client in clients:
            await client.close()


async def _pool(urls: Sequence[str], args: argparse.Namespace) -> dict[str, Any]:
    pool = build_pool(urls, args.model, max_in_flight=args.conversations, timeout=600.0)

    async def session_chat(chat: int) -> int:
        with pool.session(f"chat-{chat}") as session:

            async def ask(messages: list[Message], seed: int) -> tuple[str, int]:
                sampling = Sampling(max_tokens=args.max_tokens, temperature=0.8, seed=seed)
                reply = await session.complete(messages, sampling)
                return reply.text, reply.completion_tokens

            return await _chat(ask, chat, args.turns)

    try:
        result: dict[str, Any] = dict(
            await _timed([session_chat(c) for c in range(args.conversations)])
        )
    finally:
        await pool.aclose()
    result["requests_per_replica"] = [stats.requests for stats in pool.stats()]
    return result


async def _warm(urls: Sequence[str], args: argparse.Namespace) -> None:
    for url in urls:
        client = AsyncOpenAI(base_url=url, api_key="unused", timeout=600, max_retries=0)
        try:
            ask = _raw(client, args.model, 8)
            await asyncio.gather(*(_chat(ask, c, 1) for c in range(4)))
        finally:
            await client.close()


@contextlib.asynccontextmanager
async def _servers(given: Sequence[str], model: str) -> AsyncIterator[tuple[list[str], int]]:
    """The two base URLs: those given, and embedded servers started for the rest."""
    started: list[EmbeddedServer] = []
    try:
        for _ in range(2 - len(given)):
            server = EmbeddedServer(served_model_name=model, prefix_caching=False)
            started.append(await server.astart())
        yield [*given, *(server.base_url for server in started)], len(started)
    finally:
        for server in started:
            await server.astop()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    given = [url.rstrip("/") for url in args.base_url]
    if len(given) > 2:
        raise SystemExit("give at most two --base-url")
    async with _servers(given, args.model) as (urls, started):
        await _warm(urls, args)
        one = await _one_server(urls[0], args)
        two = await _two_servers(urls, args)
        pooled = await _pool(urls, args)
    return {
        "replicas": urls,
        "servers_started": started,
        "cpus": os.cpu_count(),
        "conversations": args.conversations,
        "turns": args.turns,
        "max_tokens": args.max_tokens,
        "one_server": one,
        "two_servers": two,
        "pool": pooled,
        "pool_vs_one": round(pooled["tokens_per_s"] / one["tokens_per_s"], 2),
        "pool_vs_two": round(pooled["tokens_per_s"] / two["tokens_per_s"], 2),
    }


def _arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base-url", action="append", default=[], help="a running replica")
    parser.add_argument("--model", default="smollm2", help="the served model name")
    parser.add_argument("--conversations", type=int, default=64)
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=48)
    return parser.parse_args(argv)


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(_arguments())), indent=2))
