"""Scenarios: who takes part, how they take turns, when a session ends.

A :class:`Scenario` is validated, immutable data plus a few callables. It
builds one LangGraph ``StateGraph`` (``scenario.graph()``), compiled once and
reused by every episode; the per-episode objects (agents, seeded generator,
log) travel as the graph's run-time context, an
:class:`~personae.scenarios.episode.Episode`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from personae.agents.persona import Persona
from personae.environments.networks import Network
from personae.errors import ConfigError
from personae.scenarios.probes import Probe
from personae.scenarios.turns import RoundRobin, TurnPolicy
from personae.scenarios.until import Condition, Never
from personae.scenarios.view import TurnView

#: Scenario fields a parameter grid may set by their plain name.
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


class Opening(BaseModel):
    """A scripted first line that starts every session."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    speaker: str
    text: str


class Scenario(BaseModel):
    """A conversation between personas.

    Args:
        name: Identifies the scenario in the database.
        agents: Two or more personas with distinct names.
        rules: Instructions added to a participant's system prompt, keyed by
            name or role.
        opening: A scripted first line for each session.
        turns: Who speaks next (RoundRobin, Script, RandomOrder, Moderated).
        until: When a session ends early (MaxTurns, Says, When, composed with | and &).
        max_turns: Utterances per session at most, the opening included.
        sessions: Sessions per episode; memory is carried between them.
        carry_memory: ``"summary"`` (each agent summarises the session, recorded
            in ``memories``), ``"full"`` (keep every utterance) or ``"none"``.
        probes: Code run at chosen points (see :class:`Probe`).
        max_tokens: Longest reply in tokens.
        temperature: Sampling temperature of replies.
        top_p: Nucleus sampling mass.
        params: Free parameters that the grid may set and the scenario's own
            callables read (``episode.params``).
        cue: ``cue(view, speaker)`` returns a one-off instruction appended to
            that speaker's prompt for this turn only (e.g. a therapy stage).
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
            :class:`~personae.environments.networks.Network`), drawn per episode
            from its seed and stored in ``states`` (variable ``network``).
        hearing: ``"everyone"`` hears every utterance, or only the speaker's
            ``"neighbours"`` in the network (recorded in ``turns.visible_to``).
        memory_window: Keep only this many recent utterances in each prompt
            (for large groups); earlier ones stay in the database.

    Raises:
        ConfigError: Names clash or a policy names someone not in the scenario.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    name: str = Field(min_length=1)
    agents: tuple[Persona, ...] = Field(min_length=1)
    rules: dict[str, str] = Field(default_factory=dict)
    opening: Opening | None = None
    turns: TurnPolicy = RoundRobin()
    until: Condition = Never()
    max_turns: int = Field(default=12, ge=1, le=10_000)
    sessions: int = Field(default=1, ge=1, le=1000)
    carry_memory: Literal["summary", "full", "none"] = "summary"
    probes: tuple[Probe, ...] = ()
    max_tokens: int = Field(default=96, ge=1)
    temperature: float = Field(default=0.8, ge=0.0, le=2.0)
    top_p: float = Field(default=0.95, gt=0.0, le=1.0)
    params: dict[str, Any] = Field(default_factory=dict)
    cue: Callable[[TurnView, str], str | None] | None = None
    configure: Callable[[Scenario, Mapping[str, Any]], Scenario] | None = None
    randomize: Callable[[Scenario, int], Scenario] | None = None
    check: Callable[[Scenario], None] | None = None
    network: Network | None = None
    hearing: Literal["everyone", "neighbours"] = "everyone"
    memory_window: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        names = self.names
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"agent names must be unique; repeated: {', '.join(dupes)}")
        if self.opening and self.opening.speaker not in names:
            raise ValueError(f"opening speaker {self.opening.speaker!r} is not one of {names}")
        roles = {p.role for p in self.agents}
        unknown = [k for k in self.rules if k not in names and k not in roles]
        if unknown:
            raise ValueError(f"rules for {unknown}, who is neither a name nor a role here")
        if self.hearing == "neighbours" and self.network is None:
            raise ValueError("hearing='neighbours' needs a network (Scenario.network)")
        try:
            self.turns.check(names)
            if self.network is not None:
                self.network.check(names, {p.name: p.role for p in self.agents})
            for probe in self.probes:
                probe.check(names, {p.name: p.role for p in self.agents})
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return self

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
        keys = list(GRID_FIELDS) + sorted(self.params)
        for p in self.agents:
            keys += [f"{p.name}.{f}" for f in Persona.model_fields if f not in ("name",)]
        return keys

    def with_params(self, params: Mapping[str, Any]) -> Scenario:
        """The scenario with one parameter set applied.

        Keys are scenario fields (``max_turns``, ``sessions``, ``temperature``,
        ...), entries of ``params``, or ``"<name or role>.<persona field>"``
        (one level deeper for ``big_five`` and ``demographics``, e.g.
        ``"client.big_five.N"``).

        Raises:
            ConfigError: A key is unknown or a value is invalid; the message names it.
        """
        top: dict[str, Any] = {}
        free = dict(self.params)
        personas = {p.name: p.model_dump() for p in self.agents}
        for key, value in params.items():
            if key in GRID_FIELDS:
                top[key] = value
            elif key in self.params:
                free[key] = value
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
            data.update(top, agents=agents, params=free)
            scenario = type(self).model_validate(data)
        except ValidationError as exc:
            raise ConfigError(
                f"parameters {dict(params)} make an invalid scenario {self.name!r}: "
                + format_validation_error(exc)
            ) from None
        if self.configure is not None:
            scenario = self.configure(scenario, scenario.params)
        return scenario

    def _unknown_param(self, key: str) -> str:
        shown = ", ".join(self.parameter_names()[:30])
        return (
            f"unknown parameter {key!r} for scenario {self.name!r}. Parameters are scenario "
            f"fields, entries of Scenario.params, or '<name or role>.<persona field>': {shown}"
        )

    # -- description and graph ----------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """A readable, JSON-ready description, stored with the experiment.

        Callables appear by name only. The experiment's identity is computed
        from the scenario itself, code included (see
        :mod:`personae.runner.identity`), not from this description.
        """
        from personae.runner.identity import callable_label

        probes = []
        for p in self.probes:
            data = p.describe()
            if not callable(getattr(p.fn, "describe", None)):
                data["fn"] = callable_label(p.fn)
            probes.append(data)
        return {
            "name": self.name,
            "agents": [p.model_dump(mode="json") for p in self.agents],
            "rules": self.rules,
            "opening": self.opening.model_dump() if self.opening else None,
            "turns": self.turns.model_dump(mode="json"),
            "until": json.loads(json.dumps(_condition_repr(self.until))),
            "max_turns": self.max_turns,
            "sessions": self.sessions,
            "carry_memory": self.carry_memory,
            "probes": probes,
            "sampling": {
                "max_tokens": self.max_tokens,
                "temperature": self.temperature,
                "top_p": self.top_p,
            },
            "params": json.loads(json.dumps(self.params, default=str)),
            "cue": callable_label(self.cue),
            "configure": callable_label(self.configure),
            **({"randomize": callable_label(self.randomize)} if self.randomize else {}),
            **({"check": callable_label(self.check)} if self.check else {}),
            **({"network": self.network.describe()} if self.network else {}),
            **({"hearing": self.hearing} if self.hearing != "everyone" else {}),
            **({"memory_window": self.memory_window} if self.memory_window else {}),
        }

    def new_episode(self, model: Any, *, seed: int, log: Any = None) -> Any:
        """The :class:`~personae.scenarios.episode.Episode` that runs this scenario once."""
        from personae.scenarios.episode import Episode

        return Episode(self, model, seed=seed, log=log)

    def graph(self) -> Any:
        """A new, uncompiled LangGraph ``StateGraph`` for this scenario, to extend."""
        from personae.scenarios.graph import build_graph

        return build_graph(self)

    @cached_property
    def compiled(self) -> Any:
        """The compiled graph, built once and shared by every episode."""
        return self.graph().compile()


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
