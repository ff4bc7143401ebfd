"""``personae bench``: framework throughput against the raw server, on the same requests.

The measurements of one run:

(a) *raw*: the exact chat requests the framework made (same messages, same
    max_tokens, same seeds), replayed straight with ``AsyncOpenAI`` at the same
    concurrency, no framework in between;
(b) *framework*: counseling episodes run by the runner at that concurrency,
    logging to a throw-away SQLite file;
(c) *fake*: the same runner with a zero-latency fake model, so what is left is
    the framework's own cost per turn, SQLite logging included;
(d) *ray* (``--case ray`` or ``all``): the fake-model workload through the
    local executor and the Ray executor with 1 and 2 workers
    (:func:`personae.bench_cases.ray_scaling`);
(e) *replay* (``--replay exact,fast``): the first framework pass of each
    server case in each replay mode (:mod:`personae.runner.replay`), side by
    side: tokens/s, prompt tokens, those served from the prefix cache.

Order matters on a CPU server: the first batches of long prompts it meets run
slower (kernels for new shapes are compiled then), so the framework runs
twice with the same seeds. The first pass records the requests and warms the
server, the raw replay comes next, and the second framework pass is the one
measured; both measured passes see a warm server. With its prefix cache off
(``--replay exact``, the default) the two passes send identical requests and
get identical tokens. ``ratio`` is framework tokens/s over raw tokens/s.

The replay comparison measures the *first* pass instead: it is the first time
the server meets those prompts, as at the start of a real run, so a prefix
cache saves only what a run would save (a persona card, the conversation so
far), not whole prompts it has just seen. Each mode gets its own embedded
server, one after the other; the raw comparison is made in the first mode
only. With ``--base-url`` every mode uses that one server, whose cache is
whatever it was started with (read from its ``/metrics`` and reported).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from personae.bench_cases import (
    RAY_EXECUTORS,
    compare_pass,
    counseling_experiment,
    first_pass,
    group_experiment,
    inventory_experiment,
    raw_replay,
    ray_scaling,
    require_ray,
)
from personae.errors import ConfigError
from personae.llm.base import Message, Sampling
from personae.llm.fake import FunctionModel
from personae.runner.experiment import Experiment
from personae.runner.replay import (
    DEFAULT_REPLAY,
    check_replay,
    prefix_caching_for,
    server_prefix_caching,
)
from personae.runner.run import RunSummary, run_experiment

__all__ = ["CASES", "SERVER_CASES", "BenchConfig", "parse_replay", "print_report", "run_bench"]

#: The cases measured against a server.
SERVER_CASES = ("conversation", "inventory", "group")
CASES = (*SERVER_CASES, "ray", "all")


@dataclass(frozen=True)
class BenchConfig:
    """What to measure.

    ``replay`` lists the replay modes to compare (``exact``, ``fast``), in the
    order they run; the raw comparison is made in the first.

    Raises:
        ConfigError: An unknown case or replay mode, a mode listed twice, or
            more than ``exact`` asked of the ray case (which runs no server).
    """

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
    replay: tuple[str, ...] = (DEFAULT_REPLAY,)

    def __post_init__(self) -> None:
        if self.case not in CASES:
            raise ConfigError(f"bench case {self.case!r} is unknown; use one of {', '.join(CASES)}")
        if not self.replay:
            raise ConfigError("--replay needs at least one mode: exact, fast or exact,fast")
        for mode in self.replay:
            check_replay(mode)
            if self.replay.count(mode) > 1:
                raise ConfigError(f"--replay lists {mode!r} twice; give each mode once")
        if self.case == "ray" and self.replay != (DEFAULT_REPLAY,):
            raise ConfigError(
                "--replay compares the server cases (conversation, inventory, group) across "
                "replay modes; --case ray runs no server, so leave --replay out or pick "
                "another case"
            )

    @property
    def server_cases(self) -> tuple[str, ...]:
        """The server cases this run measures."""
        return tuple(c for c in SERVER_CASES if self.case in (c, "all"))

    @property
    def ray(self) -> bool:
        """Whether the Ray case runs."""
        return self.case in ("ray", "all")


def parse_replay(text: str) -> tuple[str, ...]:
    """``--replay``'s comma-separated modes, checked.

    Raises:
        ConfigError: A part is not a replay mode.

    Example:
        >>> parse_replay("exact, fast")
        ('exact', 'fast')
    """
    return tuple(check_replay(part.strip()) for part in text.split(","))


async def _fake(config: BenchConfig, folder: Path) -> RunSummary:
    experiment = counseling_experiment(config.fake_episodes, config.fake_turns, config.max_tokens)
    return await run_experiment(experiment, folder / "fake.db", FunctionModel.echo(record=False))


async def _server_cache(base_url: str) -> bool | None:
    """Whether the server says (vLLM, on ``/metrics``) its prefix cache is on; None if it does not."""
    import httpx

    root = base_url.rstrip("/").removesuffix("/v1")
    try:
        async with httpx.AsyncClient(timeout=5.0) as client:
            response = await client.get(f"{root}/metrics")
    except httpx.HTTPError:
        return None
    return server_prefix_caching(response.text) if response.is_success else None


async def _served(config: BenchConfig, folder: Path, console: Console) -> dict[str, Any]:
    """The server cases: per replay mode a server, its first passes; the raw comparison in the first."""
    from personae.llm.backends import connected_model

    builds: dict[str, Callable[[], Experiment]] = {
        "conversation": lambda: counseling_experiment(
            config.episodes, config.max_turns, config.max_tokens
        ),
        "inventory": lambda: inventory_experiment(config.inventory_agents),
        "group": lambda: group_experiment(config.group_agents, config.group_turns),
    }
    report: dict[str, Any] = {}
    replay: dict[str, Any] = {"modes": list(config.replay), "server_prefix_cache": {}}
    replay |= {name: {} for name in config.server_cases}
    for index, mode in enumerate(config.replay):
        console.print(f"[dim]replay {mode}: connecting to the server...[/]")
        async with connected_model(
            base_url=config.base_url,
            model_name=config.model,
            max_in_flight=config.concurrency,
            console=console,
            server_log=folder / f"vllm-{mode}.log" if config.base_url is None else None,
            prefix_caching=prefix_caching_for(check_replay(mode)),
        ) as (chat, info):
            base_url = config.base_url or str(info.get("base_url"))
            cache = (
                info.get("prefix_caching")
                if config.base_url is None
                else await _server_cache(base_url)
            )
            replay["server_prefix_cache"][mode] = cache
            if index == 0:
                report["server"] = info
            console.print("[dim]warm-up...[/]")
            # Short prompts of their own: kernels warm, no prompt of the workload cached.
            warm: list[tuple[list[Message], Sampling]] = [
                (
                    [{"role": "user", "content": f"Say a word about {i}."}],
                    Sampling(max_tokens=8, seed=i),
                )
                for i in range(config.concurrency)
            ]
            await raw_replay(base_url, chat.name, warm, config.concurrency)
            for name in config.server_cases:
                experiment = builds[name]()
                first, figures = await first_pass(
                    experiment, chat, folder, f"{name}-{mode}", console
                )
                replay[name][mode] = figures
                console.print(f"[dim]{name} {mode}: {json.dumps(figures)}[/]", highlight=False)
                if index > 0:
                    continue
                compared = await compare_pass(
                    experiment, first, base_url, config.concurrency, folder, name, console
                )
                # Shown as soon as a case is done, so a long run loses nothing if stopped later.
                console.print(f"[dim]{name}: {json.dumps(compared)}[/]", highlight=False)
                if name == "conversation":
                    report |= compared
                else:
                    report[name] = compared
    for name in config.server_cases:
        exact, fast = replay[name].get("exact"), replay[name].get("fast")
        if exact is not None and fast is not None:
            replay[name]["fast_over_exact"] = (
                round(fast["tokens_per_s"] / exact["tokens_per_s"], 3)
                if exact["tokens_per_s"]
                else None
            )
    if config.base_url is not None:
        replay["shared_server"] = (
            f"every mode ran against {config.base_url}; its prefix cache is whatever that "
            "server was started with, and a later mode meets prompts an earlier one sent"
        )
    report["replay"] = replay
    return report


def run_bench(config: BenchConfig, console: Console | None = None) -> dict[str, Any]:
    """Run the measurements ``config`` asks for and return the report as a dict.

    Raises:
        ConfigError: The ray case is asked for and Ray is not installed (said
            before anything runs).
    """
    console = console or Console(stderr=True)
    if config.ray:
        require_ray()
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="personae-bench-") as tmp:
        folder = Path(tmp)
        console.print("[dim](c) zero-latency fake model, SQLite logging...[/]")
        fake = asyncio.run(_fake(config, folder))
        if config.ray:
            # Before any server starts, so the workers have the CPUs to themselves.
            report["ray"] = ray_scaling(
                config.fake_episodes,
                config.fake_turns,
                folder,
                max_tokens=config.max_tokens,
                say=lambda line: console.print(f"[dim]{line}[/]", highlight=False),
            )
            console.print(f"[dim]ray: {json.dumps(report['ray'])}[/]", highlight=False)
        if config.server_cases:
            report |= asyncio.run(_served(config, folder, console))
    return {
        **report,
        "fake_turns_per_s": round(fake.turns_per_s, 1),
        "fake_turns": fake.turns,
        "config": asdict(config),
        "server": report.get("server"),
    }


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
_REPLAY_ROWS = (
    "tokens_per_s",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cached_share",
    "requests",
    "elapsed_s",
)
_RAY_COLUMNS = ("turns_per_s", "elapsed_s", "driver_cpu_s", "turns_per_driver_cpu_s", "episodes")


def print_report(report: dict[str, Any], console: Console) -> None:
    """The report as tables: the comparison (one column per case), the replay modes, the Ray case."""
    cases = {"conversation": report} if "ratio" in report else {}
    for name in ("inventory", "group"):
        if name in report:
            cases[name] = report[name]
    in_flight = f" ({report['config']['concurrency']} requests in flight)" if cases else ""
    table = Table(title=f"personae bench{in_flight}")
    table.add_column("measure")
    for name in cases or ("value",):
        table.add_column(name, justify="right")
    for key in _ROWS if cases else ():
        table.add_row(key, *(str(case.get(key)) for case in cases.values()))
    table.add_row("fake_turns_per_s", str(report["fake_turns_per_s"]), *[""] * (len(cases) - 1))
    console.print(table)
    if "replay" in report:
        console.print(_replay_table(report["replay"]))
    if "ray" in report:
        console.print(_ray_table(report["ray"]))


def _replay_table(replay: dict[str, Any]) -> Table:
    """The first framework pass of each case in each replay mode, side by side."""
    modes: list[str] = replay["modes"]
    cases = [name for name in SERVER_CASES if name in replay]
    table = Table(
        title="replay modes: the first framework pass of each case",
        caption=replay.get("shared_server"),
    )
    table.add_column("measure")
    for name in cases:
        for mode in modes:
            table.add_column(f"{name} {mode}", justify="right")
    cache = replay["server_prefix_cache"]
    table.add_row("server_prefix_cache", *(str(cache.get(m)) for _ in cases for m in modes))
    for key in _REPLAY_ROWS:
        table.add_row(key, *(str(replay[n][m].get(key)) for n in cases for m in modes))
    if "exact" in modes and "fast" in modes:
        table.add_row(
            "fast/exact tokens/s",
            *(
                str(replay[n]["fast_over_exact"]) if m == "fast" else ""
                for n in cases
                for m in modes
            ),
        )
    return table


def _ray_table(ray: dict[str, Any]) -> Table:
    """The Ray case: one row per executor."""
    table = Table(
        title="ray case: zero-latency fake model, per executor",
        caption=(
            f"ray-2 / ray-1: {ray['ray_2_over_1']}; ray-1 / local: {ray['ray_1_over_local']}; "
            f"cluster start {ray['cluster_start_s']} s"
        ),
    )
    table.add_column("executor")
    for key in _RAY_COLUMNS:
        table.add_column(key, justify="right")
    for tag, _ in RAY_EXECUTORS:
        table.add_row(tag, *(str(ray[tag].get(key)) for key in _RAY_COLUMNS))
    return table
