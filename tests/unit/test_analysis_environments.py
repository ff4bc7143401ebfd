import asyncio

import networkx as nx
import pytest

from personae import Experiment, FunctionModel
from personae.analysis import episodes, transcripts, utterance_lengths
from personae.environments import social_graph
from personae.errors import ConfigError


def test_frames_from_a_run(dialogue, tmp_path):
    db = tmp_path / "x.db"
    exp = Experiment(scenario=dialogue, grid={"client.style": ["plain", "verbose"]}, replicates=2)
    asyncio.run(
        exp.arun(db, FunctionModel(lambda m, c: "word " * (3 if "plain" in m[0]["content"] else 1)))
    )
    t = transcripts(db)
    assert t.height == 4 * 6
    assert set(t["param:client.style"].unique()) == {"plain", "verbose"}
    e = episodes(db)
    assert e.height == 4 and set(e["status"]) == {"complete"}
    lengths = utterance_lengths(db)
    assert set(lengths["role"]) == {"counselor", "client"}
    assert lengths["utterances"].sum() == 24


@pytest.mark.parametrize("kind", ["complete", "small_world", "scale_free", "ring", "random"])
def test_social_graphs_are_connected_labelled_and_seeded(kind):
    names = [f"a{i}" for i in range(20)]
    g = social_graph(names, kind, seed=3, p=0.3)
    assert set(g.nodes) == set(names) and nx.is_connected(g)
    assert nx.utils.graphs_equal(g, social_graph(names, kind, seed=3, p=0.3))


def test_social_graph_rejects_bad_parameters():
    with pytest.raises(ConfigError, match="k < number of agents"):
        social_graph(["a", "b", "c"], "small_world", k=4)
    with pytest.raises(ConfigError, match="unknown graph kind"):
        social_graph(["a", "b"], "lattice")  # type: ignore[arg-type]
