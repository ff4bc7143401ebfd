r"""The conversation loop: sessions of turns, and the LangGraph graph it runs on.

::

    START -> begin_session -> turn --(session goes on)--> turn
                                   \--(session over)--> end_session --(more sessions)--> begin_session
                                                                    \--(last session, or stopped)--> END

One utterance per ``turn`` step keeps the graph's own overhead to one
superstep per utterance. The per-episode objects come from the run-time
context (an :class:`~personae.engine.episode.Episode`), so one compiled
graph serves every episode of an experiment.

Monitors (:class:`~personae.engine.probes.Monitor`) run with the other probes
at each point; their actions are applied once those probes finish, so between
turns. After a :class:`~personae.engine.probes.Stop`, the session ends with the
monitor's reason, the ``session_end`` and ``end`` probes run, and no further
session starts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from personae.agents.memory import Utterance
from personae.store.rows import MemoryRecord

if TYPE_CHECKING:
    from personae.agents.agent import Agent
    from personae.engine.episode import Episode
    from personae.engine.scenario import Scenario

__all__ = [
    "SUMMARY_QUESTION",
    "EpisodeState",
    "build_graph",
    "carry_memory",
    "close_session",
    "initial_state",
    "next_turn",
    "open_session",
    "recursion_limit",
]

SUMMARY_QUESTION = (
    "The session has ended. In two or three sentences, note for yourself what was "
    "discussed and what matters for next time. Write only the note."
)


class EpisodeState(TypedDict):
    """The graph state: counters only; the conversation lives in the Episode."""

    session: int
    turn: int
    step: int
    session_over: bool
    end_reason: str | None


def initial_state() -> EpisodeState:
    """The state a conversation starts from."""
    return {"session": 0, "turn": 0, "step": 0, "session_over": False, "end_reason": None}


# -- the loop -------------------------------------------------------------------------------


async def open_session(episode: Episode, state: Mapping[str, Any]) -> dict[str, Any]:
    """Start a session: the start probes, then the scripted opening line, if any."""
    scenario = episode.scenario
    session, step = state["session"], state["step"]
    episode._session_start = len(episode.transcript)
    if session == 0:
        await episode.run_probes("start", state)
    await episode.run_probes("session_start", state)
    if episode.stopped is not None:
        return {"turn": 0, "step": step, "session_over": True, "end_reason": episode.stopped}
    turn = 0
    opening = scenario.opening
    if opening is not None:
        episode._hear(Utterance(opening.speaker, opening.text, session, step), call_id=None)
        turn, step = 1, step + 1
    over = turn >= scenario.max_turns
    return {
        "turn": turn,
        "step": step,
        "session_over": over,
        "end_reason": f"max_turns({scenario.max_turns})" if over else None,
    }


async def next_turn(episode: Episode, state: Mapping[str, Any]) -> dict[str, Any]:
    """One utterance, then the turn probes and monitors, then the stop conditions."""
    scenario = episode.scenario
    view = episode.view(state)
    speaker = await scenario.turns.achoose(view, episode)
    cue = scenario.cue(view, speaker) if scenario.cue else None
    await episode.speak(speaker, state, cue=cue)
    turn, step = state["turn"] + 1, state["step"] + 1
    new = {**state, "turn": turn, "step": step}
    await episode.run_probes("turn", new)
    reason = episode.stopped
    if reason is None:
        reason = scenario.until.reason(episode.view(new))
    if reason is None and turn >= scenario.max_turns:
        reason = f"max_turns({scenario.max_turns})"
    return {"turn": turn, "step": step, "session_over": reason is not None, "end_reason": reason}


async def close_session(episode: Episode, state: Mapping[str, Any]) -> dict[str, Any]:
    """End a session: its probes, then memory for the next one or the end probes."""
    await episode.run_probes("session_end", state)
    session = state["session"] + 1
    if session < episode.scenario.sessions and episode.stopped is None:
        await carry_memory(episode, state)
    else:
        await episode.run_probes("end", state)
    return {
        "session": session,
        "session_over": False,
        "end_reason": episode.stopped or state.get("end_reason"),
    }


async def carry_memory(episode: Episode, state: Mapping[str, Any]) -> None:
    """Prepare every agent's memory for the next session, as the scenario says."""
    mode = episode.scenario.carry_memory
    if mode == "full":
        return
    if mode == "none":
        for agent in episode.agents.values():
            agent.memory.entries.clear()
        return

    async def summarize(agent: Agent) -> None:
        text, call_id = await episode.ask_recorded(
            agent.name,
            SUMMARY_QUESTION,
            purpose="summary",
            max_tokens=96,
            temperature=episode.scenario.temperature,
            response_format=None,
            memory=None,
            step=state["step"],
        )
        agent.memory.summarize(text)
        episode.log.add(
            MemoryRecord(
                id=episode.log.new_id("memories"),
                agent_id=episode.agent_ids[agent.name],
                session=state["session"],
                step=state["step"],
                kind="summary",
                content=text,
                llm_call_id=call_id,
            )
        )

    await asyncio.gather(*(summarize(a) for a in episode.agents.values()))


# -- the graph --------------------------------------------------------------------------------


async def begin_session(state: EpisodeState, runtime: Runtime[Any]) -> dict[str, Any]:
    return await open_session(runtime.context, state)


async def take_turn(state: EpisodeState, runtime: Runtime[Any]) -> dict[str, Any]:
    return await next_turn(runtime.context, state)


async def end_session(state: EpisodeState, runtime: Runtime[Any]) -> dict[str, Any]:
    return await close_session(runtime.context, state)


# Routers are coroutines: LangGraph runs a plain function router in a thread pool
# under ainvoke, a thread hop per utterance.
async def after_turn(state: EpisodeState) -> str:
    return "end_session" if state["session_over"] else "turn"


async def after_session(state: EpisodeState, runtime: Runtime[Any]) -> str:
    episode = runtime.context
    if episode.stopped is None and state["session"] < episode.scenario.sessions:
        return "begin_session"
    return END


def build_graph(scenario: Scenario) -> StateGraph[Any, Any, Any, Any]:
    """The scenario's graph, uncompiled: add nodes or edges before compiling."""
    from personae.engine.episode import Episode

    graph: StateGraph[Any, Any, Any, Any] = StateGraph(EpisodeState, context_schema=Episode)
    graph.add_node("begin_session", begin_session)
    graph.add_node("turn", take_turn)
    graph.add_node("end_session", end_session)
    graph.add_edge(START, "begin_session")
    graph.add_conditional_edges("begin_session", after_turn, ["turn", "end_session"])
    graph.add_conditional_edges("turn", after_turn, ["turn", "end_session"])
    graph.add_conditional_edges("end_session", after_session, ["begin_session", END])
    return graph


def recursion_limit(scenario: Scenario) -> int:
    """Enough graph steps for the longest possible episode."""
    return scenario.sessions * (scenario.max_turns + 3) + 10
