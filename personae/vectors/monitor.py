"""Activation monitoring: replay stored transcripts through the model and record trait projections.

``personae monitor DB --vectors FILE`` reads every complete episode's turns
and each agent's stored system prompt (``agents.system_prompt``), rebuilds
what the speaking agent saw before each of its turns (its system prompt, then
the session so far: its own lines as the assistant, the others' as the user)
and runs that, with the turn's own text appended, through the model once (no
generation; the start cue "(The conversation begins. You speak first.)"
stands in for an empty history, as in the run). Attention is causal, so one
forward pass over an agent's view of a whole session gives the states before
all of its turns: the cost grows with the length of a session, not with its
square. Per turn it records, for every trait of the vectors file, two
``states`` rows of the speaking agent with ``source='activation'``:

* ``vector:<trait>``: the projection of the last prompt-token activation on
  the trait's unit vector at its chosen layer, i.e. the state that produced
  the reply (the persona-vector paper's monitoring position);
* ``vector:<trait>:reply``: the same projection averaged over the reply's tokens.

``t`` is the turn's step and ``session`` its session; ``text`` holds the first
16 hex digits of the vectors file's SHA-256, which is how an episode already
monitored with the same file is recognised and skipped (resumable). Rows are
added with :class:`~personae.store.append.EpisodeAppender`, one commit per
episode, so an interrupted run leaves whole episodes only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import text

from personae.llm.base import Message
from personae.store.rows import StateRecord
from personae.vectors.vectorfile import TraitVectors

if TYPE_CHECKING:
    from personae.llm.hf import TransformersModel
    from personae.store.database import Database

__all__ = ["MAX_CONTEXT_TOKENS", "MonitorSummary", "Turn", "monitor_database", "turn_contexts"]

MAX_CONTEXT_TOKENS = 2048
"""Context longer than this is cut from the oldest history messages (the system prompt stays)."""

SOURCE = "activation"


@dataclass(frozen=True)
class Turn:
    """One stored turn, as the monitor reads it."""

    episode_id: int
    session: int
    step: int
    agent_id: int
    speaker: str
    content: str


@dataclass(frozen=True)
class MonitorSummary:
    """What one monitoring run did.

    Attributes:
        episodes: Episodes monitored now.
        skipped: Episodes already monitored with the same vectors file.
        turns: Turns measured now.
        rows: ``states`` rows added.
        seconds: Wall time of the measuring (model loading excluded).
    """

    episodes: int
    skipped: int
    turns: int
    rows: int
    seconds: float

    @property
    def turns_per_second(self) -> float:
        """Turns measured per second."""
        return self.turns / self.seconds if self.seconds > 0 else 0.0


def turn_contexts(
    turns: list[Turn], system_prompts: dict[int, str]
) -> list[tuple[Turn, list[Message], str]]:
    """For each turn, the speaker's prompt before it and the reply: ``(turn, messages, reply)``.

    The history is the turn's session so far, from the speaker's point of view.
    """
    out = []
    for index, turn in enumerate(turns):
        history: list[Message] = [
            {"role": "system", "content": system_prompts.get(turn.agent_id, "")}
        ]
        for earlier in turns[:index]:
            if earlier.session != turn.session:
                continue
            role = "assistant" if earlier.agent_id == turn.agent_id else "user"
            history.append({"role": role, "content": earlier.content})  # type: ignore[typeddict-item]
        if len(history) == 1:
            history.append(
                {"role": "user", "content": "(The conversation begins. You speak first.)"}
            )
        out.append((turn, history, turn.content))
    return out


def _fit(model: TransformersModel, messages: list[Message]) -> list[Message]:
    from personae.llm.hf_decode import prompt_ids

    while (
        len(messages) > 2 and len(prompt_ids(model, messages, generation=True)) > MAX_CONTEXT_TOKENS
    ):
        messages = [messages[0], *messages[2:]]
    return messages


def _read_out(
    vectors: TraitVectors, found: dict[int, np.ndarray], start: int, n_reply: int
) -> dict[str, tuple[float, float]]:
    """Projections at the token before ``start`` and over ``n_reply`` tokens from ``start``."""
    projections = {}
    for name, trait in vectors.traits.items():
        states = found[trait.layer]
        unit = trait.unit()
        before = float(states[start - 1] @ unit)
        reply_states = states[start : start + n_reply]
        after = float(reply_states.mean(0) @ unit) if len(reply_states) else before
        projections[name] = (before, after)
    return projections


def _project(
    model: TransformersModel,
    vectors: TraitVectors,
    contexts: list[tuple[Turn, list[Message], str]],
) -> list[dict[str, tuple[float, float]]]:
    """Per context, ``{trait: (prompt projection, reply projection)}``.

    Attention is causal, so one forward pass over an agent's whole view of a
    session (up to its last turn) holds the state before each of its turns and
    over each of its replies: a turn whose prompt is a token prefix of that
    view is read from the shared pass; any other (the opening turn with its
    start cue, a view beyond :data:`MAX_CONTEXT_TOKENS`) gets a pass of its own.
    """
    from personae.llm.hf_decode import prompt_ids

    layers = vectors.layers
    results: list[dict[str, tuple[float, float]] | None] = [None] * len(contexts)
    groups: dict[tuple[int, int], list[int]] = {}
    for index, (turn, _history, _reply) in enumerate(contexts):
        groups.setdefault((turn.session, turn.agent_id), []).append(index)

    def n_tokens(reply: str) -> int:
        return len(model.tokenizer(reply, add_special_tokens=False)["input_ids"])

    for indices in groups.values():
        _turn, last_history, last_reply = contexts[indices[-1]]
        view: list[Message] = [*last_history, {"role": "assistant", "content": last_reply}]
        view_ids = prompt_ids(model, view, generation=False)
        shared = []
        if len(view_ids) <= MAX_CONTEXT_TOKENS:
            for index in indices:
                prompt = prompt_ids(model, contexts[index][1], generation=True)
                if view_ids[: len(prompt)] == prompt:
                    shared.append((index, len(prompt)))
        if shared:
            (found,) = model.encode([view], layers, positions="all", add_generation_prompt=False)
            for index, start in shared:
                results[index] = _read_out(vectors, found, start, n_tokens(contexts[index][2]))
        for index in indices:
            if results[index] is not None:
                continue
            history = _fit(model, contexts[index][1])
            start = len(prompt_ids(model, history, generation=True))
            full: list[Message] = [*history, {"role": "assistant", "content": contexts[index][2]}]
            (found,) = model.encode([full], layers, positions="all", add_generation_prompt=False)
            results[index] = _read_out(vectors, found, start, n_tokens(contexts[index][2]))
    return [r for r in results if r is not None]


def _episodes(database: Database, digest: str) -> tuple[list[int], set[int]]:
    with database.engine.connect() as conn:
        complete = [
            int(r[0])
            for r in conn.execute(
                text("SELECT id FROM episodes WHERE status = 'complete' ORDER BY id")
            )
        ]
        done = {
            int(r[0])
            for r in conn.execute(
                text("SELECT DISTINCT episode_id FROM states WHERE source = :s AND text = :d"),
                {"s": SOURCE, "d": digest},
            )
        }
    return complete, done


def _read(database: Database, episode_id: int) -> tuple[list[Turn], dict[int, str]]:
    with database.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT t.episode_id, t.session, t.step, t.agent_id, a.name, t.content "
                "FROM turns t JOIN agents a ON a.id = t.agent_id "
                "WHERE t.episode_id = :e ORDER BY t.session, t.step, t.id"
            ),
            {"e": episode_id},
        ).all()
        prompts = {
            int(r[0]): str(r[1] or "")
            for r in conn.execute(
                text("SELECT id, system_prompt FROM agents WHERE episode_id = :e"),
                {"e": episode_id},
            )
        }
    turns = [Turn(int(r[0]), int(r[1]), int(r[2]), int(r[3]), str(r[4]), str(r[5])) for r in rows]
    return turns, prompts


def monitor_database(
    database: Database,
    model: TransformersModel,
    vectors: TraitVectors,
    *,
    episodes: Iterable[int] | None = None,
    say: Callable[[str], Any] | None = None,
) -> MonitorSummary:
    """Record trait projections for every turn of the complete episodes (see the module docstring).

    Args:
        database: The open experiment database.
        model: The model the vectors were built on.
        vectors: The trait vectors (checked against ``model``).
        episodes: Only these episode ids (all complete episodes by default).
        say: Progress lines go here.

    Returns:
        What was done.

    Raises:
        ConfigError: The vectors were built on another model.
    """
    from personae.store.append import EpisodeAppender

    vectors.check_model(model.identity().as_dict())
    digest = vectors.digest[:16] or "unsaved"
    complete, done = _episodes(database, digest)
    wanted = set(episodes) if episodes is not None else None
    todo = [e for e in complete if (wanted is None or e in wanted) and e not in done]
    skipped = len([e for e in complete if (wanted is None or e in wanted) and e in done])
    started = time.perf_counter()
    turns_done = rows = 0
    for number, episode_id in enumerate(todo, start=1):
        turns, prompts = _read(database, episode_id)
        contexts = turn_contexts(turns, prompts)
        appender = EpisodeAppender(database)
        for (turn, _history, _reply), projections in zip(
            contexts, _project(model, vectors, contexts), strict=True
        ):
            for name, (before, after) in projections.items():
                for variable, value in (
                    (f"vector:{name}", before),
                    (f"vector:{name}:reply", after),
                ):
                    appender.add(
                        StateRecord(
                            id=appender.new_id("states", episode_id),
                            episode_id=episode_id,
                            agent_id=turn.agent_id,
                            session=turn.session,
                            t=turn.step,
                            variable=variable,
                            value=float(np.round(value, 6)),
                            text=digest,
                            source=SOURCE,
                        )
                    )
        rows += appender.pending
        appender.commit()
        turns_done += len(turns)
        if say is not None:
            say(f"episode {episode_id}: {len(turns)} turns ({number}/{len(todo)})")
    return MonitorSummary(
        episodes=len(todo),
        skipped=skipped,
        turns=turns_done,
        rows=rows,
        seconds=time.perf_counter() - started,
    )
