"""Running an evaluator online, at the end of an episode, as a probe.

``Probe(Evaluate(SOTOPIA), at="end")`` rates the episode while it runs,
through the endpoint the scenario binds ``judge`` to (else the run's default
model), and writes the same ``evaluations`` rows ``personae evaluate`` writes
afterwards (the call in ``llm_calls`` with ``purpose = 'evaluate'``). Turn
ratings made online have ``turn_id`` NULL (the turn rows are not numbered
yet when a probe runs) and their ``step`` set. A later ``personae evaluate``
with the same evaluator version and judge does not see these as done for
scope ``turn``; rate either online or afterwards.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from personae.evaluate.definition import Evaluator
from personae.evaluate.items import Line, Participant, evaluation_records, items_for
from personae.measures.answers import select_agents
from personae.seeds import derive_seed

if TYPE_CHECKING:
    from personae.engine.episode import Episode
    from personae.engine.probes import ProbePoint

__all__ = ["Evaluate"]


class Evaluate(BaseModel):
    """A probe measure that runs ``evaluator`` on the episode so far.

    Args:
        evaluator: The evaluator (a built-in such as
            :data:`~personae.evaluate.builtins.SOTOPIA`, or your own).
        model: A separate ChatModel for the judge, or the name of a run's
            endpoint (default: the scenario's ``judge`` binding, else the run's model).
        samples: Ratings per item, each with its own seed.
        temperature: The judge's sampling temperature.
        max_tokens: Most tokens per answer.
        constrain: Constrain answers to the evaluator's JSON schema.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)
    evaluator: Evaluator
    model: Any = None
    samples: int = Field(default=1, ge=1)
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    max_tokens: int = Field(default=200, ge=1)
    constrain: bool = True

    @property
    def name(self) -> str:
        """``evaluate:<evaluator>``, the probe's label."""
        return f"evaluate:{self.evaluator.name}"

    def describe(self) -> dict[str, Any]:
        """A JSON-able description, part of the experiment's configuration."""
        return {
            "evaluator": self.evaluator.model_dump(mode="json"),
            "samples": self.samples,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "constrain": self.constrain,
            "judge_model": f"endpoint:{self.model}"
            if isinstance(self.model, str)
            else getattr(self.model, "name", None),
        }

    def check(self, names: Sequence[str], roles: Mapping[str, str]) -> None:
        """Refuse a scenario without the agents the evaluator rates.

        Raises:
            ConfigError: An entry of ``evaluator.who`` is neither a name nor a role.
        """
        select_agents(self.evaluator.who, names, roles, f"evaluator {self.evaluator.name}: who")

    async def __call__(self, episode: Episode, point: ProbePoint) -> None:
        personas = {p.name: p for p in episode.scenario.agents}
        participants = [
            Participant(
                episode.agent_ids[name], name, episode.roles[name], personas[name].model_dump_json()
            )
            for name in episode.names
        ]
        # Turn rows are not numbered yet: each line gets a stand-in id, its position.
        lines = [Line(i + 1, u.step, u.speaker, u.text) for i, u in enumerate(episode.transcript)]
        items = items_for(self.evaluator, 0, episode.seed, participants, lines)
        await asyncio.gather(
            *(
                self._rate(episode, point, item, sample)
                for item in items
                for sample in range(self.samples)
            )
        )

    async def _rate(self, episode: Episode, point: ProbePoint, item: Any, sample: int) -> None:
        e = self.evaluator
        caller = item.agent.name if item.agent else episode.names[0]
        step = item.turn.step if item.turn else point.step
        completion, call_id = await episode.call(
            caller,
            item.messages,
            purpose="evaluate",
            step=step,
            seed=derive_seed(episode.seed, "evaluate", e.name, e.version, caller, step, sample),
            model=self.model,
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            response_format=e.response_format() if self.constrain else None,
        )
        raw = completion.text.strip()
        ids = [episode.log.new_id("evaluations") for _ in e.stored_dimensions]
        endpoint = self.model if isinstance(self.model, str) else None
        for record in evaluation_records(
            e,
            item,
            sample,
            e.read(raw),
            raw,
            ids,
            llm_call_id=call_id,
            judge_endpoint=endpoint or "episode",
            judge_model=completion.model,
        ):
            # The stand-in turn id is no row id; the sink fills in the episode's.
            episode.log.add(dataclasses.replace(record, turn_id=None))
