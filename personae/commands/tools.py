"""Commands around a run: bench, demo, browse, export and prompt (registered by :mod:`personae.cli`)."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from personae.commands.common import EXIT_EPISODES_FAILED, err, out

__all__ = ["ExportFormatOption", "bench", "browse", "demo", "export", "prompt"]


def bench(
    json_: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    concurrency: Annotated[int, typer.Option(min=1, help="Requests in flight.")] = 64,
    episodes: Annotated[
        int, typer.Option(min=1, help="Counseling episodes in the framework run.")
    ] = 64,
    max_turns: Annotated[int, typer.Option(min=2, help="Utterances per episode.")] = 4,
    max_tokens: Annotated[int, typer.Option(min=1, help="max_tokens of each request.")] = 32,
    fake_episodes: Annotated[
        int, typer.Option(min=1, help="Episodes of the zero-latency run.")
    ] = 200,
    base_url: Annotated[
        str | None, typer.Option(help="Server to measure (default: embedded).")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Served model name.")] = None,
    case: Annotated[
        str,
        typer.Option(
            help="conversation (counseling episodes), inventory (IPIP-NEO-120 items), "
            "group (a discussion on a small-world graph), ray (the zero-latency fake-model "
            "run through the local executor and Ray with 1 and 2 workers; no server) or all."
        ),
    ] = "conversation",
    inventory_agents: Annotated[
        int, typer.Option(min=1, help="Agents answering the 120 items in the inventory case.")
    ] = 2,
    group_agents: Annotated[
        int, typer.Option(min=3, help="Members of the discussion in the group case.")
    ] = 50,
    replay: Annotated[
        str,
        typer.Option(
            help="Replay modes to compare, comma-separated (exact, fast or exact,fast): the "
            "first framework pass of each server case in each mode, side by side; the "
            "embedded server is started once per mode with its prefix cache to match."
        ),
    ] = "exact",
) -> None:
    """Measure framework throughput against the raw server on the same requests.

    Also: --case ray, the zero-latency run through the local executor and Ray
    with 1 and 2 workers; --replay exact,fast, the replay modes side by side.
    """
    from personae.bench import BenchConfig, parse_replay, print_report, run_bench

    config = BenchConfig(
        concurrency=concurrency,
        episodes=episodes,
        max_turns=max_turns,
        max_tokens=max_tokens,
        fake_episodes=fake_episodes,
        base_url=base_url,
        model=model,
        case=case,
        inventory_agents=inventory_agents,
        group_agents=group_agents,
        replay=parse_replay(replay),
    )
    report = run_bench(config, console=err)
    if json_:
        sys.stdout.write(json.dumps(report, indent=1) + "\n")
    else:
        print_report(report, out)


def demo(
    db: Annotated[Path, typer.Option(help="SQLite file to write.")] = Path("runs/demo.db"),
    replicates: Annotated[int, typer.Option(min=1, help="Episodes per temperature.")] = 4,
    base_url: Annotated[str | None, typer.Option(help="Server to use (default: embedded).")] = None,
) -> None:
    """Run the counseling demo (sampling temperature 0.2 vs 0.8) and show what landed in SQLite.

    The headline query compares how often replies repeat an earlier line of their
    conversation; see personae.demo for why this is the demo's contrast.
    """
    from personae.demo import run_demo

    summary = run_demo(db, replicates=replicates, base_url=base_url, out=out, err=err)
    if summary.interrupted:
        raise typer.Exit(130)
    if summary.failed:
        raise typer.Exit(EXIT_EPISODES_FAILED)


class ExportFormatOption(StrEnum):
    parquet = "parquet"
    csv = "csv"


def browse(
    db: Annotated[Path, typer.Argument(help="A personae database.")],
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="Port on 127.0.0.1 (0 picks a free one).")
    ] = 8001,
) -> None:
    """Read a database in the browser (Datasette, read-only) until Ctrl-C.

    Tables and views with descriptions and facets, canned queries (an episode
    step by step, grid cells, outlying scores, failed and truncated episodes,
    calls per model) and each episode as a conversation. Needs the optional
    extra: pip install 'personae[browse]'. The file is opened immutable: nothing
    is written.
    """
    from contextlib import suppress

    from personae.browse.server import serve as serve_browser

    with suppress(KeyboardInterrupt):  # Ctrl-C is how the server is meant to stop
        serve_browser(
            db, port=port, echo=lambda line: err.print(line, highlight=False, soft_wrap=True)
        )
    err.print("Stopped; the database was not changed.", highlight=False)


def export(
    db: Annotated[Path, typer.Argument(help="A personae database.")],
    out_dir: Annotated[
        Path, typer.Option("--out", "-o", help="Folder to write, one file per table and view.")
    ],
    format: Annotated[
        ExportFormatOption, typer.Option("--format", "-f", help="File format.")
    ] = ExportFormatOption.parquet,
) -> None:
    """Export every table and view to Parquet (or CSV) files, parameters as columns.

    Each file with an episode id gets one param_<name> column per parameter of
    the episode; column types follow the database (integers stay integers).
    The database is read read-only and never changed.
    """
    from personae.store.export import export as export_files

    files = export_files(db, out_dir, format.value)
    for f in files:
        out.print(f"{f.path}  {f.rows} rows, {f.columns} columns", highlight=False)
    out.print(f"{len(files)} files written to {out_dir}", highlight=False)


def prompt(
    target: Annotated[str, typer.Argument(help="Built-in scenario name or a Python file.")],
    agent: Annotated[str | None, typer.Option(help="Only this agent (name or role).")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", "-s", help="KEY=VALUE fixed parameter.")
    ] = None,
    replicate: Annotated[int, typer.Option(min=0, help="Whose drawn participants to show.")] = 0,
) -> None:
    """Print each agent's system prompt and the per-turn instructions (see docs/prompts.md).

    Nothing is run and no model is needed. The system prompts are the ones
    every episode sends and stores in agents.system_prompt.
    """
    from personae.loading import load_target, parse_assignments
    from personae.prompts import format_prompts, render_prompts

    fixed = parse_assignments(set_ or [], multi=False)
    sheet = render_prompts(load_target(target), fixed, replicate=replicate)
    typer.echo(format_prompts(sheet, agent), nl=False)
