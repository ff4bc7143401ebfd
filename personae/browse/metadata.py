"""The Datasette metadata shipped with personae: titles, facets, canned queries.

Everything a reader sees besides the rows lives in ``metadata.yaml`` beside this
module (data, not code): a title and description for every table and view,
column descriptions, the facets each table opens with, and the canned queries
(an episode step by step, grid cells, outlying scores, failed and truncated
episodes, calls and latency per model). :func:`browse_metadata` puts the
database section under the name Datasette gives the file.
"""

from __future__ import annotations

import copy
from functools import cache
from importlib import resources
from typing import Any

#: The page that shows one episode as a conversation; ``{episode_id}`` is filled in.
EPISODE_PATH = "/-/personae/episode/{episode_id}"


@cache
def _bundled() -> dict[str, Any]:
    import yaml  # a dependency of Datasette, so present wherever browse runs

    text = resources.files("personae.browse").joinpath("metadata.yaml").read_text("utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def canned_queries() -> dict[str, dict[str, Any]]:
    """The canned queries, by name: each has ``title``, ``description`` and ``sql``.

    Returns:
        A fresh copy; changing it changes nothing shipped.
    """
    return copy.deepcopy(_bundled()["database"]["queries"])


def settings() -> dict[str, Any]:
    """Datasette settings for browsing (time limits, page size, no suggested facets)."""
    return dict(_bundled()["settings"])


def browse_metadata(database: str, *, first_episode: int | None = None) -> dict[str, Any]:
    """Datasette metadata for one personae database.

    Args:
        database: The name Datasette serves the file under (its stem).
        first_episode: An episode id for the example link on the home page;
            none when the database holds no episodes.

    Returns:
        A metadata dict for ``Datasette(metadata=...)``.

    Example:
        >>> meta = browse_metadata("demo")
        >>> meta["databases"]["demo"]["tables"]["turns"]["facets"]
        ['truncated', 'empty', 'scripted', 'session']
    """
    data = copy.deepcopy(_bundled())
    data.pop("settings")
    section = data.pop("database")
    episode_page = EPISODE_PATH.format(episode_id=first_episode or 1)
    description = data.pop("description_html").format(db=f"/{database}", episode_page=episode_page)
    if first_episode is None:
        description = description.split(" Every episode id")[0]
    data["description_html"] = description
    data["databases"] = {database: section}
    return data
