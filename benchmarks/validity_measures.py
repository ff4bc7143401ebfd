"""Validity of the measurement analyses: planted effects recovered, nominal false positives.

Synthetic respondents with a known truth go through the public functions of
:mod:`personae.analysis.drift`, :mod:`personae.analysis.agreement`,
:mod:`personae.measures.reliability` and :mod:`personae.analysis.group`. The
drift and participation cases write hand-built personae databases (the real
schema, rows inserted directly, as in ``tests/unit/handmade.py``); the others
pass frames in the shape those functions read.

``cases()`` gives what the aggregator (``benchmarks/validity.py``) runs:

- drift change and slope (``drift_summary``): one persona over ten seeds with
  four occasions each; the 95% CIs of the mean change and the mean slope cover
  the planted drift, and without drift p < .05 in about 5% of runs;
- reliable change (``reliable_change`` against the shipped PHQ-9 norm): with no
  true change and measurement error matching the norm's reliability, about 5%
  of respondents are flagged reliable (run ``p`` = the two-sided normal p of
  the RCI, below .05 exactly when ``|RCI| > 1.96``);
- ICC(1,1) across replicates (``icc_across_replicates``): pingouin's 95% CI
  covers the planted ICC; with ICC 0 its F test is significant in about 5%;
- test-retest (``test_retest``): the Fisher-z CI covers the planted
  correlation; with none, p < .05 in about 5%;
- option order (``option_order_asymmetry``) and wording
  (``prompt_variant_contrasts``, ``prompt_variant_sensitivity``), every
  respondent answering every form: the paired CI covers the planted shift; with
  none, the paired t, Wilcoxon, repeated-measures ANOVA and Friedman tests are
  significant in about 5%;
- participation Gini (``participation_summary``): two conditions with the same
  speaking process; a Welch test of the normalised Gini between them is
  significant in about 5%. There is no recovery case: the Gini of observed
  shares is biased upward in short discussions (sampling noise looks like
  inequality) and the library gives it no interval.

``python benchmarks/validity_measures.py [replications]`` prints the rates
(default 200 replications).
"""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from scipy import stats

from personae.analysis import agreement, drift, group
from personae.measures.norms import find_norm
from personae.measures.reliability import (
    option_order_asymmetry,
    prompt_variant_contrasts,
    prompt_variant_sensitivity,
)
from personae.seeds import derive_seed
from personae.store.database import Database

#: Planted drift per occasion of a domain mean (1-5 scale), over occasions 0-3.
SLOPE = 0.1
#: Replicates (seeds) of the drifting persona, and its occasions.
REPLICATES, OCCASIONS = 10, 4
#: Planted ICC(1,1) of a scale across replicates; personas and replicates.
ICC, PERSONAS, ICC_REPLICATES = 0.5, 30, 5
#: Planted test-retest correlation and respondents.
RETEST_R, RETEST_N = 0.6, 40
#: Planted option-order and wording shifts (1-5 scale); respondents answering every form.
ORDER_SHIFT, WORDING_SHIFT, FORM_RESPONDENTS = 0.2, 0.25, 30
#: Speaking shares of the four members in both conditions, utterances, episodes per condition.
SHARES, UTTERANCES, EPISODES = (0.4, 0.3, 0.2, 0.1), 40, 10


# --- drift: a hand-built database per replication --------------------------------------------


@functools.cache
def _template() -> Path:
    """An empty personae database with one experiment, copied for every replication."""
    directory = tempfile.mkdtemp(prefix="personae-validity-")
    atexit.register(shutil.rmtree, directory, True)
    path = Path(directory) / "template.db"
    Database(path).close()
    con = sqlite3.connect(path)
    with con:
        con.execute(
            "INSERT INTO experiments (id, name, scenario, config_hash, config_json, seed, model,"
            " created_at) VALUES (1, 'validity', 'synthetic', 'h', '{}', 1, 'none', 'now')"
        )
    # The store writes ahead; fold the log into the file so that a plain copy holds it all.
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    return path


def _database(name: str) -> tuple[Path, sqlite3.Connection]:
    path = _template().with_name(f"{name}.db")
    shutil.copyfile(_template(), path)
    return path, sqlite3.connect(path)


@functools.cache
def _drift(seed: int, slope: float) -> dict[str, Any]:
    """One persona (N = 3) drifting by ``slope`` per occasion, over ten seeds: its summary row.

    ``x[r, t] = 3 + u[r] + slope * t + e[r, t]``, ``u ~ N(0, 0.3)`` (seeds
    differ), ``e ~ N(0, 0.2)``; the change from the first to the last occasion
    is ``3 * slope`` in expectation.
    """
    rng = np.random.default_rng(derive_seed(seed, "validity_measures", "drift", slope))
    values = (
        3.0
        + rng.normal(0, 0.3, (REPLICATES, 1))
        + slope * np.arange(OCCASIONS)
        + rng.normal(0, 0.2, (REPLICATES, OCCASIONS))
    )
    path, con = _database(f"drift-{seed}-{slope}")
    with con:
        for replicate, row in enumerate(values):
            episode = con.execute(
                "INSERT INTO episodes (experiment_id, param_index, replicate, params_json, seed,"
                " status) VALUES (1, 0, ?, '{}', ?, 'complete')",
                (replicate, replicate),
            ).lastrowid
            agent = con.execute(
                "INSERT INTO agents (episode_id, name, role, persona_json) VALUES (?, 'Sam',"
                " 'client', ?)",
                (episode, json.dumps({"name": "Sam", "big_five": {"N": 3}})),
            ).lastrowid
            con.executemany(
                "INSERT INTO scores (episode_id, agent_id, session, step, point, occasion,"
                " instrument, level, scale, value, n_items, n_missing, prompt_variant,"
                " option_order, source) VALUES (?, ?, ?, 0, ?, ?, 'ipip-neo-120', 'domain',"
                " 'neuroticism', ?, 24, 0, 0, 'forward', 'self_report')",
                [
                    (episode, agent, max(t - 1, 0), "start" if t == 0 else "session_end", t, v)
                    for t, v in enumerate(row.tolist())
                ],
            )
    con.close()
    summary = drift.drift_summary(path, reference_sd=0.7, reliability=0.9)
    path.unlink()
    return dict(summary.row(0, named=True))


def change_recovery(seed: int) -> tuple[float, float, float]:
    """Planted mean change (3 x slope) and drift_summary's 95% CI."""
    row = _drift(seed, SLOPE)
    return 3 * SLOPE, row["change_ci_low"], row["change_ci_high"]


def change_null(seed: int) -> tuple[float]:
    """p of the mean change without drift."""
    return (_drift(seed, 0.0)["change_p"],)


def slope_recovery(seed: int) -> tuple[float, float, float]:
    """Planted slope and drift_summary's 95% CI of the mean slope."""
    row = _drift(seed, SLOPE)
    return SLOPE, row["slope_ci_low"], row["slope_ci_high"]


def slope_null(seed: int) -> tuple[float]:
    """p of the mean slope without drift."""
    return (_drift(seed, 0.0)["slope_p"],)


# --- reliable change against the published norm -----------------------------------------------


def rci_null(seed: int) -> tuple[float]:
    """Two-sided normal p of the RCI of a respondent whose true PHQ-9 score did not change.

    True score ~ N(10, SD^2 r) and two observations with error variance
    ``SD^2 (1 - r)``, SD and r from the shipped norm: the RCI is then N(0, 1).
    """
    norm = find_norm("phq-9", "phq-9")
    assert norm is not None and norm.sd is not None and norm.reliability is not None
    rng = np.random.default_rng(derive_seed(seed, "validity_measures", "rci"))
    true = 10 + rng.normal(0, norm.sd * np.sqrt(norm.reliability))
    error = norm.sd * np.sqrt(1 - norm.reliability)
    first, last = true + rng.normal(0, error, 2)
    frame = pl.DataFrame(
        {
            "episode_id": [1, 1],
            "agent": ["Sam", "Sam"],
            "occasion": [0, 1],
            "instrument": ["phq-9"] * 2,
            "level": ["total"] * 2,
            "source": ["self_report"] * 2,
            "scale": ["phq-9"] * 2,
            "value": [first, last],
        }
    )
    (rci,) = drift.reliable_change(frame, instrument="phq-9", level="total")["rci"].to_list()
    return (float(2 * stats.norm.sf(abs(rci))),)


# --- ICC and test-retest ----------------------------------------------------------------------


def _icc_row(seed: int, icc: float) -> dict[str, Any]:
    rng = np.random.default_rng(derive_seed(seed, "validity_measures", "icc", icc))
    persona = rng.normal(0, np.sqrt(icc), PERSONAS)
    values = 3 + persona[:, None] + rng.normal(0, np.sqrt(1 - icc), (PERSONAS, ICC_REPLICATES))
    frame = pl.DataFrame(
        {
            "experiment_id": 1,
            "param_index": np.repeat(np.arange(PERSONAS), ICC_REPLICATES),
            "agent": "Sam",
            "replicate": np.tile(np.arange(ICC_REPLICATES), PERSONAS),
            "episode_id": np.arange(PERSONAS * ICC_REPLICATES),
            "occasion": 0,
            "instrument": "ipip-neo-120",
            "level": "domain",
            "source": "self_report",
            "scale": "neuroticism",
            "value": values.ravel(),
        }
    )
    out = agreement.icc_across_replicates(frame, types=["ICC1"])
    return dict(out.row(0, named=True))


def icc_recovery(seed: int) -> tuple[float, float, float]:
    """Planted ICC(1,1) and pingouin's 95% CI (as icc_across_replicates returns it)."""
    row = _icc_row(seed, ICC)
    return ICC, row["ci_low"], row["ci_high"]


def icc_null(seed: int) -> tuple[float]:
    """p of pingouin's F test of ICC(1,1) = 0 when personas do not differ."""
    return (_icc_row(seed, 0.0)["p"],)


def _retest_row(seed: int, r: float) -> dict[str, Any]:
    rng = np.random.default_rng(derive_seed(seed, "validity_measures", "retest", r))
    x = rng.multivariate_normal([3, 3], [[0.5, 0.5 * r], [0.5 * r, 0.5]], RETEST_N)
    frame = pl.DataFrame(
        {
            "episode_id": np.repeat(np.arange(RETEST_N), 2),
            "agent": "Sam",
            "occasion": np.tile([0, 1], RETEST_N),
            "instrument": "ipip-neo-120",
            "level": "domain",
            "source": "self_report",
            "scale": "neuroticism",
            "value": x.ravel(),
        }
    )
    return dict(agreement.test_retest(frame).row(0, named=True))


def retest_recovery(seed: int) -> tuple[float, float, float]:
    """Planted test-retest r and the Fisher-z 95% CI."""
    row = _retest_row(seed, RETEST_R)
    return RETEST_R, row["ci_low"], row["ci_high"]


def retest_null(seed: int) -> tuple[float]:
    """p of the test-retest r without any stability."""
    return (_retest_row(seed, 0.0)["p"],)


# --- option order and wording -----------------------------------------------------------------


def forms(seed: int, *, order: float = 0.0, wording: float = 0.0) -> pl.DataFrame:
    """Scale scores of respondents who answered every form (3 wordings x 2 option orders).

    ``x = 3 + a[i] + b[i, v] + order * forward + wording * (v == 2) + e``: each
    respondent has its own level ``a`` (SD 0.5) and its own reaction to each
    wording ``b`` (SD 0.2); ``e`` (SD 0.3) is the noise of one administration.
    """
    rng = np.random.default_rng(derive_seed(seed, "validity_measures", "forms", order, wording))
    n = FORM_RESPONDENTS
    level = rng.normal(0, 0.5, (n, 1, 1))
    reaction = rng.normal(0, 0.2, (n, 3, 1))
    shift = order * np.array([1.0, 0.0]) + wording * (np.arange(3) == 2)[:, None]
    values = 3 + level + reaction + shift + rng.normal(0, 0.3, (n, 3, 2))
    return pl.DataFrame(
        {
            "episode_id": np.repeat(np.arange(n), 6),
            "agent_id": np.repeat(np.arange(n), 6),
            "occasion": 0,
            "instrument": "ipip-neo-120",
            "level": "domain",
            "scale": "neuroticism",
            "value": values.ravel(),
            "prompt_variant": np.tile(np.repeat(np.arange(3), 2), n),
            "option_order": np.tile(["forward", "reversed"], 3 * n),
        }
    )


def order_recovery(seed: int) -> tuple[float, float, float]:
    """Planted forward - reversed shift and the paired t 95% CI."""
    row = option_order_asymmetry(forms(seed, order=ORDER_SHIFT)).row(0, named=True)
    return ORDER_SHIFT, row["ci_low"], row["ci_high"]


def order_null(seed: int) -> tuple[float]:
    """p of the paired t-test without an option-order effect."""
    return (option_order_asymmetry(forms(seed))["p"][0],)


def order_null_rank(seed: int) -> tuple[float]:
    """p of the Wilcoxon signed-rank test without an option-order effect."""
    return (option_order_asymmetry(forms(seed), method="rank")["p"][0],)


def wording_recovery(seed: int) -> tuple[float, float, float]:
    """Planted shift of wording 2 against wording 0 and the paired t 95% CI."""
    out = prompt_variant_contrasts(forms(seed, wording=WORDING_SHIFT))
    row = out.filter(pl.col("variant") == 2).row(0, named=True)
    return WORDING_SHIFT, row["ci_low"], row["ci_high"]


def wording_null(seed: int) -> tuple[float]:
    """p of the repeated-measures ANOVA (Greenhouse-Geisser) without a wording effect."""
    return (prompt_variant_sensitivity(forms(seed))["p"][0],)


def wording_null_rank(seed: int) -> tuple[float]:
    """p of the Friedman test without a wording effect."""
    return (prompt_variant_sensitivity(forms(seed), method="rank")["p"][0],)


# --- participation Gini -----------------------------------------------------------------------


def gini_null(seed: int) -> tuple[float]:
    """p of a Welch test of the normalised Gini between two conditions with the same speakers."""
    rng = np.random.default_rng(derive_seed(seed, "validity_measures", "gini"))
    path, con = _database(f"gini-{seed}")
    members = ["A", "B", "C", "D"]
    with con:
        for index in range(2 * EPISODES):
            condition = "left" if index < EPISODES else "right"
            episode = con.execute(
                "INSERT INTO episodes (experiment_id, param_index, replicate, params_json, seed,"
                " status) VALUES (1, ?, ?, ?, 0, 'complete')",
                (index // EPISODES, index % EPISODES, json.dumps({"condition": condition})),
            ).lastrowid
            ids = [
                con.execute(
                    "INSERT INTO agents (episode_id, name, role, persona_json) VALUES (?, ?,"
                    " 'member', '{}')",
                    (episode, name),
                ).lastrowid
                for name in members
            ]
            speakers = rng.choice(len(members), UTTERANCES, p=SHARES)
            con.executemany(
                "INSERT INTO turns (episode_id, session, step, agent_id, visible_to, content,"
                " scripted, created_at) VALUES (?, 0, ?, ?, NULL, 'words', 0, 'now')",
                [(episode, step, ids[s]) for step, s in enumerate(speakers.tolist())],
            )
    con.close()
    summary = group.participation_summary(path)
    path.unlink()
    by = summary.partition_by("param:condition", as_dict=True)
    left, right = (by[(c,)]["gini_normalised"].to_numpy() for c in ("left", "right"))
    return (float(stats.ttest_ind(left, right, equal_var=False).pvalue),)


def cases() -> list[dict[str, Any]]:
    """The validity checks for ``benchmarks/validity.py``.

    Returns:
        ``{"analysis", "check", "run"}`` dicts: ``recovery`` runs return
        ``(planted, ci_low, ci_high)``, ``null`` runs return ``(p,)``.
    """
    change = "drift.drift_summary mean change (t over seeds)"
    slope = "drift.drift_summary mean slope (t over seeds)"
    icc = "agreement.icc_across_replicates ICC(1,1) (pingouin)"
    retest = "agreement.test_retest r (Fisher z)"
    order = "reliability.option_order_asymmetry (paired)"
    wording = "reliability.prompt_variant_contrasts / _sensitivity (repeated measures)"
    return [
        {"analysis": change, "check": "recovery", "run": change_recovery},
        {"analysis": change, "check": "null", "run": change_null},
        {"analysis": slope, "check": "recovery", "run": slope_recovery},
        {"analysis": slope, "check": "null", "run": slope_null},
        {
            "analysis": "drift.reliable_change against the PHQ-9 norm (|RCI| > 1.96)",
            "check": "null",
            "run": rci_null,
        },
        {"analysis": icc, "check": "recovery", "run": icc_recovery},
        {"analysis": icc, "check": "null", "run": icc_null},
        {"analysis": retest, "check": "recovery", "run": retest_recovery},
        {"analysis": retest, "check": "null", "run": retest_null},
        {"analysis": order + ", paired t", "check": "recovery", "run": order_recovery},
        {"analysis": order + ", paired t", "check": "null", "run": order_null},
        {"analysis": order + ", Wilcoxon", "check": "null", "run": order_null_rank},
        {"analysis": wording + ", paired t contrast", "check": "recovery", "run": wording_recovery},
        {"analysis": wording + ", rm ANOVA (GG)", "check": "null", "run": wording_null},
        {"analysis": wording + ", Friedman", "check": "null", "run": wording_null_rank},
        {
            "analysis": "group.participation_summary normalised Gini (Welch, two conditions)",
            "check": "null",
            "run": gini_null,
        },
    ]


if __name__ == "__main__":
    replications = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    for case in cases():
        results = [case["run"](seed) for seed in range(replications)]
        if case["check"] == "recovery":
            rate = np.mean([low <= planted <= high for planted, low, high in results])
            print(f"{case['analysis']}: coverage {rate:.3f}")
        else:
            rate = np.mean([p < 0.05 for (p,) in results])
            print(f"{case['analysis']}: false-positive rate {rate:.3f}")
