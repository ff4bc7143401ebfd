"""Seeded populations of personas drawn from demographic and Big Five distributions.

A :class:`Population` holds the distributions; :meth:`Population.sample` draws
personas from them. The defaults loosely match an adult US online-survey panel
like the one in Salvi et al. (2025): ages 18-80 skewed young, US party
identification for political affiliation, Big Five levels around the scale
midpoint with small meta-analytic correlations
(:mod:`personae.world.population_defaults`, importable from here too). Every
value and its rationale is in ``docs/population.md``.

Persona *i* of a sample is drawn from its own generator seeded with
``derive_seed(seed, "population", i)`` and always uses the same random numbers
for the same attribute, so:

* the same seed gives the same personas, and growing ``n`` keeps the first ones;
* two populations that differ in one setting, sampled with the same seed, give
  matched personas that differ only where that setting acts (common random
  numbers), e.g. raising the mean of neuroticism shifts every persona's N.

Example:
    >>> from personae.world import Population
    >>> people = Population(age_range=(30, 40)).sample(3, seed=7)
    >>> [p.name for p in people]
    ['Participant 001', 'Participant 002', 'Participant 003']
    >>> all(30 <= p.demographics.age <= 40 for p in people)
    True
"""

from __future__ import annotations

import csv
import io
from functools import cache
from importlib.resources import files
from itertools import pairwise
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from personae.agents.persona import BIG_FIVE, Demographics, Persona
from personae.errors import ConfigError
from personae.seeds import derive_seed
from personae.world.population_defaults import (
    DEFAULT_AGE_BRACKETS,
    DEFAULT_BIG_FIVE_CORRELATION,
    DEFAULT_BIG_FIVE_MEAN,
    DEFAULT_BIG_FIVE_SD,
    DEFAULT_EDUCATION,
    DEFAULT_EMPLOYMENT,
    DEFAULT_EMPLOYMENT_AGES,
    DEFAULT_ETHNICITY,
    DEFAULT_GENDER,
    DEFAULT_POLITICAL_AFFILIATION,
)

_DOMAINS = tuple(BIG_FIVE)  # O C E A N
_INITIALS = "ABCDEFGHIJKLMNOPRSTVW"


class Population(BaseModel):
    """Distributions personas are drawn from; every field has a default.

    Categorical settings map each category to its probability (in the order
    given; probabilities sum to 1). ``None`` leaves that field unset on every
    persona.

    Args:
        age_brackets: ``(first, last, share)`` per bracket; ages are uniform
            within a bracket. Brackets must not overlap; shares sum to 1.
        age_range: Inclusive ages to draw from; the bracket distribution is
            cut to this range and renormalised. Must lie within the brackets;
            their whole span (18-80 by default) when omitted.
        gender: Gender categories and probabilities.
        ethnicity: Ethnicity categories and probabilities.
        education: Highest completed education and probabilities.
        employment: Employment status and its share of the population over
            the brackets' whole span.
        employment_ages: Inclusive age range in which a status may be drawn,
            e.g. ``{"retired": (55, 120)}``. The shares by age are fitted
            (iterative proportional fitting) so that the ``employment`` shares
            still hold over the brackets' span; ``age_range`` then cuts out a
            sub-population (no retirees among 20-30 year olds).
        political_affiliation: Political affiliation and probabilities (US
            party identification by default; any labels work, e.g. a
            left-right scale).
        location: Written into every persona's demographics when given.
        big_five_mean: Mean level per domain on 1-5, keyed by letter or name;
            missing domains get 3.0.
        big_five_sd: Standard deviation per domain; missing domains get 0.7.
        big_five_correlation: Correlation per pair of domains, keyed
            ``"E-N"`` (letters or names, either order). Replaces the whole
            default set: pairs not named are uncorrelated, ``{}`` draws the
            domains independently.

    Raises:
        pydantic.ValidationError: A setting is invalid; the error names it.

    Example:
        >>> Population(big_five_mean={"neuroticism": 3.5}).big_five_mean["N"]
        3.5
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    age_brackets: tuple[tuple[int, int, float], ...] = DEFAULT_AGE_BRACKETS
    age_range: tuple[int, int] | None = None
    gender: dict[str, float] | None = Field(default_factory=lambda: dict(DEFAULT_GENDER))
    ethnicity: dict[str, float] | None = Field(default_factory=lambda: dict(DEFAULT_ETHNICITY))
    education: dict[str, float] | None = Field(default_factory=lambda: dict(DEFAULT_EDUCATION))
    employment: dict[str, float] | None = Field(default_factory=lambda: dict(DEFAULT_EMPLOYMENT))
    employment_ages: dict[str, tuple[int, int]] = Field(
        default_factory=lambda: dict(DEFAULT_EMPLOYMENT_AGES)
    )
    political_affiliation: dict[str, float] | None = Field(
        default_factory=lambda: dict(DEFAULT_POLITICAL_AFFILIATION)
    )
    location: str | None = None
    big_five_mean: dict[str, float] = Field(default_factory=dict)
    big_five_sd: dict[str, float] = Field(default_factory=dict)
    big_five_correlation: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_BIG_FIVE_CORRELATION)
    )

    # --- validation ------------------------------------------------------------------------

    @field_validator("age_brackets")
    @classmethod
    def _brackets(
        cls, value: tuple[tuple[int, int, float], ...]
    ) -> tuple[tuple[int, int, float], ...]:
        if not value:
            raise ValueError("at least one age bracket is needed")
        ordered = sorted(value)
        for lo, hi, share in ordered:
            if not 0 <= lo <= hi <= 120:
                raise ValueError(f"bracket ({lo}, {hi}) must have 0 <= first <= last <= 120")
            if share < 0:
                raise ValueError(f"bracket ({lo}, {hi}) has a negative share {share}")
        for (_, hi, _), (lo, _, _) in pairwise(ordered):
            if lo <= hi:
                raise ValueError(f"age brackets overlap at age {lo}")
        _check_sum(sum(s for _, _, s in ordered))
        return tuple(ordered)

    @field_validator("age_range")
    @classmethod
    def _age_range(
        cls, value: tuple[int, int] | None, info: ValidationInfo
    ) -> tuple[int, int] | None:
        brackets = info.data.get("age_brackets")
        if brackets is None:  # the brackets failed validation themselves
            return value
        first, last = brackets[0][0], brackets[-1][1]
        if value is None:
            return (first, last)
        lo, hi = value
        if lo > hi:
            raise ValueError(f"age_range ({lo}, {hi}) is reversed")
        if lo < first or hi > last:
            raise ValueError(
                f"age_range ({lo}, {hi}) reaches beyond the age brackets ({first}-{last}); "
                "add a bracket to cover it"
            )
        if _age_weights(brackets, value)[1].sum() <= 0:
            raise ValueError(f"no age in ({lo}, {hi}) has a positive share in age_brackets")
        return value

    @field_validator("gender", "ethnicity", "education", "employment", "political_affiliation")
    @classmethod
    def _probabilities(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("give at least one category, or None to leave the field unset")
        for key, p in value.items():
            if not key.strip():
                raise ValueError("category names must not be empty")
            if not 0 <= p <= 1:
                raise ValueError(f"probability of {key!r} is {p}; it must be in [0, 1]")
        _check_sum(sum(value.values()))
        return value

    @field_validator("employment_ages")
    @classmethod
    def _employment_ages(
        cls, value: dict[str, tuple[int, int]], info: ValidationInfo
    ) -> dict[str, tuple[int, int]]:
        for status, (lo, hi) in value.items():
            if lo > hi:
                raise ValueError(f"age range ({lo}, {hi}) of {status!r} is reversed")
        employment = info.data.get("employment")
        brackets = info.data.get("age_brackets")
        if not employment or brackets is None:
            return value
        unknown = [s for s in value if s not in employment]
        if unknown:
            raise ValueError(
                f"unknown employment status(es) {unknown}; employment has {list(employment)}"
            )
        _employment_by_age(brackets, employment, value)  # raises if the shares cannot be met
        return value

    @field_validator("big_five_mean", "big_five_sd")
    @classmethod
    def _per_domain(cls, value: dict[str, float], info: ValidationInfo) -> dict[str, float]:
        is_mean = info.field_name == "big_five_mean"
        out = {_domain(k): v for k, v in value.items()}
        for letter, v in out.items():
            if is_mean and not 1 <= v <= 5:
                raise ValueError(f"mean of {BIG_FIVE[letter]} is {v}; it must be within 1-5")
            if not is_mean and v < 0:
                raise ValueError(f"sd of {BIG_FIVE[letter]} is {v}; it must not be negative")
        default = DEFAULT_BIG_FIVE_MEAN if is_mean else DEFAULT_BIG_FIVE_SD
        return {d: float(out.get(d, default)) for d in _DOMAINS}

    @field_validator("big_five_correlation")
    @classmethod
    def _correlation(cls, value: dict[str, float]) -> dict[str, float]:
        out: dict[str, float] = {}
        for key, r in value.items():
            parts = key.replace(" ", "").split("-")
            if len(parts) != 2:
                raise ValueError(f"pair {key!r} must look like 'E-N' or 'extraversion-neuroticism'")
            a, b = sorted((_domain(parts[0]), _domain(parts[1])), key=_DOMAINS.index)
            if a == b:
                raise ValueError(f"pair {key!r} names one domain twice")
            if f"{a}-{b}" in out:
                raise ValueError(f"pair {a}-{b} is given twice")
            if not -1 < r < 1:
                raise ValueError(f"correlation {key!r} = {r}; it must be between -1 and 1")
            out[f"{a}-{b}"] = float(r)
        if np.linalg.eigvalsh(_correlation_matrix(out)).min() <= 1e-9:
            raise ValueError("these correlations are impossible together (not positive definite)")
        return out

    # --- sampling --------------------------------------------------------------------------

    def sample(
        self,
        n: int,
        seed: int,
        *,
        role: str = "participant",
        name_prefix: str | None = "Participant",
    ) -> list[Persona]:
        """Draw ``n`` personas.

        Args:
            n: How many.
            seed: Experiment seed; persona ``i`` uses ``derive_seed(seed, "population", i)``.
            role: The role of every persona.
            name_prefix: Names are ``"<prefix> 001"``, ``"<prefix> 002"``, ... (at
                least three digits). ``None`` draws a first name fitting the
                persona's gender and a surname initial, e.g. ``"Maria K."``,
                unique within the sample.

        Returns:
            Personas with demographics, Big Five levels (two decimals) and a
            one-sentence background.

        Raises:
            ConfigError: ``n`` is negative or ``name_prefix`` is empty or too long.
        """
        if n < 0:
            raise ConfigError(f"n must not be negative, got {n}")
        width = max(3, len(str(n)))
        if name_prefix is not None and not 1 <= len(name_prefix.strip()) <= 80 - width - 1:
            raise ConfigError(f"name_prefix must have 1 to {79 - width} characters")
        assert self.age_range is not None  # filled in by the validator
        years, age_weights = _age_weights(self.age_brackets, self.age_range)
        first_age = self.age_brackets[0][0]
        by_age = (
            None
            if self.employment is None
            else _employment_by_age(self.age_brackets, self.employment, self.employment_ages)
        )
        age_cdf = np.cumsum(age_weights)
        chol = np.linalg.cholesky(_correlation_matrix(self.big_five_correlation))
        mean = np.array([self.big_five_mean[d] for d in _DOMAINS])
        sd = np.array([self.big_five_sd[d] for d in _DOMAINS])
        taken: set[str] = set()
        people = []
        for i in range(n):
            rng = np.random.default_rng(derive_seed(seed, "population", i))
            # Fixed positions in the stream: the same attribute always uses the same draw.
            u = rng.random(7)
            z = rng.standard_normal(5)
            age = int(years[_index(age_cdf, u[0])])
            employment = None
            if self.employment is not None and by_age is not None:
                row = np.cumsum(by_age[age - first_age])
                employment = list(self.employment)[_index(row, u[4])]
            demographics = Demographics(
                age=age,
                gender=_pick(self.gender, u[1]),
                ethnicity=_pick(self.ethnicity, u[2]),
                education=_pick(self.education, u[3]),
                employment=employment,
                political_affiliation=_pick(self.political_affiliation, u[5]),
                location=self.location,
            )
            levels = np.clip(mean + sd * (chol @ z), 1.0, 5.0)
            if name_prefix is None:
                name = _first_name(demographics.gender, u[6], taken)
            else:
                name = f"{name_prefix.strip()} {i + 1:0{width}d}"
            taken.add(name)
            people.append(
                Persona(
                    name=name,
                    role=role,
                    demographics=demographics,
                    big_five={d: round(float(x), 2) for d, x in zip(_DOMAINS, levels, strict=True)},
                    background=_background(demographics),
                )
            )
        return people


def sample_personas(
    n: int,
    seed: int,
    *,
    role: str = "participant",
    name_prefix: str | None = "Participant",
    **overrides: Any,
) -> list[Persona]:
    """Draw ``n`` personas from the default population with some settings changed.

    Args:
        n: How many.
        seed: Experiment seed.
        role: The role of every persona.
        name_prefix: As in :meth:`Population.sample`.
        **overrides: :class:`Population` settings, e.g. ``age_range=(18, 30)``.

    Raises:
        pydantic.ValidationError: An override is unknown or invalid.

    Example:
        >>> sample_personas(2, seed=1, big_five_mean={"N": 4})[0].role
        'participant'
    """
    return Population(**overrides).sample(n, seed, role=role, name_prefix=name_prefix)


def demographic_profile(persona: Persona) -> dict[str, str | int | None]:
    """What a debate opponent sees of a participant in the personalised condition.

    The six attributes of Salvi et al. (2025), ``None`` where the persona does
    not say.

    Returns:
        ``gender``, ``age``, ``ethnicity``, ``education``, ``employment_status``
        and ``political_affiliation``, in that order.
    """
    d = persona.demographics
    return {
        "gender": d.gender,
        "age": d.age,
        "ethnicity": d.ethnicity,
        "education": d.education,
        "employment_status": d.employment,
        "political_affiliation": d.political_affiliation,
    }


# --- helpers --------------------------------------------------------------------------------


def _check_sum(total: float) -> None:
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"probabilities must sum to 1, got {total:g}")


def _domain(key: str) -> str:
    k = str(key).strip()
    if k.upper() in BIG_FIVE:
        return k.upper()
    for letter, name in BIG_FIVE.items():
        if k.lower() == name:
            return letter
    raise ValueError(
        f"unknown Big Five domain {key!r}; use O, C, E, A, N or {', '.join(BIG_FIVE.values())}"
    )


def _correlation_matrix(pairs: dict[str, float]) -> np.ndarray:
    m = np.eye(len(_DOMAINS))
    for key, r in pairs.items():
        a, b = (_DOMAINS.index(x) for x in key.split("-"))
        m[a, b] = m[b, a] = r
    return m


def _age_weights(
    brackets: tuple[tuple[int, int, float], ...], age_range: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Each year in ``age_range`` and its (unnormalised) probability."""
    years = np.arange(age_range[0], age_range[1] + 1)
    weights = np.zeros(len(years))
    for lo, hi, share in brackets:
        inside = (years >= lo) & (years <= hi)
        weights[inside] = share / (hi - lo + 1)
    return years, weights


def _employment_by_age(
    brackets: tuple[tuple[int, int, float], ...],
    employment: dict[str, float],
    ages: dict[str, tuple[int, int]],
) -> np.ndarray:
    """P(status | age), one row per year from the first bracket's first year to the last's.

    Fitted by iterative proportional fitting: the joint table of age and status
    has zeros where a status is not allowed, and its margins are the age
    distribution and the ``employment`` shares.

    Raises:
        ValueError: No table has these margins (a status needs more of the
            population than its ages hold).
    """
    years, age_w = _age_weights(brackets, (brackets[0][0], brackets[-1][1]))
    age_w = age_w / age_w.sum()
    shares = np.array(list(employment.values()))
    limits = [ages.get(s, (0, 120)) for s in employment]
    allowed = np.array([[lo <= y <= hi for lo, hi in limits] for y in years], dtype=float)
    joint = allowed * np.outer(age_w, shares)
    for _ in range(500):
        rows = joint.sum(axis=1, keepdims=True)
        joint = np.divide(joint * age_w[:, None], rows, out=np.zeros_like(joint), where=rows > 0)
        cols = joint.sum(axis=0)
        joint = np.divide(joint * shares, cols, out=np.zeros_like(joint), where=cols > 0)
        if np.abs(joint.sum(axis=1) - age_w).max() < 1e-9:
            break
    row_gap = np.abs(joint.sum(axis=1) - age_w).max()
    col_gap = np.abs(joint.sum(axis=0) - shares).max()
    if row_gap > 1e-6 or col_gap > 1e-6:
        reachable = {
            s: round(float(age_w[allowed[:, j] > 0].sum()), 3) for j, s in enumerate(employment)
        }
        raise ValueError(
            "the employment shares cannot be met with these age limits; share of the "
            f"population at the allowed ages per status: {reachable}"
        )
    rows = joint.sum(axis=1, keepdims=True)
    return np.divide(joint, rows, out=np.zeros_like(joint), where=rows > 0)


def _index(cdf: np.ndarray, u: float) -> int:
    """Inverse-CDF draw: the category whose cumulative weight first exceeds ``u``."""
    i = int(np.searchsorted(cdf, u * cdf[-1], side="right"))
    return min(i, len(cdf) - 1)


def _pick(options: dict[str, float] | None, u: float) -> str | None:
    if options is None:
        return None
    return list(options)[_index(np.cumsum(list(options.values())), u)]


@cache
def _first_names() -> dict[str, tuple[str, ...]]:
    text = (files("personae.world") / "data" / "first_names.csv").read_text("utf-8")
    out: dict[str, list[str]] = {}
    for row in csv.DictReader(io.StringIO(text)):
        out.setdefault(row["gender"], []).append(row["name"])
    return {g: tuple(names) for g, names in out.items()}


def _first_name(gender: str | None, u: float, taken: set[str]) -> str:
    """A unique ``"First I."`` name; female and male personas get fitting or neutral names."""
    names = _first_names()
    if gender in ("female", "male"):
        firsts = names[gender] + names["neutral"]
    else:
        firsts = tuple(n for group in names.values() for n in group)
    pool = [f"{f} {letter}." for f in firsts for letter in _INITIALS]
    start = int(u * len(pool))
    for step in range(len(pool)):
        candidate = pool[(start + step) % len(pool)]
        if candidate not in taken:
            return candidate
    k = 2
    while f"{pool[start]} {k}" in taken:
        k += 1
    return f"{pool[start]} {k}"


_GENDER_NOUN = {"female": "woman", "male": "man"}
_ETHNICITY_ADJECTIVE = {"Hispanic or Latino": "Hispanic", "Mixed": "mixed-ethnicity", "Other": ""}
_EDUCATION_PHRASE = {
    "less than high school": "did not finish high school",
    "high school diploma": "has a high school diploma",
    "some college": "has some college education",
    "vocational or associate degree": "has a vocational or associate degree",
    "bachelor's degree": "has a bachelor's degree",
    "master's degree": "has a master's degree",
    "doctorate or professional degree": "has a doctorate or professional degree",
}
_EMPLOYMENT_PHRASE = {
    "full-time": "works full-time",
    "part-time": "works part-time",
    "self-employed": "is self-employed",
    "unemployed": "is currently unemployed",
    "student": "is a student",
    "retired": "is retired",
    "homemaker": "looks after the home",
}
_POLITICS_PHRASE = {
    "Democrat": "identifies politically as a Democrat",
    "Republican": "identifies politically as a Republican",
    "Independent": "identifies politically as an Independent",
    "Other": "identifies with neither major party",
}


def _background(d: Demographics) -> str:
    """One sentence, e.g. "A 34-year-old White woman who works full-time, has a ..."."""
    head = ""
    if d.age is not None:
        head += f" {d.age}-year-old"
    if d.ethnicity:
        adjective = _ETHNICITY_ADJECTIVE.get(d.ethnicity, d.ethnicity)
        if adjective:
            head += f" {adjective}"
    if d.gender in _GENDER_NOUN:
        head += f" {_GENDER_NOUN[d.gender]}"
    elif d.gender:
        head += f" {d.gender} person"
    else:
        head += " person"
    if d.location:
        head += f" from {d.location}"
    clauses = []
    if d.employment:
        clauses.append(_EMPLOYMENT_PHRASE.get(d.employment, f"is {d.employment}"))
    if d.education:
        clauses.append(
            _EDUCATION_PHRASE.get(d.education, f"gives {d.education} as highest education")
        )
    if d.political_affiliation:
        clauses.append(
            _POLITICS_PHRASE.get(
                d.political_affiliation, f"identifies politically as {d.political_affiliation}"
            )
        )
    spoken = head.split()[0]
    # "an" before a vowel sound: "an 18-year-old", "an 80-year-old", "an Asian woman".
    an = spoken[0] in "8AEIOUaeiou" or spoken.split("-")[0] in ("11", "18")
    head = ("An" if an else "A") + head
    if not clauses:
        return head + "."
    if len(clauses) == 1:
        return f"{head} who {clauses[0]}."
    return f"{head} who {', '.join(clauses[:-1])} and {clauses[-1]}."
