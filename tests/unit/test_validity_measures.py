"""A quick pass of benchmarks/validity_measures.py: each case 40 times, with loose bounds.

The benchmark itself (``python benchmarks/validity.py``, 200 replications) holds
the cases to coverage in [0.925, 0.975] and false-positive rates in [0.03,
0.07]; here 40 replications only have to show that nothing is grossly off.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPS = 40
BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str) -> ModuleType:
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


CASES = _load("validity_measures").cases()


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['check']}: {c['analysis']}")
def test_case_is_roughly_calibrated(case: dict[str, Any]) -> None:
    results = [case["run"](seed) for seed in range(REPS)]
    if case["check"] == "recovery":
        covered = [low <= planted <= high for planted, low, high in results]
        assert sum(covered) / REPS >= 0.85
    else:
        significant = [p < 0.05 for (p,) in results]
        assert sum(significant) / REPS <= 0.15


def test_the_harness_judges_and_tabulates() -> None:
    validity = _load("validity")
    recovery = {
        "analysis": "always covered",
        "check": "recovery",
        "run": lambda seed: (1.0, 0.0, 2.0),
        "module": "m",
    }
    result = validity.run_case(recovery, 10)
    assert (result.rate, result.passed, result.undefined) == (1.0, False, 0)  # above 0.975
    null = {
        "analysis": "one in twenty",
        "check": "null",
        "run": lambda seed: 0.01 if seed % 20 == 0 else (0.5,),
        "module": "m",
    }
    result = validity.run_case(null, 200)
    assert (result.rate, result.passed) == (0.05, True)
    assert result.rate_low < 0.05 < result.rate_high
    broken = {"analysis": "broken", "check": "null", "run": lambda seed: 1 / 0, "module": "m"}
    result = validity.run_case(broken, 5)
    assert (result.undefined, result.passed, result.rate) == (5, False, None)
    assert "ZeroDivisionError" in result.error
    text = validity.table([result], markdown=True)
    assert text.startswith("| analysis | check |") and "FAIL" in text
