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
import json
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from personae.errors import ConfigError
from personae.llm.base import (
    ChatModel,
    Completion,
    LegacySampling,
    Message,
    Sampling,
    complete,
    resolve_sampling,
)
from personae.llm.fake import FunctionModel
from personae.runner.experiment import Experiment
from personae.runner.run import RunSummary, run_experiment
from personae.studies import counseling

if TYPE_CHECKING:
    from typing_extensions import Unpack


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
    case: str = "conversation"
    inventory_agents: int = 2
    group_agents: int = 50
    group_turns: int = 6

    def __post_init__(self) -> None:
        if self.case not in CASES:
            raise ConfigError(f"bench case {self.case!r} is unknown; use one of {', '.join(CASES)}")


CASES = ("conversation", "inventory", "group", "all")


class _Recorder:
    """A ChatModel wrapper that keeps every request it passes on, and when it ran."""

    def __init__(self, inner: ChatModel) -> None:
        self.inner = inner
        self.requests: list[tuple[list[Message], Sampling]] = []
        self.spans: list[tuple[float, float]] = []

    @property
    def name(self) -> str:
        return self.inner.name

    async def complete(
        self,
        messages: list[Message],
        sampling: Sampling | None = None,
        **legacy: Unpack[LegacySampling],
    ) -> Completion:
        sampling = resolve_sampling(sampling, legacy, self)
        self.requests.append((copy.deepcopy(messages), sampling))
        started = time.perf_counter()
        try:
            return await complete(self.inner, messages, sampling)
        finally:
            self.spans.append((started, time.perf_counter()))

    async def aclose(self) -> None:
        await self.inner.aclose()


def _experiment(config: BenchConfig, episodes: int, max_turns: int) -> Experiment:
    scenario = counseling(max_turns=max_turns, min_turns=max_turns + 1).with_params(
        {"max_tokens": config.max_tokens}
    )
    return Experiment(scenario=scenario, replicates=episodes, seed=1234, name="bench")


async def _raw(
    base_url: str,
    model: str,
    requests: list[tuple[list[Message], Sampling]],
    concurrency: int,
) -> dict[str, float]:
    from openai import AsyncOpenAI

    from personae.llm.openai import sdk_arguments

    # The SDK as a user would call it: its own connection pool, no personae code in between.
    client = AsyncOpenAI(base_url=base_url, api_key="EMPTY", max_retries=2, timeout=300.0)
    gate = asyncio.Semaphore(concurrency)
    tokens = 0
    spans: list[tuple[float, float]] = []

    async def one(messages: list[Message], sampling: Sampling) -> None:
        nonlocal tokens
        async with gate:
            sent = time.perf_counter()
            # The same request fields the framework's client sends, built the same way.
            response = await client.chat.completions.create(
                model=model,
                messages=messages,  # type: ignore[arg-type]
                **sdk_arguments(sampling),
            )
            spans.append((sent, time.perf_counter()))
        tokens += response.usage.completion_tokens if response.usage else 0

    started = time.perf_counter()
    await asyncio.gather(*(one(m, sampling) for m, sampling in requests))
    elapsed = time.perf_counter() - started
    await client.close()
    return {"tokens": tokens, "elapsed_s": elapsed, "requests": len(requests), **_timeline(spans)}


def _timeline(spans: list[tuple[float, float]]) -> dict[str, float]:
    """Mean request latency and mean requests in flight over a pass."""
    if not spans:
        return {"mean_latency_s": 0.0, "mean_in_flight": 0.0}
    busy = sum(end - start for start, end in spans)
    wall = max(end for _, end in spans) - min(start for start, _ in spans)
    return {"mean_latency_s": busy / len(spans), "mean_in_flight": busy / wall if wall else 0.0}


async def _fake(config: BenchConfig, folder: Path) -> RunSummary:
    experiment = _experiment(config, config.fake_episodes, config.fake_turns)
    return await run_experiment(experiment, folder / "fake.db", FunctionModel.echo(record=False))


async def _compare(
    experiment: Experiment,
    chat: ChatModel,
    base_url: str,
    concurrency: int,
    folder: Path,
    tag: str,
    console: Console,
) -> dict[str, Any]:
    """Framework pass (warm, recording), raw replay, measured framework pass; the figures."""
    from personae.llm.wrappers import ConcurrencyLimitedModel, find_layer

    recorder = _Recorder(chat)
    console.print(f"[dim]{tag}: framework warm-up pass (records the requests)...[/]")
    await run_experiment(experiment, folder / f"{tag}-warm.db", recorder)
    console.print(f"[dim]{tag}: (a) raw replay of the same {len(recorder.requests)} requests...[/]")
    cpu = time.process_time()
    raw = await _raw(base_url, chat.name, recorder.requests, concurrency)
    raw_cpu = time.process_time() - cpu
    console.print(f"[dim]{tag}: (b) framework pass, measured...[/]")
    timed = _Recorder(chat)
    limiter = find_layer(chat, ConcurrencyLimitedModel)
    if limiter is not None:
        limiter.peak_in_flight = 0
    cpu = time.process_time()
    framework = await run_experiment(experiment, folder / f"{tag}.db", timed)
    framework_cpu = time.process_time() - cpu
    timeline = _timeline(timed.spans)
    raw_tps = raw["tokens"] / raw["elapsed_s"]
    fw_tps = framework.completion_tokens / framework.elapsed_s
    raw_rps = raw["requests"] / raw["elapsed_s"]
    fw_rps = framework.calls / framework.elapsed_s
    return {
        "raw_tokens_per_s": round(raw_tps, 1),
        "framework_tokens_per_s": round(fw_tps, 1),
        "ratio": round(fw_tps / raw_tps, 3) if raw_tps else None,
        "raw_requests_per_s": round(raw_rps, 2),
        "framework_requests_per_s": round(fw_rps, 2),
        "requests_ratio": round(fw_rps / raw_rps, 3) if raw_rps else None,
        "raw_elapsed_s": round(raw["elapsed_s"], 1),
        "framework_elapsed_s": round(framework.elapsed_s, 1),
        "requests": int(raw["requests"]),
        "raw_completion_tokens": int(raw["tokens"]),
        "framework_completion_tokens": framework.completion_tokens,
        "peak_in_flight": getattr(limiter, "peak_in_flight", None),
        "raw_mean_latency_s": round(raw["mean_latency_s"], 2),
        "framework_mean_latency_s": round(timeline["mean_latency_s"], 2),
        "raw_mean_in_flight": round(raw["mean_in_flight"], 1),
        "framework_mean_in_flight": round(timeline["mean_in_flight"], 1),
        "raw_client_cpu_s": round(raw_cpu, 2),
        "framework_client_cpu_s": round(framework_cpu, 2),
    }


def _inventory(config: BenchConfig) -> Experiment:
    """The IPIP-NEO-120 given to ``inventory_agents`` agents, one item per request, no conversation."""
    from personae.agents.persona import Persona
    from personae.engine.probes import Probe
    from personae.engine.scenario import Opening, Scenario

    agents = tuple(
        Persona(
            name=f"Respondent {i + 1}",
            role="respondent",
            big_five={k: 1 + (i * 7 + j * 3) % 5 for j, k in enumerate("OCEAN")},
        )
        for i in range(config.inventory_agents)
    )
    scenario = Scenario(
        name="inventory",
        agents=agents,
        opening=Opening(speaker=agents[0].name, text="Thank you for taking part."),
        max_turns=1,
        probes=(Probe("ipip-neo-120", at="start"),),
    )
    return Experiment(scenario=scenario, replicates=1, seed=1234, name="bench-inventory")


def _group(config: BenchConfig) -> Experiment:
    """One discussion of ``group_agents`` members on a small-world graph, opinions probed."""
    from personae.studies.group.scenario import group

    scenario = group(
        n_agents=config.group_agents,
        graph="small_world",
        max_turns=config.group_turns,
        every=config.group_turns,
    )
    return Experiment(scenario=scenario, replicates=1, seed=1234, name="bench-group")


async def _bench(config: BenchConfig, console: Console) -> dict[str, Any]:
    from personae.llm.backends import connected_model

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
            warm: list[tuple[list[Message], Sampling]] = [
                (
                    [{"role": "user", "content": f"Say a word about {i}."}],
                    Sampling(max_tokens=8, seed=i),
                )
                for i in range(config.concurrency)
            ]
            await _raw(base_url, chat.name, warm, config.concurrency)
            report: dict[str, Any] = {}
            cases = {
                "conversation": lambda: _experiment(config, config.episodes, config.max_turns),
                "inventory": lambda: _inventory(config),
                "group": lambda: _group(config),
            }
            for name, build in cases.items():
                if config.case not in (name, "all"):
                    continue
                figures = await _compare(
                    build(), chat, base_url, config.concurrency, folder, name, console
                )
                # Shown as soon as a case is done, so a long run loses nothing if stopped later.
                console.print(f"[dim]{name}: {json.dumps(figures)}[/]", highlight=False)
                if name == "conversation":
                    report |= figures
                else:
                    report[name] = figures
    return {
        **report,
        "fake_turns_per_s": round(fake.turns_per_s, 1),
        "fake_turns": fake.turns,
        "config": asdict(config),
        "server": info,
    }


def run_bench(config: BenchConfig, console: Console | None = None) -> dict[str, Any]:
    """Run the three measurements and return the report as a dict."""
    return asyncio.run(_bench(config, console or Console(stderr=True)))


_ROWS = (
    "raw_tokens_per_s",
    "framework_tokens_per_s",
    "ratio",
    "raw_requests_per_s",
    "framework_requests_per_s",
    "requests_ratio",
    "requests",
    "peak_in_flight",
    "raw_mean_latency_s",
    "framework_mean_latency_s",
    "raw_mean_in_flight",
    "framework_mean_in_flight",
    "raw_client_cpu_s",
    "framework_client_cpu_s",
)


def print_report(report: dict[str, Any], console: Console) -> None:
    """The report as a table: one column per case."""
    cases = {"conversation": report} if "ratio" in report else {}
    for name in ("inventory", "group"):
        if name in report:
            cases[name] = report[name]
    table = Table(title=f"personae bench ({report['config']['concurrency']} requests in flight)")
    table.add_column("measure")
    for name in cases:
        table.add_column(name, justify="right")
    for key in _ROWS:
        table.add_row(key, *(str(case.get(key)) for case in cases.values()))
    table.add_row("fake_turns_per_s", str(report["fake_turns_per_s"]), *[""] * (len(cases) - 1))
    console.print(table)
