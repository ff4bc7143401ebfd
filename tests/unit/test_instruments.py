"""Instruments as data: the bundled item banks, subsets, user files and broken files."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import polars as pl
import pytest

from personae.errors import ConfigError
from personae.measures import (
    Instrument,
    Score,
    list_instruments,
    load_instrument,
    register_instrument,
    score,
    score_frame,
    unregister_instrument,
)

BUNDLED = ("gad-7", "ipip-neo-120", "phq-9", "pss-10")
# Domain of item i is DOMAIN_CYCLE[(i - 1) % 5] (data README).
DOMAIN_CYCLE = ("neuroticism", "extraversion", "openness", "agreeableness", "conscientiousness")

USER_TOML = """
name = "grit-4"
title = "A four-item toy grit scale"
citation = "Nobody (2024)."
licence = "CC0"
stem = "How much is this like you?"
scoring = "mean"
options = [
  { value = 1, label = "Not like me at all" },
  { value = 2, label = "Not much like me" },
  { value = 3, label = "Somewhat like me" },
  { value = 4, label = "Mostly like me" },
  { value = 5, label = "Very much like me" },
]

[[items]]
id = 1
text = "Finish whatever you begin"
domain = "grit"
facet = "perseverance"

[[items]]
id = 2
text = "Get distracted by new ideas"
keyed = "-"
domain = "grit"
facet = "consistency"

[[items]]
id = 3
text = "Work hard through setbacks"
domain = "grit"
facet = "perseverance"

[[items]]
id = 4
text = "Change goals often"
keyed = "-"
domain = "grit"
facet = "consistency"
"""


@pytest.fixture
def user_file(tmp_path: Path) -> Path:
    path = tmp_path / "grit.toml"
    path.write_text(USER_TOML, encoding="utf-8")
    return path


@pytest.fixture
def registered():
    names: list[str] = []
    yield names
    for name in names:
        unregister_instrument(name)


# --- bundled instruments -------------------------------------------------------------------


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_instrument_loads_with_provenance(name):
    instrument = load_instrument(name)
    assert instrument.name == name
    assert instrument.title and instrument.citation and instrument.licence and instrument.stem
    values = [o.value for o in instrument.options]
    assert values == list(range(values[0], values[0] + len(values)))
    assert [i.id for i in instrument.items] == [str(k) for k in range(1, len(instrument.items) + 1)]
    assert load_instrument(name) is instrument  # cached
    assert hash(instrument) == hash(instrument.model_copy())


def test_list_instruments_names_the_bundled_ones():
    assert set(BUNDLED) <= set(list_instruments())
    assert list_instruments() == sorted(list_instruments())


def test_ipip_neo_120_layout_follows_the_published_key():
    neo = load_instrument("ipip-neo-120")
    assert len(neo.items) == 120
    assert (neo.scoring, neo.min_value, neo.max_value) == ("mean", 1, 5)
    assert sum(i.keyed == "-" for i in neo.items) == 55
    facets_in_order = [neo.item(str(k)).facet for k in range(1, 31)]
    assert len(set(facets_in_order)) == 30
    for item in neo.items:
        i = int(item.id)
        assert item.domain == DOMAIN_CYCLE[(i - 1) % 5], item
        assert item.facet == facets_in_order[(i - 1) % 30], item
    layout = neo.scales()
    domains = [s for s in layout if s.level == "domain"]
    facets = [s for s in layout if s.level == "facet"]
    assert [s.scale for s in domains] == list(DOMAIN_CYCLE)
    assert all(len(s.items) == 24 for s in domains)
    assert len(facets) == 30 and all(len(s.items) == 4 for s in facets)
    anxiety = next(s for s in facets if s.scale == "Anxiety")
    assert anxiety.items == ("1", "31", "61", "91")
    # Every facet lies inside one domain.
    for facet in facets:
        assert len({neo.item(i).domain for i in facet.items}) == 1


def test_ipip_texts_carry_the_fixed_typos():
    neo = load_instrument("ipip-neo-120")
    assert neo.item(50).text == "Do more than what's expected of you"
    assert neo.item("86").text == "Feel that you're unable to deal with things"
    assert neo.item(9).keyed == "-" and neo.item(1).keyed == "+"


@pytest.mark.parametrize(
    ("name", "n_items", "low", "high", "reversed_items", "top"),
    [
        ("phq-9", 9, 0, 3, set(), 27),
        ("gad-7", 7, 0, 3, set(), 21),
        ("pss-10", 10, 0, 4, {"4", "5", "7", "8"}, 40),
    ],
)
def test_clinical_scales_are_summed_totals(name, n_items, low, high, reversed_items, top):
    instrument = load_instrument(name)
    assert len(instrument.items) == n_items
    assert (instrument.min_value, instrument.max_value, instrument.scoring) == (low, high, "sum")
    assert {i.id for i in instrument.items if i.keyed == "-"} == reversed_items
    ((level, scale, items),) = instrument.scales()
    assert (level, scale, len(items)) == ("total", name, n_items)
    bands = instrument.bands[name]
    assert bands[0][0] == 0 and bands[-1][1] == top


def test_reverse_is_min_plus_max_minus_value():
    assert load_instrument("ipip-neo-120").reverse(2) == 4
    assert load_instrument("pss-10").reverse(1) == 3
    assert load_instrument("phq-9").reverse(0) == 3


def test_stems_match_the_published_wording():
    assert load_instrument("phq-9").stem.startswith("Over the last 2 weeks, how often")
    assert load_instrument("pss-10").stem.startswith("In the last month, how often have you")
    assert "accurately" in load_instrument("ipip-neo-120").stem


def test_pss_licence_says_non_profit_research_only():
    assert "non-profit research" in load_instrument("pss-10").licence


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ConfigError) as info:
        load_instrument("bdi-ii")
    assert "bdi-ii" in str(info.value)
    for name in BUNDLED:
        assert name in str(info.value)


def test_unknown_item_is_a_config_error():
    with pytest.raises(ConfigError, match="no item '10'"):
        load_instrument("phq-9").item("10")


# --- subsets -------------------------------------------------------------------------------


def test_subset_by_domain_letter_or_name():
    neo = load_instrument("ipip-neo-120")
    by_letter = neo.subset(domains=["N"])
    assert len(by_letter.items) == 24
    assert {i.domain for i in by_letter.items} == {"neuroticism"}
    assert by_letter.items == neo.subset(domains=["Neuroticism"]).items
    assert [s.level for s in by_letter.scales()].count("facet") == 6
    assert len(neo.subset(domains=["O", "conscientiousness"]).items) == 48


def test_subset_by_facets_items_and_their_union_keeps_order():
    neo = load_instrument("ipip-neo-120")
    two = neo.subset(facets=["anxiety", "Trust"])
    assert [i.id for i in two.items] == ["1", "4", "31", "34", "61", "64", "91", "94"]
    union = neo.subset(items=["120", 2], facets=["Anxiety"])
    assert [i.id for i in union.items] == ["1", "2", "31", "61", "91", "120"]
    assert union.name == neo.name and union.options == neo.options


def test_subset_keeps_bands_only_for_whole_scales():
    phq = load_instrument("phq-9")
    assert phq.subset(items=[str(i) for i in range(1, 10)]).bands == phq.bands
    assert phq.subset(items=["1", "2"]).bands == {}


@pytest.mark.parametrize(
    ("kwargs", "fragment", "valid"),
    [
        ({"items": ["0", "121"]}, "no item(s) ['0', '121']", "120"),
        ({"domains": ["X"]}, "no domain(s) ['X']", "neuroticism"),
        ({"facets": ["Grit"]}, "no facet(s) ['Grit']", "Cautiousness"),
        ({}, "name items, domains or facets", ""),
    ],
)
def test_subset_names_what_is_unknown_and_lists_valid_choices(kwargs, fragment, valid):
    with pytest.raises(ConfigError) as info:
        load_instrument("ipip-neo-120").subset(**kwargs)
    assert fragment in str(info.value)
    assert valid in str(info.value)


def test_subset_by_domain_of_a_total_only_instrument_is_refused():
    with pytest.raises(ConfigError, match="phq-9 has no domains"):
        load_instrument("phq-9").subset(domains=["N"])


# --- user instruments ----------------------------------------------------------------------


def test_user_toml_with_inline_items_loads_and_scores(user_file):
    grit = load_instrument(user_file)
    assert load_instrument(str(user_file)) == grit
    assert [i.id for i in grit.items] == ["1", "2", "3", "4"]
    assert [(s.level, s.scale, s.items) for s in grit.scales()] == [
        ("domain", "grit", ("1", "2", "3", "4")),
        ("facet", "perseverance", ("1", "3")),
        ("facet", "consistency", ("2", "4")),
    ]
    scores = score(grit, {"1": 5, "2": 2, "3": 4, "4": 1})
    # Keyed: 5, 6-2=4, 4, 6-1=5.
    assert [(s.scale, s.value) for s in scores] == [
        ("grit", 4.5),
        ("perseverance", 4.5),
        ("consistency", 4.5),
    ]


def test_register_makes_a_user_instrument_loadable_by_name(user_file, registered):
    grit = register_instrument(user_file)
    registered.append(grit.name)
    assert load_instrument("grit-4") is grit
    assert "grit-4" in list_instruments()
    with pytest.raises(ConfigError, match="already known"):
        register_instrument(grit)
    with pytest.raises(ConfigError, match="already known"):
        register_instrument(load_instrument("phq-9"))


def test_registered_scorer_replaces_the_builtin_rules(user_file, registered):
    def maximum(instrument: Instrument, answers) -> list[Score]:
        values = [v for v in answers.values() if v is not None]
        return [Score("total", "max", max(values), len(values), 4 - len(values), None)]

    grit = register_instrument(user_file, scorer=maximum)
    registered.append(grit.name)
    assert score(grit, {"1": 2, "2": 3}) == [Score("total", "max", 3, 2, 2, None)]
    frame = pl.DataFrame(
        {"who": ["a", "a", "b"], "item": ["1", "2", "1"], "value": [2.0, 3.0, 5.0], "valid": 1}
    )
    out = score_frame(grit, frame, by=["who"])
    assert out.select("who", "scale", "value").rows() == [("a", "max", 3.0), ("b", "max", 5.0)]


# --- broken files --------------------------------------------------------------------------

HEAD = """
name = "broken"
scoring = "sum"
options = [{ value = 0, label = "No" }, { value = 1, label = "Yes" }]
"""


def _write(tmp_path: Path, toml: str, csv: str | None = None) -> Path:
    if csv is not None:
        (tmp_path / "items.csv").write_text(csv, encoding="utf-8")
    path = tmp_path / "broken.toml"
    path.write_text(toml, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("toml", "csv", "fragment"),
    [
        ('name = "x\n', None, "not valid TOML"),
        (HEAD + 'items_file = "items.csv"', "item,text\n1,Hi\n", "missing column(s) ['keyed']"),
        (HEAD + 'items_file = "items.csv"', "item,keyed,text,x\n1,+,Hi,0\n", "unknown column"),
        (HEAD + 'items_file = "items.csv"', "item,keyed,text\n1,+,Hi\n2,?,Ho\n", "line 3 (item 2)"),
        (HEAD + 'items_file = "items.csv"', "item,keyed,text\n1,+,Hi\n2,?,Ho\n", "keyed must be"),
        (HEAD + 'items_file = "items.csv"', "item,keyed,text\n1,+,\n", "no text"),
        (HEAD + 'items_file = "missing.csv"', None, "cannot be read"),
        (HEAD, None, "no items"),
        (HEAD + '[[items]]\nid = "1"\ntext = " "\n', None, "items.0.text"),
        (HEAD + '[[items]]\nid = "1"\ntext = "Hi"\nkeyed = "x"\n', None, "items.0.keyed"),
        (HEAD + '[[items]]\nid = "1"\ntext = "Hi"\ncolour = "red"\n', None, "items.0.colour"),
        (
            HEAD + '[[items]]\nid = "1"\ntext = "A"\n[[items]]\nid = 1\ntext = "B"\n',
            None,
            "duplicate",
        ),
        (HEAD + 'items_file = "items.csv"\n[[items]]\nid = 1\ntext = "A"\n', "", "not both"),
        (
            'name = "broken"\noptions = [{ value = 2, label = "A" }, { value = 1, label = "B" }]\n'
            '[[items]]\nid = 1\ntext = "A"\n',
            None,
            "strictly increasing",
        ),
        (
            HEAD + '[bands]\nother = [[0, 1, "all"]]\n[[items]]\nid = 1\ntext = "A"\n',
            None,
            "unknown scale 'other'",
        ),
        (
            HEAD + '[bands]\nbroken = [[0, 1, "a"], [1, 2, "b"]]\n[[items]]\nid = 1\ntext = "A"\n',
            None,
            "without overlap",
        ),
    ],
)
def test_broken_file_raises_config_error_naming_file_and_problem(tmp_path, toml, csv, fragment):
    path = _write(tmp_path, toml, csv)
    with pytest.raises(ConfigError) as info:
        load_instrument(path)
    message = str(info.value)
    assert fragment in message
    assert "broken.toml" in message or "items.csv" in message


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_instrument(tmp_path / "nothing.toml")


def test_bundled_csvs_match_their_header_contract():
    # Guards the copy of the shared item banks: header and row count.
    data = Path(__file__).parents[2] / "personae" / "measures" / "data"
    expected = {"ipip_neo_120.csv": 120, "phq9.csv": 9, "gad7.csv": 7, "pss10.csv": 10}
    for name, rows in expected.items():
        frame = pl.read_csv(data / name, schema_overrides={"item": pl.String})
        assert frame.height == rows
        assert {"item", "keyed", "text"} <= set(frame.columns)
        assert Counter(frame["keyed"]).keys() <= {"+", "-"}


def test_measures_all_is_complete_and_documented():
    import personae.measures as measures

    public = {n for n in dir(measures) if not n.startswith("_") and n[0].isupper()}
    public -= {"Scorer"}  # a type alias, listed but without a docstring of its own
    assert public <= set(measures.__all__)
    for name in measures.__all__:
        obj = getattr(measures, name)
        assert obj is not None
        if callable(obj) and name != "Scorer":
            assert obj.__doc__, name
