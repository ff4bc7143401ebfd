"""Published norms, and the Jacobson-Truax arithmetic that needs them.

The reliable change index (RCI) and clinical significance of Jacobson and
Truax (1991) compare a respondent's change with the measurement error of the
instrument *in people*: the standard deviation and reliability of a normative
sample, and the means and SDs of a functional (general-population) and a
dysfunctional (clinical) population. A simulated sample cannot supply them:
ten seeds of one persona spread by sampling noise only, and an RCI scaled by
that spread calls almost any change "reliable".

The norms ship as package data (``data/norms.json``), one entry per
instrument x scale x sample, each number tagged with its source. Where no
number could be verified (the IPIP-NEO-120 domains) the entry is there with
nulls and a note, so the gap is visible; pass your own values instead.

Jacobson, N. S., & Truax, P. (1991). Clinical significance: a statistical
approach to defining meaningful change in psychotherapy research. *Journal of
Consulting and Clinical Psychology*, 59(1), 12-19.

Example:
    >>> norm = find_norm("phq-9", "phq-9")
    >>> norm.sd, norm.reliability, norm.source
    (3.5, 0.89, 'kocalevent2013')
    >>> round(reliable_change_index(12, 7, sd=norm.sd, reliability=norm.reliability), 2)
    -3.05
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any, Literal

#: A Jacobson-Truax cut-off criterion (see :func:`clinical_cutoff`).
Criterion = Literal["a", "b", "c"]
#: A population as (mean, SD).
Population = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Norm:
    """One published normative sample of one scale.

    Attributes:
        instrument: The instrument name, e.g. ``"phq-9"``.
        scale: The scale (the instrument name for a total).
        role: ``"functional"`` (general population) or ``"dysfunctional"`` (clinical).
        sample: Who was measured.
        n: Sample size, if known.
        mean: Mean score on personae's scoring of the scale, or ``None``.
        sd: Standard deviation, or ``None``.
        source: Key of the source in :func:`sources`.
        reliability: A reliability coefficient for the RCI, or ``None``.
        reliability_kind: What it is (``"Cronbach's alpha"``, a test-retest r, ...).
        reliability_source: Key of its source (it may differ from ``source``).
        note: How the numbers were taken from the source, and how sure they are.
    """

    instrument: str
    scale: str
    role: Literal["functional", "dysfunctional"]
    sample: str
    n: int | None
    mean: float | None
    sd: float | None
    source: str
    reliability: float | None
    reliability_kind: str | None
    reliability_source: str | None
    note: str

    @property
    def label(self) -> str:
        """A short citation of the sample, e.g. ``"kocalevent2013 (German ..., N = 5018)"``."""
        size = f", N = {self.n}" if self.n else ""
        return f"{self.source} ({self.sample}{size})"

    @property
    def reliability_label(self) -> str | None:
        """What the reliability is and where it comes from, or ``None`` without one."""
        if self.reliability is None:
            return None
        return f"{self.reliability_kind or 'reliability'}, {self.reliability_source or self.source}"


@cache
def _data() -> dict[str, Any]:
    text = (files("personae.measures") / "data" / "norms.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def sources() -> dict[str, str]:
    """The full citation of every source key used by the shipped norms."""
    return dict(_data()["sources"])


def norms(instrument: str | None = None) -> tuple[Norm, ...]:
    """The shipped norms, in file order, optionally of one instrument.

    Example:
        >>> [n.source for n in norms("gad-7")]
        ['lowe2008', 'spitzer2006']
    """
    entries = (Norm(**entry) for entry in _data()["norms"])
    return tuple(n for n in entries if instrument is None or n.instrument == instrument)


def find_norm(
    instrument: str, scale: str, role: Literal["functional", "dysfunctional"] = "functional"
) -> Norm | None:
    """The default norm of a scale: the first shipped entry for it and ``role``, or ``None``.

    The entry may still lack a number (``sd`` or ``reliability`` ``None``); its
    ``note`` says why.
    """
    for norm in norms(instrument):
        if norm.scale == scale and norm.role == role:
            return norm
    return None


@dataclass(frozen=True, slots=True)
class ChangeReference:
    """The SD and reliability the RCI of one scale is computed with, and where they come from.

    Attributes:
        kind: ``"norms"``, ``"sample"`` or ``"given"`` (where the SD came from).
        sd: The SD, or ``None``.
        sd_source: Where it came from (``"norm: <source> (<sample>)"``, ``"given"``, ...).
        reliability: The reliability, or ``None``.
        reliability_source: Where it came from.
        missing: Why the RCI cannot be computed, or ``None``.
    """

    kind: str
    sd: float | None
    sd_source: str | None
    reliability: float | None
    reliability_source: str | None
    missing: str | None


def change_reference(
    instrument: str,
    scale: str,
    *,
    reference: Literal["norms", "sample"] = "norms",
    sd: float | None = None,
    reliability: float | None = None,
    sample_sd: float | None = None,
    sample_reliability: float | None = None,
    sample_size: int = 0,
) -> ChangeReference:
    """Resolve the SD and reliability of a scale's RCI: given values first, then the reference.

    Args:
        instrument: The instrument name.
        scale: The scale.
        reference: ``"norms"`` (the shipped norm of the scale, :func:`find_norm`)
            or ``"sample"`` (``sample_sd`` and ``sample_reliability``).
        sd: A given SD; it overrides the reference's.
        reliability: A given reliability; it overrides the reference's.
        sample_sd: The SD of the simulated respondents' baseline values.
        sample_reliability: Their test-retest correlation.
        sample_size: How many respondents ``sample_sd`` is over.

    Raises:
        ValueError: ``reference`` is neither ``"norms"`` nor ``"sample"``.
    """
    if reference not in ("norms", "sample"):
        raise ValueError(f"reference must be 'norms' or 'sample', got {reference!r}.")
    kind = "given" if sd is not None else reference
    sd_source = r_source = "given"
    missing = None
    if reference == "sample":
        if sd is None:
            sd, sd_source = sample_sd, f"sample: SD of {sample_size} baseline values"
        if reliability is None:
            reliability = sample_reliability
            r_source = "sample: test-retest, baseline to next occasion"
        if not sd:
            missing = "no spread at baseline across respondents"
        elif reliability is None:
            missing = "no reliability: give one or measure at least 3 respondents twice"
    else:
        norm = find_norm(instrument, scale)
        if sd is None and norm is not None and norm.sd is not None:
            sd, sd_source = norm.sd, f"norm: {norm.label}"
        if reliability is None and norm is not None and norm.reliability is not None:
            reliability, r_source = norm.reliability, f"norm: {norm.reliability_label}"
        lacking = [name for name, v in (("SD", sd), ("reliability", reliability)) if v is None]
        if lacking:
            missing = (
                f"no published {' or '.join(lacking)} shipped for {instrument} {scale}: pass "
                "reference_sd= and reliability= (e.g. from the instrument's manual), or "
                "reference='sample' to scale by the simulated respondents"
            )
    return ChangeReference(
        kind,
        sd,
        sd_source if sd is not None else None,
        reliability,
        r_source if reliability is not None else None,
        missing,
    )


def reliable_change_index(x_first: float, x_last: float, *, sd: float, reliability: float) -> float:
    """Jacobson-Truax RCI: ``(x_last - x_first) / (sqrt(2) * sd * sqrt(1 - reliability))``.

    ``|RCI| > 1.96`` is a reliable change (two-sided 5%).

    Raises:
        ValueError: ``sd`` is not positive or ``reliability`` is not in (0, 1).
    """
    if not sd > 0:
        raise ValueError(f"sd must be positive, got {sd}.")
    if not 0 < reliability < 1:
        raise ValueError(f"reliability must lie strictly between 0 and 1, got {reliability}.")
    return (x_last - x_first) / (math.sqrt(2) * sd * math.sqrt(1 - reliability))


def clinical_cutoff(
    functional: Population | None,
    dysfunctional: Population | None,
    criterion: Criterion | None = None,
    *,
    higher_is_worse: bool = True,
) -> tuple[float, Criterion]:
    """The Jacobson-Truax cut-off between dysfunctional and functional scores.

    - ``a``: 2 SD beyond the dysfunctional mean, toward the functional side.
    - ``b``: 2 SD from the functional mean, toward the dysfunctional side.
    - ``c``: the point between the means weighted by the SDs,
      ``(sd_d * mean_f + sd_f * mean_d) / (sd_d + sd_f)``.

    Args:
        functional: (mean, SD) of the functional population, or ``None``.
        dysfunctional: (mean, SD) of the dysfunctional population, or ``None``.
        criterion: Which one; ``None`` takes ``c`` when both populations are
            known, else ``b`` (functional only) or ``a`` (dysfunctional only),
            as Jacobson and Truax advise.
        higher_is_worse: Whether higher scores mean worse (PHQ-9, GAD-7, PSS-10).

    Returns:
        The cut-off and the criterion used. A score on the functional side of
        it (``<=`` when higher is worse) counts as functional.

    Raises:
        ValueError: The criterion needs a population that is not given.

    Example:
        >>> clinical_cutoff((2.9, 3.5), None)
        (9.9, 'b')
    """
    if criterion is None:
        criterion = "c" if functional and dysfunctional else "b" if functional else "a"
    need = {"a": [dysfunctional], "b": [functional], "c": [functional, dysfunctional]}[criterion]
    if any(p is None for p in need):
        raise ValueError(f"criterion {criterion!r} needs the population(s) it is defined on.")
    sign = 1.0 if higher_is_worse else -1.0
    if criterion == "a":
        assert dysfunctional is not None
        return dysfunctional[0] - sign * 2 * dysfunctional[1], criterion
    if criterion == "b":
        assert functional is not None
        return functional[0] + sign * 2 * functional[1], criterion
    assert functional is not None and dysfunctional is not None
    (m_f, s_f), (m_d, s_d) = functional, dysfunctional
    return (s_d * m_f + s_f * m_d) / (s_d + s_f), criterion
