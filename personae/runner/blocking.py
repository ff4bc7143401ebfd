"""Running a run from synchronous code: in a script, and inside a running event loop.

``Experiment.run`` is the synchronous entry point. In a script no event loop
runs in the calling thread, and :func:`run_coroutine` simply calls
``asyncio.run``. In a Jupyter notebook (or any code already inside a running
loop, e.g. a coroutine that calls ``experiment.run``) ``asyncio.run`` is
refused, so the run gets a worker thread with its own event loop and the
calling thread waits for it. Ctrl-C (the notebook's "interrupt kernel") raises
:class:`KeyboardInterrupt` in the waiting thread; the run's task is then
cancelled in its loop, which marks the unfinished episodes ``interrupted`` and
keeps every complete one, exactly as Ctrl-C does in a terminal. Signal
handlers cannot be installed outside the main thread, so the worker installs
none: the waiting thread takes the interrupt for it.

:class:`NewDatabase` removes a database file that a run created but never put
an episode into, so a run that fails before its first episode (an unreachable
server, a model that cannot be loaded) leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import sqlite3
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["NewDatabase", "loop_running", "run_coroutine"]

T = TypeVar("T")


def loop_running() -> bool:
    """Whether an event loop is running in this thread (as in a Jupyter cell)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def run_coroutine(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run the coroutine ``main()`` to completion and return its result.

    Outside a running event loop this is ``asyncio.run(main())``. Inside one,
    ``main()`` runs in a new thread with its own loop (and a copy of the
    caller's context variables, so a notebook's output still lands in the cell
    that started it), and this thread waits.

    Args:
        main: Makes the coroutine; it is called only where it will be awaited,
            so no "coroutine was never awaited" warning can arise.

    Returns:
        What the coroutine returned.

    Raises:
        KeyboardInterrupt: Interrupted, and the coroutine ended by cancellation
            rather than returning (a run returns its summary instead).
        BaseException: Whatever the coroutine raised.
    """
    if not loop_running():
        return asyncio.run(main())
    return _run_in_thread(main)


def _run_in_thread(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    started = threading.Event()
    finished = threading.Event()
    box: dict[str, Any] = {}

    async def wrapped() -> T:
        box["loop"], box["task"] = asyncio.get_running_loop(), asyncio.current_task()
        started.set()
        return await main()

    def work() -> None:
        try:
            box["result"] = asyncio.run(wrapped())
        except BaseException as exc:  # handed to the waiting thread
            box["error"] = exc
        finally:
            started.set()
            finished.set()

    context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(work,), name="personae-run", daemon=True)
    thread.start()
    interrupted = False
    while True:
        try:
            # A short wait, repeated: a signal handler runs between two waits at the latest.
            while not finished.wait(0.1):
                pass
            break
        except KeyboardInterrupt:
            interrupted = True
            started.wait()
            _cancel(box)
    thread.join()
    if "error" in box:
        error = box["error"]
        if interrupted and isinstance(error, asyncio.CancelledError):
            raise KeyboardInterrupt from None
        raise error
    result: T = box["result"]
    return result


def _cancel(box: dict[str, Any]) -> None:
    """Cancel the worker's task from another thread (a no-op once its loop has closed)."""
    loop, task = box.get("loop"), box.get("task")
    if loop is None or task is None:
        return
    with contextlib.suppress(RuntimeError):  # a closed loop: the run has ended already
        loop.call_soon_threadsafe(task.cancel)


class NewDatabase:
    """A database path, and whether a run made the file: to remove it if nothing went in.

    Take one before the run opens the file; call :meth:`discard` when the run
    failed. A file that existed before is never touched.

    Args:
        db: The database file the run is about to open.

    Example::

        new = NewDatabase(db)
        try:
            ...  # open the database and run
        except BaseException:
            new.discard()
            raise
    """

    def __init__(self, db: str | Path) -> None:
        self.path = Path(db)
        self.existed = self.path.exists()
        # Folders the run would create for the file, outermost first.
        self.folders = [p for p in reversed(self.path.parents) if not p.exists()]

    def discard(self) -> bool:
        """Remove the file (and the folders made for it) if this run made it and ran no episode.

        Returns:
            Whether the file was removed.
        """
        if self.existed or not self.path.exists() or self._holds_episodes():
            return False
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        for folder in reversed(self.folders):
            try:
                folder.rmdir()  # only if empty: nothing else was put there meanwhile
            except OSError:
                break
        return True

    def _holds_episodes(self) -> bool:
        """Whether any episode started in the file (or it cannot be read: then keep it)."""
        try:
            con = sqlite3.connect(self.path)  # made by this run: no one else's file
        except sqlite3.Error:
            return True
        try:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
            if "episodes" not in tables:
                return False
            started = con.execute("SELECT COUNT(*) FROM episodes WHERE status != 'pending'")
            return bool(started.fetchone()[0])
        except sqlite3.Error:
            return True
        finally:
            con.close()
