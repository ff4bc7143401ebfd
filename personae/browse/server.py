"""Start Datasette on one personae database, read-only, on loopback.

The file is opened *immutable* (``?immutable=1``): SQLite takes no lock,
creates no ``-wal`` or ``-shm`` file and never writes. A database that a run is
writing now (or a run killed before its checkpoint left data in ``DB-wal``)
would look stale opened that way, so it is opened ``mode=ro`` instead, which
reads the log as any reader does and still cannot write.
"""

from __future__ import annotations

import atexit
import shutil
import socket
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from personae.errors import ConfigError
from personae.report.html import database_name
from personae.store.schema import APPLICATION_ID

if TYPE_CHECKING:
    from datasette.app import Datasette

#: Datasette's own default port.
DEFAULT_PORT = 8001

_SQLITE_HEADER = b"SQLite format 3\x00"
_INSTALL = "pip install 'personae[browse]'"


def check_database(path: str | Path) -> bool:
    """Refuse anything but a personae database, without opening it in SQLite.

    Args:
        path: The database file.

    Returns:
        Whether a run is writing it (or left data in its ``-wal`` file): then it
        must be read ``mode=ro``, not ``immutable``.

    Raises:
        ConfigError: The file is missing, unreadable, not SQLite, or written by another program.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"no database at {path}: give the SQLite file an experiment wrote "
            "(personae run ... --db FILE), e.g. personae browse runs/personae.db."
        )
    try:
        with path.open("rb") as f:
            header = f.read(100)
    except OSError as exc:
        raise ConfigError(
            f"cannot read {path} ({exc.strerror}): check that it is readable."
        ) from None
    if not header.startswith(_SQLITE_HEADER):
        raise ConfigError(
            f"{path} is not an SQLite database: personae browse opens the file an "
            "experiment wrote (personae run ... --db FILE)."
        )
    wal = path.with_name(path.name + "-wal")
    live = wal.is_file() and wal.stat().st_size > 0
    if live:  # the header may still sit in the log: let SQLite read it
        from personae.store.readonly import connect_readonly

        try:
            connect_readonly(path).close()
        except Exception as exc:  # StoreError says why in one sentence
            raise ConfigError(str(exc)) from None
    elif len(header) < 72 or int.from_bytes(header[68:72], "big") != APPLICATION_ID:
        raise ConfigError(
            f"{path} is not a personae database (it was written by another program); "
            "to look at any SQLite file, run datasette on it directly."
        )
    return live


def make_datasette(path: str | Path, *, live: bool = False) -> Datasette:
    """Build the Datasette app for one database, with personae's metadata and pages.

    Args:
        path: A personae database (see :func:`check_database`).
        live: Open it ``mode=ro`` (a run is writing it) instead of immutable.

    Returns:
        The Datasette instance; serve ``instance.app()`` with any ASGI server.

    Raises:
        ConfigError: Datasette is not installed.
    """
    try:
        from datasette.app import Datasette
        from datasette.database import Database
        from datasette.plugins import pm
    except ImportError:
        raise ConfigError(
            f"personae browse needs Datasette, an optional extra: {_INSTALL}."
        ) from None
    from personae.browse import metadata, plugin

    if not pm.is_registered(plugin):
        pm.register(plugin, name="personae-browse")
    path = Path(path).resolve()
    name = database_name(path)
    file = _sqlite_safe(path)
    first = _first_episode(path, live=live)
    ds = Datasette(
        metadata=metadata.browse_metadata(name, first_episode=first),
        settings=metadata.settings(),
        template_dir=str(Path(plugin.__file__).with_name("templates")),
    )
    ds.add_database(Database(ds, path=str(file), is_mutable=live), name=name)
    if "_memory" in ds.databases:  # added because no file was given to the constructor
        ds.remove_database("_memory")
    return ds


def serve(
    path: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    echo: Callable[[str], None] = print,
) -> None:
    """Serve one database until Ctrl-C (or SIGTERM).

    Args:
        path: A personae database.
        host: The interface; loopback unless the caller means otherwise.
        port: The port; 0 picks a free one.
        echo: Where the URL line goes.

    Raises:
        ConfigError: The file is not a personae database, Datasette is missing,
            or the port is taken.
    """
    import uvicorn

    live = check_database(path)
    ds = make_datasette(path, live=live)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port} ({exc.strerror}): another program uses the "
            "port; choose another with --port (0 picks a free one)."
        ) from None
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    how = "read-only, while a run writes it" if live else "read-only (immutable)"
    echo(f"Browsing {Path(path)} {how} at http://{shown}:{bound}/ (Ctrl-C stops)")
    config = uvicorn.Config(ds.app(), log_level="warning", lifespan="on")
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()


def _first_episode(path: Path, *, live: bool) -> int | None:
    """The smallest episode id, for the example link on the home page."""
    uri = path.as_uri() + ("?mode=ro" if live else "?immutable=1")
    try:
        con = sqlite3.connect(uri, uri=True)
        try:
            value = con.execute("SELECT MIN(id) FROM episodes").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:  # the link is only an example; a bare database still browses
        return None
    return value if isinstance(value, int) else None


def _sqlite_safe(path: Path) -> Path:
    """A path Datasette can put into a ``file:`` URI as it is.

    Datasette writes the path into the URI unescaped, where ``?``, ``#`` and
    ``%`` would be read as the query, the fragment or an escape; such a file is
    reached through a symbolic link with a plain name in a private folder.
    """
    if not set(str(path)) & set("?#%"):
        return path
    folder = Path(tempfile.mkdtemp(prefix="personae-browse-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    link = folder / "database.db"
    link.symlink_to(path)
    return link
