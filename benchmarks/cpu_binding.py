"""The embedded CPU server with vLLM's own thread binding vs all CPUs computing.

``python benchmarks/cpu_binding.py`` starts the embedded server twice, one
after the other: once with ``VLLM_CPU_OMP_THREADS_BIND=auto`` (vLLM keeps a CPU
for its scheduler) and once with personae's default on small machines (every
CPU computes). Each server gets the same two batches: 64 short chats
(``max_tokens=64``) and 24 prompts of about 430 tokens (``max_tokens=32``). The
script prints the seconds each batch took and the output tokens, which are
the same in both runs when the seeds reproduce. It takes about 5 minutes on
2 cores. See docs/server.md for the figures.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from openai import AsyncOpenAI

from personae.llm.server import EmbeddedServer

BATCHES = (("64 short chats", 64, 10, 64), ("24 long prompts", 24, 400, 32))


async def _batch(client: AsyncOpenAI, n: int, words: int, max_tokens: int) -> tuple[float, int]:
    messages: Any = [
        {"role": "system", "content": "You are a student. " + "word " * words},
        {"role": "user", "content": "How was your day? Answer briefly."},
    ]
    started = time.perf_counter()
    replies = await asyncio.gather(
        *(
            client.chat.completions.create(
                model="smollm2",
                messages=messages,
                max_tokens=max_tokens,
                temperature=0.8,
                seed=seed,
            )
            for seed in range(n)
        )
    )
    tokens = sum(r.usage.completion_tokens for r in replies if r.usage)
    return time.perf_counter() - started, tokens


async def _measure(base_url: str) -> dict[str, tuple[float, int]]:
    client = AsyncOpenAI(base_url=base_url, api_key="unused", timeout=600)
    await _batch(client, 4, 10, 8)  # warm up
    return {label: await _batch(client, n, w, t) for label, n, w, t in BATCHES}


def main() -> None:
    results = {}
    for setting in ("auto", None):
        if setting is None:
            os.environ.pop("VLLM_CPU_OMP_THREADS_BIND", None)
        else:
            os.environ["VLLM_CPU_OMP_THREADS_BIND"] = setting
        name = "vLLM auto binding" if setting else "personae default"
        with EmbeddedServer() as server:
            results[name] = asyncio.run(_measure(server.base_url))
        for label, (seconds, tokens) in results[name].items():
            print(f"{name:18} {label:16} {seconds:6.1f} s  {tokens} output tokens", flush=True)
    auto, ours = results["vLLM auto binding"], results["personae default"]
    for label in auto:
        print(f"speed-up {label}: {auto[label][0] / ours[label][0]:.2f}x")


if __name__ == "__main__":
    main()
