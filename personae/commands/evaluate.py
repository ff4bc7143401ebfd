"""``personae evaluate``: rate stored episodes with an evaluator (an LLM judge).

Exit codes: 0 done, 2 bad input (nothing rated), 3 some judge calls failed
(what succeeded is kept; rerun to finish), 130 interrupted (what finished is kept).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from personae.commands.common import EXIT_EPISODES_FAILED, err, out
from personae.errors import ConfigError, PersonaeError

__all__ = ["evaluate"]

_INTERRUPTED = (
    "Interrupted: every rating finished so far is kept. Run the same command again to finish."
)


def evaluate(
    db: Annotated[Path, typer.Argument(help="A personae database with complete episodes.")],
    evaluator: Annotated[
        str,
        typer.Option(
            "--evaluator",
            help="A built-in evaluator (sotopia, counselor-quality, client-fidelity, "
            "persona-consistency, turn-safety) or a TOML file ending in .toml.",
        ),
    ],
    judge_endpoint: Annotated[
        str | None,
        typer.Option(
            help="The judge: URL#MODEL of an OpenAI-compatible server, or 'embedded' "
            "(default: start the embedded vLLM server)."
        ),
    ] = None,
    samples: Annotated[
        int,
        typer.Option(
            min=1, help="Ratings per item, each with its own seed (2+ measure agreement)."
        ),
    ] = 1,
    temperature: Annotated[
        float, typer.Option(min=0.0, max=2.0, help="The judge's temperature.")
    ] = 0.7,
    max_tokens: Annotated[int, typer.Option(min=16, help="Most tokens per judge answer.")] = 200,
    max_in_flight: Annotated[int, typer.Option(min=1, help="Judge calls in flight at most.")] = 16,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    server_log: Annotated[
        Path | None, typer.Option(help="Log file of the embedded server, when one is started.")
    ] = None,
    endpoints_file: Annotated[
        Path | None,
        typer.Option(
            "--endpoints",
            help="TOML file of named endpoints; --judge-endpoint may then name one "
            "(see docs/endpoints.md).",
        ),
    ] = None,
) -> None:
    """Rate the complete episodes of DB with an evaluator; rerunning skips what is stored.

    Scores go to the table ``evaluations`` (view ``evaluation_scores``), the
    judge's calls to ``llm_calls`` with ``purpose = 'evaluate'``. With
    ``--samples 2`` or more the judge's agreement with itself is printed per
    dimension (Krippendorff's alpha, ICC).
    """
    try:
        code = _evaluate(
            db,
            evaluator,
            judge_endpoint,
            samples,
            temperature,
            max_tokens,
            max_in_flight,
            progress,
            server_log,
            endpoints_file,
        )
    except PersonaeError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        err.print(_INTERRUPTED)
        raise typer.Exit(130) from None
    if code:
        raise typer.Exit(code)


def _evaluate(
    db: Path,
    name: str,
    judge_endpoint: str | None,
    samples: int,
    temperature: float,
    max_tokens: int,
    max_in_flight: int,
    progress: bool,
    server_log: Path | None,
    endpoints_file: Path | None = None,
) -> int:
    from personae.evaluate.builtins import evaluator as find_evaluator
    from personae.llm.urls import redact_url

    chosen = find_evaluator(name)
    if not db.is_file():
        raise ConfigError(
            f"no database {db}; give the SQLite file a run wrote (personae run ... --db FILE)."
        )
    url, model_name = _judge(judge_endpoint, endpoints_file)
    base_url = None if url == "embedded" else url
    stored_endpoint = "embedded" if base_url is None else redact_url(base_url)
    if base_url is None and server_log is None:
        server_log = db.parent / "vllm.log"
    return asyncio.run(
        _run(
            db,
            chosen,
            base_url,
            model_name,
            stored_endpoint,
            samples,
            temperature,
            max_tokens,
            max_in_flight,
            progress,
            server_log,
        )
    )


def _judge(judge_endpoint: str | None, endpoints_file: Path | None) -> tuple[str, str | None]:
    """``(URL or "embedded", model)`` of ``--judge-endpoint``: URL#MODEL, or a declared name."""
    from personae.llm.endpoints import load_endpoints, parse_endpoint_url

    if not judge_endpoint:
        return "embedded", None
    declared = {e.name: e for e in (load_endpoints(endpoints_file) if endpoints_file else [])}
    if judge_endpoint in declared:
        endpoint = declared[judge_endpoint]
        return endpoint.base_url[0], endpoint.model
    if "://" not in judge_endpoint and not judge_endpoint.startswith("embedded"):
        known = ", ".join(declared) or "none; declare them in a file given with --endpoints"
        raise ConfigError(
            f"--judge-endpoint {judge_endpoint!r} is neither a URL (http://host:port/v1#model), "
            f"'embedded', nor a declared endpoint (declared: {known})."
        )
    return parse_endpoint_url(judge_endpoint)


async def _run(
    db: Path,
    chosen: object,
    base_url: str | None,
    model_name: str | None,
    stored_endpoint: str,
    samples: int,
    temperature: float,
    max_tokens: int,
    max_in_flight: int,
    progress: bool,
    server_log: Path | None,
) -> int:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from personae.evaluate.definition import Evaluator
    from personae.evaluate.run import evaluate_database
    from personae.llm.backends import connected_model
    from personae.store.database import Database

    assert isinstance(chosen, Evaluator)
    database = Database(db)
    bar = Progress(
        TextColumn(f"evaluate {chosen.name}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=not progress,
        transient=True,
    )
    task = bar.add_task("ratings", total=None)
    summary = None
    try:
        async with connected_model(
            base_url=base_url,
            model_name=model_name,
            max_in_flight=max_in_flight,
            console=err,
            server_log=server_log,
        ) as (model, _info):
            with bar:
                summary = await evaluate_database(
                    database,
                    chosen,
                    model,
                    samples=samples,
                    temperature=temperature,
                    max_tokens=max_tokens,
                    max_in_flight=max_in_flight,
                    judge_endpoint=stored_endpoint,
                    judge_model=model_name or model.name,
                    on_progress=lambda done, total: bar.update(task, completed=done, total=total),
                )
        _print_agreement(db, chosen.name, chosen.version)
    except (KeyboardInterrupt, asyncio.CancelledError):
        err.print(_INTERRUPTED)
        return 130
    finally:
        database.close()
    err.print(
        f"{summary.evaluator}: {summary.items} items x {samples} samples; {summary.skipped} already "
        f"stored, {summary.done} rated now ({summary.invalid} with an unreadable dimension), "
        f"{summary.failed} failed, in {summary.seconds:.1f} s -> {db}",
        highlight=False,
    )
    if not summary.items:
        who = f" ({', '.join(chosen.who)})" if chosen.who else ""
        err.print(
            f"Nothing to rate: no complete episode of {db} has a turn by an agent this "
            f"evaluator rates{who}.",
            highlight=False,
        )
    if summary.failed:
        err.print(f"[red]first error:[/] {summary.errors[0]}; rerun to retry.", highlight=False)
        return EXIT_EPISODES_FAILED
    return 0


def _print_agreement(db: Path, name: str, version: str) -> None:
    from rich.table import Table

    from personae.evaluate.report import evaluation_frames

    _, agreed = evaluation_frames(db)
    if agreed.is_empty():
        return
    rows = agreed.filter(agreed["evaluator"] == f"{name}@{version}")
    table = Table(
        "dimension", "items", "raters", "alpha", "ICC(2,1)", "ICC(2,k)", title="judge agreement"
    )
    for row in rows.iter_rows(named=True):
        table.add_row(
            row["dimension"],
            str(row["items"]),
            str(row["raters"]),
            *("-" if row[k] is None else f"{row[k]:.2f}" for k in ("alpha", "icc", "icc_k")),
        )
    out.print(table)
