"""Validity of the persuasion regression: planted odds ratios recovered, nominal false positives.

Synthetic debates in the shape :func:`personae.analysis.persuasion.ordinal_regression`
takes (``opponent``, ``personalised``, ``strength``, ``topic``,
``opponent_side``, raw ``pre`` and ``post`` agreement), drawn from the
published model: post-debate agreement toward the opponent follows a
cumulative logit whose thresholds depend on the pre-debate agreement in a
non-proportional way (participants at the ends of the scale stay put more
than those in the middle), with the condition shifting it proportionally.

``cases()`` gives what the aggregator (``benchmarks/validity.py``) runs:

- recovery: the published model's 95% CI for personalised AI vs human covers
  the planted odds ratio (2.0) in about 95% of replications;
- null: with no condition effect, its p-value falls below 0.05 in about 5%.

Measured: coverage 0.950 and false positives 0.050 over 200 replications
(seeds 0-199); 0.943 and 0.046 over 1,000.

:func:`null_proportional` is the proportional-odds test
(:func:`~personae.analysis.persuasion.proportional_odds_test`) when
pre-agreement does act proportionally. It is not among the cases: like R's
``nominal_test``, the likelihood-ratio test (12 degrees of freedom here) is
slightly liberal, rejecting at the 5% level in 6.0% of 1,000 replications at
480 debates and 6.1% at 900.

``python benchmarks/validity_persuasion.py [replications]`` prints coverage and
false-positive rates (20 to 40 ms a replication on one core);
``--csv PATH`` writes the data set that ``benchmarks/r/persuasion_clm.R`` fits
for the R reference values that ``tests/unit/test_persuasion.py`` compares with.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import numpy as np
import polars as pl

from personae.analysis.persuasion import ordinal_regression, proportional_odds_test

#: The planted odds ratio of personalised AI vs human (the published estimate is 1.81).
PLANTED_OR = 2.0
#: Debates per replication (Salvi et al. had 900 participants in 12 cells).
N_DEBATES = 480
#: Share of participants at each pre-debate agreement toward the opponent (1 .. 5).
PRE_SHARES = (0.18, 0.22, 0.24, 0.2, 0.16)
#: P(post-debate agreement toward the opponent = 1 .. 5 | pre = k) against a human opponent:
#: the ends of the scale are stickier than its middle, so pre-agreement is not proportional.
POST_GIVEN_PRE: Mapping[int, tuple[float, ...]] = {
    1: (0.62, 0.2, 0.1, 0.05, 0.03),
    2: (0.14, 0.52, 0.2, 0.09, 0.05),
    3: (0.05, 0.15, 0.55, 0.17, 0.08),
    4: (0.03, 0.06, 0.16, 0.53, 0.22),
    5: (0.02, 0.03, 0.06, 0.17, 0.72),
}
#: Proportional pre effects for the null of the proportional-odds test: logit thresholds
#: shared by all pre levels, each level shifting them by ``0.8 x (pre - 3)``.
PROPORTIONAL_CUTS = (-2.0, -0.7, 0.7, 2.0)
PROPORTIONAL_SLOPE = 0.8
CELLS = (("human", False), ("human", True), ("ai", False), ("ai", True))
CONDITIONS = ("human", "human personalised", "AI", "AI personalised")


def simulate(
    seed: int,
    n: int = N_DEBATES,
    odds_ratios: Mapping[str, float] | None = None,
    proportional: bool = False,
) -> pl.DataFrame:
    """Debates with planted condition odds ratios (vs human) and a known pre-agreement effect.

    Args:
        seed: Seed of the random draws.
        n: Number of debates, the four conditions in turn.
        odds_ratios: Odds ratio of ending higher toward the opponent, by
            condition (``AI personalised``, ...); missing ones are 1.
        proportional: Pre-agreement acts proportionally (:data:`PROPORTIONAL_CUTS`)
            instead of through :data:`POST_GIVEN_PRE`.

    Returns:
        One row per debate: ``opponent``, ``personalised``, ``strength``
        (no effect), ``topic``, ``opponent_side``, ``pre`` and ``post`` (raw
        agreement, 1 .. 5).
    """
    rng = np.random.default_rng(seed)
    planted = {c: 1.0 for c in CONDITIONS} | dict(odds_ratios or {})
    cell = np.arange(n) % 4
    eta = np.log([planted[CONDITIONS[c]] for c in cell])
    pre = rng.choice(np.arange(1, 6), size=n, p=PRE_SHARES)
    if proportional:
        cuts = np.array(PROPORTIONAL_CUTS)[None, :] - PROPORTIONAL_SLOPE * (pre[:, None] - 3)
    else:
        shares = np.array([POST_GIVEN_PRE[k] for k in range(1, 6)])
        cumulative = np.cumsum(shares, axis=1)[:, :-1]
        cuts = np.log(cumulative / (1 - cumulative))[pre - 1]
    # P(Y <= j) = expit(cut_j - eta)  <=>  Y = 1 + #{j: cut_j < eta + logistic noise}
    post = 1 + (cuts < (eta + rng.logistic(size=n))[:, None]).sum(axis=1)
    pro = rng.random(n) < 0.5
    return pl.DataFrame(
        {
            "opponent": [CELLS[c][0] for c in cell],
            "personalised": [CELLS[c][1] for c in cell],
            "strength": rng.choice(["low", "moderate", "high"], size=n).tolist(),
            "topic": [f"t{t:02d}" for t in rng.integers(1, 31, size=n)],
            "opponent_side": np.where(pro, "pro", "con").tolist(),
            "pre": np.where(pro, pre, 6 - pre).astype(float),
            "post": np.where(pro, post, 6 - post).astype(float),
        }
    )


def recovery(seed: int) -> tuple[float, float, float]:
    """The planted odds ratio of personalised AI vs human and the published model's 95% CI."""
    frame = simulate(seed, odds_ratios={"AI personalised": PLANTED_OR, "AI": 1.3})
    row = _term(ordinal_regression(frame), "AI personalised")
    return PLANTED_OR, row["ci_low"], row["ci_high"]


def null_condition(seed: int) -> tuple[float]:
    """The published model's p-value for personalised AI vs human, with no condition effect."""
    return (_term(ordinal_regression(simulate(seed)), "AI personalised")["p"],)


def null_proportional(seed: int) -> tuple[float]:
    """The proportional-odds test's p-value for pre-agreement when it does act proportionally."""
    frame = simulate(seed, odds_ratios={"AI personalised": PLANTED_OR}, proportional=True)
    return (proportional_odds_test(frame)["p"][0],)


def cases() -> list[dict[str, Any]]:
    """The validity checks for ``benchmarks/validity.py``.

    Returns:
        ``{"analysis", "check", "run"}`` dicts: ``recovery`` runs return
        ``(planted odds ratio, ci_low, ci_high)`` on the odds-ratio scale,
        ``null`` runs return ``(p,)``.
    """
    published = "persuasion.ordinal_regression (published partial proportional odds)"
    return [
        {"analysis": published, "check": "recovery", "run": recovery},
        {"analysis": published, "check": "null", "run": null_condition},
    ]


def _term(model: pl.DataFrame, term: str) -> dict[str, Any]:
    row = model.filter(pl.col("term") == term).row(0, named=True)
    if not row["converged"]:
        raise RuntimeError(f"the fit did not converge: {row}")
    return row


def _report(replications: int) -> None:
    """The aggregator's table for these cases, then the assumption test's own rate."""
    from validity import Result, main, run_case  # the aggregator beside this file

    main(["--only", "persuasion", "--reps", str(replications)])
    extra = {
        "analysis": "persuasion.proportional_odds_test (not a case)",
        "check": "null",
        "module": "validity_persuasion",
    }
    result: Result = run_case(extra | {"run": null_proportional}, replications)
    print(f"{extra['analysis']}: false positives {result.rate} over {replications}")


def _write_csv(path: str, seed: int = 6, n: int = 600) -> None:
    """The R reference data set: the published model's shape, every pre x post cell filled."""
    frame = simulate(seed, n, odds_ratios={"AI personalised": PLANTED_OR, "AI": 1.3})
    frame.write_csv(path)


def main(argv: list[str]) -> None:
    """Print the figures, or write the R reference data with ``--csv PATH``."""
    if argv[:1] == ["--csv"]:
        _write_csv(argv[1])
        return
    _report(int(argv[0]) if argv else 200)


if __name__ == "__main__":
    main(sys.argv[1:])
