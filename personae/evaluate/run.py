"""Running an evaluator over a stored database: resumable, idempotent, bounded concurrency.

:func:`evaluate_database` reads the complete episodes of a database, builds
the evaluator's items (:func:`~personae.evaluate.items.items_for`), asks the
judge ``samples`` times per item (each sample its own seed) and stores, per
answer, one ``llm_calls`` row (``purpose = 'evaluate'``) and one
``evaluations`` row per dimension. Rows are added through
:class:`~personae.store.append.EpisodeAppender`, so they take ids in their
episode's block and grow its ``row_counts``; a call and its scores are
committed together.

A rating already stored (same episode, agent, turn, evaluator, version, sample
and judge) is skipped, so rerunning the same command after an interruption
(Ctrl-C keeps every answer committed so far) finishes the rest and a finished
run does nothing.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text

from personae.errors import ModelError
from personae.evaluate.definition import Evaluator
from personae.evaluate.items import (
    MAX_TRANSCRIPT_CHARS,
    Item,
    Line,
    Participant,
    evaluation_records,
    items_for,
)
from personae.llm.base import ChatModel, Sampling, complete
from personae.seeds import derive_seed
from personae.store.append import EpisodeAppender
from personae.store.database import Database
from personae.store.rows import LLMCallRecord, clean_text, now

__all__ = ["EvaluationSummary", "evaluate_database", "stored_items", "todo"]

#: Answers committed together (a call and its scores are never split).
COMMIT_EVERY = 16


@dataclass
class EvaluationSummary:
    """What one evaluation run did.

    Attributes:
        evaluator: The evaluator's name and version, ``name@version``.
        items: Items rated in the database (times samples: ratings wanted).
        wanted: Ratings wanted (items x samples).
        skipped: Ratings already stored, not asked again.
        done: Ratings stored by this run.
        invalid: Stored ratings with at least one dimension that could not be read.
        failed: Ratings whose judge call failed (nothing stored; a rerun retries them).
        seconds: Wall time of the run.
        errors: The first few failures' messages.
    """

    evaluator: str
    items: int = 0
    wanted: int = 0
    skipped: int = 0
    done: int = 0
    invalid: int = 0
    failed: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)


def stored_items(
    database: Database, evaluator: Evaluator, max_chars: int = MAX_TRANSCRIPT_CHARS
) -> list[Item]:
    """Every item ``evaluator`` rates in the complete episodes of ``database``, by episode."""
    with database.engine.connect() as conn:
        episodes = conn.execute(
            text(
                "SELECT id, seed, experiment_id FROM episodes WHERE status = 'complete' ORDER BY id"
            )
        ).all()
        agents = conn.execute(
            text(
                "SELECT a.episode_id, a.id, a.name, a.role, a.persona_json FROM agents a "
                "JOIN episodes e ON e.id = a.episode_id WHERE e.status = 'complete' ORDER BY a.id"
            )
        ).all()
        turns = conn.execute(
            text(
                "SELECT t.episode_id, t.id, t.step, a.name, t.content FROM turns t "
                "JOIN agents a ON a.id = t.agent_id JOIN episodes e ON e.id = t.episode_id "
                "WHERE e.status = 'complete' ORDER BY t.episode_id, t.session, t.step, t.id"
            )
        ).all()
    people: dict[int, list[Participant]] = {}
    for episode_id, agent_id, name, role, persona in agents:
        people.setdefault(episode_id, []).append(Participant(agent_id, name, role, persona))
    lines: dict[int, list[Line]] = {}
    for episode_id, turn_id, step, speaker, content in turns:
        lines.setdefault(episode_id, []).append(Line(turn_id, step, speaker, content))
    out: list[Item] = []
    for episode_id, seed, experiment_id in episodes:
        others = (
            _other_episodes(evaluator, episode_id, experiment_id, episodes, people, lines)
            if evaluator.other_episodes
            else None
        )
        out += items_for(
            evaluator,
            episode_id,
            seed,
            people.get(episode_id, []),
            lines.get(episode_id, []),
            max_chars,
            others,
        )
    return out


def _other_episodes(
    evaluator: Evaluator,
    episode_id: int,
    experiment_id: int,
    episodes: Sequence[Any],
    people: Mapping[int, list[Participant]],
    lines: Mapping[int, list[Line]],
) -> dict[str, list[list[str]]]:
    """Each agent's lines in up to ``other_episodes`` other episodes of the same experiment.

    The same persona is the same name and role; the episodes nearest by id are
    taken (deterministic, so reruns show the judge the same thing).
    """
    here = {(p.name, p.role) for p in people.get(episode_id, [])}
    candidates = sorted(
        (e for e, _, x in episodes if x == experiment_id and e != episode_id),
        key=lambda e: (abs(e - episode_id), e),
    )
    found: dict[str, list[list[str]]] = {}
    for other in candidates:
        there = {(p.name, p.role) for p in people.get(other, [])}
        for name, _ in here & there:
            said = [line.text for line in lines.get(other, []) if line.speaker == name]
            if said and len(found.setdefault(name, [])) < evaluator.other_episodes:
                found[name].append(said)
    return found


def _done_keys(
    database: Database, evaluator: Evaluator, judge_endpoint: str | None, judge_model: str | None
) -> set[tuple[int, int, int, int]]:
    with database.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT DISTINCT episode_id, COALESCE(agent_id, 0), COALESCE(turn_id, 0), sample "
                "FROM evaluations WHERE evaluator = :e AND evaluator_version = :v "
                "AND judge_endpoint IS :j AND judge_model IS :m"
            ),
            {"e": evaluator.name, "v": evaluator.version, "j": judge_endpoint, "m": judge_model},
        ).all()
    return {(int(a), int(b), int(c), int(d)) for a, b, c, d in rows}


def todo(
    database: Database,
    evaluator: Evaluator,
    items: Sequence[Item],
    samples: int,
    judge_endpoint: str | None,
    judge_model: str | None,
) -> list[tuple[Item, int]]:
    """The (item, sample) pairs not yet stored for this evaluator version and judge."""
    done = _done_keys(database, evaluator, judge_endpoint, judge_model)
    return [(item, s) for item in items for s in range(samples) if (*item.key, s) not in done]


async def evaluate_database(
    database: Database,
    evaluator: Evaluator,
    model: ChatModel,
    *,
    samples: int = 1,
    temperature: float = 0.7,
    max_tokens: int = 200,
    max_in_flight: int = 16,
    judge_endpoint: str | None = "default",
    judge_model: str | None = None,
    constrain: bool = True,
    max_chars: int = MAX_TRANSCRIPT_CHARS,
    on_progress: Callable[[int, int], None] | None = None,
) -> EvaluationSummary:
    """Rate every item of ``database`` not yet rated, ``samples`` times, and store the scores.

    Args:
        database: The open database.
        evaluator: The evaluator.
        model: The judge.
        samples: Ratings per item, each with its own seed; with ``temperature``
            above 0 they differ and measure the judge's agreement with itself.
        temperature: The judge's sampling temperature.
        max_tokens: Most tokens per answer.
        max_in_flight: Judge calls in flight at most.
        judge_endpoint: Stored with each score (a URL without credentials or an
            endpoint's name); part of what makes a rating "already stored".
        judge_model: The judge's model name (default: ``model.name``).
        constrain: Constrain answers to the evaluator's JSON schema.
        max_chars: The most transcript characters a judge is shown.
        on_progress: Called with (ratings finished, ratings to do) as they finish.

    Returns:
        What was done. A judge call that fails is counted in ``failed``; its
        rating is left for the next run.
    """
    started = time.perf_counter()
    judge_model = judge_model or getattr(model, "name", None)
    summary = EvaluationSummary(evaluator=f"{evaluator.name}@{evaluator.version}")
    items = stored_items(database, evaluator, max_chars)
    pairs = todo(database, evaluator, items, samples, judge_endpoint, judge_model)
    summary.items, summary.wanted = len(items), len(items) * samples
    summary.skipped = summary.wanted - len(pairs)
    appender = EpisodeAppender(database)
    gate = asyncio.Semaphore(max_in_flight)
    finished = 0
    base = Sampling(
        max_tokens=max_tokens,
        temperature=temperature,
        response_format=evaluator.response_format() if constrain else None,
    )

    async def rate(item: Item, sample: int) -> None:
        nonlocal finished
        seed = derive_seed(
            item.seed, "evaluate", evaluator.name, evaluator.version, *item.key[1:], sample
        )
        request = base.replace(seed=seed)
        async with gate:
            t0 = time.perf_counter()
            try:
                completion = await complete(model, item.messages, request)  # type: ignore[arg-type]
            except ModelError as exc:
                summary.failed += 1
                if len(summary.errors) < 5:
                    summary.errors.append(str(exc))
                completion = None
            latency = (time.perf_counter() - t0) * 1000
        finished += 1
        if completion is not None:
            raw, replaced = clean_text(completion.text)
            reading = evaluator.read(raw)
            call_id = appender.new_id("llm_calls", item.episode_id)
            appender.add(
                LLMCallRecord(
                    id=call_id,
                    episode_id=item.episode_id,
                    agent_id=item.agent.agent_id if item.agent else None,
                    purpose="evaluate",
                    step=item.turn.step if item.turn else None,
                    model=judge_model or completion.model,
                    server=completion.server,
                    seed=seed,
                    params_json=json.dumps(
                        completion.params or request.params(), default=str, sort_keys=True
                    ),
                    prompt_tokens=completion.prompt_tokens,
                    completion_tokens=completion.completion_tokens,
                    latency_ms=completion.latency_ms or latency,
                    attempts=completion.attempts,
                    finish_reason=completion.finish_reason,
                    created_at=now(),
                    raw_text=raw,
                    replaced_chars=replaced,
                    endpoint=judge_endpoint,
                    structured=_text(completion.extensions.get("structured")),
                    replica=_text(completion.extensions.get("replica")),
                )
            )
            ids = [
                appender.new_id("evaluations", item.episode_id) for _ in evaluator.stored_dimensions
            ]
            for record in evaluation_records(
                evaluator,
                item,
                sample,
                reading,
                raw,
                ids,
                llm_call_id=call_id,
                judge_endpoint=judge_endpoint,
                judge_model=judge_model,
            ):
                appender.add(record)
            summary.done += 1
            summary.invalid += int(any(v is None for v in reading.values.values()))
            if summary.done % COMMIT_EVERY == 0:
                # Short and on the loop's thread: the appender is not shared with another thread.
                appender.commit()
        if on_progress is not None:
            on_progress(finished, len(pairs))

    try:
        await asyncio.gather(*(rate(item, sample) for item, sample in pairs))
    finally:
        appender.commit()  # whatever finished, also when interrupted
        summary.seconds = time.perf_counter() - started
    return summary


def _text(value: object) -> str | None:
    return None if value is None else str(value)
