"""``personae browse``: read a database in the browser with Datasette.

Datasette is an optional extra (``pip install 'personae[browse]'``); this
package imports it only when a server is made. See ``docs/browse.md``.
"""

from personae.browse.metadata import EPISODE_PATH, browse_metadata, canned_queries
from personae.browse.server import DEFAULT_PORT, check_database, make_datasette, serve

__all__ = [
    "DEFAULT_PORT",
    "EPISODE_PATH",
    "browse_metadata",
    "canned_queries",
    "check_database",
    "make_datasette",
    "serve",
]
