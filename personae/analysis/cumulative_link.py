"""Cumulative-link (ordinal logit) models with stratum-specific thresholds, as R's ``ordinal::clm``.

For an ordered outcome ``Y`` with categories ``1 .. J``, predictors ``x`` with
proportional effects ``beta`` and a stratifying factor ``s`` whose effects are
*nominal* (threshold-specific):

    logit P(Y <= j | x, s) = theta[j, s] - x'beta,  j = 1 .. J - 1

Without strata every observation shares the thresholds ``theta[j]``: the
proportional-odds model. With strata this is the partial proportional-odds
model that ``clm(y ~ x, nominal = ~ s)`` fits; ordinal reports the thresholds
as ``theta[j]`` of the first stratum plus shifts ``delta[j, s] = theta[j, s] -
theta[j, first]`` (:func:`nominal_parameters` gives them in that form).

The log-likelihood is maximised by :func:`scipy.optimize.minimize`
(``trust-exact``) with its analytic gradient and Hessian (the model is concave
in its parameters where the thresholds are ordered); standard errors come from
the inverse of the observed information, as in ordinal.

Sparse cells: when stratum ``s`` has no observation in category ``c``, the
maximum-likelihood thresholds around ``c`` are not finite (``c`` first or
last: they run to -/+ infinity) or not separately identified (``c`` inside:
the two thresholds coincide). The fit then uses, within each stratum, one
threshold between each pair of *observed* neighbouring categories, which
attains the same maximum likelihood and the same ``beta``; a ``theta[j, s]``
is reported only where categories ``j`` and ``j + 1`` are both observed in
``s`` (``nan`` otherwise). A stratum with a single observed category carries
no information (its thresholds can make every probability 1): its
observations are dropped (``CumulativeLinkFit.dropped``).

Example:
    >>> fit = fit_cumulative_link([0, 1, 2, 1, 2, 0], [[0], [0], [1], [1], [1], [0]])
    >>> fit.beta.shape
    (1,)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

#: Largest absolute gradient of the log-likelihood at which a fit counts as converged
#: (ordinal's default ``gradTol``).
GRADIENT_TOLERANCE = 1e-6

__all__ = [
    "GRADIENT_TOLERANCE",
    "CumulativeLinkFit",
    "fit_cumulative_link",
    "nominal_parameters",
]


@dataclass(frozen=True)
class CumulativeLinkFit:
    """A fitted cumulative-logit model.

    Attributes:
        beta: Proportional effects, one per column of ``x`` (``P(Y > j)`` rises with ``x'beta``).
        thresholds: ``theta[j, s]``, shape (strata, J - 1); ``nan`` where not estimable.
        params: Every estimated parameter: the thresholds between observed
            neighbouring categories of each stratum, then ``beta``.
        cov: Covariance of ``params`` (inverse observed information); ``nan``
            when the information is singular.
        threshold_index: Position in ``params`` of each ``theta[j, s]``, -1 where not estimable.
        loglik: Maximised log-likelihood (dropped observations contribute 0, their limit).
        n: Observations used.
        dropped: Per input observation, whether it was left out (its stratum has one category).
        converged: The optimiser stopped with a gradient below :data:`GRADIENT_TOLERANCE`
            and the information is positive definite.
        iterations: Optimiser iterations.
    """

    beta: np.ndarray
    thresholds: np.ndarray
    params: np.ndarray
    cov: np.ndarray
    threshold_index: np.ndarray
    loglik: float
    n: int
    dropped: np.ndarray
    converged: bool
    iterations: int

    @property
    def beta_se(self) -> np.ndarray:
        """Standard errors of ``beta``."""
        k = self.beta.size
        diagonal = np.diag(self.cov)[self.params.size - k :] if k else np.empty(0)
        return np.sqrt(diagonal)

    @property
    def n_params(self) -> int:
        """Number of estimated parameters (the degrees of freedom of a likelihood-ratio test)."""
        return int(self.params.size)


def fit_cumulative_link(
    y: ArrayLike,
    x: ArrayLike,
    strata: ArrayLike | None = None,
    n_levels: int | None = None,
    max_iterations: int = 500,
) -> CumulativeLinkFit:
    """Maximum-likelihood fit of a cumulative-logit model, thresholds per stratum.

    Args:
        y: Outcome category codes ``0 .. J - 1`` (ordered).
        x: Predictors with proportional effects, shape (n, p); no intercept
            column (the thresholds play its part). ``p`` may be 0.
        strata: Stratum codes ``0 .. K - 1`` whose effects are nominal (own
            thresholds per stratum); ``None``: one stratum (proportional odds).
        n_levels: Number of outcome categories ``J`` (default: ``max(y) + 1``).
        max_iterations: Optimiser iteration limit.

    Returns:
        The fit; check ``converged`` before reading it.

    Raises:
        ValueError: Shapes disagree, codes are out of range, or no stratum has
            two outcome categories.
    """
    from scipy.optimize import minimize

    codes = np.asarray(y, dtype=np.int64)
    design = np.asarray(x, dtype=np.float64).reshape(codes.size, -1)
    groups = np.zeros(codes.size, np.int64) if strata is None else np.asarray(strata, np.int64)
    levels = int(codes.max()) + 1 if n_levels is None and codes.size else int(n_levels or 0)
    if groups.shape != codes.shape or codes.ndim != 1:
        raise ValueError(f"y {codes.shape}, x {design.shape} and strata {groups.shape} disagree")
    if codes.size and (codes.min() < 0 or codes.max() >= levels or groups.min() < 0):
        raise ValueError(f"outcome codes must lie in 0 .. {levels - 1} and strata be >= 0")
    n_strata = int(groups.max()) + 1 if groups.size else 0
    layout = _Layout.build(codes, groups, n_strata, levels)
    keep = ~layout.dropped
    if not keep.any():
        raise ValueError("no stratum has two outcome categories: nothing to estimate")
    likelihood = _Likelihood(layout, codes[keep], groups[keep], design[keep])
    start = np.concatenate([layout.start, np.zeros(design.shape[1])])
    result = minimize(
        lambda p: -likelihood.value(p),
        start,
        jac=lambda p: -likelihood.gradient(p),
        hess=lambda p: -likelihood.hessian(p),
        method="trust-exact",
        options={"gtol": 1e-10, "maxiter": max_iterations},
    )
    params = _polish(likelihood, np.asarray(result.x, dtype=np.float64))
    information = -likelihood.hessian(params)
    cov, regular = _inverse(information)
    gradient = likelihood.gradient(params)
    converged = bool(np.all(np.abs(gradient) < GRADIENT_TOLERANCE)) and regular
    thresholds = np.full((n_strata, max(levels - 1, 0)), np.nan)
    known = layout.index >= 0
    thresholds[known] = params[layout.index[known]]
    return CumulativeLinkFit(
        beta=params[layout.n_thresholds :],
        thresholds=thresholds,
        params=params,
        cov=cov,
        threshold_index=layout.index,
        loglik=float(likelihood.value(params)),
        n=int(keep.sum()),
        dropped=layout.dropped,
        converged=converged,
        iterations=int(result.nit),
    )


def nominal_parameters(fit: CumulativeLinkFit) -> tuple[np.ndarray, np.ndarray]:
    """The thresholds in ordinal's parameterisation, with standard errors.

    ordinal writes ``theta[j, s] = theta[j] + delta[j, s]`` with ``theta[j]``
    the thresholds of the first stratum and ``delta[j, first] = 0``.

    Args:
        fit: A fit of :func:`fit_cumulative_link`.

    Returns:
        ``(estimates, standard_errors)``, each of shape (strata, J - 1): row 0
        holds ``theta[j]``, row ``s`` holds ``delta[j, s]``; ``nan`` where a
        threshold involved is not estimable.
    """
    n_strata, n_cuts = fit.thresholds.shape
    estimates = np.full((n_strata, n_cuts), np.nan)
    errors = np.full((n_strata, n_cuts), np.nan)
    for s in range(n_strata):
        for j in range(n_cuts):
            weights = np.zeros(fit.params.size)
            first, mine = fit.threshold_index[0, j], fit.threshold_index[s, j]
            if first < 0 or mine < 0:
                continue
            weights[mine] += 1.0
            if s:
                weights[first] -= 1.0
            estimates[s, j] = weights @ fit.params
            errors[s, j] = math.sqrt(max(float(weights @ fit.cov @ weights), 0.0))
    return estimates, errors


@dataclass(frozen=True)
class _Layout:
    """Which thresholds exist: per stratum, one between each pair of observed neighbours."""

    upper: np.ndarray  # per (stratum, category): parameter of the threshold above, -1 if none
    lower: np.ndarray  # per (stratum, category): parameter of the threshold below, -1 if none
    index: np.ndarray  # per (stratum, cut j): parameter of theta[j, s] where estimable, else -1
    start: np.ndarray  # starting thresholds: logits of the cumulative shares in each stratum
    dropped: np.ndarray  # per observation: its stratum has a single category
    n_thresholds: int

    @classmethod
    def build(cls, codes: np.ndarray, groups: np.ndarray, n_strata: int, levels: int) -> _Layout:
        counts = np.zeros((n_strata, levels), np.int64)
        np.add.at(counts, (groups, codes), 1)
        upper = np.full((n_strata, levels), -1, np.int64)
        lower = np.full((n_strata, levels), -1, np.int64)
        index = np.full((n_strata, max(levels - 1, 0)), -1, np.int64)
        start: list[float] = []
        for s in range(n_strata):
            seen = np.flatnonzero(counts[s])
            if seen.size < 2:
                continue
            shares = np.cumsum(counts[s, seen])[:-1] / counts[s].sum()
            for below, above, share in zip(seen[:-1], seen[1:], shares, strict=True):
                upper[s, below] = lower[s, above] = len(start)
                if above == below + 1:
                    index[s, below] = len(start)
                start.append(math.log(share / (1.0 - share)))
        single = (counts > 0).sum(axis=1) < 2
        return cls(upper, lower, index, np.array(start), single[groups], len(start))


class _Likelihood:
    """Log-likelihood, gradient and Hessian of the kept observations (parameters: thresholds, beta).

    Observation i in category c of stratum s has probability
    ``F(theta_up - x'beta) - F(theta_low - x'beta)`` with ``F`` the logistic
    distribution function and the missing bounds at -/+ infinity.
    """

    def __init__(
        self, layout: _Layout, codes: np.ndarray, groups: np.ndarray, design: np.ndarray
    ) -> None:
        n, k = design.shape
        self.up = layout.upper[groups, codes]
        self.low = layout.lower[groups, codes]
        self.has_up, self.has_low = self.up >= 0, self.low >= 0
        t = layout.n_thresholds
        # Derivatives of the two linear predictors with respect to all parameters.
        self.d_up = np.zeros((n, t + k))
        self.d_low = np.zeros((n, t + k))
        rows = np.arange(n)
        self.d_up[rows[self.has_up], self.up[self.has_up]] = 1.0
        self.d_low[rows[self.has_low], self.low[self.has_low]] = 1.0
        self.d_up[self.has_up, t:] = -design[self.has_up]
        self.d_low[self.has_low, t:] = -design[self.has_low]
        self.design, self.n_thresholds = design, t

    def _predictors(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        eta = self.design @ params[self.n_thresholds :]
        thresholds = params[: self.n_thresholds]
        up = np.where(self.has_up, thresholds[np.maximum(self.up, 0)] - eta, np.inf)
        low = np.where(self.has_low, thresholds[np.maximum(self.low, 0)] - eta, -np.inf)
        return up, low

    def _terms(self, params: np.ndarray) -> tuple[np.ndarray, ...]:
        from scipy.special import expit

        up, low = self._predictors(params)
        # F(up) - F(low), computed in the tail where it is exact: 1 - F(z) = F(-z).
        upper_tail = low > 0
        prob = np.where(upper_tail, expit(-low) - expit(-up), expit(up) - expit(low))
        dens_up, dens_low = expit(up) * expit(-up), expit(low) * expit(-low)
        slope_up = dens_up * (1.0 - 2.0 * expit(up))
        slope_low = dens_low * (1.0 - 2.0 * expit(low))
        return prob, dens_up, dens_low, slope_up, slope_low

    def value(self, params: np.ndarray) -> float:
        prob = self._terms(params)[0]
        if not np.all(prob > 0):  # disordered thresholds: outside the model
            return -math.inf
        return float(np.log(prob).sum())

    def gradient(self, params: np.ndarray) -> np.ndarray:
        prob, dens_up, dens_low, _, _ = self._terms(params)
        scores = (dens_up[:, None] * self.d_up - dens_low[:, None] * self.d_low) / prob[:, None]
        return np.asarray(scores.sum(axis=0))

    def hessian(self, params: np.ndarray) -> np.ndarray:
        prob, dens_up, dens_low, slope_up, slope_low = self._terms(params)
        scores = (dens_up[:, None] * self.d_up - dens_low[:, None] * self.d_low) / prob[:, None]
        curvature = (self.d_up * (slope_up / prob)[:, None]).T @ self.d_up
        curvature -= (self.d_low * (slope_low / prob)[:, None]).T @ self.d_low
        return np.asarray(curvature - scores.T @ scores)


def _polish(likelihood: _Likelihood, params: np.ndarray, steps: int = 20) -> np.ndarray:
    """Newton steps (halved while they lose likelihood) from near the maximum.

    trust-exact can stop short of a tight gradient tolerance when its model
    predicts no further gain in floating point; a few plain Newton steps finish
    the job, as ordinal's own Newton-Raphson does.
    """
    value = likelihood.value(params)
    for _ in range(steps):
        gradient = likelihood.gradient(params)
        if not np.all(np.isfinite(gradient)) or np.abs(gradient).max(initial=0.0) < 1e-12:
            break
        try:
            step = np.linalg.solve(likelihood.hessian(params), gradient)
        except np.linalg.LinAlgError:
            break
        for _ in range(30):
            proposal = params - step
            proposed = likelihood.value(proposal)
            if proposed >= value:
                break
            step = step / 2
        else:
            break
        params, value = proposal, proposed
    return params


def _inverse(information: np.ndarray) -> tuple[np.ndarray, bool]:
    """Inverse of the observed information, ``nan`` when it is not positive definite."""
    if not np.all(np.isfinite(information)):
        return np.full_like(information, np.nan), False
    eigenvalues = np.linalg.eigvalsh(information)
    if eigenvalues.size and eigenvalues.min() <= 1e-10 * max(eigenvalues.max(), 1e-300):
        return np.full_like(information, np.nan), False
    return np.linalg.inv(information), True
