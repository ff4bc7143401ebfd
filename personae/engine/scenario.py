"""Scenarios: who takes part, what they are asked to do, and how an episode unfolds.

Two layers:

- :class:`ScenarioBase` holds what every loop over personas uses: the agents
  and their rules, probes, sampling, free parameters with the ``configure`` /
  ``randomize`` / ``check`` hooks, a social network and the memory window. A
  loop that is not a conversation (the student cohort's day loop) builds on it.
- :class:`Scenario` adds the conversation: sessions, turn-taking, stop
  conditions, an opening line, cues, hearing and memory carried between sessions.

A scenario is validated, immutable data plus a few callables. It builds one
LangGraph ``StateGraph`` (``scenario.graph()``), compiled once and reused by
every episode; the per-episode objects (agents, seeded generator, log) travel
as the graph's run-time context, an :class:`~personae.engine.episode.Episode`.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from personae.agents.persona import Demographics, Persona
from personae.engine.probes import Probe
from personae.engine.turns import RoundRobin, TurnPolicy
from personae.engine.until import Condition, Never
from personae.engine.view import TurnView
from personae.errors import ConfigError
from personae.world.networks import Network

__all__ = ["GRID_FIELDS", "Opening", "Scenario", "ScenarioBase", "format_validation_error"]

#: Scenario fields a parameter grid may set by their plain name (a conversation's).
GRID_FIELDS = (
    "max_turns",
    "sessions",
    "max_tokens",
    "temperature",
    "top_p",
    "carry_memory",
    "hearing",
    "memory_window",
)


#: Compiled graphs of the framework's loops, by the ``graph`` method that builds them.
_COMPILED: dict[Any, Any] = {}


class Opening(BaseModel):
    """A scripted first line that starts every session."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    speaker: str
    text: str


class ScenarioBase(BaseModel):
    """What every loop over personas shares: participants, probes, sampling, parameters.

    Subclass it for a loop that is not a conversation; give the subclass a
    ``graph()`` (and a ``new_episode`` if its episode is an
    :class:`~personae.engine.episode.Episode` subclass), and set
    :attr:`moments` to the probe moments its loop fires so that a probe which
    would never run is refused when the scenario is built.

    Args:
        name: Identifies the scenario in the database.
        agents: One or more personas with distinct names.
        rules: Instructions added to a participant's system prompt, keyed by
            name or role.
        probes: Code run at chosen points (see :class:`~personae.engine.probes.Probe`
            and :class:`~personae.engine.probes.Monitor`).
        max_tokens: Longest reply in tokens.
        temperature: Sampling temperature of replies.
        top_p: Nucleus sampling mass.
        params: Free parameters that the grid may set and the scenario's own
            callables read (``episode.params``).
        configure: ``configure(scenario, params)`` returns the scenario for one
            parameter set; runs after the grid values are applied.
        randomize: ``randomize(scenario, seed)`` returns the scenario for one
            episode, from a seed derived from the episode seed (e.g. participants
            drawn from a population); runs when the episode starts.
        check: ``check(scenario)`` refuses a parameter set before any episode
            runs, by raising :class:`~personae.errors.ConfigError` (or any
            exception); it sees the scenario with the set applied. Use it for
            values that only the per-episode code would trip over (e.g. an
            unknown topic that ``randomize`` looks up).
        network: A social graph among the agents (see
            :class:`~personae.world.networks.Network`), drawn per episode
            from its seed and stored in ``states`` (variable ``network``).
        memory_window: Keep only this many recent utterances in each prompt
            (for large groups); earlier ones stay in the database.
        endpoints: Who speaks through which named model endpoint: an agent's
            name or role, or ``"judge"`` for judges, -> the endpoint's name
            (see :mod:`personae.engine.models`); whoever is not here uses the
            run's ``default`` endpoint. The parameter ``"<who>.endpoint"`` sets
            one entry, so a grid can vary it (``--grid counselor.endpoint=a,b``).

    Raises:
        ConfigError: Names clash, or a rule, network or probe names someone
            not in the scenario, or a probe waits for a moment this loop never fires.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    #: Fields a parameter grid may set by their plain name.
    grid_fields: ClassVar[tuple[str, ...]] = ("max_tokens", "temperature", "top_p", "memory_window")
    #: Probe moments this loop fires (``"turn"``: probes with ``every=`` run).
    moments: ClassVar[tuple[str, ...]] = ("start", "end", "tick")

    name: str = Field(min_length=1)
    agents: tuple[Persona, ...] = Field(min_length=1)
    rules: dict[str, str] = Field(default_factory=dict)
    probes: tuple[Probe, ...] = ()
    max_tokens: int = Field(default=96, ge=1)
    temperature: float = Field(default=0.8, ge=0.0, le=2.0)
    top_p: float = Field(default=0.95, gt=0.0, le=1.0)
    params: dict[str, Any] = Field(default_factory=dict)
    configure: Callable[[Any, Mapping[str, Any]], Any] | None = None
    randomize: Callable[[Any, int], Any] | None = None
    check: Callable[[Any], None] | None = None
    network: Network | None = None
    memory_window: int | None = Field(default=None, ge=1)
    endpoints: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> ScenarioBase:
        names = self.names
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"agent names must be unique; repeated: {', '.join(dupes)}")
        roles = {p.role for p in self.agents}
        unknown = [k for k in self.rules if k not in names and k not in roles]
        if unknown:
            raise ValueError(f"rules for {unknown}, who is neither a name nor a role here")
        unbound = [k for k in self.endpoints if k not in names and k not in roles and k != "judge"]
        if unbound:
            raise ValueError(
                f"endpoints for {unbound}, who is neither a name nor a role here nor 'judge'"
            )
        for probe in self.probes:
            never: list[str] = [m for m in probe.at if m not in self.moments]
            if probe.every is not None and "turn" not in self.moments:
                never.append(f"every={probe.every}")
            if never:
                raise ValueError(
                    f"probe {probe.label()!r} runs at {', '.join(map(repr, never))}, which a "
                    f"{type(self).__name__} never reaches (its moments: {', '.join(self.moments)})"
                )
        try:
            self._check_loop(names)
            if self.network is not None:
                self.network.check(names, {p.name: p.role for p in self.agents})
            for probe in self.probes:
                probe.check(names, {p.name: p.role for p in self.agents})
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return self

    def _check_loop(self, names: tuple[str, ...]) -> None:
        """Checks of a subclass's own fields (raise ValueError or ConfigError)."""

    @property
    def names(self) -> tuple[str, ...]:
        """Participant names in order."""
        return tuple(p.name for p in self.agents)

    def persona(self, who: str) -> Persona:
        """The persona called ``who``, or the only one with role ``who``."""
        for p in self.agents:
            if p.name == who:
                return p
        by_role = [p for p in self.agents if p.role == who]
        if len(by_role) == 1:
            return by_role[0]
        raise ConfigError(f"no participant named {who!r} (participants: {', '.join(self.names)})")

    def rules_for(self, persona: Persona) -> str:
        """The scenario instructions for one participant (role rules, then name rules)."""
        parts = [self.rules.get(persona.role, ""), self.rules.get(persona.name, "")]
        return "\n".join(p for p in parts if p)

    # -- parameters ---------------------------------------------------------------------

    def parameter_names(self) -> list[str]:
        """Names a parameter grid may use with this scenario."""
        keys = list(self.grid_fields) + sorted(self.params)
        for p in self.agents:
            keys += [f"{p.name}.{f}" for f in Persona.model_fields if f not in ("name",)]
            keys.append(f"{p.name}.endpoint")
        keys.append("judge.endpoint")
        return keys

    def with_params(self, params: Mapping[str, Any]) -> Any:
        """The scenario with one parameter set applied (an instance of the same class).

        Keys are scenario fields (:attr:`grid_fields`: ``max_turns``,
        ``sessions``, ``temperature``, ...), entries of ``params``, or
        ``"<name or role>.<persona field>"`` (one level deeper for ``big_five``
        and ``demographics``, e.g. ``"client.big_five.N"``).

        Raises:
            ConfigError: A key is unknown or a value is invalid; the message names it.
        """
        top: dict[str, Any] = {}
        free = dict(self.params)
        bound = dict(self.endpoints)
        personas = {p.name: p.model_dump() for p in self.agents}
        for key, value in params.items():
            if key in self.grid_fields:
                top[key] = value
            elif key in self.params:
                free[key] = value
            elif key.endswith(".endpoint") and key.count(".") == 1:
                bound[self._binding_key(key)] = str(value)
            elif "." in key:
                who, _, path = key.partition(".")
                try:
                    target = personas[self.persona(who).name]
                except ConfigError:
                    raise ConfigError(self._unknown_param(key)) from None
                field, _, sub = path.partition(".")
                if field not in Persona.model_fields or field == "name":
                    raise ConfigError(self._unknown_param(key))
                if sub:
                    if field not in ("big_five", "demographics"):
                        raise ConfigError(self._unknown_param(key))
                    target[field] = {**(target[field] or {}), sub: value}
                else:
                    target[field] = value
            else:
                raise ConfigError(self._unknown_param(key))
        try:
            agents = tuple(Persona.model_validate(d) for d in personas.values())
            new = self.model_copy(update={})
            data = {f: getattr(new, f) for f in type(self).model_fields}
            data.update(top, agents=agents, params=free, endpoints=bound)
            scenario = type(self).model_validate(data)
        except ValidationError as exc:
            raise ConfigError(
                f"parameters {dict(params)} make an invalid scenario {self.name!r}: "
                + format_validation_error(exc)
            ) from None
        if self.configure is not None:
            scenario = self.configure(scenario, scenario.params)
        return scenario

    def _binding_key(self, key: str) -> str:
        who = key.removesuffix(".endpoint")
        if who == "judge" or who in {p.role for p in self.agents}:
            return who
        try:
            return self.persona(who).name
        except ConfigError:
            raise ConfigError(self._unknown_param(key)) from None

    def _unknown_param(self, key: str) -> str:
        fields = [f for f in Persona.model_fields if f != "name"]
        people = sorted({p.name for p in self.agents} | {p.role for p in self.agents if p.role})
        candidates = list(self.grid_fields) + sorted(self.params)
        for who in people:
            candidates += [f"{who}.{f}" for f in fields]
            candidates += [f"{who}.big_five.{trait}" for trait in "OCEAN"]
            candidates += [f"{who}.demographics.{f}" for f in Demographics.model_fields]
            candidates.append(f"{who}.endpoint")
        close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        free = (
            f" entries of Scenario.params ({', '.join(sorted(self.params))}),"
            if self.params
            else ""
        )
        return (
            f"unknown parameter {key!r} for scenario {self.name!r}.{hint} Parameters are "
            f"scenario fields ({', '.join(self.grid_fields)}),{free} or '<name or role>.<field>' "
            f"for {', '.join(people)} with the fields {', '.join(fields)} "
            "(one level deeper for big_five.O/C/E/A/N and demographics.<field>), or "
            "'<name, role or judge>.endpoint' for the model endpoint they use."
        )

    # -- description and graph ----------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """A readable, JSON-ready description, stored with the experiment.

        Callables appear by name only. The experiment's identity is computed
        from the scenario itself, code included (see
        :mod:`personae.runner.identity`), not from this description.
        """
        return {
            "name": self.name,
            "agents": [p.model_dump(mode="json") for p in self.agents],
            "rules": self.rules,
            **self._describe_loop(),
            "probes": self._describe_probes(),
            "sampling": self._describe_sampling(),
            "params": json.loads(json.dumps(self.params, default=str)),
            **self._describe_callables(),
            **self._describe_optional(),
        }

    def _describe_loop(self) -> dict[str, Any]:
        """The loop's own settings, described after the participants (none here)."""
        return {}

    def _describe_callables(self) -> dict[str, Any]:
        from personae.runner.identity import callable_label

        return {"configure": callable_label(self.configure)}

    def _describe_probes(self) -> list[dict[str, Any]]:
        from personae.runner.identity import callable_label

        probes = []
        for p in self.probes:
            data = p.describe()
            if not callable(getattr(p.fn, "describe", None)):
                data["fn"] = callable_label(p.fn)
            probes.append(data)
        return probes

    def _describe_sampling(self) -> dict[str, Any]:
        return {"max_tokens": self.max_tokens, "temperature": self.temperature, "top_p": self.top_p}

    def _describe_optional(self) -> dict[str, Any]:
        from personae.runner.identity import callable_label

        return {
            **({"randomize": callable_label(self.randomize)} if self.randomize else {}),
            **({"check": callable_label(self.check)} if self.check else {}),
            **({"network": self.network.describe()} if self.network else {}),
            **({"endpoints": dict(self.endpoints)} if self.endpoints else {}),
        }

    def new_episode(self, model: Any, *, seed: int, log: Any = None) -> Any:
        """The :class:`~personae.engine.episode.Episode` that runs this scenario once."""
        from personae.engine.episode import Episode

        return Episode(self, model, seed=seed, log=log)

    def graph(self) -> Any:
        """A new, uncompiled LangGraph ``StateGraph`` whose context is the episode.

        Raises:
            NotImplementedError: Always, here: each loop defines its own graph.
        """
        raise NotImplementedError(f"{type(self).__name__} defines no graph(); its loop must")

    def graph_input(self) -> dict[str, Any]:
        """The graph's initial state, as :meth:`Episode.run` starts it."""
        return {}

    def recursion_limit(self) -> int:
        """Enough graph steps for the longest possible episode."""
        return 10_000

    @cached_property
    def compiled(self) -> Any:
        """The compiled graph, shared by every episode.

        The framework's loops (the conversation, the cohort's day) build the same
        graph for every scenario of a class (the scenario is read at run time,
        from the episode), so it is compiled once per class; a ``graph()``
        written outside personae is compiled once per scenario.
        """
        build = type(self).graph
        if not build.__module__.startswith("personae."):
            return self.graph().compile()
        compiled = _COMPILED.get(build)
        if compiled is None:
            compiled = _COMPILED[build] = self.graph().compile()
        return compiled


class Scenario(ScenarioBase):
    """A conversation between personas (the fields of :class:`ScenarioBase`, and these).

    Args:
        agents: Two or more personas with distinct names.
        opening: A scripted first line for each session.
        turns: Who speaks next (RoundRobin, Script, RandomOrder, Moderated).
        until: When a session ends early (MaxTurns, Says, When, composed with
            | and &); it sees the transcript and the states recorded so far
            (:meth:`TurnView.states`).
        max_turns: Utterances per session at most, the opening included.
        sessions: Sessions per episode; memory is carried between them.
        carry_memory: ``"summary"`` (each agent summarises the session, recorded
            in ``memories``), ``"full"`` (keep every utterance) or ``"none"``.
        cue: ``cue(view, speaker)`` returns a one-off instruction appended to
            that speaker's prompt for this turn only (e.g. a therapy stage).
        hearing: ``"everyone"`` hears every utterance, or only the speaker's
            ``"neighbours"`` in the network (recorded in ``turns.visible_to``).

    Raises:
        ConfigError: Names clash or a policy names someone not in the scenario.
    """

    grid_fields: ClassVar[tuple[str, ...]] = GRID_FIELDS
    moments: ClassVar[tuple[str, ...]] = ("start", "end", "session_start", "session_end", "turn")

    opening: Opening | None = None
    turns: TurnPolicy = RoundRobin()
    until: Condition = Never()
    max_turns: int = Field(default=12, ge=1, le=10_000)
    sessions: int = Field(default=1, ge=1, le=1000)
    carry_memory: Literal["summary", "full", "none"] = "summary"
    cue: Callable[[TurnView, str], str | None] | None = None
    hearing: Literal["everyone", "neighbours"] = "everyone"

    def _check_loop(self, names: tuple[str, ...]) -> None:
        if self.opening and self.opening.speaker not in names:
            raise ValueError(f"opening speaker {self.opening.speaker!r} is not one of {names}")
        if self.hearing == "neighbours" and self.network is None:
            raise ValueError("hearing='neighbours' needs a network (Scenario.network)")
        self.turns.check(names)

    def _describe_loop(self) -> dict[str, Any]:
        return {
            "opening": self.opening.model_dump() if self.opening else None,
            "turns": self.turns.model_dump(mode="json"),
            "until": json.loads(json.dumps(_condition_repr(self.until))),
            "max_turns": self.max_turns,
            "sessions": self.sessions,
            "carry_memory": self.carry_memory,
        }

    def _describe_callables(self) -> dict[str, Any]:
        from personae.runner.identity import callable_label

        return {"cue": callable_label(self.cue), **super()._describe_callables()}

    def _describe_optional(self) -> dict[str, Any]:
        return {
            **super()._describe_optional(),
            **({"hearing": self.hearing} if self.hearing != "everyone" else {}),
            **({"memory_window": self.memory_window} if self.memory_window else {}),
        }

    def graph(self) -> Any:
        """A new, uncompiled LangGraph ``StateGraph`` for this scenario, to extend."""
        from personae.engine.conversation import build_graph

        return build_graph(self)

    def graph_input(self) -> dict[str, Any]:
        from personae.engine.conversation import initial_state

        return dict(initial_state())

    def recursion_limit(self) -> int:
        from personae.engine.conversation import recursion_limit

        return recursion_limit(self)


def _condition_repr(c: Condition) -> Any:
    data: dict[str, Any] = {"kind": getattr(c, "kind", type(c).__name__)}
    for field in type(c).model_fields:
        value = getattr(c, field)
        if isinstance(value, tuple) and value and isinstance(value[0], Condition):
            data[field] = [_condition_repr(v) for v in value]
        elif callable(value):
            from personae.runner.identity import callable_label

            data[field] = callable_label(value)
        else:
            data[field] = value
    return data


def format_validation_error(exc: ValidationError) -> str:
    """One line per problem: the field's path and the reason."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "(value)"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)
