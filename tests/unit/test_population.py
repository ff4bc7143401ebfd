from collections import Counter

import numpy as np
import pytest
from pydantic import ValidationError

from personae.agents.persona import Persona
from personae.environments import (
    STRENGTHS,
    Population,
    Proposition,
    by_strength,
    demographic_profile,
    load_propositions,
    proposition,
    sample_personas,
    sample_propositions,
)
from personae.environments.population import (
    DEFAULT_BIG_FIVE_CORRELATION,
    DEFAULT_EMPLOYMENT,
    DEFAULT_GENDER,
)
from personae.errors import ConfigError

# --- propositions ----------------------------------------------------------------------------


def test_bundled_propositions_are_complete_and_well_formed():
    props = load_propositions()
    assert len(props) >= 30
    counts = Counter(p.strength for p in props)
    assert set(counts) == set(STRENGTHS)
    assert all(c >= 10 for c in counts.values())
    assert len({p.id for p in props}) == len(props)
    assert len({p.text for p in props}) == len(props)
    for p in props:
        assert p.text.endswith("?"), p.id
        assert len(p.description) > 20, p.id
    assert load_propositions() is props  # cached


def test_lookup_by_id_and_strength():
    assert proposition("t02").text == "Should daylight saving time be abolished?"
    assert {p.strength for p in by_strength("high")} == {"high"}
    with pytest.raises(ConfigError, match=r"unknown proposition id 'x9'.*t01.*t36"):
        proposition("x9")
    with pytest.raises(ConfigError, match=r"unknown strength 'medium'.*low, moderate, high"):
        by_strength("medium")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id,strength,proposition\nt1,low,Why?\n", r"missing column\(s\) description"),
        ("id,strength,proposition,description\nt1,medium,Why?,d\n", r"line 2: strength 'medium'"),
        ("id,strength,proposition,description\nt1,low,Why?,\n", r"line 2: description"),
        (
            "id,strength,proposition,description\nt1,low,A?,d\nt1,high,B?,d\n",
            r"line 3: id 't1' repeats line 2",
        ),
        ("id,strength,proposition,description\n", "no propositions"),
    ],
)
def test_loader_errors_name_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "props.csv"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_propositions(path)
    assert "props.csv" in str(info.value)


def test_loader_reads_a_user_file_and_reports_a_missing_one(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text('id,strength,proposition,description\nm1,high,"Is it, really?",Context.\n')
    assert load_propositions(path) == (
        Proposition(id="m1", strength="high", text="Is it, really?", description="Context."),
    )
    with pytest.raises(ConfigError, match="cannot read propositions file"):
        load_propositions(tmp_path / "absent.csv")


def test_sampling_propositions_is_reproducible_and_balanced():
    first = sample_propositions(9, seed=5)
    assert first == sample_propositions(9, seed=5)
    assert first != sample_propositions(9, seed=6)
    assert len({p.id for p in first}) == 9
    assert Counter(p.strength for p in first) == {"low": 3, "moderate": 3, "high": 3}
    for n in (1, 7, 20, 36):
        counts = Counter(p.strength for p in sample_propositions(n, seed=n))
        assert max(counts.values()) - min(counts.get(s, 0) for s in STRENGTHS) <= 1
    two = sample_propositions(4, seed=1, strengths=["low", "high"])
    assert Counter(p.strength for p in two) == {"low": 2, "high": 2}
    assert {p.strength for p in sample_propositions(5, seed=1, strengths="moderate")} == {
        "moderate"
    }


def test_sampling_fills_up_from_other_groups_and_rejects_bad_requests():
    pool = [Proposition(id="a", strength="low", text="A?", description="d")] + [
        Proposition(id=f"h{i}", strength="high", text=f"H{i}?", description="d") for i in range(9)
    ]
    counts = Counter(p.strength for p in sample_propositions(6, seed=0, pool=pool))
    assert counts == {"low": 1, "high": 5}
    with pytest.raises(ConfigError, match="cannot draw 37 propositions: 36 available"):
        sample_propositions(37, seed=0)
    with pytest.raises(ConfigError, match="unknown strength 'strong'"):
        sample_propositions(2, seed=0, strengths=["strong"])


# --- population ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def crowd() -> list[Persona]:
    return Population().sample(2000, seed=11)


def _levels(people: list[Persona]) -> np.ndarray:
    return np.array([[p.big_five[d] for d in "OCEAN"] for p in people])


def test_same_seed_same_personas_other_seed_other_personas():
    a = Population().sample(20, seed=3)
    assert [p.model_dump() for p in a] == [p.model_dump() for p in Population().sample(20, seed=3)]
    b = Population().sample(20, seed=4)
    assert [p.big_five for p in a] != [p.big_five for p in b]
    # Growing the sample keeps the members already drawn.
    assert Population().sample(40, seed=3)[:20] == a


def test_personas_are_complete_and_uniquely_named(crowd):
    assert len({p.name for p in crowd}) == len(crowd)
    assert crowd[0].name == "Participant 0001" and crowd[0].role == "participant"
    for p in crowd[:50]:
        d = p.demographics
        assert None not in (d.age, d.gender, d.ethnicity, d.education, d.employment)
        assert d.political_affiliation is not None
        assert p.background.startswith(("A ", "An ")) and p.background.endswith(".")
        assert set(p.big_five) == set("OCEAN")


def test_big_five_marginals_on_a_large_sample(crowd):
    levels = _levels(crowd)
    assert levels.min() >= 1 and levels.max() <= 5
    assert np.all(np.abs(levels.mean(axis=0) - 3) < 0.1)
    assert np.all(np.abs(levels.std(axis=0) - 0.7) < 0.1)


def test_the_configured_correlation_is_recovered(crowd):
    observed = np.corrcoef(_levels(crowd).T)
    for pair, r in DEFAULT_BIG_FIVE_CORRELATION.items():
        a, b = ("OCEAN".index(x) for x in pair.split("-"))
        assert abs(observed[a, b] - r) < 0.07, pair
    independent = _levels(Population(big_five_correlation={}).sample(2000, seed=11))
    off_diagonal = np.corrcoef(independent.T)[np.triu_indices(5, 1)]
    assert np.abs(off_diagonal).max() < 0.07


def test_demographic_marginals_on_a_large_sample(crowd):
    ages = np.array([p.demographics.age for p in crowd])
    assert ages.min() >= 18 and ages.max() <= 80
    assert 34 <= np.median(ages) <= 38 < ages.mean() < 41  # skewed young: median 36, mean 39
    shares = Counter(p.demographics.gender for p in crowd)
    for gender, share in DEFAULT_GENDER.items():
        assert abs(shares[gender] / len(crowd) - share) < 0.03, gender
    employment = Counter(p.demographics.employment for p in crowd)
    for status, share in DEFAULT_EMPLOYMENT.items():
        assert abs(employment[status] / len(crowd) - share) < 0.03, status
    assert all(p.demographics.age >= 55 for p in crowd if p.demographics.employment == "retired")
    assert all(p.demographics.age <= 40 for p in crowd if p.demographics.employment == "student")


def test_overrides_change_only_what_they_name():
    base = Population().sample(300, seed=2)
    anxious = Population(big_five_mean={"neuroticism": 3.8}).sample(300, seed=2)
    shift = _levels(anxious).mean(axis=0) - _levels(base).mean(axis=0)
    assert 0.7 < shift[4] < 0.85  # a little under 0.8 where levels clip at 5
    assert np.all(shift[:4] == 0)
    assert [p.demographics for p in anxious] == [p.demographics for p in base]
    young = sample_personas(300, seed=2, age_range=(30, 40))
    assert {p.demographics.age for p in young} <= set(range(30, 41))
    assert len({p.demographics.age for p in young}) == 11


def test_unset_fields_location_role_and_first_names():
    people = Population(ethnicity=None, political_affiliation=None, location="Canada").sample(
        300, seed=1, role="debater", name_prefix=None
    )
    assert all(p.demographics.ethnicity is None for p in people)
    assert all(p.demographics.political_affiliation is None for p in people)
    assert all(" from Canada who " in p.background for p in people)
    assert {p.role for p in people} == {"debater"}
    assert len({p.name for p in people}) == 300
    assert all(p.name[-1] == "." for p in people)
    elderly = Population(age_range=(80, 80)).sample(1, seed=0)[0]
    assert elderly.background.startswith("An 80-year-old ")


def test_demographic_profile_is_what_the_opponent_sees():
    person = sample_personas(1, seed=9)[0]
    profile = demographic_profile(person)
    assert list(profile) == [
        "gender",
        "age",
        "ethnicity",
        "education",
        "employment_status",
        "political_affiliation",
    ]
    assert profile["age"] == person.demographics.age
    assert profile["employment_status"] == person.demographics.employment
    assert demographic_profile(Persona(name="X"))["gender"] is None


@pytest.mark.parametrize(
    ("settings", "field", "message"),
    [
        ({"big_five_sd": {"N": -0.1}}, "big_five_sd", "must not be negative"),
        ({"big_five_mean": {"Q": 3}}, "big_five_mean", "unknown Big Five domain"),
        ({"big_five_mean": {"E": 6}}, "big_five_mean", "within 1-5"),
        ({"gender": {"female": 0.5, "male": 0.4}}, "gender", "sum to 1, got 0.9"),
        ({"education": {"a": 1.2, "b": -0.2}}, "education", r"must be in \[0, 1\]"),
        ({"age_range": (16, 40)}, "age_range", "beyond the age brackets"),
        ({"age_range": (40, 30)}, "age_range", "reversed"),
        ({"age_brackets": ((18, 40, 0.5), (30, 60, 0.5))}, "age_brackets", "overlap"),
        ({"big_five_correlation": {"E-N": 1.0}}, "big_five_correlation", "between -1 and 1"),
        (
            {"big_five_correlation": {"O-C": 0.9, "O-E": 0.9, "C-E": -0.9}},
            "big_five_correlation",
            "positive definite",
        ),
        ({"employment_ages": {"pilot": (20, 60)}}, "employment_ages", "unknown employment"),
        ({"employment_ages": {"retired": (75, 120)}}, "employment_ages", "cannot be met"),
        ({"planet": "Mars"}, "planet", "Extra inputs are not permitted"),
    ],
)
def test_invalid_settings_name_the_field(settings, field, message):
    with pytest.raises(ValidationError, match=message) as info:
        Population(**settings)
    assert field in {str(e["loc"][0]) for e in info.value.errors()}


def test_bad_sample_arguments():
    with pytest.raises(ConfigError, match="must not be negative"):
        Population().sample(-1, seed=0)
    with pytest.raises(ConfigError, match="name_prefix"):
        Population().sample(2, seed=0, name_prefix="  ")
    with pytest.raises(ValidationError, match="gender"):
        sample_personas(2, seed=0, gender={"female": 2.0})
