"""Social networks among agents, built with networkx and seeded.

Nodes are agent names. The seed comes from the episode, so the same episode
always gets the same graph.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import networkx as nx
from pydantic import BaseModel, ConfigDict, Field

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


class Network(BaseModel):
    """A social graph among a scenario's agents, drawn per episode from its seed.

    Args:
        kind: A generated graph (see :func:`social_graph`), unless ``graph`` is given.
        k, p, m: The generator's parameters.
        graph: Any networkx graph whose nodes are agent names (used as it is).
        members: Names or roles of the agents in the graph (default: everyone).
            Agents outside it (e.g. a moderator) hear and are heard by everyone.

    Example:
        >>> Network(kind="small_world", k=4, p=0.1)  # doctest: +SKIP
    """

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)
    kind: Kind = "complete"
    k: int = Field(default=4, ge=1)
    p: float = Field(default=0.1, ge=0.0, le=1.0)
    m: int = Field(default=2, ge=1)
    graph: nx.Graph | None = None
    members: tuple[str, ...] | None = None

    def nodes(self, names: Sequence[str], roles: Mapping[str, str]) -> list[str]:
        """The agent names in the graph."""
        if self.members is None:
            return list(names)
        return [n for n in names if n in self.members or roles.get(n) in self.members]

    def check(self, names: Sequence[str], roles: Mapping[str, str]) -> None:
        """Raise :class:`ConfigError` when the graph cannot be drawn over these agents."""
        nodes = self.nodes(names, roles)
        if self.graph is not None:
            strangers = sorted(set(map(str, self.graph.nodes)) - set(names))
            if strangers:
                raise ConfigError(
                    f"the network names {', '.join(strangers[:5])}, who is not in the scenario"
                )
            return
        if len(nodes) < 2:
            raise ConfigError("a network needs at least two member agents")
        if self.kind == "small_world" and not 2 <= self.k < len(nodes):
            raise ConfigError(
                f"small_world needs 2 <= k < number of members ({len(nodes)}), got k={self.k}"
            )
        if self.kind == "scale_free" and not self.m < len(nodes):
            raise ConfigError(
                f"scale_free needs m < number of members ({len(nodes)}), got m={self.m}"
            )

    def build(self, names: Sequence[str], roles: Mapping[str, str], seed: int) -> nx.Graph:
        """The graph for one episode."""
        if self.graph is not None:
            return nx.Graph(self.graph)
        return social_graph(
            self.nodes(names, roles), self.kind, seed=seed, k=self.k, p=self.p, m=self.m
        )

    def describe(self) -> dict[str, Any]:
        """A JSON-able description."""
        data = self.model_dump(mode="json", exclude={"graph"})
        if self.graph is not None:
            data["graph"] = sorted(sorted(map(str, e)) for e in self.graph.edges)
        return data
