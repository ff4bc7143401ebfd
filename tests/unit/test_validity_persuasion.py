"""The persuasion validity cases (benchmarks/validity_persuasion.py), 40 replications, loose bounds.

The benchmark's own run (200 replications) checks coverage near 0.95 and a
false-positive rate near 0.05; here the bounds only catch a broken analysis.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPLICATIONS = 40
BENCHMARK = Path(__file__).parents[2] / "benchmarks" / "validity_persuasion.py"


def _benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("validity_persuasion", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


CASES: list[dict[str, Any]] = _benchmark().cases()


def test_cases_have_the_shape_the_aggregator_reads() -> None:
    assert {case["check"] for case in CASES} == {"recovery", "null"}
    for case in CASES:
        assert set(case) == {"analysis", "check", "run"} and callable(case["run"])
        assert isinstance(case["analysis"], str) and case["analysis"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['check']}")
def test_case_is_roughly_valid(case: dict[str, Any]) -> None:
    results = [case["run"](seed) for seed in range(REPLICATIONS)]
    if case["check"] == "recovery":
        assert all(len(r) == 3 and r[1] < r[2] for r in results)
        coverage = sum(low <= planted <= high for planted, low, high in results) / REPLICATIONS
        assert coverage >= 0.85
    else:
        assert all(len(r) == 1 and 0.0 <= r[0] <= 1.0 for r in results)
        assert sum(p < 0.05 for (p,) in results) / REPLICATIONS <= 0.15


def test_simulated_debates_are_deterministic_and_in_the_analysis_shape() -> None:
    benchmark = _benchmark()
    first, again = benchmark.simulate(3, n=40), benchmark.simulate(3, n=40)
    assert first.equals(again)
    assert set(first.columns) >= {"opponent", "personalised", "opponent_side", "pre", "post"}
    assert first["pre"].is_between(1, 5).all() and first["post"].is_between(1, 5).all()
