"""Steering as an intervention: a probe that adds a trait vector to an agent's residual stream.

:class:`Steer` is a measure for :class:`~personae.engine.probes.Probe`: from
``from_step`` on, every request made on ``who``'s behalf (its turns and the
questionnaires it answers; never a judge's calls) carries the ``"steer"``
extension, adding ``alpha`` times the trait's unit vector at the trait's
chosen layer. It works when the agent's model is the transformers backend
(``--backend transformers``); another backend ignores the extension, so the
coefficient is recorded either way, as a ``states`` row ``steer:<trait>``
with ``source='intervention'`` when the steering starts.

``alpha`` may be a number or the name of a scenario parameter, so a grid can
vary it (``--grid steer_alpha=-8,0,8`` with ``Scenario.params={"steer_alpha": 0}``)::

    probe = steer_probe("vectors.safetensors", who="Sam", trait="neuroticism",
                        alpha="steer_alpha", from_step=10)
    scenario = scenario.model_copy(update={"probes": (*scenario.probes, probe)})
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from personae.errors import ConfigError

if TYPE_CHECKING:
    from personae.engine.episode import Episode
    from personae.engine.probes import Probe, ProbePoint
    from personae.llm.hf import TransformersModel
    from personae.vectors.vectorfile import TraitVectors

__all__ = ["Steer", "TrackTraits", "steer_probe", "track_traits"]


@functools.lru_cache(maxsize=8)
def _vectors(path: str) -> TraitVectors:
    from personae.vectors.vectorfile import load_vectors

    return load_vectors(path)


class Steer(BaseModel):
    """Steer ``who``'s trait from ``from_step`` on (see the module docstring).

    Args:
        vectors: A vectors file (``personae vectors build``).
        who: The agent to steer.
        trait: A trait of the vectors file.
        alpha: The coefficient (a residual-stream distance along the unit
            vector; negative lowers the trait), or a scenario parameter's name.
        from_step: Start once this many utterances (or ticks) have passed.
        layer: The layer to steer at (default: the trait's chosen layer).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    vectors: str
    who: str
    trait: str
    alpha: float | str
    from_step: int = Field(default=0, ge=0)
    layer: int | None = None

    def check(self, names: Sequence[str], roles: Mapping[str, str]) -> None:
        """Refuse a scenario without ``who`` or a vectors file without ``trait``.

        Raises:
            ConfigError: The agent or the trait does not exist.
        """
        if self.who not in names:
            raise ConfigError(
                f"Steer names agent {self.who!r}, but the scenario has {', '.join(names)}"
            )
        if not Path(self.vectors).is_file():
            raise ConfigError(f"Steer's vectors file {self.vectors} does not exist")
        _vectors(self.vectors)[self.trait]

    def describe(self) -> dict[str, Any]:
        """A JSON-able description (part of the experiment's identity)."""
        return {"steer": self.model_dump()}

    def coefficient(self, params: Mapping[str, Any]) -> float:
        """The coefficient for an episode with these scenario parameters.

        Raises:
            ConfigError: ``alpha`` names a parameter the scenario lacks.
        """
        if isinstance(self.alpha, str):
            if self.alpha not in params:
                raise ConfigError(
                    f"Steer's alpha names the scenario parameter {self.alpha!r}, which the "
                    f"scenario does not have (it has: {', '.join(params) or 'none'})"
                )
            return float(params[self.alpha])
        return float(self.alpha)

    def entry(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The ``"steer"`` extension entry for these parameters, tagged with the model's fingerprint."""
        vectors = _vectors(self.vectors)
        entry = vectors[self.trait].steer(self.coefficient(params), self.layer)
        entry["model"] = vectors.model.get("fingerprint")
        return entry

    def __call__(self, episode: Episode, point: ProbePoint) -> None:
        """Turn the steering on once ``point.step`` reaches ``from_step`` (idempotent)."""
        if point.step < self.from_step:
            return
        current = dict(episode.request_extensions.get(self.who, {}))
        entries = list(current.get("steer", []))
        entry = self.entry(episode.params)
        if any(e.get("tag") == self._tag() for e in entries):
            return
        entries.append({**entry, "tag": self._tag()})
        episode.request_extensions[self.who] = {**current, "steer": entries}
        episode.record_state(
            self.who,
            f"steer:{self.trait}",
            entry["alpha"],
            text=f"layer {entry['layer']}",
            source="intervention",
        )

    def _tag(self) -> str:
        return f"{self.trait}@{self.layer}:{self.vectors}"


def steer_probe(
    vectors: str | Path,
    *,
    who: str,
    trait: str,
    alpha: float | str,
    from_step: int = 0,
    layer: int | None = None,
    at: tuple[str, ...] = ("start",),
    every: int | None = 1,
) -> Probe:
    """A :class:`~personae.engine.probes.Probe` running :class:`Steer` at ``at`` and after every utterance.

    Args:
        vectors, who, trait, alpha, from_step, layer: As for :class:`Steer`.
        at: Moments besides every utterance.
        every: Run after every ``every`` utterances (a conversation); None for a
            loop without utterance moments, such as the student cohort's days:
            ``steer_probe(..., at=("start", "tick"), every=None)`` steers from
            the day ``from_step`` on (a tick's step is its day).
    """
    from personae.engine.probes import Probe

    fn = Steer(
        vectors=str(vectors), who=who, trait=trait, alpha=alpha, from_step=from_step, layer=layer
    )
    return Probe(fn, at=at, every=every, name=f"steer:{who}:{trait}")


class TrackTraits:
    """Online monitoring: after each utterance, the speaker's trait projections as ``states`` rows.

    The online twin of ``personae monitor``: the prompt the speaker was given
    for its last utterance (as its agent builds it, memory window included) is
    run through ``model``, and the projection of its last token on each trait
    vector is recorded as ``vector:<trait>`` with ``source='activation'``
    (``text``: the vectors file's digest, as the offline monitor writes it).
    ``model`` reads; the agents may run on any backend.

    Args:
        model: The transformers model the vectors were built on.
        vectors: The trait vectors.

    Raises:
        ConfigError: The vectors were built on another model.
    """

    def __init__(self, model: TransformersModel, vectors: TraitVectors) -> None:
        vectors.check_model(model.identity().as_dict())
        self.model = model
        self.vectors = vectors

    def __repr__(self) -> str:
        fingerprint = self.model.identity().fingerprint
        return f"TrackTraits(model={fingerprint!r}, vectors={self.vectors.digest!r})"

    def describe(self) -> dict[str, Any]:
        """A JSON-able description (part of the experiment's identity)."""
        return {
            "track_traits": {
                "vectors": self.vectors.digest,
                "model": self.model.identity().fingerprint,
            }
        }

    async def __call__(self, episode: Episode, point: ProbePoint) -> None:
        """Record the last speaker's projections."""
        import asyncio

        if not episode.transcript:
            return
        last = episode.transcript[-1]
        agent = episode.agents.get(last.speaker)
        if agent is None:
            return
        messages = agent.messages()
        if messages[-1]["role"] == "assistant" and messages[-1]["content"] == last.text:
            messages = messages[:-1]
        if len(messages) == 1:
            from personae.agents.agent import START_MESSAGE

            messages.append({"role": "user", "content": START_MESSAGE})
        layers = self.vectors.layers
        (found,) = await asyncio.to_thread(self.model.encode, [messages], layers)
        for name, trait in self.vectors.traits.items():
            episode.record_state(
                last.speaker,
                f"vector:{name}",
                round(trait.project(found[trait.layer]), 6),
                text=self.vectors.digest[:16] or "unsaved",
                source="activation",
                t=last.step,
                session=last.session,
            )


def track_traits(model: TransformersModel, vectors: TraitVectors) -> Probe:
    """A :class:`~personae.engine.probes.Probe` running :class:`TrackTraits` after every utterance."""
    from personae.engine.probes import Probe

    return Probe(TrackTraits(model, vectors), every=1, name="track-traits")
