"""Trait drift analysis on small hand-made databases with the real schema."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from handmade import HandMadeDb
from scipy import stats

from personae.analysis import agreement, drift
from personae.measures import band_of, load_instrument, norms

PHQ_BANDS = load_instrument("phq-9").bands["phq-9"]


class Store(HandMadeDb):
    """Writes experiments, episodes, agents and scores straight into a personae database."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, scenario="counseling")

    def episode(
        self, param_index: int = 0, replicate: int = 0, status: str = "complete", **params: object
    ) -> int:
        return self.add_episode(params, param_index=param_index, replicate=replicate, status=status)

    def agent(self, episode: int, name: str = "Sam", **big_five: float) -> None:
        persona = {"name": name, "role": "client", "big_five": big_five}
        self.add_agent(episode, name, "client", persona)

    def score(
        self,
        episode: int,
        occasion: int,
        scale: str,
        value: float | None,
        *,
        agent: str = "Sam",
        instrument: str = "ipip-neo-120",
        level: str = "domain",
        source: str = "self_report",
        point: str | None = None,
        session: int | None = None,
        band: str | None = None,
        option_order: str = "forward",
    ) -> None:
        self.con.execute(
            "INSERT INTO scores (episode_id, agent_id, session, step, point, occasion, instrument,"
            " level, scale, value, n_items, n_missing, band, prompt_variant, option_order, source)"
            " VALUES (?, ?, ?, 0, ?, ?, ?, ?, ?, ?, 24, 0, ?, 0, ?, ?)",
            (
                episode,
                self.agents[episode, agent],
                occasion - 1 if session is None and occasion > 0 else (session or 0),
                point or ("start" if occasion == 0 else "session_end"),
                occasion,
                instrument,
                level,
                scale,
                value,
                band,
                option_order,
                source,
            ),
        )


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "drift.db")


def _respondents(store: Store, first: list[float], last: list[float]) -> Path:
    """One agent per episode, neuroticism at occasions 0 and 1."""
    for i, (a, b) in enumerate(zip(first, last, strict=True)):
        ep = store.episode(param_index=i)
        store.agent(ep, N=3.0)
        store.score(ep, 0, "neuroticism", a)
        store.score(ep, 1, "neuroticism", b)
    return store.done()


def test_trait_scores_adds_targets_time_and_params(store: Store) -> None:
    ep = store.episode(**{"client.style": "reserved"})
    store.agent(ep, N=4.3, O=3.6)
    store.score(ep, 0, "neuroticism", 4.0)
    store.score(ep, 0, "anxiety", 4.5, level="facet")
    store.score(ep, 0, "phq-9", 12, instrument="phq-9", level="total", band="moderate")
    frame = drift.trait_scores(store.done())
    assert frame.height == 3
    targets = dict(zip(frame["scale"], frame["target"], strict=True))
    assert targets == {"neuroticism": 4.3, "anxiety": None, "phq-9": None}
    assert frame["t"].to_list() == frame["occasion"].to_list()
    assert set(frame["param:client.style"]) == {"reserved"}


def test_trajectories_change_baseline_and_slope(store: Store) -> None:
    ep = store.episode()
    store.agent(ep, N=3.0)
    for occasion, value in enumerate([3.0, 3.5, 4.0]):
        store.score(ep, occasion, "neuroticism", value)
    store.score(ep, 0, "openness", 3.0)
    traj = drift.trajectories(store.done())
    n = traj.filter(pl.col("scale") == "neuroticism").sort("occasion")
    assert n["baseline"].to_list() == [3.0, 3.0, 3.0]
    assert n["change"].to_list() == [0.0, 0.5, 1.0]
    assert n["slope"].to_list() == pytest.approx([0.5] * 3)
    assert n["target"].to_list() == [3.0] * 3
    o = traj.filter(pl.col("scale") == "openness")
    assert o["slope"].to_list() == [None] and o["n_points"].to_list() == [1]


def test_forms_of_one_administration_are_averaged(store: Store) -> None:
    ep = store.episode()
    store.agent(ep)
    store.score(ep, 0, "neuroticism", 3.0, option_order="forward")
    store.score(ep, 0, "neuroticism", 4.0, option_order="reversed")
    traj = drift.trajectories(store.done())
    assert traj["value"].to_list() == [3.5] and traj["n_forms"].to_list() == [2]


def test_incomplete_episodes_are_left_out(store: Store) -> None:
    for status in ("complete", "running", "failed"):
        ep = store.episode(replicate=["complete", "running", "failed"].index(status), status=status)
        store.agent(ep)
        store.score(ep, 0, "neuroticism", 3.0)
    db = store.done()
    assert drift.trait_scores(db).height == 1
    assert drift.trajectories(db)["episode_id"].to_list() == [1]


def test_reliable_change_with_given_reliability(store: Store) -> None:
    db = _respondents(store, first=[3.0, 4.0, 5.0], last=[4.5, 4.2, 5.1])
    rc = drift.reliable_change(db, reliability={"neuroticism": 0.75}, reference="sample").sort(
        "episode_id"
    )
    s_diff = math.sqrt(2) * 1.0 * math.sqrt(1 - 0.75)  # SD of 3, 4, 5 is 1
    assert rc["sd_reference"].to_list() == pytest.approx([1.0] * 3)
    assert set(rc["reference"]) == {"sample"}
    assert set(rc["sd_source"]) == {"sample: SD of 3 baseline values"}
    assert rc["s_diff"][0] == pytest.approx(s_diff)
    assert rc["rci"].to_list() == pytest.approx([1.5 / s_diff, 0.2 / s_diff, 0.1 / s_diff])
    assert rc["reliable"].to_list() == [True, False, False]
    assert rc["direction"].to_list() == ["up", "none", "none"]
    assert set(rc["r_source"]) == {"given"}


def test_reliable_change_falls_back_to_test_retest(store: Store) -> None:
    first, last = [3.0, 4.0, 5.0, 2.0], [3.2, 3.9, 5.3, 2.6]
    rc = drift.reliable_change(_respondents(store, first, last), reference="sample")
    r = float(np.corrcoef(first, last)[0, 1])
    s_diff = math.sqrt(2) * float(np.std(first, ddof=1)) * math.sqrt(1 - r)
    assert rc["r_xx"].to_list() == pytest.approx([r] * 4)
    assert set(rc["r_source"]) == {"sample: test-retest, baseline to next occasion"}
    assert rc.sort("episode_id")["rci"][3] == pytest.approx(0.6 / s_diff)


def test_reliable_change_explains_missing_rci(store: Store) -> None:
    db = _respondents(store, first=[3.0, 3.0], last=[4.0, 2.0])
    rc = drift.reliable_change(db, reference="sample")
    assert rc["rci"].to_list() == [None, None]
    assert set(rc["reason"]) == {"no spread at baseline across respondents"}


def test_test_retest_on_known_data(store: Store) -> None:
    first, last = [1.0, 2.0, 3.0, 4.0, 5.0], [1.5, 1.8, 3.9, 3.7, 5.2]
    tr = agreement.test_retest(_respondents(store, first, last))
    assert tr["n"].to_list() == [5]
    assert tr["r"][0] == pytest.approx(float(np.corrcoef(first, last)[0, 1]))
    assert 0 < tr["p"][0] < 0.05


def test_icc_is_one_when_replicates_agree(store: Store) -> None:
    for param_index, value in enumerate([2.0, 3.0, 4.5]):
        for replicate in range(3):
            ep = store.episode(param_index=param_index, replicate=replicate)
            store.agent(ep)
            store.score(ep, 0, "neuroticism", value)
    icc = agreement.icc_across_replicates(store.done())
    assert icc.height == 6  # every pingouin type
    one = icc.filter(pl.col("alias") == "ICC1")
    assert one["icc"][0] == pytest.approx(1.0)
    assert one["n_targets"][0] == 3 and one["n_raters"][0] == 3
    assert icc["reason"].null_count() == 6


def test_icc_reads_older_pingouin_names(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """pingouin < 0.7 calls the types ICC1 ... ICC3k, and < 0.6 the interval "CI95%"."""
    import pingouin

    current = pingouin.intraclass_corr
    old_names = dict(
        zip(
            ["ICC(1,1)", "ICC(A,1)", "ICC(C,1)", "ICC(1,k)", "ICC(A,k)", "ICC(C,k)"],
            ["ICC1", "ICC2", "ICC3", "ICC1k", "ICC2k", "ICC3k"],
            strict=True,
        )
    )

    def old_pingouin(*args, **kwargs):
        table = current(*args, **kwargs)
        table["Type"] = table["Type"].map(old_names)
        return table.rename(columns={"CI95": "CI95%"})

    for param_index, value in enumerate([2.0, 3.0, 4.5]):
        for replicate in range(3):
            ep = store.episode(param_index=param_index, replicate=replicate)
            store.agent(ep)
            store.score(ep, 0, "neuroticism", value + 0.1 * replicate * (param_index - 1))
    db = store.done()
    expected = agreement.icc_across_replicates(db)
    monkeypatch.setattr(pingouin, "intraclass_corr", old_pingouin)
    got = agreement.icc_across_replicates(db)
    assert got["type"].to_list() == expected["type"].to_list()
    assert got["icc"].to_list() == pytest.approx(expected["icc"].to_list())
    assert got["ci_low"].to_list() == pytest.approx(expected["ci_low"].to_list())
    assert got["reason"].null_count() == 6


def test_icc_says_why_with_one_replicate(store: Store) -> None:
    db = _respondents(store, first=[3.0, 4.0, 5.0], last=[3.0, 4.0, 5.0])
    icc = agreement.icc_across_replicates(db, types=["ICC2"])
    assert icc["type"].to_list() == ["ICC(A,1)", "ICC(A,1)"]  # occasions 0 and 1
    assert icc["icc"].null_count() == 2
    assert set(icc["reason"]) == {"fewer than 2 replicates"}


def test_convergent_validity_is_perfect_when_measured_equals_target(store: Store) -> None:
    for i, level in enumerate([1.5, 3.0, 4.5]):
        ep = store.episode(param_index=i)
        store.agent(ep, N=level, E=5 - level)
        store.score(ep, 0, "neuroticism", level)
        store.score(ep, 0, "extraversion", 5 - level)
        store.score(ep, 1, "neuroticism", level, instrument="judge-big5", source="judge")
    cv = agreement.convergent_validity(store.done())
    base = cv.filter(pl.col("measure") == "self-report baseline")
    assert base["scale"].to_list() == ["extraversion", "neuroticism", "all"]
    assert base["r"].to_list() == pytest.approx([1.0, 1.0, 1.0])
    assert base["mad"].to_list() == pytest.approx([0.0, 0.0, 0.0])
    judged = cv.filter((pl.col("measure") == "judge all") & (pl.col("scale") == "neuroticism"))
    assert judged["r"][0] == pytest.approx(1.0) and judged["n"][0] == 3


def test_self_vs_judge_pairs_same_point(store: Store) -> None:
    pairs = [(2.0, 2.5), (3.0, 3.0), (4.0, 4.5)]
    for i, (own, judged) in enumerate(pairs):
        ep = store.episode(param_index=i)
        store.agent(ep)
        store.score(ep, 0, "neuroticism", 1.0)  # at the start: the judge has nothing to match
        store.score(ep, 1, "neuroticism", own, point="session_end", session=0)
        store.score(
            ep,
            0,
            "neuroticism",
            judged,
            instrument="judge-big5",
            source="judge",
            session=0,
            point="session_end",
        )
    db = store.done()
    assert agreement.self_judge_pairs(db).height == 3
    sj = agreement.self_vs_judge(db).filter(pl.col("scale") == "neuroticism")
    assert sj["n"][0] == 3
    assert sj["mean_diff"][0] == pytest.approx(-1 / 3)
    assert sj["r"][0] == pytest.approx(float(np.corrcoef(*zip(*pairs, strict=True))[0, 1]))


def test_clinical_change_and_band_transition(store: Store) -> None:
    ep = store.episode()
    store.agent(ep)
    for occasion, (value, band) in enumerate([(12, "moderate"), (9, "mild"), (6, "mild")]):
        store.score(ep, occasion, "phq-9", value, instrument="phq-9", level="total", band=band)
    store.score(ep, 0, "gad-7", 4, instrument="gad-7", level="total", band="minimal")
    store.score(ep, 1, "gad-7", 4, instrument="gad-7", level="total", band="minimal")
    cc = drift.clinical_change(store.done()).sort("instrument")
    assert cc["instrument"].to_list() == ["gad-7", "phq-9"]
    assert cc["change"].to_list() == [0.0, -6.0]
    assert cc["transition"].to_list() == ["minimal -> minimal", "moderate -> mild"]
    assert cc["band_changed"].to_list() == [False, True]


def test_band_of_averaged_forms_comes_from_the_instrument(store: Store) -> None:
    ep = store.episode()
    store.agent(ep)
    for occasion, forms in enumerate([[(9, "mild"), (10, "moderate")], [(3, "minimal")] * 2]):
        for order, (value, band) in zip(("forward", "reversed"), forms, strict=True):
            store.score(
                ep,
                occasion,
                "phq-9",
                value,
                instrument="phq-9",
                level="total",
                band=band,
                option_order=order,
            )
    cc = drift.clinical_change(store.done())
    assert cc["value_first"].to_list() == [9.5]
    assert cc["transition"].to_list() == ["moderate -> minimal"]  # 9.5 rounds up to 10


def test_drift_summary_per_persona(store: Store) -> None:
    for replicate, (a, b) in enumerate([(3.0, 4.0), (4.0, 4.4), (5.0, 5.2)]):
        ep = store.episode(replicate=replicate)
        store.agent(ep, N=4.0)
        store.score(ep, 0, "neuroticism", a)
        store.score(ep, 1, "neuroticism", b)
    db = store.done()
    summary = drift.drift_summary(db, reliability={"neuroticism": 0.9}, reference="sample")
    row = summary.row(0, named=True)
    assert row["persona"] == "Sam (set 0)" and row["respondents"] == 3
    assert row["baseline_mean"] == pytest.approx(4.0)
    assert row["mean_change"] == pytest.approx(1.6 / 3)
    assert row["effect_size"] == pytest.approx(1.6 / 3)  # baseline SD is 1
    assert row["reference"] == "sample" and row["sd_reference"] == pytest.approx(1.0)
    assert row["target"] == 4.0 and row["mean_slope"] == pytest.approx(1.6 / 3)
    # Changes 1.0, 0.4, 0.2: a Student t interval across the 3 replicates.
    test = stats.ttest_1samp([1.0, 0.4, 0.2], 0.0)
    low, high = test.confidence_interval(0.95)
    assert (row["change_ci_low"], row["change_ci_high"]) == pytest.approx((low, high))
    assert row["change_p"] == pytest.approx(test.pvalue)
    assert (row["slope_ci_low"], row["slope_ci_high"]) == pytest.approx((low, high))
    given = drift.drift_summary(db, reference_sd=0.5, reliability=0.9).row(0, named=True)
    assert given["reference"] == "given" and given["effect_size"] == pytest.approx(3.2 / 3)


def _phq(store: Store, pairs: list[tuple[float, float]]) -> Path:
    """One client per episode, PHQ-9 totals at occasions 0 and 1."""
    for i, values in enumerate(pairs):
        ep = store.episode(replicate=i)
        store.agent(ep)
        for occasion, value in enumerate(values):
            band = band_of(PHQ_BANDS, value)
            store.score(ep, occasion, "phq-9", value, instrument="phq-9", level="total", band=band)
    return store.done()


def test_reliable_change_uses_the_published_norm_by_default(store: Store) -> None:
    rc = drift.reliable_change(_phq(store, [(12, 7)]), instrument="phq-9", level="total")
    row = rc.row(0, named=True)
    s_diff = math.sqrt(2) * 3.5 * math.sqrt(1 - 0.89)  # Kocalevent et al. SD, Kroenke et al. alpha
    assert (row["reference"], row["sd_reference"], row["r_xx"]) == ("norms", 3.5, 0.89)
    assert "kocalevent2013" in row["sd_source"] and "kroenke2001" in row["r_source"]
    assert row["rci"] == pytest.approx(-5 / s_diff)
    assert (row["reliable"], row["direction"], row["reason"]) == (True, "down", None)


def test_a_small_change_across_seeds_is_not_reliable_against_the_norm(store: Store) -> None:
    """The reviewer's case: one persona over ten seeds, +0.1 on a domain mean, r_xx = .88."""
    rng = np.random.default_rng(0)
    first = 3.0 + rng.normal(0, 0.02, 10)  # seeds barely differ
    db = _respondents_of_one_persona(store, first.tolist(), (first + 0.1).tolist())
    given = drift.reliable_change(db, reliability=0.88, reference_sd=0.7)
    assert set(given["reference"]) == {"given"}
    assert given["rci"].to_list() == pytest.approx([0.1 / (math.sqrt(2 * 0.12) * 0.7)] * 10)
    assert not given["reliable"].any()
    sample = drift.reliable_change(db, reliability=0.88, reference="sample")
    assert sample["reliable"].all()  # scaled by seed noise: why "sample" is never the default


def _respondents_of_one_persona(store: Store, first: list[float], last: list[float]) -> Path:
    for replicate, (a, b) in enumerate(zip(first, last, strict=True)):
        ep = store.episode(replicate=replicate)
        store.agent(ep)
        store.score(ep, 0, "neuroticism", a)
        store.score(ep, 1, "neuroticism", b)
    return store.done()


def test_reliable_change_without_a_shipped_norm_says_what_to_pass(store: Store) -> None:
    rc = drift.reliable_change(_respondents(store, [3.0, 4.0, 5.0], [3.5, 4.0, 4.0]))
    assert rc["rci"].null_count() == 3
    (reason,) = set(rc["reason"])
    assert "no published SD or reliability shipped for ipip-neo-120 neuroticism" in reason
    assert "reference_sd=" in reason and "reference='sample'" in reason
    with pytest.raises(ValueError, match="reference"):
        drift.reliable_change(rc, reference="people")  # type: ignore[arg-type]


def test_band_change_is_shown_with_its_rci_verdict(store: Store) -> None:
    cc = drift.clinical_change(_phq(store, [(9, 10), (20, 3), (4, 2), (5, 16)]))
    cc = cc.sort("episode_id")
    assert cc["transition"].to_list() == [
        "mild -> moderate",
        "severe -> minimal",
        "minimal -> minimal",
        "mild -> moderately severe",
    ]
    assert cc["verdict"].to_list() == [
        "no reliable change",
        "reliable improvement",
        "no reliable change",
        "reliable deterioration",
    ]
    # Criterion b from the general-population norm: 2.9 + 2 x 3.5 = 9.9.
    assert set(cc["criterion"]) == {"b"} and cc["cutoff"][0] == pytest.approx(9.9)
    assert cc["jt_category"].to_list() == ["unchanged", "recovered", "unchanged", "deteriorated"]
    assert cc["functional_first"].to_list() == [True, False, True, True]
    assert set(cc["reference"]) == {"norms"}


def test_clinical_change_takes_given_populations_and_criterion_c(store: Store) -> None:
    db = _phq(store, [(16, 9)])
    cc = drift.clinical_change(db, dysfunctional={"phq-9": (15.0, 5.0)})
    row = cc.row(0, named=True)
    # c = (5 x 2.9 + 3.5 x 15) / (5 + 3.5)
    assert row["criterion"] == "c" and row["cutoff"] == pytest.approx((14.5 + 52.5) / 8.5)
    a = drift.clinical_change(db, dysfunctional={"phq-9": (15.0, 5.0)}, criterion="a")
    assert a["cutoff"][0] == pytest.approx(5.0) and a["jt_category"][0] == "improved"
    none = drift.clinical_change(db, functional={}, criterion="a")
    assert none["cutoff"][0] is None and none["jt_category"][0] == "improved"


def test_every_shipped_norm_number_has_a_source_and_a_sane_value() -> None:
    cited = norms.sources()
    shipped = norms.norms()
    assert {n.instrument for n in shipped} == {"phq-9", "gad-7", "pss-10", "ipip-neo-120"}
    for norm in shipped:
        load_instrument(norm.instrument)  # a bundled instrument
        assert norm.source in cited and norm.note
        if norm.reliability is not None:
            assert 0 < norm.reliability < 1 and norm.reliability_source in cited
        if norm.sd is not None:
            assert norm.sd > 0 and norm.mean is not None and norm.n
    ipip = norms.find_norm("ipip-neo-120", "neuroticism")
    assert ipip is not None and ipip.sd is None and "not" in ipip.note  # a gap, said out loud
    assert norms.find_norm("phq-9", "phq-9", "dysfunctional") is None


def test_jacobson_truax_arithmetic() -> None:
    assert norms.reliable_change_index(10, 12, sd=2.0, reliability=0.75) == pytest.approx(
        2 / (math.sqrt(2) * 2.0 * 0.5)
    )
    with pytest.raises(ValueError, match="reliability"):
        norms.reliable_change_index(1, 2, sd=1.0, reliability=1.0)
    functional, dysfunctional = (3.0, 3.0), (15.0, 5.0)
    assert norms.clinical_cutoff(functional, None) == (9.0, "b")
    assert norms.clinical_cutoff(None, dysfunctional) == (5.0, "a")
    assert norms.clinical_cutoff(functional, dysfunctional) == (
        pytest.approx((5 * 3 + 3 * 15) / 8),
        "c",
    )
    assert norms.clinical_cutoff((4.0, 1.0), None, higher_is_worse=False) == (2.0, "b")
    with pytest.raises(ValueError, match="criterion 'c'"):
        norms.clinical_cutoff(functional, None, "c")


def test_change_reference_says_where_each_number_comes_from() -> None:
    norm = norms.change_reference("gad-7", "gad-7")
    assert (norm.kind, norm.sd, norm.reliability, norm.missing) == ("norms", 3.4, 0.89, None)
    assert norm.sd_source is not None and "lowe2008" in norm.sd_source
    mixed = norms.change_reference("gad-7", "gad-7", sd=4.0)
    assert (mixed.kind, mixed.sd_source, mixed.reliability) == ("given", "given", 0.89)
    sample = norms.change_reference(
        "gad-7", "gad-7", reference="sample", sample_sd=1.0, sample_reliability=0.5, sample_size=9
    )
    assert (sample.kind, sample.sd_source) == ("sample", "sample: SD of 9 baseline values")
    assert norms.change_reference("x", "y").missing is not None


ANALYSES = [
    drift.trajectories,
    drift.reliable_change,
    drift.drift_summary,
    agreement.icc_across_replicates,
    agreement.test_retest,
    agreement.convergent_validity,
    agreement.self_judge_pairs,
    agreement.self_vs_judge,
    drift.clinical_change,
]


@pytest.mark.parametrize("analysis", ANALYSES, ids=lambda f: f.__name__)
def test_empty_input_gives_empty_frame_with_columns(store: Store, analysis) -> None:
    ep = store.episode()
    store.agent(ep)
    db = store.done()
    assert drift.trait_scores(db).is_empty()
    for scores in (db, drift.trait_scores(db), pl.DataFrame()):
        out = analysis(scores)
        assert out.is_empty() and out.width > 0
