"""The Datasette plugin behind ``personae browse``: the conversation page and links.

Registered by :func:`personae.browse.server.make_datasette` (never through an
entry point, so a plain ``datasette`` run elsewhere is unaffected). It adds:

* ``/-/personae/episode/<id>``: one episode as a conversation: speakers and
  their lines in order, with the questionnaires, scores and states recorded
  between them placed at the step where they were taken (the canned query
  ``episode_timeline`` shows the same rows as a table);
* a link to that page beside every ``episode_id`` (and the ``id`` of the
  episodes table), and from a grid cell's ``param_index`` in the query
  ``grid_cells`` to the query ``cell_episodes``;
* ``sqrt()`` on SQLite builds compiled without the math functions, which the
  query ``outlying_scores`` uses.
"""

from __future__ import annotations

import json
import math
import sqlite3
from typing import Any
from urllib.parse import urlencode

from datasette import hookimpl
from datasette.utils.asgi import Response
from markupsafe import Markup, escape

from personae.browse.metadata import EPISODE_PATH, canned_queries

#: Speaker colours cycle through this many CSS classes (``speaker-0`` ...).
SPEAKER_CLASSES = 6


@hookimpl
def prepare_connection(conn: sqlite3.Connection) -> None:
    """Give SQLite ``sqrt()`` where the build lacks it."""
    try:
        conn.execute("SELECT sqrt(4)")
    except sqlite3.OperationalError:
        conn.create_function(
            "sqrt", 1, lambda x: None if x is None or x < 0 else math.sqrt(x), deterministic=True
        )


@hookimpl
def register_routes() -> list[tuple[str, Any]]:
    """The conversation page of one episode."""
    return [(r"^/-/personae/episode/(?P<episode_id>[0-9]+)$", episode_page)]


@hookimpl
def render_cell(row: Any, value: Any, column: str, table: str | None, datasette: Any) -> Any:
    """Link episode ids to their conversation and grid cells to their episodes."""
    if column == "episode_id":
        if isinstance(value, dict):  # a foreign key Datasette expanded: {"value", "label"}
            value = value.get("value")
        if not isinstance(value, int) or isinstance(value, bool):
            return None
        url = _conversation(datasette, value)
        if table is None:  # a query's result
            return Markup(f'<a href="{url}" title="the conversation">{value}</a>')
        row_url = datasette.urls.path(f"/{_database(datasette)}/episodes/{value}")
        return Markup(f'<a href="{row_url}">{value}</a> {_link(url)}')
    keys = row.keys() if hasattr(row, "keys") else ()
    if table == "episodes" and column == "status" and "id" in keys:
        # Datasette draws the primary key itself, so the link sits beside the status
        return Markup(f"{escape(value)} {_link(_conversation(datasette, row['id']))}")
    if table is None and column == "param_index" and "experiment_id" in keys:
        query = urlencode({"experiment_id": row["experiment_id"], "param_index": value})
        url = datasette.urls.path(f"/{_database(datasette)}/cell_episodes?{query}")
        return Markup(f'<a href="{escape(url)}" title="the episodes of this grid cell">{value}</a>')
    return None


def _conversation(datasette: Any, episode_id: int) -> str:
    return str(datasette.urls.path(EPISODE_PATH.format(episode_id=episode_id)))


def _link(url: str) -> str:
    return f'<a class="personae-conversation" href="{url}">conversation</a>'


def _database(datasette: Any) -> str:
    return str(datasette.get_database().name)


async def episode_page(datasette: Any, request: Any) -> Response:
    """Render one episode as a conversation, or a 404 page for an unknown id."""
    db = datasette.get_database()
    episode_id = int(request.url_vars["episode_id"])
    result = await db.execute(
        """
        SELECT e.id, e.experiment_id, x.name AS experiment, e.param_index, e.replicate,
               e.params_json, e.seed, e.status, e.n_turns, e.end_reason, e.error,
               (SELECT MAX(id) FROM episodes WHERE id < e.id) AS previous,
               (SELECT MIN(id) FROM episodes WHERE id > e.id) AS next
        FROM episodes e JOIN experiments x ON x.id = e.experiment_id WHERE e.id = ?
        """,
        [episode_id],
    )
    episode = result.first()
    if episode is None:
        return Response.html(
            await datasette.render_template(
                "error.html",
                {
                    "ok": False,
                    "error": f"There is no episode {episode_id}.",
                    "status": 404,
                    "title": "Not found",
                },
                request=request,
            ),
            status=404,
        )
    agents = (
        await db.execute(
            "SELECT id, name, role FROM agents WHERE episode_id = ? ORDER BY id", [episode_id]
        )
    ).rows
    colour = {a["name"]: f"speaker-{i % SPEAKER_CLASSES}" for i, a in enumerate(agents)}
    timeline = (
        await db.execute(canned_queries()["episode_timeline"]["sql"], {"episode_id": episode_id})
    ).rows
    entries = [
        {
            "step": r["step"],
            "kind": r["kind"],
            "who": r["who"],
            "text": r["text"],
            "note": r["note"],
            "css": colour.get(r["who"], "speaker-x"),
        }
        for r in timeline
    ]
    name = _database(datasette)
    context = {
        "database": name,
        "episode": dict(episode),
        "params": _params(episode["params_json"]),
        "agents": [dict(a) for a in agents],
        "entries": entries,
        "turns": sum(e["kind"] == "turn" for e in entries),
        "urls_for": {
            "timeline": datasette.urls.path(
                f"/{name}/episode_timeline?{urlencode({'episode_id': episode_id})}"
            ),
            "turns": datasette.urls.path(
                f"/{name}/turns?{urlencode({'episode_id': episode_id, '_sort': 'step'})}"
            ),
            "calls": datasette.urls.path(
                f"/{name}/llm_calls?{urlencode({'episode_id': episode_id})}"
            ),
            "cell": datasette.urls.path(
                f"/{name}/cell_episodes?"
                + urlencode(
                    {
                        "experiment_id": episode["experiment_id"],
                        "param_index": episode["param_index"],
                    }
                )
            ),
            "previous": _episode_url(datasette, episode["previous"]),
            "next": _episode_url(datasette, episode["next"]),
        },
    }
    html = await datasette.render_template("personae_episode.html", context, request=request)
    return Response.html(html)


def _episode_url(datasette: Any, episode_id: int | None) -> str | None:
    return None if episode_id is None else _conversation(datasette, episode_id)


def _params(params_json: str | None) -> list[tuple[str, str]]:
    """The episode's parameters as (name, value) pairs for display."""
    try:
        params = json.loads(params_json or "{}")
    except ValueError:
        return [("params", params_json or "")]
    if not isinstance(params, dict):
        return [("params", json.dumps(params))]
    return [
        (str(k), v if isinstance(v, str) else json.dumps(v, ensure_ascii=False))
        for k, v in params.items()
    ]
