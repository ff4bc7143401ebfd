"""Validity benchmark: are planted effects recovered, and are false positives nominal?

``python benchmarks/validity.py [--reps 200] [--only SUBSTRING] [--json] [--markdown]``

Every ``benchmarks/validity_*.py`` module exposes ``cases() -> list[dict]``,
each case ``{"analysis": str, "check": "recovery" | "null", "run": callable}``.
``run(seed)`` builds synthetic data with a known truth from ``seed`` and
passes it through the analysis:

- ``recovery``: it returns ``(planted, ci_low, ci_high)``; the case passes when
  the planted value lies inside the 95% CI in about 95% of at least 200
  replications (coverage within [0.925, 0.975]);
- ``null``: it returns a p-value (or ``(p,)``) from data with no effect; the
  case passes when the false-positive rate at alpha .05 lies between 0.03 and
  0.07.

Replications use seeds ``0 .. reps - 1``, so a run is reproducible. A
replication that raises or returns a null value is counted under
``undefined`` and left out of the rate; more than 5% undefined fails the case.
The exit status is 1 when any case fails.

With 200 replications the binomial standard error of a rate near .95 or .05
is about .015, so even a calibrated method falls outside the bands now and
then (the Wilson interval printed beside each rate shows how far); rerun such
a case with ``--reps 1000 --only ...`` before concluding it is miscalibrated.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

#: Where the validity modules live (this file's directory).
HERE = Path(__file__).resolve().parent
#: Acceptable coverage of a 95% CI, and false-positive rate at alpha .05.
COVERAGE = (0.925, 0.975)
FALSE_POSITIVES = (0.03, 0.07)
ALPHA = 0.05
#: The replications the criteria are stated for.
MIN_REPS = 200
#: Share of undefined replications that fails a case.
MAX_UNDEFINED = 0.05


@dataclass(frozen=True)
class Result:
    """The outcome of one case.

    Attributes:
        module: The validity module (``validity_measures``, ...).
        analysis: What was checked.
        check: ``recovery`` or ``null``.
        reps: Replications run.
        undefined: Replications that raised or returned a null value.
        rate: Coverage (recovery) or false-positive rate (null) over the defined ones.
        rate_low: Lower bound of the rate's 95% Wilson interval.
        rate_high: Upper bound of the rate's 95% Wilson interval.
        passed: Whether the rate lies in its band and few replications were undefined.
        seconds: Wall time of the case.
        error: The first exception raised, if any.
    """

    module: str
    analysis: str
    check: str
    reps: int
    undefined: int
    rate: float | None
    rate_low: float | None
    rate_high: float | None
    passed: bool
    seconds: float
    error: str | None = None


def discover(directory: Path = HERE) -> list[ModuleType]:
    """Import every ``validity_*.py`` module of ``directory``, in name order."""
    modules = []
    for path in sorted(directory.glob("validity_*.py")):
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        spec.loader.exec_module(module)
        modules.append(module)
    return modules


def collect(modules: Sequence[ModuleType], only: str | None = None) -> list[dict[str, Any]]:
    """The cases of ``modules`` whose analysis contains ``only`` (case-insensitive)."""
    out = []
    for module in modules:
        for case in module.cases():
            if only is None or only.casefold() in str(case["analysis"]).casefold():
                out.append({**case, "module": module.__name__})
    return out


def run_case(case: dict[str, Any], reps: int) -> Result:
    """Run one case for seeds ``0 .. reps - 1`` and judge it."""
    check = case["check"]
    if check not in ("recovery", "null"):
        raise ValueError(f"{case['analysis']}: check must be recovery or null, got {check!r}")
    run: Callable[[int], Any] = case["run"]
    hits, undefined, error = [], 0, None
    started = time.perf_counter()
    for seed in range(reps):
        try:
            hit = _judge(check, run(seed))
        except Exception as exc:  # a failing replication is counted, not fatal
            hit, error = None, error or f"seed {seed}: {type(exc).__name__}: {exc}"
        if hit is None:
            undefined += 1
        else:
            hits.append(hit)
    seconds = time.perf_counter() - started
    rate = low = high = None
    if hits:
        rate = sum(hits) / len(hits)
        low, high = _wilson(sum(hits), len(hits))
    band = COVERAGE if check == "recovery" else FALSE_POSITIVES
    passed = rate is not None and band[0] <= rate <= band[1] and undefined <= MAX_UNDEFINED * reps
    return Result(
        str(case["module"]),
        str(case["analysis"]),
        check,
        reps,
        undefined,
        rate,
        low,
        high,
        passed,
        seconds,
        error,
    )


def _judge(check: str, value: Any) -> bool | None:
    """Covered (recovery) or significant (null); ``None`` when the run gave a null value."""
    values = value if isinstance(value, tuple | list) else (value,)
    numbers = [n for n in map(_number, values) if n is not None]
    if len(numbers) != len(values):
        return None
    if check == "recovery":
        planted, low, high = numbers
        return low <= planted <= high
    (p,) = numbers
    return p < ALPHA


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _wilson(successes: int, n: int) -> tuple[float, float]:
    from statsmodels.stats.proportion import proportion_confint

    low, high = proportion_confint(successes, n, alpha=0.05, method="wilson")
    return float(low), float(high)


def table(results: Sequence[Result], markdown: bool = False) -> str:
    """The results as a plain or a Markdown table."""
    head = ["analysis", "check", "reps", "rate", "95% CI of rate", "criterion", "pass"]
    rows = []
    for r in results:
        band = COVERAGE if r.check == "recovery" else FALSE_POSITIVES
        what = "coverage" if r.check == "recovery" else "FPR"
        rate = "-" if r.rate is None else f"{what} {r.rate:.3f}"
        ci = "-" if r.rate_low is None else f"[{r.rate_low:.3f}, {r.rate_high:.3f}]"
        undefined = f" ({r.undefined} undefined)" if r.undefined else ""
        rows.append(
            [
                r.analysis,
                r.check,
                f"{r.reps}{undefined}",
                rate,
                ci,
                f"{band[0]}-{band[1]}",
                "pass" if r.passed else "FAIL",
            ]
        )
    if markdown:
        cells = [[str(x).replace("|", "\\|") for x in row] for row in rows]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        return "\n".join([*lines, *("| " + " | ".join(row) + " |" for row in cells)])
    widths = [max(len(str(x)) for x in column) for column in zip(head, *rows, strict=True)]
    return "\n".join(
        "  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True))
        for row in [head, *rows]
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the cases; print a table (or JSON); 0 when every case passes, else 1."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=MIN_REPS, help="replications per case")
    parser.add_argument("--only", help="run the cases whose analysis contains this text")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args(argv)
    cases = collect(discover(), args.only)
    if not cases:
        print("no validity case matches", file=sys.stderr)
        return 1
    results = []
    for case in cases:
        result = run_case(case, args.reps)
        results.append(result)
        if not args.json:
            verdict = "pass" if result.passed else "FAIL"
            print(f"{verdict}  {result.analysis} ({result.seconds:.0f} s)", file=sys.stderr)
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
    else:
        print(table(results, markdown=args.markdown))
        if args.reps < MIN_REPS:
            print(f"\nThe criteria are stated for at least {MIN_REPS} replications.")
        for r in results:
            if r.error:
                print(f"{r.analysis}: {r.error}", file=sys.stderr)
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
