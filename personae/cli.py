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
from rich.table import Table

from personae.commands.common import EXIT_EPISODES_FAILED, err, out
from personae.commands.evaluate import evaluate
from personae.commands.tools import bench, browse, demo, export, prompt
from personae.commands.vectors import monitor, vectors_app
from personae.errors import ConfigError, PersonaeError
from personae.llm.wrappers import DEFAULT_SERVER_WAIT, DEFAULT_TIMEOUT

__all__ = ["EXIT_EPISODES_FAILED", "app", "main", "print_rows", "print_summary"]

app = typer.Typer(
    help="Persona-grounded multi-agent social simulation on a local vLLM server.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


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
    replay: Annotated[
        str | None,
        typer.Option(
            help="exact: the embedded server's prefix cache off, so the same seed replays "
            "the same tokens (with --max-in-flight 1). fast: the cache on, so prompt "
            "beginnings the server has just seen are not computed again; the same seed "
            "gives the same design and a draw from the same distribution of transcripts "
            "(docs/performance.md). Default: the mode the experiment was run in, else exact.",
            show_default=False,
        ),
    ] = None,
    prefix_caching: Annotated[
        bool, typer.Option(hidden=True, help="Deprecated: --replay fast.")
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
    endpoint: Annotated[
        list[str] | None,
        typer.Option(
            "--endpoint",
            "-e",
            help="NAME=URL[#MODEL] named model endpoint (URL 'embedded': the run's own server "
            "under another served name; URL1,URL2: replicas). Repeatable.",
        ),
    ] = None,
    endpoints_file: Annotated[
        Path | None,
        typer.Option("--endpoints", help="TOML file of named endpoints (see docs/endpoints.md)."),
    ] = None,
    bind: Annotated[
        list[str] | None,
        typer.Option(
            "--bind",
            "-b",
            help="WHO=ENDPOINT: an agent's name or role (or 'judge') speaks through that "
            "endpoint; the same as --set WHO.endpoint=ENDPOINT.",
        ),
    ] = None,
    executor: Annotated[
        str,
        typer.Option(help="Where episodes run: local (this process) or ray (Ray workers)."),
    ] = "local",
    backend: Annotated[
        str | None,
        typer.Option(
            help="Model backend by name: openai (with --base-url), embedded (the default "
            "without it), or transformers (the model in this process; docs/vectors.md)."
        ),
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(
            help="With --executor ray: auto (the cluster started on this machine), HOST:PORT, "
            "or none to start a local cluster for the run (docs/scale-out.md)."
        ),
    ] = None,
) -> None:
    """Run a Monte Carlo experiment and log every turn to SQLite.

    Exit codes: 0 every episode complete, 2 bad input (nothing run), 3 some
    episodes failed (the rest are kept; rerun to retry them), 130 interrupted.
    """
    from personae.llm.endpoints import parse_binding
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
    declared = _endpoints(endpoint, endpoints_file)
    for who, to in (parse_binding(b) for b in bind or []):
        key = f"{who}.endpoint"
        if key in grid_values:
            raise ConfigError(
                f"{key} is given both with --bind and with --grid/--set; give it once."
            )
        grid_values[key] = [to]
    experiment = as_experiment(
        target_obj, replicates=replicates, seed=seed, name=name, grid=grid_values
    )
    from personae.runner.executors import executor_from_options

    runner = executor_from_options(executor, ray_address)
    known = ["default", *(e.name for e in declared)]
    unknown = [n for n in experiment.endpoint_names() if n not in known]
    if unknown:
        raise ConfigError(
            f"the experiment binds agents to the endpoint(s) {', '.join(map(repr, unknown))}, "
            f"which are not declared; declared: {', '.join(known)}. Declare one with "
            "--endpoint NAME=URL#MODEL or in a file given with --endpoints."
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
        replay=_replay_option(replay, prefix_caching),
        timeout=timeout,
        retries=retries,
        server_wait=server_wait,
        target=target,
        endpoints=declared,
        executor=runner,
        backend=backend,
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


def _replay_option(replay: str | None, prefix_caching: bool) -> str | None:
    """``--replay``, with the deprecated ``--prefix-caching`` read as ``--replay fast``."""
    from personae.runner.replay import check_replay

    if prefix_caching:
        err.print("[yellow]--prefix-caching is deprecated[/]: use --replay fast.")
        return check_replay(replay) if replay is not None else "fast"
    return check_replay(replay) if replay is not None else None


def _endpoints(flags: list[str] | None, path: Path | None) -> list[Any]:
    """The endpoints of ``--endpoints FILE`` then ``--endpoint`` flags; a flag wins over the file."""
    from personae.llm.endpoints import load_endpoints, parse_endpoint, unique

    named = {e.name: e for e in (load_endpoints(path) if path is not None else [])}
    given = list(unique(parse_endpoint(text) for text in flags or []).values())
    named.update({e.name: e for e in given})
    return list(named.values())


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
    prompt, cached = getattr(summary, "prompt_tokens", 0), getattr(summary, "cached_tokens", None)
    if prompt:
        share = f" ({cached / prompt:.0%} from the prefix cache)" if cached is not None else ""
        table.add_row("prompt tokens", f"{prompt}{share}")
    if hasattr(summary, "replay"):
        table.add_row("replay", summary.replay)
    by_endpoint = getattr(summary, "calls_by_endpoint", {})
    if len(by_endpoint) > 1 or set(by_endpoint) - {"default"}:
        table.add_row("calls per endpoint", ", ".join(f"{k} {v}" for k, v in by_endpoint.items()))
    for replica, calls in getattr(summary, "calls_by_replica", {}).items():
        table.add_row(f"calls answered by {replica}", str(calls))
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

    _, present = run_query(db, "SELECT name FROM pragma_table_info('experiments')")
    replay = "x.replay" if ("replay",) in present else "NULL"  # NULL before 0.3.0
    columns, rows = run_query(
        db,
        f"""
        SELECT x.id AS experiment, x.name, x.scenario, x.model, x.seed, {replay} AS replay,
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
    _show_endpoints(db)


def _show_endpoints(db: Path) -> None:
    """Calls, tokens and latency per endpoint and model (and per replica of a pool)."""
    from personae.store.readonly import query as run_query

    _, present = run_query(db, "SELECT name FROM pragma_table_info('llm_calls')")
    columns = {row[0] for row in present}
    endpoint = "COALESCE(c.endpoint, 'default')" if "endpoint" in columns else "'default'"
    replica = "c.replica" if "replica" in columns else "NULL"
    cached = "SUM(c.cached_tokens)" if "cached_tokens" in columns else "NULL"
    head, rows = run_query(
        db,
        f"""
        SELECT e.experiment_id AS experiment, {endpoint} AS endpoint, c.model,
               COUNT(*) AS calls, SUM(c.error IS NOT NULL) AS failed,
               COALESCE(SUM(c.prompt_tokens), 0) AS prompt_tokens,
               {cached} AS cached_tokens,
               COALESCE(SUM(c.completion_tokens), 0) AS completion_tokens,
               ROUND(AVG(c.latency_ms)) AS mean_latency_ms,
               ROUND(MAX(c.latency_ms)) AS max_latency_ms
        FROM llm_calls c JOIN episodes e ON e.id = c.episode_id
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        """,
    )
    if rows:
        out.print("Model calls per endpoint")
        print_rows(head, rows)
    head, rows = run_query(
        db,
        f"""
        SELECT e.experiment_id AS experiment, {endpoint} AS endpoint, {replica} AS replica,
               COUNT(*) AS calls, COUNT(DISTINCT c.episode_id) AS episodes
        FROM llm_calls c JOIN episodes e ON e.id = c.episode_id
        WHERE {replica} IS NOT NULL GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        """,
    )
    if rows:
        out.print("Model calls per replica")
        print_rows(head, rows)


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
    served_model_name: Annotated[
        list[str] | None,
        typer.Option(
            help="Name clients ask for; repeat it to serve the model under several names."
        ),
    ] = None,
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
        served_model_name=served_model_name or "smollm2",
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


for _command in (evaluate, monitor, bench, demo, browse, export, prompt):
    app.command()(_command)
app.add_typer(vectors_app, name="vectors")


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
