"""``personae bench``: framework throughput against the raw server, on the same requests.

Three measurements in one run:

(a) *raw*: the exact chat requests the framework made (same messages, same
    max_tokens, same seeds), replayed straight with ``AsyncOpenAI`` at the same
    concurrency, no framework in between;
(b) *framework*: counseling episodes run by the runner at that concurrency,
    logging to a throw-away SQLite file;
(c) *fake*: the same runner with a zero-latency fake model, so what is left is
    the framework's own cost per turn, SQLite logging included.

Order matters on a CPU server: the first batches of long prompts it meets run
slower (kernels for new shapes are compiled then), so the framework runs
twice with the same seeds. The first pass records the requests and warms the
server, the raw replay comes next, and the second framework pass is the one
measured; both measured passes see a warm server. With its prefix cache off
(the embedded server's default, for exact replay by seed) the two passes send
identical requests and get identical tokens. ``ratio`` is framework tokens/s
over raw tokens/s.
"""

from __future__ import annotations

import asyncio
import copy
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from personae.llm.base import ChatModel, Completion, Message
from personae.llm.fake import FunctionModel
from personae.runner.experiment import Experiment
from personae.runner.run import RunSummary, run_experiment
from personae.scenarios.builtin import counseling


@dataclass(frozen=True)
class BenchConfig:
    """What to measure."""

    concurrency: int = 64
    episodes: int = 64
    max_turns: int = 4
    max_tokens: int = 32
    fake_episodes: int = 200
    fake_turns: int = 40
    base_url: str | None = None
    model: str | None = None


class _Recorder:
    """A ChatModel wrapper that keeps every request it passes on."""

    def __init__(self, inner: ChatModel) -> None:
        self.inner = inner
        self.requests: list[tuple[list[Message], dict[str, Any]]] = []

    @property
    def name(self) -> str:
        return self.inner.name

    async def complete(self, messages: list[Message], **kwargs: Any) -> Completion:
        self.requests.append((copy.deepcopy(messages), dict(kwargs)))
        return await self.inner.complete(messages, **kwargs)

    async def aclose(self) -> None:
        await self.inner.aclose()


def _experiment(config: BenchConfig, episodes: int, max_turns: int) -> Experiment:
    scenario = counseling(max_turns=max_turns, min_turns=max_turns + 1).with_params(
        {"max_tokens": config.max_tokens}
    )
    return Experiment(scenario=scenario, replicates=episodes, seed=1234, name="bench")


async def _framework(config: BenchConfig, model: ChatModel, folder: Path, tag: str) -> RunSummary:
    return await run_experiment(
        _experiment(config, config.episodes, config.max_turns), folder / f"{tag}.db", model
    )


async def _raw(
    base_url: str,
    model: str,
    requests: list[tuple[list[Message], dict[str, Any]]],
    concurrency: int,
) -> dict[str, float]:
    from openai import AsyncOpenAI

    # The SDK as a user would call it: its own connection pool, no personae code in between.
    client = AsyncOpenAI(base_url=base_url, api_key="EMPTY", max_retries=2, timeout=300.0)
    gate = asyncio.Semaphore(concurrency)
    tokens = 0

    async def one(messages: list[Message], kw: dict[str, Any]) -> None:
        nonlocal tokens
        async with gate:
            response = await client.chat.completions.create(
                model=model,
                messages=messages,  # type: ignore[arg-type]
                max_tokens=kw.get("max_tokens"),
                temperature=kw.get("temperature"),
                top_p=kw.get("top_p"),
                seed=kw.get("seed"),
            )
        tokens += response.usage.completion_tokens if response.usage else 0

    started = time.perf_counter()
    await asyncio.gather(*(one(m, kw) for m, kw in requests))
    elapsed = time.perf_counter() - started
    await client.close()
    return {"tokens": tokens, "elapsed_s": elapsed, "requests": len(requests)}


async def _fake(config: BenchConfig, folder: Path) -> RunSummary:
    experiment = _experiment(config, config.fake_episodes, config.fake_turns)
    return await run_experiment(experiment, folder / "fake.db", FunctionModel.echo(record=False))


async def _bench(config: BenchConfig, console: Console) -> dict[str, Any]:
    from personae.llm.connect import connected_model
    from personae.llm.wrappers import ConcurrencyLimitedModel, find_layer

    with tempfile.TemporaryDirectory(prefix="personae-bench-") as tmp:
        folder = Path(tmp)
        console.print("[dim](c) zero-latency fake model, SQLite logging...[/]")
        fake = await _fake(config, folder)
        async with connected_model(
            base_url=config.base_url,
            model_name=config.model,
            max_in_flight=config.concurrency,
            console=console,
            server_log=folder / "vllm.log" if config.base_url is None else None,
        ) as (chat, info):
            base_url = config.base_url or str(info.get("base_url"))
            console.print("[dim]warm-up...[/]")
            warm: list[tuple[list[Message], dict[str, Any]]] = [
                (
                    [{"role": "user", "content": f"Say a word about {i}."}],
                    {"max_tokens": 8, "seed": i},
                )
                for i in range(config.concurrency)
            ]
            await _raw(base_url, chat.name, warm, config.concurrency)
            recorder = _Recorder(chat)
            console.print("[dim]framework warm-up pass (records the requests)...[/]")
            await _framework(config, recorder, folder, "warm")
            console.print(
                f"[dim](a) raw replay of the same {len(recorder.requests)} requests...[/]"
            )
            raw = await _raw(base_url, chat.name, recorder.requests, config.concurrency)
            console.print("[dim](b) framework pass, measured...[/]")
            framework = await _framework(config, chat, folder, "framework")
            limiter = find_layer(chat, ConcurrencyLimitedModel)
    raw_tps = raw["tokens"] / raw["elapsed_s"]
    fw_tps = framework.completion_tokens / framework.elapsed_s
    return {
        "raw_tokens_per_s": round(raw_tps, 1),
        "framework_tokens_per_s": round(fw_tps, 1),
        "ratio": round(fw_tps / raw_tps, 3) if raw_tps else None,
        "fake_turns_per_s": round(fake.turns_per_s, 1),
        "raw_requests_per_s": round(raw["requests"] / raw["elapsed_s"], 2),
        "framework_requests_per_s": round(framework.calls / framework.elapsed_s, 2),
        "raw_elapsed_s": round(raw["elapsed_s"], 1),
        "framework_elapsed_s": round(framework.elapsed_s, 1),
        "requests": int(raw["requests"]),
        "raw_completion_tokens": int(raw["tokens"]),
        "framework_completion_tokens": framework.completion_tokens,
        "peak_in_flight": getattr(limiter, "peak_in_flight", None),
        "fake_turns": fake.turns,
        "config": asdict(config),
        "server": info,
    }


def run_bench(config: BenchConfig, console: Console | None = None) -> dict[str, Any]:
    """Run the three measurements and return the report as a dict."""
    return asyncio.run(_bench(config, console or Console(stderr=True)))


def print_report(report: dict[str, Any], console: Console) -> None:
    """The report as a table."""
    table = Table(title=f"personae bench ({report['config']['concurrency']} requests in flight)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key in (
        "raw_tokens_per_s",
        "framework_tokens_per_s",
        "ratio",
        "raw_requests_per_s",
        "framework_requests_per_s",
        "requests",
        "peak_in_flight",
        "fake_turns_per_s",
    ):
        table.add_row(key, str(report[key]))
    console.print(table)
