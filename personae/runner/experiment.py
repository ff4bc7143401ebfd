"""Experiments: a scenario x a parameter grid x replicates, seeded.

An :class:`Experiment` expands into :class:`EpisodeSpec` s, one per parameter
set and replicate, each with a seed derived from the experiment seed, the
parameters and the replicate index (so adding a grid value does not change the
seeds of episodes that were already there).

Its :meth:`~Experiment.identity` names it in the database. The grid's values
and the replicates are its *extent* (:meth:`~Experiment.extent`), not part of
its identity, so an experiment can grow in place: rerun it with more
replicates or more grid values and the episodes already stored are kept.
"""

from __future__ import annotations

import itertools
import json
import re
import traceback
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from personae.engine.scenario import ScenarioBase, format_validation_error
from personae.errors import ConfigError
from personae.runner.identity import (
    IDENTITY_VERSION,
    digest,
    fingerprint,
    is_scenario_code,
    params_key,
)
from personae.runner.jobs import EpisodeSpec
from personae.seeds import derive_seed

__all__ = ["EpisodeSpec", "Experiment", "as_experiment"]

if TYPE_CHECKING:
    from personae.llm.base import ChatModel
    from personae.runner.run import RunSummary


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

    scenario: ScenarioBase
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
            _check_values(key, values)
        # Prepare every combination once now, so a bad name or value fails before any run.
        for params in self.combinations():
            self.prepare(params)
        fingerprint(self.scenario, "scenario")
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

    def prepare(self, params: Mapping[str, Any]) -> ScenarioBase:
        """The scenario for one parameter set, checked (``Scenario.check``) as before a run.

        Raises:
            ConfigError: A name or value is invalid, or the scenario's ``configure``
                or ``check`` refuses it or fails; the message names the file and
                line of the code that raised.
        """
        stage = "configure"
        try:
            scenario = self.scenario.with_params(params)
            stage = "check"
            if scenario.check is not None:
                scenario.check(scenario)
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(_failure(self.scenario.name, stage, params, exc)) from None
        return scenario

    def episodes(self, indices: Mapping[str, int] | None = None) -> list[EpisodeSpec]:
        """All episodes of the experiment.

        Args:
            indices: ``param_index`` already given to parameter sets, by their key
                (e.g. read back from the database). Those sets keep their index;
                other sets get new ones after the largest given. Without it, a
                set's index is its position in :meth:`combinations`.
        """
        known = dict(indices or {})
        following = max(known.values(), default=-1) + 1
        specs = []
        for position, params in enumerate(self.combinations()):
            key = params_key(params)
            if indices is None:
                index = position
            elif key in known:
                index = known[key]
            else:
                index = known[key] = following
                following += 1
            for rep in range(self.replicates):
                seed = derive_seed(self.seed, "episode", key, rep)
                specs.append(EpisodeSpec(index, rep, params, seed, key))
        return specs

    def config(self) -> dict[str, Any]:
        """A readable description of what the identity is made of, stored with the experiment.

        The extent (grid values, replicates) is apart, in :meth:`extent`.
        """
        return {
            "identity_version": IDENTITY_VERSION,
            "name": self.label,
            "scenario": self.scenario.describe(),
            "grid_keys": sorted(self.grid),
            "seed": self.seed,
        }

    def extent(self) -> dict[str, Any]:
        """How far the experiment reaches: its grid values and replicates, JSON-ready.

        Not part of the identity: the same experiment with more replicates or
        more grid values is the same experiment, grown.
        """
        grid = {k: json.loads(json.dumps(v, default=str)) for k, v in self.grid.items()}
        return {"grid": grid, "replicates": self.replicates}

    def identity(
        self, model: str | None = None, endpoints: Mapping[str, str | None] | None = None
    ) -> str:
        """The experiment's identity: 24 hex characters, the same in every process.

        Made of the name, the scenario (its settings and the code of every
        function it holds, see :mod:`personae.runner.identity`), which
        parameters the grid varies (not their values), the seed and the model.
        Replicates and grid values are the :meth:`extent`, not the identity.

        Args:
            model: The model name the experiment runs against (its ``default`` endpoint).
            endpoints: The models of the named endpoints it uses (:meth:`endpoint_names`),
                by name; their URLs and keys are not part of the identity.

        Raises:
            ConfigError: The scenario holds a value that cannot be identified stably.
        """
        data: dict[str, Any] = {
            "identity_version": IDENTITY_VERSION,
            "name": self.label,
            "scenario": fingerprint(self.scenario, "scenario"),
            "grid_keys": sorted(self.grid),
            "seed": self.seed,
            "model": model,
        }
        if endpoints:
            data["endpoints"] = dict(sorted(endpoints.items()))
        return digest(data)

    def endpoint_names(self) -> list[str]:
        """The named endpoints the scenario's bindings and the grid refer to, sorted."""
        names = {str(v) for v in self.scenario.endpoints.values()}
        for key, values in self.grid.items():
            if key.endswith(".endpoint"):
                names.update(str(v) for v in values)
        names.discard("default")
        return sorted(names)

    def config_hash(self, model: str | None = None) -> str:
        """Deprecated alias of :meth:`identity`."""
        warnings.warn(
            "Experiment.config_hash is deprecated; use Experiment.identity",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.identity(model)

    async def arun(
        self, db: str | Path, model: ChatModel, *, progress: bool | None = None, **options: Any
    ) -> RunSummary:
        """Run every missing episode against ``model`` and log them to ``db``: the async entry point.

        Use it where an event loop runs already: ``await experiment.arun(...)``
        in a Jupyter cell or in your own coroutine. :meth:`run` works there too.

        Args:
            db: SQLite file to write (created if missing; resumed if it has this
                experiment). A file this call creates is removed again if the
                run fails before any episode starts.
            model: The ChatModel every episode uses (e.g.
                :class:`~personae.llm.fake.FunctionModel` to try a scenario, or
                one from :func:`personae.llm.connect.connected_model`).
            progress: Show a progress bar (default: only in a Jupyter notebook,
                where it is one output of the cell, updated in place).
            **options: Passed to :func:`personae.runner.run.run_experiment`.

        Example:
            >>> summary = await experiment.arun("runs/mine.db", FunctionModel.echo())  # doctest: +SKIP
        """
        from personae.runner.progress import in_notebook
        from personae.runner.run import run_experiment

        if progress is None:
            progress = in_notebook(options.get("console"))
        return await run_experiment(self, db, model, progress=progress, **options)

    def run(
        self,
        db: str | Path,
        model: ChatModel | None = None,
        *,
        base_url: str | None = None,
        model_name: str | None = None,
        progress: bool | None = None,
        **options: Any,
    ) -> RunSummary:
        """Run the experiment from synchronous code: a script, or a notebook cell.

        Inside a running event loop (Jupyter, or a coroutine of yours) the run
        goes to a worker thread with its own loop while this call waits, so the
        same line works in a script and in a notebook; interrupting the kernel
        stops the run as Ctrl-C does in a terminal (complete episodes kept, the
        rest marked ``interrupted``, ``summary.interrupted`` true).

        Args:
            db: SQLite file to write (created if missing; resumed if it has this
                experiment). A file this call creates is removed again if the
                run fails before any episode starts (e.g. no server answers).
            model: A ChatModel to use. If None, ``base_url`` (and ``model_name``)
                name an OpenAI-compatible server; if that is None too, an embedded
                vLLM server is started for the run and stopped afterwards.
            progress: Show a progress bar (default: only in a Jupyter notebook).
            **options: Passed to :func:`personae.runner.run.run_sync` and
                :func:`personae.runner.run.run_experiment`.
        """
        from personae.runner.progress import in_notebook
        from personae.runner.run import run_sync

        if progress is None:
            progress = in_notebook(options.get("console"))
        return run_sync(
            self,
            db,
            model,
            base_url=base_url,
            model_name=model_name,
            progress=progress,
            **options,
        )


def as_experiment(obj: Experiment | ScenarioBase, **overrides: Any) -> Experiment:
    """Wrap a scenario (a conversation, a cohort...) into an experiment, or update its fields."""
    if isinstance(obj, ScenarioBase):
        return Experiment(scenario=obj, **{k: v for k, v in overrides.items() if v is not None})
    if not isinstance(obj, Experiment):
        raise ConfigError(f"expected a Scenario or an Experiment, got {type(obj).__name__}")
    data = {f: getattr(obj, f) for f in Experiment.model_fields}
    grid = overrides.pop("grid", None)
    if grid:
        data["grid"] = {**data["grid"], **grid}
    data.update({k: v for k, v in overrides.items() if v is not None})
    return Experiment(**data)


def _check_values(key: str, values: list[Any]) -> None:
    if not values:
        raise ConfigError(f"grid entry {key!r} has no values; give it at least one")
    seen: dict[str, Any] = {}
    for i, value in enumerate(values):
        text = json.dumps(value, sort_keys=True, default=str)
        if text in seen:
            raise ConfigError(
                f"grid entry {key!r} repeats the value {value!r}; each value may appear once "
                "(a repeat would be the same parameter set twice). To run more episodes per "
                "parameter set, raise the replicates instead."
            )
        seen[text] = value
        fingerprint(value, f"grid[{key!r}][{i}]")
        if _ADDRESS_TEXT.search(text):
            raise ConfigError(
                f"grid[{key!r}][{i}] is written as {text}, which shows a memory address; the "
                "text of a grid value seeds its episodes and finds them again on a rerun, so it "
                "must be the same in every process. Use plain data (a number, a string, a name "
                "to look up) or give its class a __str__ that shows its settings."
            )


_ADDRESS_TEXT = re.compile(r"0x[0-9a-fA-F]{6,}")


def _failure(name: str, stage: str, params: Mapping[str, Any], exc: Exception) -> str:
    frames = list(traceback.walk_tb(exc.__traceback__))
    ours = [f for f in frames if is_scenario_code(f[0].f_globals.get("__name__"))]
    where = ""
    if ours or frames:
        frame, lineno = (ours or frames)[-1]
        where = f" at {frame.f_code.co_filename}, line {lineno} (in {frame.f_code.co_name})"
    if isinstance(exc, ValidationError):
        detail = format_validation_error(exc)
    else:
        detail = str(exc) or "(no message)"
    which = f"parameters {dict(params)}" if params else "its own parameters"
    return (
        f"the {stage} code of scenario {name!r} raised {type(exc).__name__}: {detail}{where}, "
        f"while preparing {which} before any episode ran. Fix the code there, or the "
        "parameter value it could not handle."
    )
