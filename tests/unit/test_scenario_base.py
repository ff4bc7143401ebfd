"""ScenarioBase: the core a loop other than a conversation builds on (fields, probes at "tick")."""

from typing import Any, ClassVar, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from personae import Episode, FunctionModel, Persona, Probe, Scenario
from personae.engine import Monitor, ScenarioBase, Stop
from personae.errors import ConfigError
from personae.runner.identity import fingerprint

CONVERSATION_ONLY = (
    "opening",
    "turns",
    "until",
    "max_turns",
    "sessions",
    "carry_memory",
    "cue",
    "hearing",
)


class DayState(TypedDict):
    day: int


class Days(ScenarioBase):
    """A minimal day loop: every participant says one line a day; probes run each tick."""

    moments: ClassVar[tuple[str, ...]] = ("start", "end", "tick")
    days: int = 3

    def graph(self) -> Any:
        graph: StateGraph[Any, Any, Any, Any] = StateGraph(DayState, context_schema=Episode)
        graph.add_node("day", one_day)
        graph.add_edge(START, "day")
        graph.add_conditional_edges("day", after_day, ["day", END])
        return graph

    def graph_input(self) -> dict[str, Any]:
        return {"day": 0}


async def one_day(state: DayState, runtime: Runtime[Any]) -> dict[str, Any]:
    episode = runtime.context
    day = state["day"]
    for name in episode.names:
        await episode.speak(name, {"session": day, "step": len(episode.transcript)}, purpose="day")
    await episode.probe_at(_tick(day))
    return {"day": day + 1}


def _tick(day):
    from personae.engine import ProbePoint

    return ProbePoint(moment="tick", session=day, turn=0, step=day)


async def after_day(state: DayState, runtime: Runtime[Any]) -> str:
    episode = runtime.context
    if episode.stopped is None and state["day"] < episode.scenario.days:
        return "day"
    return END


def people():
    return (Persona(name="Ann", role="student"), Persona(name="Bob", role="student"))


def test_a_conversation_is_a_scenario_base_with_the_conversation_fields_on_top():
    assert issubclass(Scenario, ScenarioBase)
    assert not set(CONVERSATION_ONLY) & set(ScenarioBase.model_fields)
    assert set(Scenario.model_fields) == set(ScenarioBase.model_fields) | set(CONVERSATION_ONLY)
    # what a day loop may vary in a grid: no conversation fields
    assert "max_turns" not in Days(name="d", agents=people()).parameter_names()
    with pytest.raises(ConfigError, match="unknown parameter 'max_turns'"):
        Days(name="d", agents=people()).with_params({"max_turns": 3})
    assert Days(name="d", agents=people()).with_params({"temperature": 0.1}).temperature == 0.1


async def test_tick_probes_run_once_per_day_with_the_day_in_step():
    seen = []

    def mood(episode, point):
        seen.append((point.moment, point.step))
        episode.record_state("Ann", "mood", float(point.step), source="probe", t=point.step)

    days = Days(name="d", agents=people(), days=3, probes=(Probe(mood, at="tick"),))
    model = FunctionModel.echo()
    episode = Episode(days, model, seed=4)
    result = await episode.run()
    assert seen == [("tick", 0), ("tick", 1), ("tick", 2)]
    assert [o.value for o in episode.states("mood")] == [0.0, 1.0, 2.0]
    # speak serves this loop too: the purpose and session it is given are recorded
    assert [(u.speaker, u.session) for u in result.transcript] == [
        ("Ann", 0),
        ("Bob", 0),
        ("Ann", 1),
        ("Bob", 1),
        ("Ann", 2),
        ("Bob", 2),
    ]
    assert {r["purpose"] for r in episode.log.rows["llm_calls"]} == {"day"}


async def test_a_monitor_at_tick_stops_a_day_loop():
    def enough(episode, point):
        return Stop("two days") if point.step == 1 else None

    days = Days(name="d", agents=people(), days=5, probes=(Monitor(enough, at="tick", name="m"),))
    result = await Episode(days, FunctionModel.echo(), seed=4).run()
    assert {u.session for u in result.transcript} == {0, 1}
    assert result.end_reason == "monitor(m): two days"


def test_a_probe_at_a_moment_the_loop_never_fires_is_refused():
    with pytest.raises(ValueError, match="runs at 'tick', which a Scenario never reaches"):
        Scenario(name="c", agents=people(), probes=(Probe(lambda e, p: None, at="tick"),))
    with pytest.raises(ValueError, match="runs at 'session_end', which a Days never reaches"):
        Days(name="d", agents=people(), probes=(Probe(lambda e, p: None, at="session_end"),))
    with pytest.raises(ValueError, match="runs at 'every=2', which a Days never reaches"):
        Days(name="d", agents=people(), probes=(Probe(lambda e, p: None, every=2),))


def test_a_scenario_base_without_a_graph_says_so():
    with pytest.raises(NotImplementedError, match="ScenarioBase defines no graph"):
        ScenarioBase(name="b", agents=people()).graph()


def test_a_day_loop_is_described_and_fingerprinted_without_conversation_fields():
    days = Days(name="d", agents=people(), params={"x": 1})
    data = days.describe()
    assert data["name"] == "d" and data["params"] == {"x": 1}
    assert not set(CONVERSATION_ONLY) & set(data)
    assert fingerprint(days) == fingerprint(Days(name="d", agents=people(), params={"x": 1}))
    assert fingerprint(days) != fingerprint(Days(name="d", agents=people(), params={"x": 2}))


def test_a_conversation_description_keeps_its_keys_in_order():
    # stored with every experiment: the split must not reorder or drop keys
    assert list(Scenario(name="c", agents=people()).describe()) == [
        "name",
        "agents",
        "rules",
        "opening",
        "turns",
        "until",
        "max_turns",
        "sessions",
        "carry_memory",
        "probes",
        "sampling",
        "params",
        "cue",
        "configure",
    ]
