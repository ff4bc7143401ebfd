"""The ``personae`` command: a thin layer over the library.

Every deliberate error (:class:`~personae.errors.PersonaeError`, invalid
definitions) prints one paragraph and exits with code 2; an interrupted run
exits 130 after keeping every completed episode; a run with failed episodes
exits 3 (:data:`EXIT_EPISODES_FAILED`); exit code 1 means personae itself failed.
"""

from __future__ import annotations

import csv
import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from personae.errors import ConfigError, PersonaeError
from personae.llm.wrappers import DEFAULT_SERVER_WAIT, DEFAULT_TIMEOUT

app = typer.Typer(
    help="Persona-grounded multi-agent social simulation on a local vLLM server.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


def main() -> None:
    """Entry point of the ``personae`` script.

    ``kill`` (SIGTERM) and a closed terminal (SIGHUP) stop any command the way
    Ctrl-C does: a run marks its unfinished episodes and stops the embedded
    server it started.
    """
    from personae.llm.process import signals_as_interrupt

    try:
        with signals_as_interrupt():
            app()
    except PersonaeError as exc:
        _print_and_exit(str(exc))
    except ValidationError as exc:
        from personae.engine.scenario import format_validation_error

        _print_and_exit(f"invalid {exc.title}: {format_validation_error(exc)}")


def _print_and_exit(message: str) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    sys.exit(2)


@app.command()
def run(
    target: Annotated[
        str, typer.Argument(help="Built-in scenario name (counseling) or a Python file.")
    ],
    db: Annotated[Path, typer.Option(help="SQLite file to write; rerunning resumes.")] = Path(
        "runs/personae.db"
    ),
    replicates: Annotated[
        int | None, typer.Option(min=1, help="Episodes per parameter set.")
    ] = None,
    seed: Annotated[int | None, typer.Option(min=0, help="Experiment seed.")] = None,
    grid: Annotated[
        list[str] | None, typer.Option("--grid", "-g", help="KEY=V1,V2 parameter values to cross.")
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", "-s", help="KEY=VALUE fixed parameter.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Experiment name in the database.")] = None,
    base_url: Annotated[
        str | None,
        typer.Option(help="OpenAI-compatible server; default: start the embedded vLLM server."),
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Served model name (default: the server's first).")
    ] = None,
    max_in_flight: Annotated[int, typer.Option(min=1, help="Requests in flight at most.")] = 64,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    server_log: Annotated[
        Path | None, typer.Option(help="Log file of the embedded server.")
    ] = None,
    prefix_caching: Annotated[
        bool,
        typer.Option(
            help="Embedded server only: turn vLLM's prefix cache on (faster; seeds then no "
            "longer reproduce transcripts exactly)."
        ),
    ] = False,
    timeout: Annotated[
        float,
        typer.Option(
            min=1, help="Seconds one request may take before it is abandoned and sent once more."
        ),
    ] = DEFAULT_TIMEOUT,
    retries: Annotated[
        int,
        typer.Option(min=0, help="Retries of a request after an HTTP 429/500 or a garbled answer."),
    ] = 5,
    server_wait: Annotated[
        float,
        typer.Option(
            min=0,
            help="Seconds to wait out a server that cannot be reached (restarting, rebooting) "
            "before the episodes waiting on it fail.",
        ),
    ] = DEFAULT_SERVER_WAIT,
) -> None:
    """Run a Monte Carlo experiment and log every turn to SQLite.

    Exit codes: 0 every episode complete, 2 bad input (nothing run), 3 some
    episodes failed (the rest are kept; rerun to retry them), 130 interrupted.
    """
    from personae.loading import load_target, parse_assignments
    from personae.runner.experiment import as_experiment

    _check_text("--name", name)
    target_obj = load_target(target)
    grid_values = parse_assignments(grid or [], multi=True)
    fixed = parse_assignments(set_ or [], multi=False)
    both = sorted(set(grid_values) & set(fixed))
    if both:
        raise ConfigError(
            f"{', '.join(both)} is given both with --grid and with --set; give each "
            "parameter once (--grid to vary it, --set to fix it)."
        )
    grid_values.update({k: [v] for k, v in fixed.items()})
    experiment = as_experiment(
        target_obj, replicates=replicates, seed=seed, name=name, grid=grid_values
    )
    if server_log is None and base_url is None:
        server_log = db.parent / "vllm.log"
    total = len(experiment.episodes())
    err.print(
        f"Experiment [bold]{experiment.label}[/]: {total} episodes "
        f"({len(experiment.combinations())} parameter sets x {experiment.replicates} replicates, seed {experiment.seed}) -> {db}",
        highlight=False,
    )
    summary = experiment.run(
        db,
        base_url=base_url,
        model_name=model,
        max_in_flight=max_in_flight,
        progress=progress,
        console=err,
        server_log=server_log,
        prefix_caching=prefix_caching,
        timeout=timeout,
        retries=retries,
        server_wait=server_wait,
        target=target,
    )
    print_summary(summary)
    if summary.interrupted:
        err.print(
            f"Interrupted: {summary.complete} of {summary.total} episodes are complete and kept. "
            "Run the same command again to finish the rest."
        )
        raise typer.Exit(130)
    if summary.failed:
        err.print(
            f"[red]{summary.failed} episode(s) failed[/]; first error: {summary.errors[0]}",
            highlight=False,
        )
        if summary.lost:
            ids = ", ".join(str(i) for i in sorted(summary.lost))
            err.print(
                f"Rows of episode(s) {ids} could not be stored; they are not marked complete.",
                highlight=False,
            )
        err.print("Run the same command again to retry them; completed episodes are kept.")
        raise typer.Exit(EXIT_EPISODES_FAILED)


#: Exit code of a run in which some episodes failed (the others are kept).
EXIT_EPISODES_FAILED = 3


def _check_text(option: str, value: str | None) -> None:
    """Refuse a command-line value that is not valid text (e.g. invalid UTF-8 bytes)."""
    if value is None:
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        shown = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        raise ConfigError(
            f"{option} {shown!r} is not valid UTF-8 text; give it a name in plain text."
        ) from None


def print_summary(summary: Any) -> None:
    """Print a run's summary table and a query to read what it stored."""
    table = Table(title="Run summary", show_header=False)
    table.add_row("database", summary.db)
    table.add_row("episodes complete", f"{summary.complete} / {summary.total}")
    table.add_row("run now / already done", f"{summary.completed} / {summary.already_complete}")
    table.add_row("failed", str(summary.failed))
    if getattr(summary, "reset_incomplete", 0):
        table.add_row("complete but missing rows, run again", str(summary.reset_incomplete))
    if getattr(summary, "server_outages", 0):
        table.add_row(
            "server outages waited out",
            f"{summary.server_outages} ({summary.server_wait_s:.0f} s)",
        )
    if getattr(summary, "lock_waits", 0):
        table.add_row("commits that waited for a locked database", str(summary.lock_waits))
    table.add_row("turns", str(summary.turns))
    table.add_row("model calls", str(summary.calls))
    table.add_row("completion tokens", str(summary.completion_tokens))
    table.add_row("elapsed", f"{summary.elapsed_s:.1f} s")
    table.add_row(
        "throughput", f"{summary.turns_per_s:.1f} turns/s, {summary.tokens_per_s:.1f} tokens/s"
    )
    out.print(table)
    out.print(
        f'Read it: personae sql {summary.db} "SELECT episode_id, speaker, text FROM transcript LIMIT 10"',
        highlight=False,
        soft_wrap=True,
    )


@app.command()
def sql(
    db: Annotated[Path, typer.Argument(help="A personae database.")],
    query: Annotated[str, typer.Argument(help="One SQL statement (read-only).")],
    format: Annotated[Format, typer.Option("--format", "-f", help="Output format.")] = Format.table,
) -> None:
    """Run one read-only SQL statement on a database and print the rows.

    Nothing is created or changed: writes, ATTACH, DETACH, VACUUM and pragmas
    that set something are refused (exit 2). Ctrl-C stops a long query (exit 130).
    """
    from personae.store.readonly import query as run_query

    try:
        columns, rows = run_query(db, query)
        print_rows(columns, rows, format)
    except KeyboardInterrupt:
        err.print("interrupted: the query was stopped; nothing was changed.", highlight=False)
        raise typer.Exit(130) from None


def print_rows(
    columns: list[str], rows: list[tuple[Any, ...]], format: Format = Format.table
) -> None:
    """Print query results as a table, CSV or JSON.

    A BLOB is shown as SQLite's hex literal ``x'00ff'`` (shortened in a table)
    and written in JSON as ``{"base64": "AP8="}``. JSON gives a repeated column
    name a suffix (``a``, ``a_2``) and writes an infinite float as ``null``; see
    :func:`personae.store.readonly.json_records`.
    """
    from rich.text import Text

    from personae.store.readonly import blob_literal, json_records

    if format is Format.csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows(
            [blob_literal(v) if isinstance(v, bytes) else v for v in row] for row in rows
        )
    elif format is Format.json:
        sys.stdout.write(json.dumps(json_records(columns, rows), indent=1, allow_nan=False))
        sys.stdout.write("\n")
    else:
        table = Table(show_lines=False)
        for column in columns:  # Text, not str: brackets in names and values are not markup
            table.add_column(Text(column))
        for row in rows:
            table.add_row(
                *(
                    Text("NULL", style="dim")
                    if v is None
                    else Text(blob_literal(v, max_bytes=16) if isinstance(v, bytes) else str(v))
                    for v in row
                )
            )
        out.print(table)
        out.print(f"[dim]{len(rows)} row(s)[/]")


@app.command()
def show(db: Annotated[Path, typer.Argument(help="A personae database.")]) -> None:
    """Summarise the experiments and episodes in a database."""
    from personae.store.readonly import query as run_query

    columns, rows = run_query(
        db,
        """
        SELECT x.id AS experiment, x.name, x.scenario, x.model, x.seed,
               COUNT(e.id) AS episodes,
               SUM(e.status = 'complete') AS complete,
               SUM(e.status = 'failed') AS failed,
               SUM(e.status NOT IN ('complete', 'failed')) AS unfinished,
               (SELECT COUNT(*) FROM turns t JOIN episodes e2 ON e2.id = t.episode_id
                 WHERE e2.experiment_id = x.id AND e2.status = 'complete') AS turns,
               (SELECT ROUND(AVG(e3.n_turns), 1) FROM episodes e3
                 WHERE e3.experiment_id = x.id AND e3.status = 'complete') AS mean_turns,
               (SELECT COALESCE(SUM(c.completion_tokens), 0) FROM llm_calls c
                 JOIN episodes e4 ON e4.id = c.episode_id WHERE e4.experiment_id = x.id) AS tokens,
               x.created_at
        FROM experiments x LEFT JOIN episodes e ON e.experiment_id = x.id
        GROUP BY x.id ORDER BY x.id
        """,
    )
    if not rows:
        out.print(f"{db} holds no experiments yet.")
    for row in rows:
        table = Table(title=f"experiment {row[0]}: {row[1]}", show_header=False)
        for key, value in zip(columns[1:], row[1:], strict=True):
            table.add_row(key, "NULL" if value is None else str(value))
        out.print(table)
    _, reasons = run_query(
        db,
        "SELECT experiment_id, COALESCE(end_reason, error, status), COUNT(*) FROM episodes "
        "GROUP BY 1, 2 ORDER BY 1, 3 DESC",
    )
    print_rows(["experiment", "end reason / error", "episodes"], reasons)


@app.command()
def report(
    db: Annotated[Path, typer.Argument(help="A personae database.")],
    out_path: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="HTML file to write (default: <db>.report.html)."),
    ] = None,
) -> None:
    """Write an HTML report: experiments, trait drift, measurement quality, with figures."""
    from personae.report.page import write_report
    from personae.store.database import Database
    from personae.store.readonly import connect_readonly

    connect_readonly(db).close()  # a missing or foreign file fails here, with its message
    Database(db).close()  # brings a database written by an older version up to date
    path = write_report(db, out_path)
    out.print(f"Report written to {path}")


@app.command()
def instruments() -> None:
    """List the bundled psychometric instruments."""
    from personae.measures.instruments import list_instruments, load_instrument

    table = Table("name", "items", "options", "scoring", "title")
    for name in list_instruments():
        inst = load_instrument(name)
        options = f"{inst.options[0].value}-{inst.options[-1].value}"
        table.add_row(name, str(len(inst.items)), options, inst.scoring, inst.title)
    out.print(table)


@app.command()
def serve(
    port: Annotated[int | None, typer.Option(help="Port (default: a free one).")] = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    model: Annotated[
        str | None, typer.Option(help="Model folder (default: the bundled SmolLM2-135M-Instruct).")
    ] = None,
    served_model_name: Annotated[str, typer.Option(help="Name clients ask for.")] = "smollm2",
    log: Annotated[Path | None, typer.Option(help="Server log file.")] = None,
    prefix_caching: Annotated[
        bool, typer.Option(help="Turn vLLM's prefix cache on (faster; no exact replay by seed).")
    ] = False,
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="PERSONAE_API_KEY",
            show_default=False,
            help="Key clients must send (their API key); required with a --host other than "
            "loopback.",
        ),
    ] = None,
) -> None:
    """Start the embedded vLLM server and keep it running until Ctrl-C.

    A --host other than loopback (e.g. 0.0.0.0) makes the server reachable from
    the network; it is refused without --api-key (or PERSONAE_API_KEY).
    """
    from personae.llm.server import EmbeddedServer

    server = EmbeddedServer(  # refuses a network host without a key, before starting anything
        model,
        served_model_name=served_model_name,
        host=host,
        port=port,
        log_path=log,
        prefix_caching=prefix_caching,
        api_key=api_key,
    )
    server.serve_forever(echo=lambda line: err.print(line, highlight=False))


@app.command("prepare-model")
def prepare_model() -> None:
    """Convert the bundled default model once into the cache (run by make)."""
    from personae.llm.server import prepare_default_model

    path = prepare_default_model()
    out.print(f"Default model ready at {path}", highlight=False)


@app.command()
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
            "group (a discussion on a small-world graph) or all."
        ),
    ] = "conversation",
    inventory_agents: Annotated[
        int, typer.Option(min=1, help="Agents answering the 120 items in the inventory case.")
    ] = 2,
    group_agents: Annotated[
        int, typer.Option(min=3, help="Members of the discussion in the group case.")
    ] = 50,
) -> None:
    """Measure framework throughput against the raw server on the same requests."""
    from personae.bench import BenchConfig, print_report, run_bench

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
    )
    report = run_bench(config, console=err)
    if json_:
        sys.stdout.write(json.dumps(report, indent=1) + "\n")
    else:
        print_report(report, out)


@app.command()
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


@app.command()
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


@app.command()
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


@app.command()
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


def _unwrap_help() -> None:
    """Let ``--help`` use the terminal's width: one line per docstring paragraph.

    Typer keeps a docstring's source line breaks, so help text would stay
    wrapped at the source's ~80 columns however wide the terminal is; rich
    then wraps each paragraph at the terminal's width.
    """
    import inspect

    for info in app.registered_commands:
        if info.help is None and info.callback is not None and info.callback.__doc__:
            paragraphs = (inspect.getdoc(info.callback) or "").split("\n\n")
            info.help = "\n\n".join(" ".join(p.split()) for p in paragraphs)


_unwrap_help()

if __name__ == "__main__":
    main()
