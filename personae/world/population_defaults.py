"""The default distributions of :class:`~personae.world.population.Population`.

They loosely match an adult US online-survey panel like the one in Salvi et
al. (2025); every value and its rationale is in ``docs/population.md``.
Shares are fractions that sum to 1 per attribute.
"""

from __future__ import annotations

#: Age brackets (first year, last year, share); ages are uniform within a bracket.
DEFAULT_AGE_BRACKETS: tuple[tuple[int, int, float], ...] = (
    (18, 24, 0.17),
    (25, 34, 0.30),
    (35, 44, 0.21),
    (45, 54, 0.14),
    (55, 64, 0.11),
    (65, 80, 0.07),
)
DEFAULT_GENDER = {"female": 0.50, "male": 0.48, "non-binary": 0.02}
DEFAULT_ETHNICITY = {
    "White": 0.62,
    "Black": 0.12,
    "Hispanic or Latino": 0.12,
    "Asian": 0.07,
    "Mixed": 0.05,
    "Other": 0.02,
}
DEFAULT_EDUCATION = {
    "less than high school": 0.02,
    "high school diploma": 0.18,
    "some college": 0.22,
    "vocational or associate degree": 0.10,
    "bachelor's degree": 0.33,
    "master's degree": 0.12,
    "doctorate or professional degree": 0.03,
}
DEFAULT_EMPLOYMENT = {
    "full-time": 0.45,
    "part-time": 0.15,
    "self-employed": 0.10,
    "unemployed": 0.08,
    "student": 0.10,
    "retired": 0.07,
    "homemaker": 0.05,
}
#: Employment statuses drawn only within an age range (inclusive).
DEFAULT_EMPLOYMENT_AGES = {"retired": (55, 120), "student": (18, 40)}
#: US party identification, as in the study's US sample.
DEFAULT_POLITICAL_AFFILIATION = {
    "Democrat": 0.38,
    "Republican": 0.26,
    "Independent": 0.30,
    "Other": 0.06,
}
DEFAULT_BIG_FIVE_MEAN = 3.0
DEFAULT_BIG_FIVE_SD = 0.7
#: Correlations between Big Five domains, rounded and on the small side of the
#: meta-analytic estimates (van der Linden et al. 2010); pairs not named are 0.
DEFAULT_BIG_FIVE_CORRELATION = {
    "O-C": 0.10,
    "O-E": 0.25,
    "O-A": 0.10,
    "O-N": -0.10,
    "C-E": 0.15,
    "C-A": 0.25,
    "C-N": -0.30,
    "E-A": 0.15,
    "E-N": -0.25,
    "A-N": -0.25,
}


__all__ = [
    "DEFAULT_AGE_BRACKETS",
    "DEFAULT_BIG_FIVE_CORRELATION",
    "DEFAULT_BIG_FIVE_MEAN",
    "DEFAULT_BIG_FIVE_SD",
    "DEFAULT_EDUCATION",
    "DEFAULT_EMPLOYMENT",
    "DEFAULT_EMPLOYMENT_AGES",
    "DEFAULT_ETHNICITY",
    "DEFAULT_GENDER",
    "DEFAULT_POLITICAL_AFFILIATION",
]
