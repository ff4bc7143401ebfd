r"""The LangGraph graph every scenario runs on.

::

    START -> begin_session -> turn --(session goes on)--> turn
                                   \--(session over)--> end_session --(more sessions)--> begin_session
                                                                    \--(last session)--> END

One utterance per ``turn`` step keeps the graph's own overhead to one
superstep per utterance. The per-episode objects come from the run-time
context (an :class:`~personae.scenarios.episode.Episode`), so one compiled
graph serves every episode of an experiment.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

if TYPE_CHECKING:
    from personae.scenarios.scenario import Scenario


class EpisodeState(TypedDict):
    """The graph state: counters only; the conversation lives in the Episode."""

    session: int
    turn: int
    step: int
    session_over: bool
    end_reason: str | None


def initial_state() -> EpisodeState:
    return {"session": 0, "turn": 0, "step": 0, "session_over": False, "end_reason": None}


async def begin_session(state: EpisodeState, runtime: Runtime[Any]) -> dict[str, Any]:
    return await runtime.context.begin_session(state)


async def take_turn(state: EpisodeState, runtime: Runtime[Any]) -> dict[str, Any]:
    return await runtime.context.take_turn(state)


async def end_session(state: EpisodeState, runtime: Runtime[Any]) -> dict[str, Any]:
    return await runtime.context.end_session(state)


# Routers are coroutines: LangGraph runs a plain function router in a thread pool
# under ainvoke, a thread hop per utterance.
async def after_turn(state: EpisodeState) -> str:
    return "end_session" if state["session_over"] else "turn"


async def after_session(state: EpisodeState, runtime: Runtime[Any]) -> str:
    return "begin_session" if state["session"] < runtime.context.scenario.sessions else END


def build_graph(scenario: Scenario) -> StateGraph[Any, Any, Any, Any]:
    """The scenario's graph, uncompiled: add nodes or edges before compiling."""
    from personae.scenarios.episode import Episode

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
