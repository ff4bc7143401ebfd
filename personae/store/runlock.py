"""One run per database at a time.

Two runs writing the same file would reset each other's episodes in flight.
:class:`RunLock` takes an exclusive ``flock`` on a file next to the database
(``runs/x.db.lock``) for as long as a run lasts and writes the holder's
process id, command line and start time into it, so a second run can say who
holds the file. The kernel drops the lock when its process dies, kill -9
included, so a lock left by a killed run is simply taken over.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
from pathlib import Path
from types import TracebackType

from personae.errors import StoreError

__all__ = ["RunLock"]


class RunLock:
    """An exclusive claim on a database file for one run.

    Args:
        db: The database file the run writes.

    Raises:
        StoreError: (from :meth:`acquire`) another live process holds the database.

    Example::

        with RunLock("runs/x.db"):
            ...  # run episodes
    """

    def __init__(self, db: str | Path) -> None:
        self.db = Path(db)
        self.path = self.db.with_name(self.db.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock at once or raise, naming the process that holds it."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise StoreError(
                    f"{self.db} is in use by another personae run ({holder}). Two runs on one "
                    "database would reset each other's episodes: wait for it to finish, stop "
                    "it, or give this run another --db."
                ) from None
            # The holder before us may have removed the file after we opened it:
            # then our lock is on a file nobody else will see, so start again.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        info = {"pid": os.getpid(), "command": " ".join(sys.argv)[:500], "since": _now()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Give the database back; safe to call twice."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        os.close(self._fd)  # closing the descriptor drops the flock
        self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        info = {}
    if not isinstance(info, dict) or "pid" not in info:
        return "a process that has not said who it is yet"
    parts = [f"pid {info['pid']}"]
    if info.get("command"):
        parts.append(f"`{info['command']}`")
    if info.get("since"):
        parts.append(f"since {info['since']}")
    return ", ".join(parts)


def _now() -> str:
    from personae.store.rows import now

    return now()
