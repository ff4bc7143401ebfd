"""What the students say each day that moves their state: peer talk, its rating, the journal.

These are steps of the cohort's day loop (:mod:`personae.studies.cohort.loop`),
not probes: their answers feed the state rule.

- :func:`converse`: pairs of network neighbours (:func:`pairs`) exchange a line
  each through :meth:`~personae.engine.episode.Episode.speak` (``purpose``
  ``"peer"``, heard by the pair only), then each rates how it felt
  (``interaction``, -1..1, source ``peer``); the ratings enter the rule.
- :func:`journal`: the student writes a short journal (``journal``, source
  ``llm``) and a second call infers how the day changed stress, mood, energy
  and connectedness (``llm_delta:<variable>``), which is added to the state.
"""

from __future__ import annotations

import asyncio
import random
from typing import TYPE_CHECKING, Any

from personae.seeds import derive_seed
from personae.studies.cohort.asks import json_object
from personae.studies.cohort.scenario import adjusted

if TYPE_CHECKING:
    from personae.studies.cohort.loop import CohortEpisode

__all__ = ["JOURNAL_RANGE", "VALENCE", "converse", "journal", "pairs"]

#: How a student may rate a peer conversation, -1 (very negative) to 1 (very positive).
VALENCE = ("Very negative", "Negative", "Neutral", "Positive", "Very positive")
#: The journal's inferred change of each 0-100 variable, at most this many points.
JOURNAL_RANGE = 20
_JOURNAL_VARIABLES = ("stress", "mood", "energy", "connectedness")


def pairs(episode: CohortEpisode, day: int) -> list[tuple[str, str]]:
    """Who talks on ``day``, opener first: neighbours, more often the more extraverted, once each.

    An edge of the peer network is taken with chance ``2 * conversations *
    sociability / degree`` (sociability: the pair's mean extraversion / 3;
    degree: their mean number of neighbours), in a seeded random order,
    skipping students already talking.
    """
    rng = random.Random(derive_seed(episode.seed, "conversations", day))
    graph, rate, traits = episode.graph, episode.scenario.conversations, episode.term.traits
    edges = sorted(tuple(sorted(map(str, e))) for e in graph.edges) if graph else []
    rng.shuffle(edges)
    out: list[tuple[str, str]] = []
    busy: set[str] = set()
    for a, b in edges:
        if a in busy or b in busy:
            continue
        sociability = (traits[a].get("E", 3.0) + traits[b].get("E", 3.0)) / 6.0
        degree = max(1, (graph.degree(a) + graph.degree(b)) / 2) if graph else 1
        if rng.random() < min(1.0, 2 * rate * sociability / degree):
            out.append((a, b) if rng.random() < 0.5 else (b, a))
            busy |= {a, b}
    return out


async def converse(episode: CohortEpisode, day: int, *, first_step: int) -> dict[str, list[float]]:
    """The day's pairs talk, all at once; each student's valences of the day's talks.

    Utterances are numbered from ``first_step``, two a pair in pair order, so
    steps and seeds do not depend on which reply comes back first.
    """
    today = pairs(episode, day)
    talks = (_talk(episode, a, b, day, first_step + 2 * i) for i, (a, b) in enumerate(today))
    out: dict[str, list[float]] = {}
    for (a, b), (va, vb) in zip(today, await asyncio.gather(*talks), strict=True):
        out.setdefault(a, []).append(va)
        out.setdefault(b, []).append(vb)
    return out


async def _talk(episode: CohortEpisode, a: str, b: str, day: int, step: int) -> tuple[float, float]:
    opening = (
        f"You run into {b} on day {day + 1} of term. "
        "Start a short conversation (one or two sentences)."
    )
    reply = f"{a} just spoke to you. Reply in one or two sentences."
    await episode.speak(
        a, {"session": day, "step": step}, cue=opening, purpose="peer", others=[b], heard=[a, b]
    )
    await episode.speak(
        b, {"session": day, "step": step + 1}, cue=reply, purpose="peer", others=[a], heard=[b, a]
    )
    valences = await asyncio.gather(_rate(episode, a, b, day), _rate(episode, b, a, day))
    return valences[0], valences[1]


async def _rate(episode: CohortEpisode, name: str, other: str, day: int) -> float:
    """``name`` rates the talk with ``other`` on :data:`VALENCE`; recorded as ``interaction``.

    The rating is given from the persona and that conversation's two lines only:
    the question is about the conversation, and the rest of the memory would
    only add prompt tokens (about half of a cohort's rating cost).
    """
    from personae.measures.administer import parse_answer

    options = "\n".join(f"{i}. {label}" for i, label in enumerate(VALENCE, 1))
    raw = await episode.ask(
        name,
        f"How did your conversation with {other} just now make you feel?\n{options}\n"
        "Answer with the number only.",
        purpose="interaction",
        max_tokens=4,
        response_format={"type": "choice", "choices": ["1", "2", "3", "4", "5"]},
        memory=episode.memory_on(name, day, window=2),
        step=day,
    )
    parsed = parse_answer(raw, VALENCE)
    valence = 0.0 if parsed.position is None else (parsed.position - 3) / 2
    episode.record_state(name, "interaction", valence, text=f"{other}: {raw}", source="peer", t=day)
    return valence


async def journal(episode: CohortEpisode, student: str, day: int) -> None:
    """The student writes a journal; a second call infers how the day changed its state."""
    text = await episode.ask(
        student,
        "Write a short journal entry (two or three sentences) about your day.",
        purpose="journal",
        max_tokens=96,
        temperature=episode.scenario.temperature,
        step=day,
    )
    episode.record_state(student, "journal", None, text=text, source="llm", t=day)
    now = episode.state[student].as_dict()
    bound = {"type": "integer", "minimum": -JOURNAL_RANGE, "maximum": JOURNAL_RANGE}
    schema = {
        "type": "object",
        "properties": dict.fromkeys(_JOURNAL_VARIABLES, bound),
        "required": list(_JOURNAL_VARIABLES),
        "additionalProperties": False,
    }
    raw = await episode.ask(
        student,
        f'Here is the journal entry you just wrote: "{text}"\n'
        f"Your current levels (0-100): stress {now['stress']:.0f}, mood {now['mood']:.0f}, "
        f"energy {now['energy']:.0f}, connectedness {now['connectedness']:.0f}.\n"
        "By how much did today change each level (-20 to 20)? Reply in JSON.",
        purpose="journal-state",
        max_tokens=64,
        response_format={"type": "json", "schema": schema},
        step=day,
    )
    deltas = json_object(raw)
    changes = {k: _bounded(deltas.get(k), JOURNAL_RANGE) for k in _JOURNAL_VARIABLES}
    kept = {k: v for k, v in changes.items() if v is not None}
    episode.state[student] = adjusted(episode.state[student], kept)
    for k, v in changes.items():
        episode.record_state(student, f"llm_delta:{k}", v, text=raw, source="llm", t=day)


def _bounded(value: Any, limit: float) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if -limit <= number <= limit else None
