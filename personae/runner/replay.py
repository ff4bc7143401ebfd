"""Replay modes: what "the same seed" promises, and what the server does for it.

A run is made in one of two modes, recorded with its experiment
(``experiments.replay``):

- ``exact`` (the default): the embedded server runs with vLLM's prefix cache
  off, so a request is computed the same way every time it is sent; with one
  request in flight (``--max-in-flight 1``) the same seed gives the same
  transcript, token for token. Every prompt token is computed afresh.
- ``fast``: the embedded server runs with its prefix cache on. A prompt whose
  beginning the server has seen lately (the persona card, the memory so far)
  is not computed again, which is most of what the long studies send. A
  cached prefix is computed in other chunks than a fresh one and differs in
  its last bits, so a sampled token can change after a few turns: the same
  seed gives the same design (parameters, episode seeds, turn order, who is
  treated, which student answers on which day, every sampling seed) and a
  draw from the same distribution of transcripts, not the same tokens.
  Analyses that compare conditions are unaffected; a single transcript cannot
  be replayed.

Against a server the run did not start (``--base-url``, named endpoints) the
mode cannot switch the server's cache; it is recorded as the user's choice,
and the run says so when a vLLM server reports a prefix cache that contradicts
it (:func:`server_prefix_caching`). For exact replay with the cache on, vLLM
offers batch-invariant kernels on some GPUs (``VLLM_BATCH_INVARIANT=1``, see
docs/scale-out.md).

Example:
    >>> check_replay("fast")
    'fast'
    >>> prefix_caching_for("exact"), prefix_caching_for("fast")
    (False, True)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from personae.errors import ConfigError
from personae.llm.backends import server_prefix_caching

if TYPE_CHECKING:
    from collections.abc import Callable

    from personae.runner.experiment import Experiment
    from personae.store.database import Database

__all__ = [
    "DEFAULT_REPLAY",
    "REPLAY_MODES",
    "Replay",
    "check_replay",
    "prefix_caching_for",
    "replay_conflict",
    "replay_for",
    "resolve_replay",
    "server_prefix_caching",
    "warn_replay",
]

Replay = Literal["exact", "fast"]
REPLAY_MODES: tuple[Replay, ...] = ("exact", "fast")
DEFAULT_REPLAY: Replay = "exact"


def check_replay(mode: str) -> Replay:
    """``mode`` if it is a replay mode.

    Raises:
        ConfigError: It is not ``exact`` or ``fast``.
    """
    if mode not in REPLAY_MODES:
        raise ConfigError(
            f"--replay must be 'exact' (same seed, same tokens; prefix cache off) or "
            f"'fast' (prefix cache on; same seed, same design and the same distribution "
            f"of transcripts), got {mode!r}"
        )
    return mode


def prefix_caching_for(mode: str) -> bool:
    """Whether a server started for a run in ``mode`` turns its prefix cache on."""
    return check_replay(mode) == "fast"


def replay_conflict(recorded: str | None, asked: str | None, label: str) -> str | None:
    """Why an experiment recorded in one mode may not go on in another; None when it may.

    Args:
        recorded: The mode stored with the experiment (None: a new experiment,
            or one made before modes were recorded, which ran ``exact``).
        asked: The mode asked for now (None: whatever was recorded).
        label: The experiment's name, for the message.
    """
    if asked is None or recorded is None or recorded == asked:
        return None
    return (
        f"Experiment {label!r} in this database was run with --replay {recorded}; its "
        f"remaining episodes cannot be run with --replay {asked}, or the experiment would "
        f"mix episodes that replay exactly with episodes that do not. Run it again with "
        f"--replay {recorded} (or without --replay), or start another database or "
        f"experiment name for the {asked} run."
    )


def replay_for(database: Database, identity: str, asked: str | None, label: str) -> Replay:
    """The mode a run of the experiment ``identity`` in ``database`` uses.

    The mode asked for, else the one the experiment was run in, else ``exact``.

    Raises:
        ConfigError: ``asked`` differs from the mode recorded (:func:`replay_conflict`).
    """
    found = database.find_experiment(identity)
    recorded = database.replay_of(found) if found is not None else None
    conflict = replay_conflict(recorded, asked, label)
    if conflict:
        raise ConfigError(conflict)
    return check_replay(asked or recorded or DEFAULT_REPLAY)


def resolve_replay(
    experiment: Experiment, db: str | Path, model_name: str | None, asked: str | None
) -> Replay:
    """:func:`replay_for` ``experiment`` in the file ``db``, before any server starts.

    Raises:
        ConfigError: ``asked`` is no mode, or differs from the one recorded.
    """
    if asked is not None:
        check_replay(asked)
    from personae.store.database import Database

    database = Database(db)
    try:
        return replay_for(database, experiment.identity(model_name), asked, experiment.label)
    finally:
        database.close()


def warn_replay(mode: str, server_info: dict[str, Any] | None, say: Callable[..., Any]) -> None:
    """Say so when the server's prefix cache contradicts the run's replay mode.

    ``server_info["prefix_caching"]`` is what the embedded server was started
    with, or what a vLLM server reported on ``/metrics``; absent, nothing is said.
    """
    cache = (server_info or {}).get("prefix_caching")
    if mode == "exact" and cache is True:
        say(
            "[yellow]The server has its prefix cache on[/]: this run is recorded as "
            "--replay exact, but the same seed will not give the same tokens again. Start "
            "the server without the cache (vLLM: --no-enable-prefix-caching), or run with "
            "--replay fast.",
            highlight=False,
        )
    elif mode == "fast" and cache is False:
        say(
            "[dim]The server has its prefix cache off: --replay fast is recorded, but "
            "every prompt token is computed afresh (vLLM: --enable-prefix-caching).[/]",
            highlight=False,
        )
