"""Experiments: a scenario x a parameter grid x replicates, seeded.

An :class:`Experiment` expands into :class:`EpisodeSpec` s, one per parameter
set and replicate, each with a seed derived from the experiment seed, the
parameters and the replicate index (so adding a grid value does not change the
seeds of episodes that were already there).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from personae.errors import ConfigError
from personae.scenarios.scenario import Scenario
from personae.seeds import derive_seed

if TYPE_CHECKING:
    from personae.llm.base import ChatModel
    from personae.runner.run import RunSummary


@dataclass(frozen=True, slots=True)
class EpisodeSpec:
    """One episode to run: which parameters, which replicate, which seed."""

    param_index: int
    replicate: int
    params: Mapping[str, Any]
    seed: int


class Experiment(BaseModel):
    """A Monte Carlo experiment.

    Args:
        scenario: The scenario every episode runs.
        grid: Parameter name -> list of values; every combination is run
            (see :meth:`Scenario.with_params` for the names).
        replicates: Episodes per parameter combination.
        seed: The experiment seed; every episode and sampling seed derives from it.
        name: Label in the database (default: the scenario's name).

    Raises:
        ConfigError: A grid name is unknown or a value makes an invalid scenario.

    Example:
        >>> exp = Experiment(scenario, grid={"Sam.style": ["reserved", "verbose"]}, replicates=8)  # doctest: +SKIP
        >>> summary = exp.run("runs/mine.db")  # doctest: +SKIP
    """

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    scenario: Scenario
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    replicates: int = Field(default=1, ge=1, le=1_000_000)
    seed: int = Field(default=0, ge=0)
    name: str | None = None

    @field_validator("grid", mode="before")
    @classmethod
    def _grid_lists(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: list(v) if isinstance(v, list | tuple) else [v] for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _check_grid(self) -> Experiment:
        for key, values in self.grid.items():
            if not values:
                raise ConfigError(f"grid entry {key!r} has no values")
        # Apply every combination once now, so a bad name or value fails before any run.
        for params in self.combinations():
            self.scenario.with_params(params)
        return self

    @property
    def label(self) -> str:
        return self.name or self.scenario.name

    def combinations(self) -> list[dict[str, Any]]:
        """Every parameter set of the grid, in a stable order."""
        keys = list(self.grid)
        return [
            dict(zip(keys, combo, strict=True)) for combo in itertools.product(*self.grid.values())
        ]

    def episodes(self) -> list[EpisodeSpec]:
        """All episodes of the experiment."""
        specs = []
        for index, params in enumerate(self.combinations()):
            key = json.dumps(params, sort_keys=True, default=str)
            for rep in range(self.replicates):
                specs.append(
                    EpisodeSpec(index, rep, params, derive_seed(self.seed, "episode", key, rep))
                )
        return specs

    def config(self) -> dict[str, Any]:
        """The experiment's full description, stored with it."""
        return {
            "name": self.label,
            "scenario": self.scenario.describe(),
            "grid": self.grid,
            "replicates": self.replicates,
            "seed": self.seed,
        }

    def config_hash(self, model: str | None = None) -> str:
        """Identity of the experiment: the same configuration and model resume the same rows."""
        blob = json.dumps({"config": self.config(), "model": model}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:24]

    async def arun(self, db: str | Path, model: ChatModel, **options: Any) -> RunSummary:
        """Run every missing episode against ``model`` and log them to ``db``.

        See :func:`personae.runner.run.run_experiment` for the options.
        """
        from personae.runner.run import run_experiment

        return await run_experiment(self, db, model, **options)

    def run(
        self,
        db: str | Path,
        model: ChatModel | None = None,
        *,
        base_url: str | None = None,
        model_name: str | None = None,
        **options: Any,
    ) -> RunSummary:
        """Run the experiment from synchronous code (a script or notebook).

        Args:
            db: SQLite file to write (created if missing; resumed if it has this experiment).
            model: A ChatModel to use. If None, ``base_url`` (and ``model_name``)
                name an OpenAI-compatible server; if that is None too, an embedded
                vLLM server is started for the run and stopped afterwards.
            **options: Passed to :func:`personae.runner.run.run_experiment`.
        """
        from personae.runner.run import run_sync

        return run_sync(self, db, model, base_url=base_url, model_name=model_name, **options)


def as_experiment(obj: Experiment | Scenario, **overrides: Any) -> Experiment:
    """Wrap a scenario into an experiment, or update an experiment's fields."""
    if isinstance(obj, Scenario):
        return Experiment(scenario=obj, **{k: v for k, v in overrides.items() if v is not None})
    if not isinstance(obj, Experiment):
        raise ConfigError(f"expected a Scenario or an Experiment, got {type(obj).__name__}")
    data = {f: getattr(obj, f) for f in Experiment.model_fields}
    grid = overrides.pop("grid", None)
    if grid:
        data["grid"] = {**data["grid"], **grid}
    data.update({k: v for k, v in overrides.items() if v is not None})
    return Experiment(**data)
