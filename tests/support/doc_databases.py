"""The databases the documented examples read, made with the fakes (tests/unit/test_doc_examples.py).

The docs query ``runs/<name>.db`` after ``personae run <study> --db runs/<name>.db``;
:func:`build` makes each of them in a folder with the real runner, the real
studies and a :class:`~personae.FunctionModel` standing in for the server, kept
small (fewer replicates, students and days) so the whole set takes seconds.
"""

from __future__ import annotations

import asyncio
import json
import runpy
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from personae import Experiment, FunctionModel, Judge, Message, Probe
from personae.demo import demo_experiment
from personae.llm.fake import RecordedCall

ROOT = Path(__file__).resolve().parents[2]

CLIENT_LINES = (
    "Work has been piling up and I can't sleep.",
    "Mostly at night, going over everything I didn't finish.",
    "I could try writing a list before bed. Thanks, bye.",
)


def _value(spec: dict[str, Any], seed: int) -> Any:
    """A value that fits one JSON-schema property, varied by the call's seed."""
    if "enum" in spec:
        return spec["enum"][seed % len(spec["enum"])]
    kind = spec.get("type")
    low, high = spec.get("minimum", 1), spec.get("maximum", 5)
    if kind == "integer":
        return int(low) + seed % (int(high) - int(low) + 1)
    if kind == "number":
        return float(low) + (seed % 4) * (float(high) - float(low)) / 3
    if kind == "boolean":
        return bool(seed % 2)
    if kind == "array":
        return []
    return f"note {seed}"


def reply(messages: list[Message], call: RecordedCall) -> str:
    """The fake model: valid answers to every structured request, short lines otherwise."""
    seed = call.seed or 0
    constraint = call.response_format or {}
    kind = constraint.get("type")
    if kind == "choice":
        choices = constraint["choices"]
        return str(choices[seed % len(choices)])
    if kind in ("json", "json_schema"):
        schema = constraint.get("schema") or constraint.get("json_schema", {}).get("schema", {})
        props = schema.get("properties", {})
        answers = {key: _value(spec, seed + i) for i, (key, spec) in enumerate(props.items())}
        for i, key in enumerate(answers):
            if key.isdigit() and (seed + i) % 37 == 0:  # now and then an item left unanswered
                answers[key] = "prefer not to say"
        return json.dumps(answers)
    if kind is not None:
        return str(1 + seed % 4)
    return CLIENT_LINES[len(messages) % len(CLIENT_LINES)] + f" ({seed % 7})"


def model() -> FunctionModel:
    """A fresh fake (not recording calls: the examples make thousands)."""
    return FunctionModel(reply, record=False)


@asynccontextmanager
async def fake_connection(*args: Any, **kwargs: Any) -> AsyncIterator[tuple[Any, dict[str, Any]]]:
    """Stands in for :func:`personae.llm.backends.connected_model`: no server, the fake model."""
    yield model(), {"software": "fake", "version": "0", "device": "none"}


def _experiments() -> dict[str, Experiment]:
    from personae.studies import counseling
    from personae.studies.cohort.builtin import student_cohort
    from personae.studies.debate.scenario import debate_experiment
    from personae.studies.drift import drift
    from personae.studies.group.scenario import group

    readme_probes = (
        Probe("ipip-neo-120", who="client", at=["start", "session_end"]),
        Probe("phq-9", who="client", at=["start", "end"]),
        Probe(Judge(who="client"), at="session_end"),
    )
    mentoring = runpy.run_path(str(ROOT / "examples" / "mentoring.py"))
    return {
        # personae demo
        "demo": demo_experiment(replicates=2),
        # README: counseling with the probes it shows
        "counseling": Experiment(
            scenario=counseling(sessions=2).model_copy(update={"probes": readme_probes}),
            grid={"client.style": ["reserved", "verbose"]},
            replicates=2,
            seed=3,
        ),
        "drift": drift(replicates=1, clients=("maya", "lena")),
        "debate": debate_experiment(replicates=1),
        "town_hall": Experiment(scenario=group(n_agents=5, max_turns=8), replicates=2, seed=5),
        "cohort": Experiment(
            scenario=student_cohort(n_students=4, days=8, intervention="extra_sleep"),
            replicates=1,
            seed=2,
        ),
        # README: personae run examples/mentoring.py --db runs/mine.db
        "mine": mentoring["experiment"].model_copy(update={"replicates": 1}),
    }


def build(folder: Path) -> Path:
    """Make ``folder/runs/*.db`` (and the demo's Parquet export) and return ``folder``."""
    from personae.store.export import export

    runs = folder / "runs"
    runs.mkdir(parents=True, exist_ok=True)

    async def run_all() -> None:
        for name, experiment in _experiments().items():
            summary = await experiment.arun(runs / f"{name}.db", model())
            assert summary.failed == 0, (name, summary)

    asyncio.run(run_all())
    export(runs / "demo.db", runs / "demo-parquet")
    return folder
