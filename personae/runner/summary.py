"""What a run did: :class:`RunSummary` (re-exported by :mod:`personae.runner.run`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from personae.runner.replay import DEFAULT_REPLAY

__all__ = ["RunSummary"]


@dataclass
class RunSummary:
    """What a run did.

    Attributes:
        reset_incomplete: Episodes found complete but missing rows, run again.
        lost: Episode id -> why its rows could not be stored (those episodes
            count as failed and are run again by the next run).
        server_outages: Times the server could not be reached and was waited out.
        server_wait_s: Seconds spent waiting for it.
        lock_waits: Commits that found the database locked by another program.
        calls_by_endpoint: Model calls stored by this run, per endpoint name.
        calls_by_replica: Those answered by a replica of a pool, per replica.
        prompt_tokens: Prompt tokens of this run's stored calls.
        cached_tokens: Those the servers took from their prefix caches (None:
            no server said).
        replay: The experiment's replay mode (:mod:`personae.runner.replay`).
    """

    db: str
    experiment_id: int
    total: int
    already_complete: int = 0
    completed: int = 0
    failed: int = 0
    interrupted: bool = False
    turns: int = 0
    calls: int = 0
    completion_tokens: int = 0
    elapsed_s: float = 0.0
    errors: list[str] = field(default_factory=list)
    reset_incomplete: int = 0
    lost: dict[int, str] = field(default_factory=dict)
    completed_ids: list[int] = field(default_factory=list, repr=False)
    server_outages: int = 0
    server_wait_s: float = 0.0
    lock_waits: int = 0
    calls_by_endpoint: dict[str, int] = field(default_factory=dict)
    calls_by_replica: dict[str, int] = field(default_factory=dict)
    prompt_tokens: int = 0
    cached_tokens: int | None = None
    replay: str = DEFAULT_REPLAY

    @property
    def complete(self) -> int:
        """Episodes complete in the database after this run."""
        return self.already_complete + self.completed

    @property
    def remaining(self) -> int:
        return self.total - self.complete

    @property
    def turns_per_s(self) -> float:
        return self.turns / self.elapsed_s if self.elapsed_s else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.elapsed_s if self.elapsed_s else 0.0
