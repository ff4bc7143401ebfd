"""One episode: a scenario's conversation with its own seed, agents and log.

An :class:`Episode` is the run-time context of the scenario's graph. It owns
the agents, the seeded generator for turn-taking, the transcript, and the log
that receives rows. Every model call goes through :meth:`Episode.call`, which
derives the sampling seed and records the call.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import networkx as nx

from personae.agents.agent import Agent
from personae.agents.memory import Memory, Utterance
from personae.errors import ModelError
from personae.llm.base import ChatModel, Completion, Message
from personae.scenarios.graph import EpisodeState, initial_state, recursion_limit
from personae.scenarios.log import EpisodeLog, MemoryLog
from personae.scenarios.probes import Moment, ProbePoint
from personae.scenarios.scenario import Scenario
from personae.scenarios.view import TurnView
from personae.seeds import derive_seed
from personae.store.database import now
from personae.store.rows import clean_text

SUMMARY_QUESTION = (
    "The session has ended. In two or three sentences, note for yourself what was "
    "discussed and what matters for next time. Write only the note."
)


@dataclass(frozen=True, slots=True)
class EpisodeResult:
    """What an episode produced."""

    transcript: tuple[Utterance, ...]
    end_reason: str | None
    calls: int
    completion_tokens: int


class Episode:
    """A scenario run once.

    Args:
        scenario: The scenario, with this episode's parameters already applied.
        model: The chat model every agent speaks through.
        seed: The episode seed; every sampling seed and random choice derives from it.
        log: Receives rows (default: kept in memory, see ``episode.log.rows``).

    Example:
        >>> result = asyncio.run(Episode(scenario, FunctionModel.echo(), seed=1).run())  # doctest: +SKIP
    """

    def __init__(
        self,
        scenario: Scenario,
        model: ChatModel,
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
        self.scenario = scenario
        self.model = model
        self.seed = seed
        self.log: EpisodeLog = log if log is not None else MemoryLog()
        self.names = scenario.names
        self.roles = {p.name: p.role for p in scenario.agents}
        named = len(self.names) > 2
        self.agents = {
            p.name: Agent(
                p, model, rules=scenario.rules_for(p), named=named, window=scenario.memory_window
            )
            for p in scenario.agents
        }
        self.rng = random.Random(derive_seed(seed, "turn-order"))
        self.transcript: list[Utterance] = []
        self._session_start = 0
        self.calls = 0
        self.completion_tokens = 0
        self._occasions: dict[tuple[str, str], int] = {}
        self.agent_ids: dict[str, int] = {}
        for p in scenario.agents:
            agent_id = self.log.new_id("agents")
            self.agent_ids[p.name] = agent_id
            self.log.add(
                "agents",
                {
                    "id": agent_id,
                    "name": p.name,
                    "role": p.role,
                    "persona_json": p.model_dump_json(),
                },
            )
        self.graph: nx.Graph | None = None
        self._listeners: dict[str, list[str]] | None = None
        if scenario.network is not None:
            self.graph = scenario.network.build(
                self.names, self.roles, derive_seed(seed, "network")
            )
            data = nx.node_link_data(self.graph, edges="edges")
            self.record_state(None, "network", text=json.dumps(data), source="scenario", t=0)
            if scenario.hearing == "neighbours":
                self._listeners = self._neighbourhoods(self.graph)

    @property
    def params(self) -> Mapping[str, Any]:
        """The scenario's free parameters for this episode."""
        return self.scenario.params

    async def run(self) -> EpisodeResult:
        """Run the scenario's compiled graph to the end."""
        state = await self._compiled_from.compiled.ainvoke(
            initial_state(),
            context=self,
            config={"recursion_limit": recursion_limit(self.scenario)},
        )
        return EpisodeResult(
            transcript=tuple(self.transcript),
            end_reason=state.get("end_reason"),
            calls=self.calls,
            completion_tokens=self.completion_tokens,
        )

    def view(self, state: Mapping[str, Any]) -> TurnView:
        """The view handed to policies, stop conditions and cues."""
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
            max_turns=self.scenario.max_turns,
            graph=self.graph,
        )

    # -- graph nodes ----------------------------------------------------------------------

    async def begin_session(self, state: EpisodeState) -> dict[str, Any]:
        session, step = state["session"], state["step"]
        self._session_start = len(self.transcript)
        if session == 0:
            await self.run_probes("start", state)
        await self.run_probes("session_start", state)
        turn = 0
        opening = self.scenario.opening
        if opening is not None:
            self._hear(Utterance(opening.speaker, opening.text, session, step), call_id=None)
            turn, step = 1, step + 1
        over = turn >= self.scenario.max_turns
        return {
            "turn": turn,
            "step": step,
            "session_over": over,
            "end_reason": f"max_turns({self.scenario.max_turns})" if over else None,
        }

    async def take_turn(self, state: EpisodeState) -> dict[str, Any]:
        view = self.view(state)
        speaker = await self.scenario.turns.achoose(view, self)
        cue = self.scenario.cue(view, speaker) if self.scenario.cue else None
        await self.speak(speaker, state, cue=cue)
        turn, step = state["turn"] + 1, state["step"] + 1
        new = {**state, "turn": turn, "step": step}
        await self.run_probes("turn", new)
        view = self.view(new)
        reason = self.scenario.until.reason(view)
        if reason is None and turn >= self.scenario.max_turns:
            reason = f"max_turns({self.scenario.max_turns})"
        return {
            "turn": turn,
            "step": step,
            "session_over": reason is not None,
            "end_reason": reason,
        }

    async def end_session(self, state: EpisodeState) -> dict[str, Any]:
        await self.run_probes("session_end", state)
        session = state["session"] + 1
        if session < self.scenario.sessions:
            await self.carry_memory(state)
        else:
            await self.run_probes("end", state)
        return {"session": session, "session_over": False}

    # -- speaking and asking ----------------------------------------------------------------

    async def speak(
        self, name: str, state: Mapping[str, Any], *, cue: str | None = None
    ) -> Utterance:
        """Have ``name`` say its next line; everyone present hears it."""
        agent = self.agents[name]
        session, step = state["session"], state["step"]
        completion, call_id = await self.call(
            name,
            agent.messages(cue),
            purpose="turn",
            step=step,
            seed=derive_seed(self.seed, "turn", name, session, step),
            max_tokens=self.scenario.max_tokens,
            temperature=self.scenario.temperature,
            top_p=self.scenario.top_p,
        )
        return self.hear_reply(name, completion, call_id, session=session, step=step)

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
        is kept in ``turns.cleaned``, a reply cut by ``max_tokens`` is flagged
        ``truncated`` and one that is empty after cleaning is stored empty and
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
        text, removed = agent.clean_reply(completion.text, others)
        utterance = Utterance(name, text, session, step)
        flags = {
            "truncated": int(completion.finish_reason == "length"),
            "empty": int(not text),
            "cleaned": json.dumps(removed) if removed else None,
        }
        self._hear(utterance, call_id=call_id, heard=heard, flags=flags)
        return utterance

    async def ask(
        self,
        name: str,
        question: str,
        *,
        purpose: str,
        max_tokens: int = 64,
        temperature: float = 0.0,
        response_format: dict[str, Any] | None = None,
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
        response_format: dict[str, Any] | None = None,
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
        """Write one observation (a number and/or text) to the ``states`` table."""
        self.log.add(
            "states",
            {
                "id": self.log.new_id("states"),
                "agent_id": self.agent_ids.get(name) if name else None,
                "session": session,
                "t": len(self.transcript) if t is None else t,
                "variable": variable,
                "value": value,
                "text": text,
                "source": source,
            },
        )

    async def run_probes(self, moment: Moment, state: Mapping[str, Any]) -> None:
        """Run every probe due at this point (see :meth:`probe_at`)."""
        if not self.scenario.probes:
            return
        point = ProbePoint(
            moment=moment, session=state["session"], turn=state["turn"], step=state["step"]
        )
        await self.probe_at(point)

    async def probe_at(self, point: ProbePoint) -> None:
        """Run every probe due at ``point``, all at once.

        Probes are side-effect free (they never touch the conversation or any
        memory), so they run concurrently: their requests share the server's
        batch instead of queueing behind one another. Each is started in the
        order the scenario lists them, so occasion numbers and seeds do not
        depend on timing.
        """
        await asyncio.gather(
            *(probe(self, point) for probe in self.scenario.probes if probe.due(point))
        )

    async def carry_memory(self, state: Mapping[str, Any]) -> None:
        """Prepare every agent's memory for the next session, as the scenario says."""
        mode = self.scenario.carry_memory
        if mode == "full":
            return
        if mode == "none":
            for agent in self.agents.values():
                agent.memory.entries.clear()
            return

        async def summarize(agent: Agent) -> None:
            text, call_id = await self.ask_recorded(
                agent.name,
                SUMMARY_QUESTION,
                purpose="summary",
                max_tokens=96,
                temperature=self.scenario.temperature,
                response_format=None,
                memory=None,
                step=state["step"],
            )
            agent.memory.summarize(text)
            self.log.add(
                "memories",
                {
                    "id": self.log.new_id("memories"),
                    "agent_id": self.agent_ids[agent.name],
                    "session": state["session"],
                    "step": state["step"],
                    "kind": "summary",
                    "content": text,
                    "llm_call_id": call_id,
                },
            )

        await asyncio.gather(*(summarize(a) for a in self.agents.values()))

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
        flags: dict[str, Any] | None = None,
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
            "turns",
            {
                "id": self.log.new_id("turns"),
                "session": utterance.session,
                "step": utterance.step,
                "agent_id": self.agent_ids[utterance.speaker],
                "visible_to": json.dumps(heard) if limited else None,
                "content": utterance.text,
                "scripted": int(call_id is None),
                "llm_call_id": call_id,
                "created_at": now(),
                "truncated": 0,
                "empty": int(not utterance.text),
                "cleaned": None,
                **(flags or {}),
            },
        )

    async def call(
        self,
        name: str,
        messages: list[Message],
        *,
        purpose: str,
        step: int,
        seed: int,
        model: ChatModel | None = None,
        **sampling: Any,
    ) -> tuple[Completion, int]:
        """Send one request through ``model`` (default: the episode's) and record it in ``llm_calls``."""
        model = model or self.model
        call_id = self.log.new_id("llm_calls")
        row: dict[str, Any] = {
            "id": call_id,
            "agent_id": self.agent_ids[name],
            "purpose": purpose,
            "step": step,
            "seed": seed,
            "model": getattr(model, "name", None),
            "created_at": now(),
        }
        started = time.perf_counter()
        try:
            completion = await model.complete(messages, seed=seed, **sampling)
        except ModelError as exc:
            row.update(
                params_json=json.dumps(sampling, default=str),
                latency_ms=(time.perf_counter() - started) * 1000,
                error=str(exc),
            )
            self.log.add("llm_calls", row)
            raise
        self.calls += 1
        self.completion_tokens += completion.completion_tokens
        text, replaced = clean_text(completion.text)
        if replaced:
            # Keep what the server sent, bytes and all; hand on text SQLite can store.
            row["raw_bytes"] = completion.text.encode("utf-8", "surrogatepass")
            completion = dataclasses.replace(completion, text=text)
        row.update(
            raw_text=text,
            replaced_chars=replaced,
            model=completion.model,
            server=completion.server,
            params_json=json.dumps(completion.params or sampling, default=str, sort_keys=True),
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            latency_ms=completion.latency_ms,
            attempts=completion.attempts,
            finish_reason=completion.finish_reason,
        )
        self.log.add("llm_calls", row)
        return completion, call_id
