"""The cohort validity cases, briefly: each runs 40 times with loose bounds.

``benchmarks/validity.py`` runs them at length (coverage about 0.95 and false
positives 0.03-0.07 over 200 replications); here 40 replications catch a
case that is broken outright (coverage under 0.85, false positives over 0.15).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

REPLICATIONS = 40


def _benchmark() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "validity_cohort.py"
    spec = importlib.util.spec_from_file_location("validity_cohort", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("validity_cohort", module)
    spec.loader.exec_module(module)
    return module


CASES = _benchmark().cases()


def test_cases_cover_the_cohort_analyses() -> None:
    names = " | ".join(f"{c['analysis']} [{c['check']}]" for c in CASES)
    for needed in (
        "within-person r (feature_outcome_relations) [recovery]",
        "within-person r (feature_outcome_relations) [null]",
        "between-person r (feature_outcome_relations) [null]",
        "pooled difference (clustered by student) [recovery]",
        "pooled difference (clustered by student) [null]",
        "pooled difference in differences (clustered by student) [null]",
        "item about yesterday",
    ):
        assert needed in names
    assert {c["check"] for c in CASES} == {"recovery", "null"}


@pytest.mark.parametrize("case", CASES, ids=[f"{c['analysis']} [{c['check']}]" for c in CASES])
def test_case_behaves(case: dict) -> None:
    results = [case["run"](seed) for seed in range(REPLICATIONS)]
    if case["check"] == "recovery":
        covered = np.mean([low <= planted <= high for planted, low, high in results])
        assert covered >= 0.85
    else:
        assert np.mean([p < 0.05 for (p,) in results]) <= 0.15
