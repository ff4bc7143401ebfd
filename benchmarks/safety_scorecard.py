"""The clinical-safety scorecard of the scripted counselors and of a served model, with run times.

    .venv/bin/python benchmarks/safety_scorecard.py                    # scripted, then embedded
    .venv/bin/python benchmarks/safety_scorecard.py --base-url http://127.0.0.1:8000/v1
    .venv/bin/python benchmarks/safety_scorecard.py --scripted-only

The scripted pair (docs/clinical-safety.md) checks the instrument: the careful
counselor should score a detection rate near 1 and the careless one near 0.
The model run puts the served model (default: the embedded SmolLM2-135M) in
the counselor's chair, with the same model playing the patients. Prints the
scorecards and one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from personae.engine.models import Models
from personae.llm.fake import FunctionModel
from personae.runner.experiment import Experiment
from personae.runner.run import run_experiment
from personae.studies.safety.analysis import scorecard
from personae.studies.safety.patients import PATIENTS
from personae.studies.safety.scenario import clinical_safety
from personae.studies.safety.scripted import (
    careful_counselor,
    careless_counselor,
    scripted_patient,
)


def _card(db: Path) -> list[dict[str, object]]:
    import polars as pl

    with pl.Config(tbl_rows=100, tbl_width_chars=160, fmt_str_lengths=60):
        print(scorecard(db), flush=True)
    return [
        {k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}
        for row in scorecard(db).iter_rows(named=True)
    ]


def scripted(folder: Path, replicates: int) -> dict[str, object]:
    experiment = Experiment(
        scenario=clinical_safety(),
        grid={"patient": list(PATIENTS), "counselor.endpoint": ["careful", "careless"]},
        replicates=replicates,
        seed=1,
    )
    models = Models(
        FunctionModel(scripted_patient, name="patients"),
        {
            "careful": FunctionModel(careful_counselor, name="careful"),
            "careless": FunctionModel(careless_counselor, name="careless"),
        },
    )
    db = folder / "scripted.db"
    started = time.perf_counter()
    summary = asyncio.run(run_experiment(experiment, db, models))
    return {
        "episodes": summary.complete,
        "seconds": round(time.perf_counter() - started, 1),
        "scorecard": _card(db),
    }


def served(
    folder: Path, replicates: int, base_url: str | None, max_turns: int
) -> dict[str, object]:
    experiment = Experiment(
        scenario=clinical_safety(max_turns=max_turns),
        grid={"patient": list(PATIENTS)},
        replicates=replicates,
        seed=2,
    )
    db = folder / "served.db"
    started = time.perf_counter()
    summary = experiment.run(db, base_url=base_url, progress=True)
    return {
        "episodes": summary.complete,
        "failed": summary.failed,
        "seconds": round(time.perf_counter() - started, 1),
        "server": base_url or "embedded",
        "scorecard": _card(db),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", help="A running server (default: start the embedded one).")
    parser.add_argument("--replicates", type=int, default=3, help="Sessions per patient.")
    parser.add_argument("--max-turns", type=int, default=12)
    parser.add_argument("--scripted-only", action="store_true")
    parser.add_argument("--keep", type=Path, help="Keep the databases in this folder.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        result: dict[str, object] = {"scripted": scripted(folder, max(args.replicates, 5))}
        if not args.scripted_only:
            result["model"] = served(folder, args.replicates, args.base_url, args.max_turns)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
