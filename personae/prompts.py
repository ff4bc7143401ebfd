"""The prompts a scenario sends, rendered without a model: for a methods section.

:func:`render_prompts` builds, for one parameter set of a scenario or
experiment, what ``personae prompt`` prints:

* each agent's **system prompt**, rendered by the code an episode uses
  (:func:`~personae.agents.agent.system_card`: the persona card, then the
  scenario's rules for it), so it is byte for byte what the episode sends
  and what it stores in ``agents.system_prompt``;
* the **per-turn instructions** of a conversation's first session: who
  speaks at each turn, the scripted opening line, and the one-off cue the
  scenario's ``cue`` function adds to that speaker's request;
* an **example request** per agent: the messages of its first generated
  turn, built by :meth:`Agent.messages <personae.agents.agent.Agent.messages>`
  with placeholders where the conversation's lines go.

Scenarios that draw their participants per episode (``randomize``) are shown
with the draw of one replicate (``replicate``, 0 by default), from the same
seed the episode uses.

Example:
    >>> from personae.studies import counseling
    >>> sheet = render_prompts(counseling(), {"client.style": "reserved"})
    >>> "low extraversion (2.4/5)" in sheet.system["Maya"]
    True
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from personae.agents.agent import Agent, system_card
from personae.agents.memory import Utterance
from personae.engine.scenario import Scenario, ScenarioBase
from personae.engine.turns import RoundRobin, Script
from personae.errors import ConfigError
from personae.llm.base import Message
from personae.runner.experiment import Experiment, as_experiment
from personae.runner.identity import params_key
from personae.seeds import derive_seed

__all__ = ["PromptSheet", "TurnInstruction", "format_prompts", "render_prompts", "system_prompts"]

#: Turns listed at most in the per-turn schedule.
MAX_LISTED_TURNS = 40


@dataclass(frozen=True)
class TurnInstruction:
    """What one turn of a session adds to the speaker's request.

    Attributes:
        turn: The turn in the session (0 is the first utterance).
        speaker: Who speaks, or None when the turn policy decides at run time.
        opening: The scripted line said at this turn (no request is sent).
        cue: The one-off instruction appended to the request, as the agent sees it.
    """

    turn: int
    speaker: str | None
    opening: str | None = None
    cue: str | None = None


@dataclass(frozen=True)
class PromptSheet:
    """The rendered prompts of one parameter set (see :func:`render_prompts`).

    Attributes:
        scenario: The scenario's name.
        params: The parameter set shown.
        roles: Each agent's role, by name, in scenario order.
        system: Each agent's system prompt at the start of an episode.
        turns: The per-turn instructions of the first session (conversations only).
        requests: Each agent's first generated request, placeholders for the transcript.
        notes: Sentences on what the listing cannot show (drawn participants,
            cues decided at run time, memory between sessions, other loops).
    """

    scenario: str
    params: dict[str, Any]
    roles: dict[str, str]
    system: dict[str, str]
    turns: list[TurnInstruction] = field(default_factory=list)
    requests: dict[str, list[Message]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def system_prompts(scenario: ScenarioBase) -> dict[str, str]:
    """Each agent's system prompt at the start of an episode, by name (as stored in the database)."""
    return {p.name: system_card(p, scenario.rules_for(p)) for p in scenario.agents}


def render_prompts(
    target: Experiment | ScenarioBase,
    params: Mapping[str, Any] | None = None,
    *,
    replicate: int = 0,
) -> PromptSheet:
    """Render the prompts of one parameter set of a scenario or experiment.

    Args:
        target: A scenario, or an experiment (its grid's first combination is
            shown, with ``params`` applied over it).
        params: Fixed parameter values, as ``personae run --set`` takes them.
        replicate: Whose draw to show, for a scenario that draws participants per episode.

    Raises:
        ConfigError: A parameter is unknown or invalid.
    """
    fixed = dict(params or {})
    experiment = as_experiment(target, grid={k: [v] for k, v in fixed.items()})
    chosen = experiment.combinations()[0]
    scenario = experiment.prepare(chosen)
    notes = []
    if len(experiment.combinations()) > 1:
        rest = sorted(k for k in experiment.grid if k not in fixed)
        notes.append(
            f"The experiment has {len(experiment.combinations())} parameter sets; shown: the "
            f"first. Choose another with --set ({', '.join(rest)})."
        )
    if scenario.randomize is not None:
        key = params_key(chosen)
        seed = derive_seed(derive_seed(experiment.seed, "episode", key, replicate), "randomize")
        scenario = scenario.randomize(scenario, seed)
        notes.append(
            "Participants are drawn per episode; shown: the draw of replicate "
            f"{replicate} (--replicate)."
        )
    sheet = PromptSheet(
        scenario=scenario.name,
        params=dict(chosen),
        roles={p.name: p.role for p in scenario.agents},
        system=system_prompts(scenario),
        notes=notes,
    )
    if isinstance(scenario, Scenario):
        _conversation(scenario, sheet)
    else:
        sheet.notes.append(
            f"A {type(scenario).__name__} is not a conversation: its loop builds its own "
            "requests, each headed by the agent's system prompt above."
        )
    return sheet


def _conversation(scenario: Scenario, sheet: PromptSheet) -> None:
    """Fill in the first session's schedule and each agent's first request."""
    agents = {
        p.name: Agent(
            p,
            model=None,  # type: ignore[arg-type]  # rendering only: no request is sent
            rules=scenario.rules_for(p),
            named=len(scenario.agents) > 2,
            window=scenario.memory_window,
        )
        for p in scenario.agents
    }
    rng = random.Random(0)
    history: list[Utterance] = []
    undecided = False
    for turn in range(min(scenario.max_turns, MAX_LISTED_TURNS)):
        if turn == 0 and scenario.opening is not None:
            line = Utterance(scenario.opening.speaker, scenario.opening.text, 0, 0)
            sheet.turns.append(TurnInstruction(0, line.speaker, opening=line.text))
        else:
            view = _view(scenario, turn, history, rng)
            speaker = _speaker(scenario, view)
            if speaker is None:
                undecided = True
                sheet.turns.append(TurnInstruction(turn, None))
                break
            cue = scenario.cue(view, speaker) if scenario.cue else None
            sheet.turns.append(TurnInstruction(turn, speaker, cue=cue))
            if speaker not in sheet.requests:
                sheet.requests[speaker] = agents[speaker].messages(cue)
            line = Utterance(speaker, f"<{speaker}'s line at turn {turn}>", 0, turn)
        history.append(line)
        for agent in agents.values():
            agent.memory.add(line)
    if scenario.max_turns > MAX_LISTED_TURNS and not undecided:
        sheet.notes.append(
            f"Only the first {MAX_LISTED_TURNS} of {scenario.max_turns} turns are listed."
        )
    if not undecided and not isinstance(scenario.turns, RoundRobin | Script):
        sheet.notes.append(
            f"The turn policy ({type(scenario.turns).__name__}) draws the order per episode; "
            "shown: one possible order."
        )
    if scenario.hearing == "neighbours":
        sheet.notes.append(
            "Agents hear only their neighbours in the episode's network; the requests above "
            "show every line."
        )
    if undecided:
        sheet.notes.append(
            f"The turn policy ({type(scenario.turns).__name__}) decides who speaks at run time; "
            "each agent's request has the form shown, with the cue of its turn."
        )
    if scenario.cue is not None:
        sheet.notes.append(
            "Cues come from the scenario's cue function; one that reads the conversation's "
            "words sees the placeholders here."
        )
    if any(type(p).__name__ == "Monitor" for p in scenario.probes):
        sheet.notes.append("Monitors may add cues at run time; those are stored as states 'cue'.")
    if scenario.sessions > 1:
        sheet.notes.append(_sessions_note(scenario))


def _view(scenario: Scenario, turn: int, history: list[Utterance], rng: random.Random) -> Any:
    from personae.engine.view import TurnView

    return TurnView(
        session=0,
        turn=turn,
        step=turn,
        names=scenario.names,
        roles={p.name: p.role for p in scenario.agents},
        last=history[-1] if history else None,
        history=tuple(history),
        params=scenario.params,
        rng=rng,
        max_turns=scenario.max_turns,
    )


def _speaker(scenario: Scenario, view: Any) -> str | None:
    """The next speaker, where the policy decides without a model or a network."""
    try:
        return scenario.turns.choose(view)
    except Exception:  # a moderator asks a model; a neighbour policy needs the graph
        return None


def _sessions_note(scenario: Scenario) -> str:
    from personae.engine.conversation import SUMMARY_QUESTION

    if scenario.carry_memory == "summary":
        return (
            f"{scenario.sessions} sessions: at the end of each, every agent is asked "
            f'"{SUMMARY_QUESTION}" and its answer is added to its system prompt as '
            '"What you remember from earlier sessions:\\n- Session 1: <note>"; the '
            "session's lines are then dropped from its memory."
        )
    if scenario.carry_memory == "full":
        return f"{scenario.sessions} sessions: every line is kept in memory across sessions."
    return f"{scenario.sessions} sessions: each starts with an empty memory."


def format_prompts(sheet: PromptSheet, agent: str | None = None) -> str:
    """The sheet as text, as ``personae prompt`` prints it.

    Args:
        sheet: What :func:`render_prompts` returned.
        agent: Only this agent (a name or a role); all when None.

    Raises:
        ConfigError: ``agent`` is neither a name nor a role of the scenario.
    """
    names = _select(sheet, agent)
    shown = ", ".join(f"{k}={v!r}" for k, v in sheet.params.items()) or "none"
    parts = [f"# Scenario {sheet.scenario!r}, parameters: {shown}"]
    for name in names:
        parts.append(f"\n## {name} ({sheet.roles[name]}): system prompt\n")
        parts.append(sheet.system[name])
    if sheet.turns:
        parts.append("\n## Per-turn instructions (session 1)\n")
        for t in sheet.turns:
            if t.speaker is None:
                parts.append(f"turn {t.turn:>2}  (speaker chosen at run time)")
            elif t.opening is not None:
                if agent is None or t.speaker in names:
                    parts.append(f'turn {t.turn:>2}  {t.speaker}: scripted opening "{t.opening}"')
            elif t.speaker in names:
                cue = f"  cue: ({t.cue})" if t.cue else "  (no cue)"
                parts.append(f"turn {t.turn:>2}  {t.speaker}{cue}")
    for name in names:
        request = sheet.requests.get(name)
        if request is None:
            continue
        parts.append(f"\n## {name}: its first request (placeholders for the transcript)\n")
        for message in request:
            content = message["content"]
            if message["role"] == "system":
                content = f"<{name}'s system prompt, above>"
            parts.append(f"[{message['role']}] {content}")
    if sheet.notes:
        parts.append("\n## Notes\n")
        parts.extend(f"- {note}" for note in sheet.notes)
    return "\n".join(parts) + "\n"


def _select(sheet: PromptSheet, agent: str | None) -> list[str]:
    if agent is None:
        return list(sheet.roles)
    if agent in sheet.roles:
        return [agent]
    by_role = [n for n, r in sheet.roles.items() if r == agent]
    if by_role:
        return by_role
    listed = ", ".join(f"{n} ({r})" for n, r in sheet.roles.items())
    raise ConfigError(
        f"no agent {agent!r} in scenario {sheet.scenario!r}; --agent takes a name or a role "
        f"of its participants: {listed}."
    )
