"""One episode: a scenario run once, with its own seed, agents and log.

An :class:`Episode` is the run-time context of the scenario's graph, whatever
the loop (the conversation, :mod:`personae.engine.conversation`; the cohort's
day loop). It owns what every loop uses: the agents, seeds, model calls
(:meth:`~Episode.call`, recorded in ``llm_calls``), speaking
(:meth:`~Episode.speak`) and asking aside (:meth:`~Episode.ask`), the
transcript and recorded states, probes and monitors' actions, and the log that
receives the typed rows of :mod:`personae.store.rows`.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import networkx as nx

from personae.agents.agent import Agent
from personae.agents.memory import Memory, Utterance
from personae.engine.calls import ModelCalls
from personae.engine.models import Models, as_models
from personae.engine.probes import Action, Cue, Moment, Probe, ProbePoint, Stop
from personae.engine.scenario import ScenarioBase
from personae.engine.sink import EpisodeLog, MemoryLog
from personae.engine.view import Observation, RecordedStates, TurnView
from personae.llm.base import ChatModel, Completion, Message
from personae.llm.structured import StructuredOutput
from personae.seeds import derive_seed
from personae.store.rows import (
    AgentRecord,
    StateRecord,
    TurnRecord,
)

__all__ = ["Episode", "EpisodeResult"]


@dataclass(frozen=True, slots=True)
class EpisodeResult:
    """What an episode produced.

    Attributes:
        transcript: Every utterance, in order.
        end_reason: Why the last session ended (``"max_turns(12)"``,
            ``"says(goodbye)"``, ``"monitor(risk): ..."`` when a monitor stopped it).
        calls: Model calls that succeeded.
        completion_tokens: Tokens those calls generated.
    """

    transcript: tuple[Utterance, ...]
    end_reason: str | None
    calls: int
    completion_tokens: int


class Episode(ModelCalls):
    """A scenario run once.

    Args:
        scenario: The scenario, with this episode's parameters already applied.
        model: The chat model every agent speaks through, or the run's
            :class:`~personae.engine.models.Models` by endpoint name (agents and
            judges then use the endpoint the scenario binds them to).
        seed: The episode seed; every sampling seed and random choice derives from it.
        log: Receives rows (default: kept in memory, see ``episode.log.rows``).

    Attributes:
        models: The run's models by endpoint name (one session per model that
            offers one while :meth:`run` runs, see :meth:`Models.for_episode
            <personae.engine.models.Models.for_episode>`).
        request_extensions: Agent name -> extensions merged into
            ``Sampling.extensions`` of every request made on that agent's behalf
            (not a judge's); e.g. a steering probe sets them from a given step on.
        stopped: The end reason a monitor's :class:`~personae.engine.probes.Stop`
            set, or None while no monitor has stopped the episode.

    Example:
        >>> result = asyncio.run(Episode(scenario, FunctionModel.echo(), seed=1).run())  # doctest: +SKIP
    """

    def __init__(
        self,
        scenario: ScenarioBase,
        model: ChatModel | Models,
        *,
        seed: int,
        log: EpisodeLog | None = None,
    ) -> None:
        self._compiled_from = scenario
        self.drawn: dict[str, Any] = {}
        if scenario.randomize is not None:
            given = scenario.params
            scenario = scenario.randomize(scenario, derive_seed(seed, "randomize"))
            self.drawn = {
                k: v for k, v in scenario.params.items() if k not in given or given[k] != v
            }
        # Typed as Any: each loop reads its own scenario class's fields.
        self.scenario: Any = scenario
        self.models = as_models(model)
        self.models.check({who: name for who, name in scenario.endpoints.items()})
        self.model = self.models.default
        self.request_extensions: dict[str, dict[str, Any]] = {}
        for who, endpoint in scenario.endpoints.items():
            # The assignment travels with the episode's parameters, so every analysis
            # frame that spreads them (param:<who>.model) can be split by model.
            self.drawn[f"{who}.model"] = getattr(self.models.get(endpoint), "name", None)
        self.seed = seed
        self.log: EpisodeLog = log if log is not None else MemoryLog()
        self.names = scenario.names
        self.roles = {p.name: p.role for p in scenario.agents}
        named = len(self.names) > 2
        self.agents = {
            p.name: Agent(
                p,
                self.models.get(self._endpoint_of(p.name, p.role)),
                rules=scenario.rules_for(p),
                named=named,
                window=scenario.memory_window,
            )
            for p in scenario.agents
        }
        self.rng = random.Random(derive_seed(seed, "turn-order"))
        self.transcript: list[Utterance] = []
        self._session_start = 0
        self.calls = 0
        self.completion_tokens = 0
        self.stopped: str | None = None
        self._cues: dict[str, list[str]] = {}
        self._recorded = RecordedStates()
        self._occasions: dict[tuple[str, str], int] = {}
        self.agent_ids: dict[str, int] = {}
        for p in scenario.agents:
            agent_id = self.log.new_id("agents")
            self.agent_ids[p.name] = agent_id
            self.log.add(
                AgentRecord(
                    id=agent_id,
                    name=p.name,
                    role=p.role,
                    persona_json=p.model_dump_json(),
                    system_prompt=self.agents[p.name].system_prompt(),
                )
            )
        self.graph: nx.Graph | None = None
        self._listeners: dict[str, list[str]] | None = None
        if scenario.network is not None:
            self.graph = scenario.network.build(
                self.names, self.roles, derive_seed(seed, "network")
            )
            data = nx.node_link_data(self.graph, edges="edges")
            self.record_state(None, "network", text=json.dumps(data), source="scenario", t=0)
            if getattr(scenario, "hearing", "everyone") == "neighbours":
                self._listeners = self._neighbourhoods(self.graph)

    @property
    def params(self) -> Mapping[str, Any]:
        """The scenario's free parameters for this episode."""
        return self.scenario.params

    async def run(self) -> EpisodeResult:
        """Run the scenario's compiled graph to the end."""
        shared = self.models
        with shared.for_episode(str(self.seed)) as models:
            self.models = models
            try:
                state = await self._compiled_from.compiled.ainvoke(
                    self.scenario.graph_input(),
                    context=self,
                    config={"recursion_limit": self.scenario.recursion_limit()},
                )
            finally:
                self.models = shared
        return EpisodeResult(
            transcript=tuple(self.transcript),
            end_reason=self.stopped or state.get("end_reason"),
            calls=self.calls,
            completion_tokens=self.completion_tokens,
        )

    def view(self, state: Mapping[str, Any]) -> TurnView:
        """The view handed to policies, stop conditions and cues.

        Args:
            state: Holds ``session``, ``turn`` and ``step``.
        """
        history = self.transcript[self._session_start :]
        return TurnView(
            session=state["session"],
            turn=state["turn"],
            step=state["step"],
            names=self.names,
            roles=self.roles,
            last=history[-1] if history else None,
            history=history,
            params=self.params,
            rng=self.rng,
            max_turns=getattr(self.scenario, "max_turns", 0),
            graph=self.graph,
            recorded=self._recorded,
        )

    # -- speaking and asking ----------------------------------------------------------------

    async def speak(
        self,
        name: str,
        state: Mapping[str, Any],
        *,
        cue: str | None = None,
        purpose: str = "turn",
        others: list[str] | None = None,
        heard: list[str] | None = None,
    ) -> Utterance:
        """Have ``name`` say its next line, record it, and let those present hear it.

        Any loop may call it. It advances no counter: the caller says where
        the utterance belongs (``state``) and moves its own step on.

        The prompt is the agent's conversation prompt (persona, rules, memory)
        plus ``cue`` and any cues monitors left for ``name``, which are used up.
        The call is sampled with the scenario's ``max_tokens``, ``temperature``
        and ``top_p`` under the seed ``derive_seed(episode.seed, purpose, name,
        session, step)``; it is recorded in ``llm_calls`` with ``purpose`` and
        the utterance in ``turns`` (see :meth:`hear_reply`).

        Args:
            name: The speaker.
            state: Holds ``session`` (a conversation's session; a day loop's
                day) and ``step`` (the utterance's step in the episode).
            cue: A one-off instruction for this turn.
            purpose: The call's ``llm_calls.purpose`` (the cohort: ``"peer"``).
            others: Names whose lines cleaning cuts off (default: every other participant).
            heard: Who hears it (default: the scenario's hearing rule).

        Returns:
            The recorded utterance.
        """
        agent = self.agents[name]
        session, step = state["session"], state["step"]
        waiting = self._cues.pop(name, [])
        if waiting:
            cue = "\n".join([c for c in (cue, *waiting) if c])
        completion, call_id = await self.call(
            name,
            agent.messages(cue),
            purpose=purpose,
            step=step,
            seed=derive_seed(self.seed, purpose, name, session, step),
            max_tokens=self.scenario.max_tokens,
            temperature=self.scenario.temperature,
            top_p=self.scenario.top_p,
        )
        return self.hear_reply(
            name, completion, call_id, session=session, step=step, others=others, heard=heard
        )

    def hear_reply(
        self,
        name: str,
        completion: Completion,
        call_id: int,
        *,
        session: int,
        step: int,
        others: list[str] | None = None,
        heard: list[str] | None = None,
    ) -> Utterance:
        """Turn a model reply into ``name``'s utterance, record it and let others hear it.

        The reply is cleaned (:meth:`Agent.clean_reply`); what cleaning removed
        is kept in ``turns.cleaned``, a reply cut by ``max_tokens`` ends at its
        last complete sentence and is flagged ``truncated``, and one that is empty after cleaning is stored empty and
        flagged ``empty``. The raw reply is in the call's ``llm_calls.raw_text``.

        Args:
            name: The speaker.
            completion: The model's reply.
            call_id: Its ``llm_calls`` row.
            session: The session (or day) the utterance belongs to.
            step: Its step in the episode.
            others: Names whose lines cleaning cuts off (default: every other participant).
            heard: Who hears it (default: the scenario's hearing rule).
        """
        agent = self.agents[name]
        if others is None:
            others = [n for n in self.names if n != name]
        cut = completion.finish_reason == "length"
        text, removed = agent.clean_reply(completion.text, others, cut=cut)
        utterance = Utterance(name, text, session, step)
        self._hear(
            utterance,
            call_id=call_id,
            heard=heard,
            truncated=cut,
            cleaned=json.dumps(removed) if removed else None,
        )
        return utterance

    async def ask(
        self,
        name: str,
        question: str,
        *,
        purpose: str,
        max_tokens: int = 64,
        temperature: float = 0.0,
        response_format: StructuredOutput | Mapping[str, Any] | None = None,
        memory: Memory | None = None,
        step: int | None = None,
    ) -> str:
        """Ask ``name`` a question outside the conversation and return the raw answer.

        The agent answers from its persona and a snapshot of its memory; the
        question and answer never enter the conversation or its memory. The
        call is recorded with ``purpose``.
        """
        text, _ = await self.ask_recorded(
            name,
            question,
            purpose=purpose,
            max_tokens=max_tokens,
            temperature=temperature,
            response_format=response_format,
            memory=memory,
            step=step,
        )
        return text

    async def ask_recorded(
        self,
        name: str,
        question: str,
        *,
        purpose: str,
        max_tokens: int = 64,
        temperature: float = 0.0,
        response_format: StructuredOutput | Mapping[str, Any] | None = None,
        memory: Memory | None = None,
        step: int | None = None,
    ) -> tuple[str, int]:
        """Like :meth:`ask`, returning the answer and the id of its ``llm_calls`` row."""
        agent = self.agents[name]
        snapshot = (memory or agent.memory).snapshot()
        messages: list[Message] = [
            {"role": "system", "content": agent.system_prompt(snapshot)},
            *snapshot.messages(agent.window),
            {"role": "user", "content": question},
        ]
        at = len(self.transcript) if step is None else step
        completion, call_id = await self.call(
            name,
            messages,
            purpose=purpose,
            step=at,
            seed=derive_seed(self.seed, purpose, name, at, question),
            max_tokens=max_tokens,
            temperature=temperature,
            response_format=response_format,
        )
        return completion.text.strip(), call_id

    def next_occasion(self, name: str, key: str) -> int:
        """Count administrations of ``key`` (an instrument) to ``name``: 0, 1, 2, ..."""
        occasion = self._occasions.get((name, key), 0)
        self._occasions[(name, key)] = occasion + 1
        return occasion

    # -- states -------------------------------------------------------------------------------

    def record_state(
        self,
        name: str | None,
        variable: str,
        value: float | None = None,
        *,
        text: str | None = None,
        source: str = "scenario",
        t: int | None = None,
        session: int | None = None,
    ) -> None:
        """Write one observation (a number and/or text) to the ``states`` table.

        The episode also keeps it in memory for :meth:`states`, stop
        conditions and monitors (:meth:`TurnView.states`).

        Args:
            name: The participant observed, or None for the episode as a whole.
            variable: What is observed.
            value: The number, if any.
            text: The text, if any.
            source: Who observed it (``"probe"``, ``"rule"``, ...).
            t: When (default: utterances so far).
            session: The session, if it matters.
        """
        at = len(self.transcript) if t is None else t
        self.log.add(
            StateRecord(
                id=self.log.new_id("states"),
                agent_id=self.agent_ids.get(name) if name else None,
                session=session,
                t=at,
                variable=variable,
                value=value,
                text=text,
                source=source,
            )
        )
        self._recorded.add(Observation(name, variable, value, text, at, session, source))

    def states(
        self, variable: str | None = None, *, agent: str | None = None, source: str | None = None
    ) -> tuple[Observation, ...]:
        """The states recorded so far (the latest few hundred of each series), oldest first.

        Args:
            variable: Only this variable.
            agent: Only this participant's (a name).
            source: Only rows from this source.
        """
        return self._recorded.select(variable, agent=agent, source=source)

    # -- probes and monitors ----------------------------------------------------------------

    async def run_probes(self, moment: Moment, state: Mapping[str, Any]) -> tuple[Action, ...]:
        """Run every probe due at this point (see :meth:`probe_at`)."""
        if not self.scenario.probes:
            return ()
        point = ProbePoint(
            moment=moment, session=state["session"], turn=state["turn"], step=state["step"]
        )
        return await self.probe_at(point)

    async def probe_at(self, point: ProbePoint) -> tuple[Action, ...]:
        """Run every probe due at ``point``, all at once, then apply monitors' actions.

        Probes are side-effect free (they never touch the conversation or any
        memory), so they run concurrently: their requests share the server's
        batch instead of queueing behind one another. Each is started in the
        order the scenario lists them, so occasion numbers and seeds do not
        depend on timing. Monitors' actions are applied (:meth:`apply`) once
        all of them have finished, in the scenario's order.

        Returns:
            The actions applied.
        """
        due = [probe for probe in self.scenario.probes if probe.due(point)]
        if not due:
            return ()
        results = await asyncio.gather(*(probe(self, point) for probe in due))
        applied: list[Action] = []
        for probe, result in zip(due, results, strict=True):
            actions = probe.actions(result)
            self.apply(actions, point, probe)
            applied += actions
        return tuple(applied)

    def apply(self, actions: tuple[Action, ...], point: ProbePoint, monitor: Probe) -> None:
        """Apply a monitor's actions at ``point`` (a loop calls this between turns).

        A :class:`~personae.engine.probes.Stop` sets :attr:`stopped` (the first
        one wins) and records a ``states`` row ``stop`` (source ``monitor``); the
        loop ends the episode at its next check. A
        :class:`~personae.engine.probes.Cue` waits for the speaker's next
        :meth:`speak` and is recorded as a ``states`` row ``cue``.

        Raises:
            ConfigError: A cue names no participant.
        """
        t, session = point.step, point.session
        for action in actions:
            if isinstance(action, Stop):
                if self.stopped is None:
                    self.stopped = f"monitor({monitor.label()}): {action.reason}"
                self.record_state(
                    None, "stop", text=action.reason, source="monitor", t=t, session=session
                )
            elif isinstance(action, Cue):
                name = self.scenario.persona(action.speaker).name
                self._cues.setdefault(name, []).append(action.text)
                self.record_state(
                    name, "cue", text=action.text, source="monitor", t=t, session=session
                )

    # -- internals ------------------------------------------------------------------------

    def _neighbourhoods(self, graph: nx.Graph) -> dict[str, list[str]]:
        """Who hears each speaker: itself, its neighbours, and everyone outside the graph."""
        outside = [n for n in self.names if n not in graph]
        everyone = list(self.names)
        out = {}
        for name in self.names:
            if name not in graph:
                out[name] = everyone
            else:
                near = {name, *map(str, graph.neighbors(name)), *outside}
                out[name] = [n for n in self.names if n in near]
        return out

    def listeners(self, speaker: str) -> list[str]:
        """The names of everyone who hears ``speaker`` (the speaker included)."""
        if self._listeners is None:
            return list(self.names)
        return self._listeners[speaker]

    def _hear(
        self,
        utterance: Utterance,
        *,
        call_id: int | None,
        heard: list[str] | None = None,
        truncated: bool = False,
        cleaned: str | None = None,
    ) -> None:
        """Record an utterance and put it in the memory of those who hear it.

        ``heard`` overrides the scenario's hearing rule (e.g. a private exchange);
        whenever hearing is limited, ``turns.visible_to`` lists who heard it.
        """
        limited = heard is not None or self._listeners is not None
        self.transcript.append(utterance)
        heard = heard if heard is not None else self.listeners(utterance.speaker)
        for name in heard:
            self.agents[name].memory.add(utterance)
        self.log.add(
            TurnRecord(
                id=self.log.new_id("turns"),
                session=utterance.session,
                step=utterance.step,
                agent_id=self.agent_ids[utterance.speaker],
                visible_to=json.dumps(heard) if limited else None,
                content=utterance.text,
                scripted=int(call_id is None),
                llm_call_id=call_id,
                truncated=int(truncated),
                empty=int(not utterance.text),
                cleaned=cleaned,
            )
        )
