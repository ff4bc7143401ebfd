"""Scoring against hand-computed cases, and score_frame against score."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from personae.measures import Instrument, Score, band_of, load_instrument, score, score_frame
from personae.measures.scoring import max_missing

NEO = load_instrument("ipip-neo-120")
PHQ = load_instrument("phq-9")
GAD = load_instrument("gad-7")
PSS = load_instrument("pss-10")


def _by_scale(scores: list[Score]) -> dict[str, Score]:
    return {s.scale: s for s in scores}


def _answers_for_total(instrument, total: int) -> dict[str, float]:
    """Answers whose keyed sum is ``total``: fill items with the top keyed value in order."""
    answers = {}
    left = total
    for item in instrument.items:
        keyed = min(left, instrument.max_value)
        left -= keyed
        answers[item.id] = instrument.reverse(keyed) if item.keyed == "-" else keyed
    assert left == 0
    return answers


# --- reverse keying and means --------------------------------------------------------------


def test_ipip_reverse_keyed_item_answered_2_scores_4():
    assert NEO.item("9").keyed == "-"
    (domain, facet) = score(NEO.subset(items=["9"]), {"9": 2})
    assert (domain.scale, domain.value) == ("agreeableness", 4.0)
    assert (facet.scale, facet.value, facet.n_items) == ("Morality", 4.0, 1)


def test_pss_item_4_answered_1_scores_3():
    (total,) = score(PSS.subset(items=["4"]), {"4": 1})
    assert total.value == 3.0


def test_facet_mean_by_hand():
    # Anxiety = items 1, 31, 61, 91, all keyed "+"; Morality = 9, 39, 69, 99, all keyed "-".
    answers = {"1": 5, "31": 4, "61": 2, "91": 4, "9": 1, "39": 2, "69": 1, "99": 4}
    scores = _by_scale(score(NEO, answers))
    assert scores["Anxiety"].value == pytest.approx((5 + 4 + 2 + 4) / 4)
    assert scores["Morality"].value == pytest.approx((5 + 4 + 5 + 2) / 4)
    assert (scores["Anxiety"].n_items, scores["Anxiety"].n_missing) == (4, 0)
    assert scores["Anxiety"].band is None


def test_domain_mean_by_hand():
    # Neuroticism has 17 "+" and 7 "-" items; answering 5 everywhere keys to 5 and 1.
    scores = _by_scale(score(NEO, {str(i): 5 for i in range(1, 121)}))
    assert scores["neuroticism"].value == pytest.approx((17 * 5 + 7 * 1) / 24)
    assert scores["neuroticism"].n_items == 24
    assert len(scores) == 35


# --- sums and bands ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "band"),
    [
        (0, "minimal"),
        (4, "minimal"),
        (5, "mild"),
        (9, "mild"),
        (10, "moderate"),
        (14, "moderate"),
        (15, "moderately severe"),
        (19, "moderately severe"),
        (20, "severe"),
        (27, "severe"),
    ],
)
def test_phq9_total_and_band_at_each_boundary(total, band):
    (result,) = score(PHQ, _answers_for_total(PHQ, total))
    assert result == Score("total", "phq-9", float(total), 9, 0, band)


@pytest.mark.parametrize(
    ("total", "band"),
    [
        (4, "minimal"),
        (5, "mild"),
        (9, "mild"),
        (10, "moderate"),
        (14, "moderate"),
        (15, "severe"),
        (21, "severe"),
    ],
)
def test_gad7_bands(total, band):
    (result,) = score(GAD, _answers_for_total(GAD, total))
    assert (result.value, result.band) == (total, band)


@pytest.mark.parametrize(
    ("total", "band"),
    [(0, "low"), (13, "low"), (14, "moderate"), (26, "moderate"), (27, "high"), (40, "high")],
)
def test_pss10_bands_with_reverse_keys(total, band):
    answers = _answers_for_total(PSS, total)
    (result,) = score(PSS, answers)
    assert (result.value, result.band) == (total, band)


def test_pss10_by_hand():
    answers = {"1": 3, "2": 2, "3": 4, "4": 1, "5": 0, "6": 2, "7": 4, "8": 3, "9": 1, "10": 0}
    # Items 4, 5, 7, 8 reverse: 3, 4, 0, 1.
    (result,) = score(PSS, answers)
    assert result.value == 3 + 2 + 4 + 3 + 4 + 2 + 0 + 1 + 1 + 0 == 20
    assert result.band == "moderate"


# --- missing answers -----------------------------------------------------------------------


def test_mean_scoring_needs_half_the_items():
    two = _by_scale(score(NEO, {"1": 5, "31": 3}))
    assert (two["Anxiety"].value, two["Anxiety"].n_items, two["Anxiety"].n_missing) == (4.0, 2, 2)
    one = _by_scale(score(NEO, {"1": 5, "31": None, "61": math.nan}))
    assert (one["Anxiety"].value, one["Anxiety"].n_items, one["Anxiety"].n_missing) == (None, 1, 3)
    assert one["neuroticism"].value is None  # 1 of 24


def test_sum_scoring_prorates_up_to_20_percent_missing():
    answers = dict(zip("12345678", [3, 3, 3, 2, 2, 2, 1, 1], strict=True))
    (one_missing,) = score(PHQ, answers)
    # 17 / 8 * 9 = 19.125, rounded half up to 19.13, nearer to the 15-19 band than to 20.
    assert one_missing == Score("total", "phq-9", 19.13, 8, 1, "moderately severe")
    del answers["8"]
    (two_missing,) = score(PHQ, answers)
    assert (two_missing.value, two_missing.n_missing, two_missing.band) == (None, 2, None)


@pytest.mark.parametrize(
    ("instrument", "allowed"), [(PHQ, 1), (GAD, 1), (PSS, 2)], ids=["phq-9", "gad-7", "pss-10"]
)
def test_sum_scoring_missing_limit(instrument, allowed):
    full = {i.id: instrument.min_value + 1 for i in instrument.items}
    ids = list(full)
    ok = {**full, **dict.fromkeys(ids[:allowed])}
    too_many = {**full, **dict.fromkeys(ids[: allowed + 1])}
    assert score(instrument, ok)[0].value is not None
    assert score(instrument, too_many)[0].value is None


def test_max_missing_is_one_rule_per_instrument():
    assert [max_missing(i) for i in (PHQ, GAD, PSS)] == [1, 1, 2]
    assert max_missing(PSS, n_items=4) == 0  # a 4-item subset may miss nothing


class _Declared(Instrument):
    """An instrument model carrying a declared proration rule, as instrument data may."""

    max_missing: int | None = None


def test_a_declared_max_missing_governs_both_scorers():
    strict = _Declared.model_validate({**PSS.model_dump(), "max_missing": 1})
    answers = {i.id: 2 for i in PSS.items[2:]}  # items 1 and 2 missing
    assert score(PSS, answers)[0].value is not None  # the 20% rule allows 2
    assert score(strict, answers)[0].value is None
    rows = [{"who": 1, "item": k, "value": float(v), "valid": 1} for k, v in answers.items()]
    frame = score_frame(strict, pl.DataFrame(rows), by=["who"])
    assert frame["value"].to_list() == [None]


def test_prorated_value_uses_the_mean_of_answered_items():
    answers = {str(i): 2 for i in range(1, 7)}  # GAD-7 item 7 missing
    (result,) = score(GAD, answers)
    assert (result.value, result.band) == (14.0, "moderate")


def test_band_of_takes_the_nearer_band_between_integer_bands():
    bands = PHQ.bands["phq-9"]
    assert band_of(bands, 4.49) == "minimal"
    assert band_of(bands, 4.5) == "mild"
    assert band_of(bands, 27) == "severe"
    assert band_of(bands, 27.5) is None
    assert band_of(bands, -1) is None
    assert band_of(bands, None) is None


def test_answers_outside_the_instrument_are_ignored_and_missing_is_missing():
    (result,) = score(PHQ, {**_answers_for_total(PHQ, 10), "99": 3, "x": 1})
    assert result.value == 10


@pytest.mark.parametrize(("instrument", "value"), [(PHQ, 4), (PHQ, -1), (NEO, 0), (NEO, 6)])
def test_out_of_range_answer_raises(instrument, value):
    with pytest.raises(ValueError, match="outside"):
        score(instrument, {"1": value})


# --- score_frame ---------------------------------------------------------------------------

BY = ["episode_id", "agent_id", "occasion", "prompt_variant", "option_order"]


def _measurements(instrument, n_groups: int, seed: int) -> pl.DataFrame:
    """Random answers with invalid rows, null values and absent rows."""
    rng = np.random.default_rng(seed)
    rows = []
    for g in range(n_groups):
        missing_share = rng.choice([0.0, 0.1, 0.3, 0.6])
        for item in instrument.items:
            draw = rng.random()
            if draw < missing_share / 3:
                continue  # absent row
            value = float(rng.integers(instrument.min_value, instrument.max_value + 1))
            valid = 1
            if draw < 2 * missing_share / 3:
                value, valid = None, 0
            elif draw < missing_share:
                valid = 0  # an invalid answer keeps its raw value but must not count
            rows.append(
                {
                    "episode_id": g // 4,
                    "agent_id": g % 2,
                    "occasion": (g // 2) % 2,
                    "prompt_variant": None if g % 3 == 0 else g % 3,
                    "option_order": "forward" if g % 4 < 2 else "reversed",
                    "item": item.id,
                    "value": value,
                    "valid": valid,
                }
            )
    return pl.DataFrame(rows, infer_schema_length=None)


@pytest.mark.parametrize("instrument", [NEO, PHQ, GAD, PSS], ids=lambda i: i.name)
def test_score_frame_agrees_with_score(instrument):
    measurements = _measurements(instrument, n_groups=24, seed=len(instrument.items))
    frame = score_frame(instrument, measurements, by=BY)
    expected = []
    for key, group in measurements.partition_by(BY, as_dict=True, maintain_order=True).items():
        answers = {
            r["item"]: r["value"] if r["valid"] else None for r in group.iter_rows(named=True)
        }
        for s in score(instrument, answers):
            expected.append((*key, s.level, s.scale, s.value, s.n_items, s.n_missing, s.band))
    got = frame.rows()
    assert frame.columns == [*BY, "level", "scale", "value", "n_items", "n_missing", "band"]
    assert len(got) == len(expected) == 24 * len(instrument.scales())
    for g, e in zip(got, expected, strict=True):
        assert g[:7] == e[:7] and g[8:] == e[8:]
        assert (g[7] is None and e[7] is None) or g[7] == pytest.approx(e[7], abs=1e-12)
    assert frame["value"].null_count() > 0  # the missing-data rules were exercised


@pytest.mark.parametrize(("instrument", "missing"), [(PHQ, 1), (PSS, 2), (GAD, 1)])
def test_score_frame_prorates_exactly_like_score(instrument, missing):
    # Every total with `missing` items absent, including .xx5 ties (PHQ-9: S * 9 / 8).
    rows, expected = [], []
    answered = instrument.items[missing:]
    for total in range(len(answered) * instrument.max_value + 1):
        answers = {}
        left = total
        for item in answered:
            keyed = min(left, instrument.max_value)
            left -= keyed
            answers[item.id] = instrument.reverse(keyed) if item.keyed == "-" else keyed
        expected.append(score(instrument, answers)[0].value)
        rows += [{"g": total, "item": k, "value": float(v), "valid": 1} for k, v in answers.items()]
    frame = score_frame(instrument, pl.DataFrame(rows), by=["g"])
    assert frame["value"].to_list() == expected
    assert 19.13 in expected or instrument is not PHQ


def test_score_frame_without_by_scores_one_group_and_filters_the_instrument():
    measurements = pl.DataFrame(
        {
            "instrument": ["phq-9"] * 9 + ["gad-7"],
            "item": [str(i) for i in range(1, 10)] + ["1"],
            "value": [1.0] * 9 + [3.0],
            "valid": [1] * 10,
        }
    )
    frame = score_frame(PHQ, measurements, by=[])
    assert frame.rows() == [("total", "phq-9", 9.0, 9, 0, "mild")]


def test_score_frame_counts_invalid_rows_as_missing():
    measurements = pl.DataFrame(
        {
            "who": [1] * 9,
            "item": [str(i) for i in range(1, 10)],
            "value": [3.0] * 9,
            "valid": [0, 0] + [1] * 7,
        }
    )
    (row,) = score_frame(PHQ, measurements, by=["who"]).rows(named=True)
    assert (row["value"], row["n_items"], row["n_missing"]) == (None, 7, 2)


def test_score_frame_rejects_duplicates_missing_columns_and_out_of_range():
    base = {"who": [1, 1], "item": ["1", "1"], "value": [1.0, 2.0], "valid": [1, 1]}
    with pytest.raises(ValueError, match="more than once"):
        score_frame(PHQ, pl.DataFrame(base), by=["who"])
    with pytest.raises(ValueError, match=r"lack column\(s\) \['valid'\]"):
        score_frame(PHQ, pl.DataFrame(base).drop("valid"), by=["who"])
    with pytest.raises(ValueError, match="outside 0-3"):
        score_frame(
            PHQ, pl.DataFrame({**base, "item": ["1", "2"], "value": [1.0, 7.0]}), by=["who"]
        )
