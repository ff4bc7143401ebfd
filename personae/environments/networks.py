"""Social networks among agents, built with networkx and seeded.

Nodes are agent names. The seed comes from the episode, so the same episode
always gets the same graph.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import networkx as nx

from personae.errors import ConfigError

Kind = Literal["complete", "small_world", "scale_free", "ring", "random"]


def social_graph(
    names: Sequence[str],
    kind: Kind = "complete",
    *,
    seed: int = 0,
    k: int = 4,
    p: float = 0.1,
    m: int = 2,
) -> nx.Graph:
    """A connected, undirected social graph over ``names``.

    Args:
        names: Agent names, used as node labels.
        kind: ``complete``; ``small_world`` (Watts-Strogatz, ``k`` neighbours,
            rewiring ``p``); ``scale_free`` (Barabasi-Albert, ``m`` edges per new
            node); ``ring``; ``random`` (Erdos-Renyi with edge probability ``p``,
            redrawn until connected).
        seed: Seed of the random generators.

    Raises:
        ConfigError: Unknown kind, too few names, or parameters that do not fit.
    """
    n = len(names)
    if n < 2:
        raise ConfigError("a social graph needs at least two agents")
    if len(set(names)) != n:
        raise ConfigError("agent names in a social graph must be unique")
    if kind == "complete":
        g = nx.complete_graph(n)
    elif kind == "ring":
        g = nx.cycle_graph(n)
    elif kind == "small_world":
        if not 2 <= k < n:
            raise ConfigError(f"small_world needs 2 <= k < number of agents ({n}), got k={k}")
        g = nx.connected_watts_strogatz_graph(n, k, p, seed=seed)
    elif kind == "scale_free":
        if not 1 <= m < n:
            raise ConfigError(f"scale_free needs 1 <= m < number of agents ({n}), got m={m}")
        g = nx.barabasi_albert_graph(n, m, seed=seed)
    elif kind == "random":
        for attempt in range(1000):
            g = nx.gnp_random_graph(n, p, seed=seed + attempt)
            if nx.is_connected(g):
                break
        else:
            raise ConfigError(f"no connected random graph with p={p} for {n} agents; raise p")
    else:
        raise ConfigError(
            f"unknown graph kind {kind!r}; use complete, small_world, scale_free, ring or random"
        )
    return nx.relabel_nodes(g, dict(enumerate(names)))
