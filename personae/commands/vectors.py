"""``personae vectors build|show`` and ``personae monitor``: trait vectors from inside the model.

The commands load torch and the model only when run, so ``personae --help``
stays fast. See docs/vectors.md.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from personae.commands.common import err, out

if TYPE_CHECKING:
    from personae.llm.hf import TransformersModel

__all__ = ["build", "monitor", "show", "vectors_app"]

vectors_app = typer.Typer(
    help="Trait vectors: directions in the model's residual stream, for monitoring and steering.",
    no_args_is_help=True,
)


def _traits(values: list[str] | None) -> list[str]:
    return [name.strip() for value in values or [] for name in value.split(",") if name.strip()]


def _model(model_path: Path | None, device: str | None, max_batch: int) -> TransformersModel:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from personae.llm.hf import TransformersModel

    err.print("[dim]Loading the model...[/]")
    return TransformersModel(model_path, device=device, max_batch=max_batch)


@vectors_app.command()
def build(
    out_file: Annotated[
        Path, typer.Option("--out", help="The vectors file to write (.safetensors).")
    ],
    model_path: Annotated[
        Path | None,
        typer.Option(help="A Hugging Face model folder (default: the bundled model)."),
    ] = None,
    traits: Annotated[
        list[str] | None,
        typer.Option(
            "--traits",
            help="Traits to build, comma-separated or repeated (default: the Big Five domains, "
            "or every trait of --trait-file).",
        ),
    ] = None,
    trait_file: Annotated[
        Path | None, typer.Option(help="A TOML file of your own traits ([[trait]] tables).")
    ] = None,
    questions: Annotated[int, typer.Option(min=3, help="Questions per trait.")] = 12,
    source: Annotated[
        str,
        typer.Option(help="'prompt': last prompt token (fast); 'response': mean over a reply."),
    ] = "prompt",
    seed: Annotated[int, typer.Option(help="Split and sampling seed.")] = 0,
    rollouts: Annotated[
        int, typer.Option(min=1, help="With --source response: replies per prompt and question.")
    ] = 1,
    judge: Annotated[
        bool,
        typer.Option(
            help="With --source response: keep only replies a judge rates as showing the pole "
            "(high >= 4, low <= 2 on 1-5)."
        ),
    ] = False,
    judge_endpoint: Annotated[
        str | None,
        typer.Option(
            help="The judge as URL#MODEL of an OpenAI-compatible server (default: the model "
            "the vectors are built from)."
        ),
    ] = None,
    device: Annotated[
        str | None, typer.Option(help="cpu or cuda (default: cuda if present).")
    ] = None,
    max_batch: Annotated[int, typer.Option(min=1, help="Prompts per forward pass.")] = 16,
) -> None:
    """Build a vector per trait and layer from contrastive prompts; choose each trait's layer."""
    from personae.vectors import Recipe, build_vectors, resolve_traits, save_vectors

    specs = resolve_traits(_traits(traits), str(trait_file) if trait_file else None)
    recipe = Recipe(
        source=source,  # type: ignore[arg-type]
        questions=questions,
        seed=seed,
        rollouts=rollouts,
        judge=judge or judge_endpoint is not None,
    )
    model = _model(model_path, device, max_batch)
    rater = None
    if judge_endpoint is not None:
        from personae.llm.endpoints import parse_endpoint_url
        from personae.llm.wrappers import build_client

        url, name = parse_endpoint_url(judge_endpoint)
        if name is None:
            from personae.errors import ConfigError

            raise ConfigError(f"--judge-endpoint {judge_endpoint!r} needs a model: URL#MODEL")
        rater = functools.partial(build_client, url, name)
    vectors = build_vectors(
        model, specs, recipe, say=lambda line: err.print(f"[dim]{line}[/]"), judge=rater
    )
    save_vectors(vectors, out_file)
    out.print(f"Wrote {len(vectors.traits)} trait vectors to {out_file}.")


@vectors_app.command()
def show(file: Annotated[Path, typer.Argument(help="A vectors file.")]) -> None:
    """Print each trait's chosen layer and held-out separation."""
    from rich.table import Table

    from personae.vectors import load_vectors

    vectors = load_vectors(file)
    model = vectors.model
    out.print(
        f"Model {model.get('name')} ({model.get('num_layers')} layers, width "
        f"{model.get('hidden_size')}, fingerprint {str(model.get('fingerprint'))[:12]}); "
        f"source: {vectors.recipe.get('source')}"
    )
    table = Table("trait", "layer", "held-out d", "AUC", "best d elsewhere")
    for name, trait in vectors.traits.items():
        chosen = next(s for s in trait.separation if s["layer"] == trait.layer)
        others = [s for s in trait.separation if s["layer"] != trait.layer]
        runner = max(others, key=lambda s: s["cohen_d"]) if others else None
        table.add_row(
            name,
            str(trait.layer),
            f"{chosen['cohen_d']:.2f}",
            f"{chosen['auc']:.2f}",
            f"{runner['cohen_d']:.2f} (layer {runner['layer']})" if runner else "",
        )
    out.print(table)


def monitor(
    db: Annotated[Path, typer.Argument(help="A personae database with complete episodes.")],
    vectors_file: Annotated[Path, typer.Option("--vectors", help="A trait vectors file.")],
    model_path: Annotated[
        Path | None,
        typer.Option(
            help="The model folder the vectors were built on (default: the bundled model)."
        ),
    ] = None,
    episode: Annotated[
        list[int] | None, typer.Option(help="Only these episode ids (repeatable).")
    ] = None,
    device: Annotated[
        str | None, typer.Option(help="cpu or cuda (default: cuda if present).")
    ] = None,
) -> None:
    """Replay stored transcripts through the model and record trait projections as states rows.

    Episodes already monitored with the same vectors file are skipped.
    """
    from personae.errors import ConfigError
    from personae.store.database import Database
    from personae.vectors import load_vectors
    from personae.vectors.monitor import monitor_database

    if not db.is_file():
        raise ConfigError(f"there is no database at {db}")
    vectors = load_vectors(vectors_file)
    model = _model(model_path, device, 8)
    database = Database(db)
    summary = monitor_database(
        database,
        model,
        vectors,
        episodes=episode,
        say=lambda line: err.print(f"[dim]{line}[/]"),
    )
    out.print(
        f"Monitored {summary.episodes} episodes ({summary.turns} turns, {summary.rows} states "
        f"rows) in {summary.seconds:.1f} s ({summary.turns_per_second:.1f} turns/s); "
        f"{summary.skipped} already monitored with these vectors were skipped."
    )
