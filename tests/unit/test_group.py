"""Group dynamics on hand-built discussions whose answers are known."""

from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import networkx as nx
import polars as pl
import pytest

from personae.analysis import group, group_report
from personae.analysis.report import write_report
from personae.store.database import Database

Opinions = dict[int, dict[str, float | None]]


@dataclass
class Discussion:
    """One episode: members, an order of (speaker, heard by or None), opinions by t."""

    members: list[str]
    turns: list[tuple[str, list[str] | None]] = field(default_factory=list)
    opinions: Opinions = field(default_factory=dict)
    moderator: str | None = None
    params: dict[str, object] = field(default_factory=lambda: {"graph": "complete"})
    network: nx.Graph | None = None


def _database(path: Path, discussions: list[Discussion]) -> Path:
    Database(path).close()
    con = sqlite3.connect(path)
    con.execute(
        "INSERT INTO experiments (id, name, scenario, config_hash, config_json, seed, created_at)"
        " VALUES (1, 'town hall', 'group', 'h', '{}', 1, 'now')"
    )
    agent_id = 0
    for episode, talk in enumerate(discussions, start=1):
        con.execute(
            "INSERT INTO episodes (id, experiment_id, param_index, replicate, params_json, seed,"
            " status) VALUES (?, 1, ?, 0, ?, 0, 'complete')",
            (episode, episode - 1, json.dumps(talk.params)),
        )
        ids = {}
        roles = [(m, "member") for m in talk.members]
        if talk.moderator:
            roles.append((talk.moderator, "moderator"))
        for name, role in roles:
            agent_id += 1
            ids[name] = agent_id
            con.execute(
                "INSERT INTO agents (id, episode_id, name, role, persona_json) VALUES (?, ?, ?, ?,"
                " '{}')",
                (agent_id, episode, name, role),
            )
        con.executemany(
            "INSERT INTO turns (episode_id, session, step, agent_id, visible_to, content,"
            " scripted, created_at) VALUES (?, 0, ?, ?, ?, 'words', 0, 'now')",
            [
                (episode, step, ids[speaker], None if heard is None else json.dumps(heard))
                for step, (speaker, heard) in enumerate(talk.turns)
            ],
        )
        con.executemany(
            "INSERT INTO states (episode_id, agent_id, t, variable, value, source)"
            " VALUES (?, ?, ?, 'opinion', ?, 'probe')",
            [
                (episode, ids[name], t, value)
                for t, values in talk.opinions.items()
                for name, value in values.items()
            ],
        )
        if talk.network is not None:
            con.execute(
                "INSERT INTO states (episode_id, agent_id, t, variable, text, source)"
                " VALUES (?, NULL, 0, 'network', ?, 'scenario')",
                (episode, json.dumps(nx.node_link_data(talk.network, edges="edges"))),
            )
    con.commit()
    con.close()
    return path


def _all_heard(order: str) -> list[tuple[str, list[str] | None]]:
    return [(speaker, None) for speaker in order]


# --- opinions -----------------------------------------------------------------------------------


@pytest.fixture
def consensus_db(tmp_path: Path) -> Path:
    members = ["A", "B", "C"]
    return _database(
        tmp_path / "consensus.db",
        [
            # reached at t=3 and held
            Discussion(
                members,
                _all_heard("ABCABC"),
                {
                    0: {"A": 1, "B": 5, "C": 3},
                    3: {"A": 2.5, "B": 3, "C": 3},
                    6: dict.fromkeys(members, 3),
                },
            ),
            # reached at t=3, broken at t=6
            Discussion(
                members,
                _all_heard("ABCABC"),
                {
                    0: {"A": 1, "B": 5, "C": 3},
                    3: {"A": 3, "B": 3.4, "C": 3},
                    6: {"A": 2, "B": 4, "C": 3},
                },
            ),
            # never reached; an unreadable answer and a lone reading do not count
            Discussion(
                members,
                _all_heard("ABCABC"),
                {
                    0: {"A": 1, "B": 5, "C": 3},
                    3: {"A": 2, "B": 4, "C": None},
                    6: {"A": 3, "B": None, "C": None},
                },
            ),
        ],
    )


def test_time_to_consensus_held_broken_and_never(consensus_db: Path) -> None:
    out = group.time_to_consensus(consensus_db, tolerance=0.5).sort("episode_id")
    assert out["t_first"].to_list() == [3, 3, None]
    assert out["t_consensus"].to_list() == [3, None, None]
    assert out["consensus"].to_list() == [True, False, False]
    assert out["broken"].to_list() == [False, True, False]
    assert out["t_last"].to_list() == [6, 6, 3]  # t=6 of episode 3 has one readable opinion
    assert out["range_last"].to_list() == pytest.approx([0.0, 2.0, 2.0])
    assert out["param:graph"].to_list() == ["complete"] * 3
    wider = group.time_to_consensus(consensus_db, tolerance=2.0).sort("episode_id")
    assert wider["t_consensus"].to_list() == [3, 3, 3]
    summary = group.group_summary(consensus_db)
    assert summary["t_consensus"].to_list() == [3, None, None]
    assert summary["variance_first"].to_list() == pytest.approx([8 / 3] * 3)
    assert summary["n_members"].to_list() == [3, 3, 3]


def test_opinion_dynamics_per_measurement(consensus_db: Path) -> None:
    dynamics = group.opinion_dynamics(consensus_db).filter(pl.col("episode_id") == 1).sort("t")
    assert dynamics["t"].to_list() == [0, 3, 6]
    assert dynamics["n"].to_list() == [3, 3, 3]
    first = dynamics.row(0, named=True)
    assert first["mean"] == pytest.approx(3.0)
    assert first["variance"] == pytest.approx(8 / 3)  # population variance of 1, 5, 3
    assert first["range"] == pytest.approx(4.0)
    assert first["extreme_share"] == pytest.approx(2 / 3)
    assert first["bimodality"] is None  # needs four values
    last = dynamics.row(2, named=True)
    assert last["variance"] == pytest.approx(0.0) and last["esteban_ray"] == pytest.approx(0.0)
    third = group.opinion_dynamics(consensus_db).filter(pl.col("episode_id") == 3).sort("t")
    assert third["n_missing"].to_list() == [0, 1, 2]
    # a loaded frame gives the same answer as the path
    frame = group.opinions(consensus_db)
    assert group.opinion_dynamics(frame).equals(group.opinion_dynamics(consensus_db))


def test_bimodality_coefficient_tells_two_camps_from_one() -> None:
    bimodal = [1.0] * 10 + [5.0] * 10
    unimodal = [3.0] * 14 + [2.0, 4.0] * 3
    n = 20
    by_hand = 1 / (
        (n - 1) / ((n - 2) * (n - 3)) * ((n + 1) * -2 + 6) + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3))
    )
    two_camps, one_peak = (group.bimodality_coefficient(x) for x in (bimodal, unimodal))
    assert two_camps is not None and one_peak is not None
    assert two_camps == pytest.approx(by_hand)  # 0.767
    assert one_peak < group.BIMODALITY_THRESHOLD < two_camps
    from scipy.stats import kurtosis, skew

    sample = [1.0, 2.0, 2.0, 3.0, 5.0, 4.0, 1.0]
    g1, g2 = skew(sample, bias=False), kurtosis(sample, bias=False)
    expected = (g1**2 + 1) / (g2 + 3 * 36 / (5 * 4))
    assert group.bimodality_coefficient(sample) == pytest.approx(expected)
    assert group.bimodality_coefficient([3.0] * 5) is None
    assert group.esteban_ray(bimodal) == pytest.approx(4 * 0.5**2.6)
    assert (group.esteban_ray(unimodal) or 0) < (group.esteban_ray(bimodal) or 0)


def test_bimodality_in_the_dynamics(tmp_path: Path) -> None:
    members = [f"m{i}" for i in range(12)]
    split: dict[str, float | None] = {m: (1.0 if i % 2 else 5.0) for i, m in enumerate(members)}
    db = _database(tmp_path / "split.db", [Discussion(members, [], {0: split})])
    row = group.opinion_dynamics(db).row(0, named=True)
    expected = group.bimodality_coefficient([1.0, 5.0] * 6)
    assert row["bimodality"] == pytest.approx(expected)
    assert row["bimodality"] > group.BIMODALITY_THRESHOLD
    assert row["extreme_share"] == 1.0


# --- participation ------------------------------------------------------------------------------


def test_participation_gini_and_entropy_by_hand(tmp_path: Path) -> None:
    talk = Discussion(["A", "B", "C", "D"], _all_heard("AMBAB"), moderator="M")
    db = _database(tmp_path / "talk.db", [talk])
    per_agent = group.participation(db)
    assert per_agent["agent"].to_list() == ["A", "B", "C", "D"]  # the moderator is no member
    assert per_agent["utterances"].to_list() == [2, 2, 0, 0]
    assert per_agent["share"].to_list() == [0.5, 0.5, 0.0, 0.0]
    # Gini: sum |x_i - x_j| over ordered pairs = 8 * 0.5 = 4; / (2 * 4^2 * 0.25) = 0.5
    # entropy: log 2 / log 4 = 0.5
    summary = group.participation_summary(db).row(0, named=True)
    assert summary["gini"] == pytest.approx(0.5)
    assert summary["gini_normalised"] == pytest.approx(0.5 * 4 / 3)
    assert summary["entropy"] == pytest.approx(0.5)
    assert (summary["n_members"], summary["utterances"], summary["silent"]) == (4, 4, 2)
    assert summary["moderator_utterances"] == 1
    assert group.gini([0.25] * 4) == pytest.approx(0.0)
    assert group.gini([1.0, 0.0, 0.0, 0.0]) == pytest.approx(0.75)
    assert group.normalised_entropy([0.25] * 4) == pytest.approx(1.0)
    assert group.gini([0.0, 0.0]) is None


@pytest.mark.parametrize("n", [2, 3, 5, 12])
def test_normalised_gini_reaches_one_whatever_the_group_size(n: int) -> None:
    alone = [1.0] + [0.0] * (n - 1)
    assert group.gini(alone) == pytest.approx((n - 1) / n)
    assert group.gini_normalised(alone) == pytest.approx(1.0)
    assert group.gini_normalised([1 / n] * n) == pytest.approx(0.0)
    half = [0.5, 0.5] + [0.0] * (n - 2)
    assert group.gini_normalised(half) == pytest.approx(group.gini(half) * n / (n - 1))


def test_normalised_gini_is_undefined_for_one_member_or_no_talk() -> None:
    assert group.gini_normalised([1.0]) is None
    assert group.gini_normalised([0.0, 0.0, 0.0]) is None
    assert group.gini_normalised([]) is None


# --- replies ------------------------------------------------------------------------------------


def test_reciprocity_of_a_b_a_b_c(tmp_path: Path) -> None:
    db = _database(tmp_path / "abc.db", [Discussion(["A", "B", "C"], _all_heard("ABABC"))])
    pairs = group.reply_pairs(db)
    edges = {(r, a): n for r, a, n in pairs.select("replier", "addressee", "replies").iter_rows()}
    assert edges == {("B", "A"): 2, ("A", "B"): 1, ("C", "B"): 1}
    row = group.reciprocity(db).row(0, named=True)
    assert (row["pairs"], row["replies"], row["unheard"], row["edges"]) == (4, 4, 0, 3)
    assert row["reciprocity"] == pytest.approx(2 / 3)  # B->A and A->B of three edges
    assert row["reciprocated_share"] == pytest.approx(3 / 4)
    graph = group.reply_graph(pairs, 1)
    assert graph["B"]["A"]["weight"] == 2 and not graph.has_edge("B", "C")


def test_a_reply_counts_only_if_the_replier_heard(tmp_path: Path) -> None:
    turns: list[tuple[str, list[str] | None]] = [
        ("A", ["B"]),  # only B hears A
        ("B", ["A"]),  # B replies to A (heard); only A hears B
        ("C", None),  # C did not hear B: no reply
        ("A", None),  # A heard C: reply
        ("M", None),  # the moderator breaks the chain
        ("B", None),  # no reply to anyone
        ("B", None),  # speaking twice is no reply
    ]
    db = _database(tmp_path / "heard.db", [Discussion(["A", "B", "C"], turns, moderator="M")])
    pairs = group.reply_pairs(db)
    edges = {(r, a): n for r, a, n in pairs.select("replier", "addressee", "replies").iter_rows()}
    assert edges == {("B", "A"): 1, ("A", "C"): 1}
    row = group.reciprocity(db).row(0, named=True)
    assert (row["pairs"], row["replies"], row["unheard"]) == (3, 2, 1)
    assert row["reciprocity"] == 0.0 and row["reciprocated_share"] == 0.0


# --- influence ----------------------------------------------------------------------------------


def test_influence_goes_to_the_speakers_heard(tmp_path: Path) -> None:
    talk = Discussion(
        ["X", "Y", "L", "N"],
        [
            ("X", ["L"]),  # step 0: only L hears X
            ("X", ["L", "Y"]),  # step 1
            ("Y", ["L"]),  # step 2
        ],
        {
            0: {"X": 5, "Y": 1, "L": 2, "N": 2},
            2: {"X": 5, "Y": 1, "L": 4, "N": 3},  # L moved +2 toward X; N moved but heard nothing
            3: {"X": 5, "Y": 1, "L": 3, "N": 3},  # L moved -1 toward Y
        },
        network=nx.path_graph(["X", "L", "Y", "N"]),
    )
    db = _database(tmp_path / "influence.db", [talk])
    edges = group.influence(db)
    found = {
        (s, listener): (m, w)
        for s, listener, m, w in edges.select(
            "speaker", "listener", "messages", "weight"
        ).iter_rows()
    }
    # X's two messages share L's +2: +1 each, both toward X (5 > 2); Y->L: -1 toward 1 from 4 = +1;
    # Y heard one of X's messages but did not move: an edge of weight 0.
    assert found == {
        ("X", "L"): (2, pytest.approx(2.0)),
        ("Y", "L"): (1, pytest.approx(1.0)),
        ("X", "Y"): (1, 0.0),
    }
    assert not edges.filter(pl.col("listener") == "N").height  # N heard no one: no edge
    graph = group.influence_graph(edges, 1)
    assert graph["X"]["L"]["weight"] == pytest.approx(2.0)
    summary = {row["agent"]: row for row in group.influence_summary(db).iter_rows(named=True)}
    assert set(summary) == {"X", "Y", "L", "N"}
    assert summary["X"]["out_weight"] == pytest.approx(2.0)
    assert summary["L"]["in_weight"] == pytest.approx(3.0)
    assert summary["N"]["out_edges"] == 0 and summary["N"]["in_edges"] == 0
    assert summary["X"]["pagerank"] > summary["L"]["pagerank"]
    assert summary["X"]["community"] == summary["L"]["community"]
    assert summary["N"]["community"] != summary["X"]["community"]
    assert group.influence_summary(edges).height == 3  # from edges alone: members on an edge


def test_influence_split_and_away(tmp_path: Path) -> None:
    talk = Discussion(
        ["X", "Y", "L"],
        _all_heard("XMY"),
        {0: {"X": 5, "Y": 1, "L": 3}, 3: {"X": 5, "Y": 1, "L": 4}},
        moderator="M",
    )
    edges = group.influence(_database(tmp_path / "split.db", [talk]))
    weights = {
        (s, listener): w
        for s, listener, w in edges.select("speaker", "listener", "weight").iter_rows()
    }
    # L moved +1 having heard X and Y once each (the moderator holds no opinion and takes no
    # part): +0.5 toward X, and +0.5 away from Y
    assert weights[("X", "L")] == pytest.approx(0.5)
    assert weights[("Y", "L")] == pytest.approx(-0.5)
    assert not edges.filter(pl.col("speaker") == "M").height


# --- figures, the report section, empty input ---------------------------------------------------


@pytest.fixture
def group_db(tmp_path: Path) -> Path:
    members = ["Ana", "Ben", "Cy", "Dee"]
    ring = nx.cycle_graph(members)
    discussions = [
        Discussion(
            members,
            [(s, list(ring.neighbors(s))) for s in ("Ana", "Ben", "Cy", "Ana", "Dee", "Ben")],
            {
                0: {"Ana": 1, "Ben": 2, "Cy": 4, "Dee": 5},
                3: {"Ana": 2, "Ben": 2, "Cy": 3, "Dee": 5},
                6: {"Ana": 3, "Ben": 3, "Cy": 3, "Dee": 4},
            },
            moderator="Mo",
            params={"graph": graph, "hearing": "neighbours"},
            network=ring,
        )
        for graph in ("ring", "ring")
    ]
    return _database(tmp_path / "group.db", discussions)


def test_plots_draw_and_save(group_db: Path, tmp_path: Path) -> None:
    data = group.load_group(group_db)
    for draw in (
        group_report.plot_opinions,
        group_report.plot_participation,
        group_report.plot_influence_graph,
    ):
        target = tmp_path / f"{draw.__name__}.png"
        fig = draw(data, 2, path=target)
        assert fig.axes and target.read_bytes().startswith(b"\x89PNG")
    assert "Episode 1" in group_report.plot_opinions(group_db).axes[0].get_title()
    assert "Gini" in group_report.plot_participation(data).axes[0].get_title()
    group_report.plot_influence_graph(group.influence(data))  # from the edge frame alone


def test_section_shows_tables_and_figures(group_db: Path, tmp_path: Path) -> None:
    part = group_report.section()
    assert part.title == "Group dynamics"
    body = part.build(group_db)
    assert body is not None and body.count("<img") == 3
    assert "Per condition" in body and "Episode 1" in body
    page = write_report(group_db, out=tmp_path / "page.html", sections=[part]).read_text()
    assert ">Group dynamics<" in page and 'class="error"' not in page
    assert "Episode 2" in (group_report.section(episode_id=2).build(group_db) or "")


def test_section_and_frames_without_opinions(tmp_path: Path) -> None:
    db = _database(tmp_path / "quiet.db", [Discussion(["A", "B"], _all_heard("AB"))])
    assert group_report.section().build(db) is None
    fresh = tmp_path / "fresh.db"
    Database(fresh).close()
    assert group_report.section().build(fresh) is None
    frames = {
        "opinions": group.opinions(fresh),
        "dynamics": group.opinion_dynamics(fresh),
        "consensus": group.time_to_consensus(fresh),
        "participation": group.participation(fresh),
        "participation_summary": group.participation_summary(fresh),
        "reply_pairs": group.reply_pairs(fresh),
        "reciprocity": group.reciprocity(fresh),
        "influence": group.influence(fresh),
        "influence_summary": group.influence_summary(fresh),
        "summary": group.group_summary(fresh),
    }
    for name, frame in frames.items():
        assert frame.is_empty(), name
        assert "episode_id" in frame.columns and "experiment_id" in frame.columns, name
    assert frames["opinions"].columns == list(group.OPINIONS_SCHEMA)
    assert {"t", "n", "mean", "variance", "bimodality", "extreme_share"} <= set(
        frames["dynamics"].columns
    )
    assert {"t_first", "t_consensus", "consensus"} <= set(frames["consensus"].columns)
    assert {"speaker", "listener", "weight"} <= set(frames["influence"].columns)
    assert {"pagerank", "community"} <= set(frames["influence_summary"].columns)
    assert group_report.plot_opinions(fresh).axes == []  # a figure with a message, no axes


def test_network_round_trip(group_db: Path) -> None:
    graph = group.episode_network(group_db, 1)
    assert graph is not None and set(graph.edges) == set(
        nx.cycle_graph(["Ana", "Ben", "Cy", "Dee"]).edges
    )
    assert group.episode_network(group_db, 99) is None


def test_entropy_is_null_for_one_member() -> None:
    assert group.normalised_entropy([1.0]) is None
    assert math.isclose(group.normalised_entropy([0.5, 0.5]) or 0, 1.0)
