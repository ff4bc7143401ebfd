"""Ordinal regressions of post-debate agreement on the condition, and the published odds ratios.

Two models of ``post_toward`` (post-debate agreement toward the opponent, as
ordered categories), both cumulative logits, ``logit P(Y <= j) = theta_j -
x'beta``, with the condition entering proportionally (one odds ratio for all
thresholds):

- ``"published"`` (the default), the model of Salvi et al.'s own analysis,
  R ``ordinal::clm(post ~ treatment, nominal = ~ pre)``: pre-debate agreement
  is a factor (one level per answer) with *nominal*, threshold-specific
  effects, so each pre level has its own thresholds; no topic term. A partial
  proportional-odds model, fitted by :mod:`personae.analysis.cumulative_link`.
- ``"proportional"``, personae's earlier model: proportional odds with
  pre-debate agreement as one linear covariate and opinion-strength dummies.
  Where pre-agreement does not act proportionally it gives a different odds
  ratio (on such simulated data about 5% lower); it is not what the paper
  reports.

:func:`proportional_odds_test` tests whether pre-agreement acts
proportionally (ordinal's ``nominal_test``); :func:`published_comparison`
lays a fit beside the published odds ratios and names the model that produced
it.

Example:
    >>> model = ordinal_regression("runs/debate.db")  # doctest: +SKIP
    >>> published_comparison(model)  # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import polars as pl

from personae.studies.debate.frames import (
    CONDITION_ORDER,
    STRENGTH_ORDER,
    Debates,
    level_label,
    load_debates,
    sorted_levels,
)

if TYPE_CHECKING:
    import numpy as np


__all__ = [
    "MAX_LOG_ODDS",
    "MODELS",
    "PUBLISHED",
    "PUBLISHED_SOURCE",
    "ordinal_regression",
    "proportional_odds_test",
    "published_comparison",
]

#: A fitted |log odds ratio| beyond this marks the fit as not converged (separation).
MAX_LOG_ODDS = 15.0
#: The models :func:`ordinal_regression` fits, by name, with what they are.
MODELS: dict[str, str] = {
    "published": "partial proportional odds, pre-agreement nominal, no topic term: "
    "ordinal::clm(post ~ treatment, nominal = ~ pre), as published",
    "proportional": "proportional odds, pre-agreement linear, opinion-strength dummies: "
    "not the published model",
}
ModelName = Literal["published", "proportional"]

#: The published result (Salvi et al. 2025), keyed by the model term of the ``cells`` design.
PUBLISHED: dict[str, dict[str, Any]] = {
    "AI personalised": {
        "comparison": "personalised AI vs human",
        "odds_ratio": 1.812,
        "ci_low": 1.260,
        "ci_high": 2.607,
        "p": "< 0.01",
    },
    "AI": {
        "comparison": "AI (not personalised) vs human",
        "odds_ratio": None,
        "ci_low": None,
        "ci_high": None,
        "p": "0.30",
    },
}
PUBLISHED_SOURCE = (
    "Salvi et al. 2025, Nature Human Behaviour (N = 900); "
    "ordinal::clm(post ~ treatment, nominal = ~ pre)"
)

_CI = {"ci_low": pl.Float64, "ci_high": pl.Float64}
_REGRESSION: dict[str, Any] = {
    "term": pl.String,
    "kind": pl.String,
    "coef": pl.Float64,
    "se": pl.Float64,
    "odds_ratio": pl.Float64,
    **_CI,
    "p": pl.Float64,
    "n": pl.Int64,
    "converged": pl.Boolean,
    "model": pl.String,
    "note": pl.String,
}
_TEST: dict[str, Any] = {
    "term": pl.String,
    "statistic": pl.Float64,
    "df": pl.Int64,
    "p": pl.Float64,
    "loglik_nominal": pl.Float64,
    "loglik_proportional": pl.Float64,
    "n": pl.Int64,
    "converged": pl.Boolean,
}
_Z_975 = 1.959963984540054  # scipy.stats.norm.ppf(0.975)


def ordinal_regression(
    data: Debates,
    design: Literal["cells", "factorial"] = "cells",
    reference: str = "human",
    strength: bool | None = None,
    pre: bool = True,
    controls: Sequence[str] = (),
    *,
    model: ModelName = "published",
    thresholds: bool = False,
) -> pl.DataFrame:
    """Ordinal logit of post-debate agreement toward the opponent on the condition.

    The outcome is ``post_toward`` (higher = closer to the opponent's side),
    as ordered categories. A positive coefficient (odds ratio above 1) means
    higher odds of ending closer to the opponent. Debates lacking the outcome,
    a predictor or the side are left out (``n`` says how many were used).

    Args:
        data: A database path or a :func:`~personae.studies.debate.frames.debates` frame.
        design: ``"cells"``: one dummy per condition (``human personalised``,
            ``AI``, ``AI personalised``) against ``reference``; ``"factorial"``:
            ``opponent <X>``, ``personalised`` and their interaction.
        reference: The reference condition (a non-personalised one for
            ``"factorial"``, whose opponent becomes the reference opponent).
        strength: Add opinion-strength dummies (lowest level as reference)
            when the data has several levels; ``None``: as the model does
            (``"published"`` no, ``"proportional"`` yes).
        pre: Adjust for the pre-debate agreement toward the opponent: a factor
            with nominal effects (``"published"``) or a linear term
            (``"proportional"``).
        controls: Further numeric columns with proportional effects (e.g. ``"agreeableness"``).
        model: ``"published"`` (partial proportional odds, as Salvi et al.) or
            ``"proportional"`` (see :data:`MODELS`).
        thresholds: Also return the thresholds, ``kind = "threshold"``, in
            ordinal's parameterisation: for the published model ``1|2`` ...
            of the lowest pre level and ``1|2, pre 2`` ... for each other
            level's shift (``clm`` names them ``1|2.(Intercept)``,
            ``1|2.pre2``); for the proportional model ``1|2`` ... alone.

    Returns:
        One row per predictor (then per threshold): ``term``, ``kind``
        (``condition``, ``strength``, ``control``, ``threshold``), ``coef``
        (log odds), ``se``, ``odds_ratio``, ``ci_low``, ``ci_high`` (95% Wald,
        exponentiated; null for thresholds), ``p`` (Wald; null for
        thresholds), ``n`` (debates used), ``converged`` (false when the
        optimiser did not converge, the information is singular, or a
        coefficient diverges past :data:`MAX_LOG_ODDS`, as with complete
        separation: do not read such a fit), ``model`` (the name) and
        ``note`` (sparse cells: debates left out, thresholds not estimable).
        A threshold that is not estimable has a null ``coef``.

    Raises:
        ValueError: Unknown model, or not enough variation to fit: no usable
            debate, a constant outcome, a single condition, a missing
            reference, a constant or collinear predictor, or too few debates;
            the message says which.
    """
    from scipy.stats import norm

    from personae.analysis.cumulative_link import fit_cumulative_link, nominal_parameters

    setup = _prepare(load_debates(data), model, design, reference, strength, pre, controls)
    fit = fit_cumulative_link(setup.codes, setup.exog, setup.strata, n_levels=len(setup.outcomes))
    coef, se = fit.beta, fit.beta_se
    converged = fit.converged and all(
        math.isfinite(s) and abs(c) < MAX_LOG_ODDS for c, s in zip(coef, se, strict=True)
    )
    rows: list[
        tuple[str, str, float, float, float | None, float | None, float | None, float | None]
    ] = []
    for name, kind, c, s in zip(setup.names, setup.kinds, coef, se, strict=True):
        low, high = c - _Z_975 * s, c + _Z_975 * s
        p = 2 * float(norm.sf(abs(c / s))) if s > 0 else math.nan
        rows.append((name, kind, c, s, _exp(c), _exp(low), _exp(high), p))
    if thresholds:
        estimates, errors = nominal_parameters(fit)
        cuts = [f"{_value(a)}|{_value(b)}" for a, b in itertools.pairwise(setup.outcomes)]
        shifted = [f", pre {_value(level)}" for level in setup.strata_levels[1:]]
        for s_index, suffix in enumerate(["", *shifted]):
            for j, cut in enumerate(cuts):
                value, error = float(estimates[s_index, j]), float(errors[s_index, j])
                rows.append((cut + suffix, "threshold", value, error, None, None, None, None))
    out = pl.DataFrame(rows, schema=list(_REGRESSION)[:8], orient="row")
    out = out.with_columns(
        pl.lit(fit.n, pl.Int64).alias("n"),
        pl.lit(converged).alias("converged"),
        pl.lit(model).alias("model"),
        pl.lit(setup.note, pl.String).alias("note"),
    )
    return out.cast(pl.Schema(_REGRESSION)).fill_nan(None)


def proportional_odds_test(
    data: Debates,
    design: Literal["cells", "factorial"] = "cells",
    reference: str = "human",
    controls: Sequence[str] = (),
) -> pl.DataFrame:
    """Likelihood-ratio test that pre-agreement acts proportionally (ordinal's ``nominal_test``).

    Compares the published model (pre-agreement a factor with nominal,
    threshold-specific effects) with the proportional-odds model in which the
    same factor shifts all thresholds alike, ``clm(post ~ condition + pre)``,
    on the same debates. A small ``p`` says the pre-agreement effects differ
    between thresholds, so the proportional model misdescribes them.

    Args:
        data: A database path or a debates frame.
        design: The condition terms, as in :func:`ordinal_regression`.
        reference: The reference condition.
        controls: Further numeric columns (proportional in both models).

    Returns:
        One row: ``term`` (``pre-agreement``), ``statistic`` (``2 x`` the
        log-likelihood difference), ``df`` (the extra parameters of the
        nominal model, ``(J - 2) x (K - 1)`` for ``J`` outcome and ``K`` pre
        levels, counted as ordinal does even where an empty cell leaves one
        not estimable), ``p`` (chi-square; null when ``df`` is 0, i.e. two
        outcome levels), ``loglik_nominal``, ``loglik_proportional``, ``n``
        and ``converged`` (both fits).

    Raises:
        ValueError: As :func:`ordinal_regression`.
    """
    import numpy as np
    from scipy.stats import chi2

    from personae.analysis.cumulative_link import fit_cumulative_link

    setup = _prepare(load_debates(data), "published", design, reference, False, True, controls)
    levels = len(setup.outcomes)
    nominal = fit_cumulative_link(setup.codes, setup.exog, setup.strata, n_levels=levels)
    kept = ~nominal.dropped
    strata = np.asarray(setup.strata)[kept]
    present = np.unique(strata)
    dummies = np.column_stack([(strata == s).astype(float) for s in present[1:]])
    exog = np.column_stack([setup.exog[kept], dummies])
    proportional = fit_cumulative_link(setup.codes[kept], exog, n_levels=levels)
    # As ordinal counts them: every threshold-specific parameter, estimable or not. Counting only
    # the estimable ones (fewer where cells are empty) makes the test liberal.
    df = (np.unique(setup.codes[kept]).size - 2) * (present.size - 1)
    statistic = max(2.0 * (nominal.loglik - proportional.loglik), 0.0)
    row = {
        "term": "pre-agreement",
        "statistic": statistic,
        "df": df,
        "p": float(chi2.sf(statistic, df)) if df > 0 else None,
        "loglik_nominal": nominal.loglik,
        "loglik_proportional": proportional.loglik,
        "n": nominal.n,
        "converged": nominal.converged and proportional.converged,
    }
    return pl.DataFrame([row], schema=_TEST)


def published_comparison(model: pl.DataFrame | None = None) -> pl.DataFrame:
    """The published odds ratios beside the model's corresponding terms, naming the model.

    The published figures come from the partial proportional-odds model
    (``model="published"`` of :func:`ordinal_regression`, the default); a
    fit of another model is laid beside them too, but ``model`` and
    ``model_spec`` say that it is not the same model.

    Args:
        model: An :func:`ordinal_regression` result of the ``cells`` design;
            ``None`` gives the published values alone.

    Returns:
        One row per published comparison: ``term``, ``comparison``,
        ``published_or``, ``published_ci_low``, ``published_ci_high``,
        ``published_p`` (as reported, text), ``model_or``, ``model_ci_low``,
        ``model_ci_high``, ``model_p``, ``model_n``, ``model`` (the name,
        null for a frame that does not say), ``model_spec`` (what it is) and
        ``source``.
    """
    fitted: dict[str, dict[str, Any]] = {}
    if model is not None and not model.is_empty():
        fitted = {r["term"]: r for r in model.iter_rows(named=True)}
    rows = []
    for term, published in PUBLISHED.items():
        mine = fitted.get(term, {})
        name = mine.get("model")
        rows.append(
            {
                "term": term,
                "comparison": published["comparison"],
                "published_or": published["odds_ratio"],
                "published_ci_low": published["ci_low"],
                "published_ci_high": published["ci_high"],
                "published_p": published["p"],
                "model_or": mine.get("odds_ratio"),
                "model_ci_low": mine.get("ci_low"),
                "model_ci_high": mine.get("ci_high"),
                "model_p": mine.get("p"),
                "model_n": mine.get("n"),
                "model": name,
                "model_spec": MODELS.get(str(name), "unknown model") if mine else None,
                "source": PUBLISHED_SOURCE,
            }
        )
    floats = ["published_or", "published_ci_low", "published_ci_high", "model_or"]
    floats += ["model_ci_low", "model_ci_high", "model_p"]
    schema: dict[str, Any] = {c: pl.Float64 for c in floats} | {"model_n": pl.Int64}
    schema |= {"model": pl.String, "model_spec": pl.String}
    return pl.DataFrame(rows, schema_overrides=schema)


# --- private steps ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Setup:
    """What a fit needs: outcome codes, proportional predictors, strata, and their labels."""

    codes: np.ndarray
    exog: np.ndarray
    strata: np.ndarray | None
    names: list[str]
    kinds: list[str]
    outcomes: list[float]
    strata_levels: list[float]
    note: str | None


def _prepare(
    frame: pl.DataFrame,
    model: str,
    design: str,
    reference: str,
    strength: bool | None,
    pre: bool,
    controls: Sequence[str],
) -> _Setup:
    """Select the usable debates and build the predictors, refusing what cannot be fitted."""
    import numpy as np

    if model not in MODELS:
        raise ValueError(f"model must be one of {list(MODELS)}, not {model!r}")
    needed = ["pre_toward", "post_toward", "condition", *controls]
    absent = [c for c in needed if c not in frame.columns]
    if absent:
        raise ValueError(f"ordinal_regression: no column {absent} in the debates")
    usable = frame.drop_nulls(needed)
    wanted = strength if strength is not None else model == "proportional"
    use_strength = wanted and usable["strength"].drop_nulls().n_unique() > 1
    if use_strength:
        usable = usable.drop_nulls("strength")
    if usable.height == 0:
        raise ValueError(
            f"no debate (of {frame.height}) has a readable pre- and post-agreement, an "
            "opponent_side (pro/con) and a condition (opponent, personalised)"
        )
    outcome = usable["post_toward"]
    if outcome.n_unique() < 2:
        raise ValueError(
            f"post-agreement toward the opponent is {outcome[0]} in all {usable.height} "
            "debates: an ordinal regression needs at least two outcome levels"
        )
    _condition_dummies(usable, design, reference)  # refuse a missing condition before dropping
    nominal = pre and model == "published"
    note = None
    if nominal:
        usable, note = _informative(usable)
        if usable["pre_toward"].n_unique() < 2:
            why = f" once uninformative levels are left out ({note})" if note else ""
            raise ValueError(
                f"the predictor 'pre-agreement' is the same in every usable debate{why}: leave "
                "it out (pre=False) or add debates that vary it"
            )
    n = usable.height
    outcome = usable["post_toward"]
    columns, names, kinds = _condition_dummies(usable, design, reference)
    if use_strength:
        levels = sorted_levels(usable["strength"].unique().to_list(), STRENGTH_ORDER)
        for level in levels[1:]:
            columns.append((usable["strength"] == level).cast(pl.Float64))
            names.append(f"strength {level}")
            kinds.append("strength")
    adjust = [("pre_toward", "pre-agreement")] if pre and not nominal else []
    for column, name in [*adjust, *[(c, c) for c in controls]]:
        columns.append(usable[column].cast(pl.Float64))
        names.append(name)
        kinds.append("control")
    outcomes = sorted(outcome.unique().to_list())
    codes = outcome.replace_strict(outcomes, list(range(len(outcomes)))).to_numpy()
    strata, strata_levels, n_thresholds = None, [], len(outcomes) - 1
    if nominal:
        strata_levels = sorted(usable["pre_toward"].unique().to_list())
        pre_codes = usable["pre_toward"].replace_strict(
            strata_levels, list(range(len(strata_levels)))
        )
        strata = pre_codes.to_numpy()
        n_thresholds = int(
            usable.group_by("pre_toward").agg(pl.col("post_toward").n_unique() - 1)[:, 1].sum()
        )
    exog = _design_matrix(columns, names, n_thresholds) if columns else np.empty((n, 0))
    return _Setup(codes, exog, strata, names, kinds, outcomes, strata_levels, note)


def _informative(usable: pl.DataFrame) -> tuple[pl.DataFrame, str | None]:
    """Leave out pre levels whose debates all end alike; describe the sparse cells."""
    cells = usable.group_by("pre_toward").agg(
        pl.len().alias("n"), pl.col("post_toward").unique().sort().alias("posts")
    )
    rows = cells.sort("pre_toward").rows()
    single = [level for level, _, posts in rows if len(posts) == 1]
    kept = usable.filter(~pl.col("pre_toward").is_in(single)) if single else usable
    outcomes = sorted(kept["post_toward"].unique().to_list())
    notes = [
        f"Left out: the {count} debates at pre-agreement {_value(level)}, all ending at "
        f"{_value(posts[0])} (no information with threshold-specific pre effects)."
        for level, count, posts in rows
        if len(posts) == 1
    ]
    gaps = [
        f"{_value(level)}: " + ", ".join(_value(v) for v in outcomes if v not in posts)
        for level, _, posts in rows
        if 1 < len(posts) < len(outcomes)
    ]
    if gaps:
        notes.append(
            f"Answers never given (pre-agreement: answers) {'; '.join(gaps)}: the thresholds "
            "next to them at that level are not estimable (null)."
        )
    return kept, " ".join(notes) or None


def _condition_dummies(
    usable: pl.DataFrame, design: str, reference: str
) -> tuple[list[pl.Series], list[str], list[str]]:
    conditions = sorted_levels(usable["condition"].unique().to_list(), CONDITION_ORDER)
    if len(conditions) < 2:
        raise ValueError(
            f"only one condition ({conditions[0]!r}) in the {usable.height} usable debates: the "
            f"regression compares conditions, so it needs the reference {reference!r} and at "
            "least one other"
        )
    if reference not in conditions:
        raise ValueError(
            f"the reference condition {reference!r} is not in the data (conditions: "
            f"{conditions}); pass reference= one of them"
        )
    if design == "cells":
        others = [c for c in conditions if c != reference]
        columns = [(usable["condition"] == c).cast(pl.Float64) for c in others]
        return columns, others, ["condition"] * len(others)
    if design != "factorial":
        raise ValueError(f"design must be 'cells' or 'factorial', not {design!r}")
    ref = usable.filter(pl.col("condition") == reference)
    if ref["personalised"].any():
        raise ValueError(f"the factorial reference {reference!r} must be a non-personalised one")
    base = ref["opponent"][0]
    personalised = usable["personalised"].fill_null(False).cast(pl.Float64)
    opponents = sorted_levels(usable["opponent"].unique().to_list(), ("human", "ai"))
    dummies = {
        f"opponent {level_label(o)}": (usable["opponent"] == o).cast(pl.Float64)
        for o in opponents
        if o != base
    }
    interactions = {f"{name} x personalised": d * personalised for name, d in dummies.items()}
    chosen = {**dummies, "personalised": personalised, **interactions}
    return list(chosen.values()), list(chosen), ["condition"] * len(chosen)


def _design_matrix(columns: list[pl.Series], names: list[str], n_thresholds: int) -> np.ndarray:
    """Stack predictors, refusing constant or collinear ones with a message that names them."""
    import numpy as np

    for column, name in zip(columns, names, strict=True):
        if column.n_unique() < 2:
            raise ValueError(
                f"the predictor {name!r} is the same in every usable debate: leave it out "
                "(e.g. pre=False, strength=False) or add debates that vary it"
            )
    exog = np.column_stack([c.to_numpy() for c in columns])
    n, k = exog.shape
    if n <= k + n_thresholds:
        raise ValueError(f"too few debates ({n}) for {k} predictors and {n_thresholds} thresholds")
    with_intercept = np.column_stack([np.ones(n), exog])
    for i in range(k):
        if np.linalg.matrix_rank(with_intercept[:, : i + 2]) < i + 2:
            raise ValueError(
                f"the predictor {names[i]!r} is collinear with those before it "
                f"({names[:i] or 'the intercept'}): e.g. a strength level occurring in one "
                "condition only"
            )
    return exog


def _value(level: float) -> str:
    """An agreement level as written in term names: ``2`` for 2.0."""
    return str(int(level)) if float(level).is_integer() else f"{level:g}"


def _exp(value: float) -> float:
    try:
        return math.exp(value)
    except OverflowError:
        return math.inf
