"""What an evaluator rates: items read from stored episodes, the judge's messages, the rows.

An :class:`Item` is one episode (scope ``episode``), one agent in it (scope
``agent``) or one turn (scope ``turn``), with the messages the judge gets.
:class:`EvaluationRecord` is the typed row of the ``evaluations`` table, and
:func:`evaluation_records` turns one judge answer into its rows.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from personae.evaluate.definition import Evaluator, Reading
from personae.store.rows import Record, now

__all__ = [
    "EvaluationRecord",
    "Item",
    "Line",
    "Participant",
    "evaluation_records",
    "items_for",
    "judge_messages",
]

#: The most transcript characters a judge is shown (the end is kept).
MAX_TRANSCRIPT_CHARS = 12000
#: The most lines of each other episode shown for consistency across episodes (the last).
_OTHER_LINES = 6


@dataclass(frozen=True, kw_only=True, slots=True)
class EvaluationRecord(Record):
    """One score on one dimension (table ``evaluations``)."""

    table: ClassVar[str] = "evaluations"
    agent_id: int | None = None
    turn_id: int | None = None
    step: int | None = None
    evaluator: str
    evaluator_version: str
    dimension: str
    sample: int
    value: float | None
    valid: int
    reason: str | None = None
    rationale: str | None = None
    raw_text: str | None = None
    llm_call_id: int | None = None
    judge_endpoint: str | None = None
    judge_model: str | None = None
    created_at: str = field(default_factory=now)


@dataclass(frozen=True, slots=True)
class Participant:
    """An agent of a stored episode: its row id, name, role and persona (JSON text)."""

    agent_id: int
    name: str
    role: str
    persona_json: str


@dataclass(frozen=True, slots=True)
class Line:
    """One stored turn: its row id, step, speaker's name and text."""

    turn_id: int
    step: int
    speaker: str
    text: str


@dataclass(frozen=True, slots=True)
class Item:
    """One thing rated: an episode, an agent in it, or a turn.

    Attributes:
        episode_id: The episode.
        seed: The episode's seed (the judge's seeds derive from it).
        agent: The rated agent (scopes ``agent`` and ``turn``: the speaker), or None.
        turn: The rated turn (scope ``turn``), or None.
        messages: What the judge is sent.
    """

    episode_id: int
    seed: int
    agent: Participant | None
    turn: Line | None
    messages: list[dict[str, str]]

    @property
    def key(self) -> tuple[int, int, int]:
        """``(episode, agent or 0, turn or 0)``: with the sample, what identifies a rating."""
        return (
            self.episode_id,
            self.agent.agent_id if self.agent else 0,
            self.turn.turn_id if self.turn else 0,
        )


def _transcript(lines: Sequence[Line], roles: Mapping[str, str], limit: int) -> str:
    text = "\n".join(
        f"{line.speaker} ({roles.get(line.speaker, '?')}): {line.text}" for line in lines
    )
    if len(text) > limit:
        text = "[... earlier turns left out ...]\n" + text[-limit:]
    return text


def _profile(agent: Participant) -> str:
    try:
        persona = json.loads(agent.persona_json)
    except ValueError:
        return agent.persona_json
    return json.dumps(persona, indent=1, ensure_ascii=False, sort_keys=True)


def judge_messages(
    evaluator: Evaluator,
    lines: Sequence[Line],
    participants: Sequence[Participant],
    agent: Participant | None = None,
    turn: Line | None = None,
    max_chars: int = MAX_TRANSCRIPT_CHARS,
    others: Sequence[Sequence[str]] = (),
) -> list[dict[str, str]]:
    """The judge's messages: the rubric as system prompt, then the transcript and what to rate.

    Args:
        evaluator: The evaluator.
        lines: The episode's turns in order.
        participants: The episode's agents.
        agent: The rated agent (scopes ``agent`` and ``turn``).
        turn: The rated turn (scope ``turn``).
        max_chars: The most transcript characters shown; the end is kept.
        others: The rated agent's lines in other episodes (one sequence per episode).
    """
    roles = {p.name: p.role for p in participants}
    who = ", ".join(f"{p.name} ({p.role})" for p in participants)
    parts = [f"Participants: {who}."]
    if turn is not None:
        index = next(i for i, line in enumerate(lines) if line.turn_id == turn.turn_id)
        before = lines[max(0, index - evaluator.context_turns) : index]
        if before:
            parts.append("Earlier turns:\n" + _transcript(before, roles, max_chars))
        parts.append("RATED TURN:\n" + _transcript([turn], roles, max_chars))
        after = lines[index + 1 : index + 2]
        parts.append(
            "Reply that followed:\n" + _transcript(after, roles, max_chars)
            if after
            else "Reply that followed: (none, the conversation ended)"
        )
    else:
        parts.append("Conversation:\n" + _transcript(lines, roles, max_chars))
    if agent is not None and evaluator.with_profile:
        parts.append(f"Profile of {agent.name}:\n{_profile(agent)}")
    if agent is not None and others:
        shown = "\n\n".join(
            "Another episode:\n" + "\n".join(f"- {text}" for text in said[-_OTHER_LINES:])
            for said in others
        )
        parts.append(f"What the same persona, {agent.name}, said in other episodes:\n{shown}")
    if turn is not None:
        parts.append(f"Rate the turn of {turn.speaker} marked RATED TURN and the reply to it.")
    elif agent is not None:
        parts.append(f"Rate {agent.name} ({agent.role}).")
    else:
        parts.append("Rate the conversation as a whole.")
    return [
        {"role": "system", "content": evaluator.rubric()},
        {"role": "user", "content": "\n\n".join(parts)},
    ]


def _selected(evaluator: Evaluator, participants: Sequence[Participant]) -> list[Participant]:
    wanted = evaluator.who
    if wanted is None:
        return list(participants)
    return [p for p in participants if p.name in wanted or p.role in wanted]


def items_for(
    evaluator: Evaluator,
    episode_id: int,
    seed: int,
    participants: Sequence[Participant],
    lines: Sequence[Line],
    max_chars: int = MAX_TRANSCRIPT_CHARS,
    others: Mapping[str, Sequence[Sequence[str]]] | None = None,
) -> list[Item]:
    """The items ``evaluator`` rates in one episode (none when nobody has spoken).

    Scope ``agent`` rates each selected agent that spoke; scope ``turn`` each
    turn of a selected agent. With ``evaluator.other_episodes``, ``others``
    gives each agent's lines in other episodes (by name); an agent without
    any is not rated.
    """
    if not lines:
        return []
    if evaluator.scope == "episode":
        return [
            Item(
                episode_id,
                seed,
                None,
                None,
                judge_messages(evaluator, lines, participants, max_chars=max_chars),
            )
        ]
    chosen = _selected(evaluator, participants)
    if evaluator.scope == "agent":
        spoke = {line.speaker for line in lines}
        across = evaluator.other_episodes > 0
        return [
            Item(
                episode_id,
                seed,
                p,
                None,
                judge_messages(
                    evaluator,
                    lines,
                    participants,
                    p,
                    max_chars=max_chars,
                    others=(others or {}).get(p.name, ()),
                ),
            )
            for p in chosen
            if p.name in spoke and (not across or (others or {}).get(p.name))
        ]
    by_name = {p.name: p for p in chosen}
    return [
        Item(
            episode_id,
            seed,
            by_name[line.speaker],
            line,
            judge_messages(evaluator, lines, participants, by_name[line.speaker], line, max_chars),
        )
        for line in lines
        if line.speaker in by_name
    ]


def evaluation_records(
    evaluator: Evaluator,
    item: Item,
    sample: int,
    reading: Reading,
    raw: str,
    ids: Sequence[int],
    *,
    llm_call_id: int | None,
    judge_endpoint: str | None,
    judge_model: str | None,
) -> list[EvaluationRecord]:
    """One row per stored dimension of one judge answer, with the ids given.

    Args:
        evaluator: The evaluator.
        item: What was rated.
        sample: The sample number.
        reading: The answer read (:meth:`Evaluator.read`).
        raw: The judge's raw answer, kept with every row.
        ids: Row ids, one per :attr:`Evaluator.stored_dimensions`.
        llm_call_id: The ``llm_calls`` row of the judge's call.
        judge_endpoint: The judge's endpoint (a URL without credentials, a name).
        judge_model: The judge's model.
    """
    common: dict[str, Any] = {
        "episode_id": item.episode_id,
        "agent_id": item.agent.agent_id if item.agent else None,
        "turn_id": item.turn.turn_id if item.turn else None,
        "step": item.turn.step if item.turn else None,
        "evaluator": evaluator.name,
        "evaluator_version": evaluator.version,
        "sample": sample,
        "rationale": reading.rationale,
        "raw_text": raw,
        "llm_call_id": llm_call_id,
        "judge_endpoint": judge_endpoint,
        "judge_model": judge_model,
    }
    return [
        EvaluationRecord(
            id=row_id,
            dimension=name,
            value=reading.values[name],
            valid=int(reading.values[name] is not None),
            reason=reading.reasons[name],
            **common,
        )
        for row_id, name in zip(ids, evaluator.stored_dimensions, strict=True)
    ]
